"""What a `sritm convert-batch` run converts (no Apache Beam here): the inputs (`find_inputs`), each
title's key and, for a video, its segments cut at keyframes (`plan_title`), the batch's settings
(`batch_settings`), and the units of work left to do (`plan`).
"""
import contextlib
import fcntl
import glob
import hashlib
import json
import os
import re

from sritm_tf import convert, fileio, imageio
from sritm_tf.batch import join
from sritm_tf.errors import InputError, SritmError, UserError
from sritm_tf.video import deinterlace as fields, geometry, hdr10, probe, sources

WORK = ".sritm-work"
LOCK = ".sritm-batch.lock"
_HELD = {}  # the run locks this process holds: lock file -> its open file
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".m4v", ".avi", ".webm", ".ts", ".mts", ".m2ts", ".mpg", ".mpeg",
                    ".flv", ".wmv", ".y4m")
VIDEO_FORMATS = ("mkv", "mp4", "yuv")
#: FrameConverter's settings, and the encoder's, that a title's key (and its segments) depend on.
CONVERTER_KEYS = ("scale", "weights", "baseline", "tile", "white_nits", "peak_nits", "precision", "engine",
                  "transfer")


def find_inputs(patterns, out_dir=None):
    """[(input path, output name)] for `patterns`: files, folders (searched recursively for
    images and videos by extension) and globs. The output name is the file's name without its
    extension, under its sub-folder for a file found in a folder (`a/b/c.mp4` from folder `a`:
    `b/c`). A folder's or a glob's files under `out_dir` (the outputs, when OUT_DIR is inside an
    input folder) are left out. InputError for a pattern that names nothing, an input folder that
    is `out_dir` itself, or two inputs with one output name."""
    outputs = os.path.join(os.path.realpath(out_dir), "") if out_dir is not None else None
    inside = lambda path: outputs is not None and os.path.join(os.path.realpath(path), "").startswith(outputs)
    found = []
    for pattern in patterns:
        pattern = os.fspath(pattern)
        if os.path.isdir(pattern):
            if outputs is not None and os.path.join(os.path.realpath(pattern), "") == outputs:
                raise InputError(f"{pattern}: is the output folder (-o) too; write the outputs to another folder")
            walked = []
            for folder, subfolders, files in os.walk(pattern):
                subfolders[:] = [d for d in subfolders if not inside(os.path.join(folder, d))]  # not walked
                walked += [] if inside(folder) else [(folder, files)]
            for folder, files in sorted(walked):
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
            matches = [m for m in matches if not inside(m)]
            found += [(m, os.path.splitext(os.path.basename(m))[0]) for m in matches]
    inputs, seen, owners = [], set(), {}
    for path, name in found:
        key = os.path.realpath(path)
        if key in seen:
            continue  # named twice (a file and its folder, overlapping globs)
        clash = owners.setdefault((name, imageio.is_image(path)), path)
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
    """(pts of the keyframes, sorted; the smallest pts; packets; the largest pts + duration;
    the keyframes the container's index lists that are not in the file, sorted) of a video
    stream from its packet index: demuxed, not decoded. None for the pts if a packet has none."""
    import av

    keys, first, packets, end = set(), None, 0, None
    try:
        with av.open(path, metadata_errors="replace") as container:
            stream = container.streams[stream_index]
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue  # the flush packet
                if packet.pts is None:
                    return None, None, packets, None, []
                packets += 1
                first = packet.pts if first is None else min(first, packet.pts)
                end = max(end or 0, packet.pts + (packet.duration or 0))
                if packet.is_keyframe:
                    keys.add(packet.pts)
            lost = sorted(set(_indexed_keyframes(container, stream)) - keys)
    except av.error.FFmpegError as err:
        raise InputError(f"{path}: damaged video ({err.strerror or err})") from None
    return sorted(keys), first, packets, end, lost


def _indexed_keyframes(container, stream):
    """The keyframe pts a Matroska file's Cues list for `stream` (RFC 9559 section 5.1.5: a CuePoint
    per keyframe; ffmpeg's matroska demuxer reads them on the first seek); [] for other containers,
    whose index holds decoding timestamps (MP4's sample table: its frame count is checked instead)."""
    import av

    if "matroska" not in container.format.name:
        return []
    try:
        container.seek(0, stream=stream)
    except av.error.FFmpegError:
        return []
    return [entry.timestamp for entry in stream.index_entries if entry.is_keyframe]


def truncation(path, source, packets, end, lost):
    """One line on why a video's packet index shows it truncated or damaged, or None: fewer packets
    than the frames its container lists (MP4's sample table), keyframes its index lists (Matroska's
    Cues) missing, or, where it lists no frame count, packets that end well before the stream's
    listed end (`probe.frames_missing`)."""
    listed = source._container_frames
    if listed and packets < listed:
        found = f"{packets} of the {listed} frames its container lists are in the file"
    elif lost:
        times = ", ".join(f"{float(pts * source._stream_time_base):.3f}" for pts in lost[:3])
        found = f"the keyframes its index lists at {times}{', ...' if len(lost) > 3 else ''} s are not in the file"
    elif not listed and probe.frames_missing(source.listed_end, end, source._stream_time_base, source._stream_rate):
        found = (f"its frames end at {float(end * source._stream_time_base):.3f} s, the container lists "
                 f"{source.listed_end:.3f} s")
    else:
        return None
    return (f"{path}: truncated or damaged video: {found}; sritm convert --allow-truncated converts the frames "
            "that decode")


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
    title = {"input": path, "output": output, "work": work, "kind": "image" if imageio.is_image(path) else "video"}
    if title["kind"] == "image":
        return title
    if path.lower().endswith(".yuv"):
        raise InputError(f"{path}: a raw .yuv needs its frame size; convert it with sritm convert --input-size WxH")
    source = video_source(path, settings)  # probes it: not a video, no video stream, HDR already
    keys, first, packets, end, lost = keyframes(path, source._stream_index)
    if not packets:
        raise InputError(f"{path}: no video frames")
    why = truncation(path, source, packets, end, lost)
    if why:  # refused before any segment is converted
        raise InputError(why)
    if keys is not None:  # the source's pts: the stream's x `pts_scale` (2 with one frame per field)
        keys, first, end = [key * source.pts_scale for key in keys], first * source.pts_scale, end * source.pts_scale
    bounds = [(None, None)] if keys is None else segment_bounds(keys, source.time_base, segment_seconds)
    upright = geometry.oriented(source)  # the output is upright, square pixels or --size
    width, height, _ = geometry.output_size(upright.width, upright.height, upright.sample_aspect_ratio,
                                            settings["scale"], settings["size"])
    title.update(width=width, height=height,
                 frame_rate=source.frame_rate, time_base=source.time_base, offset=source.start_offset,
                 audio_codecs=source.audio_codecs, listed=source._container_frames, first=first,
                 segments=bounds)
    return title


def video_source(path, settings):
    """The `sources.VideoSource` of `path`, with the batch's field_order and deinterlace."""
    return sources.VideoSource(path, field_order=settings.get("field_order", "auto"),
                               deinterlace=settings.get("deinterlace", "frame"))


def batch_settings(segment_seconds=10.0, format="mkv", crf=18, preset="medium", scale=2, weights=None,
                   baseline=False, tile=None, white_nits=203.0, peak_nits=convert.PEAK_NITS, precision="fp32",
                   engine="tf", transfer="pq", size=None, field_order="auto", deinterlace="frame"):
    """The settings of a batch, checked: `segment_seconds`, about how long a video segment is (cut at
    keyframes); `format`, the video output's (mkv, mp4 or yuv); `size`, every output's frame size
    ("WxH", even for 4:2:0 video formats; None: `geometry.output_size`'s); the rest as `convert.convert_video`'s."""
    if format not in VIDEO_FORMATS:
        raise InputError(f"--format: expected one of {', '.join(VIDEO_FORMATS)}, got {format!r}")
    if not segment_seconds > 0:
        raise InputError(f"--segment-seconds: expected seconds > 0, got {segment_seconds!r}")
    hdr10.check_encoder(crf, preset)
    size = geometry.check_size(size, format)
    fields.check(field_order, deinterlace)
    convert.check_levels(white_nits, peak_nits, convert.check_transfer(transfer))
    return {"scale": scale, "weights": weights, "baseline": baseline, "tile": tile, "white_nits": white_nits,
            "peak_nits": peak_nits, "precision": precision, "engine": engine, "transfer": transfer,
            "crf": crf, "preset": preset, "format": format, "segment_seconds": segment_seconds, "size": size,
            "field_order": field_order, "deinterlace": deinterlace}


def plan(inputs, out_dir, settings, overwrite=False):
    """(titles, units, report) of a batch: the titles to convert (`plan_title`), the units of work
    left to do ((title, segment index) or (image title, None)), and the report so far: skipped
    (outputs that exist, unless `overwrite`), failed (inputs refused), segments (to convert) and
    reused (segments a previous run finished)."""
    report = {"done": [], "skipped": [], "failed": [], "segments": 0, "reused": 0}
    titles, units, works = [], [], set()
    os.makedirs(out_dir, exist_ok=True)
    out_dir = os.path.abspath(out_dir)  # absolute: the workers may run elsewhere
    for path, name in find_inputs(inputs, out_dir):
        path = os.path.abspath(path)
        output = os.path.join(out_dir, f"{name}.{'png' if imageio.is_image(path) else settings['format']}")
        if os.path.exists(output) and os.path.samefile(path, output):  # even with --overwrite, as ffmpeg
            report["failed"].append((path, f"{output}: is the input file; write the output to another folder"))
            continue
        if os.path.exists(output) and not overwrite:
            report["skipped"].append(output)
            continue
        work = os.path.join(out_dir, WORK, f"{name.replace(os.sep, '_')}-{title_key(path, settings)}")
        works.add(os.path.basename(work))
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
        joined = join.joined_segments(title)
        for index in range(len(title["segments"])):
            if index < joined or os.path.exists(join.segment_path(title, index, settings["format"]) + ".json"):
                report["reused"] += 1
            else:
                units.append((title, index))
                report["segments"] += 1
    remove_other_keys(os.path.join(out_dir, WORK), works)
    return titles, units, report


def remove_other_keys(work_dir, works):
    """Removes the work folders in `work_dir` (OUT_DIR/.sritm-work) of this run's titles under
    another key (`title_key`: an earlier run's, killed, with other settings or an input since
    changed: its segments and joined prefix will never be used), keeping `works` (this run's)."""
    names = {work.rsplit("-", 1)[0] for work in works}
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(work_dir):
            match = re.fullmatch(r"(.+)-[0-9a-f]{16}", entry.name)
            if match and match.group(1) in names and entry.name not in works and entry.is_dir(follow_symlinks=False):
                fileio.remove(entry.path)


@contextlib.contextmanager
def output_lock(out_dir):
    """Holds OUT_DIR's run lock while the block runs: `flock` (LOCK_EX) on OUT_DIR/.sritm-batch.lock,
    which holds the owner's pid and which the kernel releases if the process dies. One
    `sritm convert-batch` per output folder: UserError (naming the other run's pid) if another
    process holds it. Re-entrant within a process. The lock file is removed at the end."""
    path = os.path.join(os.path.abspath(out_dir), LOCK)
    if path in _HELD:
        yield
        return
    os.makedirs(out_dir, exist_ok=True)
    while True:
        lock = open(path, "a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            pid = lock.read().strip() or "?"
            lock.close()
            raise UserError(f"{out_dir}: another sritm convert-batch is running on it (pid {pid})") from None
        with contextlib.suppress(FileNotFoundError):
            if os.path.samestat(os.fstat(lock.fileno()), os.stat(path)):
                break
        lock.close()  # removed by the run that held it, between our open and our lock: lock the new one
    lock.truncate(0)
    lock.write(str(os.getpid()))
    lock.flush()
    _HELD[path] = lock
    try:
        yield
    finally:
        del _HELD[path]
        fileio.remove(path)
        lock.close()
