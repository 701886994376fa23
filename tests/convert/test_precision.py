"""bf16 / fp32 compute precision."""
import os

import numpy as np
import pytest

from sritm_tf import colour, precision, pretrained
from sritm_tf.model import build_deep_sritm


def test_resolve_reads_the_cpu_flags():
    assert precision.resolve("auto", {"avx512f", "amx_bf16", "amx_tile"}) == ("bf16", "the CPU has amx_bf16")
    assert precision.resolve("auto", {"avx512f", "avx512_bf16"})[0] == "bf16"
    assert precision.resolve("auto", {"avx2", "fma"}) == ("fp32", "the CPU has no bfloat16 units")
    assert precision.resolve("fp32", {"amx_bf16"}) == ("fp32", "as asked")
    with pytest.raises(ValueError, match="precision must be one of"):
        precision.resolve("int4")


def test_auto_takes_bf16_on_a_tensorflow_gpu_of_compute_capability_8(monkeypatch):
    """The TensorFlow backend's GPUs count, not only JAX's (none here: list them as TF would)."""
    import tensorflow as tf

    gpu = tf.config.PhysicalDevice("/physical_device:GPU:0", "GPU")
    monkeypatch.setattr(precision, "nvidia_gpus", lambda: True)
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [gpu] if kind == "GPU" else [])
    for capability, expected in (((9, 0), "bf16"), ((8, 0), "bf16"), ((7, 5), "fp32")):
        monkeypatch.setattr(tf.config.experimental, "get_device_details",
                            lambda device, cc=capability: {"compute_capability": cc, "device_name": "test"})
        assert precision.resolve("auto", {"avx2"})[0] == expected, capability
    assert precision.resolve("auto", {"avx2"}) == ("fp32", "the CPU has no bfloat16 units")
    monkeypatch.setattr(tf.config.experimental, "get_device_details", lambda device: {"compute_capability": (9, 0)})
    assert precision.resolve("auto", {"avx2"}) == ("bf16", "TensorFlow on a GPU of compute capability 9.0")


def test_auto_does_not_start_tensorflow_on_a_machine_without_a_gpu():
    """The CLI resolves --precision among its argument checks, before TensorFlow's quiet start."""
    import subprocess
    import sys

    if precision.nvidia_gpus():
        pytest.skip("this machine has an NVIDIA GPU")
    code = ("import sys; from sritm_tf import precision; print(precision.resolve('auto', {'avx2'})[0], "
            "'tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "KERAS_BACKEND": "tensorflow"})
    assert out.stdout.split() == ["fp32", "False", "False"]
    assert out.stderr == ""


def test_bf16_network_keeps_float32_weights_front_end_and_output():
    model = build_deep_sritm(2, channels=8, m=1, n=1, skip="classical", precision="bf16")
    assert model.get_layer("base_conv1").compute_dtype == "bfloat16"
    for name in ("guided_filter", "detail_layer", "bicubic", "classical", "out_conv", "hdr_yuv"):
        assert model.get_layer(name).compute_dtype == "float32", name
    assert all(w.dtype == "float32" for w in model.weights)
    assert build_deep_sritm(2, channels=8, m=1, n=1).get_layer("base_conv1").compute_dtype == "float32"


@pytest.mark.slow
def test_bf16_bundled_model_matches_float32_closely():
    rgb = np.random.default_rng(0).random((1, 40, 56, 3))
    x = colour.sdr_rgb_to_model_yuv(rgb).astype(np.float32)
    fp32 = pretrained.load_model(2, precision="fp32")
    bf16 = pretrained.configure(fp32, precision="bf16")
    assert bf16 is not fp32 and pretrained.configure(bf16, precision="bf16") is bf16
    a = colour.model_yuv_to_pq2020_rgb(fp32.predict(x, verbose=0))
    b = colour.model_yuv_to_pq2020_rgb(bf16.predict(x, verbose=0))
    psnr = 10 * np.log10(1 / np.mean((a - b) ** 2))
    assert psnr > 50, psnr  # measured 67-68 dB on the graded frames
    assert not np.array_equal(a, b)  # it really ran in bfloat16
