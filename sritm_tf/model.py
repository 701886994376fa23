"""Deep SR-ITM (Kim, Oh, Kim, ICCV 2019) as a Keras 3 functional model.

Layer names follow one scheme, shared by the pre-training network
(`modulation=False`) and the full network, so that weights move between them by
name (`transfer_weights`), as the reference's second training stage does:

    base_conv1, base_rb{i}_*, base_rmb{i}_*          base pass, Eq. (6)
    detail_conv1, detail_rb1_*, detail_rsmb{i}_*, detail_rsb{i}_*   Eq. (9)
    {base,detail}_smf_conv{1,2,3}                    shared modulation features
    {block}_mod_conv{1,2}                            per-block modulation, Eq. (5)
    fusion_*, fusion_rb{i}_*                         Eq. (10-11)
    up_conv*, out_conv, bicubic, hdr_yuv             Eq. (12)

Block ordering and skip wiring follow the authors' MatConvNet `net_full.m`: the
detail block at position k takes the base-pass output at position k-1 (the input
of the matching base block), concatenated as [base, detail].
"""
import keras
from keras import layers

from sritm_tf.layers import (BicubicUpsample, ChromaGate, ClassicalMapping, DepthToSpace, DetailLayer, PreActivationReLU,
                             SelfGuidedFilter)
from sritm_tf.precision import policy

SKIPS = ("bicubic", "classical")
CHROMA_GATE = 4 / 255  # `layers.ChromaGate`'s c0 in classical-skip networks

# Tensors the notebooks look at (paper Figs. 6 and 8): name -> layer name.
INTERMEDIATES = {
    "input": "sdr_yuv",
    "base_layer": "guided_filter",
    "detail_layer": "detail_layer",
    "base_conv1": "base_conv1",
    "detail_conv1": "detail_conv1",
    "rmb1_modulation": "base_rmb1_mod_conv2",
    "rsmb1_modulation": "detail_rsmb1_mod_conv2",
    "fe_b": "base_features",
    "fe_d": "detail_features",
    "y_f": "fusion_features",
    "output": "hdr_yuv",
}


def _conv(filters, name, kernel_size=3, **kwargs):
    kwargs.setdefault("kernel_initializer", "glorot_uniform")
    return layers.Conv2D(filters, kernel_size, padding="same", name=name, **kwargs)


def _residual(x, channels, name):
    """ReLU, Conv, ReLU, Conv: the residual branch of Eq. (3)."""
    r = PreActivationReLU(name=f"{name}_relu1")(x)
    r = _conv(channels, f"{name}_conv1")(r)
    r = layers.ReLU(name=f"{name}_relu2")(r)
    return _conv(channels, f"{name}_conv2")(r)


def _modulate(residual, smf, channels, name):
    """Element-wise modulation of Eq. (5): residual * (Conv, ReLU, Conv)(SMF)."""
    if smf is None:
        return residual
    mod = _conv(channels, f"{name}_mod_conv1")(smf)
    mod = layers.ReLU(name=f"{name}_mod_relu")(mod)
    mod = _conv(channels, f"{name}_mod_conv2")(mod)
    return layers.Multiply(name=f"{name}_modulate")([residual, mod])


def res_block(x, channels, name, smf=None, out_name=None):
    """ResBlock, Eq. (3); with `smf`, the ResModBlock of Eq. (4-5)."""
    r = _modulate(_residual(x, channels, name), smf, channels, name)
    return layers.Add(name=out_name or f"{name}_add")([x, r])


def res_skip_block(x, skip, channels, name, smf=None, out_name=None):
    """ResSkipBlock, Eq. (7); with `smf`, the ResSkipModBlock of Eq. (8):
    [skip, x] -> ReLU -> 1x1 Conv -> Conv -> ReLU -> Conv (-> modulation), + x."""
    r = layers.Concatenate(name=f"{name}_concat")([skip, x])
    r = layers.ReLU(name=f"{name}_relu1")(r)
    r = _conv(channels, f"{name}_reduce", kernel_size=1)(r)
    r = _conv(channels, f"{name}_conv1")(r)
    r = layers.ReLU(name=f"{name}_relu2")(r)
    r = _conv(channels, f"{name}_conv2")(r)
    r = _modulate(r, smf, channels, name)
    return layers.Add(name=out_name or f"{name}_add")([x, r])


def shared_modulation_features(x, channels, name):
    """SMF: three (Conv, ReLU) of the pass input (Sec. 3.2)."""
    for i in (1, 2, 3):
        x = _conv(channels, f"{name}_smf_conv{i}")(x)
        x = layers.ReLU(name=f"{name}_smf_relu{i}")(x)
    return x


def decompose(image):
    """Eq. (1-2): base layer by self-guided filtering, detail = I / I_b; returns
    the base-pass input [I, I_b] and the detail-pass input [I, I_d]."""
    base = SelfGuidedFilter(size=5, eps=0.01, name="guided_filter", dtype="float32")(image)
    detail = DetailLayer(name="detail_layer", dtype="float32")([image, base])
    base_in = layers.Concatenate(name="base_input")([image, base])
    detail_in = layers.Concatenate(name="detail_input")([image, detail])
    return base_in, detail_in


def upsample_head(x, scale, channels, name="up"):
    """Eq. (12) up to the last conv: ReLU, Conv, ReLU, Conv(-> 4C), ReLU,
    depth-to-space (twice for x4)."""
    if scale not in (2, 4):
        raise ValueError(f"scale must be 2 or 4, got {scale}")
    x = PreActivationReLU(name=f"{name}_relu0")(x)
    x = _conv(channels, f"{name}_conv0")(x)
    x = layers.ReLU(name=f"{name}_relu1a")(x)
    for i in range(1 if scale == 2 else 2):
        x = _conv(4 * channels, f"{name}_conv{i + 1}")(x)
        x = layers.ReLU(name=f"{name}_relu{i + 1}b")(x)
        x = DepthToSpace(2, name=f"{name}_shuffle{i + 1}")(x)
    return x


def build_deep_sritm(scale=2, channels=64, m=3, n=10, modulation=True, skip="bicubic", white_nits=203.0,
                     white_input=False, precision=None, name=None, chroma_gate=CHROMA_GATE):
    """The Deep SR-ITM network of Fig. 3.

    Args:
        scale: 2 or 4.
        channels, m, n: filters per conv, ResBlock pairs per pass, fusion
            ResBlocks (the paper: 64, 3, 10).
        modulation: False builds the pre-training network (Fig. 3 without the
            modulation branches), whose layers carry the same names.
        skip: what the global residual of Eq. (12) is added to. "bicubic": the
            bicubic-upsampled input Y'CbCr, as in the paper. "classical": the
            classical conversion (`layers.ClassicalMapping`, BT.2408) of the
            bicubic-upsampled input, with the last conv initialised to zero, so
            the untrained network is the classical conversion and training
            learns corrections to it. Same parameter count either way.
        white_nits: the SDR reference white of the classical skip, cd/m2.
        white_input: with skip="classical", a second input "white_nits" (N, 1)
            sets the white level per sample (training across white levels).
        chroma_gate: with skip="classical", c0 of `layers.ChromaGate` on the
            residual (a neutral SDR pixel gets the classical, neutral chroma);
            0 or None: no gate. No parameters either way.
        precision: "fp32", or "bf16" for bfloat16 convolutions with float32
            weights, front end and output (`sritm_tf.precision`); None: Keras'
            global dtype policy.

    Returns:
        A keras.Model. Input: LR SDR, NHWC, full-range BT.709 Y'CbCr of
        gamma-encoded RGB, all channels in [0, 1] (chroma offset by 0.5).
        Output: `scale`x larger HDR, full-range BT.2020 NCL Y'CbCr of PQ-encoded
        RGB, same convention.
    """
    if skip not in SKIPS:
        raise ValueError(f"skip must be one of {SKIPS}, got {skip!r}")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy(precision) if precision else previous)
    try:
        return _build(scale, channels, m, n, modulation, skip, white_nits, white_input, name, chroma_gate)
    finally:
        keras.config.set_dtype_policy(previous)


def _build(scale, channels, m, n, modulation, skip, white_nits, white_input, name, chroma_gate=None):
    classical = skip == "classical"
    image = keras.Input((None, None, 3), name="sdr_yuv")
    base_in, detail_in = decompose(image)
    smf_b = shared_modulation_features(base_in, channels, "base") if modulation else None
    smf_d = shared_modulation_features(detail_in, channels, "detail") if modulation else None

    # Base pass, Eq. (6): conv, then m x (ResBlock, ResModBlock).
    x = _conv(channels, "base_conv1")(base_in)
    base_outputs = []
    for i in range(1, m + 1):
        x = res_block(x, channels, f"base_rb{i}")
        base_outputs.append(x)
        last = i == m
        x = res_block(x, channels, f"base_rmb{i}", smf=smf_b, out_name="base_features" if last else None)
        base_outputs.append(x)

    # Detail pass, Eq. (9): conv, ResBlock, then ResSkipMod / ResSkip alternating.
    y = _conv(channels, "detail_conv1")(detail_in)
    y = res_block(y, channels, "detail_rb1")
    for k in range(1, 2 * m):
        base_k = base_outputs[k - 1]
        last = k == 2 * m - 1
        i = k // 2 + 1
        if k % 2 == 1:
            y = res_skip_block(y, base_k, channels, f"detail_rsmb{i}", smf=smf_d,
                               out_name="detail_features" if last else None)
        else:
            y = res_skip_block(y, base_k, channels, f"detail_rsb{i - 1}")

    # Fusion, Eq. (10-11).
    z = layers.Concatenate(name="fusion_concat")([x, y])
    z = layers.ReLU(name="fusion_relu")(z)
    z = _conv(channels, "fusion_reduce", kernel_size=1)(z)
    z = _conv(channels, "fusion_conv")(z)
    for i in range(1, n + 1):
        z = res_block(z, channels, f"fusion_rb{i}", out_name="fusion_features" if i == n else None)
    if n == 0:
        z = layers.Identity(name="fusion_features")(z)

    # Reconstruction, Eq. (12): sub-pixel upsampling + bicubic-upsampled input.
    z = upsample_head(z, scale, channels)
    z = _conv(3, "out_conv", dtype="float32", **({"kernel_initializer": "zeros"} if classical else {}))(z)
    base = BicubicUpsample(scale, name="bicubic", dtype="float32")(image)
    inputs = image
    if classical and chroma_gate:
        z = ChromaGate(chroma_gate, name="classical_chroma_gate", dtype="float32")([z, base])
    if classical:
        mapping = ClassicalMapping(white_nits, name="classical", dtype="float32")
        if white_input:
            white = keras.Input((1,), name="white_nits")
            base, inputs = mapping([base, white]), [image, white]
        else:
            base = mapping(base)
    hdr = layers.Add(name="hdr_yuv", dtype="float32")([z, base])
    name = name or f"deep_sritm_x{scale}" + ("" if modulation else "_pretrain")
    return keras.Model(inputs, hdr, name=name)


def intermediate_model(model, names=None):
    """A model with the same input whose outputs are a dict of named intermediate
    tensors (see `INTERMEDIATES`), for the notebooks. Names whose layer the model
    lacks (e.g. modulation maps of a pre-training network) are left out."""
    names = names or list(INTERMEDIATES)
    present = {layer.name for layer in model.layers}
    outputs = {k: model.get_layer(INTERMEDIATES[k]).output for k in names if INTERMEDIATES[k] in present}
    return keras.Model(model.input, outputs, name=f"{model.name}_intermediates")


def transfer_weights(source, target):
    """Copies every layer's weights from `source` to the layer of the same name in
    `target` (pre-training network -> full network). Layers of `target` that
    `source` lacks (the modulation branches) keep their initialisation.
    Returns the names of the layers copied."""
    copied = []
    target_layers = {layer.name: layer for layer in target.layers}
    for layer in source.layers:
        if not layer.weights:
            continue
        if layer.name not in target_layers:
            raise ValueError(f"layer {layer.name!r} of {source.name} has no counterpart in {target.name}")
        target_layers[layer.name].set_weights(layer.get_weights())
        copied.append(layer.name)
    return copied


def build_toy_network(scale=2, channels=64, blocks=6, inputs="image", modulation=False, name=None):
    """The toy network of Fig. 4, for the ablations of Tables 1-3.

    `inputs`: "image" (I), "base" ([I, I_b]), "detail" ([I, I_d]); `modulation`:
    whether each ResBlock's residual is modulated by SMF of the input (Eq. 5).
    Conv, `blocks` ResBlocks, then the reconstruction of Eq. (12).
    """
    if inputs not in ("image", "base", "detail"):
        raise ValueError(f"inputs must be 'image', 'base' or 'detail', got {inputs!r}")
    image = keras.Input((None, None, 3), name="sdr_yuv")
    if inputs == "image":
        x_in = image
    else:
        base_in, detail_in = decompose(image)
        x_in = base_in if inputs == "base" else detail_in
    smf = shared_modulation_features(x_in, channels, "toy") if modulation else None
    x = _conv(channels, "toy_conv1")(x_in)
    for i in range(1, blocks + 1):
        x = res_block(x, channels, f"toy_rb{i}", smf=smf)
    x = upsample_head(x, scale, channels)
    x = _conv(3, "out_conv")(x)
    hdr = layers.Add(name="hdr_yuv")([x, BicubicUpsample(scale, name="bicubic")(image)])
    return keras.Model(image, hdr, name=name or f"toy_{inputs}{'_mod' if modulation else ''}_x{scale}")
