"""Image quality metrics: PSNR, SSIM, MS-SSIM, mPSNR and BT.2124 dE_ITP.

numpy in, python float out (`psnr`, `ssim`, ... ; `ssim` / `ms_ssim` run
`tf.image`). `mpsnr_hdr` and `ssim_matlab` are the reference's mPSNR and SSIM
(`sritm eval --protocol paper`). The training metrics `psnr_metric` and `ssim_metric` compute the
same PSNR and SSIM per image of a batch with `keras.ops`, on every backend;
they are registered as "sritm_tf>psnr" / "sritm_tf>ssim", the names saved
.keras files refer to, and logged as "psnr" / "ssim" (`keras_metrics`).
"""

import keras
import numpy as np
from keras import ops

from sritm_tf.colour import pq_eotf, rgb2020_to_ictcp


def psnr(a, b, max_val=1.0):
    """Peak signal-to-noise ratio 10 log10(max_val^2 / MSE), MSE in float64 over all
    elements. Returns inf for identical inputs."""
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(max_val**2 / mse))


def _tf_pair(a, b):
    import tensorflow as tf

    return tf, tf.constant(np.asarray(a, np.float32)), tf.constant(np.asarray(b, np.float32))


def ssim(a, b, max_val=1.0):
    """SSIM (Wang et al. 2004, IEEE TIP 13(4) eq. 13) via `tf.image.ssim` defaults:
    11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, valid filtering, mean
    over pixels and channels. a, b: HxWxC arrays (H, W >= 11). TensorFlow computes
    in float32 (variances as E[x^2] - mu^2), so expect ~1e-4 error on flat regions."""
    tf, a, b = _tf_pair(a, b)
    return float(tf.image.ssim(a, b, max_val=max_val))


def ms_ssim(a, b, max_val=1.0):
    """Multi-scale SSIM (Wang et al. 2003, eq. 7) via `tf.image.ssim_multiscale` with
    its default 5 scale weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333).
    a, b: HxWxC arrays; the default window needs H, W >= 161 (11 * 2^4 at the
    coarsest of the 5 scales)."""
    tf, a, b = _tf_pair(a, b)
    return float(tf.image.ssim_multiscale(a, b, max_val=max_val))


def mpsnr(ref_linear, dist_linear, exposures=range(-3, 4), bits=10):
    """Multi-exposure PSNR (Deep SR-ITM, Kim et al. ICCV 2019, Sec. 4.5) on linear
    light: the protocol of `sritm eval` (ours), not the reference's.

    Inputs are linear light normalised so that 1.0 = 10000 cd/m2 (e.g.
    `pq_eotf(signal) / 10000`). For each exposure stop e in `exposures`,
    q(x) = clip(round((2**e * x) * (2**bits - 1)), 0, 2**bits - 1); the MSE
    between q(ref) and q(dist) (mean over all pixels and channels) is averaged
    over all the exposures, and mpsnr = 20 log10((2**bits - 1) / sqrt(mean_mse)).
    round() rounds halves up (floor(x + 0.5)), like MATLAB `round` for x >= 0.
    Returns inf when the mean MSE is 0 (e.g. identical inputs).

    The authors' `mPSNR_HDR.m` differs in two ways (`mpsnr_hdr` follows it): it
    quantises the 10-bit PQ Y'CbCr codes / 1023 themselves, not linear light, and
    it keeps only the exposures whose mean quantised reference lies in (0.1, 0.9).
    """
    ref = np.asarray(ref_linear, np.float64)
    dist = np.asarray(dist_linear, np.float64)
    top = 2**bits - 1
    mses = []
    for e in exposures:
        q_ref = np.clip(np.floor(2.0**e * ref * top + 0.5), 0, top)
        q_dist = np.clip(np.floor(2.0**e * dist * top + 0.5), 0, top)
        mses.append(np.mean((q_ref - q_dist) ** 2))
    mse = np.mean(mses)
    return float("inf") if mse == 0 else float(20 * np.log10(top / np.sqrt(mse)))


# ---------------------------------------------------------------------------
# The reference's metrics (`test_yuv.m` of sooyekim/Deep-SR-ITM, MATLAB 2017a)
# ---------------------------------------------------------------------------
def mpsnr_hdr(img_ref, img_dist, e_min=-3, e_max=3):
    """mPSNR as the authors' `utils/mPSNR_HDR.m` computes it, called by `test_yuv.m`
    as mPSNR_HDR(HDR_YUV, pred, -3, 3) on the Y'CbCr code / 1023 arrays themselves.

    For each exposure e = e_min..e_max: `quant8` q(x) = clip(round(1023 * (x * 2^e)),
    0, 1023) (10-bit despite its name), with the product in single precision as
    MATLAB computes on the single arrays of `test_yuv.m`; the exposure counts only
    when mean(q(ref) / 1023) lies in (0.1, 0.9); then mse = (sum of the kept
    exposures' MSE(q(ref), q(dist))) / (their number), MSE = mean over all pixels
    and channels (HDR Toolbox `MSE.m`), and mpsnr = 20 log10(1023 / sqrt(mse)).
    MATLAB `round` (halves away from zero) is floor(x + 0.5) on the non-negative
    inputs `checkNegative` demands. Returns -1.0 when no exposure is kept, as the
    reference does, and inf when mse is 0.
    """
    ref = np.asarray(img_ref, np.float32)
    dist = np.asarray(img_dist, np.float32)
    if ref.shape != dist.shape:
        raise ValueError(f"mpsnr_hdr: shapes differ, {ref.shape} and {dist.shape}")
    if (ref < 0).any() or (dist < 0).any():
        raise ValueError("mpsnr_hdr: negative values (mPSNR_HDR.m's checkNegative)")

    def quant8(img, e):
        return np.clip(np.floor(np.float32(1023) * (img * np.float32(e)) + np.float32(0.5)), 0, 1023)

    mses = []
    for i in range(e_min, e_max + 1):
        t_ref = quant8(ref, 2.0**i).astype(np.float64)
        val = np.mean(t_ref / 1023.0)
        if 0.1 < val < 0.9:
            mses.append(np.mean((t_ref - quant8(dist, 2.0**i)) ** 2))
    if not mses:
        return -1.0
    mse = sum(mses) / len(mses)
    return float("inf") if mse == 0 else float(20 * np.log10(1023.0 / np.sqrt(mse)))


def _replicate_filter(x, taps):
    """Separable correlation of `x` with the 1-D `taps` along every axis, borders
    replicated: MATLAB imfilter(x, h, 'conv', 'replicate') for the symmetric
    Gaussian h = outer product of `taps`."""
    r = len(taps) // 2
    for axis in range(x.ndim):
        moved = np.moveaxis(x, axis, 0)
        padded = np.concatenate([moved[:1].repeat(r, 0), moved, moved[-1:].repeat(r, 0)])
        n = moved.shape[0]
        x = np.moveaxis(sum(w * padded[i:i + n] for i, w in enumerate(taps)), 0, axis)
    return x


def ssim_matlab(img_a, img_ref, dynamic_range=1.0, radius=1.5):
    """SSIM as MATLAB's `ssim(A, ref)` computes it with its defaults (Image Processing
    Toolbox R2014a on, the MATLAB 2017a of the authors' `test_yuv.m`, which calls
    ssim(HDR_YUV, pred) on single arrays, so L = diff(getrangefromclass) = 1).

    Gaussian weights of sigma `radius` over 2 ceil(3 radius) + 1 = 11 taps per
    axis, filtering with replicated borders (the map keeps the input's size: no
    valid-region crop), C1 = (0.01 L)^2, C2 = (0.03 L)^2, Wang et al. 2004 eq. 13,
    ssimval = mean of the whole map. An (H, W, 3) array is a 3-D volume to MATLAB
    (ndims 3): the Gaussian is 11x11x11 and also runs across the three channels,
    whose ends are replicated. That is not the per-channel SSIM averaged over
    channels of `ssim` (tf.image.ssim). An (H, W) or (H, W, 1) array gets the 2-D
    11x11 window. Computed in float64 (MATLAB computes in single).
    """
    a = np.asarray(img_a, np.float64)
    b = np.asarray(img_ref, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"ssim_matlab: shapes differ, {a.shape} and {b.shape}")
    if a.ndim == 3 and a.shape[2] == 1:
        a, b = a[..., 0], b[..., 0]
    half = int(np.ceil(3 * radius))
    taps = np.exp(-np.arange(-half, half + 1) ** 2 / (2 * radius**2))
    taps /= taps.sum()  # the 2-D / 3-D mask is their outer product, normalised the same way
    c1, c2 = (0.01 * dynamic_range) ** 2, (0.03 * dynamic_range) ** 2
    mu_a, mu_b = _replicate_filter(a, taps), _replicate_filter(b, taps)
    s_aa = _replicate_filter(a * a, taps) - mu_a**2
    s_bb = _replicate_filter(b * b, taps) - mu_b**2
    s_ab = _replicate_filter(a * b, taps) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * s_ab + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (s_aa + s_bb + c2)
    return float(np.mean(num / den))


def delta_e_itp_map(ref_pq2020_rgb, dist_pq2020_rgb):
    """Per-pixel dE_ITP (ITU-R BT.2124-0) from PQ BT.2020 R'G'B' [0, 1].

    R'G'B' -> linear cd/m2 (ST 2084 EOTF) -> LMS -> PQ L'M'S' -> ICtCp (BT.2100-2
    Table 7); T = 0.5 Ct, P = Cp; dE = 720 sqrt(dI^2 + dT^2 + dP^2). Shape (...).
    """
    d = rgb2020_to_ictcp(pq_eotf(ref_pq2020_rgb)) - rgb2020_to_ictcp(pq_eotf(dist_pq2020_rgb))
    return 720 * np.sqrt(d[..., 0] ** 2 + (0.5 * d[..., 1]) ** 2 + d[..., 2] ** 2)


def delta_e_itp(ref_pq2020_rgb, dist_pq2020_rgb):
    """Mean over pixels of `delta_e_itp_map` (ITU-R BT.2124-0), python float."""
    return float(np.mean(delta_e_itp_map(ref_pq2020_rgb, dist_pq2020_rgb)))


# ---------------------------------------------------------------------------
# Training metrics: keras.ops, batches (N, H, W, C) -> one value per image
# ---------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package="sritm_tf", name="psnr")
def psnr_metric(y_true, y_pred, max_val=1.0):
    """`psnr` per image, 10 log10(max_val^2 / MSE), MSE over H, W, C (float32)."""
    y_true, y_pred = ops.cast(y_true, "float32"), ops.cast(y_pred, "float32")
    mse = ops.mean(ops.square(y_true - y_pred), axis=(1, 2, 3))
    return 10.0 * ops.log(max_val**2 / ops.maximum(mse, 1e-12)) / np.log(10.0)


def _gaussian_window(size=11, sigma=1.5, channels=3):
    g = np.exp(-0.5 * ((np.arange(size) - (size - 1) / 2) / sigma) ** 2)
    g /= g.sum()
    return np.tile(np.outer(g, g)[:, :, None, None], (1, 1, channels, 1)).astype("float32")


@keras.saving.register_keras_serializable(package="sritm_tf", name="ssim")
def ssim_metric(y_true, y_pred, max_val=1.0):
    """`ssim` per image (Wang et al. 2004, eq. 13) as `tf.image.ssim` computes it:
    11x11 Gaussian window (sigma 1.5), K1 0.01, K2 0.03, valid filtering, mean over
    pixels and channels. Images need H, W >= 11."""
    y_true, y_pred = ops.cast(y_true, "float32"), ops.cast(y_pred, "float32")
    window = ops.convert_to_tensor(_gaussian_window(channels=y_true.shape[-1]))

    def blur(x):
        return ops.depthwise_conv(x, window, padding="valid")

    c1, c2 = (0.01 * max_val) ** 2, (0.03 * max_val) ** 2
    mu_x, mu_y = blur(y_true), blur(y_pred)
    sxx = blur(y_true * y_true) - mu_x * mu_x
    syy = blur(y_pred * y_pred) - mu_y * mu_y
    sxy = blur(y_true * y_pred) - mu_x * mu_y
    luminance = (2 * mu_x * mu_y + c1) / (mu_x * mu_x + mu_y * mu_y + c1)
    contrast = (2 * sxy + c2) / (sxx + syy + c2)
    return ops.mean(luminance * contrast, axis=(1, 2, 3))


def keras_metrics():
    """[psnr, ssim] for `model.compile(metrics=...)`, logged as "psnr" and "ssim"."""
    return [keras.metrics.MeanMetricWrapper(psnr_metric, name="psnr"),
            keras.metrics.MeanMetricWrapper(ssim_metric, name="ssim")]
