"""Tests of sritm_tf.colour: against colour-science, hand-computed values, round trips."""

import numpy as np
import pytest

from sritm_tf import colour as C

RNG = np.random.default_rng(1234)
SIGNAL = np.concatenate([[0.0, 1e-6, 1e-3, 0.04045, 1 / 12, 0.081, 0.5, 0.58, 0.99, 1.0], RNG.random(200)])
NITS = np.concatenate([[0.0, 1e-4, 0.005, 0.1, 1.0, 100.0, 203.0, 1000.0, 4000.0, 10000.0],
                       10 ** RNG.uniform(-4, 4, 200)])
RGB = RNG.random((7, 5, 3))
RGB_EDGES = np.array([[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0.5, 0.5, 0.5], [1, 1, 0]], float)


def _close(a, b, rel=False):
    if rel:  # cd/m2: relative 1e-6 (plus a tiny absolute floor for exact zeros)
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-12)
    else:
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


# colour-science's own HLG code warns on log(<0) / 0**negative inside np.where branches it discards.
pytestmark = pytest.mark.filterwarnings("ignore:.*encountered in:RuntimeWarning:colour")


@pytest.fixture(scope="module")
def cs():
    return pytest.importorskip("colour")


# --------------------------------------------------------------- colour-science comparisons
def test_pq_against_colour(cs):
    _close(C.pq_eotf(SIGNAL), cs.models.eotf_ST2084(SIGNAL, L_p=10000), rel=True)
    _close(C.pq_inverse_eotf(NITS), cs.models.eotf_inverse_ST2084(NITS, L_p=10000))


def test_hlg_oetf_against_colour(cs):
    _close(C.hlg_oetf(SIGNAL), cs.models.oetf_BT2100_HLG(SIGNAL))
    _close(C.hlg_inverse_oetf(SIGNAL), cs.models.oetf_inverse_BT2100_HLG(SIGNAL))


@pytest.mark.parametrize("L_W,L_B", [(1000.0, 0.0), (1000.0, 0.01), (2000.0, 0.0), (400.0, 0.05)])
def test_hlg_eotf_against_colour(cs, L_W, L_B):
    rgb = np.concatenate([RGB.reshape(-1, 3), RGB_EDGES])
    kw = dict(L_B=L_B, L_W=L_W, gamma=1.2 + 0.42 * np.log10(L_W / 1000), method="ITU-R BT.2100-2")
    ref = cs.models.eotf_BT2100_HLG(rgb, **kw)
    _close(C.hlg_eotf(rgb, L_W=L_W, L_B=L_B), ref, rel=True)
    _close(C.hlg_inverse_eotf(ref, L_W=L_W, L_B=L_B), cs.models.eotf_inverse_BT2100_HLG(ref, **kw))


def test_pq_to_hlg_against_colour(cs):
    """PQ -> display light -> HLG for a 1000 cd/m2 display (BT.2390 clause 7), with colour-science's
    BT.2100 PQ EOTF and HLG inverse EOTF (system gamma 1.2, L_B = 0); light above 1000 cd/m2 clipped."""
    pq = np.concatenate([RGB.reshape(-1, 3) * 0.9, RGB_EDGES * 0.7518, RGB_EDGES])  # up to 10000 cd/m2
    display = np.minimum(cs.models.eotf_BT2100_PQ(pq), 1000.0)
    ref = np.clip(cs.models.eotf_inverse_BT2100_HLG(display, L_B=0, L_W=1000, gamma=1.2,
                                                    method="ITU-R BT.2100-2"), 0, 1)
    _close(C.pq_to_hlg(pq), ref)
    # BT.2408: HDR reference white, 203 cd/m2, is HLG 75%; the HLG display's peak, 1000 cd/m2, is 100%.
    grey = C.pq_to_hlg(np.full(3, C.pq_inverse_eotf(203.0)))
    np.testing.assert_allclose(grey, 0.75, atol=1e-3)
    np.testing.assert_allclose(C.pq_to_hlg(np.full(3, C.pq_inverse_eotf(1000.0))), 1.0, atol=1e-9)
    np.testing.assert_allclose(C.pq_to_hlg(np.ones(3)), 1.0)  # 10000 cd/m2: clipped to the peak
    # And back: the HLG display shows the PQ display's light, where HLG can (saturated colours near the
    # peak need a signal above 1 after the inverse OOTF's boost, and are clipped).
    below = RGB.reshape(-1, 3) * C.pq_inverse_eotf(1000.0)
    hlg = C.pq_to_hlg(below)
    inside = (hlg < 1).all(axis=-1)
    assert inside.sum() > 25
    _close(C.hlg_eotf(hlg[inside]), C.pq_eotf(below[inside]), rel=True)


@pytest.mark.parametrize("L_W,L_B", [(100.0, 0.0), (100.0, 0.1), (300.0, 0.05)])
def test_bt1886_against_colour(cs, L_W, L_B):
    _close(C.bt1886_eotf(SIGNAL, L_W, L_B), cs.models.eotf_BT1886(SIGNAL, L_B=L_B, L_W=L_W), rel=True)
    L = SIGNAL * (L_W - L_B) + L_B
    _close(C.bt1886_inverse_eotf(L, L_W, L_B), cs.models.eotf_inverse_BT1886(L, L_B=L_B, L_W=L_W))


def test_srgb_and_bt709_against_colour(cs):
    _close(C.srgb_eotf(SIGNAL), cs.models.eotf_sRGB(SIGNAL))
    _close(C.srgb_inverse_eotf(SIGNAL), cs.models.eotf_inverse_sRGB(SIGNAL))
    _close(C.bt709_oetf(SIGNAL), cs.models.oetf_BT709(SIGNAL))
    _close(C.bt709_inverse_oetf(SIGNAL), cs.models.oetf_inverse_BT709(SIGNAL))


def test_primaries_against_colour(cs):
    s709, s2020 = cs.RGB_COLOURSPACES["ITU-R BT.709"], cs.RGB_COLOURSPACES["ITU-R BT.2020"]
    np.testing.assert_allclose(C.BT709_TO_BT2020, cs.matrix_RGB_to_RGB(s709, s2020, None), atol=1e-12)
    np.testing.assert_allclose(C.BT2020_TO_BT709, cs.matrix_RGB_to_RGB(s2020, s709, None), atol=1e-12)
    lin = RGB * 1000.0
    _close(C.rgb709_to_rgb2020(lin), cs.RGB_to_RGB(lin, s709, s2020, None), rel=True)
    _close(C.rgb2020_to_rgb709(lin), cs.RGB_to_RGB(lin, s2020, s709, None), rel=True)


@pytest.mark.parametrize("matrix,key", [("bt709", "ITU-R BT.709"), ("bt2020", "ITU-R BT.2020")])
def test_ycbcr_against_colour(cs, matrix, key):
    K = cs.WEIGHTS_YCBCR[key]
    assert tuple(K) == C.KR_KB[matrix]
    flt = dict(in_legal=False, in_int=False, out_legal=False, out_int=False)
    ycc = C.rgb_to_ycbcr(RGB, matrix)
    _close(ycc, cs.RGB_to_YCbCr(RGB, K=K, **flt))
    _close(C.ycbcr_to_rgb(ycc, matrix), cs.YCbCr_to_RGB(ycc, K=K, **flt))


@pytest.mark.parametrize("bits", [8, 10, 12, 16])
@pytest.mark.parametrize("full_range", [True, False])
def test_ycbcr_quantisation_against_colour(cs, bits, full_range):
    K = cs.WEIGHTS_YCBCR["ITU-R BT.2020"]
    # yellow is left out: its Cb is -0.5 up to float error, i.e. an exact Round() tie in full
    # range (1023 * -0.5 + 512 = 0.5); tested exactly in test_quantize_known_codes.
    rgb = np.concatenate([RGB.reshape(-1, 3), RGB_EDGES[:-1]])
    codes = C.quantize(C.rgb_to_ycbcr(rgb, "bt2020"), bits, full_range, kind="ycbcr")
    ref = cs.RGB_to_YCbCr(rgb, K=K, in_legal=False, in_int=False,
                          out_bits=bits, out_legal=not full_range, out_int=True)
    np.testing.assert_array_equal(codes, ref)
    assert codes.dtype == (np.uint8 if bits == 8 else np.uint16)
    back = C.ycbcr_to_rgb(C.dequantize(codes, bits, full_range, kind="ycbcr"), "bt2020")
    ref_back = cs.YCbCr_to_RGB(ref, K=K, in_bits=bits, in_legal=not full_range, in_int=True,
                               out_legal=False, out_int=False)
    _close(back, ref_back)


@pytest.mark.parametrize("bits", [8, 10, 12, 16])
@pytest.mark.parametrize("full_range", [True, False])
def test_rgb_quantisation_against_colour_ranges(cs, bits, full_range):
    lo, hi = cs.models.rgb.ycbcr.CV_range(bits, not full_range, True)
    ref = np.floor(SIGNAL * (hi - lo) + lo + 0.5)  # BT.2100 Round() on the colour-science code range
    np.testing.assert_array_equal(C.quantize(SIGNAL, bits, full_range), ref)
    _close(C.dequantize(ref, bits, full_range), (ref - lo) / (hi - lo))


def test_ictcp_against_colour(cs):
    nits = C.pq_eotf(np.concatenate([RGB.reshape(-1, 3), RGB_EDGES]))
    ref = cs.RGB_to_ICtCp(nits, method="ITU-R BT.2100-2 PQ", L_p=10000)
    _close(C.rgb2020_to_ictcp(nits), ref)


def test_baseline_against_colour(cs):
    s709, s2020 = cs.RGB_COLOURSPACES["ITU-R BT.709"], cs.RGB_COLOURSPACES["ITU-R BT.2020"]
    lin2020 = cs.RGB_to_RGB(RGB**2.4 * 203.0, s709, s2020, None)
    _close(C.sdr_to_hdr10_baseline(RGB), cs.models.eotf_inverse_ST2084(lin2020, L_p=10000))


# --------------------------------------------------------------- hand values and edges
def test_known_values():
    assert C.pq_inverse_eotf(10000.0) == pytest.approx(1.0, abs=1e-12)
    assert C.pq_inverse_eotf(100.0) == pytest.approx(0.508078, abs=1e-6)  # 100 cd/m2 -> 50.8 % PQ
    assert C.pq_inverse_eotf(203.0) == pytest.approx(0.580689, abs=1e-6)  # BT.2408 reference white -> 58 %
    assert C.pq_eotf(0.0) == 0.0 and C.pq_eotf(-0.2) == 0.0 and C.pq_inverse_eotf(-5.0) == C.pq_inverse_eotf(0.0)
    assert C.hlg_oetf(1 / 12) == pytest.approx(0.5) and C.hlg_oetf(1.0) == pytest.approx(1.0, abs=1e-7)
    assert C.hlg_inverse_oetf(-0.1) == 0.0 and C.hlg_system_gamma(1000.0) == pytest.approx(1.2)
    np.testing.assert_allclose(C.hlg_eotf(np.ones(3)), [1000.0] * 3, rtol=1e-6)  # peak white at L_W
    np.testing.assert_allclose(C.hlg_eotf(np.ones(3), L_W=1000.0, L_B=0.5), [1000.0] * 3, rtol=1e-6)
    assert C.bt1886_eotf(1.0) == pytest.approx(100.0) and C.bt1886_eotf(0.0, L_B=0.1) == pytest.approx(0.1)
    assert C.gamma_decode(0.5) == pytest.approx(0.5**2.4) and C.gamma_encode(-1.0) == 0.0
    assert C.srgb_eotf(0.04) == pytest.approx(0.04 / 12.92) and C.bt709_oetf(0.01) == pytest.approx(0.045)
    assert C.bt709_oetf(1.0) == pytest.approx(1.0)
    # BT.2087-0 Annex 1, 4-decimal matrix
    np.testing.assert_allclose(C.BT709_TO_BT2020, [[0.6274, 0.3293, 0.0433], [0.0691, 0.9195, 0.0114],
                                                   [0.0164, 0.0880, 0.8956]], atol=6e-5)
    np.testing.assert_allclose(C.BT709_TO_BT2020 @ np.ones(3), np.ones(3), atol=1e-12)  # D65 white kept


def test_round_trips():
    _close(C.pq_eotf(C.pq_inverse_eotf(NITS)), NITS, rel=True)
    _close(C.pq_inverse_eotf(C.pq_eotf(SIGNAL)), SIGNAL)
    _close(C.hlg_inverse_oetf(C.hlg_oetf(SIGNAL)), SIGNAL)
    for L_W, L_B in [(1000.0, 0.0), (1500.0, 0.02)]:
        _close(C.hlg_inverse_eotf(C.hlg_eotf(RGB, L_W, L_B), L_W, L_B), RGB)
    _close(C.bt1886_inverse_eotf(C.bt1886_eotf(SIGNAL, 200.0, 0.1), 200.0, 0.1), SIGNAL)
    _close(C.gamma_encode(C.gamma_decode(SIGNAL, 2.2), 2.2), SIGNAL)
    _close(C.srgb_inverse_eotf(C.srgb_eotf(SIGNAL)), SIGNAL)
    _close(C.bt709_inverse_oetf(C.bt709_oetf(SIGNAL)), SIGNAL)
    v = SIGNAL[(SIGNAL < 0.081) | (SIGNAL >= 0.0812428)]  # [0.081, 0.081243) is not in the OETF's range
    _close(C.bt709_oetf(C.bt709_inverse_oetf(v)), v)
    _close(C.rgb2020_to_rgb709(C.rgb709_to_rgb2020(RGB)), RGB)
    for m in ("bt709", "bt2020"):
        _close(C.ycbcr_to_rgb(C.rgb_to_ycbcr(RGB, m), m), RGB)
    _close(C.model_yuv_to_sdr_rgb(C.sdr_rgb_to_model_yuv(RGB)), RGB)
    _close(C.model_yuv_to_pq2020_rgb(C.pq2020_rgb_to_model_yuv(RGB)), RGB)


def test_ycbcr_known_values():
    # grey -> Y = grey, Cb = Cr = 0; pure red BT.709: Y = 0.2126, Cb = -0.2126/(2*0.9278), Cr = 0.5
    _close(C.rgb_to_ycbcr([0.3, 0.3, 0.3]), [0.3, 0, 0])
    _close(C.rgb_to_ycbcr([1.0, 0, 0]), [0.2126, -0.2126 / 1.8556, 0.5])
    _close(C.rgb_to_ycbcr([0, 0, 1.0], "bt2020"), [0.0593, 0.5, -0.0593 / 1.4746])
    _close(C.sdr_rgb_to_model_yuv([0.5, 0.5, 0.5]), [0.5, 0.5, 0.5])
    yuv = C.pq2020_rgb_to_model_yuv(RGB)
    assert yuv.min() >= 0 and yuv.max() <= 1
    assert C.model_yuv_to_pq2020_rgb([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]).min() == 0.0  # clipped
    assert C.model_yuv_to_pq2020_rgb([1.0, 1.0, 1.0]).max() == 1.0


def test_quantize_known_codes():
    y = np.array([[0.0, 0.0, 0.0], [1.0, -0.5, 0.5]])
    np.testing.assert_array_equal(C.quantize(y, 10, False, "ycbcr"), [[64, 512, 512], [940, 64, 960]])
    np.testing.assert_array_equal(C.quantize(y, 8, False, "ycbcr"), [[16, 128, 128], [235, 16, 240]])
    # BT.2100 full range: chroma D = Round(1023 E + 512) -> -0.5 maps to Round(0.5) = 1
    np.testing.assert_array_equal(C.quantize(y, 10, True, "ycbcr"), [[0, 512, 512], [1023, 1, 1023]])
    np.testing.assert_array_equal(C.quantize([0.0, 1.0, 0.5], 8), [0, 255, 128])
    np.testing.assert_array_equal(C.quantize([0.0, 1.0], 12, full_range=False), [256, 3760])
    np.testing.assert_array_equal(C.quantize([0.0, 1.0], 16, full_range=False), [4096, 60160])
    # clipping: full range to 0..2^n-1; narrow range to the video data range 2^(n-8)..2^n-2^(n-8)-1
    np.testing.assert_array_equal(C.quantize([-1.0, 2.0], 10), [0, 1023])
    np.testing.assert_array_equal(C.quantize([-1.0, 2.0], 10, full_range=False), [4, 1019])
    np.testing.assert_array_equal(C.quantize([-1.0, 2.0], 8, full_range=False), [1, 254])
    assert C.dequantize(np.array([64, 940]), 10, full_range=False).tolist() == [0.0, 1.0]
    for bits in (8, 10, 12, 16):
        x = RNG.random(50)
        err = np.abs(C.dequantize(C.quantize(x, bits), bits) - x)
        assert err.max() <= 0.5 / (2**bits - 1) + 1e-12
    with pytest.raises(ValueError):
        C.quantize(0.5, 9)
    with pytest.raises(ValueError):
        C.quantize(0.5, 8, kind="yuv")


def test_baseline_known_values():
    out = C.sdr_to_hdr10_baseline(np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]))
    _close(out[0], [C.pq_inverse_eotf(203.0)] * 3)  # SDR white -> 203 cd/m2
    _close(out[1], [C.pq_inverse_eotf(0.0)] * 3)
    _close(out[2], [C.pq_inverse_eotf(203.0 * 0.5**2.4)] * 3)


def test_chroma_444_to_420_hand_values():
    c = np.arange(16, dtype=float).reshape(4, 4)
    # blocks [[0,1],[4,5]] -> 2.5, [[2,3],[6,7]] -> 4.5, [[8,9],[12,13]] -> 10.5, [[10,11],[14,15]] -> 12.5
    _close(C.chroma_444_to_420(c), [[2.5, 4.5], [10.5, 12.5]])
    odd = np.arange(9, dtype=float).reshape(3, 3)
    # edge replicated to [[0,1,2,2],[3,4,5,5],[6,7,8,8],[6,7,8,8]]:
    # (0+1+3+4)/4=2, (2+2+5+5)/4=3.5, (6+7+6+7)/4=6.5, (8+8+8+8)/4=8
    _close(C.chroma_444_to_420(odd), [[2.0, 3.5], [6.5, 8.0]])
    stack = np.stack([c, 2 * c])
    _close(C.chroma_444_to_420(stack), [[[2.5, 4.5], [10.5, 12.5]], [[5.0, 9.0], [21.0, 25.0]]])


def test_chroma_420_to_444_hand_values():
    c = np.array([[0.0, 4.0], [8.0, 12.0]])
    # each axis: out[0] = c0, out[1] = .75 c0 + .25 c1, out[2] = .25 c0 + .75 c1, out[3] = c1
    # row profile [0, 1, 3, 4] (x weights on 0..4), column profile [0, 2, 6, 8] (y weights on 0..8)
    expected = np.array([0, 2, 6, 8])[:, None] + np.array([0, 1, 3, 4])[None, :]
    _close(C.chroma_420_to_444(c, 4, 4), expected)
    _close(C.chroma_420_to_444(c, 3, 3), expected[:3, :3])  # odd size: cropped
    _close(C.chroma_420_to_444(np.full((2, 3, 5), 0.25), 6, 9), np.full((2, 6, 9), 0.25))
    # 420 -> 444 -> 420 of a smooth ramp is the identity in the interior
    ramp = np.add.outer(np.arange(6.0), np.arange(8.0))
    up = C.chroma_420_to_444(C.chroma_444_to_420(ramp), 6, 8)
    _close(up[1:-1, 1:-1], ramp[1:-1, 1:-1])
