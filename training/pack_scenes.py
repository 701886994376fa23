"""Packs scene-linear HDR sources into compact 16-bit PNGs for `sritm train --synthetic`.

Each source is read (OpenEXR, Radiance .hdr), exposure-normalised so that diffuse
white is 1.0 (`sources.exposure_scale`), equirectangular maps cut to their middle
band, optionally downscaled so its long side is at most --max-side, and written as
log2 codes (`augment.encode_scene`) in a 16-bit PNG, with an index.json.

    python training/pack_scenes.py ../shared/data/exr/*.exr ... -o .devdata/scenes
"""
import argparse
import json
import os

import cv2
import numpy as np

from sritm_tf.data import augment, resize, sources


def read_scene(path):
    if path.lower().endswith(".hdr"):
        rgb = sources.read_radiance(path)
    else:
        rgb = sources.read_exr(path)
    rgb = np.nan_to_num(np.maximum(rgb, 0.0), posinf=0.0)
    if rgb.shape[1] == 2 * rgb.shape[0]:
        rgb = sources.middle_band(rgb)
    return rgb * sources.exposure_scale(rgb, 1.0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+")
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--max-side", type=int, default=1024)
    args = parser.parse_args(argv)
    os.makedirs(args.output, exist_ok=True)
    index = []
    for path in args.inputs:
        scene = read_scene(path)
        side = max(scene.shape[:2])
        if side > args.max_side:
            factor = side / args.max_side
            scene = np.maximum(resize.imresize(scene, 1 / factor), 0.0)
        name = os.path.splitext(os.path.basename(path))[0]
        if "beachball" in path:
            name = "beachball_" + name
        out = os.path.join(args.output, f"{name}.png")
        cv2.imwrite(out, augment.encode_scene(scene)[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9])
        index.append({"name": name, "source": os.path.relpath(path), "size": list(scene.shape[:2])})
        print(f"{name}: {scene.shape[1]}x{scene.shape[0]}, {os.path.getsize(out) / 1e6:.2f} MB")
    with open(os.path.join(args.output, "index.json"), "w") as f:
        json.dump(index, f, indent=1)


if __name__ == "__main__":
    main()
