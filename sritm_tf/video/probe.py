"""Probing video files (PyAV) and the tools the video modules run: the first video stream's
size, rate, time base, frame count, colour tags and bit depth (`probe`), and the check that finds
a truncated one (`frames_missing`). `colorimetry.check_sdr_signal` refuses an HDR stream.
"""
import os
import shutil
from fractions import Fraction

from sritm_tf.errors import InputError, ToolError


def require(tool):
    """Raises ToolError if `tool` (ffmpeg) is not on PATH."""
    if shutil.which(tool) is None:
        raise ToolError(f"{tool} not found: install ffmpeg (it provides ffmpeg and ffprobe)")


def probe(path, format=None, options=None):
    """The first video stream of `path`, opened with PyAV, as a dict: index, width,
    height, frame_rate (Fraction: average, else base rate, else 25), time_base
    (Fraction), start_offset (seconds from the file start to the first video frame),
    frame_count (from the container, else duration x rate; None if unknown),
    transfer, primaries, matrix, color_range (H.273 codes as FFmpeg's color_trc, color_primaries,
    colorspace, color_range), field_order (AVFieldOrder), pix_fmt, bits (per sample, from pix_fmt),
    sample_aspect_ratio (Fraction, 1 when unknown), audio_codecs and first_frame (`_first_frame`). Raises InputError if the file cannot be opened or has no
    video stream. `format`, `options`: PyAV's (an ffmpeg demuxer and its options, such as
    image2's framerate and start_number for an image sequence)."""
    import av

    try:
        container = av.open(os.fspath(path), metadata_errors="replace",  # damaged tags do not stop us
                            format=format, options=options or {})
    except (av.error.FFmpegError, OSError) as err:
        reason = getattr(err, "strerror", None) or str(err) or "cannot open"
        raise InputError(f"{path}: not a readable video or image ({reason})") from None
    with container:
        if not container.streams.video:
            raise InputError(f"{path}: no video stream")
        stream = container.streams.video[0]
        context = stream.codec_context
        if not context or not context.width or not context.height:  # a damaged header
            raise InputError(f"{path}: not a readable video (no frame size in its video stream)")
        frame_rate = next((Fraction(r) for r in (stream.average_rate, stream.base_rate) if r), Fraction(25))
        time_base = Fraction(stream.time_base) if stream.time_base else Fraction(1, 90000)
        start = float(stream.start_time * time_base) if stream.start_time is not None else 0.0
        file_start = container.start_time / 1e6 if container.start_time is not None else start  # AV_TIME_BASE
        if stream.duration:
            duration = float(stream.duration * time_base)
        else:
            duration = (container.duration or 0) / 1e6
        return {
            "index": stream.index,
            "width": context.width, "height": context.height,
            "frame_rate": frame_rate, "time_base": time_base,
            "start_offset": max(0.0, start - file_start),
            "frame_count": stream.frames or (round(duration * frame_rate) or None),
            "container_frames": stream.frames or None,
            "listed_end": _listed_end(stream, time_base),
            "transfer": context.color_trc, "primaries": context.color_primaries, "matrix": context.colorspace,
            "color_range": context.color_range, "field_order": context.field_order,
            "bits": max((c.bits for c in context.format.components), default=8) if context.format else 8,
            "pix_fmt": context.format.name if context.format else None,
            "sample_aspect_ratio": Fraction(stream.sample_aspect_ratio) if stream.sample_aspect_ratio else Fraction(1),
            "audio_codecs": [a.codec_context.name for a in container.streams.audio],
            "first_frame": _first_frame(container, stream),
        }


def _first_frame(container, stream):
    """What the first decoded frame of `stream` says, where FFmpeg's decoder puts what the
    bitstream says (colour tags, the interlaced flag) and the stream's display matrix
    (`rotation`, degrees counter-clockwise): transfer, primaries, matrix, color_range (H.273
    codes), interlaced, rgb_format, pix_fmt, rotation. None if no frame decodes (the source's
    frame checks report that)."""
    import av

    try:
        frame = next(container.decode(stream), None)
    except av.error.FFmpegError:
        return None
    if frame is None:
        return None
    return {"transfer": frame.color_trc, "primaries": frame.color_primaries, "matrix": frame.colorspace,
            "color_range": frame.color_range, "interlaced": bool(frame.interlaced_frame),
            "rgb_format": frame.format.is_rgb, "pix_fmt": frame.format.name,
            "rotation": getattr(frame, "rotation", 0) or 0}


def _listed_end(stream, time_base):
    """Where the container says this video stream ends, in seconds on its timestamps
    (Matroska's DURATION tag, which ffmpeg writes as the stream's end, not its length;
    else the stream's start plus its duration), or None. The video stream's own: audio
    may run longer."""
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    if tag:
        try:
            hours, minutes, seconds = tag.split(":")
            return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        except ValueError:
            pass
    if not stream.duration:
        return None
    return float(((stream.start_time or 0) + stream.duration) * time_base)


def frames_missing(listed_end, end_pts, time_base, frame_rate):
    """About how many frames a stream that lists no frame count (Matroska) lacks: its frames
    (or packets) end at `end_pts` (time_base units) while the container lists `listed_end`
    seconds; 0 within 1.5 frame intervals, or when either is unknown."""
    if not listed_end or end_pts is None:
        return 0
    missing = listed_end - float(end_pts * time_base)
    return round(missing * float(frame_rate)) if missing > 1.5 / float(frame_rate) else 0
