"""Multiply-accumulate counts of a Keras model at a given input size.

Counts the convolutions, which hold nearly all of Deep SR-ITM's arithmetic:

    Conv2D:          H_out * W_out * kh * kw * (C_in / groups) * C_out
    BicubicUpsample: the same formula for its fixed 5x5 kernel, C -> s^2 C,
                     on the input grid (the skip of Eq. 12)

Element-wise layers (ReLU, Add, Multiply, the guided filter's box means) cost
a few operations per value and are left out, so achieved GFLOP/s computed
from these counts slightly understates the work done. FLOPs = 2 * MACs.
"""
import keras

from sritm_tf.layers import BicubicUpsample


def conv_macs(out_height, out_width, kernel_height, kernel_width, in_channels, out_channels):
    """MACs of one 2-D convolution: H_out * W_out * kh * kw * C_in * C_out."""
    return out_height * out_width * kernel_height * kernel_width * in_channels * out_channels


def _at_size(model, height, width, batch=1):
    """A clone of `model` on a fixed (batch, height, width, C) input, so that every
    layer's output has a static shape. Weights are not copied (not needed)."""
    channels = model.input.shape[-1]
    inputs = keras.Input(batch_shape=(batch, height, width, channels))
    return keras.models.clone_model(model, input_tensors=inputs)


def layer_macs(model, height, width):
    """{layer name: MACs} of the convolutions of `model` for one `height` x `width` input."""
    fixed = _at_size(model, height, width)
    counts = {}
    for layer in fixed.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, h_out, w_out, c_out = layer.output.shape
            kh, kw = layer.kernel_size
            c_in = layer.input.shape[-1] // layer.groups
            counts[layer.name] = conv_macs(h_out, w_out, kh, kw, c_in, c_out)
        elif isinstance(layer, BicubicUpsample):
            _, h_in, w_in, c_in = layer.input.shape
            taps, _, _, c_out = layer.kernel.shape
            counts[layer.name] = conv_macs(h_in, w_in, taps, taps, c_in, c_out)
    return counts


def model_macs(model, height, width):
    """Total convolution MACs of `model` for one `height` x `width` input."""
    return sum(layer_macs(model, height, width).values())
