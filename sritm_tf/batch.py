"""`sritm convert-batch`: a catalogue of images and videos converted in parallel on Apache Beam.

The units of work are an image, or a segment of a video: videos are cut at the keyframes of
their packet index (demuxed, not decoded) into segments of about `segment_seconds`
(`plan_title`). Each segment is decoded from its keyframe (`video.VideoSegment`), converted
and encoded on its own (`convert.encode_frames` into a `video.HevcWriter` with the title's
encoder settings, as NUT; raw yuv420p10le for .yuv) and written atomically into the title's
work folder, `OUT_DIR/.sritm-work/<name>-<key>/seg-<index>-<first pts>-<end pts>.nut`, with
its frame count and light levels beside it (`.json`, written last: a segment is finished when
its .json is there). Segments are joined in order as they finish, without re-encoding
(`join_ready`, under the title's lock): the worker that finishes segment k appends it, and the
finished segments after it, to the title's joined prefix (`joined.mkv`: the segment's HEVC
stream with the source's audio of its time range, remuxed by ffmpeg to Matroska and its
Clusters appended in place, `video.mkv_join_append`; `joined.yuv`: raw bytes appended), writes
the prefix's state (`joined.json`: segments in, length, frame count, light levels) once the
bytes are on disk, and removes the segment's files. So a title's temporary disk is the segments
being converted and those that wait for an earlier one, not all its segments plus the output.
Once the last is in, the prefix is finished in place (`video.mkv_join_finish`: Cues, sizes,
Duration), MaxCLL / MaxFALL of the title (CTA-861.3: the max over its segments') are written
into the stream (`video.write_light_levels`), the prefix is renamed into the output and the work
folder removed. A kill anywhere leaves a state a re-run continues from: bytes past the recorded
length (a cut-off append) are dropped. For mp4 output the segments wait for the last one and are
joined by ffmpeg's concat demuxer (`video.join_segments`: an MP4's sample index is written by
one muxing pass over every sample), the source's audio copied once.

<key> hashes the input's absolute path, size and modification time with the conversion
settings: a re-run with the same inputs and settings converts only the segments a killed run
did not finish, and skips the titles whose output exists. The model is loaded once per worker
(`ConvertUnit.setup`). An input that cannot be converted (`SritmError`: damaged, HDR
already, ...) is recorded in its work folder (`error.txt`) and reported at the end, while the
rest converts; other exceptions fail the element, which the runner retries.

Inputs and OUT_DIR must be on a file system every worker sees (local on DirectRunner; NFS or a
GCS FUSE mount on a cluster), and for mkv and yuv output one whose `flock` locks hold across
workers (local, NFSv4, Filestore; not GCS FUSE): the join's lock.
"""
import contextlib
import fcntl
import glob
import hashlib
import json
import logging
import os
import shutil
from fractions import Fraction

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from sritm_tf import convert, fileio, imageio, video
from sritm_tf.convert import _is_image
from sritm_tf.errors import InputError, SritmError, ToolError

WORK = ".sritm-work"
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".m4v", ".avi", ".webm", ".ts", ".mts", ".m2ts", ".mpg", ".mpeg",
                    ".flv", ".wmv", ".y4m")
VIDEO_FORMATS = ("mkv", "mp4", "yuv")
#: FrameConverter's settings, and the encoder's, that a title's key (and its segments) depend on.
CONVERTER_KEYS = ("scale", "weights", "baseline", "tile", "white_nits", "peak_nits", "precision", "engine",
                  "transfer")


def find_inputs(patterns):
    """[(input path, output name)] for `patterns`: files, folders (searched recursively for
    images and videos by extension) and globs. The output name is the file's name without its
    extension, under its sub-folder for a file found in a folder (`a/b/c.mp4` from folder `a`:
    `b/c`). InputError for a pattern that names nothing, or two inputs with one output name."""
    found = []
    for pattern in patterns:
        pattern = os.fspath(pattern)
        if os.path.isdir(pattern):
            for folder, _, files in sorted(os.walk(pattern)):
                for name in sorted(files):
                    path = os.path.join(folder, name)
                    if name.lower().endswith(imageio.SDR_IMAGE_EXTENSIONS + VIDEO_EXTENSIONS):
                        found.append((path, os.path.splitext(os.path.relpath(path, pattern))[0]))
        elif os.path.isfile(pattern):
            found.append((pattern, os.path.splitext(os.path.basename(pattern))[0]))
        else:
            matches = sorted(m for m in glob.glob(pattern, recursive=True) if os.path.isfile(m))
            if not matches:
                raise InputError(f"{pattern}: no such file or folder, and no file matches it")
            found += [(m, os.path.splitext(os.path.basename(m))[0]) for m in matches]
    inputs, seen, owners = [], set(), {}
    for path, name in found:
        key = os.path.realpath(path)
        if key in seen:
            continue  # named twice (a file and its folder, overlapping globs)
        clash = owners.setdefault((name, _is_image(path)), path)
        if clash != path:
            raise InputError(f"{path}: same output name as {clash} ({name}); rename one or convert them apart")
        seen.add(key)
        inputs.append((path, name))
    return inputs


def title_key(path, settings):
    """A hash of `path` (absolute), its size and modification time, and `settings` (a dict)."""
    stat = os.stat(path)
    text = json.dumps([os.path.abspath(path), stat.st_size, stat.st_mtime_ns, settings], sort_keys=True,
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def keyframes(path, stream_index):
    """(pts of the keyframes, sorted; the smallest pts; packets; the largest pts + duration)
    of a video stream from its packet index: demuxed, not decoded. None for the pts if a
    packet has none."""
    import av

    keys, first, packets, end = set(), None, 0, None
    try:
        with av.open(path, metadata_errors="replace") as container:
            for packet in container.demux(container.streams[stream_index]):
                if packet.size == 0:
                    continue  # the flush packet
                if packet.pts is None:
                    return None, None, packets, None
                packets += 1
                first = packet.pts if first is None else min(first, packet.pts)
                end = max(end or 0, packet.pts + (packet.duration or 0))
                if packet.is_keyframe:
                    keys.add(packet.pts)
    except av.error.FFmpegError as err:
        raise InputError(f"{path}: damaged video ({err.strerror or err})") from None
    return sorted(keys), first, packets, end


def segment_bounds(keys, time_base, seconds):
    """[(start, end)] pts ranges cut at `keys` (keyframe pts) at least `seconds` apart; the first
    starts at the beginning (None), the last runs to the end (None)."""
    starts = [None]
    last = keys[0] if keys else None
    for key in keys[1:]:
        if (key - last) * time_base >= seconds:
            starts.append(key)
            last = key
    return list(zip(starts, starts[1:] + [None]))


def plan_title(path, output, work, settings, segment_seconds):
    """The title dict of one input: its kind, paths and, for a video, its segments."""
    title = {"input": path, "output": output, "work": work, "kind": "image" if _is_image(path) else "video"}
    if title["kind"] == "image":
        return title
    if path.lower().endswith(".yuv"):
        raise InputError(f"{path}: a raw .yuv needs its frame size; convert it with sritm convert --size WxH")
    source = video.VideoSource(path)  # probes it: not a video, no video stream, HDR already
    keys, first, packets, end = keyframes(path, source._stream_index)
    if not packets:
        raise InputError(f"{path}: no video frames")
    if not source._container_frames and video.frames_missing(source.listed_end, end, source.time_base,
                                                             source.frame_rate):  # Matroska: no frame count
        raise InputError(f"{path}: truncated or damaged video: its frames end at "
                         f"{float(end * source.time_base):.3f} s, the container lists {source.listed_end:.3f} s; "
                         "sritm convert --allow-truncated converts the frames that decode")
    bounds = [(None, None)] if keys is None else segment_bounds(keys, source.time_base, segment_seconds)
    title.update(width=source.width * settings["scale"], height=source.height * settings["scale"],
                 frame_rate=source.frame_rate, time_base=source.time_base, offset=source.start_offset,
                 audio_codecs=source.audio_codecs, listed=source._container_frames, first=first,
                 segments=bounds)
    return title


def segment_path(title, index, format):
    start, end = title["segments"][index]
    ext = "yuv" if format == "yuv" else "nut"
    return os.path.join(title["work"], f"seg-{index:04d}-{'begin' if start is None else start}-"
                                       f"{'end' if end is None else end}.{ext}")


def _place(title, index):
    """Seconds (Fraction) from the file's start to the first frame of segment `index`, as
    `video.join_segments` places it; None past the last segment."""
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
        first = video.segment_audio(title["input"], None if index == 0 else place, end, audio)
    if index == 0:
        # ffmpeg moves a title whose audio starts before 0 (AAC priming) by the first packet's time in
        # the Matroska time base (ms, rounded half away from 0), every timestamp rounded first: as
        # `sritm convert`'s output, and the first segment's, are. The later segments' Clusters move as much.
        ms = -first * 1000 if first is not None and first < 0 else 0
        state["shift"] = int(ms + Fraction(1, 2)) if ms else 0
    try:
        chunk = video.mkv_segment_chunk(path, place, audio if first is not None else None, first or 0,
                                        name=title["output"])
    finally:
        fileio.remove(audio)
    mkv = video.mkv_join_start(joined, chunk, title["output"]) if index == 0 else state["mkv"]
    mkv = video.mkv_join_append(joined, chunk, mkv, title["output"], shift=state["shift"] if index else 0)
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
    """Checks the frame count of a joined title, finishes its prefix in place (`video.mkv_join_finish`,
    then MaxCLL / MaxFALL of the title, the max over its segments', into the stream:
    `video.write_light_levels`) and renames it into the output."""
    if state["joined"] < len(title["segments"]):
        missing = segment_path(title, state["joined"], format)
        raise ToolError(f"{title['input']}: segment {os.path.basename(missing)} is not finished; a re-run converts it")
    check_frame_count(title, state["frames"])
    if format != "yuv":
        stage = state.get("stage")
        if stage is None:  # the Cues, sizes and Duration: repeatable
            video.mkv_join_finish(joined, state["mkv"])
            state["stage"] = "levels"
            fileio.write_text(_state_path(title), json.dumps(state))
        if state["levels"]:
            levels = video.LightLevels()
            levels.peak, levels.frame_average = state["levels"]
            with convert.disk_full_is_one_line(title["output"]):
                video.write_light_levels(joined, levels, name=title["output"], resumed=stage == "levels")
    os.replace(joined, title["output"])


def record_error(title, message):
    """Keeps one line on why `title` failed in its work folder, for the report at the end."""
    os.makedirs(title["work"], exist_ok=True)
    fileio.write_text(os.path.join(title["work"], "error.txt"), message)


class ConvertUnit(beam.DoFn):
    """Converts one unit, (title, segment index) or (image title, None); the model is loaded
    once per worker, in `setup`. Yields (work folder, segment index)."""

    def __init__(self, settings):
        self.settings = settings

    def setup(self):
        self.convert = convert.FrameConverter(**{k: self.settings[k] for k in CONVERTER_KEYS})

    def process(self, unit):
        title, index = unit
        try:
            with convert.disk_full_is_one_line(title["output"]):
                if index is None:
                    signal = self.convert(imageio.read_sdr_image(title["input"]))
                    imageio.write_hdr_png(title["output"], signal, self.settings["transfer"])
                else:
                    self.segment(title, index)
        except SritmError as err:  # the option it may name is sritm convert's
            record_error(title, str(err).replace("; --allow-truncated", "; sritm convert --allow-truncated"))
        yield title["work"], index

    def segment(self, title, index):
        s = self.settings
        path = segment_path(title, index, s["format"])
        if os.path.exists(path + ".json") or index < joined_segments(title):  # done by an earlier attempt
            join_ready(title, s["format"])
            return
        os.makedirs(title["work"], exist_ok=True)
        start, end = title["segments"][index]
        source = video.VideoSegment(video.VideoSource(title["input"]), start, end)
        with fileio.atomic_path(path) as tmp:
            if s["format"] == "yuv":
                writer = video.Yuv420p10Writer(tmp, title["width"], title["height"])
            else:
                writer = video.HevcWriter(tmp, title["width"], title["height"], title["frame_rate"],
                                          title["time_base"], "nut", s["crf"], s["preset"], name=title["output"],
                                          transfer=s["transfer"])
            frames, levels = convert.encode_frames(source, writer, self.convert, progress=False)
        light = None if levels is None else [levels.peak, levels.frame_average]
        fileio.write_text(path + ".json", json.dumps({"frames": frames, "pid": os.getpid(), "levels": light}))
        join_ready(title, s["format"])  # this segment and those after it that wait, if it was the next one


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
        levels = video.LightLevels()
        levels.peak = max(info["levels"][0] for _, info in parts)
        levels.frame_average = max(info["levels"][1] for _, info in parts)
    # mp4 only: mkv and yuv titles are joined as their segments finish (`join_ready`)
    with convert.disk_full_is_one_line(output), fileio.atomic_path(output) as tmp:
        starts = [title["first"]] + [start for start, _ in title["segments"][1:]]
        durations = [Fraction(b - a) * title["time_base"] for a, b in zip(starts, starts[1:])] + [None]
        video.join_segments([(path, d) for (path, _), d in zip(parts, durations)], tmp,
                            convert.CONTAINERS[format], title["offset"], title["input"], title["audio_codecs"],
                            name=output)
        if levels is not None:
            video.write_light_levels(tmp, levels, name=output)
    fileio.remove(title["work"])
    return frames


class JoinTitle(beam.DoFn):
    """(work folder, {"titles": [video title], "units": [converted units]}) -> the title joined,
    unless one of its units failed (its error.txt is there)."""

    def __init__(self, format):
        self.format = format

    def process(self, item):
        for title in item[1]["titles"]:
            if os.path.exists(os.path.join(title["work"], "error.txt")) or not os.path.exists(title["work"]):
                continue  # failed, or joined by an earlier attempt of this element
            try:
                join_title(title, self.format)
            except SritmError as err:
                record_error(title, str(err))
        return []


def pipeline_options(runner, workers, beam_args):
    """Beam's options: `runner`, then for the DirectRunner `workers` processes (threads for 1),
    then `beam_args` (--name=value), which may override them."""
    args = [f"--runner={runner}"]
    if runner in ("DirectRunner", "direct"):
        mode = "multi_processing" if workers > 1 else "in_memory"
        args += [f"--direct_num_workers={workers}", f"--direct_running_mode={mode}",
                 "--default_sdk_harness_log_level=ERROR"]
    return PipelineOptions(args + list(beam_args))


def batch_settings(segment_seconds=10.0, format="mkv", crf=18, preset="medium", scale=2, weights=None,
                   baseline=False, tile=None, white_nits=203.0, peak_nits=convert.PEAK_NITS, precision="fp32",
                   engine="tf", transfer="pq"):
    """The settings of a batch, checked: `segment_seconds`, about how long a video segment is (cut at
    keyframes); `format`, the video output's (mkv, mp4 or yuv); the rest as `convert.convert_video`'s."""
    if format not in VIDEO_FORMATS:
        raise InputError(f"--format: expected one of {', '.join(VIDEO_FORMATS)}, got {format!r}")
    if not segment_seconds > 0:
        raise InputError(f"--segment-seconds: expected seconds > 0, got {segment_seconds!r}")
    video.check_encoder(crf, preset)
    convert.check_levels(white_nits, peak_nits, convert.check_transfer(transfer))
    return {"scale": scale, "weights": weights, "baseline": baseline, "tile": tile, "white_nits": white_nits,
            "peak_nits": peak_nits, "precision": precision, "engine": engine, "transfer": transfer,
            "crf": crf, "preset": preset, "format": format, "segment_seconds": segment_seconds}


def plan(inputs, out_dir, settings, overwrite=False):
    """(titles, units, report) of a batch: the titles to convert (`plan_title`), the units of work
    left to do ((title, segment index) or (image title, None)), and the report so far: skipped
    (outputs that exist, unless `overwrite`), failed (inputs refused), segments (to convert) and
    reused (segments a previous run finished)."""
    report = {"done": [], "skipped": [], "failed": [], "segments": 0, "reused": 0}
    titles, units = [], []
    os.makedirs(out_dir, exist_ok=True)
    out_dir = os.path.abspath(out_dir)  # absolute: the workers may run elsewhere
    for path, name in find_inputs(inputs):
        path = os.path.abspath(path)
        output = os.path.join(out_dir, f"{name}.{'png' if _is_image(path) else settings['format']}")
        if os.path.exists(output) and os.path.samefile(path, output):  # even with --overwrite, as ffmpeg
            report["failed"].append((path, f"{output}: is the input file; write the output to another folder"))
            continue
        if os.path.exists(output) and not overwrite:
            report["skipped"].append(output)
            continue
        work = os.path.join(out_dir, WORK, f"{name.replace(os.sep, '_')}-{title_key(path, settings)}")
        fileio.remove(os.path.join(work, "error.txt"))  # a previous run's
        os.makedirs(os.path.dirname(output), exist_ok=True)
        try:
            title = plan_title(path, output, work, settings, settings["segment_seconds"])
        except SritmError as err:
            report["failed"].append((path, str(err)))
            continue
        titles.append(title)
        if title["kind"] == "image":
            units.append((title, None))
            continue
        joined = joined_segments(title)
        for index in range(len(title["segments"])):
            if index < joined or os.path.exists(segment_path(title, index, settings["format"]) + ".json"):
                report["reused"] += 1
            else:
                units.append((title, index))
                report["segments"] += 1
    return titles, units, report


def run_pipeline(titles, units, settings, runner="DirectRunner", workers=None, beam_args=()):
    """Converts `units` and joins the video `titles` on Beam (see the module)."""
    workers = workers or os.cpu_count() or 1
    logging.getLogger("apache_beam").setLevel(logging.ERROR)
    with beam.Pipeline(options=pipeline_options(runner, workers, beam_args)) as p:
        done = (p | "Units" >> beam.Create(units, reshuffle=False) | beam.Reshuffle()
                | beam.ParDo(ConvertUnit(settings)))
        videos = p | "Titles" >> beam.Create([(t["work"], t) for t in titles if t["kind"] == "video"])
        _ = {"titles": videos, "units": done} | beam.CoGroupByKey() | beam.ParDo(JoinTitle(settings["format"]))


def convert_batch(inputs, out_dir, runner="DirectRunner", workers=None, beam_args=(), overwrite=False, **options):
    """Converts images (to .png) and videos (to .mkv, .mp4 or .yuv) into `out_dir`, in parallel
    on Apache Beam (see the module).

    Args:
        inputs: files, folders and globs (`find_inputs`).
        out_dir: the output folder (made if missing); outputs are `out_dir/<name>.<ext>`.
        runner: Beam's runner; `workers` (default: the CPU count) is DirectRunner's processes.
        beam_args: more Beam pipeline options, "--name=value".
        overwrite: convert titles whose output exists (default: skip them).
        options: `batch_settings`'.

    Returns:
        The report of `plan`, with done (outputs written) and failed completed.
    """
    settings = batch_settings(**options)
    titles, units, report = plan(inputs, out_dir, settings, overwrite)
    if titles:
        run_pipeline(titles, units, settings, runner, workers, beam_args)
    for title in titles:
        error = os.path.join(title["work"], "error.txt")
        if os.path.exists(error):
            with open(error) as f:
                report["failed"].append((title["input"], f.read().strip()))
        elif os.path.exists(title["output"]) and (title["kind"] == "image" or not os.path.exists(title["work"])):
            report["done"].append(title["output"])
            fileio.remove(title["work"])  # an image's, left by an earlier failure
        else:
            report["failed"].append((title["input"], f"{title['input']}: not finished (see the runner's log)"))
    report["failed"].sort()
    with_work = os.path.join(out_dir, WORK)
    if os.path.isdir(with_work) and not os.listdir(with_work):
        os.rmdir(with_work)
    return report
