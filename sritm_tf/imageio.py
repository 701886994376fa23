"""Image files: 8-bit SDR input, 16-bit HDR10 PNG output.

HDR PNG convention (same as the graded pairs in ../shared/data/graded): RGB,
BT.2020 primaries, PQ (SMPTE ST 2084), full range; the signal is quantised to
10-bit codes D10 = Round(1023 E') (BT.2100-2 Table 9, full range) and stored as
D16 = Round(D10 * 65535 / 1023), so 0 -> 0, 1023 -> 65535 and D10 is read back
exactly as Round(D16 * 1023 / 65535).
"""
import os

import cv2
import numpy as np

from sritm_tf import colour
from sritm_tf.errors import InputError
from sritm_tf.fileio import atomic_path

SDR_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")


def read_sdr_image(path):
    """Reads an 8-bit SDR image as RGB uint8 (H, W, 3).

    RGBA: alpha dropped; grey: replicated to 3 channels. Raises FileNotFoundError
    if `path` does not exist and InputError if it cannot be decoded or is not
    8-bit (16-bit and float images are taken as HDR and refused).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    data = np.fromfile(path, np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise InputError(f"{path}: not a readable image (unsupported format or corrupt file)")
    if image.dtype != np.uint8:
        raise InputError(
            f"{path}: {image.dtype} samples, this looks like an HDR (or high bit depth) image already; "
            "sritm converts 8-bit SDR images")
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=-1)
    if image.shape[-1] == 2:  # grey + alpha
        return np.repeat(image[..., :1], 3, axis=-1)
    return cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2RGB)


def hdr_codes16(pq_rgb):
    """PQ R'G'B' in [0, 1] -> 16-bit PNG codes: 10-bit full-range quantisation,
    then D16 = Round(D10 * 65535 / 1023)."""
    codes10 = colour.quantize(pq_rgb, 10, full_range=True).astype(np.uint32)
    return ((codes10 * 65535 + 511) // 1023).astype(np.uint16)


def write_hdr_png(path, pq_rgb):
    """Writes PQ BT.2020 R'G'B' (H, W, 3) in [0, 1] as a 16-bit RGB PNG (see the
    module docstring). Written to a temporary name, then renamed."""
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(hdr_codes16(pq_rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(encoded.tobytes())


def read_hdr_png(path):
    """Reads a 16-bit HDR10 PNG as PQ R'G'B' float64 in [0, 1] (D16 / 65535)."""
    image = cv2.imread(os.fspath(path), cv2.IMREAD_UNCHANGED)
    if image is None or image.dtype != np.uint16 or image.ndim != 3:
        raise InputError(f"{path}: not a 16-bit RGB PNG")
    return cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2RGB) / 65535.0

