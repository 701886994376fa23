"""Measures the toe of real SDR grades: how much brighter their HDR10 grade is than the
classical conversion, per SDR code value.

For every pair in the folders (`sritm eval`'s pairs: <name>_sdr/_hdr files, gain-map
JPEGs), per band of SDR code values (max of R', G', B'), it prints the median of
HDR luminance / SDR relative luminance read back at gamma 2.4 (BT.1886, L_B = 0):
the SDR white level (cd/m2) that band implies. A flat row is an SDR that the
classical mapping inverts at one white level; a row rising to the left is an SDR
with a toe (shadows graded darker than the HDR's), what `sdr_synthesis.knee(black=...)`
makes for training. `--synthetic B` prints the same row for that knee operator with
black level B = L_B / L_W.

    python training/measure_toe.py ../shared/data/graded ../shared/data/hdri/gainmap --synthetic 1e-5 3e-4
"""
import argparse

import numpy as np

from sritm_tf import colour, evaluate
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


def synthetic_pair(black, white=203.0):
    """A grey ramp mastered at `white` and its SDR by the knee operator with `black`."""
    nits = np.repeat(np.geomspace(1e-3, 0.9 * white, 4096)[:, None], 3, axis=1)[None]
    hdr = colour.pq_inverse_eotf(nits)
    return sdr_synthesis.knee(hdr, white, knee=0.9, black=black), hdr


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*")
    parser.add_argument("--synthetic", type=float, nargs="*", default=[], metavar="B")
    args = parser.parse_args(argv)
    print(f"{'pair':24s} " + " ".join(f"{c:>5d}" for c in CODES[:-1]))
    for folder in args.folders:
        for name, sdr_path, hdr_path in evaluate.find_pairs(folder):
            _print_row(name, implied_white(*evaluate.read_pair(sdr_path, hdr_path)))
    for black in args.synthetic:  # a ramp: a few pixels per band are enough
        _print_row(f"knee, black {black:g}", implied_white(*synthetic_pair(black), min_pixels=1))


def _print_row(name, whites):
    print(f"{name[:24]:24s} " + " ".join(f"{w:5.0f}" for w in whites))


if __name__ == "__main__":
    main()
