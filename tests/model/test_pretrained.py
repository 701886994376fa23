import json

import cv2
import keras
import numpy as np
import pytest

from sritm_tf import colour, pretrained
from sritm_tf.model import build_deep_sritm

# Half a 10-bit code: below it, a stored-weight error can move an output code by at most one.
HALF_CODE = 0.5 / 1023


@pytest.fixture(scope="module")
def sample_yuv():
    rgb = cv2.imread(pretrained.sample_path())[..., ::-1] / 255.0
    return colour.sdr_rgb_to_model_yuv(rgb[:48, :64]).astype(np.float32)[None]


@pytest.fixture(scope="module")
def tiny_model():
    keras.utils.set_random_seed(1)
    return build_deep_sritm(scale=2, channels=8, m=1, n=1)


def test_npz_float32_round_trip_is_identical(tiny_model, sample_yuv, tmp_path):
    path = pretrained.save_weights_npz(tiny_model, str(tmp_path / "w.npz"), dtype="float32")
    loaded = pretrained.load_weights_npz(path)
    assert pretrained.model_config(loaded) == {"scale": 2, "channels": 8, "m": 1, "n": 1, "modulation": True,
                                             "skip": "bicubic"}
    for a, b in zip(tiny_model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(tiny_model(sample_yuv).numpy(), loaded(sample_yuv).numpy())


def test_npz_float16_round_trip_within_half_a_10bit_code(tiny_model, sample_yuv, tmp_path):
    # Each weight is rounded to float16 (relative error <= 2^-11); the output moves
    # by far less than half a 10-bit code, so quantised outputs differ by <= 1 code.
    path = pretrained.save_weights_npz(tiny_model, str(tmp_path / "w.npz"))
    with np.load(path) as data:
        assert data["base_conv1/0"].dtype == np.float16
        assert json.loads(str(data["config"]))["channels"] == 8
    loaded = pretrained.load_weights_npz(path)
    for a, b in zip(tiny_model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a.astype(np.float16).astype(np.float32), b)
    diff = np.abs(tiny_model(sample_yuv).numpy() - loaded(sample_yuv).numpy()).max()
    assert 0 < diff < HALF_CODE


def test_npz_keeps_x4_and_no_fusion_blocks(tmp_path):
    model = build_deep_sritm(scale=4, channels=4, m=2, n=0)
    loaded = pretrained.load_weights_npz(pretrained.save_weights_npz(model, str(tmp_path / "w.npz")))
    assert pretrained.model_config(loaded) == {"scale": 4, "channels": 4, "m": 2, "n": 0, "modulation": True,
                                             "skip": "bicubic"}
    assert loaded.count_params() == model.count_params()


def test_npz_with_missing_entry_is_refused(tiny_model, tmp_path):
    path = pretrained.save_weights_npz(tiny_model, str(tmp_path / "w.npz"))
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files if k != "out_conv/1"}
    np.savez(tmp_path / "broken.npz", **arrays)
    with pytest.raises(ValueError, match="out_conv/1"):
        pretrained.load_weights_npz(str(tmp_path / "broken.npz"))


def test_load_model_without_bundled_weights_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="deep_sritm_x4.npz"):
        pretrained.load_model(scale=4)


def test_load_model_reads_bundled_path_when_present(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", str(tmp_path))
    pretrained.save_weights_npz(tiny_model, str(tmp_path / "deep_sritm_x2.npz"))
    assert pretrained.model_config(pretrained.load_model(scale=2))["channels"] == 8


def test_load_model_formats(tiny_model, sample_yuv, tmp_path):
    assert pretrained.load_model(2, tiny_model) is tiny_model
    tiny_model.save(tmp_path / "m.keras")
    keras_model = pretrained.load_model(2, str(tmp_path / "m.keras"))
    np.testing.assert_array_equal(keras_model(sample_yuv).numpy(), tiny_model(sample_yuv).numpy())
    full = build_deep_sritm(scale=2)
    full.save_weights(tmp_path / "full.weights.h5")
    h5_model = pretrained.load_model(2, str(tmp_path / "full.weights.h5"))
    for a, b in zip(full.get_weights(), h5_model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_load_model_errors(tiny_model, tmp_path):
    path = pretrained.save_weights_npz(tiny_model, str(tmp_path / "w.npz"))
    with pytest.raises(ValueError, match="x2, not x4"):
        pretrained.load_model(4, path)
    with pytest.raises(FileNotFoundError, match="nothere.npz"):
        pretrained.load_model(2, str(tmp_path / "nothere.npz"))
    (tmp_path / "w.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match="unknown weights format"):
        pretrained.load_model(2, str(tmp_path / "w.bin"))


def test_bundled_sample_is_small_8bit_rgb():
    path = pretrained.sample_path()
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    assert image.dtype == np.uint8 and image.shape == (136, 240, 3)
    assert len(open(path, "rb").read()) < 100_000
    assert 20 < image.mean() < 235 and image.std() > 10  # a real picture, not a flat field
