"""Measures the toe of real SDR grades: how much brighter their HDR10 grade is than the
classical conversion, per SDR code value.

For every pair in the folders (`sritm eval`'s pairs: <name>_sdr/_hdr files, gain-map
JPEGs), per band of SDR code values (max of R', G', B'), it prints the median of
HDR luminance / SDR relative luminance read back at gamma 2.4 (BT.1886, L_B = 0):
the SDR white level (cd/m2) that band implies. A flat row is an SDR that the
classical mapping inverts at one white level; a row rising to the left is an SDR
with a toe (shadows graded darker than the HDR's), what `sdr_synthesis.knee(black=...)`
makes for training. `--synthetic B` prints the same row for that knee operator with
black level B = L_B / L_W. `--fit` also prints, per pair, the member of the
training operator family (`sdr_synthesis.knee`: white, knee, luminance or per
channel, black) that best reproduces its SDR from its HDR (RMS error in 8-bit codes
on a pixel sample, grid search): the evidence for `sdr_synthesis.KNEE_RANGE`.
`--gamut` prints the share of each HDR grade's pixels outside P3-D65 and outside
BT.709, and `--scenes DIR` the same for 200 training pairs made from those scenes
(`training/pack_scenes.py` output): the evidence for `augment.limit_to_p3`.

    python training/measure_toe.py ../shared/data/graded ../shared/data/hdri/gainmap --synthetic 1e-5 3e-4
    python training/measure_toe.py ../shared/data/graded ../shared/data/hdri/gainmap --fit
    python training/measure_toe.py ../shared/data/graded ../shared/data/hdri/gainmap --gamut --scenes .devdata/scenes
"""
import argparse
import itertools
import os

import numpy as np

from sritm_tf import colour
from sritm_tf.data import pairs
from sritm_tf.data import sdr_synthesis

CODES = (2, 8, 16, 24, 32, 48, 64, 96, 128, 160, 192, 224, 250)


def implied_white(sdr, hdr, codes=CODES, min_pixels=200):
    """Median HDR luminance / SDR relative luminance (cd/m2) per band of SDR codes."""
    rel = colour.rgb709_to_rgb2020(colour.gamma_decode(sdr)) @ colour.HLG_WEIGHTS
    nits = colour.pq_eotf(hdr) @ colour.HLG_WEIGHTS
    code = sdr.max(axis=-1) * 255
    row = []
    for lo, hi in zip(codes[:-1], codes[1:]):
        band = (code >= lo) & (code < hi) & (rel > 0)
        row.append(float(np.median(nits[band] / rel[band])) if band.sum() >= min_pixels else float("nan"))
    return row


FIT_WHITES = np.geomspace(150.0, 1000.0, 25)
FIT_KNEES = (0.1, 0.15, 0.2, 0.25, 0.35, 0.55, 0.8, 1.0)
FIT_BLACKS = (0.0, 3e-5, 1e-4, 3e-4)


def fit_operator(sdr, hdr, samples=100_000, seed=0):
    """(RMS error in 8-bit codes, {"white_nits", "knee", "per_channel", "black"}) of the
    `sdr_synthesis.knee` operator that best makes `sdr` from `hdr`, on a pixel sample."""
    assert sdr.shape == hdr.shape, (sdr.shape, hdr.shape)
    pick = np.random.default_rng(seed).choice(sdr.shape[0] * sdr.shape[1], min(samples, sdr.size // 3), replace=False)
    sdr, hdr = sdr.reshape(-1, 3)[pick][None], hdr.reshape(-1, 3)[pick][None]
    best = (np.inf, None)
    for white, knee, per_channel, black in itertools.product(FIT_WHITES, FIT_KNEES, (False, True), FIT_BLACKS):
        params = {"white_nits": float(white), "knee": knee, "per_channel": per_channel, "black": black}
        rmse = float(np.sqrt(np.mean((sdr_synthesis.knee(hdr, **params) - sdr) ** 2)) * 255)
        best = min(best, (rmse, params), key=lambda b: b[0])
    return best


def synthetic_pair(black, white=203.0):
    """A grey ramp mastered at `white` and its SDR by the knee operator with `black`."""
    nits = np.repeat(np.geomspace(1e-3, 0.9 * white, 4096)[:, None], 3, axis=1)[None]
    hdr = colour.pq_inverse_eotf(nits)
    return sdr_synthesis.knee(hdr, white, knee=0.9, black=black), hdr


def outside_gamuts(hdr_pq, tolerance=0.02):
    """Shares of the pixels brighter than 1 cd/m2 outside P3-D65 and outside BT.709: a
    component below -`tolerance` of the pixel's max(R, G, B) in that space."""
    nits = colour.pq_eotf(hdr_pq).reshape(-1, 3)
    nits = nits[nits.max(axis=1) > 1.0]
    tol = -tolerance * nits.max(axis=1)
    return (float(np.mean((nits @ colour.BT2020_TO_P3.T).min(axis=1) < tol)),
            float(np.mean((nits @ colour.BT2020_TO_BT709.T).min(axis=1) < tol)))


def training_targets(scenes_dir, count=200, size=96, seed=0):
    """`count` HDR targets of training pairs (`augment.make_pair`, no graphics), stacked."""
    from sritm_tf.data import augment
    from sritm_tf.data.scenes import load_scenes  # as `sritm train --synthetic` reads them

    scenes = load_scenes(scenes_dir)
    peaks = [augment.source_peak(scene) for scene in scenes]
    rng = np.random.default_rng(seed)
    targets = []
    for _ in range(count):
        i = rng.integers(len(scenes))
        y, x = rng.integers(0, scenes[i].shape[0] - size), rng.integers(0, scenes[i].shape[1] - size)
        targets.append(augment.make_pair(scenes[i][y:y + size, x:x + size], rng, 2, scene_peak=peaks[i],
                                         graphics_prob=0.0)[1])
    return np.stack(targets)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*")
    parser.add_argument("--synthetic", type=float, nargs="*", default=[], metavar="B")
    parser.add_argument("--fit", action="store_true", help="also fit the knee operator to each pair")
    parser.add_argument("--gamut", action="store_true", help="also the HDR pixels outside P3 and BT.709")
    parser.add_argument("--scenes", help="with --gamut: the same for training pairs made from these scenes")
    args = parser.parse_args(argv)
    for folder in args.folders:
        if not os.path.isdir(folder):
            parser.error(f"{folder}: no such folder")
    if args.scenes and not args.gamut:
        parser.error("--scenes goes with --gamut")
    if args.scenes and not os.path.isfile(os.path.join(args.scenes, "index.json")):
        parser.error(f"{args.scenes}: no index.json (a training/pack_scenes.py output folder)")
    print(f"{'pair':24s} " + " ".join(f"{c:>5d}" for c in CODES[:-1]))
    fits, gamuts = [], []
    for folder in args.folders:
        for name, sdr_path, hdr_path in pairs.find_pairs(folder):
            pair = pairs.read_pair(sdr_path, hdr_path)
            _print_row(name, implied_white(*pair))
            if args.fit:
                fits.append((name, *fit_operator(*pair)))
            if args.gamut:
                gamuts.append((name, *outside_gamuts(pair[1])))
    for black in args.synthetic:  # a ramp: a few pixels per band are enough
        _print_row(f"knee, black {black:g}", implied_white(*synthetic_pair(black), min_pixels=1))
    for name, rmse, p in fits:
        print(f"{name[:24]:24s} fit: white {p['white_nits']:.0f} knee {p['knee']:g} "
              f"{'per channel' if p['per_channel'] else 'luminance'} black {p['black']:g} (RMS {rmse:.2f} codes)")
    if args.gamut and args.scenes:
        gamuts.append(("training pairs", *outside_gamuts(training_targets(args.scenes))))
    for name, p3, bt709 in gamuts:
        print(f"{name[:24]:24s} outside P3 {100 * p3:.2f} %, outside BT.709 {100 * bt709:.2f} %")


def _print_row(name, whites):
    print(f"{name[:24]:24s} " + " ".join(f"{w:5.0f}" for w in whites))


if __name__ == "__main__":
    main()
