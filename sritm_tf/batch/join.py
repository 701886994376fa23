"""A video title's work folder and its join (`sritm convert-batch`; no Apache Beam here).

Segments are joined in order as they finish, without re-encoding (`join_ready`, under the title's
lock): the worker that finishes segment k appends it, and the finished segments after it, to the
title's joined prefix (`joined.mkv`: the segment's HEVC stream with the source's audio of its time
range, remuxed by ffmpeg to Matroska and its Clusters appended in place,
`video.matroska.mkv_join_append`; `joined.yuv`: raw bytes appended), writes the prefix's state
(`joined.json`: segments in, length, frame count, light levels) once the bytes are on disk, and
removes the segment's files. So a title's temporary disk is the segments being converted and those
that wait for an earlier one, not all its segments plus the output. Once the last is in, the prefix
is finished in place (`video.matroska.mkv_join_finish`: Cues, sizes, Duration), MaxCLL / MaxFALL of
the title (CTA-861.3: the max over its segments') are written into the stream
(`video.hdr10.write_light_levels`), the prefix is renamed into the output and the work folder
removed. A kill anywhere leaves a state a re-run continues from: bytes past the recorded length (a
cut-off append) are dropped. For mp4 output the segments wait for the last one and are joined by
ffmpeg's concat demuxer (`video.concat.join_segments`: an MP4's sample index is written by one
muxing pass over every sample), the source's audio copied once (`join_title`).
"""
import contextlib
import fcntl
import json
import os
import shutil
from fractions import Fraction

from sritm_tf import convert, fileio
from sritm_tf.errors import InputError, ToolError
from sritm_tf.video import concat, hdr10, matroska


def segment_path(title, index, format):
    start, end = title["segments"][index]
    ext = "yuv" if format == "yuv" else "nut"
    return os.path.join(title["work"], f"seg-{index:04d}-{'begin' if start is None else start}-"
                                       f"{'end' if end is None else end}.{ext}")


def _place(title, index):
    """Seconds (Fraction) from the file's start to the first frame of segment `index`, as
    `concat.join_segments` places it; None past the last segment."""
    if index >= len(title["segments"]):
        return None
    start = title["first"] if index == 0 else title["segments"][index][0]
    return Fraction(f"{title['offset']:.6f}") + Fraction(start - title["first"]) * title["time_base"]


def _state_path(title):
    return os.path.join(title["work"], "joined.json")


def join_state(work):
    """The joined prefix's state (`joined.json`) in a title's work folder `work`: {"joined" (segments
    in, their files gone), "frames", "levels", "length", ...}; none joined yet if there is none."""
    try:
        with open(os.path.join(work, "joined.json")) as f:
            return json.load(f)
    except FileNotFoundError:
        return {"joined": 0, "frames": 0, "levels": None, "length": 0}


def joined_segments(title):
    """How many segments of `title` are in its joined prefix (`join_ready`): finished, their files gone."""
    return join_state(title["work"])["joined"]


def check_frame_count(title, frames):
    """InputError when a title decoded fewer frames than its container lists."""
    if title["listed"] and frames < title["listed"]:
        raise InputError(f"{title['input']}: truncated or damaged video: {frames} of {title['listed']} frames "
                         "decoded; sritm convert --allow-truncated converts the frames that decode")


@contextlib.contextmanager
def _locked(title):
    """Holds the title's join lock (flock: released if the process dies)."""
    os.makedirs(title["work"], exist_ok=True)
    with open(os.path.join(title["work"], "join.lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _append_segment(title, index, format, joined, state):
    """Appends segment `index` (finished) to the joined prefix `joined` at `state["length"]`;
    returns the new state (the caller records it)."""
    path = segment_path(title, index, format)
    if format == "yuv":
        with open(joined, "r+b" if index else "wb") as out, open(path, "rb") as f:
            out.truncate(state["length"])
            out.seek(state["length"])
            shutil.copyfileobj(f, out, 1 << 24)
            out.flush()
            os.fsync(out.fileno())
            return dict(state, length=out.tell())
    place, end = _place(title, index), _place(title, index + 1)
    audio, first = os.path.join(title["work"], "audio.nut"), None
    if title["audio_codecs"]:  # the audio packets of this segment's time range
        first = matroska.segment_audio(title["input"], None if index == 0 else place, end, audio)
    if index == 0:
        # ffmpeg moves a title whose audio starts before 0 (AAC priming) by the first packet's time in
        # the Matroska time base (ms, rounded half away from 0), every timestamp rounded first: as
        # `sritm convert`'s output, and the first segment's, are. The later segments' Clusters move as much.
        ms = -first * 1000 if first is not None and first < 0 else 0
        state["shift"] = int(ms + Fraction(1, 2)) if ms else 0
    try:
        chunk = matroska.mkv_segment_chunk(path, place, audio if first is not None else None, first or 0,
                                        name=title["output"])
    finally:
        fileio.remove(audio)
    mkv = matroska.mkv_join_start(joined, chunk, title["output"]) if index == 0 else state["mkv"]
    mkv = matroska.mkv_join_append(joined, chunk, mkv, title["output"], shift=state["shift"] if index else 0)
    return dict(state, mkv=mkv, length=mkv["length"])


def join_ready(title, format, finish=False):
    """Joins in order the finished segments of a video title that follow its joined prefix
    (`OUT_DIR/.sritm-work/<name>-<key>/joined.<mkv|yuv>`, its state in `joined.json`), removing
    each segment once it is in; with `finish`, then finishes the prefix and renames it into
    the output (`finish_title`). Under the title's lock; safe to kill anywhere: the state is
    written after the bytes are on disk, and what a killed append left past the recorded length
    is cut off. Returns the state (None for mp4, which is joined at the end: `join_title`)."""
    if format == "mp4":
        return None
    n = len(title["segments"])
    joined = os.path.join(title["work"], f"joined.{'yuv' if format == 'yuv' else 'mkv'}")
    with _locked(title):
        state = join_state(title["work"])
        while state["joined"] < n:
            index = state["joined"]
            path = segment_path(title, index, format)
            if not os.path.exists(path + ".json"):
                break
            with open(path + ".json") as f:
                info = json.load(f)
            state = _append_segment(title, index, format, joined, state)
            levels = info["levels"]  # None for HLG
            if index and levels:
                levels = [max(a, b) for a, b in zip(state["levels"], levels)]
            state.update(joined=index + 1, frames=state["frames"] + info["frames"], levels=levels)
            fileio.write_text(_state_path(title), json.dumps(state))
        for index in range(state["joined"]):  # in the prefix: their files go (a kill may have left them)
            path = segment_path(title, index, format)
            fileio.remove(path)
            fileio.remove(path + ".json")
        if finish:
            finish_title(title, format, joined, state)
    return state


def finish_title(title, format, joined, state):
    """Checks the frame count of a joined title, finishes its prefix in place (`matroska.mkv_join_finish`,
    then MaxCLL / MaxFALL of the title, the max over its segments', into the stream:
    `hdr10.write_light_levels`) and renames it into the output."""
    if state["joined"] < len(title["segments"]):
        missing = segment_path(title, state["joined"], format)
        raise ToolError(f"{title['input']}: segment {os.path.basename(missing)} is not finished; a re-run converts it")
    check_frame_count(title, state["frames"])
    if format != "yuv":
        stage = state.get("stage")
        if stage is None:  # the Cues, sizes and Duration: repeatable
            matroska.mkv_join_finish(joined, state["mkv"])
            state["stage"] = "levels"
            fileio.write_text(_state_path(title), json.dumps(state))
        if state["levels"]:
            levels = hdr10.LightLevels()
            levels.peak, levels.frame_average = state["levels"]
            with convert.disk_full_is_one_line(title["output"]):
                hdr10.write_light_levels(joined, levels, name=title["output"], resumed=stage == "levels")
    os.replace(joined, title["output"])


def record_error(title, message):
    """Keeps one line on why `title` failed in its work folder, for the report at the end."""
    os.makedirs(title["work"], exist_ok=True)
    fileio.write_text(os.path.join(title["work"], "error.txt"), message)

def join_title(title, format):
    """Joins the finished segments of a video title into its output (see the module), then removes
    its work folder. Returns the frame count."""
    if format != "mp4":
        with convert.disk_full_is_one_line(title["output"]):
            frames = join_ready(title, format, finish=True)["frames"]
        fileio.remove(title["work"])
        return frames
    output, parts = title["output"], []
    for index in range(len(title["segments"])):
        path = segment_path(title, index, format)
        with open(path + ".json") as f:
            parts.append((path, json.load(f)))
    frames = sum(info["frames"] for _, info in parts)
    check_frame_count(title, frames)
    levels = None
    if all(info["levels"] for _, info in parts):
        levels = hdr10.LightLevels()
        levels.peak = max(info["levels"][0] for _, info in parts)
        levels.frame_average = max(info["levels"][1] for _, info in parts)
    # mp4 only: mkv and yuv titles are joined as their segments finish (`join_ready`)
    with convert.disk_full_is_one_line(output), fileio.atomic_path(output) as tmp:
        starts = [title["first"]] + [start for start, _ in title["segments"][1:]]
        durations = [Fraction(b - a) * title["time_base"] for a, b in zip(starts, starts[1:])] + [None]
        concat.join_segments([(path, d) for (path, _), d in zip(parts, durations)], tmp,
                            convert.CONTAINERS[format], title["offset"], title["input"], title["audio_codecs"],
                            name=output)
        if levels is not None:
            hdr10.write_light_levels(tmp, levels, name=output)
    fileio.remove(title["work"])
    return frames
