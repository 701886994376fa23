import os

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from sritm_tf import cli, colour, convert, imageio, pretrained
from sritm_tf.model import build_deep_sritm

from tests.helpers.paths import need_shared
from tests.helpers.processes import sritm

SAMPLE = pretrained.sample_path()


def sample_rgb():
    return cv2.imread(SAMPLE)[..., ::-1].copy()


def codes10(path):
    """10-bit codes of a 16-bit HDR PNG, checking they were stored as D10 * 65535 / 1023."""
    d16 = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[..., ::-1].astype(np.int64)
    d10 = (d16 * 1023 + 32767) // 65535
    np.testing.assert_array_equal((d10 * 65535 + 511) // 1023, d16)
    return d10


def run_cli(capsys, *argv):
    code = cli.main(["convert", *map(str, argv)])
    return code, capsys.readouterr().err


def assert_one_error_line(code, err, name):
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("sritm convert: error: ") and str(name) in lines[0]


@pytest.fixture(scope="module")
def tiny_model():
    keras.utils.set_random_seed(4)
    return build_deep_sritm(scale=2, channels=8, m=1, n=1)


def test_convert_image_with_model(tiny_model, tmp_path):
    out = tmp_path / "hdr.png"
    pq = convert.convert_image(SAMPLE, out, weights=tiny_model, tile=50)
    rgb = sample_rgb() / 255.0
    hdr_yuv = tiny_model(colour.sdr_rgb_to_model_yuv(rgb).astype(np.float32)[None]).numpy()[0]
    peak = colour.pq_inverse_eotf(convert.PEAK_NITS)  # no pixel above the mastering peak
    expected = colour.quantize(np.minimum(colour.model_yuv_to_pq2020_rgb(hdr_yuv), peak), 10)
    written = codes10(out)
    assert colour.pq_eotf(colour.dequantize(written, 10)).max() <= convert.PEAK_NITS + 1
    assert written.shape == (272, 480, 3)
    assert np.abs(written - expected.astype(np.int64)).max() <= 1
    np.testing.assert_array_equal(written, colour.quantize(pq, 10))
    assert os.listdir(tmp_path) == ["hdr.png"]


def test_convert_image_baseline_values(tmp_path):
    out = tmp_path / "base.png"
    convert.convert_image(SAMPLE, out, baseline=True)
    up = tf.image.resize(sample_rgb()[None] / 255.0, (272, 480), "bicubic").numpy()[0]
    expected = colour.quantize(colour.sdr_to_hdr10_baseline(np.clip(up, 0, 1)), 10).astype(np.int64)
    # tf.image.resize weights the last rows/columns differently (no edge replication): interior only.
    assert np.abs(codes10(out) - expected)[4:-4, 4:-4].max() <= 1


@pytest.mark.parametrize("white", [203.0, 100.0])
def test_baseline_white_level(tmp_path, white):
    cv2.imwrite(str(tmp_path / "white.png"), np.full((6, 5, 3), 255, np.uint8))
    convert.convert_image(tmp_path / "white.png", tmp_path / "out.png", baseline=True, white_nits=white)
    nits = colour.pq_eotf(codes10(tmp_path / "out.png") / 1023.0)
    assert nits.shape == (12, 10, 3)
    np.testing.assert_allclose(nits, white, rtol=0.01)  # 10-bit PQ step is < 1% here


def test_grey_rgba_jpeg_tiff_inputs(tmp_path):
    rgb = sample_rgb()
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    cv2.imwrite(str(tmp_path / "grey.png"), grey)
    np.testing.assert_array_equal(imageio.read_sdr_image(str(tmp_path / "grey.png")), np.stack([grey] * 3, -1))
    rgba = np.dstack([rgb[..., ::-1], np.full(rgb.shape[:2], 77, np.uint8)])
    cv2.imwrite(str(tmp_path / "rgba.png"), rgba)
    np.testing.assert_array_equal(imageio.read_sdr_image(str(tmp_path / "rgba.png")), rgb)
    cv2.imwrite(str(tmp_path / "x.tiff"), rgb[..., ::-1])
    np.testing.assert_array_equal(imageio.read_sdr_image(str(tmp_path / "x.tiff")), rgb)
    cv2.imwrite(str(tmp_path / "x.jpg"), rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 100, cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
                                                          cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444])
    jpeg = imageio.read_sdr_image(str(tmp_path / "x.jpg")).astype(int)
    assert np.abs(jpeg - rgb).mean() < 1 and np.abs(jpeg[..., ::-1] - rgb).mean() > 10  # RGB order, not BGR
    convert.convert_image(tmp_path / "rgba.png", tmp_path / "a.png", baseline=True)
    convert.convert_image(SAMPLE, tmp_path / "b.png", baseline=True)
    np.testing.assert_array_equal(codes10(tmp_path / "a.png"), codes10(tmp_path / "b.png"))


def test_graded_crop_against_its_own_rgb(tmp_path):
    # The graded SDR master is RGBA; the converter drops alpha.
    path = str(need_shared("graded/cosmos01000_sdr.png"))
    rgba = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    assert rgba.shape[-1] == 4
    np.testing.assert_array_equal(imageio.read_sdr_image(path), rgba[..., 2::-1])


def test_hdr_png_round_trip(tmp_path):
    pq = np.random.default_rng(0).random((4, 6, 3))
    imageio.write_hdr_png(str(tmp_path / "p.png"), pq)
    np.testing.assert_array_equal(codes10(tmp_path / "p.png"), colour.quantize(pq, 10))
    assert np.abs(imageio.read_hdr_png(str(tmp_path / "p.png")) - pq).max() <= 0.5 / 1023 + 1e-9


def test_cli_with_weights_file(tiny_model, tmp_path, capsys):
    weights = pretrained.save_weights_npz(tiny_model, str(tmp_path / "tiny.npz"), dtype="float32")
    code, err = run_cli(capsys, SAMPLE, "-o", tmp_path / "o.png", "--weights", weights, "--tile", "64x40",
                        "--precision", "fp32")  # the API default; bf16 is tested in test_precision.py
    assert code == 0, err
    expected = convert.convert_image(SAMPLE, tmp_path / "api.png", weights=tiny_model)
    np.testing.assert_array_equal(codes10(tmp_path / "o.png"), colour.quantize(expected, 10))


def test_cli_errors(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out.png"
    assert_one_error_line(*run_cli(capsys, tmp_path / "missing.png", "-o", out, "--baseline"), "missing.png")

    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    code, err = run_cli(capsys, tmp_path / "corrupt.png", "-o", out, "--baseline")
    assert_one_error_line(code, err, "corrupt.png")
    assert "corrupt" in err

    (tmp_path / "notes.txt").write_text("not an image")
    assert_one_error_line(*run_cli(capsys, tmp_path / "notes.txt", "-o", out, "--baseline"), "notes.txt")

    cv2.imwrite(str(tmp_path / "hdr16.png"), np.full((4, 4, 3), 40000, np.uint16))
    code, err = run_cli(capsys, tmp_path / "hdr16.png", "-o", out, "--baseline")
    assert_one_error_line(code, err, "hdr16.png")
    assert "HDR" in err

    assert_one_error_line(*run_cli(capsys, SAMPLE, "-o", tmp_path / "out.bmp", "--baseline"), "out.bmp")

    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", str(tmp_path / "no_weights"))
    code, err = run_cli(capsys, SAMPLE, "-o", out)
    assert_one_error_line(code, err, "deep_sritm_x2.npz")
    assert sorted(os.listdir(tmp_path)) == ["corrupt.png", "hdr16.png", "notes.txt"]


def test_cli_overwrite(tmp_path, capsys):
    out = tmp_path / "out.png"
    out.write_bytes(b"keep me")
    code, err = run_cli(capsys, SAMPLE, "-o", out, "--baseline")
    assert_one_error_line(code, err, "out.png")
    assert "exists (pass --overwrite to replace it)" in err and "overwrite=True" not in err
    assert out.read_bytes() == b"keep me"
    code, err = run_cli(capsys, SAMPLE, "-o", out, "--baseline", "--overwrite", "--quiet")
    assert code == 0, err
    assert codes10(out).shape == (272, 480, 3)


def test_cli_unwritable_output_folder(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert_one_error_line(*run_cli(capsys, SAMPLE, "-o", tmp_path / "file" / "o.png", "--baseline"), "o.png")
    assert_one_error_line(*run_cli(capsys, SAMPLE, "-o", tmp_path / "nodir" / "o.png", "--baseline"), "nodir")
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = locked / "o.png"
    else:  # chmod does not stop root; sysfs refuses new files even to root
        if not os.path.isdir("/sys/kernel"):
            pytest.skip("running as root and no sysfs to use as an unwritable folder")
        target = "/sys/kernel/sritm_test_o.png"
    code, err = run_cli(capsys, SAMPLE, "-o", target, "--baseline")
    assert_one_error_line(code, err, "o.png")
    assert "cannot write" in err and not os.path.exists(target)


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    def interrupt(src, dst):
        assert os.path.getsize(src) > 1000  # the PNG went to a temporary name first
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupt)
    with pytest.raises(KeyboardInterrupt):
        convert.convert_image(SAMPLE, tmp_path / "o.png", baseline=True)
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_format_png_names_the_output_format_of_an_image(tmp_path, pairs_dir):
    out = tmp_path / "no_extension"
    result = sritm("convert", pairs_dir / "a_sdr.png", "-o", out, "--format", "png", "--baseline", "--quiet")
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
