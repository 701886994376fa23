"""The classical skip, HDR10 mastering, white-anchored SDR and
on-the-fly training pairs."""
import json
import os

import numpy as np
import pytest

from sritm_tf import colour, evaluate, pretrained
from sritm_tf.convert import bicubic_upscale
from sritm_tf.data import augment, sdr_synthesis
from sritm_tf.data.sources import find_pairs
from sritm_tf.model import build_deep_sritm

from tests.helpers.paths import SHARED_DATA, needs_shared


def test_bt2390_eetf_keeps_lows_and_lands_on_the_target_peak():
    nits = np.array([0.0, 1.0, 50.0, 100.0, 203.0, 1000.0, 4000.0, 10000.0])
    out = colour.pq_eotf(colour.bt2390_eetf(colour.pq_inverse_eotf(nits), 10000.0, 1000.0))
    np.testing.assert_allclose(out[:5], nits[:5], rtol=1e-9)  # below the knee KS (~290 cd/m2)
    assert out[-1] == pytest.approx(1000.0) and np.all(np.diff(out) > 0) and out[5] < 1000.0
    same = colour.bt2390_eetf(colour.pq_inverse_eotf(nits), 1000.0, 1000.0)
    np.testing.assert_array_equal(same, colour.pq_inverse_eotf(nits))


def test_master_hdr10_never_exceeds_the_peak_and_keeps_hue():
    rng = np.random.default_rng(0)
    nits = rng.random((64, 3)) * np.array([[20000.0, 5000.0, 300.0]])
    out = colour.pq_eotf(colour.master_hdr10(nits, 1000.0))
    assert out.max() <= 1000.0 + 1e-6
    ratio_in = nits / nits.max(axis=1, keepdims=True)
    ratio_out = out / out.max(axis=1, keepdims=True)
    np.testing.assert_allclose(ratio_out, ratio_in, atol=1e-6)


def test_ictcp_round_trip_and_preview_range():
    rgb = np.random.default_rng(1).random((10, 3)) * 4000
    np.testing.assert_allclose(colour.ictcp_to_rgb2020(colour.rgb2020_to_ictcp(rgb)), rgb, rtol=1e-6, atol=1e-6)
    preview = colour.hdr10_preview(colour.pq_inverse_eotf(rgb))
    assert preview.min() >= 0 and preview.max() <= 1 and preview.max() < 1  # highlights not clipped flat


def test_knee_sdr_is_the_exact_inverse_of_the_classical_mapping_below_the_knee():
    sdr = np.random.default_rng(2).random((50, 3)) * 0.85  # below a knee of 0.9 in linear light
    hdr = colour.sdr_to_hdr10_baseline(sdr, 350.0)
    back = sdr_synthesis.knee(hdr, 350.0, knee=0.9, per_channel=True)
    np.testing.assert_allclose(back, sdr, atol=1e-9)
    assert sdr_synthesis.knee(colour.pq_inverse_eotf(np.full(3, 5000.0)), 203.0, 0.7).max() == 1.0


@pytest.mark.slow
def test_untrained_classical_network_is_the_classical_conversion():
    rgb = np.random.default_rng(3).random((1, 20, 24, 3))
    for white in (203.0, 480.0):
        model = build_deep_sritm(2, channels=8, m=1, n=1, skip="classical", white_nits=white)
        out = model.predict(colour.sdr_rgb_to_model_yuv(rgb).astype(np.float32), verbose=0)[0]
        expected = colour.sdr_to_hdr10_baseline(bicubic_upscale(rgb[0], 2), white)
        np.testing.assert_allclose(colour.model_yuv_to_pq2020_rgb(out), expected, atol=2e-5)
    assert (build_deep_sritm(2, skip="classical").count_params() == build_deep_sritm(2).count_params()
            == 2_502_595)
    assert build_deep_sritm(4, skip="classical").count_params() == 2_650_307


def test_chroma_gate_keeps_neutral_input_neutral_and_colour_corrections(tmp_path):
    """`layers.ChromaGate`: with a residual that adds colour everywhere, a neutral SDR
    input still comes out with the classical (neutral) chroma, a saturated one gets
    the residual's chroma almost whole; luma is corrected either way. No parameters."""
    from sritm_tf.layers import ChromaGate

    gated = build_deep_sritm(2, channels=8, m=1, n=1, skip="classical")
    plain = build_deep_sritm(2, channels=8, m=1, n=1, skip="classical", chroma_gate=0)
    assert "classical_chroma_gate" not in {layer.name for layer in plain.layers}
    assert gated.count_params() == plain.count_params()
    kernel, bias = gated.get_layer("out_conv").get_weights()
    for model in (gated, plain):
        model.get_layer("out_conv").set_weights([kernel, bias + np.array([0.01, 0.02, -0.02], np.float32)])
    grey = np.full((1, 12, 12, 3), 0.5)
    red = np.tile([0.9, 0.1, 0.1], (1, 12, 12, 1))
    for rgb, chroma_kept in ((grey, 0.0), (red, 1.0)):
        x = colour.sdr_rgb_to_model_yuv(rgb).astype(np.float32)
        classical = colour.pq2020_rgb_to_model_yuv(colour.sdr_to_hdr10_baseline(bicubic_upscale(rgb[0], 2), 203.0))
        out = gated.predict(x, verbose=0)[0]
        np.testing.assert_allclose(out[..., 0] - classical[..., 0], 0.01, atol=1e-4)  # luma corrected
        np.testing.assert_allclose(out[..., 1:] - classical[..., 1:],
                                   np.broadcast_to(chroma_kept * np.array([0.02, -0.02]), out[..., 1:].shape), atol=2e-3)
    assert ChromaGate.from_config(ChromaGate(0.02).get_config()).c0 == 0.02
    path = pretrained.save_weights_npz(plain, str(tmp_path / "plain.npz"), dtype="float32")
    assert "classical_chroma_gate" not in {layer.name for layer in pretrained.load_weights_npz(path).layers}


@pytest.mark.slow
def test_shadow_gate_keeps_the_classical_luma_below_a_thousandth_of_white(tmp_path):
    """`layers.ShadowGate`: the residual's luma is scaled by Y^2 / (Y^2 + y0^2), Y the SDR
    input's relative linear luminance (y0 = 1e-3): a near-black input keeps the classical
    luma, a mid-grey one gets the correction whole, chroma is left to the chroma gate;
    weights saved before the gate (no "shadow_gate" in their config) get it by default."""
    from sritm_tf.layers import ShadowGate

    gated = build_deep_sritm(2, channels=8, m=1, n=1, skip="classical", chroma_gate=0)
    plain = build_deep_sritm(2, channels=8, m=1, n=1, skip="classical", chroma_gate=0, shadow_gate=0)
    assert "classical_shadow_gate" not in {layer.name for layer in plain.layers}
    assert gated.count_params() == plain.count_params()
    kernel, bias = gated.get_layer("out_conv").get_weights()
    for model in (gated, plain):
        model.get_layer("out_conv").set_weights([kernel, bias + np.array([0.01, 0.02, -0.02], np.float32)])
    for code in (2.0, 10.0, 20.0, 128.0):
        rgb = np.full((1, 12, 12, 3), code / 255)
        x = colour.sdr_rgb_to_model_yuv(rgb).astype(np.float32)
        classical = colour.pq2020_rgb_to_model_yuv(colour.sdr_to_hdr10_baseline(bicubic_upscale(rgb[0], 2), 203.0))
        y = (code / 255) ** 2.4
        out = gated.predict(x, verbose=0)[0]
        np.testing.assert_allclose(out[..., 0] - classical[..., 0], 0.01 * y * y / (y * y + 1e-6), atol=1e-4)
        np.testing.assert_allclose(out[..., 1:] - classical[..., 1:],
                                   np.broadcast_to([0.02, -0.02], out[..., 1:].shape), atol=1e-4)
        np.testing.assert_allclose(plain.predict(x, verbose=0)[0][..., 0] - classical[..., 0], 0.01, atol=1e-4)
    assert 0.01 * (2 / 255) ** 4.8 / 1e-6 < 1e-5  # code 2: the correction is gone
    assert ShadowGate.from_config(ShadowGate(0.005).get_config()).y0 == 0.005
    path = pretrained.save_weights_npz(plain, str(tmp_path / "plain.npz"), dtype="float32")
    assert "classical_shadow_gate" not in {layer.name for layer in pretrained.load_weights_npz(path).layers}
    with np.load(path) as saved:  # a file from before the gate: no key in its config
        arrays = dict(saved)
    config = json.loads(str(arrays["config"]))
    del config["shadow_gate"]
    arrays["config"] = np.array(json.dumps(config))
    np.savez(tmp_path / "old.npz", **arrays)
    old = pretrained.load_weights_npz(str(tmp_path / "old.npz"))
    assert old.get_layer("classical_shadow_gate").y0 == 1e-3


@pytest.mark.slow
def test_per_sample_white_input_matches_the_fixed_white(tmp_path):
    rgb = np.random.default_rng(4).random((2, 16, 16, 3))
    x = colour.sdr_rgb_to_model_yuv(rgb).astype(np.float32)
    trained = build_deep_sritm(2, channels=8, m=1, n=1, skip="classical", white_input=True)
    trained.get_layer("out_conv").set_weights([w + 0.01 for w in trained.get_layer("out_conv").get_weights()])
    path = pretrained.save_weights_npz(trained, str(tmp_path / "w.npz"), dtype="float32")
    out = trained.predict({"sdr_yuv": x, "white_nits": np.array([[150.0], [420.0]])}, verbose=0)
    for i, white in enumerate((150.0, 420.0)):
        fixed = pretrained.load_weights_npz(path, white_nits=white)
        np.testing.assert_allclose(fixed.predict(x[i:i + 1], verbose=0)[0], out[i], atol=1e-5)
        again = pretrained.configure(fixed, 203.0)
        assert again.get_layer("classical").white_nits == 203.0


def test_training_pairs_are_mastered_and_sized():
    rng = np.random.default_rng(5)
    scene = np.exp(rng.normal(size=(120, 120, 3))) * 0.3
    scene[:10, :10] = 500.0  # a sun
    peaks = [augment.source_peak(scene)]
    x, white, y = augment.sample_batch([scene], peaks, rng, 12, 16, 2)
    assert x.shape == (12, 16, 16, 3) and y.shape == (12, 32, 32, 3) and white.shape == (12, 1)
    assert np.all((white >= augment.WHITE_RANGE[0]) & (white <= augment.WHITE_RANGE[1]))
    hdr_pq = colour.model_yuv_to_pq2020_rgb(y)
    assert colour.pq_eotf(hdr_pq).max() <= augment.PEAK_NITS * 1.01  # 10-bit rounding
    lr, hdr, w = augment.make_pair(scene[:32, :32], rng, 2, white_nits=300.0)
    assert lr.dtype == np.uint8 and lr.shape == (16, 16, 3) and w == 300.0 and hdr.shape == (32, 32, 3)
    # graphics_prob reaches make_pair: at 1 the first pair (same crop) differs by its graphics, the rest also by
    # the draws graphics consume; were it ignored, both batches would be equal
    plain = augment.sample_batch([scene], peaks, np.random.default_rng(9), 6, 16, 2, graphics_prob=0.0)
    keyed = augment.sample_batch([scene], peaks, np.random.default_rng(9), 6, 16, 2, graphics_prob=1.0)
    assert all(not np.array_equal(a, b) for a, b in zip(plain[0], keyed[0]))


def test_scene_codes_round_trip_within_a_quarter_percent():
    scene = np.geomspace(1e-5, 5e4, 300).reshape(100, 1, 3)
    back = augment.decode_scene(augment.encode_scene(scene))
    np.testing.assert_allclose(back, scene, rtol=2**(0.5 / augment.SCENE_STEPS_PER_STOP) - 1 + 1e-6)


@needs_shared("hdri/gainmap/seine_sdr_gainmap_srgb.jpg")
def test_eval_reads_gain_map_pairs_and_compares_at_the_same_white(tmp_path):
    os.symlink(SHARED_DATA / "hdri" / "gainmap" / "seine_sdr_gainmap_srgb.jpg", tmp_path / "seine.jpg")
    assert [p[0] for p in find_pairs(str(tmp_path))] == ["seine"]
    model = build_deep_sritm(2, channels=8, m=1, n=1, skip="classical")  # untrained = classical
    rows = evaluate.evaluate(str(tmp_path), 2, evaluate.model_predictor(model), crop=(96, 128), white_nits="auto")
    by = {r["method"]: r for r in rows}
    assert by["model"]["white"] == by["bt2408"]["white"] > 100
    assert by["model"]["psnr_pq"] == pytest.approx(by["bt2408"]["psnr_pq"], abs=0.05)
    assert set(k for k in by["model"] if k.startswith("de_") and k != "de_itp") == {
        f"de_{h}" for h in evaluate.HUE_SECTORS}
    assert "| seine | model |" in evaluate.format_table(rows)


@pytest.mark.slow
def test_float16_tflite_keeps_the_classical_pq_curve():
    """fp16 TFLite stores constants as float16: the skip's PQ constants must survive it
    (38 dB against Keras before they were written as float16-exact parts)."""
    pytest.importorskip("ai_edge_litert")
    from sritm_tf import export

    model = build_deep_sritm(2, channels=8, m=1, n=1, skip="classical")
    x = colour.sdr_rgb_to_model_yuv(np.random.default_rng(6).random((1, 32, 32, 3))).astype(np.float32)
    ref = colour.model_yuv_to_pq2020_rgb(model.predict(x, verbose=0)[0])
    out = export.run_tflite(export.tflite_interpreter(export.convert_tflite(model, "fp16", (32, 32))), x[0])
    psnr = 10 * np.log10(1 / np.mean((colour.model_yuv_to_pq2020_rgb(out) - ref) ** 2))
    assert psnr > 65, psnr


@pytest.mark.slow
def test_int8_tflite_keeps_the_classical_skip_in_float():
    """Full-int8 activations are too coarse for the PQ domain (21 dB against Keras):
    the export leaves the skip and the output sum in float (49 dB measured)."""
    pytest.importorskip("ai_edge_litert")
    from sritm_tf import export

    model = pretrained.load_model(2)
    frames = export.representative_frames((64, 64))
    content = export.convert_tflite(model, "int8", (64, 64), frames)
    x = frames[0][None].astype(np.float32)
    ref = colour.model_yuv_to_pq2020_rgb(model.predict(x, verbose=0)[0])
    out = colour.model_yuv_to_pq2020_rgb(export.run_tflite(export.tflite_interpreter(content), x[0]))
    psnr = 10 * np.log10(1 / np.mean((out - ref) ** 2))
    assert psnr > 40, psnr
    ops = {op["op_name"] for op in export.tflite_interpreter(content)._get_ops_details()}
    assert {"QUANTIZE", "DEQUANTIZE", "POW"} <= ops and not any("FLEX" in op.upper() for op in ops)


def test_knee_with_a_display_black_level_is_the_bt1886_inverse_and_has_a_toe():
    """An SDR graded on a BT.1886 display with black L_B (Annex 1): the display shows the
    HDR grade's light, and read back at gamma 2.4 its shadows come out darker (a toe)."""
    nits = np.geomspace(0.001, 180.0, 200)[:, None] * np.ones(3)  # grey, below a knee of 0.9 at 203
    hdr = colour.pq_inverse_eotf(nits)
    for black in (1e-5, 3e-4):
        sdr = sdr_synthesis.knee(hdr, 203.0, knee=0.9, black=black)
        shown = colour.bt1886_eotf(sdr, 1.0, black) * 203.0
        lit = nits[:, 0] > black * 203.0
        np.testing.assert_allclose(shown[lit], nits[lit], rtol=1e-6)
        assert np.all(sdr[~lit] == 0.0)  # below the display's black: crushed
        classical = colour.pq_eotf(colour.sdr_to_hdr10_baseline(sdr, 203.0))[:, 1]
        ratio = nits[lit, 0] / np.maximum(classical[lit], 1e-12)
        assert np.all(ratio >= 1.0) and np.all(np.diff(ratio) <= 1e-9)  # darker, most in the deepest shadows
        assert ratio[0] > 1.3 and ratio[-1] < 1.01
    assert sdr_synthesis.knee(hdr, 203.0, knee=0.9, black=0.0) == pytest.approx(
        sdr_synthesis.knee(hdr, 203.0, knee=0.9))
    blacks = [sdr_synthesis.sample_params("knee", np.random.default_rng(i))["black"] for i in range(200)]
    lifted = [b for b in blacks if b > 0]
    assert 60 < len(lifted) < 140 and 1e-5 <= min(lifted) and max(lifted) <= 3e-4


@pytest.mark.slow
def test_graphics_keyed_over_a_pair_get_the_classical_hdr_and_keep_the_picture():
    """SDR graphics in an HDR programme (BT.2408-7 clause 5): a graphic's HDR is the
    classical conversion of its SDR colour at the pair's white, so flat SDR white is
    graphics white (here 300 cd/m2), not a highlight; the picture around it is kept."""
    rng = np.random.default_rng(3)
    sdr = rng.uniform(0.05, 0.6, (96, 96, 3))
    hdr = colour.pq_inverse_eotf(rng.uniform(1.0, 900.0, (96, 96, 3)))  # any grade: not the classical one
    covered, whites = [], 0
    for _ in range(40):
        s, h = augment.overlay_graphics(sdr, hdr, 300.0, rng)
        on = np.any(s != sdr, axis=-1)
        assert on.any() and np.all(np.any(h != hdr, axis=-1) == on)
        np.testing.assert_allclose(h[on], colour.sdr_to_hdr10_baseline(s[on], 300.0), atol=1e-12)
        assert np.array_equal(s[~on], sdr[~on]) and np.array_equal(h[~on], hdr[~on])
        whites += np.any(np.all(s[on] == 1.0, axis=-1))
        covered.append(on.mean())
    nits = colour.pq_eotf(colour.sdr_to_hdr10_baseline(np.ones(3), 300.0))
    np.testing.assert_allclose(nits, 300.0, rtol=1e-6)  # SDR white -> the pair's white, on every channel
    assert whites >= 5 and 0.02 < np.median(covered) < 0.6  # white graphics drawn; the picture stays visible
    pair = lambda i, prob: augment.make_pair(sdr, np.random.default_rng(i), 2, white_nits=300.0, graphics_prob=prob)[1]
    prob = augment.GRAPHICS_PROB
    drawn = sum(not np.array_equal(pair(i, prob), pair(i, 0.0)) for i in range(200))
    assert abs(drawn / 200 - prob) < 0.07  # the share of pairs with graphics


def test_training_targets_stay_inside_p3_as_hdr10_masters_do(monkeypatch):
    """`augment.limit_to_p3`: P3-D65 colours pass unchanged, a BT.2020 primary is brought
    inside P3; the training targets of saturated, hue-rotated scenes have no pixel outside
    P3 (without the limit, some do)."""
    to_p3 = colour.BT2020_TO_P3
    inside = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.2, 0.5, 1.0]]) @ colour.P3_TO_BT2020.T * 300.0
    np.testing.assert_allclose(augment.limit_to_p3(inside), inside, atol=1e-9)
    green2020 = augment.limit_to_p3(np.array([0.0, 300.0, 0.0]))
    assert (green2020 @ to_p3.T).min() >= -1e-9 and green2020[1] > 200.0

    rng = np.random.default_rng(3)
    scene = np.zeros((32, 32, 3))
    scene[..., int(rng.integers(3))] = 0.9  # a saturated BT.709 primary, then rotated and saturated further
    scene[:, :16] = np.array([0.0, 0.8, 0.9])

    def outside_p3(seed):
        _, hdr_pq, _ = augment.make_pair(scene, np.random.default_rng(seed), 2, white_nits=200.0, graphics_prob=0.0)
        nits = colour.pq_eotf(hdr_pq)
        return int(np.sum((nits @ to_p3.T).min(axis=-1) < -0.002 * nits.max(axis=-1)))

    assert sum(outside_p3(i) for i in range(40)) == 0
    monkeypatch.setattr(augment, "MASTERING_GAMUT_P3", False)
    assert sum(outside_p3(i) for i in range(40)) > 0
