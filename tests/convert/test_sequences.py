"""Image sequences in and out of `sritm convert`: frame_%06d.tif / .png / .dpx inputs (ffmpeg's image2
numbering) and 16-bit TIFF / PNG sequence outputs, resumable."""
import json
import os
import subprocess

import cv2
import numpy as np
import pytest

from sritm_tf import cli, convert, imageio
from sritm_tf.errors import MissingFileError
from sritm_tf.video import sequences, sources

from tests.helpers.media import ffmpeg, make_clip
from tests.helpers.processes import assert_one_error_line, sritm

WIDTH, HEIGHT, FRAMES, FIRST = 64, 36, 3, 7


def write_tiffs(folder, dtype, first=FIRST, frames=FRAMES):
    """`frames` random RGB TIFFs of `dtype` numbered from `first`, written by OpenCV; (pattern, frames)."""
    folder.mkdir(exist_ok=True)
    top = np.iinfo(dtype).max
    images = [np.random.default_rng(n).integers(0, top + 1, (HEIGHT, WIDTH, 3)).astype(dtype) for n in range(frames)]
    for n, rgb in enumerate(images):
        assert cv2.imwrite(str(folder / f"in_{first + n:06d}.tif"), rgb[..., ::-1])
    return str(folder / "in_%06d.tif"), images


def frame_files(folder, prefix):
    return sorted(name for name in os.listdir(folder) if name.startswith(prefix))


@pytest.fixture(scope="module")
def tiffs8(tmp_path_factory):
    return write_tiffs(tmp_path_factory.mktemp("seq8"), np.uint8)


def test_8bit_tiff_sequence_to_16bit_tiff_sequence_matches_convert_image(tiffs8, tmp_path):
    pattern, _ = tiffs8
    result = convert.convert(pattern, tmp_path / "hdr_%06d.tif", baseline=True, progress=False)
    assert [result[k] for k in ("frames", "skipped", "width", "height")] == [FRAMES, 0, 2 * WIDTH, 2 * HEIGHT]
    names = [f"hdr_{FIRST + n:06d}.tif" for n in range(FRAMES)]  # numbered as the input
    assert frame_files(tmp_path, "hdr_") == names
    for name in names:
        written = imageio.read_image(tmp_path / name)
        assert written.dtype == np.uint16 and written.shape == (2 * HEIGHT, 2 * WIDTH, 3)
        still = tmp_path / f"{name}.png"
        convert.convert_image(sequences.frame_name(pattern, int(name[4:10])), still, baseline=True)
        np.testing.assert_array_equal(written, imageio.read_image(still))


def test_16bit_tiff_sequence_converts_at_16_bits(tmp_path):
    pattern, images = write_tiffs(tmp_path / "in", np.uint16)
    convert.convert(pattern, tmp_path / "hdr_%06d.tif", baseline=True, progress=False)
    assert len(frame_files(tmp_path, "hdr_")) == FRAMES
    codes = imageio.read_image(tmp_path / f"hdr_{FIRST + 1:06d}.tif")
    expected = imageio.hdr_codes16(convert.FrameConverter(2, baseline=True)(images[1] / 65535.0))
    np.testing.assert_array_equal(codes, expected)  # the 16-bit values, not their top 8 bits:
    truncated = imageio.hdr_codes16(convert.FrameConverter(2, baseline=True)((images[1] >> 8).astype(np.uint8)))
    assert not np.array_equal(codes, truncated)


@pytest.mark.parametrize("pix_fmt", ["rgb24", "rgb48le"])
def test_dpx_sequence_to_png_sequence_with_cicp(tmp_path, pix_fmt):
    source = ["-f", "lavfi", "-i", f"testsrc=size={WIDTH}x{HEIGHT}:rate=25", "-frames:v", FRAMES,
              "-start_number", 10, "-pix_fmt", pix_fmt]
    ffmpeg(*source, tmp_path / "d_%04d.dpx")
    ffmpeg(*source, tmp_path / "p_%04d.png")  # the same pixels
    result = convert.convert(tmp_path / "d_%04d.dpx", tmp_path / "hdr_%04d.png", baseline=True, progress=False)
    assert result["frames"] == FRAMES and result["max_cll"] > 0
    assert frame_files(tmp_path, "hdr_") == ["hdr_0010.png", "hdr_0011.png", "hdr_0012.png"]
    png = (tmp_path / "hdr_0011.png").read_bytes()
    assert imageio.png_cicp(png) == (9, 16, 0, 1)  # BT.2020, PQ, RGB, full range
    rgb = imageio.read_image(tmp_path / "p_0011.png")
    signal = convert.FrameConverter(2, baseline=True)(rgb if rgb.dtype == np.uint8 else rgb / 65535)
    expected = imageio.hdr_codes16(signal)
    np.testing.assert_array_equal(imageio.read_image(tmp_path / "hdr_0011.png"), expected)


def test_video_to_png_sequence_numbered_from_1(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=FRAMES)
    result = convert.convert(clip, tmp_path / "f_%03d.png", baseline=True, progress=False)
    assert result["frames"] == FRAMES
    assert frame_files(tmp_path, "f_") == ["f_001.png", "f_002.png", "f_003.png"]
    rgb = [frame for frame, _ in sources.VideoSource(str(clip))][2]
    expected = imageio.hdr_codes16(convert.FrameConverter(2, baseline=True)(rgb))
    np.testing.assert_array_equal(imageio.read_image(tmp_path / "f_003.png"), expected)


def test_sequence_to_mkv_has_its_frames_at_fps(tiffs8, tmp_path):
    pattern, _ = tiffs8
    out = tmp_path / "out.mkv"
    convert.convert(pattern, out, baseline=True, progress=False, fps=24)
    probe = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                            "stream=codec_name,width,height,r_frame_rate,nb_read_frames,color_transfer",
                            "-of", "json", out], capture_output=True, text=True, check=True)
    stream = json.loads(probe.stdout)["streams"][0]
    assert stream == {"codec_name": "hevc", "width": 2 * WIDTH, "height": 2 * HEIGHT, "r_frame_rate": "24/1",
                      "color_transfer": "smpte2084", "nb_read_frames": str(FRAMES)}


def test_rerun_writes_only_missing_frames(tiffs8, tmp_path, capsys, monkeypatch):
    pattern, _ = tiffs8
    out = tmp_path / "hdr_%06d.tif"
    convert.convert(pattern, out, baseline=True, progress=False)
    names = frame_files(tmp_path, "hdr_")
    before = {name: (tmp_path / name).read_bytes() for name in names}
    (tmp_path / names[1]).unlink()
    (tmp_path / f".part-999999999-{names[2]}").write_bytes(b"half")  # a killed run's temporary
    kept = {name: os.stat(tmp_path / name) for name in (names[0], names[2])}
    converted = []
    call = convert.FrameConverter.__call__
    monkeypatch.setattr(convert.FrameConverter, "__call__", lambda self, rgb: converted.append(1) or call(self, rgb))

    assert cli.main(["convert", pattern, "-o", str(out), "--baseline"]) == 0
    err = capsys.readouterr().err
    assert f"note: {out}: 2 of 3 frames exist: skipped (--overwrite rewrites them)" in err
    assert len(converted) == 1  # the frames on disk are not converted again
    assert frame_files(tmp_path, "hdr_") == names and not [n for n in os.listdir(tmp_path) if n.startswith(".")]
    assert {name: (tmp_path / name).read_bytes() for name in names} == before
    for name, stat in kept.items():
        now = os.stat(tmp_path / name)
        assert (now.st_ino, now.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)

    assert cli.main(["convert", pattern, "-o", str(out), "--baseline"]) == 0  # whole already: nothing to do
    assert capsys.readouterr().out.strip() == f"{out}: all 3 frames exist; nothing to do (--overwrite rewrites them)"
    assert len(converted) == 1

    assert cli.main(["convert", pattern, "-o", str(out), "--baseline", "--overwrite"]) == 0
    assert "exist" not in capsys.readouterr().err and len(converted) == 1 + FRAMES
    assert os.stat(tmp_path / names[0]).st_ino != kept[names[0]].st_ino  # replaced


def test_bad_sequences_are_refused_in_one_line(tiffs8, tmp_path):
    pattern, _ = tiffs8
    missing = tmp_path / "frame_%06d.tif"
    assert_one_error_line(sritm("convert", missing, "-o", tmp_path / "o_%06d.tif", "--baseline"), "convert",
                          f"{missing}: no file matches")
    with pytest.raises(MissingFileError):
        convert.convert(missing, tmp_path / "o.mkv", baseline=True)
    assert_one_error_line(sritm("convert", pattern, "-o", tmp_path / "no" / "o_%06d.tif", "--baseline"), "convert",
                          "o_%06d.tif", "does not exist")
    assert_one_error_line(sritm("convert", pattern, "-o", pattern, "--baseline"), "convert", "is the input sequence")
    gap, _ = write_tiffs(tmp_path / "gap", np.uint8)
    os.remove(sequences.frame_name(gap, FIRST + 1))
    assert_one_error_line(sritm("convert", gap, "-o", tmp_path / "o_%06d.tif", "--baseline"), "convert",
                          gap, f"in_{FIRST + 1:06d}.tif is missing")
    assert sorted(os.listdir(tmp_path)) == ["gap"]
