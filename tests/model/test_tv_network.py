"""The TV-class network (`--model tv`): the paper's structure within 300 GFLOP per 1080p -> 4K
frame, its shipped weights, `--model` on the commands, and its shipped full-int8 TFLite file."""
import os

import cv2
import numpy as np
import pytest

import sritm_tf
from sritm_tf import colour, imageio, presets, pretrained
from sritm_tf.commands.options import resolve_model
from sritm_tf.flops import model_macs
from sritm_tf.model import build_deep_sritm

from tests.helpers.processes import sritm

BUDGET_GFLOP = 300  # 20 int8 TOP/s at 50 % utilisation and 30 frames/s
INT8_FILE = "deep_sritm_tv_x2_int8.tflite"


@pytest.mark.parametrize("scale", [2, 4])
def test_tv_network_fits_the_budget_of_a_4k_frame(scale):
    """2 x the convolutions' MACs for the LR of a 3840x2160 frame, 35 times under the full network."""
    tv = build_deep_sritm(scale, skip="classical", **presets.MODELS["tv"])
    full = build_deep_sritm(scale, skip="classical", **presets.MODELS["full"])
    lr = (2160 // scale, 3840 // scale)
    tv_gflop, full_gflop = (2 * model_macs(m, *lr) / 1e9 for m in (tv, full))
    assert tv_gflop <= BUDGET_GFLOP and full_gflop / tv_gflop > 35
    assert tv.count_params() < 0.03 * full.count_params()


def test_model_tv_stands_for_its_weights_unless_weights_are_given():
    class Args:
        scale, model, weights = 4, "tv", None

    resolve_model(Args)
    assert Args.weights == pretrained.preset_weights_path("deep_sritm_tv_x4")
    Args.weights = "mine.npz"
    resolve_model(Args)
    assert Args.weights == "mine.npz"
    Args.model, Args.weights = "full", None
    resolve_model(Args)
    assert Args.weights is None


def test_tv_weights_improve_on_the_classical_conversion_of_the_sample():
    """The shipped TV network changes the classical conversion (its residual is not zero) and
    stays near the full network's output on the bundled sample (PQ R'G'B' PSNR)."""
    sdr = imageio.read_sdr_image(pretrained.sample_path()) / 255.0
    x = colour.sdr_rgb_to_model_yuv(sdr).astype(np.float32)[None]
    outputs = {}
    for name in ("deep_sritm_tv_x2", "deep_sritm_x2"):
        model = sritm_tf.from_preset(name)
        outputs[name] = colour.model_yuv_to_pq2020_rgb(np.asarray(model(x))[0])
    base = sritm_tf.build_deep_sritm(2, skip="classical")  # an untrained classical-skip network: the classical conversion
    classical = colour.model_yuv_to_pq2020_rgb(np.asarray(base(x))[0])
    tv, full = outputs["deep_sritm_tv_x2"], outputs["deep_sritm_x2"]
    assert np.abs(tv - classical).mean() > 2 / 1023  # more than two ten-bit codes on average
    assert np.mean((tv - full) ** 2) < 0.5 * np.mean((classical - full) ** 2)


@pytest.mark.slow  # three processes
def test_convert_with_model_tv_differs_from_full_and_weights_win(tmp_path):
    read = {}
    for name, extra in (("tv", ["--model", "tv"]), ("full", []),
                        ("tv_weights_full", ["--model", "tv", "--weights", pretrained.bundled_weights_path(2)])):
        out = tmp_path / f"{name}.png"
        sritm("convert", pretrained.sample_path(), "-o", out, "--precision", "fp32", *extra)
        read[name] = cv2.imread(str(out), cv2.IMREAD_UNCHANGED).astype(np.int64)
    assert read["tv"].shape == read["full"].shape == (272, 480, 3)
    assert np.abs(read["tv"] - read["full"]).max() > 64  # another network
    np.testing.assert_array_equal(read["tv_weights_full"], read["full"])


@pytest.mark.slow  # LiteRT on three 1920x1080 frames
def test_shipped_int8_tflite_is_builtin_int8_and_keeps_flat_fields():
    """The shipped file: TFLite built-in ops only, int8 convolutions, a 1920x1080 LR input, and on
    flat black, grey and white frames the float network's output within two ten-bit codes."""
    from ai_edge_litert.interpreter import Interpreter

    path = os.path.join(pretrained.WEIGHTS_DIR, INT8_FILE)
    interpreter = Interpreter(model_path=path, num_threads=2)
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert "CONV_2D" in ops and "QUANTIZE" in ops and not any(op.startswith(("Flex", "CUSTOM")) for op in ops)
    conv_inputs = [t for t in interpreter.get_tensor_details() if t["dtype"] == np.int8]
    assert len(conv_inputs) > 50
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    assert tuple(inp["shape"]) == (1, 1080, 1920, 3) and tuple(out["shape"]) == (1, 2160, 3840, 3)
    model = sritm_tf.from_preset("deep_sritm_tv_x2")
    for level in (0.0, 0.5, 1.0):
        x = colour.sdr_rgb_to_model_yuv(np.full((1080, 1920, 3), level)).astype(np.float32)[None]
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        got = colour.model_yuv_to_pq2020_rgb(interpreter.get_tensor(out["index"])[0])
        want = colour.model_yuv_to_pq2020_rgb(np.asarray(model(x[:, :64, :64]))[0])
        assert np.isfinite(got).all()
        assert np.abs(np.median(got, axis=(0, 1)) - want[64, 64]).max() < 2 / 1023, level
