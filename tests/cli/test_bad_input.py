"""Damaged or unsuitable input files, run through `sritm` as a subprocess as a user would:
one stderr line naming the file (no traceback, no library chatter), exit status 2, and nothing
left in the output folder or the temporary folder (TMPDIR). Inputs are refused before
TensorFlow is imported (a fraction of a second), except where the damage only shows while
decoding or loading; the cases that import TensorFlow are marked slow.
"""
import os
import re

import numpy as np
import pytest

from sritm_tf.errors import InputError

from tests.helpers.media import make_clip, packet_times
from tests.helpers.paths import SHARED_DATA, needs_shared
from tests.helpers.processes import assert_one_error_line, assert_refused, sritm, sritm_reporting_tensorflow
from tests.helpers.records import write_records

GAIN_MAP_JPEG = SHARED_DATA / "hdri" / "gainmap" / "seine_sdr_gainmap_srgb.jpg"


# ---------------------------------------------------------------------------
# Damaged images and clips of every format `sritm convert` accepts
# ---------------------------------------------------------------------------
def damaged(data, damage):
    """zero: an empty file; truncated: the first half; corrupt: the middle 40% zeroed."""
    if damage == "zero":
        return b""
    if damage == "truncated":
        return data[: len(data) // 2]
    start, end = len(data) * 3 // 10, len(data) * 7 // 10
    return data[:start] + bytes(end - start) + data[end:]


def cases(names, damages, output, slow=()):
    return [pytest.param(name, damage, output, id=f"{name}-{damage}",
                         marks=[pytest.mark.slow] if (name, damage) in slow else [])
            for name in names for damage in damages]


# Checksummed or structured formats: every kind of damage is caught. BMP and WebP (lossy) carry no
# checksum, so a changed byte is a changed pixel: only an empty or cut file is detectable. EXR and
# Radiance stills are HDR (refused as such, damaged or not). The damage of a clip that shows only
# while decoding past its first frame is found after TensorFlow started (slow).
INPUT_CASES = (
    cases(["img.png", "img16.png", "img.jpg", "img.tif", "img.exr", "img.hdr"], ["zero", "truncated", "corrupt"],
          "png")
    + cases(["img.bmp", "img.webp"], ["zero", "truncated"], "png")
    + cases(["clip.mp4", "clip.mkv", "clip.mov", "clip.webm", "clip.avi"], ["zero", "truncated", "corrupt"], "mp4",
            slow=[("clip.avi", "corrupt")])
    + cases(["clip.yuv"], ["zero", "truncated"], "yuv"))


@pytest.mark.parametrize("name, damage, output", INPUT_CASES)
def test_damaged_input_is_one_line(inputs, folders, name, damage, output):
    out, tmp = folders
    path = tmp.parent / f"{damage}-{name}"
    path.write_bytes(damaged((inputs / name).read_bytes(), damage))
    size = ["--input-size", "64x48"] if name.endswith(".yuv") else []
    result = sritm_reporting_tensorflow("convert", path, "-o", out / f"o.{output}", "--baseline", "--quiet", *size, tmp=tmp)
    assert_refused(result, "convert", path, before_tensorflow=(name, damage) != ("clip.avi", "corrupt"))
    assert os.listdir(out) == [] and os.listdir(tmp) == []


@needs_shared("hdri/gainmap/seine_sdr_gainmap_srgb.jpg")
@pytest.mark.parametrize("damage", ["zero", "truncated", "corrupt"])
def test_damaged_gain_map_jpeg_is_one_line(folders, damage):
    out, tmp = folders
    path = tmp.parent / f"{damage}-gainmap.jpg"
    path.write_bytes(damaged(GAIN_MAP_JPEG.read_bytes(), damage))
    result = sritm_reporting_tensorflow("convert", path, "-o", out / "o.png", "--baseline", "--quiet", tmp=tmp)
    assert_refused(result, "convert", path)
    assert os.listdir(out) == [] and os.listdir(tmp) == []


@pytest.mark.slow
def test_a_frame_decoded_with_errors_is_reported(inputs, folders):
    """The decoder conceals damage in the first frame's data (it marks the frame corrupt): refused, not
    converted silently."""
    import av

    out, tmp = folders
    source = inputs / "clip.avi"
    with av.open(str(source)) as container:
        packet = next(p for p in container.demux(container.streams.video[0]) if p.size)
        start, size = packet.pos, packet.size
    data = bytearray(source.read_bytes())
    data[start + size // 2: start + size * 3 // 4] = bytes(size * 3 // 4 - size // 2)
    path = tmp.parent / "frame-damaged.avi"
    path.write_bytes(bytes(data))
    result = sritm_reporting_tensorflow("convert", path, "-o", out / "o.mp4", "--baseline", "--quiet", tmp=tmp)
    assert_refused(result, "convert", path, "5 of 5 frames decoded, 1 of them with errors", "--allow-truncated",
                   before_tensorflow=False)
    assert os.listdir(out) == [] and os.listdir(tmp) == []


@pytest.mark.slow
def test_truncated_mp4_is_refused_unless_allowed(tmp_path):
    whole = make_clip(tmp_path / "whole.mp4", 75, "64x36", 25, "-movflags", "+faststart")
    half = tmp_path / "half.mp4"
    half.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    out = tmp_path / "out"
    out.mkdir()
    result = sritm("convert", half, "-o", out / "o.mp4", "--baseline", "--quiet")
    line = assert_one_error_line(result, "convert", half, "truncated", "of 75 frames decoded", "--allow-truncated")
    decoded = int(re.search(r"(\d+) of 75", line).group(1))
    assert 0 < decoded < 75 and os.listdir(out) == []
    result = sritm("convert", half, "-o", out / "o.mp4", "--baseline", "--quiet", "--allow-truncated")
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == (f"sritm convert: warning: {half}: truncated or damaged; converted the "
                                     f"{decoded} of 75 frames that decode")
    assert len(packet_times(out / "o.mp4")[0]) == decoded and os.listdir(out) == ["o.mp4"]


@pytest.mark.slow
def test_truncated_mkv_is_refused_by_its_listed_duration(tmp_path):
    """Matroska lists no frame count, only the stream's duration (its DURATION tag, written
    into the header): frames that end well short of it are a truncated file."""
    from sritm_tf.batch import plan

    whole = make_clip(tmp_path / "whole.mkv", 75, "64x36", 25)
    part = tmp_path / "part.mkv"
    part.write_bytes(whole.read_bytes()[: whole.stat().st_size * 6 // 10])
    out = tmp_path / "out"
    out.mkdir()
    result = sritm("convert", part, "-o", out / "o.mkv", "--baseline", "--quiet")
    line = assert_one_error_line(result, "convert", part, "truncated", "of about 75 frames decoded",
                                 "the container lists 3.000 s", "--allow-truncated")
    decoded = int(re.search(r"(\d+) of about 75", line).group(1))
    assert 0 < decoded < 75 and os.listdir(out) == []
    result = sritm("convert", part, "-o", out / "o.mkv", "--baseline", "--quiet", "--allow-truncated")
    assert result.returncode == 0, result.stderr
    assert f"converted the {decoded} of 75 frames that decode" in result.stderr
    assert len(packet_times(out / "o.mkv")[0]) == decoded
    with pytest.raises(InputError, match="truncated or damaged video: its frames end at"):  # convert-batch's plan
        plan.plan_title(str(part), str(out / "b.mkv"), str(tmp_path / "work"), plan.batch_settings(), 10.0)
    whole_title = plan.plan_title(str(whole), str(out / "w.mkv"), str(tmp_path / "work"), plan.batch_settings(), 10.0)
    assert whole_title["kind"] == "video" and whole_title["listed"] is None
    result = sritm("convert", whole, "-o", out / "w.mkv", "--baseline", "--quiet")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert len(packet_times(out / "w.mkv")[0]) == 75
    # A whole stream that starts late (a cut with -ss, or audio first): DURATION is its end, not its length.
    late = make_clip(tmp_path / "late.mkv", 50, "64x36", 25, "-vf", "setpts=PTS+1/TB")
    assert plan.plan_title(str(late), str(out / "l.mkv"), str(tmp_path / "work"), plan.batch_settings(), 10.0)["listed"] is None
    result = sritm("convert", late, "-o", out / "l.mkv", "--baseline", "--quiet")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert len(packet_times(out / "l.mkv")[0]) == 50


def _png_declaring(width, height):
    """A PNG whose header declares `width` x `height` but holds one row of data."""
    import struct
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 7))
            + chunk(b"IEND", b""))


def test_image_declaring_too_many_pixels_is_one_line(tmp_path):
    huge = tmp_path / "huge.png"
    huge.write_bytes(_png_declaring(100000, 100000))
    result = sritm("convert", huge, "-o", tmp_path / "o.png", "--baseline")
    assert_one_error_line(result, "convert", huge, "not a readable image", "declares more pixels")
    assert sorted(os.listdir(tmp_path)) == ["huge.png"]
    from sritm_tf import imageio

    assert imageio.decode_image(huge.read_bytes()) is None  # as documented, for every caller (gain maps too)


def test_a_device_or_pipe_is_named_as_such(tmp_path):
    fifo = tmp_path / "frames.png"
    os.mkfifo(fifo)
    result = sritm("convert", fifo, "-o", tmp_path / "o.png", "--baseline")
    assert_one_error_line(result, "convert", fifo, "not a regular file")
    assert os.listdir(tmp_path) == ["frames.png"]


# ---------------------------------------------------------------------------
# Damaged or unsuitable weights (.npz, .keras, .weights.h5)
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """{extension: path} of small valid weights files of each format (x2)."""
    from sritm_tf import build_deep_sritm
    from sritm_tf.pretrained import save_weights_npz

    folder = tmp_path_factory.mktemp("weights")
    model = build_deep_sritm(scale=2, channels=4, m=1, n=1)
    model.save(folder / "w.keras")
    model.save_weights(folder / "w.weights.h5")
    save_weights_npz(model, folder / "w.npz")
    return {ext: folder / f"w{ext}" for ext in (".npz", ".keras", ".weights.h5")}


def loads_first(ext, damage):
    """True where the damage shows only as the weights load (after TensorFlow started): a corrupt
    middle, or an HDF5 file cut short; an empty or cut zip archive (.npz, .keras) lacks the directory
    at its end, and is refused before."""
    return damage == "corrupt" or (ext, damage) == (".weights.h5", "truncated")


WEIGHTS_CASES = [pytest.param(ext, damage, marks=[pytest.mark.slow] if loads_first(ext, damage) else [],
                              id=f"{ext}-{damage}")
                 for ext in (".npz", ".keras", ".weights.h5") for damage in ("zero", "truncated", "corrupt")]


@pytest.mark.parametrize("ext, damage", WEIGHTS_CASES)
def test_damaged_weights_are_one_line(inputs, weights, folders, ext, damage):
    out, tmp = folders
    path = tmp.parent / f"{damage}{ext}"
    path.write_bytes(damaged(weights[ext].read_bytes(), damage))
    result = sritm_reporting_tensorflow("convert", inputs / "img.png", "-o", out / "o.png", "--weights", path, "--quiet", tmp=tmp)
    assert_refused(result, "convert", path, before_tensorflow=not loads_first(ext, damage))
    assert os.listdir(out) == [] and os.listdir(tmp) == []


def test_damaged_weights_in_eval_and_export(folders):
    out, tmp = folders
    pairs = tmp.parent / "pairs"
    pairs.mkdir()
    for name in ("a_sdr.png", "a_hdr.png"):
        (pairs / name).write_bytes(b"")  # found as a pair; never read, the weights fail first
    path = tmp.parent / "w.keras"
    path.write_bytes(b"PK\x03\x04 not a zip archive")
    for args, command in ((["eval", pairs, "--json", out / "r.json"], "eval"),
                          (["export", "--format", "tflite", "-o", out / "m.tflite"], "export")):
        result = sritm_reporting_tensorflow(*args, "--weights", path, tmp=tmp)
        assert_refused(result, command, path, "not a .keras weights file")
    assert os.listdir(out) == [] and os.listdir(tmp) == []


@pytest.mark.slow
def test_corrupt_weights_npz_is_one_line_in_convert_eval_and_export(tmp_path, pairs_dir):
    from sritm_tf.pretrained import bundled_weights_path, load_model, sample_path

    good = open(bundled_weights_path(2), "rb").read()
    bad = {"zip_garbage.npz": good[:4] + bytes(range(256)) * 8,  # the zip magic, then garbage
           "truncated.npz": good[: len(good) // 2],
           "text.npz": b"these are not weights\n"}
    for name, content in bad.items():
        (tmp_path / name).write_bytes(content)
    out = tmp_path / "out"
    out.mkdir()
    runs = {"convert": ["convert", sample_path(), "-o", out / "x.png"],
            "eval": ["eval", pairs_dir, "--json", out / "x.json"],
            "export": ["export", "--format", "tflite", "--input-size", "24x16", "-o", out / "x.tflite"]}
    for (command, args), name in zip(runs.items(), bad):  # each command with another kind of damage
        line = assert_one_error_line(sritm(*args, "--weights", tmp_path / name), command, tmp_path / name)
        assert ".npz" in line
    assert list(out.iterdir()) == []
    for name in bad:  # every kind, in every command's loader
        with pytest.raises(InputError, match=f"^{re.escape(str(tmp_path / name))}: not a .*npz weights file"):
            load_model(2, tmp_path / name)


def test_weights_of_another_shape_name_the_file(tmp_path):
    from sritm_tf import pretrained
    from sritm_tf.model import build_deep_sritm

    path = str(tmp_path / "odd.npz")
    pretrained.save_weights_npz(build_deep_sritm(2, channels=4, m=1, n=1, skip="classical"), path, dtype="float32")
    entries = dict(np.load(path))
    entries["out_conv/1"] = np.zeros(7, np.float32)  # a bias of the wrong length
    np.savez(path, **entries)
    with pytest.raises(InputError, match=r"odd.npz: .*out_conv"):
        pretrained.read_weights(path)


@pytest.mark.slow
def test_weights_with_nan_are_refused_by_name(tmp_path):
    from sritm_tf import pretrained
    from sritm_tf.model import build_deep_sritm

    model = build_deep_sritm(2, channels=4, m=1, n=1, skip="classical")
    layer = model.get_layer("base_conv1")
    kernel, bias = layer.get_weights()
    layer.set_weights([kernel, np.full_like(bias, np.nan)])
    path = tmp_path / "diverged.npz"
    pretrained.save_weights_npz(model, str(path), dtype="float32")
    with pytest.raises(InputError, match="diverged.npz: layer base_conv1 holds non-finite weights"):
        pretrained.read_weights(str(path))
    image = tmp_path / "in.png"
    import cv2

    cv2.imwrite(str(image), np.full((8, 8, 3), 128, np.uint8))
    result = sritm("convert", image, "-o", tmp_path / "o.png", "--weights", path, "--precision", "fp32", "--quiet")
    assert_one_error_line(result, "convert", path, "base_conv1", "non-finite")
    assert sorted(os.listdir(tmp_path)) == ["diverged.npz", "in.png"]


# ---------------------------------------------------------------------------
# Pairs that cannot be scored
# ---------------------------------------------------------------------------
@pytest.mark.slow
def test_eval_of_frames_too_small_to_score_is_one_line(tmp_path):
    import cv2

    cv2.imwrite(str(tmp_path / "a_sdr.png"), np.full((6, 6, 3), 100, np.uint8))
    cv2.imwrite(str(tmp_path / "a_hdr.png"), np.full((6, 6, 3), 30000, np.uint16))
    result = sritm("eval", tmp_path, "--baseline-only")
    assert_one_error_line(result, "eval", "a_hdr.png", "6x6", "too small to score")


@pytest.mark.slow
def test_eval_refuses_a_16_bit_sdr_master(tmp_path):
    import cv2

    cv2.imwrite(str(tmp_path / "a_sdr.png"), np.full((32, 32, 3), 30000, np.uint16))  # the pair swapped
    cv2.imwrite(str(tmp_path / "a_hdr.png"), np.full((32, 32, 3), 100, np.uint8))
    result = sritm("eval", tmp_path, "--baseline-only")
    assert_one_error_line(result, "eval", "a_sdr.png", "uint16")


# ---------------------------------------------------------------------------
# Training data: damaged record shards and sources, records smaller than the patch
# ---------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("damage", ["zero", "corrupt", "mid"])
def test_damaged_record_shard_is_one_line(folders, damage):
    """A shard that is empty, not TFRecord data, or damaged after its first record (a flipped byte
    that only its CRC shows) is named before training starts (no run folder)."""
    out, tmp = folders
    records = write_records(str(tmp.parent / "records"), count=8, size=8, shards=2)
    shard = os.path.join(records, "shard-00001.tfrecord")
    with open(shard, "r+b") as f:
        data = f.read()
        if damage == "mid":
            at = len(data) * 4 // 5
            data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]
        else:
            data = damaged(data, damage)
            data = data if damage == "zero" else b"not a record" + data
        f.seek(0)
        f.truncate()
        f.write(data)
    result = sritm_reporting_tensorflow("train", records, "--steps", 1, "--pretrain-steps", 1, "--batch-size", 1, "--channels", 4,
                   "--m", 1, "--n", 1, "-o", out / "run", tmp=tmp)
    line = assert_refused(result, "train", shard, before_tensorflow=False)
    assert damage != "mid" or "at record" in line, line
    assert os.listdir(out) == [] and os.listdir(tmp) == []


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["zero", "truncated", "corrupt"])
def test_prepare_lists_damaged_sources_and_leaves_no_folder(inputs, folders, damage):
    out, tmp = folders
    bad = tmp.parent / f"{damage}.exr"
    bad.write_bytes(damaged((inputs / "img.exr").read_bytes(), damage))
    result = sritm_reporting_tensorflow("prepare", bad, "-o", out / "records", "--quiet", tmp=tmp)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[-1].startswith("sritm prepare: ") and "no usable source" in lines[-1], lines
    assert any(str(bad) in line for line in lines[:-1]), lines  # the damaged file is named
    assert os.listdir(out) == [] and os.listdir(tmp) == []


@pytest.mark.slow
def test_train_patch_size_larger_than_the_records(tmp_path):
    records = write_records(str(tmp_path / "records"), count=2, size=20, shards=1)
    run_dir = tmp_path / "run"
    result = sritm("train", records, "--patch-size", 24, "--steps", 1, "--pretrain-steps", 1, "--batch-size", 1,
                   "--channels", 4, "--m", 1, "--n", 1, "-o", run_dir)
    assert_one_error_line(result, "train", "--patch-size 24", "20x20", records)
    assert not run_dir.exists()
