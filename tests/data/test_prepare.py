"""`sritm prepare`: record format, patch alignment, determinism, resume and bad inputs."""
import filecmp
import json
import os
import shutil

import numpy as np
import pytest

from sritm_tf import colour, imageio
from sritm_tf.data import prepare, records, resize, sdr_synthesis, sources

from tests.helpers.paths import SHARED_DATA, need_shared

EXR = SHARED_DATA / "exr"
GRADED = SHARED_DATA / "graded"
STILLS = [EXR / "Carrots.exr", EXR / "Cannon.exr"]


def read_shard(path):
    import tensorflow as tf

    return [records.parse_example_full(r) for r in tf.data.TFRecordDataset(str(path))]


def small_config(**kw):
    return prepare.PrepareConfig(**{"patch": 64, "crops": 3, **kw})


def test_hdr10_16bit_packing_matches_the_graded_pngs():
    codes = np.arange(1024, dtype=np.uint16)
    packed = imageio.hdr10_codes_to_uint16(codes)
    assert packed[32] == 2050 and packed[1023] == 65535 and packed[0] == 0  # as in graded/*_hdr.png
    np.testing.assert_array_equal(imageio.uint16_to_hdr10_codes(packed), codes)
    assert np.max(np.abs(packed / 65535 - codes / 1023)) <= 0.5 / 65535
    np.testing.assert_array_equal(packed, imageio.hdr_codes16(codes / 1023))  # the PNG writer's convention
    replicated = (codes << 6) | (codes >> 4)  # the other widening: read back the same
    np.testing.assert_array_equal(imageio.uint16_to_hdr10_codes(replicated), codes)


def test_encode_parse_roundtrip():
    rng = np.random.default_rng(0)
    sdr = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    hdr = imageio.hdr10_codes_to_uint16(rng.integers(0, 1024, (40, 60, 3)))
    blob = records.encode_example(sdr, hdr, "/x/clip.mp4", 7, [2, 4, 40, 60], "hable")
    sdr_t, hdr_t = records.parse_example(blob)
    assert sdr_t.dtype.name == "uint8" and hdr_t.dtype.name == "uint16"
    np.testing.assert_array_equal(sdr_t.numpy(), sdr)
    np.testing.assert_array_equal(hdr_t.numpy(), hdr)
    full = records.parse_example_full(blob)
    assert full["source"].numpy() == b"/x/clip.mp4" and full["frame"].numpy() == 7
    assert full["box"].numpy().tolist() == [2, 4, 40, 60] and full["operator"].numpy() == b"hable"
    assert full["scale"].numpy() == 2
    with pytest.raises(ValueError, match="multiple"):
        records.encode_example(sdr, hdr[:39], "s", 0, [0, 0, 39, 60], "x")


def test_random_boxes_on_the_scale_grid():
    boxes = prepare.random_boxes(100, 130, 32, 50, 4, np.random.default_rng(1))
    assert len(boxes) == 50
    for y, x, h, w in boxes:
        assert y % 4 == 0 and x % 4 == 0 and (h, w) == (32, 32) and y + h <= 100 and x + w <= 130
    with pytest.raises(ValueError, match="smaller than the 160x160 patch"):
        prepare.random_boxes(100, 200, 160, 1, 2, np.random.default_rng(0))


def test_prepare_exr_patches_are_aligned_and_deterministic(tmp_path):
    need_shared(*STILLS)
    paths = [str(p) for p in STILLS]
    for scale in (2, 4):
        out_a, out_b = tmp_path / f"a{scale}", tmp_path / f"b{scale}"
        summary = prepare.prepare(paths, str(out_a), small_config(scale=scale), progress=False)
        assert summary == {"written": 2, "skipped": 0, "failed": [], "patches": 6}
        prepare.prepare(paths, str(out_b), small_config(scale=scale), progress=False)
        names = sorted(os.listdir(out_a))
        assert names == ["manifest.jsonl", "prepare.json", "shard-00000.tfrecord", "shard-00001.tfrecord"]
        for name in names:
            assert filecmp.cmp(out_a / name, out_b / name, shallow=False), name

    manifest = prepare.read_manifest(str(tmp_path / "a2"))
    assert len(manifest) == 6
    assert manifest[0]["source"] == paths[1]  # sorted: Cannon before Carrots
    assert {k for k in manifest[0]} == {"shard", "source", "frame", "box", "operator", "operator_params", "scale", "seed"}
    assert json.loads((tmp_path / "a2" / "prepare.json").read_text())["patch"] == 64

    # Recompute one LR patch from the HR truth of the same source: same pixels in the interior.
    examples = read_shard(tmp_path / "a2" / "shard-00000.tfrecord")
    assert len(examples) == 3
    hdr_pq = sources.scene_linear_to_hdr10(sources.read_exr(paths[1]))
    hdr_pq = hdr_pq[: hdr_pq.shape[0] // 2 * 2, : hdr_pq.shape[1] // 2 * 2]
    sdr_lr = colour.quantize(np.clip(resize.downscale(sdr_synthesis.bt2446a(hdr_pq), 2), 0, 1), 8)
    for example, row in zip(examples, manifest[:3]):
        y, x, h, w = example["box"].numpy().tolist()
        assert [y, x, h, w] == row["box"]
        truth = imageio.hdr10_codes_to_uint16(colour.quantize(hdr_pq[y : y + h, x : x + w], 10))
        np.testing.assert_array_equal(example["hdr"].numpy(), truth)
        np.testing.assert_array_equal(example["sdr"].numpy(), sdr_lr[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2])
        assert example["sdr"].shape == (32, 32, 3) and example["hdr"].shape == (64, 64, 3)


def test_resume_skips_done_sources_and_keeps_shards(tmp_path):
    need_shared(*STILLS)
    out = tmp_path / "out"
    prepare.prepare([str(STILLS[0])], str(out), small_config(), progress=False)
    before = (out / "shard-00000.tfrecord").read_bytes()
    # A killed run leaves at most a hidden temporary: it is never counted and gets removed.
    (out / ".part-1-shard-00001.tfrecord").write_bytes(b"half written")
    summary = prepare.prepare([str(p) for p in STILLS], str(out), small_config(), progress=False)
    assert summary["written"] == 1 and summary["skipped"] == 1 and summary["patches"] == 6
    assert (out / "shard-00000.tfrecord").read_bytes() == before
    assert sorted(os.listdir(out)) == ["manifest.jsonl", "prepare.json", "shard-00000.tfrecord", "shard-00001.tfrecord"]
    assert len(read_shard(out / "shard-00001.tfrecord")) == 3
    with pytest.raises(ValueError, match="prepared with other settings"):
        prepare.prepare([str(STILLS[0])], str(out), small_config(crops=5), progress=False)
    summary = prepare.prepare([str(STILLS[0])], str(out), small_config(crops=5), overwrite=True, progress=False)
    assert summary["patches"] == 5 and sorted(os.listdir(out))[-1] == "shard-00000.tfrecord"


def test_augment_records_per_frame_params(tmp_path):
    need_shared(*STILLS)
    config = small_config(augment=True, operator="hable", crops=2)
    prepare.prepare([str(p) for p in STILLS], str(tmp_path), config, progress=False)
    rows = prepare.read_manifest(str(tmp_path))
    assert all(r["operator"] == "hable" for r in rows)
    exposures = {r["source"]: r["operator_params"]["exposure"] for r in rows}
    assert len(set(exposures.values())) == 2 and all(1.0 <= e <= 4.0 for e in exposures.values())


def test_bad_files_are_skipped_and_listed(tmp_path):
    need_shared(STILLS[0], GRADED / "cosmos01000_sdr.png")
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(STILLS[0], folder / "good.exr")
    (folder / "corrupt.exr").write_bytes(b"garbage")
    shutil.copy(GRADED / "cosmos01000_sdr.png", folder / "eight_bit.png")  # SDR given as HDR10
    summary = prepare.prepare([str(folder)], str(tmp_path / "out"), small_config(), progress=False)
    failed = dict(summary["failed"])
    assert summary["written"] == 1 and summary["patches"] == 3
    assert set(map(os.path.basename, failed)) == {"corrupt.exr", "eight_bit.png"}
    assert "must be 16-bit" in failed[str(folder / "eight_bit.png")]
    assert sorted(os.listdir(tmp_path / "out")) == ["manifest.jsonl", "prepare.json", "shard-00000.tfrecord"]


def test_pairs_use_the_sdr_master(tmp_path):
    need_shared(GRADED / "cosmos01000_hdr.png")
    config = small_config(kind="pairs", crops=2, scale=4)
    summary = prepare.prepare([str(GRADED)], str(tmp_path), config, progress=False)
    assert summary["written"] == 2
    rows = prepare.read_manifest(str(tmp_path))
    assert {r["operator"] for r in rows} == {"master"} and all(r["operator_params"] == {} for r in rows)
    example = read_shard(tmp_path / "shard-00000.tfrecord")[0]
    y, x, h, w = example["box"].numpy().tolist()
    sdr = sources.read_sdr_image(str(GRADED / "cosmos01000_sdr.png"))[:856]  # cropped to a multiple of 4
    expected = colour.quantize(np.clip(resize.downscale(sdr, 4), 0, 1), 8)[y // 4 : (y + h) // 4, x // 4 : (x + w) // 4]
    np.testing.assert_array_equal(example["sdr"].numpy(), expected)


def test_cli(tmp_path, capsys):
    need_shared(STILLS[0])
    from sritm_tf.cli import main

    out = tmp_path / "out"
    code = main(["prepare", str(STILLS[0]), "-o", str(out), "--patch-size", "16", "--crops", "2", "--scale", "4", "--quiet"])
    assert code == 0 and "2 patches" in capsys.readouterr().out
    bad = tmp_path / "bad.exr"
    bad.write_bytes(b"nope")
    code = main(["prepare", str(bad), "-o", str(tmp_path / "none"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "bad.exr: cannot read as OpenEXR" in err and "no usable source" in err
    assert main(["prepare", str(bad), "-o", str(tmp_path / "x"), "--patch-size", "0", "--quiet"]) == 2
    assert "--patch-size: expected a positive LR patch side" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
