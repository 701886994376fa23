"""TFLite export: built-in ops only, LiteRT runs every variant, parity with Keras."""
import keras
import numpy as np
import pytest

from sritm_tf import build_deep_sritm, colour
from sritm_tf.cli import main
from sritm_tf.export import (INT8_DITHER, INT8_DITHER_PERIOD, INT8_FLOAT_LAYERS, INT8_RELU_SLOPE, QUANTIZE_MODES,
                             SAMPLE_IMAGE, calibration_images, convert_tflite, export_tflite, int8_dithered,
                             int8_friendly_relus, int8_front_end, representative_frames, run_tflite,
                             tflite_interpreter, tflite_ops)
from sritm_tf.metrics import psnr

from tests.helpers.paths import SHARED_DATA

SIZE = (16, 24)
EXR = SHARED_DATA / "exr"


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return build_deep_sritm(scale=2, channels=8, m=1, n=1)


@pytest.fixture(scope="module")
def flatbuffers(model):
    """{quantize mode: bytes}; int8 calibrated on real crops of the bundled sample."""
    return {mode: convert_tflite(model, mode, SIZE) for mode in QUANTIZE_MODES}


@pytest.fixture(scope="module")
def frames():
    """Real test inputs: crops of the sample image, other than the calibration ones."""
    return np.stack(representative_frames(SIZE, count=4, seed=123))


def test_calibration_images_from_sdr_images_and_exr_stills(capsys):
    (sample,) = calibration_images()  # default: the bundled sample
    np.testing.assert_array_equal(sample, calibration_images([SAMPLE_IMAGE])[0])
    stills = sorted(EXR.glob("*.exr"))
    if not stills:
        pytest.skip(f"shared data not found: {EXR}")
    (still,) = calibration_images([min(stills, key=lambda p: p.stat().st_size)])
    assert still.ndim == 3 and still.min() >= 0.0 and still.max() <= 1.0 and still.std() > 0.01
    args = ["export", "--format", "tflite", "--quantize", "fp16", "--calibration", str(SAMPLE_IMAGE), "-o", "x.tflite"]
    assert main(args) == 2
    assert capsys.readouterr().err.strip() == "sritm export: error: --calibration: applies to --quantize int8 only"


def test_representative_frames_are_crops_of_the_sample():
    assert SAMPLE_IMAGE.exists()
    a = representative_frames(SIZE, count=3, seed=5)
    b = representative_frames(SIZE, count=3, seed=5)
    assert len(a) == 3 and all(f.shape == SIZE + (3,) and f.dtype == np.float32 for f in a)
    np.testing.assert_array_equal(a[0], b[0])
    rgb = colour.model_yuv_to_sdr_rgb(a[0])
    assert rgb.min() > -1e-4 and rgb.max() < 1 + 1e-4 and rgb.std() > 0.01  # real content
    codes = rgb * 255  # the sample is 8-bit and 136x240 > 16x24: crops are not resampled
    assert np.abs(codes - np.round(codes)).max() < 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("mode", QUANTIZE_MODES)
def test_builtin_ops_only(flatbuffers, mode):
    from ai_edge_litert import schema_py_generated as schema

    ops = tflite_ops(flatbuffers[mode])
    builtins = {k for k in vars(schema.BuiltinOperator) if not k.startswith("_")} - {"CUSTOM"}
    assert set(ops) <= builtins, f"non built-in ops in {mode}: {set(ops) - builtins}"
    assert {"CONV_2D", "DEPTH_TO_SPACE", "AVERAGE_POOL_2D"} <= set(ops)
    # The runtime agrees: no Flex or custom op among the nodes it executes.
    interpreter = tflite_interpreter(flatbuffers[mode])
    run_names = {op["op_name"] for op in interpreter._get_ops_details()}
    assert not [n for n in run_names if n.startswith("Flex") or n.startswith("CUSTOM")]


@pytest.mark.slow
@pytest.mark.parametrize("mode", QUANTIZE_MODES)
def test_fixed_float_io(flatbuffers, mode):
    interpreter = tflite_interpreter(flatbuffers[mode])
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert list(inp["shape"]) == [1, 16, 24, 3] and inp["dtype"] == np.float32
    assert list(out["shape"]) == [1, 32, 48, 3] and out["dtype"] == np.float32


def _max_error_and_psnr(flatbuffers, mode, model, frames):
    interpreter = tflite_interpreter(flatbuffers[mode])
    got = np.stack([run_tflite(interpreter, f) for f in frames])
    want = model(frames).numpy()
    return np.abs(got - want).max(), psnr(got, want)


@pytest.mark.slow
def test_fp32_equals_keras(flatbuffers, model, frames):
    error, _ = _max_error_and_psnr(flatbuffers, "none", model, frames)
    assert error <= 1e-4


def test_int8_dither_is_small_fixed_and_tiled_from_the_corner():
    zeros = np.zeros((1, 2 * INT8_DITHER_PERIOD + 5, INT8_DITHER_PERIOD + 7, 3), np.float32)
    dither = np.asarray(int8_dithered(zeros))
    assert dither.shape == zeros.shape and np.abs(dither).max() <= INT8_DITHER
    assert np.abs(dither).max() > 0.95 * INT8_DITHER and abs(dither.mean()) < 0.05 * INT8_DITHER
    np.testing.assert_array_equal(dither[:, :INT8_DITHER_PERIOD], dither[:, INT8_DITHER_PERIOD:2 * INT8_DITHER_PERIOD])
    np.testing.assert_array_equal(dither[:, :5, :7], np.asarray(int8_dithered(zeros[:, :5, :7])))
    ones = np.asarray(int8_dithered(zeros + 1))
    np.testing.assert_allclose(ones - 1, dither, atol=1e-6)


def test_int8_front_end_dithers_the_passes_not_the_classical_skip():
    keras.utils.set_random_seed(0)
    model = build_deep_sritm(scale=2, channels=8, m=1, n=1, skip="classical")
    copy = int8_front_end(model)
    flat = np.full((1, 24, 40, 3), 0.5, np.float32)
    assert np.asarray(copy.get_layer("bicubic")(flat)).std() < 1e-6  # the skip: undithered
    base = copy.get_layer("guided_filter")(flat)
    assert 1e-4 < np.asarray(base).std() < INT8_DITHER
    passes = np.asarray(copy.get_layer("base_input")([flat, base]))
    np.testing.assert_allclose(passes[..., :3], np.asarray(int8_dithered(flat)), atol=1e-7)
    assert np.asarray(model.get_layer("guided_filter")(flat)).std() < 1e-6  # the float network: not dithered


@pytest.mark.slow
def test_int8_dither_is_not_folded_into_a_constant_of_the_frame_size():
    keras.utils.set_random_seed(0)
    copy = int8_front_end(build_deep_sritm(scale=2, channels=4, m=1, n=1, skip="classical"))
    small, large = (len(convert_tflite(copy, "none", size)) for size in ((32, 32), (512, 512)))
    assert small == large  # a folded pattern alone would be 512 x 512 x 3 float32, 3 MB


@pytest.mark.slow
def test_fp16_close_to_keras(flatbuffers, model, frames):
    error, quality = _max_error_and_psnr(flatbuffers, "fp16", model, frames)
    assert 0 < error <= 2e-3 and quality > 70  # float16 weights: not bit-exact, but close


@pytest.mark.slow
def test_dynamic_range_close_to_keras(flatbuffers, model, frames):
    _, quality = _max_error_and_psnr(flatbuffers, "dynamic", model, frames)
    assert quality > 55


@pytest.mark.slow
def test_int8_runs_and_is_close(flatbuffers, model, frames):
    interpreter = tflite_interpreter(flatbuffers["int8"])
    details = interpreter.get_tensor_details()
    conv_outputs = [details[op["outputs"][0]] for op in interpreter._get_ops_details() if op["op_name"] == "CONV_2D"]
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    kept_float = [layer for layer in convs if layer.name in INT8_FLOAT_LAYERS]  # first and last convolutions
    assert len(kept_float) == 5
    # Really integer inside: every other convolution of the network runs in int8.
    assert sum(t["dtype"] == np.int8 for t in conv_outputs) == len(convs) - len(kept_float)
    # The residual streams' sums and the output stay float.
    add_outputs = [details[op["outputs"][0]] for op in interpreter._get_ops_details() if op["op_name"] == "ADD"]
    adds = [layer for layer in model.layers if isinstance(layer, keras.layers.Add)]
    assert len(adds) >= 3 and sum(t["dtype"] == np.float32 for t in add_outputs) >= len(adds)
    assert interpreter.get_output_details()[0]["dtype"] == np.float32
    _, quality = _max_error_and_psnr(flatbuffers, "int8", model, frames)
    assert quality > 38
    assert len(flatbuffers["int8"]) < len(flatbuffers["none"])


@pytest.mark.slow
def test_int8_friendly_relus_replace_only_the_unfusable_ones(flatbuffers, model, frames):
    copy = int8_friendly_relus(model)
    replaced = {layer.name for layer in copy.layers if isinstance(layer, keras.layers.LeakyReLU)}
    for layer in model.layers:
        if isinstance(layer, keras.layers.ReLU):
            producer = layer._inbound_nodes[0].input_tensors[0]._keras_history.operation
            assert (layer.name in replaced) == (not isinstance(producer, keras.layers.Conv2D)), layer.name
    assert {"base_rmb1_relu1", "detail_rsmb1_relu1", "up_relu0"} <= replaced  # after an Add: not fusable
    assert all(copy.get_layer(name).negative_slope == INT8_RELU_SLOPE for name in replaced)
    for a, b in zip(copy.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    # In float the copy differs from the network by a small fraction of int8's own error.
    int8_error, _ = _max_error_and_psnr(flatbuffers, "int8", model, frames)
    assert np.abs(np.asarray(copy(frames)) - np.asarray(model(frames))).max() < 0.25 * int8_error
    # The int8 file runs them as LEAKY_RELU nodes; the float files keep RELU.
    nodes = [op["op_name"] for op in tflite_interpreter(flatbuffers["int8"])._get_ops_details()]
    assert nodes.count("LEAKY_RELU") == len(replaced)
    assert "LEAKY_RELU" not in tflite_ops(flatbuffers["none"]) and "RELU" in tflite_ops(flatbuffers["none"])


@pytest.mark.slow
def test_export_file_and_cli(model, tmp_path, capsys):
    path = export_tflite(model, tmp_path / "x.tflite", "none", SIZE)
    assert path.read_bytes()[4:8] == b"TFL3"
    with pytest.raises(FileExistsError):
        export_tflite(model, path, "none", SIZE)

    weights = tmp_path / "tiny.keras"
    model.save(weights)
    out = tmp_path / "cli" / "fp16.tflite"
    args = ["export", "--format", "tflite", "--quantize", "fp16", "--input-size", "12x8",
            "--weights", str(weights), "-o", str(out)]
    assert main(args) == 2  # the output's folder must exist, as for convert
    assert "does not exist" in capsys.readouterr().err and not out.parent.exists()
    out.parent.mkdir()
    assert main(args) == 0
    interpreter = tflite_interpreter(out)
    assert list(interpreter.get_output_details()[0]["shape"]) == [1, 16, 24, 3]
    assert main(args) == 2
    assert main(args[:6] + ["8by12"] + args[7:] + ["--overwrite"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("sritm export: error: --input-size: expected WxH (width x height, positive) "
                       "such as 960x540, got '8by12'")
    assert sorted(p.name for p in out.parent.iterdir()) == ["fp16.tflite"]


TFLITE_SIZE = (16, 24)  # (h, w): small, so that full-int8 calibration stays fast


@pytest.fixture(scope="module")
def bundled_model():
    from sritm_tf.pretrained import load_model

    return load_model(2)


def _check_tflite_on_test_frames(model, mode, tolerance):
    calibration = representative_frames(TFLITE_SIZE, count=2)
    interpreter = tflite_interpreter(convert_tflite(model, mode, TFLITE_SIZE, calibration))
    flat = lambda y: np.broadcast_to(np.array([y, 0.5, 0.5], np.float32), TFLITE_SIZE + (3,))
    frames = {"black": flat(0.0), "white": flat(1.0), "grey": flat(0.5),
              "black, saturated chroma": np.broadcast_to(np.float32([0.0, 0.0, 1.0]), TFLITE_SIZE + (3,)),
              "real": representative_frames(TFLITE_SIZE, count=1, seed=123)[0]}
    for name, frame in frames.items():
        got = run_tflite(interpreter, frame)  # full int8 on black: no DIV by a quantised zero
        want = model(frame[None]).numpy()[0]
        assert np.isfinite(got).all(), name
        assert np.abs(got - want).max() <= tolerance, (name, np.abs(got - want).max())


@pytest.mark.slow
@pytest.mark.parametrize("mode", QUANTIZE_MODES)
def test_tflite_runs_on_black_white_grey_and_real_frames(mode):
    import keras

    from sritm_tf import build_deep_sritm

    keras.utils.set_random_seed(0)
    tolerance = {"none": 1e-5, "fp16": 2e-3, "dynamic": 0.01, "int8": 0.2}[mode]
    _check_tflite_on_test_frames(build_deep_sritm(scale=2, channels=8, m=1, n=1), mode, tolerance)


@pytest.mark.slow
def test_shipped_int8_tflite_runs_on_black_white_grey_and_real_frames(bundled_model):
    _check_tflite_on_test_frames(bundled_model, "int8", 0.25)
