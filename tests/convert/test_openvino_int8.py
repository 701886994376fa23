"""`--engine openvino --precision int8`: the network quantised by NNCF, the layers int8
loses kept float (`quantize.float_operations`), calibrated once and read back from the cache."""
import numpy as np
import pytest

from sritm_tf import engines, export, quantize
from sritm_tf.errors import InputError

MIN_DB = 42.0  # int8 against float32 on the bundled sample, PQ R'G'B': 43.3 dB measured


@pytest.fixture(scope="module")
def nncf():
    if not engines.installed("openvino"):
        pytest.skip("openvino is not installed")
    return pytest.importorskip("nncf")


def tiny_network():
    from sritm_tf.model import build_deep_sritm

    return build_deep_sritm(scale=2, channels=8, m=1, n=1, skip="classical")


def test_int8_without_nncf_names_the_extra(monkeypatch):
    monkeypatch.setattr(engines, "installed", lambda engine: True)
    monkeypatch.setattr(quantize, "installed", lambda: False)
    with pytest.raises(InputError, match=r'needs nncf: pip install "sritm_tf\[openvino\]"'):
        engines.resolve("openvino", "int8")
    assert engines.resolve("litert", "int8") == ("litert", "as asked")
    with pytest.raises(InputError, match="int8 runs on --engine litert or openvino, not tf"):
        engines.resolve("tf", "int8")


@pytest.mark.slow
def test_float_operations_are_not_quantised(nncf):
    model = tiny_network()
    network = engines.openvino_network(model)
    learned = quantize._convolutions(network, model)
    keep = quantize.float_operations(network, model)
    assert len(learned) == sum(layer.__class__.__name__ == "Conv2D" for layer in model.layers)
    assert {learned[name] for name in keep if name in learned} == set(quantize.FLOAT_CONVOLUTIONS)
    quantised = quantize.quantize(network, model, export.calibration_frames((16, 24)), float_ops=keep)
    fed = {}  # operation -> types of the operations feeding it
    for op in quantised.get_ordered_ops():
        fed[op.get_friendly_name()] = {v.get_node().get_type_name() for v in op.input_values()}
    assert all("FakeQuantize" not in fed[name] for name in keep)
    int8 = [name for name in learned if name not in keep]
    assert int8 and all("FakeQuantize" in fed[name] for name in int8)
    import openvino as ov

    quantised.reshape({0: [1, 16, 24, 3]})  # compiles: no quantised op left between float ones
    out = ov.Core().compile_model(quantised, "CPU")(export.calibration_frames((16, 24))[0][None])[0]
    assert out.shape == (1, 32, 48, 3) and np.isfinite(out).all()

@pytest.mark.slow
def test_int8_network_is_quantised_once(nncf, monkeypatch, tmp_path):
    monkeypatch.setenv("SRITM_CACHE", str(tmp_path))
    calls = []
    build = quantize.quantize
    monkeypatch.setattr(quantize, "quantize", lambda *a, **k: calls.append(1) or build(*a, **k))
    model = tiny_network()
    frame = export.calibration_frames((16, 24))[3][None]
    first = engines.runner(model, "openvino", "int8")(frame)
    (path,) = tmp_path.iterdir()
    assert calls == [1] and path.name.startswith(f"{model.name}-openvino-int8-") and path.suffix == ".ovir"
    again = engines.runner(model, "openvino", "int8")(frame)  # read back, not calibrated
    assert calls == [1] and np.array_equal(first, again) and first.shape == (1, 32, 48, 3)
    reference = model(frame).numpy()
    assert np.abs(first - reference).max() < 0.05


@pytest.mark.slow
def test_bundled_int8_is_close_to_float32(nncf):
    from sritm_tf import colour, imageio, metrics, pretrained
    from sritm_tf.inference import TiledPredictor

    model = pretrained.load_model(2, precision="fp32")
    yuv = colour.sdr_rgb_to_model_yuv(imageio.read_sdr_image(pretrained.sample_path()) / 255.0).astype(np.float32)
    reference = TiledPredictor(model, (68, 80))(yuv)
    out = TiledPredictor(model, (68, 80), run=engines.runner(model, "openvino", "int8"))(yuv)
    pq = colour.model_yuv_to_pq2020_rgb
    assert metrics.psnr(pq(reference), pq(out)) > MIN_DB
