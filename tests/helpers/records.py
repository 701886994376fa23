"""Synthetic training data: records in the layout `sritm prepare` writes, graded-style
HR pairs, and pairs without highlights (`write_dark_pairs`, for anchored fine-tuning)."""
import os

import cv2
import numpy as np

from sritm_tf.data.records import encode_example


def smooth_image(rng, height, width, dtype):
    """A smooth random RGB image (low-frequency noise), full range of `dtype`."""
    coarse = rng.random((max(height // 8, 2), max(width // 8, 2), 3)).astype(np.float32)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    top = np.iinfo(dtype).max
    return np.clip(np.round(image * top), 0, top).astype(dtype)


def write_records(folder, count=32, size=16, scale=2, shards=2, seed=0):
    """`count` random (LR SDR size x size, HR HDR) pairs in `shards` shard files."""
    import tensorflow as tf

    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    writers = [tf.io.TFRecordWriter(os.path.join(folder, f"shard-{i:05d}.tfrecord")) for i in range(shards)]
    for i in range(count):
        hdr = smooth_image(rng, size * scale, size * scale, np.uint16)
        sdr = cv2.resize(hdr, (size, size), interpolation=cv2.INTER_AREA)
        sdr = np.round(np.sqrt(sdr / 65535.0) * 255).astype(np.uint8)  # a brighter, different grade
        writers[i % shards].write(encode_example(sdr, hdr, "synthetic", i, [0, 0, size * scale, size * scale], "test"))
    for writer in writers:
        writer.close()
    return folder


def write_pairs(folder, count=2, height=64, width=48, seed=1):
    """`count` HR pairs like graded/: `<name>_sdr.png` RGBA 8-bit, `<name>_hdr.png` RGB 16-bit."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        hdr = smooth_image(rng, height, width, np.uint16)
        sdr = np.round(np.sqrt(hdr / 65535.0) * 255).astype(np.uint8)
        rgba = np.concatenate([sdr, np.full(sdr.shape[:2] + (1,), 255, np.uint8)], axis=2)
        cv2.imwrite(os.path.join(folder, f"pair{i}_sdr.png"), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
        cv2.imwrite(os.path.join(folder, f"pair{i}_hdr.png"), hdr[..., ::-1])
    return folder


def write_dark_pairs(folder, count=2, size=64, white=600.0, seed=3):
    """Pairs whose SDR holds only codes 10-110 (a frame without highlights), graded
    brighter than the classical skip's 203 cd/m2: the classical conversion at `white`."""
    from sritm_tf import colour

    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        coarse = rng.uniform(10, 110, (size // 8, size // 8, 3)).astype(np.float32)
        sdr = np.round(cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)).clip(10, 110).astype(np.uint8)
        hdr = colour.sdr_to_hdr10_baseline(sdr / 255.0, white)
        cv2.imwrite(os.path.join(folder, f"dark{i}_sdr.png"), sdr[..., ::-1])
        cv2.imwrite(os.path.join(folder, f"dark{i}_hdr.png"), np.round(hdr * 65535).astype(np.uint16)[..., ::-1])
    return folder
