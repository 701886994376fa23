"""Fault injection: `sritm` run as a subprocess against each class of
fault: damaged inputs of every accepted format, damaged weights and records, a full disk,
signals mid-run, bad argument values. Each case checks the exit status, one stderr line
naming the file or option (no traceback, no library chatter), and that nothing is left in
the output folder or the temporary folder (TMPDIR). Bad inputs are refused before
TensorFlow is imported (a fraction of a second), except where the damage only shows while
decoding; the cases that import TensorFlow are marked slow.
"""
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from test_faults import REPO, _start_and_signal, ffmpeg

SHARED_GAINMAP = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "hdri", "gainmap",
                              "seine_sdr_gainmap_srgb.jpg")


def sritm(*args, tmp, prelude="", timeout=180):
    """`sritm ARGS` in a fresh interpreter with TMPDIR=`tmp`, after the Python code `prelude` (a fault
    to inject); its last stdout line says whether TensorFlow was imported."""
    code = (f"{prelude}\nimport sys\nfrom sritm_tf.cli import main\ncode = main(sys.argv[1:])\n"
            "print('tensorflow' in sys.modules)\nsys.exit(code)")
    env = {**os.environ, "PYTHONPATH": REPO, "TMPDIR": str(tmp)}
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout)


@pytest.fixture
def folders(tmp_path):
    """(out, tmp): an empty output folder and an empty TMPDIR for the subprocess."""
    out, tmp = tmp_path / "out", tmp_path / "tmp"
    out.mkdir()
    tmp.mkdir()
    return out, tmp


def assert_refused(result, command, *names, code=2, before_tensorflow=True):
    """Exit status `code`, one stderr line `sritm COMMAND: ...` naming each of `names`."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, result.stderr
    assert len(lines) == 1 and lines[0].startswith(f"sritm {command}: "), result.stderr
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    if before_tensorflow:
        assert result.stdout.strip().splitlines()[-1:] == ["False"], "TensorFlow was imported first"
    return lines[0]


# ---------------------------------------------------------------------------
# Damaged inputs of every format `sritm convert` accepts
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A folder of tiny valid inputs: 32x24 stills in every image format, 5-frame 64x48 clips in every
    container, a raw yuv420p file of 3 frames."""
    import cv2
    import OpenEXR

    folder = tmp_path_factory.mktemp("inputs")
    rgb = np.random.default_rng(0).integers(0, 256, (24, 32, 3), np.uint8)
    for ext in ("png", "jpg", "tif", "bmp", "webp"):
        cv2.imwrite(str(folder / f"img.{ext}"), rgb)
    cv2.imwrite(str(folder / "img16.png"), rgb.astype(np.uint16) * 257)
    cv2.imwrite(str(folder / "img.hdr"), rgb.astype(np.float32) / 255)
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, {"RGB": rgb.astype(np.float16) / 255}) as exr:
        exr.write(str(folder / "img.exr"))
    source = ["-f", "lavfi", "-i", "testsrc=size=64x48:rate=10", "-frames:v", 5]
    for ext, codec in (("mp4", "libx264"), ("mkv", "libx264"), ("mov", "libx264"), ("webm", "libvpx-vp9"),
                       ("avi", "mpeg4")):
        ffmpeg(*source, "-c:v", codec, "-pix_fmt", "yuv420p", folder / f"clip.{ext}")
    ffmpeg(*source[:-1], 3, "-pix_fmt", "yuv420p", "-f", "rawvideo", folder / "clip.yuv")  # half: 1.5 frames
    return folder


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
    size = ["--size", "64x48"] if name.endswith(".yuv") else []
    result = sritm("convert", path, "-o", out / f"o.{output}", "--baseline", "--quiet", *size, tmp=tmp)
    assert_refused(result, "convert", path, before_tensorflow=(name, damage) != ("clip.avi", "corrupt"))
    assert os.listdir(out) == [] and os.listdir(tmp) == []


@pytest.mark.skipif(not os.path.isfile(SHARED_GAINMAP), reason="../shared/data/hdri/gainmap absent")
@pytest.mark.parametrize("damage", ["zero", "truncated", "corrupt"])
def test_damaged_gain_map_jpeg_is_one_line(folders, damage):
    out, tmp = folders
    path = tmp.parent / f"{damage}-gainmap.jpg"
    path.write_bytes(damaged(open(SHARED_GAINMAP, "rb").read(), damage))
    result = sritm("convert", path, "-o", out / "o.png", "--baseline", "--quiet", tmp=tmp)
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
    result = sritm("convert", path, "-o", out / "o.mp4", "--baseline", "--quiet", tmp=tmp)
    assert_refused(result, "convert", path, "5 of 5 frames decoded, 1 of them with errors", "--allow-truncated",
                   before_tensorflow=False)
    assert os.listdir(out) == [] and os.listdir(tmp) == []


# ---------------------------------------------------------------------------
# Damaged weights (.npz, .keras, .weights.h5) and training records
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
    result = sritm("convert", inputs / "img.png", "-o", out / "o.png", "--weights", path, "--quiet", tmp=tmp)
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
        result = sritm(*args, "--weights", path, tmp=tmp)
        assert_refused(result, command, path, "not a .keras weights file")
    assert os.listdir(out) == [] and os.listdir(tmp) == []


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["zero", "corrupt", "mid"])
def test_damaged_record_shard_is_one_line(folders, damage):
    """A shard that is empty, not TFRecord data, or damaged after its first record (a flipped byte
    that only its CRC shows) is named before training starts (no run folder)."""
    from train_helpers import write_records

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
    result = sritm("train", records, "--steps", 1, "--pretrain-steps", 1, "--batch-size", 1, "--channels", 4,
                   "--m", 1, "--n", 1, "-o", out / "run", tmp=tmp)
    line = assert_refused(result, "train", shard, before_tensorflow=False)
    assert damage != "mid" or "at record" in line, line
    assert os.listdir(out) == [] and os.listdir(tmp) == []


# ---------------------------------------------------------------------------
# A full disk: at the image write, the raw video write, and in ffmpeg's encoding stage
# ---------------------------------------------------------------------------
# Python's writes to sritm's temporaries (`fileio.temporary_path`: ".part-<pid>-<name>") write half, then
# fail with ENOSPC, leaving a partial file to clean up.
FULL_AT_WRITE = """
import builtins, errno, io, os

class _Full(io.FileIO):
    def write(self, data):
        super().write(bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

_open = builtins.open

def _open_full(file, mode="r", *args, **kwargs):
    if "w" in mode and os.path.basename(os.fspath(file)).startswith(".part-"):
        return _Full(file, "wb")
    return _open(file, mode, *args, **kwargs)

builtins.open = _open_full
"""
# ffmpeg itself writes to /dev/full: a real ENOSPC from the encoder (at the header for MP4, at the trailer
# for Matroska, where ffmpeg 5.1 still exits 0).
FULL_IN_FFMPEG = """
import subprocess

_Popen = subprocess.Popen

class _PopenFull(_Popen):
    def __init__(self, cmd, *args, **kwargs):
        if cmd and cmd[0] == "ffmpeg":
            cmd = [*cmd[:-1], "/dev/full"]
        super().__init__(cmd, *args, **kwargs)

subprocess.Popen = _PopenFull
"""


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
@pytest.mark.parametrize("source, output, prelude", [
    ("img.png", "o.png", FULL_AT_WRITE), ("clip.mp4", "o.yuv", FULL_AT_WRITE),
    ("clip.mp4", "o.mp4", FULL_IN_FFMPEG), ("clip.mp4", "o.mkv", FULL_IN_FFMPEG)])
def test_full_disk_is_one_line(inputs, folders, source, output, prelude):
    out, tmp = folders
    result = sritm("convert", inputs / source, "-o", out / output, "--baseline", "--quiet", tmp=tmp, prelude=prelude)
    line = assert_refused(result, "convert", out / output, before_tensorflow=False)
    assert line.endswith(f"{out / output}: no space left on device")
    assert os.listdir(out) == [] and os.listdir(tmp) == []


# ---------------------------------------------------------------------------
# SIGINT / SIGTERM / SIGKILL mid-run, then a re-run
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=25", "-frames:v", 3000, "-c:v", "libx264",
           "-pix_fmt", "yuv420p", path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("signum, code, message", [
    (signal.SIGINT, 130, "sritm convert: interrupted"), (signal.SIGTERM, 143, "sritm convert: terminated"),
    (signal.SIGKILL, -signal.SIGKILL, "")])
def test_signal_mid_run_then_a_rerun(inputs, long_clip, folders, signum, code, message):
    """The signal comes once frames are being encoded (the partial output has bytes); SIGINT and
    SIGTERM clean up, SIGKILL leaves temporaries that the re-run removes; the re-run succeeds."""
    from sritm_tf import fileio

    out, tmp = folders
    output = out / "o.mp4"
    returncode, err = _start_and_signal(long_clip, output, signum, "--baseline", env={"TMPDIR": str(tmp)})
    assert returncode == code and err.strip() == message, err
    left = os.listdir(out)
    assert (left == []) if signum != signal.SIGKILL else (left and all(map(fileio.is_temporary, left))), left

    result = sritm("convert", inputs / "clip.mp4", "-o", output, "--baseline", "--quiet", tmp=tmp)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert os.listdir(out) == ["o.mp4"] and os.listdir(tmp) == []


# ---------------------------------------------------------------------------
# Bad argument values: one line naming the option, before TensorFlow
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("args, names", [
    (["convert", "{png}", "-o", "{out}/o.png", "--scale", "3"], ["--scale", "3"]),
    (["convert", "{png}", "-o", "{out}/o.png", "--format", "gif"], ["--format", "gif"]),
    (["convert", "{png}", "-o", "{out}/o.png", "--fps", "abc"], ["--fps", "abc"]),
    (["convert", "{png}", "-o", "{out}/o.png", "--tile", "12xabc"], ["--tile", "12xabc"]),
    (["convert", "{png}", "-o", "{out}/o.png", "--white-nits", "-5"], ["--white-nits", "-5"]),
    (["convert", "{png}", "-o", "{out}/o.png", "--peak-nits", "nan"], ["--peak-nits", "nan"]),
    (["convert", "{png}", "-o", "{out}/o.png", "--transfer", "hlg", "--peak-nits", "4000"],
     ["--peak-nits 4000", "--transfer hlg", "1000 cd/m2"]),
    (["convert", "{png}", "-o", "{out}/o.gif"], ["o.gif", "unknown output format"]),
    (["convert", "{yuv}", "-o", "{out}/o.yuv"], ["clip.yuv", "--size"]),
    (["convert", "{yuv}", "-o", "{out}/o.yuv", "--size", "63x48"], ["clip.yuv", "check --size"]),
    (["convert", "{png}", "-o", "{out}/o.png", "--weights", "{png}"], ["img.png", "unknown weights format"]),
    (["eval", "{out}", "--white-nits", "bright"], ["--white-nits", "bright"]),
    (["eval", "{out}", "--crop", "0x0"], ["--crop"]),
    (["eval", "{out}"], ["no <name>_sdr.*"]),
    (["export", "--format", "savedmodel", "-o", "{out}/m", "--version", "0"], ["--version", "0"]),
    (["export", "--format", "tflite", "-o", "{out}/m.tflite", "--input-size", "wide"], ["--input-size", "wide"]),
    (["export", "--format", "tflite", "-o", "{out}/m.tflite", "--calibration", "{png}"], ["--calibration"]),
    (["train", "--patch-size", "ten"], ["--patch-size", "ten"]),
    (["train", "{out}", "--lr", "nan"], ["--lr", "nan"]),
    (["train", "{out}", "--batch-size", "0"], ["--batch-size", "0"]),
    (["train", "--init", "{png}", "--pairs", "{out}", "--patch-size", "0"], ["--patch-size", "0"]),
    (["prepare", "{png}", "-o", "{out}/p", "--scale", "8"], ["--scale", "8"]),
], ids=lambda value: " ".join(value) if isinstance(value, list) and value[0] in (
    "convert", "eval", "export", "train", "prepare") else None)
def test_bad_argument_values_are_one_line(inputs, folders, args, names):
    out, tmp = folders
    paths = {"png": inputs / "img.png", "yuv": inputs / "clip.yuv", "out": out}
    result = sritm(*[arg.format(**paths) for arg in args], tmp=tmp)
    line = assert_refused(result, args[0], *names, before_tensorflow=False)
    assert result.stdout.strip() in ("", "False"), "TensorFlow was imported first"
    assert "usage:" not in line
    assert os.listdir(out) == [] and os.listdir(tmp) == []


# ---------------------------------------------------------------------------
# `sritm prepare`: damaged training sources are listed, the rest goes on; nothing usable leaves nothing
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["zero", "truncated", "corrupt"])
def test_prepare_lists_damaged_sources_and_leaves_no_folder(inputs, folders, damage):
    out, tmp = folders
    bad = tmp.parent / f"{damage}.exr"
    bad.write_bytes(damaged((inputs / "img.exr").read_bytes(), damage))
    result = sritm("prepare", bad, "-o", out / "records", "--quiet", tmp=tmp)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[-1].startswith("sritm prepare: ") and "no usable source" in lines[-1], lines
    assert any(str(bad) in line for line in lines[:-1]), lines  # the damaged file is named
    assert os.listdir(out) == [] and os.listdir(tmp) == []
