"""tf.data pipeline: colour conversion, aligned augmentation, determinism, batching."""
import os

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from sritm_tf import colour  # noqa: E402
from sritm_tf import pipeline  # noqa: E402
from sritm_tf.data.records import encode_example  # noqa: E402

from tests.helpers.records import write_records  # noqa: E402


def test_tf_colour_matches_numpy():
    rng = np.random.default_rng(0)
    sdr8 = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    hdr16 = rng.integers(0, 65536, (10, 14, 3), dtype=np.uint16)
    sdr, hdr = pipeline.to_model_pair(tf.constant(sdr8), tf.constant(hdr16))
    np.testing.assert_allclose(sdr.numpy(), colour.sdr_rgb_to_model_yuv(sdr8 / 255), atol=1e-6)
    np.testing.assert_allclose(hdr.numpy(), colour.pq2020_rgb_to_model_yuv(hdr16 / 65535), atol=1e-6)
    # White stays white with neutral chroma in both conventions.
    white = pipeline.to_model_pair(tf.fill([1, 1, 3], tf.constant(255, tf.uint8)), tf.fill([2, 2, 3], tf.constant(65535, tf.uint16)))
    for yuv in white:
        np.testing.assert_allclose(yuv.numpy().reshape(-1, 3), np.tile([1.0, 0.5, 0.5], (yuv.shape[0] * yuv.shape[1], 1)), atol=1e-6)


def _asymmetric_pair(size=6, scale=2):
    """An LR patch with all-distinct pixels (no symmetry) and its nearest-neighbour HR twin."""
    sdr = (np.arange(size * size * 3) % 256).astype(np.uint8).reshape(size, size, 3)
    hdr = np.repeat(np.repeat(sdr.astype(np.uint16) * 257, scale, 0), scale, 1)  # v / 255 == v * 257 / 65535
    return sdr, hdr


def test_augment_pair_keeps_alignment_and_covers_all_8_transforms():
    sdr, hdr = _asymmetric_pair()
    seen = set()
    for i in range(64):
        a, b = pipeline.augment_pair(tf.constant(sdr), tf.constant(hdr), tf.constant([3, i], tf.int64))
        a, b = a.numpy(), b.numpy()
        np.testing.assert_array_equal(b[::2, ::2] // 257, a)
        seen.add(a.tobytes())
    assert len(seen) == 8


def test_random_crop_pair_is_aligned():
    sdr, hdr = _asymmetric_pair(size=10)
    for i in range(10):
        a, b = pipeline.random_crop_pair(tf.constant(sdr), tf.constant(hdr), 4, 2, tf.constant([1, i], tf.int64))
        assert a.shape == (4, 4, 3) and b.shape == (8, 8, 3)
        np.testing.assert_array_equal(b.numpy()[::2, ::2] // 257, a.numpy())


def _write_asymmetric_records(folder, count=8):
    os.makedirs(folder)
    with tf.io.TFRecordWriter(os.path.join(folder, "shard-00000.tfrecord")) as writer:
        for i in range(count):
            sdr, hdr = _asymmetric_pair(size=8)
            writer.write(encode_example(np.roll(sdr, i, axis=0), np.roll(hdr, 2 * i, axis=0), "t", i, [0, 0, 16, 16], "t"))
    return folder


def test_dataset_pairs_stay_aligned_through_the_pipeline(tmp_path):
    folder = _write_asymmetric_records(str(tmp_path / "rec"))
    ds = pipeline.make_dataset(folder, batch_size=4, scale=2, training=True, seed=5, patch_size=6, shuffle_buffer=8)
    for sdr_yuv, hdr_yuv in ds.take(4):
        assert sdr_yuv.shape == (4, 6, 6, 3) and hdr_yuv.shape == (4, 12, 12, 3)
        assert sdr_yuv.dtype == tf.float32 and hdr_yuv.dtype == tf.float32
        sdr_rgb = colour.model_yuv_to_sdr_rgb(sdr_yuv.numpy())
        hdr_rgb = colour.model_yuv_to_pq2020_rgb(hdr_yuv.numpy())
        np.testing.assert_allclose(hdr_rgb[:, ::2, ::2], sdr_rgb, atol=1e-5)


def test_seeded_dataset_is_deterministic(tmp_path):
    folder = write_records(str(tmp_path / "rec"), count=16, size=8, shards=2)

    def first_batches(seed):
        ds = pipeline.make_dataset(folder, batch_size=4, scale=2, seed=seed, shuffle_buffer=16)
        return [b.numpy() for pair in ds.take(5) for b in pair]

    a, b, c = first_batches(1), first_batches(1), first_batches(2)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a, c))


def test_evaluation_dataset_is_one_ordered_pass(tmp_path):
    folder = write_records(str(tmp_path / "rec"), count=10, size=8, shards=2)
    batches = list(pipeline.make_dataset(folder, batch_size=4, scale=2, training=False))
    assert [int(s.shape[0]) for s, _ in batches] == [4, 4, 2]
    ranges = np.concatenate([h.numpy() for _, h in batches])
    assert 0.0 <= ranges.min() and ranges.max() <= 1.0


def test_missing_shards_raise(tmp_path):
    with pytest.raises(FileNotFoundError, match="no TFRecord shards"):
        pipeline.make_dataset(str(tmp_path), batch_size=1, scale=2)


def test_ycbcr_converter_inverse_and_rank4_match_numpy():
    """The one colour layer: rank-4 (1x1 conv) and per-image (tensordot) paths agree
    with `sritm_tf.colour`, and the inverse with 16-bit rounding equals colour.quantize."""
    from sritm_tf.layers import YCbCrConverter

    yuv = np.random.default_rng(1).random((2, 4, 6, 3)).astype(np.float32)
    forward = YCbCrConverter("bt2020")
    inverse = YCbCrConverter("bt2020", inverse=True, clip=True, scale=65535, round_codes=True)
    np.testing.assert_allclose(np.asarray(forward(yuv)), colour.pq2020_rgb_to_model_yuv(yuv), atol=1e-6)
    np.testing.assert_allclose(np.asarray(forward(yuv[0])), colour.pq2020_rgb_to_model_yuv(yuv[0]), atol=1e-6)
    codes = np.asarray(inverse(yuv))
    expected = colour.quantize(colour.model_yuv_to_pq2020_rgb(yuv), 16)
    assert np.abs(codes - expected).max() <= 1 and np.mean(codes == expected) > 0.999
    assert codes.min() >= 0 and codes.max() <= 65535
    config = inverse.get_config()
    clone = YCbCrConverter.from_config(config)
    np.testing.assert_array_equal(np.asarray(clone(yuv)), codes)
