"""Makes `sample_sdr.png`, the small 8-bit SDR image bundled with the package.

Source: `Desk.exr` from the OpenEXR sample images (BSD-3-Clause, see
LICENSE here), scene-linear BT.709: a stained-glass window above a dark desk,
an HDR scene. Desk.exr is held out of the bundled weights' training data.
Steps: exposure so that the median luminance sits at 0.18, extended Reinhard
tone curve (white point 4.0), BT.709 OETF (ITU-R BT.709-6 item 1.2), area
downscale to 320 wide, centre crop 240x136, 8-bit full-range RGB.

    python sritm_tf/samples/make_sample.py /path/to/shared/data/exr/Desk.exr
"""
import os
import sys

import cv2
import numpy as np

from sritm_tf import colour, imageio
from sritm_tf.data import sources

WIDTH, HEIGHT = 240, 136


def tone_map(linear, white=4.0):
    luminance = linear @ np.array([0.2126, 0.7152, 0.0722])  # BT.709-6 item 3.2
    exposed = linear * (0.18 / np.median(luminance))
    # Extended Reinhard, per channel: x (1 + x / w^2) / (1 + x), 1 at x = w.
    return np.clip(exposed * (1 + exposed / white**2) / (1 + exposed), 0.0, 1.0)


def main(exr_path, out_path=os.path.join(os.path.dirname(__file__), "sample_sdr.png")):
    sdr = colour.bt709_oetf(tone_map(sources.read_exr(exr_path).astype(np.float64).clip(0.0, None)))
    h, w = sdr.shape[:2]
    small = cv2.resize(sdr, (320, round(320 * h / w)), interpolation=cv2.INTER_AREA)
    top, left = (small.shape[0] - HEIGHT) // 2, (small.shape[1] - WIDTH) // 2
    crop = small[top:top + HEIGHT, left:left + WIDTH]
    codes = colour.quantize(crop, 8)
    imageio.write_image(out_path, codes, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {out_path} ({WIDTH}x{HEIGHT})")


if __name__ == "__main__":
    main(*sys.argv[1:])
