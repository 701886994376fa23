"""Data of `sritm train` besides the records (`sritm_tf.pipeline`): graded pairs for
validation and fine-tuning, and the anchor crops of anchored fine-tuning."""
import numpy as np

from sritm_tf import colour
from sritm_tf.train.networks import init_architecture, load_init_weights, plain_copy


def load_pair(sdr_path, hdr_path, scale, crop=0):
    """One graded pair (both at HR) -> (sdr_yuv [h, w, 3] LR, hdr_yuv [s*h, s*w, 3]).

    SDR: 8-bit R'G'B'(A), alpha dropped, bicubic-downscaled by `scale` with
    antialiasing and rounded to 8 bits, as `sritm eval` and real LR content give it
    (`evaluate.make_lr`); HDR: 16-bit (or 8-bit) BT.2020 PQ R'G'B' at HR. `crop`: keep a
    centre square of `crop` LR pixels (0: whole frame)."""
    from sritm_tf.data.pairs import read_matching_pair
    from sritm_tf.evaluate import make_lr

    sdr, hdr = (a.astype(np.float32) for a in read_matching_pair(sdr_path, hdr_path))
    h, w = (sdr.shape[0] // scale) * scale, (sdr.shape[1] // scale) * scale
    if crop:
        ch, cw = min(crop * scale, h), min(crop * scale, w)
        y0, x0 = ((h - ch) // 2 // scale) * scale, ((w - cw) // 2 // scale) * scale
        sdr, hdr = sdr[y0:y0 + ch, x0:x0 + cw], hdr[y0:y0 + ch, x0:x0 + cw]
    else:
        sdr, hdr = sdr[:h, :w], hdr[:h, :w]
    sdr_lr = make_lr(sdr, scale)
    return (colour.sdr_rgb_to_model_yuv(sdr_lr).astype(np.float32),
            colour.pq2020_rgb_to_model_yuv(hdr).astype(np.float32))


def load_pairs(folder, scale, crop=0):
    """Every pair of `folder` (`sources.find_pairs`: `<name>_sdr.*` / `<name>_hdr.*`, Ultra
    HDR gain-map JPEGs) as `load_pair` gives it, in name order."""
    from sritm_tf.data.sources import find_pairs
    from sritm_tf.errors import InputError

    pairs = find_pairs(folder)
    if not pairs:
        raise InputError(f"{folder}: no <name>_sdr.* / <name>_hdr.* pairs or gain-map JPEGs")
    return [load_pair(sdr, hdr, scale, crop) for _, sdr, hdr in pairs]


def validation_data(cfg):
    """A tf.data.Dataset of validation (sdr_yuv, hdr_yuv) batches, or None."""
    import tensorflow as tf

    from sritm_tf.pipeline import make_dataset

    datasets = []
    if cfg.val_pairs:
        pairs = load_pairs(cfg.val_pairs, cfg.scale, cfg.val_crop)
        datasets.append(tf.data.Dataset.from_generator(
            lambda: ((s[None], h[None]) for s, h in pairs),
            output_signature=(tf.TensorSpec((1, None, None, 3), tf.float32),
                              tf.TensorSpec((1, None, None, 3), tf.float32))))
    if cfg.val_records:
        datasets.append(make_dataset(cfg.val_records, 1, cfg.scale, training=False))
    if not datasets:
        return None
    ds = datasets[0]
    for other in datasets[1:]:
        ds = ds.concatenate(other)
    count = sum(1 for _ in ds)  # a known length keeps Keras from warning at the end of each pass
    return ds.cache().apply(tf.data.experimental.assert_cardinality(count))


# Anchored fine-tuning: the SDR range a set of pairs covers (percentiles of their
# max(R', G', B') 8-bit codes), and the exposure change of the anchor crops in stops.
ANCHOR_COVERAGE = (0.5, 99.5)
ANCHOR_STOPS = 3.0


def sdr_max_codes(sdr_yuv):
    """max(R', G', B') of network-convention SDR Y'CbCr, in 8-bit codes."""
    return np.round(np.clip(colour.model_yuv_to_sdr_rgb(np.asarray(sdr_yuv, np.float64)), 0, 1).max(-1) * 255)


def anchor_crops(sdr_crops, pairs, teacher, scale, rng):
    """Anchor crops of anchored fine-tuning. Each SDR crop is re-exposed by 2^u, u
    uniform in +-`ANCHOR_STOPS` stops (linear light at gamma 2.4, BT.1886 with L_B = 0;
    clipped; 8-bit), so that some of its pixels leave the range of SDR codes the pairs
    cover; the target is the `teacher` network's output (the --init network's). Only
    those pixels count: per-pixel weight where the crop's max(R', G', B') code lies
    outside the `ANCHOR_COVERAGE` percentiles of the pairs' codes, 0 elsewhere, scaled
    so that the anchor term weighs as much as the pairs' term. Where the graded pairs
    show nothing (say, a frame without highlights), the loss keeps the network's prior
    instead of letting the grade's correction extrapolate.
    Returns (sdr, target, weight, share of the pixels counted), or None when none is."""
    codes = np.concatenate([sdr_max_codes(sdr).ravel() for sdr, _ in pairs])
    low, high = np.percentile(codes, ANCHOR_COVERAGE)
    rgb = np.clip(colour.model_yuv_to_sdr_rgb(np.asarray(sdr_crops, np.float64)), 0, 1)
    gain = 2.0 ** rng.uniform(-ANCHOR_STOPS, ANCHOR_STOPS, (len(rgb), 1, 1, 1))
    rgb = colour.dequantize(colour.quantize(colour.gamma_encode(np.clip(colour.gamma_decode(rgb) * gain, 0, 1)), 8), 8)
    sdr = colour.sdr_rgb_to_model_yuv(rgb).astype(np.float32)
    code = sdr_max_codes(sdr)
    counted = (code < low) | (code > high)
    if not counted.any():
        return None
    share = float(counted.mean())
    weight = (counted / share).astype(np.float32).repeat(scale, 1).repeat(scale, 2)
    target = np.asarray(teacher.predict(sdr, batch_size=16, verbose=0), np.float32)
    return sdr, target, weight, share


def anchor_teacher(cfg):
    """The --init network, float32 and outside any distribution strategy, for
    `anchor_crops`; None (and a line saying why) where anchors cannot be made."""
    if not (cfg.pairs and cfg.anchor and cfg.init):
        return None
    if cfg.recipe == "paper":
        print("anchors: off under --recipe paper (the authors' recipe has none)", flush=True)
        return None
    architecture = init_architecture(cfg.init)
    if architecture and architecture.get("scale") != cfg.scale:
        print(f"anchors: off, the --init network is x{architecture['scale']}, not x{cfg.scale}", flush=True)
        return None
    teacher = plain_copy(None, cfg)
    return load_init_weights(teacher, cfg.init)


def crops_dataset(pairs, cfg, teacher=None):
    """Fine-tuning data: `cfg.crops` aligned random crops (`cfg.patch_size` LR pixels,
    default 48) from in-memory pairs, random flips / rotations (none under the paper
    recipe), repeated, as (sdr, hdr) batches. With a `teacher` (`anchor_teacher`), each
    batch also holds as many `anchor_crops`, unflipped (a network is not exactly
    flip-equivariant, so a flipped teacher output is not the teacher's output), and the
    batches are (sdr, hdr, per-pixel weight): 1 for the pairs' crops. The training
    metrics Keras logs then cover both halves."""
    import tensorflow as tf

    from sritm_tf.pipeline import augment_pair

    patch = cfg.patch_size or 48
    rng = np.random.default_rng(cfg.seed)
    sdr_crops, hdr_crops = [], []
    for i in range(cfg.crops):
        sdr, hdr = pairs[i % len(pairs)]
        y = rng.integers(0, sdr.shape[0] - patch + 1)
        x = rng.integers(0, sdr.shape[1] - patch + 1)
        s = cfg.scale
        sdr_crops.append(sdr[y:y + patch, x:x + patch])
        hdr_crops.append(hdr[y * s:(y + patch) * s, x * s:(x + patch) * s])
    sdr_crops, hdr_crops = np.stack(sdr_crops), np.stack(hdr_crops)
    ds = tf.data.Dataset.from_tensor_slices((sdr_crops, hdr_crops)).shuffle(len(sdr_crops), seed=cfg.seed).repeat()
    if cfg.recipe != "paper":
        ds = ds.enumerate().map(lambda i, p: augment_pair(p[0], p[1], tf.stack([tf.constant(cfg.seed, tf.int64), i])))
    ds = ds.batch(cfg.batch_size, drop_remainder=True)
    anchors = None
    if teacher is not None:
        anchors = anchor_crops(sdr_crops, pairs, teacher, cfg.scale, rng)
        print("anchors: none (no re-exposed pixel leaves the SDR codes the pairs cover)" if anchors is None else
              f"anchors: {anchors[3]:.1%} of their pixels lie outside the pairs' SDR codes", flush=True)
    if anchors is not None:
        ones = tf.ones([cfg.batch_size, patch * cfg.scale, patch * cfg.scale])
        anchor_ds = tf.data.Dataset.from_tensor_slices(anchors[:3]).shuffle(len(sdr_crops), seed=cfg.seed + 1)
        anchor_ds = anchor_ds.repeat().batch(cfg.batch_size, drop_remainder=True)
        ds = tf.data.Dataset.zip(ds, anchor_ds).map(
            lambda a, b: (tf.concat([a[0], b[0]], 0), tf.concat([a[1], b[1]], 0), tf.concat([ones, b[2]], 0)))
    return ds.prefetch(tf.data.AUTOTUNE)

