"""Inference engines: each engine's output equals TensorFlow float32
within a stated tolerance on a real image, tiled exactly as `sritm convert` tiles."""
import numpy as np
import pytest

from sritm_tf import colour, engines, imageio, metrics, pretrained
from sritm_tf.errors import InputError
from sritm_tf.inference import TiledPredictor

TILE = (68, 80)  # LR; with the 41-pixel margins the 136x240 sample gives 6 tiles of 2 shapes


@pytest.fixture(scope="module")
def image_and_reference():
    rgb = imageio.read_sdr_image(pretrained.sample_path()) / 255.0
    yuv = colour.sdr_rgb_to_model_yuv(rgb).astype(np.float32)
    model = pretrained.load_model(2, precision="fp32")
    return model, yuv, TiledPredictor(model, TILE)(yuv)


def psnr_pq(a, b):
    return metrics.psnr(colour.model_yuv_to_pq2020_rgb(a), colour.model_yuv_to_pq2020_rgb(b))


@pytest.mark.slow
@pytest.mark.parametrize("engine, precision, min_db", [
    ("openvino", "fp32", 80.0),   # same float32 maths, other kernels
    ("openvino", "bf16", 48.0),   # bf16 convolutions (OpenVINO's own choice of float layers); 51.8 dB measured
    ("litert", "fp32", 80.0),
    pytest.param("litert", "int8", 42.0, marks=pytest.mark.slow),  # calibrated int8 (docs/benchmarks.md)
])
def test_engine_matches_tensorflow_float32(image_and_reference, engine, precision, min_db):
    if not engines.installed(engine):
        pytest.skip(f"{engine} is not installed")
    model, yuv, reference = image_and_reference
    run, shapes = engines.runner(model, engine, precision), []

    def counted(x):
        shapes.append(x.shape)
        return run(x)

    counted.same_shape = getattr(run, "same_shape", False)
    out = TiledPredictor(model, TILE, run=counted)(yuv)
    assert out.shape == reference.shape
    if getattr(run, "same_shape", False):  # LiteRT: one interpreter per frame size
        assert len(set(shapes)) == 1 and len(shapes) == 6
    else:
        assert len(set(shapes)) >= 2 and shapes == sorted(shapes)  # tiles of several shapes, grouped by shape
    assert psnr_pq(reference, out) > min_db


def test_resolve_picks_and_refuses():
    assert engines.resolve("tf", "bf16") == ("tf", "as asked")
    has_ov = engines.installed("openvino")
    assert engines.resolve("auto", "fp32")[0] == "tf"
    assert engines.resolve("auto", "int8")[0] == "litert"
    amx = "amx_bf16" in engines.cpu_flags()
    assert engines.resolve("auto", "bf16")[0] == ("openvino" if has_ov and amx else "tf")
    with pytest.raises(InputError, match="int8 runs on --engine litert or openvino, not tf"):
        engines.resolve("tf", "int8")
    with pytest.raises(InputError, match="not bf16"):
        engines.resolve("litert", "bf16")
    with pytest.raises(InputError, match="engine must be one of"):
        engines.resolve("onnx", "fp32")


def test_missing_engine_names_the_extra(monkeypatch):
    monkeypatch.setattr(engines, "installed", lambda engine: engine == "tf")
    with pytest.raises(InputError, match=r'pip install "sritm_tf\[openvino\]"'):
        engines.resolve("openvino", "fp32")
    assert engines.resolve("auto", "fp32")[0] == "tf"  # auto falls back to TensorFlow


@pytest.mark.slow
def test_cli_engine_litert_and_refusal(tmp_path, capsys):
    from sritm_tf import cli

    sample = pretrained.sample_path()
    code = cli.main(["convert", sample, "-o", str(tmp_path / "bad.png"), "--engine", "tf", "--precision", "int8"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "int8 runs on --engine litert or openvino" in err[0]
    assert not (tmp_path / "bad.png").exists()
    if not engines.installed("litert"):
        pytest.skip("ai-edge-litert is not installed")
    assert cli.main(["convert", sample, "-o", str(tmp_path / "o.png"), "--engine", "litert", "--precision", "fp32",
                     "--quiet"]) == 0
    ours = imageio.read_image(str(tmp_path / "o.png")).astype(int)
    tf_out = tmp_path / "tf.png"
    assert cli.main(["convert", sample, "-o", str(tf_out), "--precision", "fp32", "--quiet"]) == 0
    assert np.abs(ours - imageio.read_image(str(tf_out)).astype(int)).max() <= 65  # <= 1 ten-bit code
