"""MAC counts of sritm_tf.flops against counts made by hand."""
import keras
import pytest

from sritm_tf import build_deep_sritm
from sritm_tf.flops import layer_macs, model_macs
from sritm_tf.layers import BicubicUpsample


def test_small_model_by_hand():
    image = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="a")(image)
    x = keras.layers.Conv2D(6, 1, strides=2, padding="valid", name="b")(x)
    x = keras.layers.Conv2D(6, 3, padding="same", groups=2, name="c")(x)
    up = BicubicUpsample(2, name="bicubic")(image)
    model = keras.Model(image, [x, up])
    counts = layer_macs(model, 5, 7)
    assert counts == {
        "a": 5 * 7 * 9 * 3 * 4,
        "b": 3 * 4 * 1 * 4 * 6,  # stride 2, valid: 5x7 -> 3x4
        "c": 3 * 4 * 9 * 3 * 6,  # 2 groups: 3 input channels per output
        "bicubic": 5 * 7 * 25 * 3 * 12,  # fixed 5x5 kernel, 3 -> 4 * 3 channels
    }


@pytest.mark.parametrize("scale", [2, 4])
def test_tiny_deep_sritm_by_hand(scale):
    h, w, c = 6, 10, 8
    lr = h * w
    # At LR: 20 convs 3x3 C->C (RBs, RMB/RSMB with their modulation convs, SMF 2-3,
    # fusion conv, up_conv0), 4 convs 3x3 6->C (base/detail conv1, both SMF conv1),
    # 2 convs 1x1 2C->C (RSMB reduce, fusion reduce), up_conv1 3x3 C->4C.
    expected = lr * (20 * 9 * c * c + 4 * 9 * 6 * c + 2 * 2 * c * c + 9 * c * 4 * c)
    if scale == 4:
        expected += 4 * lr * 9 * c * 4 * c  # up_conv2 at 2x
    expected += scale**2 * lr * 9 * c * 3  # out_conv at HR
    expected += lr * 25 * 3 * 3 * scale**2  # bicubic
    model = build_deep_sritm(scale=scale, channels=c, m=1, n=1)
    assert model_macs(model, h, w) == expected


def test_full_model_macs_per_pixel_near_parameter_count():
    # Every weight of an LR-grid conv is used once per LR pixel, so MACs per LR pixel
    # are the LR-grid parameter count plus the HR out_conv and the fixed bicubic.
    model = build_deep_sritm(scale=2)
    per_pixel = model_macs(model, 16, 16) / 256
    out_conv = 4 * 9 * 64 * 3
    bicubic = 25 * 3 * 12
    biases = sum(layer.bias.shape[0] for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
    assert per_pixel == model.count_params() - biases - 9 * 64 * 3 + out_conv + bicubic
