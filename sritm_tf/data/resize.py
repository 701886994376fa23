"""Bicubic resizing with MATLAB `imresize` semantics (the downscaler of the Deep SR-ITM paper).

MATLAB's `imresize(I, 1/s, 'bicubic')` with antialiasing on (its default):
  * Keys cubic kernel with a = -0.5 (Keys 1981, eq. 15);
  * when shrinking by a factor `scale` < 1 the kernel is stretched by 1/scale,
    h(x) = scale * cubic(scale * x), so its support grows from 4 to 4/scale pixels;
  * output pixel j (1-based) samples input position u = j / scale + 0.5 (1 - 1/scale);
  * the weights of every output pixel are normalised to sum to 1;
  * out-of-range taps read the image mirrored with edge repetition ("symmetric").
Each axis is a matrix product, so an (H, W, C) image costs two small matmuls.
"""
import math

import numpy as np


def cubic(x):
    """Keys cubic convolution kernel with a = -0.5 (as MATLAB's `cubic`)."""
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    inner = 1.5 * ax3 - 2.5 * ax2 + 1
    outer = -0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2
    return np.where(ax <= 1, inner, np.where(ax <= 2, outer, 0.0))


def resize_matrix(in_size, out_size, scale, antialias=True):
    """(out_size, in_size) matrix M so that `M @ signal` is MATLAB's 1-D imresize.

    Follows MATLAB's `contributions()`: kernel width 4 (widened to 4 / scale when
    shrinking with antialiasing), symmetric border handling, weights normalised.
    """
    kernel_width = 4.0
    if scale < 1 and antialias:
        kernel = lambda x: scale * cubic(scale * x)  # noqa: E731
        kernel_width = kernel_width / scale
    else:
        kernel = cubic
    j = np.arange(1, out_size + 1, dtype=np.float64)
    u = j / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    taps = int(math.ceil(kernel_width)) + 2
    indices = left[:, None] + np.arange(taps)[None, :]  # 1-based input positions
    weights = kernel(u[:, None] - indices)
    weights = weights / weights.sum(axis=1, keepdims=True)
    # Symmetric padding: 1..n, n..1 repeated.
    mirror = np.concatenate([np.arange(in_size), np.arange(in_size)[::-1]])
    cols = mirror[np.mod(indices.astype(np.int64) - 1, 2 * in_size)]
    matrix = np.zeros((out_size, in_size))
    np.add.at(matrix, (np.repeat(np.arange(out_size), taps), cols.ravel()), weights.ravel())
    return matrix


def imresize(image, scale, antialias=True):
    """Resize an (H, W) or (H, W, C) float image by `scale` like MATLAB `imresize(..., 'bicubic')`.

    Output size is ceil(H * scale) x ceil(W * scale). Returns float64, unclipped:
    quantise (and clip) afterwards, as MATLAB does for integer inputs.
    """
    image = np.asarray(image, dtype=np.float64)
    height, width = image.shape[:2]
    rows = resize_matrix(height, int(math.ceil(height * scale)), scale, antialias)
    cols = resize_matrix(width, int(math.ceil(width * scale)), scale, antialias)
    out = np.tensordot(rows, image, axes=(1, 0))  # (h, W, ...)
    out = np.tensordot(cols, out, axes=(1, 1))  # (w, h, ...)
    return np.swapaxes(out, 0, 1)


def downscale(image, factor, antialias=True):
    """Bicubic downscale by an integer `factor` (2 or 4); H and W must be multiples of it."""
    height, width = image.shape[:2]
    if height % factor or width % factor:
        raise ValueError(f"image size {width}x{height} is not a multiple of {factor}")
    return imresize(image, 1.0 / factor, antialias)
