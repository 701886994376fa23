"""Interoperability with the authors' MatConvNet code (sooyekim/Deep-SR-ITM).

Sub-pixel upsampling orders the channels of the convolution before it differently:

  MatConvNet `SubPixel_Conv.m` (and PyTorch's `pixel_shuffle`): output channel
      c * s^2 + dy * s + dx goes to channel c at offset (dy, dx);
  TensorFlow `depth_to_space` (this package's `DepthToSpace`): channel
      (dy * s + dx) * C + c goes there.

`subpixel_channel_order` gives the permutation and `reorder_subpixel` applies it to a
convolution's kernel and bias, so weights trained in the reference's layout load
into `build_deep_sritm` (the up_conv layers) and back.

The bicubic skip of the reference is MATLAB `imresize` (mirrored borders); ours is a
fixed 5-tap convolution with replicated borders (`layers.BicubicUpsample`): equal
away from the outer two LR pixels of the frame, different on them.
"""
import numpy as np


def subpixel_channel_order(channels, scale, to="tensorflow"):
    """Index array `p` such that `weights[..., p]` turns a conv's output channels
    from the other layout into `to` ("tensorflow" or "matconvnet"), for `channels`
    output channels after the shuffle (s^2 C before it)."""
    c, dy, dx = np.meshgrid(np.arange(channels), np.arange(scale), np.arange(scale), indexing="ij")
    matconvnet = c * scale**2 + dy * scale + dx  # channel index in MatConvNet's layout
    tensorflow = (dy * scale + dx) * channels + c  # channel index in TF's layout
    order = np.empty(channels * scale**2, np.int64)
    if to == "tensorflow":
        order[tensorflow.ravel()] = matconvnet.ravel()
    elif to == "matconvnet":
        order[matconvnet.ravel()] = tensorflow.ravel()
    else:
        raise ValueError(f"to must be 'tensorflow' or 'matconvnet', got {to!r}")
    return order


def reorder_subpixel(kernel, bias, scale, to="tensorflow"):
    """(kernel, bias) of the convolution before a sub-pixel shuffle, output channels
    reordered into layout `to`. kernel: (kh, kw, C_in, s^2 C), bias: (s^2 C,)."""
    channels = kernel.shape[-1] // scale**2
    order = subpixel_channel_order(channels, scale, to)
    return kernel[..., order], bias[order]


def pixel_shuffle_matconvnet(x, scale):
    """MatConvNet's / PyTorch's sub-pixel shuffle of an NHWC array, in numpy:
    channel c * s^2 + dy * s + dx -> channel c at (s y + dy, s x + dx)."""
    n, h, w, cs = x.shape
    c = cs // scale**2
    x = x.reshape(n, h, w, c, scale, scale)
    return x.transpose(0, 1, 4, 2, 5, 3).reshape(n, h * scale, w * scale, c)
