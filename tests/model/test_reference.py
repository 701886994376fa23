"""The reference's sub-pixel weight layout."""
import numpy as np
import pytest
from keras import ops

from sritm_tf import reference


@pytest.mark.parametrize("channels, scale", [(3, 2), (64, 2), (5, 3)])
def test_reordered_conv_output_shuffles_like_the_reference(channels, scale):
    rng = np.random.default_rng(channels)
    x = rng.random((2, 4, 5, 7)).astype(np.float32)
    kernel = rng.standard_normal((1, 1, 7, channels * scale**2)).astype(np.float32)
    bias = rng.standard_normal(channels * scale**2).astype(np.float32)
    conv = lambda k, b: np.einsum("nhwi,io->nhwo", x, k[0, 0]) + b  # a 1x1 conv
    expected = reference.pixel_shuffle_matconvnet(conv(kernel, bias), scale)  # trained in MatConvNet's layout
    k_tf, b_tf = reference.reorder_subpixel(kernel, bias, scale, to="tensorflow")
    ours = np.asarray(ops.depth_to_space(conv(k_tf, b_tf), scale))
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)
    back = reference.reorder_subpixel(k_tf, b_tf, scale, to="matconvnet")
    np.testing.assert_array_equal(back[0], kernel)
    np.testing.assert_array_equal(back[1], bias)
    assert not np.array_equal(k_tf, kernel)  # the layouts really differ


def test_pixel_shuffle_matches_pytorch_semantics():
    x = np.arange(1 * 1 * 1 * 8).reshape(1, 1, 1, 8)  # C=2, s=2: channels c*4 + dy*2 + dx
    out = reference.pixel_shuffle_matconvnet(x, 2)
    np.testing.assert_array_equal(out[0, :, :, 0], [[0, 1], [2, 3]])
    np.testing.assert_array_equal(out[0, :, :, 1], [[4, 5], [6, 7]])
