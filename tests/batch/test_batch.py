"""`sritm convert-batch`: a catalogue converted segment by segment on Apache
Beam's DirectRunner with 2 worker processes, against the single-process `sritm convert`.

The classical conversion (--baseline) keeps it fast: what is tested is the splitting, joining,
resuming and reporting, which do not depend on the network."""
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction

import numpy as np
import pytest

from sritm_tf import convert, fileio, pretrained
from sritm_tf.batch import join, plan
from sritm_tf.errors import InputError
from sritm_tf.video import hdr10, matroska

from tests.helpers.media import ffmpeg
from tests.helpers.paths import REPO
from tests.helpers.processes import python_env, sritm

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")
pipeline = pytest.importorskip("sritm_tf.batch.pipeline", reason="Apache Beam not installed (pip install \".[beam]\")")

WIDTH, HEIGHT, FRAMES = 64, 48, 75  # 3 s at 25 fps, a keyframe every second: 3 segments of 1 s
SETTINGS = dict(baseline=True, segment_seconds=1.0, preset="ultrafast", crf=12)  # crf 12: encoder noise well under 45 dB


def make_clip(path, frames=FRAMES, gop=25, audio=True):
    """testsrc2, H.264 8-bit BT.709, a keyframe every `gop` frames, with a sine-tone AAC track."""
    args = ["-f", "lavfi", "-i", f"testsrc2=size={WIDTH}x{HEIGHT}:rate=25"]
    if audio:
        args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-c:a", "aac", "-shortest"]
    ffmpeg(*args, "-frames:v", frames, "-c:v", "libx264", "-g", gop, "-pix_fmt", "yuv420p", path)
    return path


def batch(inputs, out_dir, **options):
    return pipeline.convert_batch(inputs, out_dir, workers=2, **{**SETTINGS, **options})


def probe(path, *extra):
    out = subprocess.run(["ffprobe", "-v", "error", "-of", "json", *extra, str(path)], capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out)


def frame_times(path):
    """The video frames' presentation times in seconds (Fractions), sorted."""
    out = probe(path, "-select_streams", "v:0", "-show_entries", "stream=time_base:packet=pts")
    tick = Fraction(out["streams"][0]["time_base"])
    return sorted(p["pts"] * tick for p in out["packets"])


def decoded(path):
    """The frames of `path` as yuv420p10 planes stacked (3H/2, W), int64."""
    import av

    with av.open(str(path)) as container:
        return [f.reformat(format="yuv420p10le").to_ndarray().astype(np.int64) for f in container.decode(video=0)]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4")


@pytest.fixture(scope="module")
def single(clip, tmp_path_factory):
    """The single-process conversions of `clip`: .yuv and .mkv."""
    folder = tmp_path_factory.mktemp("single")
    results = {fmt: convert.convert_video(clip, folder / f"clip.{fmt}", progress=False,
                                          baseline=True, preset="ultrafast", crf=12) for fmt in ("yuv", "mkv")}
    return folder, results


def test_find_inputs_names_outputs_and_refuses_clashes(tmp_path):
    for name in ("a.mp4", "sub/b.mov", "sub/c.png", "notes.txt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = plan.find_inputs([tmp_path, str(tmp_path / "sub" / "*.png")])  # c.png twice: once
    assert [(os.path.relpath(p, tmp_path), n) for p, n in found] == [
        ("a.mp4", "a"), ("sub/b.mov", "sub/b"), ("sub/c.png", "sub/c")]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "a.mkv").write_bytes(b"")
    with pytest.raises(InputError, match=r"a.mkv: same output name as .*a.mp4"):
        plan.find_inputs([tmp_path / "a.mp4", tmp_path / "other" / "a.mkv"])
    with pytest.raises(InputError, match="nothing-here"):
        plan.find_inputs([tmp_path / "nothing-here*.mp4"])


def test_segments_are_cut_at_keyframes_about_n_seconds_apart():
    keys = [0, 12800, 25600, 38400, 51200]  # a keyframe a second, time base 1/12800
    assert plan.segment_bounds(keys, Fraction(1, 12800), 2.0) == [(None, 25600), (25600, 51200), (51200, None)]
    assert plan.segment_bounds(keys, Fraction(1, 12800), 10.0) == [(None, None)]


def test_plan_and_join_import_without_apache_beam():
    """Only sritm_tf.batch.pipeline imports Beam: the plan and the join are usable without it."""
    code = ("import sys; sys.modules['apache_beam'] = None; import sritm_tf.batch.plan, sritm_tf.batch.join; "
            "print(sorted(m for m in sys.modules if m.startswith('sritm_tf.batch')))")
    env = python_env()
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[-2] == "['sritm_tf.batch', 'sritm_tf.batch.join', 'sritm_tf.batch.plan']"
    result = subprocess.run([sys.executable, "-c", code.replace("batch.join", "batch.pipeline")], capture_output=True,
                            text=True, timeout=120, env=env)
    assert result.returncode == 1 and "apache_beam" in result.stderr  # the check itself works: pipeline needs Beam


@pytest.mark.slow
def test_three_segments_in_parallel_equal_the_single_process_output(clip, single, tmp_path):
    folder, results = single
    report = batch([clip], tmp_path / "yuv", format="yuv")
    assert report["segments"] == 3 and report["failed"] == [] and report["reused"] == 0
    assert (tmp_path / "yuv" / "clip.yuv").read_bytes() == (folder / "clip.yuv").read_bytes()  # bit exact
    assert os.listdir(tmp_path / "yuv") == ["clip.yuv"]  # the work folder is gone

    report = batch([clip], tmp_path / "mkv", format="mkv")
    out, want = tmp_path / "mkv" / "clip.mkv", folder / "clip.mkv"
    assert report["done"] == [str(out)] and report["segments"] == 3
    assert frame_times(out) == frame_times(want) and len(frame_times(out)) == FRAMES
    got, ref = decoded(out), decoded(want)
    assert len(got) == len(ref) == FRAMES
    psnrs = [10 * np.log10(1023**2 / max(np.mean((a - b) ** 2), 1e-12)) for a, b in zip(got, ref)]
    assert min(psnrs) > 45, sorted(psnrs)[:5]
    streams = probe(out, "-show_streams")["streams"]
    v = next(s for s in streams if s["codec_type"] == "video")
    assert (v["codec_name"], v["pix_fmt"], v["color_primaries"], v["color_transfer"], v["color_space"],
            v["color_range"]) == ("hevc", "yuv420p10le", "bt2020", "smpte2084", "bt2020nc", "tv")
    assert [s["codec_name"] for s in streams if s["codec_type"] == "audio"] == ["aac"]  # copied once
    # MaxCLL / MaxFALL of the title: the max over the segments = the single pass's, in the stream.
    frames = probe(out, "-select_streams", "v:0", "-show_frames", "-show_entries", "frame=key_frame,side_data_list")
    keyframes = [f for f in frames["frames"] if f["key_frame"]]
    assert len(keyframes) >= 3  # one at least per segment, each with the final values
    for frame in keyframes:
        side = {d["side_data_type"]: d for d in frame["side_data_list"]}
        light = side["Content light level metadata"]
        assert (light["max_content"], light["max_average"]) == (results["mkv"]["max_cll"], results["mkv"]["max_fall"])
        assert Fraction(side["Mastering display metadata"]["max_luminance"]) == 1000


@pytest.mark.slow
def test_mp4_titles_are_joined_at_the_end_and_equal_the_single_process_output(clip, tmp_path):
    """--format mp4 keeps the concat-demuxer join (an MP4 index is one muxing pass over every sample)."""
    want = tmp_path / "single" / "clip.mp4"
    (tmp_path / "single").mkdir()
    result = convert.convert_video(clip, want, progress=False, baseline=True, preset="ultrafast", crf=12)
    report = batch([clip], tmp_path / "out", format="mp4")
    out = tmp_path / "out" / "clip.mp4"
    assert report["done"] == [str(out)] and report["segments"] == 3 and os.listdir(tmp_path / "out") == ["clip.mp4"]
    assert frame_times(out) == frame_times(want) and len(frame_times(out)) == FRAMES
    got, ref = decoded(out), decoded(want)
    assert len(got) == len(ref) == FRAMES
    assert min(10 * np.log10(1023**2 / max(np.mean((a - b) ** 2), 1e-12)) for a, b in zip(got, ref)) > 45
    frame = probe(out, "-select_streams", "v:0", "-read_intervals", "%+#1", "-show_frames",
                  "-show_entries", "frame=side_data_list")["frames"][0]
    light = {d["side_data_type"]: d for d in frame["side_data_list"]}["Content light level metadata"]
    assert (light["max_content"], light["max_average"]) == (result["max_cll"], result["max_fall"])


@pytest.mark.slow
def test_rerun_converts_only_the_missing_segments(clip, single, tmp_path):
    """A killed run, simulated: segment 0 finished and joined, segment 2 finished and waiting for
    segment 1, which a dead process half wrote, and the tail of an append the kill cut short."""
    folder, _ = single
    out = tmp_path / "out"
    settings = plan.batch_settings(**SETTINGS, format="yuv")
    titles, units, report = plan.plan([clip], out, settings)
    assert [index for _, index in units] == [0, 1, 2] and report["segments"] == 3
    worker = pipeline.ConvertUnit(settings)
    worker.setup()
    for unit in (units[0], units[2]):
        assert list(worker.process(unit)) == [(titles[0]["work"], unit[1])]
    work = titles[0]["work"]
    seg = lambda i: os.path.basename(join.segment_path(titles[0], i, "yuv"))
    # Segment 0 is in the joined prefix and its file gone; segment 2 waits for segment 1.
    assert sorted(os.listdir(work)) == sorted(["join.lock", "joined.json", "joined.yuv", seg(2), seg(2) + ".json"])
    joined = os.path.join(work, "joined.yuv")
    marked = bytearray(open(joined, "rb").read())
    assert len(marked) == 25 * (2 * WIDTH) * (2 * HEIGHT) * 3  # 25 frames of 10-bit 4:2:0
    marked[:WIDTH * 2] = bytes(WIDTH * 2)  # a mark a re-conversion would undo: 32 black output pixels
    open(joined, "wb").write(marked + b"half an append")  # past the length joined.json records
    stale = os.path.join(work, f".part-999999-{seg(1)}")
    open(stale, "wb").write(b"half a segment")

    report = batch([clip], out, format="yuv")
    assert (report["segments"], report["reused"], report["failed"]) == (1, 2, [])
    got, want = (out / "clip.yuv").read_bytes(), (folder / "clip.yuv").read_bytes()
    assert got[:WIDTH * 2] == bytes(WIDTH * 2) and got[WIDTH * 2:] == want[WIDTH * 2:]  # segment 0 kept as it was
    assert os.listdir(out) == ["clip.yuv"]  # work folder, stale temporary and the cut-off tail gone

    report = batch([clip], out, format="yuv")  # a finished title is skipped
    assert report["skipped"] == [str(out / "clip.yuv")] and report["segments"] == report["reused"] == 0


def _work_bytes(work, peak, stop):
    """Polls a title's work folder until `stop` is set (`sritm bench batch`'s `work_bytes`): peak[0]
    the most bytes it held besides the joined prefix (segments, their temporaries, the audio of a
    segment being joined), peak[1] the prefix's."""
    from sritm_tf.benchmarks.batch import work_bytes

    while not stop.is_set():
        temporary, prefix, _ = work_bytes(work)
        peak[0], peak[1] = max(peak[0], temporary), max(peak[1], prefix)
        time.sleep(0.001)


@pytest.mark.slow
def test_segments_are_joined_as_they_finish_so_temporary_disk_is_bounded(clip, single, tmp_path):
    """Segments converted in order: each is joined as it finishes and its file removed, so that
    besides the joined prefix (which becomes the output) the work folder never holds more than
    the segment being converted; out of order, a segment waits only for those before it."""
    folder, results = single
    out = tmp_path / "out"
    settings = plan.batch_settings(**SETTINGS, format="mkv")
    titles, units, _ = plan.plan([clip], out, settings)
    work = titles[0]["work"]
    worker = pipeline.ConvertUnit(settings)
    worker.setup()
    peak, stop, sizes = [0, 0], threading.Event(), []
    poller = threading.Thread(target=_work_bytes, args=(work, peak, stop))
    poller.start()
    try:
        for unit in units:
            before = os.path.getsize(os.path.join(work, "joined.mkv")) if unit[1] else 0
            list(worker.process(unit))
            assert sorted(os.listdir(work)) == ["join.lock", "joined.json", "joined.mkv"]
            sizes.append(os.path.getsize(os.path.join(work, "joined.mkv")) - before)
    finally:
        stop.set()
        poller.join()
    # The bound: one segment (x265's NUT, a little larger than its share of the output) besides the prefix.
    assert 0 < peak[0] <= 1.25 * max(sizes) + 4096, (peak, sizes)
    assert pipeline.JoinTitle("mkv").process((work, {"titles": titles, "units": []})) == []
    out_file = out / "clip.mkv"
    assert sorted(os.listdir(out)) == [".sritm-work", "clip.mkv"] and os.listdir(out / ".sritm-work") == []
    assert peak[1] <= os.path.getsize(out_file)
    assert frame_times(out_file) == frame_times(folder / "clip.mkv")
    frames = probe(out_file, "-select_streams", "v:0", "-show_frames", "-show_entries", "frame=side_data_list")
    light = frames["frames"][0]["side_data_list"]
    assert any(d.get("max_content") == results["mkv"]["max_cll"] for d in light)

    # Out of order: 2 then 1 wait (segment 0 is not finished), then 0 joins all three.
    out = tmp_path / "reversed"
    titles, units, _ = plan.plan([clip], out, settings)
    work = titles[0]["work"]
    seg = lambda i: os.path.basename(join.segment_path(titles[0], i, "mkv"))
    list(worker.process(units[2]))
    list(worker.process(units[1]))
    assert sorted(os.listdir(work)) == sorted(["join.lock", seg(1), seg(1) + ".json", seg(2), seg(2) + ".json"])
    list(worker.process(units[0]))
    assert sorted(os.listdir(work)) == ["join.lock", "joined.json", "joined.mkv"]
    pipeline.JoinTitle("mkv").process((work, {"titles": titles, "units": []}))
    assert frame_times(out / "clip.mkv") == frame_times(folder / "clip.mkv")


@pytest.mark.slow
def test_a_kill_while_a_title_is_finished_then_a_rerun_gives_the_output(clip, single, tmp_path):
    """Killed after the Cues and sizes were written and the light levels half (the content light
    level SEI of the first keyframe only): the re-run finishes the title as one run would."""
    folder, results = single
    out = tmp_path / "out"
    settings = plan.batch_settings(**SETTINGS, format="mkv")
    titles, units, _ = plan.plan([clip], out, settings)
    worker = pipeline.ConvertUnit(settings)
    worker.setup()
    for unit in units:
        list(worker.process(unit))
    work = titles[0]["work"]
    with open(os.path.join(work, "joined.json")) as f:
        state = json.load(f)
    matroska.mkv_join_finish(os.path.join(work, "joined.mkv"), state["mkv"])
    state["stage"] = "levels"
    fileio.write_text(os.path.join(work, "joined.json"), json.dumps(state))
    levels = hdr10.LightLevels()
    levels.peak, levels.frame_average = state["levels"]
    old, new = hdr10.hdr10_sei_nals(hdr10.PLACEHOLDER_PEAK, *hdr10.PLACEHOLDER_LIGHT)[1], \
        hdr10.hdr10_sei_nals(hdr10.mastering_peak(levels.max_cll), levels.max_cll, levels.max_fall)[1]
    data = open(os.path.join(work, "joined.mkv"), "rb").read()
    at = data.index(old, data.index(b"\x1f\x43\xb6\x75"))  # the first in a Cluster
    open(os.path.join(work, "joined.mkv"), "wb").write(data[:at] + new + data[at + len(old):])

    report = batch([clip], out, format="mkv")
    assert (report["segments"], report["reused"], report["failed"]) == (0, 3, [])
    assert os.listdir(out) == ["clip.mkv"]
    out_file = out / "clip.mkv"
    assert frame_times(out_file) == frame_times(folder / "clip.mkv")
    frames = probe(out_file, "-select_streams", "v:0", "-show_frames", "-show_entries",
                   "frame=key_frame,side_data_list")
    for frame in (f for f in frames["frames"] if f["key_frame"]):
        light = {d["side_data_type"]: d for d in frame["side_data_list"]}["Content light level metadata"]
        assert (light["max_content"], light["max_average"]) == (results["mkv"]["max_cll"], results["mkv"]["max_fall"])
    duration = lambda path: probe(path, "-show_format")["format"]["duration"]
    assert duration(out_file) == duration(folder / "clip.mkv")


@pytest.mark.slow
def test_a_corrupt_file_is_reported_and_skipped_while_the_rest_converts(clip, tmp_path):
    shelf = tmp_path / "shelf"
    shelf.mkdir()
    shutil.copy(clip, shelf / "good.mp4")
    shutil.copy(pretrained.sample_path(), shelf / "still.png")
    (shelf / "garbage.mp4").write_bytes(b"not a video" * 100)
    data = bytearray(make_clip(tmp_path / "clip.mp4", audio=False).read_bytes())  # fails in a worker, half way
    mdat = data.find(b"mdat")
    data[(mdat + len(data)) // 2:(mdat + len(data)) // 2 + 400] = b"\xff" * 400
    (shelf / "damaged.mp4").write_bytes(bytes(data))
    out = tmp_path / "out"
    result = sritm("convert-batch", shelf, "-o", out, "--baseline", "--segment-seconds", "1", "--workers", "2",
                   "--preset", "ultrafast", "--format", "mp4")
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith(f"sritm convert-batch: failed: {shelf / 'damaged.mp4'}: truncated or damaged video")
    assert lines[1].startswith(f"sritm convert-batch: failed: {shelf / 'garbage.mp4'}: not a readable video")
    assert lines[2] == (f"sritm convert-batch: error: 2 of 4 inputs failed: {shelf / 'damaged.mp4'}, "
                        f"{shelf / 'garbage.mp4'}")
    assert "2 converted, 0 skipped (output exists), 2 failed" in result.stdout
    assert sorted(os.listdir(out)) == [".sritm-work", "good.mp4", "still.png"]
    assert frame_times(out / "good.mp4") == frame_times(clip)
    assert probe(out / "good.mp4", "-show_streams")["streams"][0]["codec_tag_string"] == "hvc1"


@pytest.mark.slow
def test_convert_works_without_beam_and_convert_batch_says_how_to_get_it(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "apache_beam.py").write_text("raise ImportError('No module named apache_beam')\n")
    env = python_env(PYTHONPATH=os.pathsep.join([str(blocker), str(REPO)]))
    run = lambda *a: subprocess.run([sys.executable, "-m", "sritm_tf.cli", *map(str, a)], capture_output=True,
                                    text=True, env=env, timeout=120)
    result = run("convert", pretrained.sample_path(), "-o", tmp_path / "o.png", "--baseline", "--quiet")
    assert result.returncode == 0 and (tmp_path / "o.png").is_file(), result.stderr
    result = run("convert-batch", pretrained.sample_path(), "-o", tmp_path / "out", "--baseline")
    assert result.returncode == 2
    assert result.stderr.strip() == 'sritm convert-batch: error: Apache Beam is not installed: pip install "sritm_tf[beam]"'
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_killed_midway_a_rerun_resumes_and_equals_the_single_process_output(tmp_path):
    """A real SIGKILL of the whole run (driver and workers) once some segments are finished."""
    clip = make_clip(tmp_path / "long.mp4", frames=250, gop=25, audio=False)  # 10 segments
    want = tmp_path / "want.yuv"
    convert.convert_video(clip, want, baseline=True, progress=False)
    out = tmp_path / "out"
    args = [sys.executable, "-m", "sritm_tf.cli", "convert-batch", clip, "-o", out, "--baseline", "--segment-seconds",
            "1", "--workers", "2", "--format", "yuv"]
    env = python_env()
    process = subprocess.Popen(list(map(str, args)), env=env, start_new_session=True, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    finished = lambda: _finished_segments(out)
    while finished() < 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate()
    done_before = finished()
    assert 2 <= done_before < 10 and not (out / "long.yuv").exists()

    result = sritm("convert-batch", clip, "-o", out, "--baseline", "--segment-seconds", "1", "--workers", "2",
                   "--format", "yuv")
    assert result.returncode == 0, result.stderr
    assert f"video segments: {10 - done_before} converted, {done_before} reused" in result.stdout
    assert (out / "long.yuv").read_bytes() == want.read_bytes()
    assert sorted(os.listdir(out)) == ["long.yuv"]


def _finished_segments(folder):
    """Segments finished under `folder`, as a re-run counts them: joined (joined.json's count) and
    waiting (seg-<index>-*.json past those)."""
    count = 0
    for work, _, names in os.walk(folder):
        joined = 0
        if "joined.json" in names:
            with contextlib.suppress(OSError, ValueError):
                joined = json.load(open(os.path.join(work, "joined.json")))["joined"]
        count += joined + sum(1 for n in names if n.startswith("seg-") and n.endswith(".json")
                              and int(n.split("-")[1]) >= joined)
    return count


@pytest.mark.slow
def test_joined_timestamps_equal_the_single_process_ones_at_24_fps_with_aac_priming(tmp_path):
    """24 fps (frame times not whole ms) and 44.1 kHz AAC, whose priming puts the first audio packet
    at -23.2 ms: ffmpeg moves `sritm convert`'s output by a whole 23 ms, and the join as much."""
    clip = tmp_path / "c24.mp4"
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={WIDTH}x{HEIGHT}:rate=24", "-f", "lavfi", "-i",
           "sine=frequency=440:sample_rate=44100", "-frames:v", 72, "-c:v", "libx264", "-g", 24, "-pix_fmt", "yuv420p",
           "-c:a", "aac", "-shortest", clip)
    want = tmp_path / "single.mkv"
    convert.convert_video(clip, want, progress=False, baseline=True, preset="ultrafast", crf=30)
    settings = plan.batch_settings(**{**SETTINGS, "crf": 30}, format="mkv")
    titles, units, _ = plan.plan([clip], tmp_path / "out", settings)
    assert len(units) == 3
    worker = pipeline.ConvertUnit(settings)
    worker.setup()
    for unit in units:
        list(worker.process(unit))
    pipeline.JoinTitle("mkv").process((titles[0]["work"], {"titles": titles, "units": []}))
    got = tmp_path / "out" / "c24.mkv"
    assert frame_times(got) == frame_times(want) and len(frame_times(got)) == 72
    audio = lambda path: [p["pts"] for p in
                          probe(path, "-select_streams", "a:0", "-show_entries", "packet=pts")["packets"]]
    assert audio(got) == audio(want) and audio(got)[:2] == [0, 23]
