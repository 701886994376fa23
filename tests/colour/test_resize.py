"""MATLAB-style bicubic resize: a hand-derived case and properties of the filter."""
import numpy as np

from sritm_tf.data import resize


def test_hand_derived_downscale_of_four_samples():
    # imresize([1 2 3 4], 0.5, 'bicubic'): output 1 samples u = 1.5; kernel 0.5 cubic(0.5 d),
    # taps at 1-based positions -2..5 with cubic(1.75, 1.25, 0.75, 0.25) = (-3/128, -9/128,
    # 29/128, 111/128), normalised by their sum 2; symmetric padding folds positions
    # -2, -1, 0 onto 3, 2, 1 and 5 onto 4. Weights on x1..x4: 70/128, 51/128, 13/128, -6/128.
    weights = np.array([70, 51, 13, -6]) / 128
    matrix = resize.resize_matrix(4, 2, 0.5)
    np.testing.assert_allclose(matrix[0], weights, atol=1e-12)
    np.testing.assert_allclose(matrix[1], weights[::-1], atol=1e-12)
    out = resize.imresize(np.array([[1.0, 2, 3, 4]] * 4), 0.5)
    # MATLAB prints 1.4609 3.5391 for this input.
    np.testing.assert_allclose(out[0], [1.4609375, 3.5390625], atol=1e-12)


def test_weights_sum_to_one_and_kernel_widens_with_the_factor():
    for factor in (2, 4):
        matrix = resize.resize_matrix(64, 64 // factor, 1 / factor)
        np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-12)
        # Antialiased support (-2 factor, 2 factor): 4 * factor taps per interior output pixel.
        assert np.count_nonzero(np.abs(matrix[8]) > 1e-12) == 4 * factor
    wide = np.count_nonzero(resize.resize_matrix(64, 16, 0.25)[8])
    narrow = np.count_nonzero(resize.resize_matrix(64, 16, 0.25, antialias=False)[8])
    assert wide > 2 * narrow


def test_constant_image_stays_constant():
    image = np.full((40, 24, 3), 0.37)
    for factor in (2, 4):
        out = resize.downscale(image, factor)
        assert out.shape == (40 // factor, 24 // factor, 3)
        np.testing.assert_allclose(out, 0.37, atol=1e-12)


def test_linear_ramp_stays_linear_in_the_interior():
    ramp = np.tile(np.arange(1, 65, dtype=np.float64), (8, 1))  # value = 1-based column index
    for factor in (2, 4):
        out = resize.downscale(ramp, factor)[0]
        j = np.arange(1, out.size + 1)
        expected = j * factor + 0.5 * (1 - factor)  # the sampled position u_j
        interior = slice(2, -2)
        np.testing.assert_allclose(out[interior], expected[interior], atol=1e-9)


def test_downscale_undoes_bicubic_upscale_of_a_smooth_image():
    y, x = np.mgrid[0:48, 0:64] / 64.0
    smooth = 0.5 + 0.3 * np.sin(2 * np.pi * x) * np.cos(2 * np.pi * 0.7 * y)
    for factor in (2, 4):
        up = resize.imresize(smooth, factor)
        assert up.shape == (48 * factor, 64 * factor)
        back = resize.downscale(up, factor)
        assert np.max(np.abs(back - smooth)[4:-4, 4:-4]) < 0.01
        assert np.max(np.abs(back - smooth)) < 0.03


def test_size_must_be_a_multiple_of_the_factor():
    try:
        resize.downscale(np.zeros((10, 9)), 2)
    except ValueError as err:
        assert "9x10" in str(err)
    else:
        raise AssertionError("expected ValueError")
