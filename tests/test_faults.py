"""Fault injection: bad inputs, bad argument values and broken peers get one clear
line naming the file or option, exit status 2, and leave no file behind.

CLI cases run `sritm` as a subprocess, as a user would.
"""
import contextlib
import os
import re
import subprocess
import sys
import threading
from fractions import Fraction

import numpy as np
import pytest

from sritm_tf.errors import InputError
from sritm_tf.export import QUANTIZE_MODES, convert_tflite, representative_frames, run_tflite, tflite_interpreter

TFLITE_SIZE = (16, 24)  # (h, w): small, so that full-int8 calibration stays fast


@pytest.fixture(scope="module")
def bundled_model():
    from sritm_tf.pretrained import load_model

    return load_model(2)


# ---------------------------------------------------------------------------
# 0: every exported TFLite variant runs on black, white, flat grey and a real frame
# ---------------------------------------------------------------------------
def _check_tflite_on_test_frames(model, mode, tolerance):
    calibration = representative_frames(TFLITE_SIZE, count=2)
    interpreter = tflite_interpreter(convert_tflite(model, mode, TFLITE_SIZE, calibration))
    flat = lambda y: np.broadcast_to(np.array([y, 0.5, 0.5], np.float32), TFLITE_SIZE + (3,))
    frames = {"black": flat(0.0), "white": flat(1.0), "grey": flat(0.5),
              "black, saturated chroma": np.broadcast_to(np.float32([0.0, 0.0, 1.0]), TFLITE_SIZE + (3,)),
              "real": representative_frames(TFLITE_SIZE, count=1, seed=123)[0]}
    for name, frame in frames.items():
        got = run_tflite(interpreter, frame)  # full int8 used to fail on black: DIV by a quantised zero
        want = model(frame[None]).numpy()[0]
        assert np.isfinite(got).all(), name
        assert np.abs(got - want).max() <= tolerance, (name, np.abs(got - want).max())


@pytest.mark.parametrize("mode", QUANTIZE_MODES)
def test_tflite_runs_on_black_white_grey_and_real_frames(mode):
    import keras

    from sritm_tf import build_deep_sritm

    keras.utils.set_random_seed(0)
    tolerance = {"none": 1e-5, "fp16": 2e-3, "dynamic": 0.01, "int8": 0.2}[mode]
    _check_tflite_on_test_frames(build_deep_sritm(scale=2, channels=8, m=1, n=1), mode, tolerance)


@pytest.mark.slow
def test_shipped_int8_tflite_runs_on_black_white_grey_and_real_frames(bundled_model):
    _check_tflite_on_test_frames(bundled_model, "int8", 0.25)


# ---------------------------------------------------------------------------
# The command line as a subprocess
# ---------------------------------------------------------------------------
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sritm(*args, timeout=120, env=None, cwd=None):
    """Runs `sritm ARGS` in a fresh interpreter; returns the CompletedProcess."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")])),
           **(env or {})}
    return subprocess.run([sys.executable, "-m", "sritm_tf.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=cwd)


def assert_one_error_line(result, command, *names):
    """Exit status 2 and a single stderr line `sritm COMMAND: error: ...` naming each of `names`."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"sritm {command}: error: "), lines[0]
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory):
    """A folder with one SDR/HDR10 pair (the bundled sample and its classical conversion)."""
    import cv2

    from sritm_tf import colour
    from sritm_tf.pretrained import sample_path

    folder = tmp_path_factory.mktemp("pairs")
    sdr8 = cv2.imread(sample_path(), cv2.IMREAD_COLOR)[:64, :96]
    hdr = colour.sdr_to_hdr10_baseline(sdr8[..., ::-1] / 255.0)
    cv2.imwrite(str(folder / "a_sdr.png"), sdr8)
    cv2.imwrite(str(folder / "a_hdr.png"), colour.quantize(hdr, 16)[..., ::-1])
    return folder


# ---------------------------------------------------------------------------
# 5: a damaged weights .npz, or another file named .npz
# ---------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------
# Videos (cases 1, 2, 3, 4, 6): small synthetic clips made with ffmpeg
# ---------------------------------------------------------------------------
def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *map(str, args)], check=True)


def default_sigint():
    """preexec_fn: SIGINT back to Python's default in the child. A shell starts background jobs with
    SIGINT ignored, and Python then never raises KeyboardInterrupt: without this the SIGINT tests
    would test nothing when the suite itself runs in the background."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def has_bytes(path):
    """The file exists and is not empty (False if it is renamed away meanwhile)."""
    try:
        return os.path.getsize(path) > 0
    except OSError:
        return False


def make_clip(path, frames=8, size="64x36", rate=25, *extra):
    """`frames` frames of testsrc, H.264 8-bit yuv420p, no audio; `extra`: more ffmpeg output options."""
    ffmpeg("-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}", "-frames:v", frames, "-c:v", "libx264",
           "-pix_fmt", "yuv420p", *extra, path)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4")


# ---------------------------------------------------------------------------
# 6: encoder settings are checked before the first frame; encoder errors name the output
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("values, option", [
    (["--preset", "fastest"], "--preset"), (["--crf", "52"], "--crf"), (["--crf", "-1"], "--crf")])
def test_bad_encoder_settings_fail_before_any_frame(tmp_path, clip, values, option):
    result = _sritm_reporting_tensorflow("convert", clip, "-o", tmp_path / "o.mp4", "--quiet", *values)
    assert_one_error_line(result, "convert", option, values[-1])
    assert result.stdout.strip() == "False"  # refused before TensorFlow started, let alone a frame
    assert os.listdir(tmp_path) == []


def test_encoder_settings_are_checked_before_decoding_in_the_api(tmp_path, clip, monkeypatch):
    from sritm_tf import convert
    from sritm_tf.video import sources

    def no_decoding(self):
        raise AssertionError("decoded before the encoder settings were checked")

    monkeypatch.setattr(sources.VideoSource, "__iter__", no_decoding)
    for settings, option in (({"preset": "fastest"}, "--preset"), ({"crf": 99}, "--crf"),
                             ({"crf": float("nan")}, "--crf")):
        with pytest.raises(InputError, match=f"^{option}: "):
            convert.convert_video(clip, tmp_path / "o.mkv", baseline=True, progress=False, **settings)
    assert os.listdir(tmp_path) == []


def test_encoder_error_names_the_output_not_the_temporary(tmp_path, clip, monkeypatch):
    from sritm_tf import convert
    from sritm_tf.errors import ToolError
    from sritm_tf.video import hdr10

    monkeypatch.setattr(hdr10, "check_encoder", lambda *args: None)  # as if x265 dropped a preset we list
    output = tmp_path / "o.mp4"
    with pytest.raises(ToolError) as raised:
        convert.convert_video(clip, output, baseline=True, progress=False, preset="fastest")
    message = str(raised.value)
    assert message.startswith(f"{output}: ffmpeg failed") and ".part" not in message and "\n" not in message
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------
# 2: SIGTERM cleans up like SIGINT; a re-run removes what SIGKILL left
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("long") / "long.mp4", 3000)  # killed long before its end


def _start_and_signal(source, output, signum, *options, env=None):
    """Starts `sritm convert SOURCE -o OUTPUT OPTIONS` (default: the network, fp32) with `env` added to
    the environment, sends `signum` once the encoder is writing its temporary output, and returns
    (exit status, stderr)."""
    import signal
    import time

    env = {**os.environ, "PYTHONPATH": REPO, **(env or {})}
    process = subprocess.Popen([sys.executable, "-m", "sritm_tf.cli", "convert", str(source), "-o", str(output),
                                "--quiet", *(options or ("--precision", "fp32"))], stderr=subprocess.PIPE, text=True,
                               env=env, preexec_fn=default_sigint)
    deadline = time.monotonic() + 90
    partial = output.parent / f".part-{process.pid}-{output.name}"
    while not has_bytes(partial):
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert signum != signal.SIGKILL or process.returncode == -signal.SIGKILL
    return process.returncode, err


def test_sigterm_mid_run_is_one_line_and_leaves_nothing(tmp_path, long_clip):
    import signal

    code, err = _start_and_signal(long_clip, tmp_path / "o.mp4", signal.SIGTERM)
    assert code == 143 and err.strip() == "sritm convert: terminated", err
    assert os.listdir(tmp_path) == []


def test_a_rerun_removes_what_sigkill_left(tmp_path, long_clip, clip):
    import signal

    from sritm_tf import fileio

    output = tmp_path / "o.mp4"
    _start_and_signal(long_clip, output, signal.SIGKILL)
    left = os.listdir(tmp_path)
    assert left and all(fileio.is_temporary(name) for name in left), left
    alive = tmp_path / f".part-{os.getpid()}-o.mp4"  # a running process's: kept
    alive.write_bytes(b"in use")
    result = sritm("convert", clip, "-o", output, "--baseline", "--quiet")
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path)) == sorted([alive.name, "o.mp4"])


# ---------------------------------------------------------------------------
# 3: a full disk is one line naming the output, and leaves nothing
# ---------------------------------------------------------------------------
@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB tmpfs (a real ENOSPC from every writer: Python, PyAV, ffmpeg); skips where mounting is not
    allowed (not root, or no CAP_SYS_ADMIN in a container)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


@pytest.mark.parametrize("name", ["o.png", "o.mp4", "o.yuv"])
def test_full_disk_is_one_line_and_leaves_nothing(full_disk, clip, tmp_path, name):
    from sritm_tf.pretrained import sample_path

    if name.endswith(".mp4"):  # streamed into x265, so what fills the disk is the HEVC stream: noise, 320x180
        source = make_clip(tmp_path / "noise.mp4", 8, "160x90", 25, "-vf", "noise=alls=80:allf=t")
    else:  # a 480x272 PNG; 8 raw frames of 128x72: > 64 KiB
        source = sample_path() if name.endswith(".png") else clip
    result = sritm("convert", source, "-o", full_disk / name, "--baseline", "--quiet")
    line = assert_one_error_line(result, "convert", full_disk / name)
    assert line.endswith(f"{full_disk / name}: no space left on device")
    assert os.listdir(full_disk) == []


# ---------------------------------------------------------------------------
# 1: a variable frame rate keeps its timestamps
# ---------------------------------------------------------------------------
def packet_times(path):
    """(presentation times of the video packets in seconds, sorted, as Fractions; the stream's time base)."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "stream=time_base:packet=pts", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, check=True).stdout.split()
    time_base = Fraction(next(v for v in out if "/" in v))
    return sorted(int(v) * time_base for v in out if "/" not in v), time_base


@pytest.mark.parametrize("container", ["mp4", "mkv"])
def test_variable_frame_rate_keeps_source_timestamps(tmp_path, container):
    source = make_clip(tmp_path / "cfr.mp4", 60)
    vfr = tmp_path / f"vfr.{container}"  # gaps of 3 frames, then runs of single ones
    ffmpeg("-i", source, "-an", "-vf", r"select='not(mod(n\,3))+eq(n\,10)+eq(n\,11)+between(n\,40\,50)'",
           "-fps_mode", "vfr", "-c:v", "libx264", vfr)
    output = tmp_path / f"o.{container}"
    result = sritm("convert", vfr, "-o", output, "--baseline", "--quiet")
    assert result.returncode == 0, result.stderr
    want, _ = packet_times(vfr)
    got, tick = packet_times(output)
    assert len(want) == 30 and len(got) == len(want)
    assert max(abs(g - w) for g, w in zip(got, want)) <= tick, (got, want)
    assert sorted(os.listdir(tmp_path)) == sorted(["cfr.mp4", vfr.name, output.name])


# ---------------------------------------------------------------------------
# 4: a truncated MP4 is refused, or converted as far as it decodes with --allow-truncated
# ---------------------------------------------------------------------------
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
        plan.plan_title(str(part), str(out / "b.mkv"), str(tmp_path / "work"), {"scale": 2}, 10.0)
    whole_title = plan.plan_title(str(whole), str(out / "w.mkv"), str(tmp_path / "work"), {"scale": 2}, 10.0)
    assert whole_title["kind"] == "video" and whole_title["listed"] is None
    result = sritm("convert", whole, "-o", out / "w.mkv", "--baseline", "--quiet")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert len(packet_times(out / "w.mkv")[0]) == 75
    # A whole stream that starts late (a cut with -ss, or audio first): DURATION is its end, not its length.
    late = make_clip(tmp_path / "late.mkv", 50, "64x36", 25, "-vf", "setpts=PTS+1/TB")
    assert plan.plan_title(str(late), str(out / "l.mkv"), str(tmp_path / "work"), {"scale": 2}, 10.0)["listed"] is None
    result = sritm("convert", late, "-o", out / "l.mkv", "--baseline", "--quiet")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert len(packet_times(out / "l.mkv")[0]) == 50


# ---------------------------------------------------------------------------
# 7: eval --json into a missing folder fails before any metric is computed
# ---------------------------------------------------------------------------
def test_eval_json_into_a_missing_folder_fails_first(tmp_path, pairs_dir):
    target = tmp_path / "missing" / "result.json"
    result = sritm("eval", pairs_dir, "--baseline-only", "--json", target)
    assert_one_error_line(result, "eval", "--json", target, "does not exist")
    assert not result.stdout  # no pair was evaluated
    assert list(tmp_path.iterdir()) == [] and sorted(os.listdir(pairs_dir)) == ["a_hdr.png", "a_sdr.png"]


# ---------------------------------------------------------------------------
# 8: argument values
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("values, option", [
    (["--size", "0x0"], "--size"), (["--size", "abc"], "--size"),
    (["--size", "16x8", "--fps", "-5"], "--fps"), (["--size", "16x8", "--fps", "0"], "--fps"),
    (["--size", "16x8", "--fps", "nan"], "--fps"), (["--size", "16x8", "--fps", "5000"], "--fps")])
def test_bad_size_and_fps_values_are_one_line(tmp_path, values, option):
    raw = tmp_path / "in.yuv"
    raw.write_bytes(bytes(16 * 8 * 3 // 2 * 2))  # two 16x8 yuv420p frames
    out = tmp_path / "out"
    out.mkdir()
    result = sritm("convert", raw, "-o", out / "o.mp4", "--quiet", *values)
    assert_one_error_line(result, "convert", option, values[-1])
    assert list(out.iterdir()) == []


def test_fps_zero_is_refused_by_the_api_too(tmp_path):
    from sritm_tf.convert import open_source

    raw = tmp_path / "in.yuv"
    raw.write_bytes(bytes(16 * 8 * 3 // 2))
    with pytest.raises(InputError, match="--fps"):
        open_source(raw, "16x8", 0)
    assert open_source(raw, "16x8", 24).frame_rate == 24
    assert open_source(raw, "16x8", 29.97).frame_rate == Fraction(2997, 100)  # not 2**-48 steps


def test_decimal_fps_converts(tmp_path):
    raw = tmp_path / "in.yuv"
    raw.write_bytes(bytes(16 * 8 * 3 // 2 * 2))
    result = sritm("convert", raw, "-o", tmp_path / "o.yuv", "--size", "16x8", "--fps", "29.97", "--baseline",
                   "--quiet")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "o.yuv").stat().st_size == 2 * 32 * 16 * 3 // 2 * 2 and len(os.listdir(tmp_path)) == 2


@pytest.mark.slow
def test_train_patch_size_larger_than_the_records(tmp_path):
    from train_helpers import write_records

    records = write_records(str(tmp_path / "records"), count=2, size=20, shards=1)
    run_dir = tmp_path / "run"
    result = sritm("train", records, "--patch-size", 24, "--steps", 1, "--pretrain-steps", 1, "--batch-size", 1,
                   "--channels", 4, "--m", 1, "--n", 1, "-o", run_dir)
    assert_one_error_line(result, "train", "--patch-size 24", "20x20", records)
    assert not run_dir.exists()


@pytest.mark.parametrize("option, value", [("--lr", "nan"), ("--lr", "-1"), ("--pretrain-lr", "inf"),
                                           ("--batch-size", "0"), ("--steps", "0"), ("--checkpoint-every", "0")])
def test_train_refuses_bad_numbers_before_writing_anything(tmp_path, option, value):
    from train_helpers import write_records

    records = write_records(str(tmp_path / "records"), count=2, size=20, shards=1)
    run_dir = tmp_path / "run"
    args = {"--steps": "1", "--pretrain-steps": "1", "--batch-size": "1", option: value}
    result = sritm("train", records, *[x for kv in args.items() for x in kv], "--channels", 4, "--m", 1, "--n", 1,
                   "-o", run_dir)
    assert_one_error_line(result, "train", f"{option}: expected", value)
    assert not run_dir.exists()


def test_a_config_yaml_rate_written_as_text_is_one_line(tmp_path):
    """PyYAML reads `lr: 1e-4` as the string '1e-4' (YAML 1.1 floats need a dot)."""
    from sritm_tf.commands.train import check_config
    from sritm_tf.errors import UserError
    from sritm_tf.train.config import TrainConfig

    cfg = TrainConfig(data=str(tmp_path), run_dir=str(tmp_path / "run"), lr="1e-4")
    with pytest.raises(UserError, match="--lr: expected a positive number, got '1e-4'"):
        check_config(cfg, overwrite=False)


def test_training_stops_with_one_line_when_the_loss_is_no_longer_finite():
    """A diverged run stops at once (`train.StopOnNaN`), before a checkpoint of NaNs is written."""
    import keras

    from sritm_tf.errors import UserError
    from sritm_tf.train.loop import StopOnNaN

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.ones((8, 2), np.float32)
    y = np.ones((8, 1), np.float32)
    model.fit(x, y, epochs=1, batch_size=4, verbose=0, callbacks=[StopOnNaN()])  # finite: runs through
    y[5] = np.nan
    with pytest.raises(UserError, match=r"the training loss became nan at step 2 .*weights are no longer finite.*--lr"):
        model.fit(x, y, epochs=1, batch_size=4, verbose=0, shuffle=False, callbacks=[StopOnNaN()])


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


def test_export_savedmodel_onto_a_file(tmp_path):
    target = tmp_path / "models"
    target.write_text("not a folder")
    result = sritm("export", "--format", "savedmodel", "-o", target)
    assert_one_error_line(result, "export", target, "is a file")
    assert target.read_text() == "not a folder" and list(tmp_path.iterdir()) == [target]


@pytest.mark.parametrize("name", ["../elsewhere", "a/b", "", ".."])
def test_export_model_name_is_one_folder(tmp_path, name):
    result = sritm("export", "--format", "savedmodel", "-o", tmp_path / "models", "--model-name", name)
    assert_one_error_line(result, "export", "--model-name", repr(name))
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------
# More bad inputs: one line, nothing written
# ---------------------------------------------------------------------------
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


def test_eval_of_frames_too_small_to_score_is_one_line(tmp_path):
    import cv2

    cv2.imwrite(str(tmp_path / "a_sdr.png"), np.full((6, 6, 3), 100, np.uint8))
    cv2.imwrite(str(tmp_path / "a_hdr.png"), np.full((6, 6, 3), 30000, np.uint16))
    result = sritm("eval", tmp_path, "--baseline-only")
    assert_one_error_line(result, "eval", "a_hdr.png", "6x6", "too small to score")


def test_peak_below_white_is_refused(tmp_path, pairs_dir):
    result = sritm("convert", pairs_dir / "a_sdr.png", "-o", tmp_path / "o.png", "--baseline", "--peak-nits", 150)
    assert_one_error_line(result, "convert", "--peak-nits 150", "--white-nits 203")
    assert os.listdir(tmp_path) == []


def test_hlg_output_refuses_a_peak_above_its_display():
    """HLG output is for BT.2100's 1000 cd/m2 reference display (`colour.pq_to_hlg` clips there),
    so a higher peak would be silently ignored: the API refuses it as the CLI does."""
    from sritm_tf.convert import FrameConverter

    with pytest.raises(InputError, match="peak 4000 cd/m2 with HLG output"):
        FrameConverter(baseline=True, transfer="hlg", peak_nits=4000.0)
    assert FrameConverter(baseline=True, transfer="hlg", peak_nits=1000.0).transfer == "hlg"
    from sritm_tf.batch import plan  # convert_batch() checks its settings before it makes any folder

    with pytest.raises(InputError, match="peak 4000 cd/m2 with HLG output"):
        plan.batch_settings(transfer="hlg", peak_nits=4000.0)
    with pytest.raises(InputError, match="must be in"):
        plan.batch_settings(peak_nits=-5.0)
    assert plan.batch_settings(transfer="hlg")["peak_nits"] == 1000.0


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


def test_convert_batch_never_plans_an_input_as_its_own_output(tmp_path):
    pytest.importorskip("apache_beam")
    import cv2

    from sritm_tf.batch import plan

    cv2.imwrite(str(tmp_path / "still.png"), np.full((8, 8, 3), 90, np.uint8))
    titles, units, report = plan.plan([str(tmp_path)], str(tmp_path), {"format": "mkv", "segment_seconds": 10.0},
                                      overwrite=True)
    assert titles == [] and units == []
    assert [(os.path.basename(p), "is the input file" in why) for p, why in report["failed"]] == [("still.png", True)]


def test_a_device_or_pipe_is_named_as_such(tmp_path):
    fifo = tmp_path / "frames.png"
    os.mkfifo(fifo)
    result = sritm("convert", fifo, "-o", tmp_path / "o.png", "--baseline")
    assert_one_error_line(result, "convert", fifo, "not a regular file")
    assert os.listdir(tmp_path) == ["frames.png"]


def test_convert_batch_with_nothing_to_convert_fails_and_writes_nothing(tmp_path):
    pytest.importorskip("apache_beam")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no pictures here")
    out = tmp_path / "out"
    result = sritm("convert-batch", empty, "-o", out, "--baseline")
    assert_one_error_line(result, "convert-batch", empty, "no images or videos")
    result = sritm("convert-batch", tmp_path / "missing.png", "-o", out, "--baseline")
    assert_one_error_line(result, "convert-batch", "missing.png", "no such file")
    assert not out.exists()


def test_eval_refuses_a_16_bit_sdr_master(tmp_path):
    import cv2

    cv2.imwrite(str(tmp_path / "a_sdr.png"), np.full((32, 32, 3), 30000, np.uint16))  # the pair swapped
    cv2.imwrite(str(tmp_path / "a_hdr.png"), np.full((32, 32, 3), 100, np.uint8))
    result = sritm("eval", tmp_path, "--baseline-only")
    assert_one_error_line(result, "eval", "a_sdr.png", "uint16")


def test_output_folders_that_are_files_are_one_line(tmp_path, pairs_dir):
    taken = tmp_path / "taken"
    taken.write_text("mine")
    result = sritm("prepare", pairs_dir, "-o", taken, "--kind", "pairs")
    assert_one_error_line(result, "prepare", taken, "is a file")
    result = sritm("train", "--init", REPO + "/sritm_tf/weights/deep_sritm_x2.npz", "--pairs", pairs_dir,
                   "-o", taken)
    assert_one_error_line(result, "train", taken, "-o")
    assert taken.read_text() == "mine" and sorted(os.listdir(tmp_path)) == ["taken"]


def test_prepare_writes_nothing_for_missing_sources_or_into_a_foreign_folder(tmp_path, pairs_dir):
    out = tmp_path / "out"
    result = sritm("prepare", tmp_path / "missing", "-o", out)
    assert_one_error_line(result, "prepare", tmp_path / "missing")
    assert not out.exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "manifest.jsonl").write_text('{"name": "a list of mine"}\n')
    result = sritm("prepare", pairs_dir, "-o", foreign, "--kind", "pairs")
    assert_one_error_line(result, "prepare", foreign / "manifest.jsonl", "not a manifest written by sritm prepare")
    assert os.listdir(foreign) == ["manifest.jsonl"]


def test_format_png_names_the_output_format_of_an_image(tmp_path, pairs_dir):
    out = tmp_path / "no_extension"
    result = sritm("convert", pairs_dir / "a_sdr.png", "-o", out, "--format", "png", "--baseline", "--quiet")
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", ["still.png", "clip.mp4"])
def test_the_input_is_never_the_output(tmp_path, clip, name):
    import shutil

    source = tmp_path / name
    if name.endswith(".png"):
        import cv2

        cv2.imwrite(str(source), np.full((8, 8, 3), 90, np.uint8))
    else:
        shutil.copy(clip, source)
    before = source.read_bytes()
    result = sritm("convert", source, "-o", source, "--overwrite", "--baseline", "--quiet")
    assert_one_error_line(result, "convert", source, "is the input file")
    assert source.read_bytes() == before and os.listdir(tmp_path) == [name]


# ---------------------------------------------------------------------------
# 9: serve-client without the serving extra, against silent or foreign servers
# ---------------------------------------------------------------------------
@pytest.fixture
def sdr_png(tmp_path):
    import cv2

    path = tmp_path / "sdr.png"
    cv2.imwrite(str(path), np.full((4, 6, 3), 128, np.uint8))
    return path


@pytest.fixture
def silent_server():
    """(port, connect to it): a socket on 127.0.0.1 that takes connections (the
    kernel's backlog) but never reads or answers; with one connection queued, its
    backlog of 0 is full and further connections hang in the handshake."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    held = []

    def fill_backlog():
        try:
            held.append(socket.create_connection(server.getsockname(), timeout=1))
        except TimeoutError:
            pass  # full already

    yield server.getsockname()[1], fill_backlog
    for sock in held + [server]:
        sock.close()


def test_serve_client_grpc_without_the_serving_extra(tmp_path, sdr_png):
    block = ("import sys; sys.modules['grpc'] = sys.modules['tensorflow_serving'] = None; "
             "from sritm_tf.cli import main; sys.exit(main(sys.argv[1:]))")
    env = {**os.environ, "PYTHONPATH": REPO}
    result = subprocess.run([sys.executable, "-c", block, "serve-client", str(sdr_png), "-o", str(tmp_path / "o.png"),
                             "--protocol", "grpc", "--port", "1"], capture_output=True, text=True, env=env,
                            timeout=120)
    assert_one_error_line(result, "serve-client", "--protocol grpc", 'pip install "sritm_tf[serving]"')
    assert sorted(os.listdir(tmp_path)) == ["sdr.png"]


def test_serve_client_against_a_server_that_never_answers(tmp_path, sdr_png, silent_server):
    import time

    port, _ = silent_server
    start = time.monotonic()
    result = sritm("serve-client", sdr_png, "-o", tmp_path / "o.png", "--host", "127.0.0.1", "--port", port,
                   "--timeout", 1, timeout=60)
    assert_one_error_line(result, "serve-client", f"http://127.0.0.1:{port}/", "no answer within 1 s")
    assert time.monotonic() - start < 30  # not the default 300 s
    assert sorted(os.listdir(tmp_path)) == ["sdr.png"]


def test_rest_and_grpc_connect_timeouts(silent_server):
    import time

    from sritm_tf.serving_client import grpc_predict, rest_predict, rest_url

    port, fill_backlog = silent_server
    batch = np.zeros((1, 4, 6, 3), np.uint8)
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"^http://127\.0\.0\.1:\d+/v1/models/sritm:predict: no answer within 0\.5 s$"):
        rest_predict(batch, rest_url("127.0.0.1", port), "rgb8_to_pq16", timeout=0.5, connect_timeout=0.5)
    fill_backlog()
    with pytest.raises(RuntimeError, match=r"^http://127\.0\.0\.1:\d+/v1/models/sritm:predict: no connection within 0\.5 s$"):
        rest_predict(batch, rest_url("127.0.0.1", port), "rgb8_to_pq16", timeout=60, connect_timeout=0.5)
    with pytest.raises(RuntimeError, match=rf"^127\.0\.0\.1:{port}: no connection within 0\.5 s$"):
        grpc_predict(batch, f"127.0.0.1:{port}", signature_name="rgb8_to_pq16", timeout=60, connect_timeout=0.5)
    assert time.monotonic() - start < 10


@contextlib.contextmanager
def foreign_server(status):
    """The port of an HTTP server on 127.0.0.1 that is not TF Serving: every POST gets
    `status` and an HTML page, as from a proxy."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    page = b"<html>\n<head><title>Bad Gateway</title></head>\n<body>\n<h1>nginx</h1>\n</body>\n</html>\n"

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(status)
            for key, value in (("Content-Type", "text/html; charset=utf-8"), ("Content-Length", len(page))):
                self.send_header(key, str(value))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), Handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield server.server_address[1]
        finally:
            server.shutdown()


def test_serve_client_against_an_html_error_page(tmp_path, sdr_png):
    with foreign_server(502) as port:
        result = sritm("serve-client", sdr_png, "-o", tmp_path / "o.png", "--host", "127.0.0.1",
                       "--port", port, "--timeout", 30, timeout=60)
    line = assert_one_error_line(result, "serve-client", f"127.0.0.1:{port}", "HTTP 502", "Bad Gateway")
    assert "<" not in line and sorted(os.listdir(tmp_path)) == ["sdr.png"]

    from sritm_tf.serving_client import rest_predict, rest_url

    with foreign_server(200) as port:  # a 200 that is not JSON
        with pytest.raises(RuntimeError, match="not a TF Serving predict answer"):
            rest_predict(np.zeros((1, 4, 6, 3), np.uint8), rest_url("127.0.0.1", port), "rgb8_to_pq16")


# ---------------------------------------------------------------------------
# 10: checks before TensorFlow, SIGINT while starting, folders
# ---------------------------------------------------------------------------
def _sritm_reporting_tensorflow(*args, cwd=None):
    """`sritm ARGS` in a fresh interpreter that prints, after main, whether TensorFlow was imported."""
    code = ("import sys; from sritm_tf.cli import main; code = main(sys.argv[1:]); "
            "print('tensorflow' in sys.modules); sys.exit(code)")
    env = {**os.environ, "PYTHONPATH": REPO}
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=120)


def test_argument_errors_come_before_tensorflow(tmp_path):
    from sritm_tf.pretrained import sample_path

    (tmp_path / "frames").mkdir()
    cases = [(["convert", "missing.png", "-o", "x.png"], "convert", ["missing.png", "no such file"]),
             (["convert", "frames", "-o", "x.png"], "convert", ["frames", "is a folder"]),
             (["convert", sample_path(), "-o", "x.png", "--tile", "0"], "convert", ["--tile"]),
             (["convert", sample_path(), "-o", "x.png", "--weights", "none.npz"], "convert", ["none.npz"]),
             (["export", "--format", "tflite", "-o", "missing/x.tflite"], "export", ["missing", "does not exist"]),
             (["export", "--format", "tflite", "-o", "x.tflite", "--input-size", "0x9"], "export", ["--input-size"]),
             (["serve-client", sample_path(), "-o", "missing/x.png"], "serve-client", ["missing", "does not exist"])]
    for args, command, names in cases:
        result = _sritm_reporting_tensorflow(*args, cwd=tmp_path)
        assert_one_error_line(result, command, *names)
        assert result.stdout.strip() == "False", args  # TensorFlow was never imported
    assert os.listdir(tmp_path) == ["frames"]


@pytest.mark.slow
def test_sigint_while_tensorflow_starts_is_one_line(tmp_path):
    import signal
    import time

    from sritm_tf.pretrained import sample_path

    env = {**os.environ, "PYTHONPATH": REPO}
    process = subprocess.Popen([sys.executable, "-m", "sritm_tf.cli", "convert", sample_path(), "-o",
                                str(tmp_path / "x.png"), "--quiet"], stderr=subprocess.PIPE, text=True, env=env,
                               preexec_fn=default_sigint)
    deadline = time.monotonic() + 60
    while "tensorflow" not in open(f"/proc/{process.pid}/maps").read():  # TensorFlow's libraries load
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and err.strip() == "sritm convert: interrupted", err
    assert os.listdir(tmp_path) == []
