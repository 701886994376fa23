"""Quality of SDR -> HDR10 conversion on graded SDR / HDR10 pairs (`sritm eval`).

For each pair `<name>_sdr.*` / `<name>_hdr.*` (same frame, same size; SDR
8-bit BT.709 gamma R'G'B', alpha dropped; HDR 16-bit BT.2020 PQ R'G'B'):

  1. LR input: the SDR master bicubic-downscaled by `scale` with MATLAB
     `imresize` semantics (antialiased, `sritm_tf.data.resize`), as the Deep
     SR-ITM paper made its inputs, then rounded to 8 bits.
  2. Candidates, each rounded to 10-bit full-range codes (an HDR10 frame):
       model   the network, by tiled inference (`sritm_tf.inference`);
       bt2408  bicubic upscale, then SDR placed in HDR10 with reference white
               at `white_nits` (203 cd/m2 by default), BT.2408-7 clause 5
               (`colour.sdr_to_hdr10_baseline`): the classical conversion the
               model must beat at the same white;
       oracle  the same mapping with the global white level and gamma that
               maximise PQ-RGB PSNR against this very HDR frame (grid search):
               the best any global curve can do, a bound for classical ITM.
  3. Metrics against the HDR master (`sritm_tf.metrics`): PSNR on PQ R'G'B'
     and on BT.2020 Y'CbCr, SSIM and MS-SSIM on PQ R'G'B', mPSNR on linear
     light (1.0 = 10000 cd/m2), mean dE_ITP (BT.2124).

That is our protocol (`sritm eval`, `--protocol ours`). `--protocol paper` scores
as the authors' `test_yuv.m` does (`evaluate_pair_paper`): both frames as 4:2:0
YUV files read back to 4:4:4 (`load_yuv.m`), narrow-range 8-bit codes / 255 in,
10-bit codes / 1023 out, the prediction clipped but not rounded, PSNR, MATLAB
`ssim` and `mPSNR_HDR.m` on the 3-channel Y'CbCr array. On the graded frames its
PSNR reads 1.3-1.6 dB above our PSNR Y'CbCr of the same method (docs/evaluation.md).
"""
import math
import os

import numpy as np

from sritm_tf import colour, metrics
from sritm_tf.data.resize import downscale, imresize
from sritm_tf.data.pairs import check_pairs, read_matching_pair
from sritm_tf.errors import InputError

# (heading, row key, format) of each metric column of `format_table`
COLUMNS = (("PSNR PQ", "psnr_pq", ".2f"), ("PSNR YCbCr", "psnr_ycbcr", ".2f"), ("SSIM", "ssim", ".4f"),
           ("MS-SSIM", "ms_ssim", ".4f"), ("mPSNR", "mpsnr", ".2f"), ("dE_ITP", "de_itp", ".2f"))
METRICS = tuple(key for _, key, _ in COLUMNS)
ORACLE_WHITES = np.arange(100.0, 1001.0, 10.0)  # cd/m2; graded SDR white can sit well above 203
ORACLE_GAMMAS = np.round(np.linspace(2.0, 2.8, 17), 2)  # 2.00, 2.05, ..., 2.80
MS_SSIM_MIN_SIDE = 161  # 11 * 2^4: the 5-scale window of tf.image.ssim_multiscale
#: Why a metric column reads "n/a" (NaN in the rows, null in `sritm eval --json`): undefined on these frames.
UNDEFINED = {"ms_ssim": f"MS-SSIM needs frames of at least {MS_SSIM_MIN_SIDE}x{MS_SSIM_MIN_SIDE} pixels "
                        "(SSIM's 11x11 window at 5 scales, each half the last)"}


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


def white_search(sdr_up, hdr):
    """The SDR white level (cd/m2) of the classical mapping at gamma 2.4 that fits
    `hdr` best: what `--white-nits auto` uses."""
    return oracle_search(sdr_up, hdr, gammas=(2.4,))[0]


HUE_SECTORS = ("red", "yellow", "green", "cyan", "blue", "magenta")


def hue_sectors(reference, min_chroma=0.02):
    """{hue: mask} of the hue sectors of a PQ BT.2020 R'G'B' `reference`: pixels
    whose ICtCp chroma exceeds `min_chroma`, binned by hue angle into six 60-degree
    sectors named after the hue at their centre (measured on BT.2020 primaries and
    secondaries)."""
    ictcp = colour.rgb2020_to_ictcp(colour.pq_eotf(reference))
    chroma = np.hypot(ictcp[..., 1], ictcp[..., 2])
    centres = np.arctan2(*colour.rgb2020_to_ictcp(100.0 * _PRIMARIES)[:, [2, 1]].T)
    hue = np.arctan2(ictcp[..., 2], ictcp[..., 1])
    nearest = np.argmin(np.abs(np.angle(np.exp(1j * (hue[..., None] - centres)))), axis=-1)
    return {name: (chroma > min_chroma) & (nearest == i) for i, name in enumerate(HUE_SECTORS)}


def hue_errors(sectors, de_map):
    """Mean of the per-pixel dE_ITP `de_map` (`metrics.delta_e_itp_map`) in each
    hue sector (`hue_sectors` of the reference); NaN for a sector with no pixel."""
    return {name: float(de_map[mask].mean()) if mask.any() else float("nan") for name, mask in sectors.items()}


_PRIMARIES = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 1, 1], [0, 0, 1], [1, 0, 1]], np.float64)


def quality(reference, candidate, sectors=None):
    """All metrics of a PQ BT.2020 R'G'B' `candidate` against `reference` (H, W, 3),
    with the mean dE_ITP per hue sector as "de_<hue>" (`hue_errors`). `sectors`:
    `hue_sectors(reference)`, computed here when None (pass it to score several
    candidates against one reference)."""
    if sectors is None:
        sectors = hue_sectors(reference)
    de = metrics.delta_e_itp_map(reference, candidate)
    ref_yuv, cand_yuv = colour.pq2020_rgb_to_model_yuv(reference), colour.pq2020_rgb_to_model_yuv(candidate)
    large = min(reference.shape[:2]) >= MS_SSIM_MIN_SIDE
    return {
        "psnr_pq": metrics.psnr(reference, candidate),
        "psnr_ycbcr": metrics.psnr(ref_yuv, cand_yuv),
        "ssim": metrics.ssim(reference, candidate),
        "ms_ssim": metrics.ms_ssim(reference, candidate) if large else float("nan"),
        "mpsnr": metrics.mpsnr(colour.pq_eotf(reference) / colour.PQ_PEAK,
                               colour.pq_eotf(candidate) / colour.PQ_PEAK),
        "de_itp": float(np.mean(de)),
        **{f"de_{hue}": value for hue, value in hue_errors(sectors, de).items()},
    }


def evaluate_pair(sdr, hdr, scale, predict=None, white_nits=203.0, protocol="ours", images=None):
    """Metrics of each method on one HR pair (sizes multiples of `scale`).

    `predict`: (LR SDR R'G'B' (h, w, 3), white cd/m2) -> HR PQ BT.2020 R'G'B', or
    None for the classical baselines only. `white_nits`: the SDR white of the
    model's classical skip and of "bt2408" (the classical mapping), or "auto" for
    the white that fits this frame best at gamma 2.4 (`white_search`).
    protocol="paper": the reference's protocol (`evaluate_pair_paper`; `predict` then
    maps network-convention Y'CbCr).
    `images`: a dict that receives each method's frame {method: array}, as scored.
    Returns ({method: metrics}, {"white", "gamma"} of the oracle, white used).
    """
    if protocol == "paper":
        sdr_yuv, reference = paper_frames(sdr, hdr)
        lr = imresize(sdr_yuv, 1.0 / scale)
        sdr_up = upscale_bicubic(np.clip(colour.model_yuv_to_sdr_rgb(paper_to_model_yuv(lr)), 0.0, 1.0), scale)
        model_in, model_out = paper_to_model_yuv, model_to_paper_yuv
        to_frame, score = pq_rgb_to_paper_yuv, paper_quality
    else:
        lr = make_lr(sdr, scale)
        sdr_up = upscale_bicubic(lr, scale)
        reference, sectors = hdr, hue_sectors(hdr)
        model_in, model_out = (lambda x: x), to_hdr10
        to_frame, score = to_hdr10, (lambda ref, image: quality(ref, image, sectors))
    white, gamma = oracle_search(sdr_up, hdr)
    used = white_search(sdr_up, hdr) if white_nits == "auto" else float(white_nits)
    candidates = {}
    if predict is not None:
        candidates["model"] = model_out(predict(model_in(lr), used))
    candidates["bt2408"] = to_frame(colour.sdr_to_hdr10_baseline(sdr_up, used, 2.4))
    candidates["oracle"] = to_frame(colour.sdr_to_hdr10_baseline(sdr_up, white, gamma))
    results = {method: score(reference, image) for method, image in candidates.items()}
    if images is not None:
        images.update(candidates)
    return results, {"white": white, "gamma": gamma}, used


def model_yuv_predictor(model, tile=None, engine="tf", precision="fp32"):
    """(LR network-convention Y'CbCr, white cd/m2) -> HR network-convention Y'CbCr
    through `model` by tiled inference, its classical skip set to that white
    (`pretrained.configure`), run by `engine` in `precision` as `sritm convert`
    runs it (`engines.runner`; int8: the calibrated network of that white)."""
    from sritm_tf import engines
    from sritm_tf.inference import DEFAULT_TILES, TiledPredictor
    from sritm_tf.pretrained import configure

    current = [None, None]  # (white, its predictor): one white's network at a time (int8: a calibration each)

    def predict(lr_yuv, white_nits=203.0):
        if current[0] != white_nits:
            network = configure(model, white_nits)
            current[:] = [white_nits, TiledPredictor(network, tile=tile or DEFAULT_TILES[precision],
                                                     run=engines.runner(network, engine, precision))]
        return current[1](np.asarray(lr_yuv, np.float32))

    return predict


def model_predictor(model, tile=None, engine="tf", precision="fp32"):
    """(LR SDR R'G'B', white cd/m2) -> HR PQ BT.2020 R'G'B' through `model`
    (`model_yuv_predictor`)."""
    predict_yuv = model_yuv_predictor(model, tile, engine, precision)

    def predict(lr_rgb, white_nits=203.0):
        return colour.model_yuv_to_pq2020_rgb(predict_yuv(colour.sdr_rgb_to_model_yuv(lr_rgb), white_nits))

    return predict


# ---------------------------------------------------------------------------
# The reference's protocol (`sritm eval --protocol paper`): `test_yuv.m`
# ---------------------------------------------------------------------------
PAPER_COLUMNS = (("PSNR", "psnr", ".2f"), ("SSIM", "ssim", ".4f"), ("mPSNR", "mpsnr", ".2f"))
PAPER_METRICS = tuple(key for _, key, _ in PAPER_COLUMNS)
PAPER_TITLE = "Protocol: paper (test_yuv.m: 4:2:0 narrow-range Y'CbCr codes / 1023, MATLAB ssim, mPSNR_HDR.m)"
_CHROMA_OFFSET = np.array([0.0, 0.5, 0.5])


def yuv420_frame(ycbcr, bits):
    """Full-range float Y'CbCr (H, W, 3; H, W even) -> the frame `test_yuv.m` holds
    after `load_yuv.m` reads it from a 4:2:0 YUV file, as codes / (2^bits - 1):
    narrow-range codes (`colour.quantize`), chroma 2x2-averaged
    (`colour.chroma_444_to_420`) before quantising, then each chroma code repeated
    over its 2x2 block (`load_yuv.m`: no interpolation)."""
    codes = colour.quantize(ycbcr, bits, full_range=False, kind="ycbcr").astype(np.float64)
    cb, cr = (colour.chroma_444_to_420(ycbcr[..., c]) for c in (1, 2))
    chroma = colour.quantize(np.stack([np.zeros_like(cb), cb, cr], axis=-1), bits, full_range=False,
                             kind="ycbcr")[..., 1:]
    codes[..., 1:] = chroma.repeat(2, axis=0).repeat(2, axis=1)
    return codes / (2**bits - 1)


def paper_frames(sdr, hdr):
    """(SDR_YUV, HDR_YUV) of `test_yuv.m` from an HR pair of R'G'B' frames: BT.709
    Y'CbCr 8-bit codes / 255 and BT.2020 NCL Y'CbCr 10-bit codes / 1023, narrow
    range, 4:2:0 repeated to 4:4:4 (`yuv420_frame`)."""
    return yuv420_frame(colour.rgb_to_ycbcr(sdr, "bt709"), 8), yuv420_frame(colour.rgb_to_ycbcr(hdr, "bt2020"), 10)


def paper_to_model_yuv(sdr_yuv):
    """The reference network's input (8-bit narrow-range codes / 255) -> this
    package's network input (full-range Y'CbCr, chroma + 0.5)."""
    return colour.dequantize(np.asarray(sdr_yuv) * 255, 8, full_range=False, kind="ycbcr") + _CHROMA_OFFSET


def model_to_paper_yuv(hdr_yuv):
    """This package's network output (full-range BT.2020 Y'CbCr, chroma + 0.5) ->
    the reference's output convention, 10-bit narrow-range codes / 1023, unrounded."""
    return colour.code_values(np.asarray(hdr_yuv) - _CHROMA_OFFSET, 10, full_range=False, kind="ycbcr") / 1023


def pq_rgb_to_paper_yuv(pq_rgb):
    """PQ BT.2020 R'G'B' -> 10-bit narrow-range BT.2020 NCL Y'CbCr codes / 1023, unrounded."""
    return colour.code_values(colour.rgb_to_ycbcr(pq_rgb, "bt2020"), 10, full_range=False, kind="ycbcr") / 1023


def paper_quality(hdr_yuv, pred):
    """`test_yuv.m`'s metrics of a prediction: pred = min(max(pred, 0), 1), then
    psnr(HDR_YUV, pred, 1), ssim(HDR_YUV, pred) (`metrics.ssim_matlab`) and
    mPSNR_HDR(HDR_YUV, pred, -3, 3) (`metrics.mpsnr_hdr`), all on the 3-channel
    Y'CbCr code / 1023 arrays."""
    pred = np.clip(pred, 0.0, 1.0)
    return {"psnr": metrics.psnr(hdr_yuv, pred, 1.0), "ssim": metrics.ssim_matlab(hdr_yuv, pred),
            "mpsnr": metrics.mpsnr_hdr(hdr_yuv, pred, -3, 3)}


def evaluate_pair_paper(sdr, hdr, scale, predict=None, white_nits=203.0):
    """`evaluate_pair` under the reference's protocol (`test_yuv.m`).

    SDR_YUV, HDR_YUV = `paper_frames`; the LR input is imresize(SDR_YUV, 1/scale)
    (bicubic, antialiased, not rounded); each method's prediction, in the
    reference's convention, is scored by `paper_quality`. `predict`: (LR
    network-convention Y'CbCr, white cd/m2) -> HR network-convention Y'CbCr
    (`model_yuv_predictor`), mapped to and from the reference's codes. The
    baselines map the same LR input, taken back to R'G'B'.
    Returns ({method: metrics}, {"white", "gamma"} of the oracle, white used).
    """
    return evaluate_pair(sdr, hdr, scale, predict, white_nits, protocol="paper")


def evaluate(folder, scale=2, predict=None, crop=None, progress=None, white_nits=203.0, protocol="ours",
             frames=None):
    """Rows {"frame", "method", metrics..., per-hue dE_ITP "de_<hue>", "white" (and
    "gamma" for the oracle), and for the model "worse": whether it loses to the
    classical mapping at the same white in PSNR PQ or dE_ITP, "size": the scored
    "WxH"} for every pair in `folder`, HR frames centre-cropped to `crop` (h, w), at
    most the frame.

    protocol="paper": `evaluate_pair_paper`, rows of `PAPER_METRICS` ("worse": lower
    PSNR than the classical mapping); `predict` is then a `model_yuv_predictor`.
    `frames`: called after each pair as frames(name, {"sdr": HR SDR R'G'B', "hdr": the
    reference, method: its frame, ...}, the pair's rows) (`sritm_tf.report.eval_frames`)."""
    if protocol not in ("ours", "paper"):
        raise ValueError(f"protocol must be 'ours' or 'paper', got {protocol!r}")
    paper = protocol == "paper"
    pairs = check_pairs(folder)  # every pair reads and matches before the first is scored
    rows = []
    for name, sdr_path, hdr_path in pairs:
        sdr, hdr = read_matching_pair(sdr_path, hdr_path)
        sdr, hdr = centre_crop(sdr, crop, scale), centre_crop(hdr, crop, scale)
        if min(hdr.shape[:2]) < 11:
            raise InputError(f"{hdr_path}: {hdr.shape[1]}x{hdr.shape[0]} pixels (whole multiples of x{scale}) is too "
                             "small to score: SSIM's 11x11 window needs at least 11 each way")
        images = {"sdr": sdr, "hdr": hdr}
        results, oracle, used = evaluate_pair(sdr, hdr, scale, predict, white_nits, protocol, images)
        for method, values in results.items():
            row = {"frame": name, "method": method, **values, "white": used,
                   "size": f"{hdr.shape[1]}x{hdr.shape[0]}"}
            if method == "oracle":
                row.update(oracle)
            if method == "model":
                base = results["bt2408"]
                if paper:
                    row["worse"] = bool(values["psnr"] < base["psnr"])
                else:
                    row["worse"] = bool(values["psnr_pq"] < base["psnr_pq"] or values["de_itp"] > base["de_itp"])
            rows.append(row)
        if frames:
            frames(name, images, rows[-len(results):])
        if progress:
            progress(name)
    return rows


def _metric_names(rows):
    return PAPER_METRICS if rows and "psnr" in rows[0] else METRICS


def mean_rows(rows):
    """One row per method with the mean of each metric over frames."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    return [{"frame": "mean", "method": m,
             **{k: float(np.mean([r[k] for r in rows if r["method"] == m])) for k in _metric_names(rows)}}
            for m in methods]


def _worst_hue(row):
    """"<hue> <dE_ITP>" of the hue sector with the largest dE_ITP, "" when none."""
    hues = {h: row.get(f"de_{h}", float("nan")) for h in HUE_SECTORS}
    hues = {h: v for h, v in hues.items() if not math.isnan(v)}
    worst = max(hues, key=hues.get) if hues else None
    return f"{worst} {hues[worst]:.1f}" if worst else ""


def format_table(rows):
    """Markdown table of per-frame rows followed by the means. "worst hue" is the hue
    sector with the largest dE_ITP; a model row that loses to the classical mapping
    (bt2408 at the same white) in PSNR PQ or dE_ITP is flagged WORSE. A metric that is
    undefined on the frames (NaN) reads "n/a", with a line under the table saying why
    (`UNDEFINED`). Rows of the reference's protocol (`evaluate_pair_paper`) get its
    columns, no hues, under a title line."""
    paper = _metric_names(rows) == PAPER_METRICS
    columns = PAPER_COLUMNS if paper else COLUMNS
    head = ("frame", "method", *(heading for heading, _, _ in columns), *(() if paper else ("worst hue",)),
            "white / gamma", "vs classical")
    lines = [PAPER_TITLE] if paper else []
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    undefined = {}
    for r in rows + mean_rows(rows):
        params = f"{r['white']:.0f}" + (f" / {r['gamma']:.2f}" if "gamma" in r else "") if "white" in r else ""
        flag = ("WORSE" if r["worse"] else "better") if "worse" in r else ""
        undefined.update((heading, key) for heading, key, _ in columns if math.isnan(r[key]))
        cells = (r["frame"], r["method"],
                 *("n/a" if math.isnan(r[key]) else format(r[key], spec) for _, key, spec in columns),
                 *(() if paper else (_worst_hue(r),)), params, flag)
        lines.append("| " + " | ".join(cells) + " |")
    lines += [f"n/a: {UNDEFINED.get(key, f'{heading} is undefined on these frames')}"
              for heading, key in undefined.items()]
    return "\n".join(lines)
