"""HDR10 -> SDR operators: BT.2446-1 Method A against the Report's formulas, Hable, and a real pair."""
import numpy as np
import pytest

from sritm_tf import colour
from sritm_tf.data import sdr_synthesis

from tests.helpers.paths import REPO, SHARED_DATA, need_shared


def _grey_pq(nits):
    return np.full(3, colour.pq_inverse_eotf(nits))


def test_bt2446a_rho_values():
    # rho = 1 + 32 (L / 10000)^(1/2.4): 13.2598 for L_HDR = 1000, 5.6970 for L_SDR = 100.
    assert sdr_synthesis.bt2446a_rho(1000.0) == pytest.approx(13.2598, abs=1e-4)
    assert sdr_synthesis.bt2446a_rho(100.0) == pytest.approx(5.6970, abs=1e-4)


def test_bt2446a_knee_is_continuous_and_ends_at_one():
    curve = sdr_synthesis.bt2446a_tone_curve
    for knee in (0.7399, 0.9909):
        assert curve(knee - 1e-9) == pytest.approx(curve(knee + 1e-9), abs=2e-3)
    assert curve(0.0) == 0.0
    assert curve(1.0) == pytest.approx(1.0)
    ys = np.linspace(0, 1, 1001)
    assert np.all(np.diff(curve(ys)) > 0)


def test_bt2446a_luma_endpoints_and_hand_computed_reference_white():
    luma = sdr_synthesis.bt2446a_luma
    assert luma(0.0) == pytest.approx(0.0)
    assert luma(1.0) == pytest.approx(1.0)  # L_HDR maps to SDR peak
    # 203 cd/m2 grey: Y' = 0.203^(1/2.4) = 0.51452, Y'p = ln(1 + 12.2598 Y') / ln 13.2598
    # = 0.76950, Y'c = -1.1510 Y'p^2 + 2.7811 Y'p - 0.6302 = 0.82832,
    # Y'SDR = (5.6970^Y'c - 1) / 4.6970 = 0.68686.
    assert luma(0.203 ** (1 / 2.4)) == pytest.approx(0.68686, abs=2e-4)


def test_bt2446a_keeps_greys_grey_and_maps_peak_to_white():
    for nits in (0.5, 20, 203, 700):
        out = sdr_synthesis.bt2446a(_grey_pq(nits))
        assert np.ptp(out) < 1e-6
    np.testing.assert_allclose(sdr_synthesis.bt2446a(_grey_pq(1000)), 1.0, atol=1e-6)
    np.testing.assert_allclose(sdr_synthesis.bt2446a(_grey_pq(4000)), 1.0, atol=1e-6)  # clipped above L_HDR
    assert sdr_synthesis.bt2446a(_grey_pq(203))[0] == pytest.approx(0.68686, abs=2e-4)
    greys = [sdr_synthesis.bt2446a(_grey_pq(n))[0] for n in (1, 10, 100, 500, 900)]
    assert np.all(np.diff(greys) > 0)


def test_bt2446a_higher_peak_gives_darker_sdr():
    pq = _grey_pq(203)
    low = sdr_synthesis.bt2446a(pq, l_hdr=600)[0]
    high = sdr_synthesis.bt2446a(pq, l_hdr=2000)[0]
    assert low > high


def test_wide_gamut_colours_are_clipped_into_bt709():
    # Pure BT.2020 green at 300 cd/m2 is outside BT.709: linear 709 has negative R and B.
    green = colour.pq_inverse_eotf(np.array([0.0, 300.0, 0.0]))
    assert colour.rgb2020_to_rgb709(np.array([0.0, 1.0, 0.0])).min() < -0.1
    for name in sdr_synthesis.OPERATORS:
        out = sdr_synthesis.synthesize_sdr(green, name)
        assert out.min() >= 0.0 and out.max() <= 1.0
        assert out[1] > 0.5 and out[0] == 0.0 and out[2] == 0.0


def test_hable_curve_normalisation():
    pq_white = _grey_pq(203)
    # x = 203 / 203 * exposure = 2, output = hable(2) / hable(11.2), gamma 1/2.4.
    expected = (sdr_synthesis.hable_curve(2.0) / sdr_synthesis.hable_curve(11.2)) ** (1 / 2.4)
    np.testing.assert_allclose(sdr_synthesis.hable(pq_white), expected, atol=1e-9)
    assert sdr_synthesis.hable_curve(0.0) == pytest.approx(0.0, abs=1e-12)
    white = 11.2 * 203 / 2.0
    np.testing.assert_allclose(sdr_synthesis.hable(_grey_pq(white)), 1.0, atol=1e-6)


def test_sample_params_are_reproducible_and_in_range():
    for name in sdr_synthesis.OPERATORS:
        a = sdr_synthesis.sample_params(name, np.random.default_rng(5))
        b = sdr_synthesis.sample_params(name, np.random.default_rng(5))
        assert a == b
        assert set(a) == set(sdr_synthesis.DEFAULT_PARAMS[name])
    peaks = [sdr_synthesis.sample_params("bt2446a", np.random.default_rng(i))["l_hdr"] for i in range(50)]
    assert 500 <= min(peaks) and max(peaks) <= 2000 and np.std(peaks) > 100
    with pytest.raises(ValueError, match="unknown operator"):
        sdr_synthesis.synthesize_sdr(np.zeros(3), "nope")


def test_bt2446a_is_close_to_a_real_sdr_grade():
    hdr_path = need_shared("graded/cosmos01650_hdr.png", "graded/cosmos01650_sdr.png")
    from sritm_tf.data import sources

    hdr = sources.read_hdr10_image(str(hdr_path))[::4, ::4]
    sdr = sources.read_sdr_image(str(SHARED_DATA / "graded" / "cosmos01650_sdr.png"))[::4, ::4]
    out = sdr_synthesis.synthesize_sdr(hdr, "bt2446a")
    psnr = 10 * np.log10(1.0 / np.mean((out - sdr) ** 2))
    # A standard operator lands near the professional SDR grade (about 28 dB on this pair),
    # far above a wrong-transfer mapping (PQ signal shown as SDR directly).
    naive = 10 * np.log10(1.0 / np.mean((hdr - sdr) ** 2))
    assert psnr > 24.0 and psnr > naive + 5


def test_sampled_knees_span_real_grades_and_plain_curves():
    """Real pairs are fitted best by a luminance curve with its shoulder at 0.15-0.25 of
    white (`training/measure_toe.py --fit`); the sampler covers those and shoulder-free
    curves up to 1.0, mostly on luminance."""
    params = [sdr_synthesis.sample_params("knee", np.random.default_rng(i)) for i in range(400)]
    knees = np.array([p["knee"] for p in params])
    lo, hi = sdr_synthesis.KNEE_RANGE
    assert lo <= knees.min() < 0.18 and 0.9 < knees.max() <= hi
    assert 0.4 < np.mean(knees < np.sqrt(lo * hi)) < 0.6  # log-uniform: half below the geometric mean
    assert 0.1 < np.mean([p["per_channel"] for p in params]) < 0.3


def _measure_toe():
    """`training/measure_toe.py` (a script, not a package module), imported by path."""
    import importlib.util

    path = REPO / "training" / "measure_toe.py"
    spec = importlib.util.spec_from_file_location("measure_toe", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_operator_fit_recovers_the_operator_of_a_pair():
    """`measure_toe.fit_operator` finds the knee operator that made an 8-bit SDR."""
    measure_toe = _measure_toe()
    rng = np.random.default_rng(0)
    nits = np.exp(rng.uniform(np.log(0.5), np.log(900.0), (64, 64, 1))) * rng.uniform(0.3, 1.0, (64, 64, 3))
    hdr = colour.pq_inverse_eotf(nits)
    white = float(measure_toe.FIT_WHITES[13])  # 419 cd/m2
    for knee, per_channel, black in ((0.25, False, 1e-4), (0.8, True, 0.0)):
        made = sdr_synthesis.knee(hdr, white, knee=knee, per_channel=per_channel, black=black)
        rmse, fit = measure_toe.fit_operator(colour.dequantize(colour.quantize(made, 8), 8), hdr, samples=2000)
        assert fit == {"white_nits": white, "knee": knee, "per_channel": per_channel, "black": black}
        assert rmse < 0.4  # 8-bit rounding alone: 0.29 codes


def test_gamut_shares_count_pixels_outside_p3_and_bt709():
    """`measure_toe.outside_gamuts`: a BT.709 colour is inside both, P3 green and red outside
    BT.709 only, a BT.2020 primary outside both; pixels below 1 cd/m2 are not counted."""
    measure_toe = _measure_toe()
    nits = np.array([colour.rgb709_to_rgb2020(np.array([0.2, 0.9, 0.4])) * 200,  # BT.709
                     colour.P3_TO_BT2020 @ np.array([0.0, 300.0, 0.0]),          # P3 green
                     colour.P3_TO_BT2020 @ np.array([100.0, 0.0, 0.0]),          # P3 red
                     [0.0, 300.0, 0.0],                                          # BT.2020 green
                     [0.0, 0.5, 0.0]])                                           # too dark to count
    p3, bt709 = measure_toe.outside_gamuts(colour.pq_inverse_eotf(nits[None]))
    assert (p3, bt709) == (0.25, 0.75)


def test_measure_toe_refuses_missing_folders_in_one_line(tmp_path, capsys):
    measure_toe = _measure_toe()
    for argv, message in (([str(tmp_path / "none")], "no such folder"),
                          (["--gamut", "--scenes", str(tmp_path)], "no index.json"),
                          (["--scenes", str(tmp_path)], "--scenes goes with --gamut")):
        with pytest.raises(SystemExit) as exit_info:
            measure_toe.main(argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err.strip().splitlines()[-1]
