"""The Deep SR-ITM network: structure, parameter counts, custom layers, saving."""
import numpy as np
import pytest
import tensorflow as tf

import keras
from sritm_tf import build_deep_sritm, build_toy_network, intermediate_model, transfer_weights
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


@pytest.mark.parametrize("inputs,modulation", [("image", False), ("base", False), ("detail", True)])
def test_toy_network_variants(inputs, modulation):
    toy = build_toy_network(scale=2, channels=8, blocks=2, inputs=inputs, modulation=modulation)
    assert toy(rand((1, 8, 8, 3))).shape == (1, 16, 16, 3)
    names = {l.name for l in toy.layers}
    assert ("guided_filter" in names) == (inputs != "image")
    assert ("toy_rb1_mod_conv1" in names) == modulation
    first = toy.get_layer("toy_conv1").kernel.shape[2]
    assert first == (3 if inputs == "image" else 6)
