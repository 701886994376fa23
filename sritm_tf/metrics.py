"""Image quality metrics: PSNR, SSIM, MS-SSIM, mPSNR and BT.2124 dE_ITP.

numpy in, python float out (`psnr`, `ssim`, ... ; `ssim` / `ms_ssim` run
`tf.image`). The training metrics `psnr_metric` and `ssim_metric` compute the
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
    """Multi-exposure PSNR (Deep SR-ITM, Kim et al. ICCV 2019, Sec. 4.5; the authors'
    `mPSNR_HDR.m` after Banterle's HDR Toolbox).

    Inputs are linear light normalised so that 1.0 = 10000 cd/m2 (e.g.
    `pq_eotf(signal) / 10000`). For each exposure stop e in `exposures`,
    q(x) = clip(round((2**e * x) * (2**bits - 1)), 0, 2**bits - 1); the MSE
    between q(ref) and q(dist) (mean over all pixels and channels) is averaged
    over the exposures, and mpsnr = 20 log10((2**bits - 1) / sqrt(mean_mse)).
    round() rounds halves up (floor(x + 0.5)), like MATLAB `round` for x >= 0.
    Returns inf when the mean MSE is 0 (e.g. identical inputs).
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
