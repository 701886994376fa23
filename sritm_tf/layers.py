"""Custom layers of Deep SR-ITM, written with `keras.ops` only.

They run on every Keras 3 backend (TensorFlow, JAX) and lower to TFLite built-in
ops: replicate padding is a concatenation of edge slices, box filters are average
pooling, bicubic upsampling is a fixed convolution followed by depth-to-space.
"""
import keras
import numpy as np
from keras import ops


def edge_pad(x, pad):
    """Replicate-pads the two spatial axes of an NHWC tensor by `pad` pixels."""
    if pad == 0:
        return x
    top, bottom = x[:, :1], x[:, -1:]
    x = ops.concatenate([top] * pad + [x] + [bottom] * pad, axis=1)
    left, right = x[:, :, :1], x[:, :, -1:]
    return ops.concatenate([left] * pad + [x] + [right] * pad, axis=2)


def box_filter(x, size):
    """Mean over a `size` x `size` window with replicate borders (MATLAB
    `imfilter(x, ones(size)/size^2, 'replicate')`, as the reference uses)."""
    return ops.average_pool(edge_pad(x, size // 2), size, strides=1, padding="valid")


@keras.saving.register_keras_serializable(package="sritm_tf")
class SelfGuidedFilter(keras.layers.Layer):
    """Base layer I_b of Eq. (1): the guided filter (He et al.) with the image as
    its own guide, per channel, box window `size` x `size`, regulariser `eps`.
    No gradient flows through it (the reference defines no backward pass)."""

    def __init__(self, size=5, eps=0.01, **kwargs):
        super().__init__(**kwargs)
        self.size = size
        self.eps = eps

    def call(self, x):
        x = ops.stop_gradient(x)
        mean = box_filter(x, self.size)
        var = box_filter(x * x, self.size) - mean * mean
        a = var / (var + self.eps)
        b = mean - a * mean
        return box_filter(a, self.size) * x + box_filter(b, self.size)

    def get_config(self):
        return {**super().get_config(), "size": self.size, "eps": self.eps}


@keras.saving.register_keras_serializable(package="sritm_tf")
class DetailLayer(keras.layers.Layer):
    """Detail layer I_d = I / (I_b + delta) of Eq. (2)."""

    def __init__(self, delta=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.delta = delta

    def call(self, inputs):
        image, base = inputs
        return image / (base + self.delta)

    def get_config(self):
        return {**super().get_config(), "delta": self.delta}


@keras.saving.register_keras_serializable(package="sritm_tf")
class PreActivationReLU(keras.layers.ReLU):
    """The ReLU that opens a pre-activation residual block (Eq. 3), on a tensor that
    also feeds the block's skip addition; written as max(x, 0).

    Numerically a ReLU. TensorFlow's grappler remapper tries to fuse a `Relu`
    into the convolution + bias + `Add` that produced its input even when that
    `Add` has a second consumer (the next block's skip), then fails for the whole
    graph ("Mutation::Apply error: fanout ... exist for missing node ...Add"), so
    no convolution of the network got its bias, ReLU or sum fused (oneDNN post-ops).
    A `Maximum` is not a fusion candidate: the remapper succeeds and fuses the rest.
    """

    def call(self, x):
        return ops.maximum(x, ops.cast(0, x.dtype))


def keys_cubic(u, a=-0.5):
    """Keys' cubic convolution kernel (a = -0.5, as MATLAB `imresize`)."""
    u = np.abs(u)
    near = (a + 2) * u**3 - (a + 3) * u**2 + 1
    far = a * u**3 - 5 * a * u**2 + 8 * a * u - 4 * a
    return np.where(u <= 1, near, np.where(u < 2, far, 0.0))


def bicubic_kernel(scale, channels=3, taps=5):
    """Conv kernel (taps, taps, channels, scale^2 * channels) whose output, after
    depth-to-space, is bicubic upsampling by `scale` with half-pixel centres.

    Output pixel s*i + k samples the input at i + (k + 0.5)/s - 0.5; its weights
    on inputs i-2 .. i+2 are Keys' cubic at those distances. The output channel
    order (ky, kx, c) is the one depth-to-space expects."""
    offsets = (np.arange(scale) + 0.5) / scale - 0.5
    reach = np.arange(taps) - taps // 2
    weights_1d = keys_cubic(offsets[:, None] - reach[None, :])  # (scale, taps)
    weights_1d /= weights_1d.sum(axis=1, keepdims=True)
    kernel = np.zeros((taps, taps, channels, scale, scale, channels), np.float32)
    for c in range(channels):
        kernel[:, :, c, :, :, c] = np.einsum("yi,xj->ijyx", weights_1d, weights_1d)
    return kernel.reshape(taps, taps, channels, scale * scale * channels)


@keras.saving.register_keras_serializable(package="sritm_tf")
class BicubicUpsample(keras.layers.Layer):
    """Bicubic upsampling by an integer `scale` (the skip of Eq. 12) as a fixed
    convolution plus depth-to-space, with replicate borders. Equals
    `tf.image.resize(x, (s*H, s*W), 'bicubic')` (Keys a = -0.5, half-pixel
    centres) without needing a TFLite Flex op. Holds no trainable weights."""

    def __init__(self, scale=2, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale

    def build(self, input_shape):
        self.channels = input_shape[-1]
        self.kernel = bicubic_kernel(self.scale, self.channels)

    def call(self, x):
        kernel = ops.convert_to_tensor(self.kernel, dtype=x.dtype)
        y = ops.conv(edge_pad(x, 2), kernel, strides=1, padding="valid")
        return ops.depth_to_space(y, self.scale)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        up = lambda d: None if d is None else d * self.scale
        return (n, up(h), up(w), c)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@keras.saving.register_keras_serializable(package="sritm_tf")
class DepthToSpace(keras.layers.Layer):
    """Sub-pixel shuffle (H, W, s^2 C) -> (sH, sW, C)."""

    def __init__(self, block_size=2, **kwargs):
        super().__init__(**kwargs)
        self.block_size = block_size

    def call(self, x):
        return ops.depth_to_space(x, self.block_size)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        s = self.block_size
        up = lambda d: None if d is None else d * s
        return (n, up(h), up(w), c // (s * s))

    def get_config(self):
        return {**super().get_config(), "block_size": self.block_size}


def _pointwise(x, matrix):
    """x @ matrix.T on the channel axis, as a 1x1 convolution (a TFLite CONV_2D)."""
    kernel = ops.convert_to_tensor(np.asarray(matrix, np.float32).T[None, None], dtype=x.dtype)
    return ops.conv(x, kernel, strides=1, padding="valid")


@keras.saving.register_keras_serializable(package="sritm_tf")
class YCbCrConverter(keras.layers.Rescaling):
    """The network's colour convention as one preprocessing layer (the role of
    keras-hub's `ImageConverter`), used by the tf.data pipeline, the SavedModel
    signatures and `ClassicalMapping`; `sritm_tf.colour` is its numpy oracle.

    Forward (`inverse=False`): R'G'B' x `scale` (e.g. 1/255 for uint8 codes) ->
    full-range Y'CbCr with Cb, Cr + 0.5, by the matrix of `standard` (BT.709-6
    items 3.2-3.3, or BT.2020-2 Table 4 NCL). Inverse: Y'CbCr with chroma + 0.5 ->
    R'G'B', clipped to [0, 1] when `clip`, x `scale`, and rounded to integer
    codes D = floor(scale E' + 0.5) when `round_codes` (BT.2100-2 Table 9).

    A `keras.layers.Rescaling` underneath, so it runs inside `tf.data` on any
    backend. Rank-4 inputs use a 1x1 convolution (a TFLite CONV_2D), others a
    tensordot (per-image tf.data elements). Holds no weights.
    """

    def __init__(self, standard="bt709", inverse=False, scale=1.0, clip=False, round_codes=False, **kwargs):
        super().__init__(scale=float(scale), offset=0.0, **kwargs)
        from sritm_tf import colour

        self.standard, self.inverse, self.clip, self.round_codes = standard, bool(inverse), bool(clip), bool(round_codes)
        matrix = colour._ycbcr_matrix(standard)
        self.matrix = (np.linalg.inv(matrix) if self.inverse else matrix).astype(np.float32)

    def _apply_matrix(self, x):
        b = self.backend
        matrix = b.cast(self.matrix.T, x.dtype)
        if len(x.shape) == 4:
            return b.nn.conv(x, b.numpy.reshape(matrix, (1, 1, 3, 3)), strides=1, padding="valid")
        return b.numpy.tensordot(x, matrix, 1)

    def call(self, inputs):
        b = self.backend
        x = b.cast(inputs, self.compute_dtype)
        offset = b.cast(np.array([0.0, 0.5, 0.5], np.float32), x.dtype)
        if not self.inverse:
            return self._apply_matrix(x * self.scale) + offset
        x = self._apply_matrix(x - offset)
        if self.clip:
            x = b.numpy.clip(x, 0.0, 1.0)
        x = x * self.scale
        return b.numpy.floor(x + 0.5) if self.round_codes else x

    def get_config(self):
        config = super().get_config()
        config.pop("offset")
        return {**config, "standard": self.standard, "inverse": self.inverse, "clip": self.clip,
                "round_codes": self.round_codes}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def pq_inverse_eotf(nits):
    """PQ inverse EOTF (SMPTE ST 2084 / BT.2100-2 Table 4) in `keras.ops`: cd/m2 -> E'.

    Written with constants that float16 holds exactly, so a float16-weight TFLite
    export keeps the curve: c2 = 2413/128 as 18 + 109/128, m2 = 2523/32 as the
    product of the powers 64 and 475/32, and Y = L / 10000 by division
    (m1 = 1305/8192, c1 = 107/128 and c3 = 299/16 are exact already).
    """
    from sritm_tf import colour

    y = ops.power(ops.maximum(nits, 0.0) / colour.PQ_PEAK, colour.PQ_M1)
    base = (colour.PQ_C1 + (18.0 * y + (109 / 128) * y)) / (1.0 + colour.PQ_C3 * y)
    return ops.power(base, 64.0) * ops.power(base, 475 / 32)


@keras.saving.register_keras_serializable(package="sritm_tf")
class ClassicalMapping(keras.layers.Layer):
    """The classical SDR -> HDR10 conversion of ITU-R BT.2408 (clause 5: SDR
    reference white at `white_nits`, 203 cd/m2 = HDR Reference White), pointwise,
    in the network's Y'CbCr convention, as `colour.sdr_to_hdr10_baseline` does:

    BT.709 Y'CbCr -> R'G'B' (BT.709-6 items 3.2-3.3), clipped to [0, 1] -> linear
    light by the BT.1886 power law (gamma 2.4, L_B = 0) x `white_nits` ->
    BT.2020 primaries (BT.2087-0) -> PQ (ST 2084) -> BT.2020 NCL Y'CbCr
    (BT.2020-2 Table 4), chroma + 0.5.

    Called on one tensor it uses `white_nits`; called on [tensor, white] it uses
    a per-sample white level of shape (N, 1) (training across white levels).
    No weights: the network's parameter count is the same with this skip.
    """

    def __init__(self, white_nits=203.0, gamma=2.4, **kwargs):
        super().__init__(**kwargs)
        self.white_nits = float(white_nits)
        self.gamma = float(gamma)
        self.to_rgb = YCbCrConverter("bt709", inverse=True, clip=True, dtype=self.dtype_policy, name="to_rgb709")
        self.to_yuv = YCbCrConverter("bt2020", dtype=self.dtype_policy, name="to_yuv2020")

    def call(self, inputs):
        from sritm_tf import colour

        if isinstance(inputs, (list, tuple)):
            x, white = inputs
            white = ops.reshape(ops.cast(white, x.dtype), (-1, 1, 1, 1))
        else:
            x, white = inputs, self.white_nits
        linear = ops.power(self.to_rgb(x), self.gamma) * white
        return self.to_yuv(pq_inverse_eotf(_pointwise(linear, colour.BT709_TO_BT2020)))

    def compute_output_shape(self, input_shape):
        return input_shape[0] if isinstance(input_shape, (list, tuple)) and isinstance(input_shape[0], (list, tuple)) else input_shape

    def get_config(self):
        return {**super().get_config(), "white_nits": self.white_nits, "gamma": self.gamma}


@keras.saving.register_keras_serializable(package="sritm_tf")
class ChromaGate(keras.layers.Layer):
    """Neutral stays neutral: the network's residual chroma is scaled by
    g = c^2 / (c^2 + c0^2), with c = |(Cb, Cr)| of the SDR input at that pixel
    (bicubic-upsampled BT.709 Y'CbCr, chroma offset removed); its luma is kept.

    Where the SDR has colour (c >> c0) the residual passes as it is; where it has
    none (c << c0, default 4/255: a few 8-bit code values of compression noise)
    the output's chroma is the classical conversion's, which maps a neutral input
    to a neutral output exactly. Called on [residual, sdr_yuv]. No weights.
    """

    def __init__(self, c0=4 / 255, **kwargs):
        super().__init__(**kwargs)
        self.c0 = float(c0)

    def call(self, inputs):
        residual, sdr = inputs
        chroma = sdr[..., 1:] - 0.5
        c2 = ops.sum(chroma * chroma, axis=-1, keepdims=True)
        gate = c2 / (c2 + self.c0 * self.c0)
        return ops.concatenate([residual[..., :1], residual[..., 1:] * gate], axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "c0": self.c0}


@keras.saving.register_keras_serializable(package="sritm_tf")
class ShadowGate(keras.layers.Layer):
    """Shadows stay classical: the network's residual luma is scaled by
    g = Y^2 / (Y^2 + y0^2), with Y the relative linear luminance of the SDR input at
    that pixel (bicubic-upsampled BT.709 Y'CbCr -> R'G'B' -> BT.1886 gamma 2.4 ->
    BT.709 luminance, BT.709-6 item 3.2); its chroma is kept.

    Below y0 (default 1/1000 of SDR white: BT.1886's "moderate" black level of
    0.1 cd/m2 under a 100 cd/m2 white) an 8-bit SDR grade holds little of the
    picture, so real grades disagree on what HDR it stands for; there the output
    is the classical conversion's luma, and above it the correction passes.
    Called on [residual, sdr_yuv]. No weights.
    """

    LUMINANCE = np.array([[0.2126, 0.7152, 0.0722]], np.float32)

    def __init__(self, y0=1e-3, gamma=2.4, **kwargs):
        super().__init__(**kwargs)
        self.y0, self.gamma = float(y0), float(gamma)
        self.to_rgb = YCbCrConverter("bt709", inverse=True, clip=True, dtype=self.dtype_policy, name="to_rgb709")

    def call(self, inputs):
        residual, sdr = inputs
        y = _pointwise(ops.power(self.to_rgb(sdr), self.gamma), self.LUMINANCE)
        y2 = y * y
        gate = y2 / (y2 + self.y0 * self.y0)
        return ops.concatenate([residual[..., :1] * gate, residual[..., 1:]], axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "y0": self.y0, "gamma": self.gamma}
