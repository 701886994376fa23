"""tf.data input pipeline: TFRecord patch pairs -> (SDR, HDR) batches in the
network's Y'CbCr convention.

Records are written by `sritm prepare` (`sritm_tf.data.records`): each holds an
LR SDR patch (BT.709 gamma R'G'B', uint8) and the matching `scale`x larger HDR10
patch (BT.2020 PQ R'G'B', uint16 full range). The pipeline reads shards with a
parallel interleave, decodes in parallel, shuffles, crops, flips and rotates
input and target together, converts to Y'CbCr and batches. The flips and
rotations are this package's augmentation, not the paper's: the authors'
`train_base_net.m` / `train_full_net.m` feed their pre-cut patches as they are
(`augment=False`, the paper recipe of `sritm_tf.train`).
"""
import glob
import os

import numpy as np
import tensorflow as tf

from sritm_tf.data.records import parse_example
from sritm_tf.errors import MissingFileError

AUTOTUNE = tf.data.AUTOTUNE


def to_model_pair(sdr_rgb8, hdr_rgb16):
    """uint8 SDR R'G'B' and uint16 HDR10 R'G'B' -> float32 model-convention Y'CbCr,
    by `layers.YCbCrConverter` (BT.709 for the input, BT.2020 NCL for the target)."""
    from sritm_tf.layers import YCbCrConverter

    sdr = YCbCrConverter("bt709", scale=1 / 255, name="sdr_to_yuv")(sdr_rgb8)
    hdr = YCbCrConverter("bt2020", scale=1 / 65535, name="hdr_to_yuv")(hdr_rgb16)
    return sdr, hdr


def list_shards(pattern_or_dir):
    """Sorted shard paths: a folder (its `shard-*.tfrecord`), a glob pattern, one
    file, or a list of files (kept as given)."""
    if isinstance(pattern_or_dir, (list, tuple)):
        missing = [f for f in pattern_or_dir if not os.path.isfile(f)]
        if missing or not pattern_or_dir:
            raise MissingFileError(f"{missing[0] if missing else '[]'}: no TFRecord shard")
        return list(pattern_or_dir)
    pattern = pattern_or_dir
    if os.path.isdir(pattern_or_dir):
        pattern = os.path.join(pattern_or_dir, "shard-*.tfrecord")
    files = sorted(glob.glob(pattern))
    if not files:
        raise MissingFileError(f"{pattern_or_dir}: no TFRecord shards (shard-*.tfrecord)")
    return files


def random_crop_pair(sdr, hdr, patch_size, scale, seed):
    """Aligned random crop: an LR `patch_size` square and the HR square above it.
    `seed`: a stateless seed, shape [2]."""
    h, w = tf.shape(sdr)[0], tf.shape(sdr)[1]
    y = tf.random.stateless_uniform([], seed, 0, h - patch_size + 1, tf.int32)
    x = tf.random.stateless_uniform([], seed + 1, 0, w - patch_size + 1, tf.int32)
    sdr = sdr[y:y + patch_size, x:x + patch_size]
    hdr = hdr[y * scale:(y + patch_size) * scale, x * scale:(x + patch_size) * scale]
    return sdr, hdr


def augment_pair(sdr, hdr, seed):
    """The same random horizontal flip and 90-degree rotation on input and target
    (the 8 dihedral transforms). `seed`: a stateless seed, shape [2]."""
    bits = tf.random.stateless_uniform([2], seed, 0, 4, tf.int32)
    flip, k = bits[0] % 2, bits[1]
    sdr = tf.cond(flip == 1, lambda: tf.image.flip_left_right(sdr), lambda: sdr)
    hdr = tf.cond(flip == 1, lambda: tf.image.flip_left_right(hdr), lambda: hdr)
    return tf.image.rot90(sdr, k), tf.image.rot90(hdr, k)


def count_records(pattern_or_dir):
    """Number of records in the shards of `pattern_or_dir` (`list_shards`)."""
    ds = tf.data.TFRecordDataset(list_shards(pattern_or_dir))
    return int(ds.reduce(np.int64(0), lambda count, _: count + 1))


def make_dataset(pattern_or_dir, batch_size, scale, training=True, shuffle_buffer=2048, seed=None,
                 patch_size=None, repeat=None, augment=True):
    """The tf.data input pipeline of `sritm prepare`'s records.

    Args:
        pattern_or_dir: a folder of `shard-*.tfrecord`, a glob pattern, one file
            or a list of files.
        batch_size: pairs per batch.
        scale: 2 or 4 (HR patches are `scale`x the LR ones).
        training: repeat forever, shuffle shards and records, random crop (when
            `patch_size`), flips and rotations (when `augment`), drop the last
            partial batch; otherwise one pass in file order, no augmentation.
        shuffle_buffer: records in the shuffle buffer.
        seed: with a seed, the stream of batches is the same on every run.
        patch_size: LR crop side; records must all have the same size without it.
        repeat: override the repetition (default: forever when training).
        augment: random flips and 90-degree rotations when training (ours; the
            reference trains without).

    Returns:
        A tf.data.Dataset of (sdr_yuv float32 [b, h, w, 3], hdr_yuv float32
        [b, s*h, s*w, 3]) in the network's Y'CbCr convention.
    """
    files = list_shards(pattern_or_dir)
    repeat = training if repeat is None else repeat
    if seed is None and training:
        seed = int(np.random.SeedSequence().generate_state(1)[0] >> 1)
    seed = 0 if seed is None else int(seed)

    ds = tf.data.Dataset.from_tensor_slices(files)
    if training:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(len(files), 8),
                       num_parallel_calls=AUTOTUNE, deterministic=True)
    ds = ds.map(parse_example, num_parallel_calls=AUTOTUNE)
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        # One stateless seed per element, from its position in the stream.
        ds = ds.enumerate()

        def _augment(index, pair):
            sdr, hdr = pair
            element_seed = tf.stack([tf.constant(seed, tf.int64), index])
            if patch_size:
                sdr, hdr = random_crop_pair(sdr, hdr, patch_size, scale, element_seed + 7)
            return augment_pair(sdr, hdr, element_seed) if augment else (sdr, hdr)

        ds = ds.map(_augment, num_parallel_calls=AUTOTUNE)
    elif patch_size:
        ds = ds.map(lambda s, h: (s[:patch_size, :patch_size],
                                  h[:patch_size * scale, :patch_size * scale]), num_parallel_calls=AUTOTUNE)
    ds = ds.map(to_model_pair, num_parallel_calls=AUTOTUNE)
    ds = ds.batch(batch_size, drop_remainder=training, num_parallel_calls=AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = True
    # DATA sharding: works with any number of shards per worker (FILE needs >= workers).
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options).prefetch(AUTOTUNE)
