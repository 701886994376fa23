"""Graded pairs read from disk: an SDR master and its HDR10 grade of the same frame
(`<name>_sdr.*` / `<name>_hdr.*`, or one Ultra HDR gain-map JPEG), as `sritm eval` scores them
and `sritm train --pairs` fine-tunes on them; no TensorFlow here, so that a command checks
its pairs before it starts."""
import os

import numpy as np

from sritm_tf import imageio
from sritm_tf.data.sources import find_pairs
from sritm_tf.errors import InputError


def read_pair(sdr_path, hdr_path, white_nits=203.0):
    """(SDR BT.709 R'G'B', HDR PQ BT.2020 R'G'B') float64 of one pair (the SDR 8-bit,
    as `sritm convert` takes it; the HDR 16- or 8-bit); a gain-map
    JPEG (sdr_path == hdr_path) gives its SDR base and HDR rendition with SDR white
    at `white_nits` (`gainmap.gainmap_pair`)."""
    if sdr_path == hdr_path:
        from sritm_tf.data import gainmap

        return gainmap.gainmap_pair(sdr_path, white_nits)
    sdr = imageio.read_sdr_image(sdr_path)  # InputError for 16-bit or float: an SDR master is 8-bit
    return sdr.astype(np.float64) / 255.0, read_rgb(hdr_path)


def read_matching_pair(sdr_path, hdr_path, white_nits=203.0):
    """`read_pair`, and InputError naming both files if their sizes differ."""
    sdr, hdr = read_pair(sdr_path, hdr_path, white_nits)
    if sdr.shape[:2] != hdr.shape[:2]:
        raise InputError(f"{hdr_path}: size {hdr.shape[1]}x{hdr.shape[0]} differs from "
                         f"{os.path.basename(sdr_path)} {sdr.shape[1]}x{sdr.shape[0]}")
    return sdr, hdr


def check_pairs(folder):
    """The pairs of `folder` (`sources.find_pairs`), each read once and checked
    (`read_matching_pair`): InputError for a folder without pairs, or naming the first pair
    that does not read or whose sizes differ, before any work on the others."""
    pairs = find_pairs(folder)
    if not pairs:
        raise InputError(f"{folder}: no <name>_sdr.* / <name>_hdr.* pairs or gain-map JPEGs")
    for _, sdr_path, hdr_path in pairs:
        read_matching_pair(sdr_path, hdr_path)
    return pairs


def read_rgb(path):
    """An 8- or 16-bit image file -> float64 R'G'B' in [0, 1] (`imageio.read_image`: alpha dropped)."""
    image = imageio.read_image(path)  # InputError: "<path>: not a readable image ..."
    if image.dtype not in (np.uint8, np.uint16):
        raise InputError(f"{path}: {image.dtype} samples, not an 8- or 16-bit image")
    return image.astype(np.float64) / np.iinfo(image.dtype).max
