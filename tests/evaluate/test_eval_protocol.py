"""`sritm eval --protocol paper`: the authors' `test_yuv.m` scoring (PSNR, MATLAB
`ssim`, `mPSNR_HDR.m` on narrow-range 4:2:0 Y'CbCr codes), checked against values
worked out here by hand or by following the MATLAB code line by line."""
import json

import numpy as np
import pytest
from scipy import ndimage

from sritm_tf import colour, evaluate, metrics
from sritm_tf.cli import main
from sritm_tf.data.resize import imresize

from tests.helpers.pairs import smooth_sdr, write_pair


# ---------------------------------------------------------------------------
# mPSNR_HDR.m
# ---------------------------------------------------------------------------
def test_mpsnr_hdr_by_hand():
    # ref = 0.3 everywhere (4x4x3 = 48 values); dist = ref except one value at 0.31.
    # quant8(x, 2^e) = clamp(round(1023 * 2^e * x), 0, 1023); mean(q(ref)) / 1023 by exposure:
    #   e=-3: 38 (0.037) no; e=-2: 77 (0.075) no; e=-1: 153 (0.150) yes; e=0: 307 (0.300) yes;
    #   e=1: 614 (0.600) yes; e=2, 3: 1023 (1.0) no.
    # The odd value: e=-1: 159 vs 153 (36); e=0: 317 vs 307 (100); e=1: 634 vs 614 (400).
    ref = np.full((4, 4, 3), 0.3, np.float32)
    dist = ref.copy()
    dist[1, 2, 0] = 0.31
    mse = (36 / 48 + 100 / 48 + 400 / 48) / 3
    assert metrics.mpsnr_hdr(ref, dist, -3, 3) == pytest.approx(20 * np.log10(1023 / np.sqrt(mse)), abs=1e-9)
    # Our mPSNR keeps all seven exposures, on whatever it is given: not the same number.
    assert abs(metrics.mpsnr(ref, dist) - metrics.mpsnr_hdr(ref, dist)) > 1.0
    # No exposure with a mean in (0.1, 0.9): -1, as the reference returns.
    assert metrics.mpsnr_hdr(np.zeros((4, 4, 3)), np.zeros((4, 4, 3))) == -1.0
    assert metrics.mpsnr_hdr(ref, ref) == float("inf")
    with pytest.raises(ValueError, match="negative"):
        metrics.mpsnr_hdr(ref, dist - 0.5)


def mpsnr_hdr_line_by_line(img_ref, img_dist, e_min, e_max):
    """mPSNR_HDR.m transcribed, MATLAB round = sign(x) floor(|x| + 0.5)."""
    def matlab_round(x):
        return np.sign(x) * np.floor(np.abs(x) + 0.5)

    def quant8(img, e):
        img_eg = (img * np.float32(e)).astype(np.float32)
        out = matlab_round((np.float32(1023) * img_eg).astype(np.float32))
        out[out < 0] = 0
        out[out > 1023] = 1023
        return out.astype(np.float64)

    e_vec, e_mean, mse_acc = [], [], 0.0
    for i in range(e_min, e_max + 1):
        espo = 2.0**i
        timg_ref = quant8(img_ref, espo)
        val = np.mean(timg_ref.ravel() / 1023.0)
        if val > 0.1 and val < 0.9:
            e_mean.append(val)
            e_vec.append(i)
            timg_dist = quant8(img_dist, espo)
            mse_acc = mse_acc + np.mean((timg_ref - timg_dist).ravel() ** 2)
    if not e_vec:
        return -1.0
    mse = mse_acc / len(e_mean)
    return 20.0 * np.log10(1023.0 / np.sqrt(mse))


def test_mpsnr_hdr_matches_the_transcription_on_random_frames():
    rng = np.random.default_rng(3)
    for low, high in ((0.0, 1.0), (0.05, 0.3), (0.6, 1.0)):
        ref = rng.uniform(low, high, (24, 20, 3)).astype(np.float32)
        dist = np.clip(ref + rng.normal(0, 0.01, ref.shape), 0, 1).astype(np.float32)
        assert metrics.mpsnr_hdr(ref, dist) == pytest.approx(mpsnr_hdr_line_by_line(ref, dist, -3, 3), abs=1e-9)


# ---------------------------------------------------------------------------
# MATLAB ssim
# ---------------------------------------------------------------------------
def matlab_ssim(A, ref):
    """MATLAB's ssim.m (R2014a-R2017a) with its defaults, transcribed: a 2-D
    (fspecial) or 3-D (ndgrid) Gaussian of radius 1.5, imfilter 'conv' 'replicate'
    (scipy 'nearest'), eq. 13, mean of the map; L = 1 (single inputs)."""
    radius = 1.5
    filt_radius = int(np.ceil(radius * 3))
    r = np.arange(-filt_radius, filt_radius + 1)
    grids = np.meshgrid(*([r] * A.ndim), indexing="ij")
    gauss = np.exp(-sum(g * g for g in grids) / (2 * radius * radius))
    gauss[gauss < np.finfo(float).eps * gauss.max()] = 0
    gauss /= gauss.sum()
    C = [0.01**2, 0.03**2]

    def imfilter(x):
        return ndimage.convolve(x, gauss, mode="nearest")

    mux2, muy2 = imfilter(A), imfilter(ref)
    muxy = mux2 * muy2
    mux2, muy2 = mux2**2, muy2**2
    sigmax2 = imfilter(A**2) - mux2
    sigmay2 = imfilter(ref**2) - muy2
    sigmaxy = imfilter(A * ref) - muxy
    num = (2 * muxy + C[0]) * (2 * sigmaxy + C[1])
    den = (mux2 + muy2 + C[0]) * (sigmax2 + sigmay2 + C[1])
    return float(np.mean(num / den))


def test_ssim_matlab_by_hand_and_against_the_transcription():
    # Flat frames: no variance, SSIM = (2 a b + C1) / (a^2 + b^2 + C1).
    a, b = np.full((12, 13, 3), 0.5), np.full((12, 13, 3), 0.4)
    assert metrics.ssim_matlab(a, b) == pytest.approx((0.4 + 1e-4) / (0.41 + 1e-4), abs=1e-12)
    rng = np.random.default_rng(0)
    ref = rng.random((20, 17, 3))
    dist = np.clip(ref + rng.normal(0, 0.1, ref.shape), 0, 1)
    got = metrics.ssim_matlab(ref, dist)
    assert got == pytest.approx(matlab_ssim(ref, dist), abs=1e-12)
    assert metrics.ssim_matlab(ref[..., 0], dist[..., 0]) == pytest.approx(matlab_ssim(ref[..., 0], dist[..., 0]),
                                                                           abs=1e-12)
    # A 3-D array is a volume to MATLAB: the Gaussian mixes the channels, so the
    # value is not the per-channel mean.
    per_channel = np.mean([matlab_ssim(ref[..., c], dist[..., c]) for c in range(3)])
    assert abs(got - per_channel) > 1e-3


# ---------------------------------------------------------------------------
# The frames of test_yuv.m and the whole protocol
# ---------------------------------------------------------------------------
def test_paper_frames_are_narrow_range_420_codes_repeated():
    # One 2x2 block of four colours, then grey: Y' per pixel, chroma the block's mean, repeated.
    sdr = np.full((4, 4, 3), 0.5)
    sdr[:2, :2] = [[[1, 0, 0], [0, 1, 0]], [[0, 0, 1], [1, 1, 1]]]
    y = 0.2126 * sdr[..., 0] + 0.7152 * sdr[..., 1] + 0.0722 * sdr[..., 2]  # BT.709-6 item 3.2
    cb, cr = (sdr[..., 2] - y) / 1.8556, (sdr[..., 0] - y) / 1.5748
    sdr_yuv, hdr_yuv = evaluate.paper_frames(sdr, sdr)
    np.testing.assert_array_equal(sdr_yuv[..., 0], np.floor(219 * y + 16 + 0.5) / 255)
    assert sdr_yuv[0, 0, 0] == 63 / 255 and sdr_yuv[3, 3, 0] == 126 / 255  # red: 16 + 219 * 0.2126
    for plane, c in ((1, cb), (2, cr)):
        block = np.floor(224 * c[:2, :2].mean() + 128 + 0.5) / 255
        np.testing.assert_array_equal(sdr_yuv[:2, :2, plane], np.full((2, 2), block))
        np.testing.assert_array_equal(sdr_yuv[2:, 2:, plane], np.full((2, 2), 128 / 255))
    assert hdr_yuv[3, 3, 0] == np.floor(876 * 0.5 + 64 + 0.5) / 1023 and hdr_yuv[3, 3, 1] == 512 / 1023


def test_evaluate_pair_paper_follows_test_yuv(monkeypatch):
    sdr = smooth_sdr(32, 48)
    hdr = colour.sdr_to_hdr10_baseline(sdr, white_nits=250.0)
    sdr_yuv, hdr_yuv = evaluate.paper_frames(sdr, hdr)
    lr_reference = imresize(sdr_yuv, 0.5)  # SDR_LR_YUV = imresize(SDR_YUV, 1/scale), not rounded
    # The network sees the same LR frame in its own convention: full range, chroma + 0.5.
    lr_model = np.stack([(lr_reference[..., 0] * 255 - 16) / 219,
                         (lr_reference[..., 1] * 255 - 128) / 224 + 0.5,
                         (lr_reference[..., 2] * 255 - 128) / 224 + 0.5], axis=-1)
    seen = []
    # Its output, full-range Y' 0.25 .. 1.25 (partly out of range), Cb, Cr + 0.5 at 0.5.
    out = np.zeros((32, 48, 3)) + [0.0, 0.5, 0.5]
    out[..., 0] = np.linspace(0.25, 1.25, 48)[None, :]

    def predict(lr, white):
        seen.append((lr, white))
        return out

    results, _, used = evaluate.evaluate_pair_paper(sdr, hdr, 2, predict, 300.0)
    np.testing.assert_allclose(seen[0][0], lr_model, atol=1e-12)
    assert seen[0][1] == used == 300.0
    # pred = 10-bit narrow-range codes / 1023, unrounded, then min(max(pred, 0), 1).
    pred = np.stack([(64 + 876 * out[..., 0]) / 1023, np.full((32, 48), 512 / 1023),
                     np.full((32, 48), 512 / 1023)], axis=-1)
    assert pred.max() > 1
    pred = np.minimum(np.maximum(pred, 0), 1)
    model = results["model"]
    assert model["psnr"] == pytest.approx(10 * np.log10(1 / np.mean((hdr_yuv - pred) ** 2)), abs=1e-9)
    assert model["ssim"] == pytest.approx(matlab_ssim(hdr_yuv, pred), abs=1e-12)
    assert model["mpsnr"] == pytest.approx(mpsnr_hdr_line_by_line(hdr_yuv.astype(np.float32),
                                                                  pred.astype(np.float32), -3, 3), abs=1e-9)
    # The classical mapping at the grade's white is near exact here.
    oracle = results["oracle"]
    assert oracle["psnr"] > 40 and oracle["ssim"] > 0.99 and oracle["psnr"] > model["psnr"] + 10


def test_cli_protocol_paper(tmp_path, capsys):
    folder = tmp_path / "pairs"
    folder.mkdir()
    sdr = smooth_sdr(64, 64)
    write_pair(str(folder), "synthetic", sdr, colour.sdr_to_hdr10_baseline(sdr, white_nits=250.0))
    out = str(tmp_path / "paper.json")
    assert main(["eval", str(folder), "--baseline-only", "--protocol", "paper", "--json", out]) == 0
    table = capsys.readouterr().out
    assert "Protocol: paper" in table and "| PSNR | SSIM | mPSNR |" in table and "| mean | oracle |" in table
    result = json.load(open(out))
    assert result["protocol"] == "paper"
    rows = {r["method"]: r for r in result["rows"]}
    assert set(rows["oracle"]) >= {"psnr", "ssim", "mpsnr"} and "psnr_pq" not in rows["oracle"]
    assert rows["oracle"]["psnr"] > rows["bt2408"]["psnr"]
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", str(folder), "--baseline-only", "--protocol", "nope"])
    assert exit_info.value.code == 2 and "invalid choice: 'nope'" in capsys.readouterr().err
