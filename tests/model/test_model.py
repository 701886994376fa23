"""The Deep SR-ITM network: structure, parameter counts, custom layers, saving."""
import re

import numpy as np
import pytest
import tensorflow as tf

import keras
from sritm_tf import build_deep_sritm, build_toy_network, intermediate_model, transfer_weights
from sritm_tf.model import TABLE1, TABLE2, matched_channels
from sritm_tf.layers import BicubicUpsample, SelfGuidedFilter, bicubic_kernel

TINY = dict(channels=8, m=1, n=1)


def rand(shape, seed=0):
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


@pytest.mark.parametrize("scale,expected", [(2, 2.50e6), (4, 2.64e6)])
def test_parameter_count_matches_paper(scale, expected):
    count = build_deep_sritm(scale=scale).count_params()
    assert abs(count - expected) / expected < 0.01, count


def test_block_layout_follows_reference():
    model = build_deep_sritm(scale=2)
    names = [layer.name for layer in model.layers]
    for i in (1, 2, 3):
        assert f"base_rb{i}_conv2" in names and f"base_rmb{i}_mod_conv2" in names
        assert f"detail_rsmb{i}_mod_conv2" in names and f"detail_rsmb{i}_reduce" in names
    assert "detail_rsb1_reduce" in names and "detail_rsb2_reduce" in names
    assert "detail_rsb3_reduce" not in names and "base_rb4_conv1" not in names
    assert sum(n.startswith("fusion_rb") and n.endswith("_conv1") for n in names) == 10
    # RSMB_1 takes RB_1 of the base pass, RSB_1 takes RMB_1 (net_full.m wiring).
    concat_inputs = lambda name: [t.name for t in model.get_layer(name).input]
    assert model.get_layer("detail_rsmb1_concat").input[0] is model.get_layer("base_rb1_add").output
    assert model.get_layer("detail_rsb1_concat").input[0] is model.get_layer("base_rmb1_add").output
    assert len(concat_inputs("fusion_concat")) == 2
    # The sub-pixel head: 64 -> 256 channels, then the 3-channel output conv.
    assert model.get_layer("up_conv1").kernel.shape == (3, 3, 64, 256)
    assert model.get_layer("out_conv").kernel.shape == (3, 3, 64, 3)


def test_full_size_model_on_small_image():
    model = build_deep_sritm(scale=2)
    x = rand((1, 20, 28, 3))
    y = model(x).numpy()
    assert y.shape == (1, 40, 56, 3)
    assert np.isfinite(y).all()
    # Freshly initialised, the output is the bicubic skip plus a residual of the same order.
    bic = BicubicUpsample(2)(x).numpy()
    assert 0 < np.abs(y - bic).mean() < 1.0


@pytest.mark.parametrize("scale", [2, 4])
def test_tiny_model_shapes(scale):
    model = build_deep_sritm(scale=scale, **TINY)
    assert model(rand((2, 9, 13, 3))).shape == (2, 9 * scale, 13 * scale, 3)


def test_pretrain_network_has_same_names_without_modulation():
    full = build_deep_sritm(scale=2)
    pre = build_deep_sritm(scale=2, modulation=False)
    full_names = {l.name for l in full.layers if l.weights}
    pre_names = {l.name for l in pre.layers if l.weights}
    assert pre_names < full_names
    extra = full_names - pre_names
    assert extra and all("_mod_" in n or "_smf_" in n for n in extra)
    extra_params = sum(full.get_layer(n).count_params() for n in extra)
    assert pre.count_params() + extra_params == full.count_params()


def test_transfer_weights_copies_shared_layers_and_leaves_modulation():
    pre = build_deep_sritm(scale=2, modulation=False, **TINY)
    full = build_deep_sritm(scale=2, **TINY)
    for layer in pre.layers:  # make the pre-trained weights recognisable
        layer.set_weights([w + 1.0 for w in layer.get_weights()])
    before = {l.name: [w.copy() for w in l.get_weights()] for l in full.layers}
    copied = transfer_weights(pre, full)
    assert set(copied) == {l.name for l in pre.layers if l.weights}
    for layer in full.layers:
        if not layer.weights:
            continue
        if layer.name in copied:
            for a, b in zip(layer.get_weights(), pre.get_layer(layer.name).get_weights()):
                np.testing.assert_array_equal(a, b)
        else:
            assert "_mod_" in layer.name or "_smf_" in layer.name
            for a, b in zip(layer.get_weights(), before[layer.name]):
                np.testing.assert_array_equal(a, b)


def test_transfer_weights_rules_for_missing_and_mismatched_layers():
    """A layer only the source has, and a layer of another shape, raise by default; with
    "skip" they are left out and the target's layers keep their own weights."""
    def net(widths):
        x = inputs = keras.Input((2,))
        for name, width in widths.items():
            x = keras.layers.Dense(width, name=name)(x)
        return keras.Model(inputs, x)

    source = net({"same": 3, "wider": 5, "only_source": 4})
    target = net({"same": 3, "wider": 4, "only_target": 4})
    before = {l.name: [w.copy() for w in l.get_weights()] for l in target.layers if l.weights}
    with pytest.raises(ValueError, match="only_source"):
        transfer_weights(source, target, mismatched="skip")
    with pytest.raises(ValueError, match="wider"):
        transfer_weights(source, target, missing="skip")
    assert transfer_weights(source, target, missing="skip", mismatched="skip", exclude=("same",)) == []
    assert transfer_weights(source, target, missing="skip", mismatched="skip") == ["same"]
    for a, b in zip(target.get_layer("same").get_weights(), source.get_layer("same").get_weights()):
        np.testing.assert_array_equal(a, b)
    for name in ("wider", "only_target"):  # their own weights
        for a, b in zip(target.get_layer(name).get_weights(), before[name]):
            np.testing.assert_array_equal(a, b)


def test_unit_modulation_reduces_full_network_to_pretrain_network():
    """With every modulation map forced to 1 (Eq. 5), the full network computes
    exactly the pre-training network it was initialised from."""
    pre = build_deep_sritm(scale=2, modulation=False, **TINY)
    full = build_deep_sritm(scale=2, **TINY)
    transfer_weights(pre, full)
    x = rand((1, 12, 10, 3))
    assert np.abs(full(x).numpy() - pre(x).numpy()).max() > 1e-4  # modulation matters
    for layer in full.layers:
        if layer.name.endswith("_mod_conv2"):
            kernel, bias = layer.get_weights()
            layer.set_weights([np.zeros_like(kernel), np.ones_like(bias)])
    np.testing.assert_allclose(full(x).numpy(), pre(x).numpy(), atol=1e-6)


@pytest.mark.parametrize("scale", [2, 4])
def test_bicubic_upsample_equals_tf_image_resize(scale):
    x = rand((2, 15, 18, 3), seed=scale)
    layer = BicubicUpsample(scale)
    ours = layer(x).numpy()
    ref = tf.image.resize(x, (15 * scale, 18 * scale), method="bicubic").numpy()
    b = 2 * scale  # border pixels see a different extrapolation
    np.testing.assert_allclose(ours[:, b:-b, b:-b], ref[:, b:-b, b:-b], atol=1e-5)
    assert layer.count_params() == 0 and not layer.weights


def test_bicubic_kernel_values():
    k = bicubic_kernel(2, channels=1)[:, :, 0, :]  # (5, 5, 4), phases (ky, kx)
    # Phase 0 samples at -1/4 pixel: Keys a=-0.5 weights at distances 1.75, 0.75, 0.25, 1.25.
    w = np.array([-0.0234375, 0.2265625, 0.8671875, -0.0703125, 0.0])
    np.testing.assert_allclose(k[:, :, 0], np.outer(w, w), atol=1e-7)
    np.testing.assert_allclose(k[:, :, 3], np.outer(w[::-1], w[::-1]), atol=1e-7)
    np.testing.assert_allclose(k.sum(axis=(0, 1)), 1.0, atol=1e-6)


def _guided_filter_reference(img, r=5, eps=0.01):
    """He et al.'s guided filter, self-guided, MATLAB imfilter 'replicate' borders."""
    def box(a):
        p = np.pad(a, ((r // 2, r // 2), (r // 2, r // 2)), mode="edge")
        out = np.zeros_like(a)
        for dy in range(r):
            for dx in range(r):
                out += p[dy:dy + a.shape[0], dx:dx + a.shape[1]]
        return out / (r * r)
    out = np.empty_like(img)
    for c in range(img.shape[-1]):
        i = img[..., c].astype(np.float64)
        mean = box(i)
        var = box(i * i) - mean * mean
        a = var / (var + eps)
        b = mean - a * mean
        out[..., c] = box(a) * i + box(b)
    return out


def test_self_guided_filter_matches_reference():
    img = rand((1, 17, 23, 3), seed=3)
    img[0, 5:12, 4:15] *= 0.2  # an edge for the filter to keep
    ours = SelfGuidedFilter(size=5, eps=0.01)(img).numpy()[0]
    np.testing.assert_allclose(ours, _guided_filter_reference(img[0]), atol=2e-6)
    const = np.full((1, 8, 8, 3), 0.4, np.float32)
    np.testing.assert_allclose(SelfGuidedFilter()(const).numpy(), const, atol=1e-6)


def test_intermediate_model_exposes_named_tensors():
    model = build_deep_sritm(scale=2, **TINY)
    probe = intermediate_model(model)
    x = rand((1, 10, 12, 3), seed=4)
    out = probe(x)
    assert {"base_layer", "detail_layer", "base_conv1", "detail_conv1", "rmb1_modulation",
            "rsmb1_modulation", "fe_b", "fe_d", "y_f", "output"} <= set(out)
    np.testing.assert_allclose(out["output"], model(x), atol=1e-6)
    base = SelfGuidedFilter()(x).numpy()
    np.testing.assert_allclose(out["base_layer"], base, atol=1e-6)
    np.testing.assert_allclose(out["detail_layer"], x / (base + 1e-6), rtol=1e-5)
    assert out["rmb1_modulation"].shape == (1, 10, 12, 8)
    pre = intermediate_model(build_deep_sritm(scale=2, modulation=False, **TINY))
    assert "rmb1_modulation" not in pre.output and "fe_b" in pre.output


def test_keras_save_load_round_trip(tmp_path):
    model = build_deep_sritm(scale=4, **TINY)
    x = rand((1, 7, 9, 3), seed=5)
    path = tmp_path / "tiny.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())


# ---------------------------------------------------------------------------
# The toy network of Fig. 4 and the ablation variants (Tables 1-3)
# ---------------------------------------------------------------------------
def conv(k, c_in, c_out):
    """Weights and biases of a k x k convolution."""
    return k * k * c_in * c_out + c_out


def toy_count(c, blocks, passes, smf=None, scale=2):
    """Parameters of a toy network counted from its layout (Sec. 3.4, Fig. 4), not
    from the model: per pass an SMF (3 convs) on its SMF input, conv1 on its input,
    `blocks` blocks of 2 residual + 2 modulation convs, the detail pass's blocks 2..B
    with a 1x1 (2C -> C) after the skip concat; a 1x1 fusion over the passes; the
    sub-pixel head and the output conv."""
    channels = {"image": 3, "base": 3, "detail": 3}
    smf = smf or passes
    skips = any("base" in p and "detail" not in p for p in passes) and any(
        "detail" in p and "base" not in p for p in passes)
    total = 0
    for p, s in zip(passes, smf):
        c_in = sum(channels[x] for x in p)
        total += conv(3, sum(channels[x] for x in s), c) + 2 * conv(3, c, c)  # SMF
        total += conv(3, c_in, c) + blocks * 4 * conv(3, c, c)
        if skips and "detail" in p and "base" not in p:
            total += (blocks - 1) * conv(1, 2 * c, c)
    if len(passes) > 1:
        total += conv(1, len(passes) * c, c)
    total += conv(3, c, c) + conv(3, c, 4 * c) * (1 if scale == 2 else 2) + conv(3, c, 3)
    return total


def test_fig4_toy_network_by_hand():
    """C = 4, two blocks per pass: base pass 516 (SMF) + 220 (conv1) + 1184 (blocks),
    detail pass 516 + 220 + 592 + 628 (block 2 with its 1x1), fusion 36, head 740, out 111."""
    toy = build_toy_network(scale=2, channels=4, blocks=2)
    assert toy.count_params() == 4763 == toy_count(4, 2, TABLE1["d"])
    assert toy(rand((2, 9, 7, 3))).shape == (2, 18, 14, 3)
    # Skips: detail block j takes base block j - 1 (as net_full.m); the passes see [I, I_b], [I, I_d].
    assert toy.get_layer("image_detail_b2_concat").input[0] is toy.get_layer("image_base_b1_add").output
    assert toy.get_layer("image_base_conv1").kernel.shape == (3, 3, 6, 4)
    assert toy.get_layer("image_detail_smf_conv1").kernel.shape == (3, 3, 6, 4)
    assert toy.get_layer("image_base_b1_mod_conv2") and toy.get_layer("fusion_reduce").kernel.shape == (1, 1, 8, 4)
    assert toy.get_layer("hdr_yuv").input[1] is toy.get_layer("bicubic").output  # global residual
    assert toy.get_layer("image_base_b2_add").input[0] is toy.get_layer("image_base_b1_add").output  # local


@pytest.mark.parametrize("column", sorted(TABLE1))
def test_table1_variants_by_hand(column):
    toy = build_toy_network(scale=4, channels=4, blocks=3, passes=TABLE1[column])
    assert toy.count_params() == toy_count(4, 3, TABLE1[column], scale=4)
    assert toy(rand((1, 6, 5, 3))).shape == (1, 24, 20, 3)
    names = {layer.name for layer in toy.layers}
    assert ("guided_filter" in names) == (column != "a")
    assert any(re.fullmatch(r"detail_b\d_concat", n) for n in names) == (column in "ce")  # skip connections
    assert any(re.fullmatch(r"image_detail_b\d_concat", n) for n in names) == (column == "d")
    assert {f"{'_'.join(p)}_conv1" for p in TABLE1[column]} <= names
    assert ("fusion_reduce" in names) == (len(TABLE1[column]) > 1)


@pytest.mark.parametrize("column", sorted(TABLE2))
def test_table2_smf_inputs_by_hand(column):
    toy = build_toy_network(scale=2, channels=4, blocks=2, smf_inputs=TABLE2[column])
    assert toy.count_params() == toy_count(4, 2, TABLE1["d"], smf=TABLE2[column])
    width = {"a": 3, "b": 3, "c": 6}[column]
    assert toy.get_layer("image_base_smf_conv1").kernel.shape[2] == width
    assert toy(rand((1, 8, 8, 3))).shape == (1, 16, 16, 3)


@pytest.mark.slow
def test_table1_parameter_counts_are_matched():
    """Filters per variant: the count nearest column (d)'s (32 filters, 4 blocks,
    395,395 parameters); within 2.5 %, one filter more or less would be further."""
    target = toy_count(32, 4, TABLE1["d"])
    assert target == 395_395
    matched = {}
    for column, passes in TABLE1.items():
        c, count = matched_channels(target, lambda c: build_toy_network(channels=c, blocks=4, passes=passes))
        assert count == toy_count(c, 4, passes)
        assert abs(count - target) <= min(abs(toy_count(c + d, 4, passes) - target) for d in (-1, 1))
        assert abs(count - target) / target < 0.025, (column, c, count)
        matched[column] = (c, count)
    print("Table 1 filters / parameters:", matched)
    assert matched == {"a": (43, 387_304), "b": (43, 391_948), "c": (32, 391_939), "d": (32, 395_395),
                       "e": (27, 400_629)}


def test_toy_network_rejects_bad_passes():
    with pytest.raises(ValueError, match="pass input"):
        build_toy_network(passes=(("image", "edges"),))
    with pytest.raises(ValueError, match="one SMF input per pass"):
        build_toy_network(smf_inputs=(("image",),))


TABLE3 = {"a": (False, False, False), "b": (True, False, False), "c": (True, True, False),
          "d": (True, False, True), "e": (True, True, True)}


def test_table3_switch_parameter_counts_at_full_size():
    """Differences by hand at C = 64, m = 3: the 2m - 1 skip 1x1 convs (2C -> C); the
    modulation: 2 SMFs (6 -> C, C -> C, C -> C) and 2m (Conv, Conv) branches; the
    decomposition: the 3 extra input channels of both passes' conv1 (and SMFs)."""
    c, m = 64, 3
    full = 2_502_595
    skip_convs = (2 * m - 1) * conv(1, 2 * c, c)
    mod = 2 * (conv(3, 6, c) + 2 * conv(3, c, c)) + 2 * m * 2 * conv(3, c, c)
    gf = lambda inputs: inputs * 9 * 3 * c
    expected = {"a": full - skip_convs - mod - gf(2), "b": full - skip_convs - mod, "c": full - mod,
                "d": full - skip_convs, "e": full}
    counts = {}
    for column, (gf_on, skips, modulation) in TABLE3.items():
        counts[column] = build_deep_sritm(2, decomposition=gf_on, skips=skips, modulation=modulation).count_params()
    print("Table 3 parameters:", counts)
    assert counts == expected == {"a": 1_859_971, "b": 1_863_427, "c": 1_904_707, "d": 2_461_315, "e": 2_502_595}


@pytest.mark.parametrize("column", sorted(TABLE3))
@pytest.mark.parametrize("scale", [2, 4])
def test_table3_switches_build_and_shapes(column, scale):
    gf_on, skips, modulation = TABLE3[column]
    model = build_deep_sritm(scale, decomposition=gf_on, skips=skips, modulation=modulation, **TINY)
    y = model(rand((2, 9, 13, 3))).numpy()
    assert y.shape == (2, 9 * scale, 13 * scale, 3) and np.isfinite(y).all()
    names = {layer.name for layer in model.layers}
    assert ("guided_filter" in names) == gf_on
    assert ("detail_rsmb1_reduce" in names) == skips and ("detail_rsmb1_conv2" in names)
    assert ("base_smf_conv1" in names) == modulation
    assert model.get_layer("base_conv1").kernel.shape[2] == (6 if gf_on else 3)


def test_all_switches_on_is_the_default_network():
    default = build_deep_sritm(2, **TINY)
    switched = build_deep_sritm(2, decomposition=True, skips=True, modulation=True, **TINY)
    assert default.name == switched.name == "deep_sritm_x2"
    assert [(l.name, [w.shape for w in l.weights]) for l in default.layers] == \
        [(l.name, [w.shape for w in l.weights]) for l in switched.layers]
    switched.set_weights(default.get_weights())
    x = rand((1, 11, 10, 3), seed=7)
    np.testing.assert_array_equal(switched(x).numpy(), default(x).numpy())


def test_ablation_variant_config_round_trips():
    from sritm_tf.pretrained import model_config

    model = build_deep_sritm(2, decomposition=False, skips=False, **TINY)
    config = model_config(model)
    assert config["decomposition"] is False and config["skips"] is False
    assert "decomposition" not in model_config(build_deep_sritm(2, **TINY))
    rebuilt = build_deep_sritm(**config)
    assert rebuilt.name == "deep_sritm_x2_nogf_noskip" and rebuilt.count_params() == model.count_params()
