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
                             SelfGuidedFilter, ShadowGate)
from sritm_tf.precision import policy

SKIPS = ("bicubic", "classical")
CHROMA_GATE = 4 / 255  # `layers.ChromaGate`'s c0 in classical-skip networks
SHADOW_GATE = 1e-3  # `layers.ShadowGate`'s y0 in classical-skip networks (BT.1886: 0.1 of 100 cd/m2)

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


def base_detail(image):
    """Eq. (1-2): the base layer I_b by self-guided filtering and the detail layer
    I_d = I / I_b; returns (I_b, I_d)."""
    base = SelfGuidedFilter(size=5, eps=0.01, name="guided_filter", dtype="float32")(image)
    detail = DetailLayer(name="detail_layer", dtype="float32")([image, base])
    return base, detail


def decompose(image):
    """Eq. (1-2): returns the base-pass input [I, I_b] and the detail-pass input [I, I_d]."""
    base, detail = base_detail(image)
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
                     white_input=False, precision=None, name=None, decomposition=True, skips=True,
                     chroma_gate=CHROMA_GATE, shadow_gate=SHADOW_GATE):
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
        shadow_gate: with skip="classical", y0 of `layers.ShadowGate` on the
            residual (below y0 of SDR white the output has the classical luma);
            0 or None: no gate. No parameters either way.
        precision: "fp32", or "bf16" for bfloat16 convolutions with float32
            weights, front end and output (`sritm_tf.precision`); None: Keras'
            global dtype policy.
        name: the model's name (default deep_sritm_x{scale}, plus _pretrain,
            _nogf, _noskip for the switches below that are off).
        decomposition, skips: the switches of the ablation of Table 3 (with
            `modulation`). decomposition=False drops the guided filter (Eq. 1-2):
            both passes and their SMFs take the image I alone (3 channels instead
            of 6 in their first conv). skips=False drops the base-to-detail skip
            connections: the detail pass's ResSkip(Mod)Blocks (Eq. 7-8) become
            Res(Mod)Blocks of Eq. (3-5), under the same names, without the concat
            and its 1x1 conv. Table 3 columns (a)-(e): all off; decomposition;
            decomposition + skips; decomposition + modulation; all on (the
            defaults, the exact network).

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
        return _build(scale, channels, m, n, modulation, skip, white_nits, white_input, name, decomposition, skips,
                      chroma_gate, shadow_gate)
    finally:
        keras.config.set_dtype_policy(previous)


def _build(scale, channels, m, n, modulation, skip, white_nits, white_input, name, decomposition, skips,
           chroma_gate=None, shadow_gate=None):
    classical = skip == "classical"
    image = keras.Input((None, None, 3), name="sdr_yuv")
    base_in, detail_in = decompose(image) if decomposition else (image, image)
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
        last = k == 2 * m - 1
        i = k // 2 + 1
        block, smf = (f"detail_rsmb{i}", smf_d) if k % 2 == 1 else (f"detail_rsb{i - 1}", None)
        out_name = "detail_features" if last else None
        if skips:
            y = res_skip_block(y, base_outputs[k - 1], channels, block, smf=smf, out_name=out_name)
        else:
            y = res_block(y, channels, block, smf=smf, out_name=out_name)

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
    if classical and shadow_gate:
        z = ShadowGate(shadow_gate, name="classical_shadow_gate", dtype="float32")([z, base])
    if classical:
        mapping = ClassicalMapping(white_nits, name="classical", dtype="float32")
        if white_input:
            white = keras.Input((1,), name="white_nits")
            base, inputs = mapping([base, white]), [image, white]
        else:
            base = mapping(base)
    hdr = layers.Add(name="hdr_yuv", dtype="float32")([z, base])
    off = [suffix for on, suffix in ((modulation, "_pretrain"), (decomposition, "_nogf"), (skips, "_noskip")) if not on]
    name = name or f"deep_sritm_x{scale}" + "".join(off)
    return keras.Model(inputs, hdr, name=name)


def intermediate_model(model, names=None):
    """A model with the same input whose outputs are a dict of named intermediate
    tensors (see `INTERMEDIATES`), for the notebooks. Names whose layer the model
    lacks (e.g. modulation maps of a pre-training network) are left out."""
    names = names or list(INTERMEDIATES)
    present = {layer.name for layer in model.layers}
    outputs = {k: model.get_layer(INTERMEDIATES[k]).output for k in names if INTERMEDIATES[k] in present}
    return keras.Model(model.input, outputs, name=f"{model.name}_intermediates")


def transfer_weights(source, target, missing="raise", mismatched="raise", exclude=()):
    """Copies the weights of each layer of `source` to the layer of the same name in
    `target`, as the reference's second stage starts the full network from the
    pre-training network. The rules:

    - a layer with weights that only `target` has (the modulation branches, or x4's
      second upsampling conv when the source is x2) keeps its initialisation;
    - a layer with weights that only `source` has: `missing="raise"` (ValueError) or
      `"skip"`;
    - a layer of both whose weights differ in shape (another channel count):
      `mismatched="raise"` (ValueError) or `"skip"` (the target's layer keeps its own);
    - layers named in `exclude` are not copied.

    Returns the names of the layers copied."""
    for rule in (missing, mismatched):
        if rule not in ("raise", "skip"):
            raise ValueError(f"expected 'raise' or 'skip', got {rule!r}")
    copied = []
    target_layers = {layer.name: layer for layer in target.layers if layer.weights}
    for layer in source.layers:
        if not layer.weights or layer.name in exclude:
            continue
        counterpart = target_layers.get(layer.name)
        if counterpart is None:
            if missing == "raise":
                raise ValueError(f"layer {layer.name!r} of {source.name} has no counterpart in {target.name}")
            continue
        weights = layer.get_weights()
        shapes, target_shapes = [w.shape for w in weights], [tuple(w.shape) for w in counterpart.weights]
        if shapes != target_shapes:
            if mismatched == "raise":
                raise ValueError(f"layer {layer.name!r}: weights of shapes {shapes} in {source.name}, "
                                 f"{target_shapes} in {target.name}")
            continue
        counterpart.set_weights(weights)
        copied.append(layer.name)
    return copied


# ---------------------------------------------------------------------------
# The toy network of Fig. 4 (Sec. 3.4) and the variants of Tables 1 and 2
# ---------------------------------------------------------------------------
TOY_COMPONENTS = ("image", "base", "detail")
FIG4_PASSES = (("image", "base"), ("image", "detail"))

# Table 1 (a)-(e): the passes of each toy variant, each pass given by the layers
# stacked (concatenated) as its input. Only (d) = Fig. 4 is fixed by the paper's
# figure; the other columns' order and contents, and Table 2's pairing of SMF
# inputs, are this package's reading of "1, 2 or 3 passes; image only, base /
# detail, stacked or not".
TABLE1 = {
    "a": (("image",),),                              # 1 pass: I
    "b": (("image", "base", "detail"),),             # 1 pass: [I, I_b, I_d] stacked
    "c": (("base",), ("detail",)),                   # 2 passes: I_b; I_d
    "d": FIG4_PASSES,                                # 2 passes: [I, I_b]; [I, I_d] (Fig. 4)
    "e": (("image",), ("base",), ("detail",)),       # 3 passes: I; I_b; I_d
}

# Table 2 (a)-(c): the inputs of SMF_b and SMF_d in the Fig. 4 network.
TABLE2 = {
    "a": (("image",), ("image",)),                   # SMF_b, SMF_d from I
    "b": (("base",), ("detail",)),                   # from I_b, I_d
    "c": FIG4_PASSES,                                # from [I, I_b], [I, I_d] (the pass inputs, as Fig. 4)
}


def _pass_name(components):
    return "_".join(components)


def _skip_passes(passes):
    """(source, target) pass indices of the base-to-detail skips: the pass that sees
    I_b but not I_d feeds the pass that sees I_d but not I_b; None when there is no
    such pair (one pass, or a stacked [I, I_b, I_d])."""
    source = [i for i, p in enumerate(passes) if "base" in p and "detail" not in p]
    target = [i for i, p in enumerate(passes) if "detail" in p and "base" not in p]
    return (source[0], target[0]) if source and target else None


def build_toy_network(scale=2, channels=32, blocks=4, passes=FIG4_PASSES, smf_inputs=None, modulation=True,
                      skips=True, name=None):
    """The toy network of Fig. 4 (Sec. 3.4), and its variants for Tables 1-2.

    Each pass is a Conv of its input followed by `blocks` residual blocks
    (local residuals, Eq. 3), the residual of each multiplied (Eq. 5) by
    (Conv, ReLU, Conv) of the pass's shared modulation features (SMF: three
    Conv + ReLU of `smf_inputs`) when `modulation`. With a base pass (input
    holding I_b, not I_d) and a detail pass (holding I_d, not I_b), the detail
    pass's block j >= 2 is a ResSkip(Mod)Block (Eq. 7-8) that takes the output
    of base block j - 1, as `net_full.m` wires the full network. More than one
    pass: their outputs are concatenated, ReLU, 1x1 Conv (Eq. 10). Then the
    reconstruction of Eq. (12): sub-pixel upsampling head, Conv to 3 channels,
    plus the bicubic-upsampled input (global residual).

    The paper shows the layout, not its sizes; `channels` = 32 and `blocks` = 4
    per pass are this package's choice, and so is modulating every block (the
    full network modulates every other one).

    Args:
        passes: one tuple per pass of the layers stacked as its input, from
            "image" (I), "base" (I_b, Eq. 1), "detail" (I_d, Eq. 2). Default: Fig. 4,
            [I, I_b] and [I, I_d]; `TABLE1` holds the variants of Table 1.
        smf_inputs: one tuple per pass, the layers its SMF sees (Table 2,
            `TABLE2`); default: the pass's own input.
        modulation, skips: False drops the modulation branches / the
            base-to-detail skips.
    """
    passes = tuple(tuple(p) for p in passes)
    smf_inputs = passes if smf_inputs is None else tuple(tuple(p) for p in smf_inputs)
    if not passes or len(smf_inputs) != len(passes):
        raise ValueError(f"need one SMF input per pass, got passes={passes}, smf_inputs={smf_inputs}")
    for p in passes + smf_inputs:
        if not p or set(p) - set(TOY_COMPONENTS):
            raise ValueError(f"a pass input is a tuple from {TOY_COMPONENTS}, got {p!r}")
    names = [_pass_name(p) for p in passes]
    if len(set(names)) != len(names):
        raise ValueError(f"passes must differ, got {passes}")

    image = keras.Input((None, None, 3), name="sdr_yuv")
    tensors = {"image": image}
    if any(c != "image" for p in passes + smf_inputs for c in p):
        tensors["base"], tensors["detail"] = base_detail(image)

    def stacked(components, name):
        if len(components) == 1:
            return tensors[components[0]]
        return layers.Concatenate(name=name)([tensors[c] for c in components])

    links = _skip_passes(passes) if skips else None
    order = list(range(len(passes)))
    if links:  # the base pass first: the detail pass takes its outputs
        order.remove(links[0])
        order.insert(0, links[0])
    block_outputs, features = {}, {}
    for i in order:
        pass_name = names[i]
        x_in = stacked(passes[i], f"{pass_name}_input")
        smf = None
        if modulation:
            smf_in = x_in if smf_inputs[i] == passes[i] else stacked(smf_inputs[i], f"{pass_name}_smf_input")
            smf = shared_modulation_features(smf_in, channels, pass_name)
        x = _conv(channels, f"{pass_name}_conv1")(x_in)
        outputs = []
        for j in range(1, blocks + 1):
            block = f"{pass_name}_b{j}"
            if links and i == links[1] and j >= 2:
                x = res_skip_block(x, block_outputs[links[0]][j - 2], channels, block, smf=smf)
            else:
                x = res_block(x, channels, block, smf=smf)
            outputs.append(x)
        block_outputs[i], features[i] = outputs, x

    z = features[0]
    if len(passes) > 1:
        z = layers.Concatenate(name="fusion_concat")([features[i] for i in range(len(passes))])
        z = layers.ReLU(name="fusion_relu")(z)
        z = _conv(channels, "fusion_reduce", kernel_size=1)(z)
    z = upsample_head(z, scale, channels)
    z = _conv(3, "out_conv")(z)
    hdr = layers.Add(name="hdr_yuv")([z, BicubicUpsample(scale, name="bicubic")(image)])
    return keras.Model(image, hdr, name=name or f"toy_{'__'.join(names)}_x{scale}")


def matched_channels(target, build):
    """The filter count c whose `build(c).count_params()` is nearest `target`, for
    matching the parameter counts of the Table 1 variants (the paper compares
    them at equal size). Every conv kernel has k^2 x c_in x c_out weights with
    c_in, c_out each a multiple of c or a constant, so the count is a quadratic
    a c^2 + b c + d: three builds (c = 1, 2, 3) fix it exactly. Returns
    (c, count at c)."""
    counts = [build(c).count_params() for c in (1, 2, 3)]
    a = (counts[2] - 2 * counts[1] + counts[0]) / 2
    b = counts[1] - counts[0] - 3 * a
    d = counts[0] - a - b
    root = (-b + (b * b - 4 * a * (d - target)) ** 0.5) / (2 * a)
    best = min({max(1, int(root)), int(root) + 1}, key=lambda c: abs(a * c * c + b * c + d - target))
    return best, int(round(a * best * best + b * best + d))
