"""Quality of SDR -> HDR10 conversion on graded SDR / HDR10 pairs (`sritm eval`).

For each pair `<name>_sdr.*` / `<name>_hdr.*` (same frame, same size; SDR
8-bit BT.709 gamma R'G'B', alpha dropped; HDR 16-bit BT.2020 PQ R'G'B'):

  1. LR input: the SDR master bicubic-downscaled by `scale` with MATLAB
     `imresize` semantics (antialiased, `sritm_tf.data.resize`), as the Deep
     SR-ITM paper made its inputs, then rounded to 8 bits.
  2. Candidates, each rounded to 10-bit full-range codes (an HDR10 frame):
       model   the network, by tiled inference (`sritm_tf.inference`);
       bt2408  bicubic upscale, then SDR placed in HDR10 with reference white
               at 203 cd/m2, BT.2408-7 clause 5 (`colour.sdr_to_hdr10_baseline`);
       oracle  the same mapping with the global white level and gamma that
               maximise PQ-RGB PSNR against this very HDR frame (grid search):
               the best any global curve can do, a bound for classical ITM.
  3. Metrics against the HDR master (`sritm_tf.metrics`): PSNR on PQ R'G'B'
     and on BT.2020 Y'CbCr, SSIM and MS-SSIM on PQ R'G'B', mPSNR on linear
     light (1.0 = 10000 cd/m2), mean dE_ITP (BT.2124).
"""
import glob
import math
import os

import numpy as np

from sritm_tf import colour, metrics
from sritm_tf.data.resize import downscale, imresize
from sritm_tf.sizes import parse_shape

METRICS = ("psnr_pq", "psnr_ycbcr", "ssim", "ms_ssim", "mpsnr", "de_itp")
ORACLE_WHITES = np.arange(100.0, 1001.0, 10.0)  # cd/m2; graded SDR white can sit well above 203
ORACLE_GAMMAS = np.round(np.linspace(2.0, 2.8, 17), 2)  # 2.00, 2.05, ..., 2.80
MS_SSIM_MIN_SIDE = 161  # 11 * 2^4: the 5-scale window of tf.image.ssim_multiscale


def find_pairs(folder):
    """Sorted [(name, sdr_path, hdr_path)] of `<name>_sdr.*` / `<name>_hdr.*` in `folder`."""
    pairs = []
    for sdr_path in sorted(glob.glob(os.path.join(folder, "*_sdr.*"))):
        name = os.path.basename(sdr_path).rsplit("_sdr.", 1)[0]
        hdr_paths = sorted(glob.glob(os.path.join(folder, f"{name}_hdr.*")))
        if hdr_paths:
            pairs.append((name, sdr_path, hdr_paths[0]))
    return pairs


def read_rgb(path):
    """An 8- or 16-bit image file -> float64 R'G'B' in [0, 1] (alpha dropped)."""
    import cv2

    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image is None or image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"{path}: not an 8- or 16-bit image")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    rgb = image[:, :, 2::-1]  # BGR(A) -> RGB
    return rgb.astype(np.float64) / np.iinfo(image.dtype).max


def centre_crop(image, size=None, multiple=1):
    """Centre crop to `size` (h, w) (the whole image when None), both sides
    rounded down to a multiple of `multiple`."""
    height, width = image.shape[:2]
    h, w = size or (height, width)
    h, w = min(h, height) // multiple * multiple, min(w, width) // multiple * multiple
    y0, x0 = (height - h) // 2, (width - w) // 2
    return image[y0:y0 + h, x0:x0 + w]


def make_lr(sdr, scale):
    """LR SDR input: MATLAB-style antialiased bicubic downscale, rounded to 8 bits."""
    return np.round(np.clip(downscale(sdr, scale), 0.0, 1.0) * 255) / 255


def upscale_bicubic(lr, scale):
    """Bicubic upscale (MATLAB `imresize`, Keys a = -0.5), clipped to [0, 1]."""
    return np.clip(imresize(lr, scale), 0.0, 1.0)


def to_hdr10(pq_rgb):
    """Rounds PQ R'G'B' to 10-bit full-range code values and back to [0, 1]."""
    return colour.dequantize(colour.quantize(np.clip(pq_rgb, 0.0, 1.0), 10), 10)


def oracle_search(sdr_up, hdr, whites=ORACLE_WHITES, gammas=ORACLE_GAMMAS, stride=4):
    """(white cd/m2, gamma) of `colour.sdr_to_hdr10_baseline` maximising PQ-RGB PSNR
    against `hdr`, by grid search on every `stride`-th pixel of each axis."""
    sdr = np.clip(sdr_up[::stride, ::stride], 0.0, 1.0)
    target = hdr[::stride, ::stride]
    best, best_mse = None, math.inf
    for gamma in gammas:
        linear = colour.rgb709_to_rgb2020(colour.gamma_decode(sdr, gamma))  # at 1 cd/m2 white
        for white in whites:
            mse = np.mean((colour.pq_inverse_eotf(np.maximum(linear * white, 0.0)) - target) ** 2)
            if mse < best_mse:
                best, best_mse = (float(white), float(gamma)), mse
    return best


def quality(reference, candidate):
    """All metrics of a PQ BT.2020 R'G'B' `candidate` against `reference` (H, W, 3)."""
    ref_yuv, cand_yuv = colour.pq2020_rgb_to_model_yuv(reference), colour.pq2020_rgb_to_model_yuv(candidate)
    large = min(reference.shape[:2]) >= MS_SSIM_MIN_SIDE
    return {
        "psnr_pq": metrics.psnr(reference, candidate),
        "psnr_ycbcr": metrics.psnr(ref_yuv, cand_yuv),
        "ssim": metrics.ssim(reference, candidate),
        "ms_ssim": metrics.ms_ssim(reference, candidate) if large else float("nan"),
        "mpsnr": metrics.mpsnr(colour.pq_eotf(reference) / colour.PQ_PEAK,
                               colour.pq_eotf(candidate) / colour.PQ_PEAK),
        "de_itp": metrics.delta_e_itp(reference, candidate),
    }


def evaluate_pair(sdr, hdr, scale, predict=None):
    """Metrics of each method on one HR pair (sizes multiples of `scale`).

    `predict`: LR SDR R'G'B' (h, w, 3) -> HR PQ BT.2020 R'G'B', or None for the
    classical baselines only. Returns ({method: metrics}, {"white", "gamma"} of the oracle).
    """
    lr = make_lr(sdr, scale)
    sdr_up = upscale_bicubic(lr, scale)
    white, gamma = oracle_search(sdr_up, hdr)
    candidates = {}
    if predict is not None:
        candidates["model"] = predict(lr)
    candidates["bt2408"] = colour.sdr_to_hdr10_baseline(sdr_up, 203.0, 2.4)
    candidates["oracle"] = colour.sdr_to_hdr10_baseline(sdr_up, white, gamma)
    results = {method: quality(hdr, to_hdr10(image)) for method, image in candidates.items()}
    return results, {"white": white, "gamma": gamma}


def model_predictor(model, tile=None):
    """LR SDR R'G'B' -> HR PQ BT.2020 R'G'B' through `model` by tiled inference."""
    from sritm_tf.inference import DEFAULT_TILE, TiledPredictor

    predictor = TiledPredictor(model, tile=tile or DEFAULT_TILE)

    def predict(lr_rgb):
        yuv = colour.sdr_rgb_to_model_yuv(lr_rgb).astype(np.float32)
        return colour.model_yuv_to_pq2020_rgb(predictor(yuv))

    return predict


def evaluate(folder, scale=2, predict=None, crop=None, progress=None):
    """Rows {"frame", "method", metrics..., and "white"/"gamma" for the oracle} for
    every pair in `folder`, HR frames centre-cropped to `crop` ("WxH" or (h, w))."""
    if isinstance(crop, str):
        crop = parse_shape(crop, "crop")
    pairs = find_pairs(folder)
    if not pairs:
        raise ValueError(f"{folder}: no <name>_sdr.* / <name>_hdr.* pairs")
    rows = []
    for name, sdr_path, hdr_path in pairs:
        sdr, hdr = read_rgb(sdr_path), read_rgb(hdr_path)
        if sdr.shape != hdr.shape:
            raise ValueError(f"{hdr_path}: size {hdr.shape[1]}x{hdr.shape[0]} differs from "
                             f"{os.path.basename(sdr_path)} {sdr.shape[1]}x{sdr.shape[0]}")
        sdr, hdr = centre_crop(sdr, crop, scale), centre_crop(hdr, crop, scale)
        results, oracle = evaluate_pair(sdr, hdr, scale, predict)
        for method, values in results.items():
            rows.append({"frame": name, "method": method, **values, **(oracle if method == "oracle" else {})})
        if progress:
            progress(name)
    return rows


def mean_rows(rows):
    """One row per method with the mean of each metric over frames."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    return [{"frame": "mean", "method": m,
             **{k: float(np.mean([r[k] for r in rows if r["method"] == m])) for k in METRICS}}
            for m in methods]


def format_table(rows):
    """Markdown table of per-frame rows followed by the means."""
    head = ("frame", "method", "PSNR PQ", "PSNR YCbCr", "SSIM", "MS-SSIM", "mPSNR", "dE_ITP", "white / gamma")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows + mean_rows(rows):
        params = f"{r['white']:.0f} / {r['gamma']:.2f}" if "white" in r else ""
        cells = (r["frame"], r["method"], f"{r['psnr_pq']:.2f}", f"{r['psnr_ycbcr']:.2f}", f"{r['ssim']:.4f}",
                 f"{r['ms_ssim']:.4f}", f"{r['mpsnr']:.2f}", f"{r['de_itp']:.2f}", params)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
