"""Full int8 keeps colour: SMPTE bars, flat fields and the primaries and secondaries
against float32, through LiteRT (`--precision int8`) and the exported TFLite file; the
calibrated network is cached on disk; an int8 conversion prints nothing but its line."""
import os

import keras
import numpy as np
import pytest

from sritm_tf import build_deep_sritm, calibration, colour, engines, export, imageio, metrics
from sritm_tf.inference import TiledPredictor

from tests.helpers.media import ffmpeg
from tests.helpers.processes import sritm

SIZE = (136, 240)  # LR (h, w) of every test frame
MIN_DB = 42.0  # PQ R'G'B' PSNR against float32, on the bars and every flat field
FLATS = {"black": (0, 0, 0), "grey": (0.5, 0.5, 0.5), "white": (1, 1, 1), "red": (1, 0, 0), "green": (0, 1, 0),
         "blue": (0, 0, 1), "cyan": (0, 1, 1), "magenta": (1, 0, 1), "yellow": (1, 1, 0)}


@pytest.fixture(scope="module")
def bars_png(tmp_path_factory):
    """SMPTE RP 219 HD colour bars (ffmpeg's smptehdbars) at the LR test size, 8-bit RGB."""
    path = tmp_path_factory.mktemp("bars") / "bars.png"
    ffmpeg("-f", "lavfi", "-i", "smptehdbars=size=1920x1080", "-frames:v", 1,
           "-vf", f"scale={SIZE[1]}:{SIZE[0]}:flags=area", "-pix_fmt", "rgb24", path)
    return path


@pytest.fixture(scope="module")
def frames(bars_png):
    """{name: model Y'CbCr float32 [h, w, 3]}: the bars and the flat fields."""
    rgb = {"bars": imageio.read_sdr_image(str(bars_png)) / 255.0}
    rgb.update({name: np.broadcast_to(np.float64(c), SIZE + (3,)) for name, c in FLATS.items()})
    return {name: colour.sdr_rgb_to_model_yuv(image).astype(np.float32) for name, image in rgb.items()}


def psnr_pq(a, b):
    return metrics.psnr(colour.model_yuv_to_pq2020_rgb(a), colour.model_yuv_to_pq2020_rgb(b))


def tiny_network(seed=0):
    keras.utils.set_random_seed(seed)
    return build_deep_sritm(scale=2, channels=4, m=1, n=1, skip="classical")


def test_chart_has_bars_flats_primaries_and_ramps():
    images = calibration.chart_images((32, 64))
    assert all(i.shape == (32, 64, 3) and i.dtype == np.float32 and 0 <= i.min() <= i.max() <= 1 for i in images)
    flat = [tuple(map(float, i[0, 0])) for i in images if (i == i[0, 0]).all()]
    assert sorted(flat) == sorted(tuple(map(float, c)) for c in [(0, 0, 0), (.5, .5, .5), *calibration.BAR_COLOURS[:7]])
    bars = images[0]
    np.testing.assert_array_equal(bars[0, ::8], 0.75 * calibration.BAR_COLOURS)  # 75 % bars, BT.801 order
    frames = export.calibration_frames((32, 64))
    assert len(frames) == 8 + len(images) and all(f.shape == (32, 64, 3) for f in frames)


def test_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("SRITM_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert calibration.cache_dir() == tmp_path / "xdg" / "sritm_tf"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert calibration.cache_dir() == calibration.Path(os.path.expanduser("~")) / ".cache" / "sritm_tf"
    monkeypatch.setenv("SRITM_CACHE", str(tmp_path / "mine"))
    assert calibration.cache_dir() == tmp_path / "mine"


def test_cache_key_changes_with_the_weights_and_the_size():
    model = tiny_network()
    key = calibration.cache_key(model, (128, 224))
    assert key == calibration.cache_key(tiny_network(), (128, 224))  # same network, same key
    assert key != calibration.cache_key(model, (64, 224))
    weights = model.get_weights()
    weights[0] = weights[0] + np.float32(1e-3)
    model.set_weights(weights)
    assert key != calibration.cache_key(model, (128, 224))
    assert key != calibration.cache_key(build_deep_sritm(scale=2, channels=4, m=1, n=1, skip="classical",
                                                         white_nits=100.0), (128, 224))


@pytest.mark.slow
def test_int8_network_is_calibrated_once_and_rebuilt_when_damaged(monkeypatch, tmp_path):
    monkeypatch.setenv("SRITM_CACHE", str(tmp_path))
    calls = []
    convert = export.convert_tflite
    monkeypatch.setattr(export, "convert_tflite", lambda *a, **k: calls.append(a[1]) or convert(*a, **k))
    model = tiny_network()
    first = engines.litert_network(model, "int8")
    (path,) = tmp_path.iterdir()
    assert calls == ["int8"] and path.name.startswith(f"{model.name}-int8-") and path.suffix == ".tflite"
    assert engines.litert_network(model, "int8") == first and calls == ["int8"]  # read back, not calibrated
    path.write_bytes(path.read_bytes()[:1000])  # a truncated file
    assert engines.litert_network(model, "int8") == first and calls == ["int8", "int8"]
    assert path.read_bytes()[:-32] == first
    run = engines.runner(model, "litert", "int8")
    out = run(export.calibration_frames((16, 24))[9][None])  # the chart's flat black
    assert out.shape == (1, 32, 48, 3) and np.isfinite(out).all() and calls == ["int8", "int8"]


@pytest.fixture(scope="module")
def bundled():
    from sritm_tf.pretrained import load_model

    return load_model(2, precision="fp32")


@pytest.fixture(scope="module")
def cli_run(bars_png, tmp_path_factory):
    """`sritm convert --precision int8` of the bars with an empty cache: (process, cache folder, output)."""
    folder = tmp_path_factory.mktemp("int8cli")
    out = folder / "bars_hdr.png"
    process = sritm("convert", bars_png, "-o", out, "--precision", "int8", timeout=600,
                    env={"SRITM_CACHE": str(folder / "cache")})
    return process, folder / "cache", out


@pytest.mark.slow
def test_int8_conversion_prints_only_its_line(cli_run):
    process, cache, out = cli_run
    assert process.returncode == 0, process.stderr
    assert process.stderr == ""
    assert process.stdout.splitlines() == [f"wrote {out} (1 frame; network in int8 on litert: as asked)"]
    assert len(list(cache.glob("deep_sritm_x2-int8-*.tflite"))) == 1


@pytest.mark.slow
def test_litert_int8_keeps_colour(bundled, frames, cli_run, monkeypatch):
    monkeypatch.setenv("SRITM_CACHE", str(cli_run[1]))  # the CLI's calibrated network, read back
    run = engines.runner(bundled, "litert", "int8")
    quality = {name: psnr_pq(TiledPredictor(bundled, SIZE, run=run)(frame), TiledPredictor(bundled, SIZE)(frame))
               for name, frame in frames.items()}
    assert all(db >= MIN_DB for db in quality.values()), quality


@pytest.mark.slow
def test_exported_int8_tflite_keeps_colour(bundled, frames):
    interpreter = export.tflite_interpreter(export.convert_tflite(bundled, "int8", SIZE))
    quality = {name: psnr_pq(export.run_tflite(interpreter, frame), bundled(frame[None]).numpy()[0])
               for name, frame in frames.items()}
    assert all(db >= MIN_DB for db in quality.values()), quality
