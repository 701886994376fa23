"""A tiny classical-skip network whose residual is not zero, and graded pairs made with it at a
known white (`WHITE`): what `sritm calibrate` must find."""
import json

import cv2
import numpy as np
import pytest

WHITE = 420.0  # cd/m2: the white the pairs are graded at


def tiny_network(seed=0):
    """Deep SR-ITM at x2, 8 channels, m = n = 1, classical skip; its last conv random (not zero,
    as built), so that the residual it adds to the classical skip is not zero."""
    import keras

    from sritm_tf.model import build_deep_sritm

    keras.utils.set_random_seed(seed)
    model = build_deep_sritm(2, channels=8, m=1, n=1, skip="classical")
    kernel, bias = model.get_layer("out_conv").get_weights()
    rng = np.random.default_rng(seed)
    model.get_layer("out_conv").set_weights([rng.normal(0.0, 0.05, kernel.shape).astype(np.float32), bias])
    return model


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory):
    from sritm_tf.pretrained import save_weights_npz

    return save_weights_npz(tiny_network(), str(tmp_path_factory.mktemp("weights") / "tiny.npz"), dtype="float32")


@pytest.fixture(scope="session")
def graded_pairs(tmp_path_factory, tiny_weights):
    """Two 64x48 pairs whose HDR is the tiny network's output at `WHITE` (16-bit PNG)."""
    from sritm_tf import colour
    from sritm_tf.evaluate import make_lr, model_predictor
    from sritm_tf.pretrained import load_model

    from tests.helpers.records import smooth_image

    folder = tmp_path_factory.mktemp("graded")
    predict = model_predictor(load_model(2, tiny_weights, precision="fp32"))
    rng = np.random.default_rng(5)
    for i in range(2):
        sdr = smooth_image(rng, 48, 64, np.uint8)
        hdr = predict(make_lr(sdr / 255.0, 2), WHITE)
        cv2.imwrite(str(folder / f"shot{i}_sdr.png"), sdr[..., ::-1])
        cv2.imwrite(str(folder / f"shot{i}_hdr.png"), colour.quantize(hdr, 16)[..., ::-1])
    return folder


@pytest.fixture
def grade_file(tmp_path):
    """A grade file as `sritm calibrate` writes it, white 350 at x2."""
    path = tmp_path / "grade.json"
    path.write_text(json.dumps({"white_nits": 350.0, "scale": 2, "weights": "deep_sritm_x2", "pairs": []}))
    return path
