"""Fault injection: bad inputs, bad argument values and broken peers get one clear
line naming the file or option, exit status 2, and leave no file behind (issue 13).

CLI cases run `sritm` as a subprocess, as a user would.
"""
import numpy as np
import pytest

from sritm_tf.export import QUANTIZE_MODES, convert_tflite, representative_frames, run_tflite, tflite_interpreter

TFLITE_SIZE = (16, 24)  # (h, w): small, so that full-int8 calibration stays fast


@pytest.fixture(scope="module")
def bundled_model():
    from sritm_tf.pretrained import load_model

    return load_model(2)


# ---------------------------------------------------------------------------
# 0: every exported TFLite variant runs on black, white, flat grey and a real frame
# ---------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("mode", QUANTIZE_MODES)
def test_tflite_runs_on_black_white_grey_and_real_frames(bundled_model, mode):
    calibration = representative_frames(TFLITE_SIZE, count=2)
    interpreter = tflite_interpreter(convert_tflite(bundled_model, mode, TFLITE_SIZE, calibration))
    flat = lambda y: np.broadcast_to(np.array([y, 0.5, 0.5], np.float32), TFLITE_SIZE + (3,))
    frames = {"black": flat(0.0), "white": flat(1.0), "grey": flat(0.5),
              "black, saturated chroma": np.broadcast_to(np.float32([0.0, 0.0, 1.0]), TFLITE_SIZE + (3,)),
              "real": representative_frames(TFLITE_SIZE, count=1, seed=123)[0]}
    tolerance = {"none": 1e-4, "fp16": 0.03, "dynamic": 0.03, "int8": 0.25}[mode]
    for name, frame in frames.items():
        got = run_tflite(interpreter, frame)  # full int8 used to fail on black: DIV by a quantised zero
        want = bundled_model(frame[None]).numpy()[0]
        assert np.isfinite(got).all(), name
        assert np.abs(got - want).max() <= tolerance, (name, np.abs(got - want).max())
