import math

import cv2
import keras
import numpy as np
import pytest

from sritm_tf import colour, pretrained
from sritm_tf.inference import TiledPredictor, parse_tile, predict_tiled, receptive_margin, tile_bounds
from sritm_tf.model import build_deep_sritm

TOLERANCE = 1e-4


def sample_yuv():
    rgb = cv2.imread(pretrained.sample_path())[..., ::-1] / 255.0
    return colour.sdr_rgb_to_model_yuv(rgb).astype(np.float32)


def measured_radius(model, size=81):
    """Receptive radius in LR pixels, measured: a NaN at the centre of the input
    spreads to every output pixel that depends on it (NaN * 0 is NaN too)."""
    scale = model.get_layer("bicubic").scale
    x = np.random.default_rng(0).random((1, size, size, 3), np.float32)
    c = size // 2
    x[0, c, c] = np.nan
    rows = np.where(np.isnan(model(x).numpy()[0]).any(axis=(1, 2)))[0]
    return max(c * scale - rows.min(), rows.max() - (c * scale + scale - 1)) / scale


def whole(model, image):
    return model(image[None]).numpy()[0]


@pytest.fixture(scope="module")
def tiny_model():
    keras.utils.set_random_seed(2)
    return build_deep_sritm(scale=2, channels=8, m=1, n=1)


@pytest.fixture(scope="module")
def full_model():
    keras.utils.set_random_seed(3)
    return build_deep_sritm(scale=2)  # the real structure: 64 channels, m=3, n=10


@pytest.mark.parametrize("scale, m, n", [(2, 1, 1), (4, 1, 1), (2, 1, 0), (2, 2, 3)])
def test_margin_matches_measured_receptive_field(scale, m, n):
    keras.utils.set_random_seed(0)
    model = build_deep_sritm(scale=scale, channels=8, m=m, n=n)
    assert receptive_margin(model) == math.ceil(measured_radius(model))


def test_full_model_margin(full_model):
    # 4 (guided filter) + 36 LR 3x3 convs + 1/2 (HR conv), see sritm_tf.inference.
    assert measured_radius(full_model, size=101) == 40.5
    assert receptive_margin(full_model) == 41
    assert receptive_margin(build_deep_sritm(scale=4)) == 41


@pytest.mark.parametrize("tile", [(32, 48), (17, 23), (136, 40)])
def test_tiled_equals_whole_frame_on_sample(tiny_model, tile):
    image = sample_yuv()
    expected = whole(tiny_model, image)
    result = predict_tiled(tiny_model, image, tile=tile)
    assert result.shape == (272, 480, 3)
    assert np.abs(result - expected).max() <= TOLERANCE


@pytest.mark.slow
def test_tiled_equals_whole_frame_full_model(full_model):
    image = sample_yuv()[40:90, 100:170]  # 50 x 70, odd tile counts
    expected = whole(full_model, image)
    result = predict_tiled(full_model, image, tile=(41, 43))
    assert np.abs(result - expected).max() <= TOLERANCE


@pytest.mark.parametrize("tile", [(40, 56), (50, 1000)])
def test_windows_of_one_shape_give_the_same_frame(tiny_model, tile):
    # An engine that asks for one input shape gets it for every tile, border ones moved inside
    # the frame, and the frame it gives back is the whole-frame output.
    image = sample_yuv()
    shapes = []

    def run(x):
        shapes.append(x.shape)
        return tiny_model(x).numpy()

    run.same_shape = True
    got = TiledPredictor(tiny_model, tile, run=run)(image)
    margin = receptive_margin(tiny_model)
    assert set(shapes) == {(1, min(image.shape[0], tile[0] + 2 * margin), min(image.shape[1], tile[1] + 2 * margin), 3)}
    assert len(shapes) == len(tile_bounds(image.shape[0], tile[0])) * len(tile_bounds(image.shape[1], tile[1]))
    np.testing.assert_allclose(got, whole(tiny_model, image), atol=TOLERANCE)


def test_short_margin_is_detected(tiny_model):
    image = sample_yuv()[:64, :64]
    expected = whole(tiny_model, image)
    assert np.abs(predict_tiled(tiny_model, image, tile=16, margin=1) - expected).max() > 1e-3


@pytest.mark.parametrize("height, width", [(1, 1), (1, 9), (9, 1), (5, 7), (13, 2)])
def test_any_size(tiny_model, height, width):
    image = sample_yuv()[50:50 + height, 60:60 + width]
    result = TiledPredictor(tiny_model, tile=2)(image)
    assert result.shape == (2 * height, 2 * width, 3) and np.isfinite(result).all()
    assert np.abs(result - whole(tiny_model, image)).max() <= TOLERANCE


def test_a_tile_below_the_margin_is_rounded_up_and_said(tiny_model, caplog):
    margin = receptive_margin(tiny_model)
    with caplog.at_level("INFO", logger="sritm_tf"):
        predictor = TiledPredictor(tiny_model, tile=(1, margin + 3))
    assert predictor.tile == (margin, margin + 3)
    assert caplog.messages == [f"tile {margin + 3}x1 is smaller than the network's {margin}-pixel margin: "
                               f"tiles of {margin + 3}x{margin} used"]


def test_tile_bounds_and_parse():
    assert tile_bounds(10, 4) == [(0, 3), (3, 7), (7, 10)]
    assert tile_bounds(3, 540) == [(0, 3)]
    assert tile_bounds(1, 1) == [(0, 1)]
    assert parse_tile("960x540") == (540, 960) and parse_tile(256) == (256, 256) and parse_tile("64") == (64, 64)
    with pytest.raises(ValueError):
        parse_tile("0x5")
