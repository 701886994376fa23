"""`sritm convert-batch` mistakes that would cost hours or disk: a truncated or damaged video
refused while planning, an OUT_DIR inside an input folder, the work of a run with other settings,
two runs on one OUT_DIR, a failed segment told at once, workers outliving a killed run; and
`sritm eval --json`'s metrics that are undefined on small frames.

The classical conversion (--baseline) on tiny clips keeps it fast: the network does not matter here."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from sritm_tf.batch import join, plan
from sritm_tf.errors import InputError, UserError

from tests.helpers.media import make_clip
from tests.helpers.processes import assert_one_error_line, python_env, sritm

pytest.importorskip("av")
pipeline = pytest.importorskip("sritm_tf.batch.pipeline", reason="Apache Beam not installed (pip install \".[beam]\")")

SETTINGS = dict(baseline=True, segment_seconds=1.0, preset="ultrafast")
ARGS = ("--baseline", "--segment-seconds", "1", "--preset", "ultrafast", "--workers", "2")


def clip(path, frames=75, *extra):
    """testsrc 64x36 at 25 fps, H.264 with a keyframe a second: 1 s segments."""
    return make_clip(path, frames, "64x36", 25, "-g", "25", *extra)


def work_folders(out):
    folder = out / plan.WORK
    return sorted(os.listdir(folder)) if folder.is_dir() else []


def test_truncated_faststart_mp4_and_damaged_mkv_are_refused_while_planning(tmp_path):
    """Their packet index shows it: fewer packets than the MP4's sample table lists (its moov is
    at the front), a keyframe the Matroska Cues list missing. Refused in one line each, no
    segment to convert and no work folder; the whole files plan as before."""
    whole = clip(tmp_path / "whole.mp4", 75, "-movflags", "+faststart")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 6 // 10])
    mkv = clip(tmp_path / "sound.mkv")
    data = bytearray(mkv.read_bytes())
    data[len(data) * 4 // 10: len(data) * 6 // 10] = bytes(len(data) * 6 // 10 - len(data) * 4 // 10)
    damaged = tmp_path / "damaged.mkv"
    damaged.write_bytes(bytes(data))
    out = tmp_path / "out"
    titles, units, report = plan.plan([cut, damaged], out, plan.batch_settings(**SETTINGS))
    assert titles == [] and units == [] and work_folders(out) == []
    why = dict(report["failed"])
    found = re.fullmatch(rf"{re.escape(str(cut))}: truncated or damaged video: (\d+) of the 75 frames its container "
                         "lists are in the file; sritm convert --allow-truncated converts the frames that decode",
                         why[str(cut)])
    assert found and 0 < int(found.group(1)) < 75, why[str(cut)]
    assert why[str(damaged)].startswith(f"{damaged}: truncated or damaged video: the keyframes its index lists at ")
    assert why[str(damaged)].endswith(" s are not in the file; sritm convert --allow-truncated converts the frames "
                                      "that decode")
    titles, units, report = plan.plan([whole, mkv], out, plan.batch_settings(**SETTINGS))
    assert report["failed"] == [] and [len(t["segments"]) for t in titles] == [3, 3] and len(units) == 6


def test_the_output_folder_inside_an_input_folder_is_not_an_input(tmp_path):
    shelf = tmp_path / "shelf"
    (shelf / "hdr" / "sub").mkdir(parents=True)
    for name in ("a.mp4", "hdr/a.mkv", "hdr/sub/b.png", "hdr/.sritm-work/a-0123456789abcdef/seg.mkv"):
        (shelf / name).parent.mkdir(parents=True, exist_ok=True)
        (shelf / name).write_bytes(b"")
    assert plan.find_inputs([shelf], shelf / "hdr") == [(str(shelf / "a.mp4"), "a")]
    assert plan.find_inputs([str(shelf / "**" / "*")], shelf / "hdr") == [(str(shelf / "a.mp4"), "a")]
    with pytest.raises(InputError, match="is the output folder"):
        plan.find_inputs([shelf / "hdr"], shelf / "hdr")
    assert len(plan.find_inputs([shelf])) == 4  # without an output folder: every file


@pytest.mark.slow
def test_a_second_run_with_the_output_folder_inside_the_input_folder_skips_its_outputs(tmp_path):
    """The documented way to resume: the same command again."""
    shelf = tmp_path / "shelf"
    shelf.mkdir()
    clip(shelf / "a.mp4", 25)
    first = sritm("convert-batch", shelf, "-o", shelf / "hdr", *ARGS)
    assert first.returncode == 0, first.stderr
    again = sritm("convert-batch", shelf, "-o", shelf / "hdr", *ARGS)
    assert again.returncode == 0 and again.stderr == "", again.stderr
    assert "0 converted, 1 skipped (output exists), 0 failed" in again.stdout
    assert sorted(os.listdir(shelf)) == ["a.mp4", "hdr"] and os.listdir(shelf / "hdr") == ["a.mkv"]


def test_a_changed_key_removes_the_stale_work_of_that_title_only(tmp_path):
    """A killed run's work (segments, joined prefix) under another key (other settings, or the input
    changed since) is never used again: planning removes it, and nothing else in OUT_DIR."""
    source = clip(tmp_path / "clip.mp4", 50)
    other = clip(tmp_path / "other.mp4", 25)
    out = tmp_path / "out"
    settings = plan.batch_settings(**SETTINGS)
    titles, units, _ = plan.plan([source, other], out, settings)
    worker = pipeline.ConvertUnit(settings)
    worker.setup()
    list(worker.process(units[0]))  # clip's segment 0: joined, then the run is killed
    killed = os.path.basename(titles[0]["work"])
    assert os.listdir(titles[0]["work"]) and work_folders(out) == [killed]
    unrelated = ["clip-extra", "clip-notes", "other-0123456789abcdef", "clips-0123456789abcdef"]
    for name in unrelated:
        (out / plan.WORK / name).mkdir()
    (out / "clip-0123456789abcdef").mkdir()  # outside .sritm-work

    titles, _, _ = plan.plan([source], out, plan.batch_settings(**{**SETTINGS, "crf": 20}))
    assert os.path.basename(titles[0]["work"]) != killed
    assert work_folders(out) == sorted(unrelated)  # the killed run's gone; other titles' and other names' kept
    assert (out / "clip-0123456789abcdef").is_dir()

    list(worker.process((titles[0], 0)))  # under the crf 20 key, then the input changes
    changed = os.path.basename(titles[0]["work"])
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))
    titles, units, _ = plan.plan([source], out, plan.batch_settings(**{**SETTINGS, "crf": 20}))
    assert changed not in work_folders(out) and len(units) == 2
    assert work_folders(out) == sorted(unrelated)


def _hold_lock(out):
    """A process that holds OUT_DIR's run lock (as a running convert-batch does) until killed."""
    code = ("import sys, time; from sritm_tf.batch import plan\n"
            "with plan.output_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(600)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True,
                              env=python_env())
    assert holder.stdout.readline() == "held\n"
    return holder


def test_one_run_per_output_folder_and_a_killed_run_does_not_block(tmp_path):
    out = tmp_path / "out"
    holder = _hold_lock(out)
    try:
        with pytest.raises(UserError) as refused:
            with plan.output_lock(out):
                pass
        assert str(refused.value) == f"{out}: another sritm convert-batch is running on it (pid {holder.pid})"
        with pytest.raises(UserError, match="another sritm convert-batch"):
            pipeline.convert_batch([clip(tmp_path / "c.mp4", 25)], out, workers=2, **SETTINGS)
        assert os.listdir(out) == [plan.LOCK]  # no plan, no work folder
    finally:
        holder.kill()  # SIGKILL: the kernel releases its flock
        holder.wait()
    with plan.output_lock(out):
        with plan.output_lock(out):  # re-entrant in one process
            assert (out / plan.LOCK).read_text() == str(os.getpid())
    assert os.listdir(out) == []


@pytest.mark.slow
def test_a_second_convert_batch_on_the_same_output_folder_is_refused_in_one_line(tmp_path):
    source = clip(tmp_path / "c.mp4", 25)
    out = tmp_path / "out"
    holder = _hold_lock(out)
    try:
        result = sritm("convert-batch", source, "-o", out, *ARGS)
        line = assert_one_error_line(result, "convert-batch", out, f"(pid {holder.pid})")
        assert line.endswith(f"{out}: another sritm convert-batch is running on it (pid {holder.pid})")
        assert os.listdir(out) == [plan.LOCK]  # no log, no work folder
    finally:
        holder.kill()
        holder.wait()
    result = sritm("convert-batch", source, "-o", out, *ARGS)
    assert result.returncode == 0, result.stderr
    assert os.listdir(out) == ["c.mkv"]


def _damaged_in_its_first_segment(path):
    """Every packet there (it plans), but 400 bytes of the first second's frames overwritten."""
    data = bytearray(clip(path.with_name("whole.mp4")).read_bytes())
    at = data.find(b"mdat") + (len(data) - data.find(b"mdat")) // 6
    data[at:at + 400] = b"\xff" * 400
    path.write_bytes(bytes(data))
    return path


def test_a_failed_segment_stops_its_title(tmp_path):
    """Once a segment of a title fails, its other segments are not converted (nor joined)."""
    source = _damaged_in_its_first_segment(tmp_path / "damaged.mp4")
    settings = plan.batch_settings(**SETTINGS)
    titles, units, report = plan.plan([source], tmp_path / "out", settings)
    assert report["failed"] == [] and len(units) == 3
    work = titles[0]["work"]
    worker = pipeline.ConvertUnit(settings)
    worker.setup()
    assert list(worker.process(units[0])) == [(work, 0)]
    with open(os.path.join(work, "error.txt")) as f:
        assert f.read().startswith(f"{source}: no frame decodes (Invalid data")
    before = sorted(os.listdir(work))
    for unit in units[1:]:
        assert list(worker.process(unit)) == [(work, unit[1])]
    assert sorted(os.listdir(work)) == before and not any(n.startswith("seg-") for n in before)
    assert pipeline.JoinTitle("mkv").process((work, {"titles": titles, "units": []})) == []
    assert not os.path.exists(titles[0]["output"])


def test_a_failure_is_told_while_the_run_goes_on(tmp_path):
    titles = [{"input": str(tmp_path / f"{n}.mp4"), "work": str(tmp_path / n)} for n in "ab"]
    told = []
    with pipeline.failures_told(titles, lambda path, message: told.append((path, message)), every=0.05) as seen:
        join.record_error(titles[1], f"{titles[1]['input']}: truncated or damaged video")
        deadline = time.monotonic() + 30
        while not told and time.monotonic() < deadline:
            time.sleep(0.05)
        assert told == [(titles[1]["input"], f"{titles[1]['input']}: truncated or damaged video")]
        join.record_error(titles[0], "disk full")
    assert told[1:] == [(titles[0]["input"], "disk full")] and seen == {t["input"] for t in titles}


@pytest.mark.slow
def test_a_failed_title_is_reported_once_and_the_rest_converts(tmp_path):
    source = _damaged_in_its_first_segment(tmp_path / "damaged.mp4")
    good = clip(tmp_path / "good.mp4", 25)
    out = tmp_path / "out"
    result = sritm("convert-batch", source, good, "-o", out, *ARGS)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"sritm convert-batch: failed: {source}: no frame decodes")
    assert lines[1] == f"sritm convert-batch: error: 1 of 2 inputs failed: {source}"
    assert "1 converted, 0 skipped (output exists), 1 failed" in result.stdout
    assert sorted(os.listdir(out)) == [".sritm-work", "good.mkv"]  # the failed title's work, for a re-run


def _descendants(pid):
    """The pids of the processes under `pid` (Linux /proc), not counting zombies."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return sorted(found)


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads the process tree from /proc")
def test_workers_exit_when_the_run_is_killed(tmp_path):
    """kill -9 of the driver alone: DirectRunner's worker processes (and their encoders) follow it
    within a few seconds instead of waiting for Beam's gRPC channel to time out."""
    source = clip(tmp_path / "long.mp4", 250)  # 10 segments
    out = tmp_path / "out"
    args = [sys.executable, "-m", "sritm_tf.cli", "convert-batch", source, "-o", out, *ARGS]
    run = subprocess.Popen(list(map(str, args)), env=python_env(), start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        workers = []
        while time.monotonic() < deadline and run.poll() is None:
            workers = _descendants(run.pid)
            if any(n.startswith("seg-") for _, _, names in os.walk(out) for n in names) and len(workers) >= 4:
                break
            time.sleep(0.1)
        assert run.poll() is None and len(workers) >= 4, workers  # sh and python per worker, at least
        os.kill(run.pid, signal.SIGKILL)
        run.wait()
        deadline = time.monotonic() + 5
        while any(map(_alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [pid for pid in workers if _alive(pid)] == []
    finally:
        try:
            os.killpg(run.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_eval_json_writes_undefined_metrics_as_null_and_the_table_says_why(tmp_path, capsys):
    """`sritm eval --json` on frames too small for MS-SSIM: null, not NaN (no JSON), and n/a with a
    line under the table."""
    from sritm_tf import colour
    from sritm_tf.cli import main

    from tests.helpers.pairs import smooth_sdr, write_pair

    sdr = smooth_sdr(64, 96)
    write_pair(str(tmp_path), "small", sdr, colour.sdr_to_hdr10_baseline(sdr, white_nits=250.0))
    out = tmp_path / "result.json"
    assert main(["eval", str(tmp_path), "--baseline-only", "--json", str(out)]) == 0

    def no_constants(name):
        raise AssertionError(f"{name} in the JSON")

    result = json.loads(out.read_text(), parse_constant=no_constants)
    assert [row["ms_ssim"] for row in result["rows"] + result["mean"]] == [None] * 4
    assert all(0 < row["ssim"] <= 1 for row in result["rows"])
    table = capsys.readouterr().out.strip().splitlines()
    assert sum(" | n/a | " in line for line in table) == 4
    assert table[-1] == ("n/a: MS-SSIM needs frames of at least 161x161 pixels (SSIM's 11x11 window at 5 scales, "
                         "each half the last)")
