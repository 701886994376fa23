"""A show's grade from a few graded frames: `sritm calibrate PAIRS -o grade.json` fits the SDR
reference white (`--white-nits`) at which the network's output fits the graded HDR10 best, and
`--grade grade.json` of `sritm convert`, `convert-batch`, `eval` and `train` applies it.

How the white enters the network (`model.build_deep_sritm`, skip="classical"): its output is
a residual plus the classical conversion (`layers.ClassicalMapping`, BT.2408 clause 5) of the
bicubic-upsampled input at the white W, and the residual does not depend on W. So one forward
pass per pair gives the output at every white: in PQ BT.2020 R'G'B',

    out(W) = clip(M^-1 r + PQ(W * L), 0, 1)

with r the residual (Y'CbCr), M the BT.2020 Y'CbCr matrix (the chroma offsets cancel) and L the
linear BT.2020 light of the bicubic SDR at white 1 (BT.1886 gamma 2.4, BT.2087 primaries).

The fit: each pair is scored as `sritm eval` scores it, whole (LR = antialiased bicubic 1/scale
of the SDR, rounded to 8 bits; the network by tiled inference, `inference.TiledPredictor`; PSNR
on PQ R'G'B' after 10-bit rounding), so `sritm eval --grade` gives the same numbers. (Crops would
be faster but are not the frame: on the graded frames three 256-pixel LR squares put the white
2 % off the whole frame's, and the frame-to-frame loss past 0.3 dB.) The white minimises the mean
over pairs of the PQ R'G'B' mean squared error (on every `STRIDE`-th pixel each way), plus a weak
prior toward BT.2408's 203 cd/m2, `PRIOR` ln(W / 203)^2 (about 0.01 dB at twice the default: it
decides only where the frames do not), searched in log W within `WHITE_RANGE`: a grid, then
Brent's bounded search (`scipy.optimize.minimize_scalar`) between the best grid point's
neighbours. Only the white is fitted: the peak (`--peak-nits`, 1000 by default) is near-best on
both graded frames of the project's data and the gamma is not a parameter of the network's skip
(docs/grade.md).

grade.json (written atomically; small; read back by `read_grade`):

    white_nits     the fitted SDR reference white, cd/m2 (what --white-nits sets)
    scale          the upscaling factor it was fitted at (2 or 4)
    weights        the network: a shipped preset's name or the weights file
    pairs          per pair: name, size (HR WxH scored), psnr_before / psnr_after (dB, PQ R'G'B'),
                   de_itp_before / de_itp_after (mean dE_ITP, BT.2124); before = at 203 cd/m2
    psnr_before, psnr_after, de_itp_before, de_itp_after   their means over the pairs

`sritm train --pairs` writes RUN/grade.json (`write_run_grade`): white_nits, scale, weights (the
run's .npz), init, pairs_dir and calibration (the grade fitted with the --init network, or null).

Only white_nits and scale are required of a grade file; `read_grade` checks it without
TensorFlow, so a bad file fails before a command starts it.
"""
import json
import math
import os

import numpy as np

from sritm_tf.errors import InputError

DEFAULT_WHITE = 203.0  # cd/m2, ITU-R BT.2408 HDR Reference White
WHITE_RANGE = (100.0, 1000.0)  # cd/m2: where the fit looks
WHITE_LIMITS = (0.0, 10000.0)  # cd/m2: what a grade file may hold, as --white-nits
PRIOR = 1e-6  # PQ MSE per ln(W / 203)^2
GRID = 25  # log-spaced whites of the first pass (10 % apart over WHITE_RANGE)
STRIDE = 2  # the fit's objective reads every STRIDE-th pixel each way (the scores read all)


# ---------------------------------------------------------------------------
# The grade file (no TensorFlow)
# ---------------------------------------------------------------------------
def read_grade(path):
    """The grade file at `path` as a dict; InputError naming the file and the problem (missing,
    unreadable, not JSON, not an object, a required key missing, a value out of range)."""
    try:
        with open(path, encoding="utf-8") as f:
            grade = json.load(f)
    except FileNotFoundError:
        raise InputError(f"{path}: no such grade file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, not a grade file") from None
    except OSError as err:
        raise InputError(f"{path}: cannot read the grade file ({err.strerror})") from None
    except (ValueError, UnicodeDecodeError) as err:  # json.JSONDecodeError is a ValueError
        raise InputError(f"{path}: not a JSON grade file ({err})") from None
    if not isinstance(grade, dict):
        raise InputError(f"{path}: a grade file holds a JSON object, not {type(grade).__name__}")
    for key in ("white_nits", "scale"):
        if key not in grade:
            raise InputError(f"{path}: no {key!r} in the grade file")
    white = grade["white_nits"]
    if isinstance(white, bool) or not isinstance(white, (int, float)) or not WHITE_LIMITS[0] < white <= WHITE_LIMITS[1]:
        raise InputError(f"{path}: white_nits: expected cd/m2 in (0, 10000], got {white!r}")
    if grade["scale"] not in (2, 4) or isinstance(grade["scale"], bool):
        raise InputError(f"{path}: scale: expected 2 or 4, got {grade['scale']!r}")
    return grade


def apply_grade(args, default_white=DEFAULT_WHITE):
    """Fills `args.white_nits` (None: not given on the command line) from `args.grade`, the
    grade file, if one is given, else with `default_white`; an explicit --white-nits wins.
    Returns the grade (a dict) or None."""
    grade = read_grade(args.grade) if getattr(args, "grade", None) else None
    if args.white_nits is None:
        args.white_nits = grade["white_nits"] if grade else default_white
    if grade and grade["scale"] != getattr(args, "scale", grade["scale"]):
        from sritm_tf.notes import note

        note(f"{args.grade}: fitted at x{grade['scale']}, used at x{args.scale}")
    return grade


def write_grade(path, grade):
    """Writes `grade` (a dict) to `path` as JSON, atomically (`fileio.atomic_path`)."""
    from sritm_tf.fileio import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(grade, f, indent=1)
        f.write("\n")
    return path


# ---------------------------------------------------------------------------
# The fit
# ---------------------------------------------------------------------------
def network_parts(model):
    """A model with `model`'s input whose output is its residual (HR Y'CbCr, what the last Add
    adds to the classical skip) and the bicubic-upsampled input the skip maps, concatenated
    (6 channels, so that `inference.TiledPredictor` runs it); InputError for a network without
    the classical skip (its output does not depend on the white)."""
    import keras

    names = {layer.name for layer in model.layers}
    if "classical" not in names:
        raise InputError(f"{model.name}: adds its residual to the bicubic input, not to the classical "
                         "skip: its output does not depend on the white, there is nothing to fit")
    residual, base = model.get_layer("hdr_yuv").input[0], model.get_layer("classical").input
    return keras.Model(model.input, keras.layers.Concatenate(axis=-1)([residual, base]))


def prepare_pair(predict, name, sdr, hdr, scale):
    """One pair (HR SDR R'G'B', HR HDR PQ R'G'B', float), cropped to whole multiples of `scale`
    as `sritm eval` crops it: a dict with name, size ("WxH"), sdr, lr (LR SDR R'G'B'), hdr (the
    reference), and the parts of the network's output at any white (`network_output`): residual
    (PQ R'G'B', M^-1 r) and light (L). `predict`: LR Y'CbCr -> `network_parts`' output."""
    from sritm_tf import colour
    from sritm_tf.evaluate import centre_crop, make_lr

    sdr, hdr = centre_crop(sdr, None, scale), centre_crop(hdr, None, scale)
    lr = make_lr(sdr, scale)
    parts = np.asarray(predict(colour.sdr_rgb_to_model_yuv(lr).astype(np.float32)), np.float64)
    rgb = np.clip(colour.model_yuv_to_sdr_rgb(parts[..., 3:]), 0.0, 1.0)
    light = np.maximum(colour.rgb709_to_rgb2020(colour.gamma_decode(rgb, 2.4)), 0.0)
    residual = colour.ycbcr_to_rgb(parts[..., :3], "bt2020")  # linear: the 0.5 chroma offsets cancel
    return {"name": name, "size": f"{hdr.shape[1]}x{hdr.shape[0]}", "sdr": sdr, "lr": lr, "hdr": hdr,
            "residual": residual, "light": light}


def network_output(pair, white):
    """The network's HR output (PQ BT.2020 R'G'B', unrounded) on `pair` at `white` cd/m2."""
    from sritm_tf.colour import pq_inverse_eotf

    return np.clip(pair["residual"] + pq_inverse_eotf(pair["light"] * white), 0.0, 1.0)


def objective(pairs, white):
    """Mean over pairs of the PQ R'G'B' MSE of the network at `white`, plus the prior."""
    mse = np.mean([np.mean((network_output(p, white) - p["hdr"]) ** 2) for p in pairs])
    return float(mse + PRIOR * math.log(white / DEFAULT_WHITE) ** 2)


def fit_white(pairs, bounds=WHITE_RANGE):
    """The white (cd/m2, 0.1 apart) minimising `objective` on every `STRIDE`-th pixel of
    `pairs` each way: a log-spaced grid over `bounds`, then Brent's bounded search between the
    best grid point's neighbours."""
    from scipy.optimize import minimize_scalar

    pairs = [{key: np.ascontiguousarray(p[key][::STRIDE, ::STRIDE]) for key in ("residual", "light", "hdr")}
             for p in pairs]
    logs = np.linspace(math.log(bounds[0]), math.log(bounds[1]), GRID)
    costs = [objective(pairs, math.exp(v)) for v in logs]
    best = int(np.argmin(costs))
    low, high = logs[max(best - 1, 0)], logs[min(best + 1, GRID - 1)]
    found = minimize_scalar(lambda v: objective(pairs, math.exp(v)), bounds=(low, high), method="bounded",
                            options={"xatol": 1e-4})
    white = math.exp(found.x) if found.fun <= costs[best] else math.exp(logs[best])
    return round(white, 1)


def score(pair, white, scale):
    """Metrics of `pair` at `white` as `sritm eval` scores them (10-bit rounded): the network
    ("psnr", "de_itp") and the classical conversion ("psnr_classical", "de_itp_classical"),
    and their frames: "model", "classical" (PQ R'G'B')."""
    from sritm_tf import colour, metrics
    from sritm_tf.evaluate import to_hdr10, upscale_bicubic

    model = to_hdr10(network_output(pair, white))
    classical = to_hdr10(colour.sdr_to_hdr10_baseline(upscale_bicubic(pair["lr"], scale), white))
    ref = pair["hdr"]
    return {"psnr": metrics.psnr(ref, model), "de_itp": float(np.mean(metrics.delta_e_itp_map(ref, model))),
            "psnr_classical": metrics.psnr(ref, classical),
            "de_itp_classical": float(np.mean(metrics.delta_e_itp_map(ref, classical))),
            "model": model, "classical": classical}


def calibrate(folder, scale=2, weights=None, precision=None, progress=None):
    """Fits the white of the network (`weights`, None: the shipped one of `scale`; `precision`
    as `pretrained.load_model` takes it) to the graded pairs of `folder` (`data.pairs.check_pairs`).

    Returns (grade, results): grade, the dict of grade.json (`write_grade`); results, per pair
    a dict with name, size, lr (LR SDR R'G'B'), hdr (the reference), model and classical (PQ
    R'G'B' outputs at the fitted white), model_before and classical_before (at 203 cd/m2),
    "before" / "after", the metrics of each (`score`): what a report is made from; and residual
    and light (`prepare_pair`): a result is a pair `network_output` and `score` take, at any white."""
    from sritm_tf.data.pairs import check_pairs, read_matching_pair
    from sritm_tf.inference import DEFAULT_TILES, TiledPredictor
    from sritm_tf.pretrained import load_model

    model = load_model(scale, weights, precision=precision)
    predict = TiledPredictor(network_parts(model), tile=DEFAULT_TILES.get(precision or "fp32"))
    pairs = []
    for name, sdr_path, hdr_path in check_pairs(folder):
        pairs.append(prepare_pair(predict, name, *read_matching_pair(sdr_path, hdr_path), scale))
        if progress:
            progress(name)
    white = fit_white(pairs)
    results = []
    for pair in pairs:
        before, after = score(pair, DEFAULT_WHITE, scale), score(pair, white, scale)
        results.append({**pair, "model": after.pop("model"), "classical": after.pop("classical"),
                        "model_before": before.pop("model"), "classical_before": before.pop("classical"),
                        "before": before, "after": after})
    grade = {"white_nits": white, "scale": scale, "weights": weights_name(weights, scale), "pairs": [
        {"name": r["name"], "size": r["size"],
         **{f"{key}_{when}": round(r[when][key], 3) for key in ("psnr", "de_itp") for when in ("before", "after")}}
        for r in results]}
    for key in ("psnr", "de_itp"):
        for when in ("before", "after"):
            grade[f"{key}_{when}"] = round(float(np.mean([r[when][key] for r in results])), 3)
    return grade, results


def weights_name(weights, scale):
    """The shipped preset's name for weights=None, else the weights file as given."""
    if weights is None:
        from sritm_tf.presets import preset_for_scale

        return preset_for_scale(scale).name
    return os.fspath(weights)


def report_entries(grade, results):
    """The pairs of `calibrate` as `report.write_report` entries: the classical conversion and
    the network at the fitted white (the slider), and the network at the default white."""
    white, keys = grade["white_nits"], {"psnr_pq": "psnr", "de_itp": "de_itp"}
    for r in results:
        labels = {f"classical @{white:g}": ("classical", "after", "_classical"),
                  f"network @{DEFAULT_WHITE:g}": ("model_before", "before", ""),
                  f"network @{white:g}": ("model", "after", "")}
        yield {"name": r["name"], "sdr": r["sdr"], "reference": r["hdr"],
               "outputs": {label: r[frame] for label, (frame, _, _) in labels.items()},
               "metrics": {label: {key: r[when][name + suffix] for key, name in keys.items()}
                           for label, (_, when, suffix) in labels.items()},
               "caption": f"{r['size']}, x{grade['scale']}, {grade['weights']}: SDR white fitted at {white:g} cd/m2"}


def format_results(grade, results):
    """The table `sritm calibrate` prints: per pair, PSNR and dE_ITP at the default white and
    at the fitted one, for the network and the classical conversion."""
    white = grade["white_nits"]
    head = ("pair", "size", f"PSNR @{DEFAULT_WHITE:.0f}", f"PSNR @{white:g}", f"dE_ITP @{DEFAULT_WHITE:.0f}",
            f"dE_ITP @{white:g}", f"classical PSNR @{white:g}")
    lines = [f"white_nits {white:g} cd/m2 (x{grade['scale']}, {grade['weights']})",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        b, a = r["before"], r["after"]
        lines.append(f"| {r['name']} | {r['size']} | {b['psnr']:.2f} | {a['psnr']:.2f} | "
                     f"{b['de_itp']:.2f} | {a['de_itp']:.2f} | {a['psnr_classical']:.2f} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Fine-tuning (`sritm train --pairs`)
# ---------------------------------------------------------------------------
def training_white(cfg, grade_file=None, fit=False):
    """Sets `cfg.white_nits` (a `train.config.TrainConfig`) from `grade_file`, or, with `fit` on
    a fine-tuning run (cfg.pairs) of a classical-skip network, to the white `calibrate` fits
    to cfg.pairs with the cfg.init network (at that network's own scale), printing its table.
    Returns the calibration's grade (a dict) or None."""
    if grade_file:
        cfg.white_nits = float(read_grade(grade_file)["white_nits"])
        return None
    if not (fit and cfg.pairs and cfg.init and cfg.skip == "classical"):
        return None
    from sritm_tf.precision import resolve
    from sritm_tf.train.networks import init_architecture

    scale = (init_architecture(cfg.init) or {}).get("scale", cfg.scale)
    grade, results = calibrate(cfg.pairs, scale, cfg.init, resolve(cfg.precision)[0])
    print(format_results(grade, results), flush=True)
    cfg.white_nits = grade["white_nits"]
    return grade


def write_run_grade(cfg, calibration=None):
    """RUN/grade.json of a fine-tuning run: its white (cfg.white_nits), scale and weights
    (RUN/deep_sritm_x{scale}.npz), and the calibration of the --init network when one ran,
    so that `sritm convert --weights RUN/deep_sritm_xS.npz --grade RUN/grade.json` converts as
    the run validated."""
    grade = {"white_nits": float(cfg.white_nits), "scale": cfg.scale,
             "weights": os.path.join(cfg.run_dir, f"deep_sritm_x{cfg.scale}.npz"), "init": cfg.init,
             "pairs_dir": cfg.pairs, "calibration": calibration}
    return write_grade(os.path.join(cfg.run_dir, "grade.json"), grade)
