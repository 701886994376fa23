"""Tests of sritm_tf.metrics: identities, hand-computed values, independent references."""

import numpy as np
import pytest

from sritm_tf import metrics as M

RNG = np.random.default_rng(7)
IMG = RNG.random((32, 40, 3))
BIG = RNG.random((176, 176, 3))


# --------------------------------------------------------------------------- PSNR
def test_psnr_values():
    assert M.psnr(IMG, IMG) == float("inf")
    # constant offset 0.1: MSE = 0.01 -> 10 log10(1 / 0.01) = 20 dB
    assert M.psnr(IMG, IMG + 0.1) == pytest.approx(20.0, abs=1e-9)
    # same in 8-bit units: offset 25.5 with max 255 -> 20 dB; offset 1 -> 10 log10(255^2) = 48.1308 dB
    assert M.psnr(IMG * 255, IMG * 255 + 25.5, max_val=255.0) == pytest.approx(20.0, abs=1e-9)
    assert M.psnr(np.zeros(4), np.ones(4), max_val=255.0) == pytest.approx(48.130803608679, abs=1e-9)
    assert isinstance(M.psnr(IMG, IMG + 0.1), float)


# --------------------------------------------------------------------------- SSIM
def _gauss11():
    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    return g / g.sum()


def _filt(x):
    # separable 11x11 Gaussian, 'valid' filtering, per channel (H, W, C)
    g = _gauss11()
    x = np.apply_along_axis(lambda v: np.convolve(v, g, mode="valid"), 0, x)
    return np.apply_along_axis(lambda v: np.convolve(v, g, mode="valid"), 1, x)


def _ssim_numpy(a, b, max_val=1.0):
    """Wang et al. 2004 eq. 13 with Gaussian-weighted local statistics (biased)."""
    c1, c2 = (0.01 * max_val) ** 2, (0.03 * max_val) ** 2
    mu_a, mu_b = _filt(a), _filt(b)
    var_a = _filt(a * a) - mu_a**2
    var_b = _filt(b * b) - mu_b**2
    cov = _filt(a * b) - mu_a * mu_b
    s = (2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.mean()


def test_ssim_identity_and_constant_images():
    assert M.ssim(IMG, IMG) == pytest.approx(1.0, abs=1e-6)
    # constant images x = 0.3, y = 0.4: variances and covariance are 0, so the contrast-structure
    # term is C2 / C2 = 1 and SSIM = (2*0.3*0.4 + C1) / (0.3^2 + 0.4^2 + C1), C1 = 1e-4
    # = 0.2401 / 0.2501 = 0.96001599...
    # tf.image.ssim works in float32 and forms variances as E[x^2] - mu^2: on flat images a few
    # float32 ulps of 0.25 (~1e-7) against C2 = 9e-4 put cs off 1 by ~1e-4, hence the tolerance.
    x, y = np.full((16, 16, 1), 0.3), np.full((16, 16, 1), 0.4)
    assert M.ssim(x, y) == pytest.approx(0.2401 / 0.2501, abs=3e-4)


def test_ssim_against_numpy_reference():
    shifted = np.clip(IMG + 0.05, 0, 1)
    noisy = np.clip(IMG + 0.1 * RNG.standard_normal(IMG.shape), 0, 1)
    for other in (shifted, noisy):
        assert M.ssim(IMG, other) == pytest.approx(_ssim_numpy(IMG, other), abs=1e-6)
        assert M.ssim(IMG, other) == pytest.approx(M.ssim(other, IMG), abs=1e-9)  # symmetric
    assert M.ssim(IMG * 255, noisy * 255, max_val=255.0) == pytest.approx(M.ssim(IMG, noisy), abs=1e-6)
    assert M.ssim(IMG, shifted) > M.ssim(IMG, noisy)


def test_ms_ssim():
    assert M.ms_ssim(BIG, BIG) == pytest.approx(1.0, abs=1e-6)
    # constant images: every scale has cs = 1, the coarsest has luminance l = 0.2401/0.2501,
    # so MS-SSIM = l^0.1333 (weight of the 5th scale) = 0.99457541... (float32 cs error as above)
    x, y = np.full((176, 176, 1), 0.3), np.full((176, 176, 1), 0.4)
    assert M.ms_ssim(x, y) == pytest.approx((0.2401 / 0.2501) ** 0.1333, abs=3e-4)
    n1 = np.clip(BIG + 0.05 * RNG.standard_normal(BIG.shape), 0, 1)
    n2 = np.clip(BIG + 0.20 * RNG.standard_normal(BIG.shape), 0, 1)
    assert M.ms_ssim(BIG, n1) == pytest.approx(M.ms_ssim(n1, BIG), abs=1e-9)
    assert 0 < M.ms_ssim(BIG, n2) < M.ms_ssim(BIG, n1) < 1


# --------------------------------------------------------------------------- mPSNR
def test_mpsnr_identity():
    assert M.mpsnr(IMG, IMG) == float("inf")
    assert M.mpsnr(IMG, IMG + 1e-9) == float("inf")  # below one code value at every exposure


def test_mpsnr_hand_computed_2x2():
    # bits = 10 (top = 1023), exposures e = -3..3, q(x) = clip(floor(2^e x 1023 + 0.5), 0, 1023).
    # ref = [[0, 1.0], [0, 0]], dist = [[0, 0.5], [0, 1/1023]].
    # pixel (1,1), 0 vs 1/1023: q = 0 vs round(2^e) -> diffs 0, 0, 1 (0.5 rounds up), 1, 2, 4, 8
    # pixel (0,1), 1.0 vs 0.5:
    #   e=-3: round(127.875)=128 vs round(63.9375)=64 -> 64;  e=-2: 256 vs 128 -> 128
    #   e=-1: round(511.5)=512 vs round(255.75)=256 -> 256;   e=0: 1023 vs round(511.5)=512 -> 511
    #   e>=1: both clip to 1023 -> 0
    # sum of squares per e: 4096, 16384, 65536+1, 261121+1, 4, 16, 64 -> total 347223
    # mean MSE = 347223 / (4 pixels * 7 exposures) = 12400.8214...
    # mPSNR = 20 log10(1023 / sqrt(12400.8214)) = 19.2630081...
    ref = np.array([[0.0, 1.0], [0.0, 0.0]])
    dist = np.array([[0.0, 0.5], [0.0, 1 / 1023]])
    expected = 20 * np.log10(1023 / np.sqrt(347223 / 28))
    assert expected == pytest.approx(19.2630081371, abs=1e-9)
    assert M.mpsnr(ref, dist) == pytest.approx(expected, abs=1e-9)
    assert M.mpsnr(dist, ref) == pytest.approx(expected, abs=1e-9)
    # single exposure e=0, 8 bits: 255 vs round(127.5)=128 and 0 vs round(255/1023)=0
    # -> MSE = 127^2 / 4 -> 20 log10(255 / 63.5) = 12.07548...
    assert M.mpsnr(ref, dist, exposures=[0], bits=8) == pytest.approx(20 * np.log10(255 / 63.5), abs=1e-9)


# --------------------------------------------------------------------------- dE ITP
def test_delta_e_itp_against_colour():
    cs = pytest.importorskip("colour")
    ref = RNG.random((6, 5, 3))
    dist = np.clip(ref + 0.02 * RNG.standard_normal(ref.shape), 0, 1)

    def ictcp(rgb_pq):  # colour-science wants linear cd/m2 with L_p = 10000 for the PQ method
        nits = cs.models.eotf_ST2084(rgb_pq, L_p=10000)
        return cs.RGB_to_ICtCp(nits, method="ITU-R BT.2100-2 PQ", L_p=10000)

    expected = cs.delta_E(ictcp(ref), ictcp(dist), method="ITP")
    got = M.delta_e_itp_map(ref, dist)
    assert got.shape == (6, 5)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    assert M.delta_e_itp(ref, dist) == pytest.approx(float(np.mean(expected)), rel=1e-6)


def test_delta_e_itp_values():
    assert M.delta_e_itp(IMG, IMG) == 0.0
    # two neutral greys: RGB = LMS = PQ^-1 on equal channels, so Ct = Cp = 0 and I = the PQ signal
    # itself ((2048 + 2048) / 4096 = 1): dE = 720 |0.6 - 0.5| = 72
    a, b = np.full((2, 2, 3), 0.5), np.full((2, 2, 3), 0.6)
    assert M.delta_e_itp(a, b) == pytest.approx(72.0, abs=1e-9)
    np.testing.assert_allclose(M.delta_e_itp_map(a, b), np.full((2, 2), 72.0), atol=1e-9)


def test_keras_metrics_agree_with_the_numpy_ones():
    """The training metrics (keras.ops, per image of a batch) and the evaluation ones
    (numpy / tf.image) give the same PSNR and SSIM on the same images."""
    import keras

    rng = np.random.default_rng(7)
    ref = rng.random((3, 32, 40, 3)).astype(np.float32)
    dist = np.clip(ref + rng.normal(0, [[[[0.01]]], [[[0.05]]], [[[0.2]]]], ref.shape), 0, 1).astype(np.float32)
    psnr = keras.ops.convert_to_numpy(M.psnr_metric(ref, dist))
    ssim = keras.ops.convert_to_numpy(M.ssim_metric(ref, dist))
    assert psnr.shape == ssim.shape == (3,)
    for i in range(3):
        assert psnr[i] == pytest.approx(M.psnr(ref[i], dist[i]), abs=1e-3)
        assert ssim[i] == pytest.approx(M.ssim(ref[i], dist[i]), abs=1e-5)
    assert [m.name for m in M.keras_metrics()] == ["psnr", "ssim"]
    assert keras.saving.get_registered_object("sritm_tf>psnr") is M.psnr_metric
    assert keras.saving.get_registered_object("sritm_tf>ssim") is M.ssim_metric
