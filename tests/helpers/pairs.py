"""Evaluation pairs in the layout of the graded set: `<name>_sdr.png`, `<name>_hdr.png`."""
import os

import cv2
import numpy as np


def smooth_sdr(height=192, width=256):
    """A smooth 8-bit SDR frame (ramps and slow waves), so that bicubic down/up loses little."""
    y, x = np.mgrid[0:height, 0:width] / np.array([height, width])[:, None, None]
    rgb = np.stack([0.2 + 0.6 * x, 0.5 + 0.3 * np.sin(3 * y + 2 * x), 0.15 + 0.7 * x * y], axis=-1)
    return np.round(rgb * 255) / 255


def write_pair(folder, name, sdr, hdr):
    """SDR as 8-bit RGBA PNG (opaque alpha), HDR as 16-bit RGB PNG, as the graded set."""
    sdr8 = np.round(sdr * 255).astype(np.uint8)
    alpha = np.full(sdr8.shape[:2] + (1,), 255, np.uint8)
    cv2.imwrite(os.path.join(folder, f"{name}_sdr.png"), np.concatenate([sdr8[:, :, ::-1], alpha], axis=-1))
    hdr16 = np.round(hdr * 65535).astype(np.uint16)
    cv2.imwrite(os.path.join(folder, f"{name}_hdr.png"), hdr16[:, :, ::-1])
