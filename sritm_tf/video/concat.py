"""Segments joined into one file by ffmpeg's concat demuxer, without re-encoding (`join_segments`):
`sritm convert-batch`'s mp4 output, whose sample index is written by one muxing pass over every sample.
"""
import errno
import os
import subprocess
from fractions import Fraction

from sritm_tf import fileio
from sritm_tf.errors import ToolError
from sritm_tf.video.hdr10 import audio_args
from sritm_tf.video.probe import require


def join_segments(segments, output, container="mp4", video_offset=0.0, audio_source=None, audio_codecs=(),
                  name=None):
    """Joins HEVC segments that `hdr10.HevcWriter` wrote (container "nut", same encoder settings) into
    `output` ("mp4" or "matroska" `container`) without re-encoding: ffmpeg's concat demuxer,
    streams copied, with the audio of `audio_source` copied once (as `HevcWriter` does).

    `segments`: (path, duration) in order, duration the seconds (Fraction) from the segment's
    first frame to the next segment's (None for the last): each segment is placed exactly
    there, so the source's timestamps are kept across the joins (HevcWriter's segment files
    start at 0, ffmpeg normalising them). `video_offset`: as `HevcWriter`'s."""
    require("ffmpeg")
    output, name = os.fspath(output), os.fspath(name or output)
    listing = f"{output}.ffconcat"
    lines, start, placed = ["ffconcat version 1.0"], Fraction(0), 0
    for path, duration in segments:
        lines.append("file '{}'".format(os.path.abspath(path).replace("'", "'\\''")))
        if duration is not None:
            # ffmpeg adds the durations up in microseconds: each is the difference of the exact
            # start times rounded, so that the n-th segment is off by 0.5 us at most, not n x 0.5 us.
            start += Fraction(duration)
            micros = round(start * 1_000_000) - placed
            placed += micros
            lines.append(f"duration {micros // 1_000_000}.{micros % 1_000_000:06d}")
    try:
        with open(listing, "w") as f:
            f.write("\n".join(lines) + "\n")
        cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-itsoffset", f"{video_offset:.6f}",
               "-f", "concat", "-safe", "0", "-i", listing]
        cmd += audio_args(container, audio_source, audio_codecs) + ["-c:v", "copy"]
        if container == "mp4":
            cmd += ["-tag:v", "hvc1", "-movflags", "+faststart"]
        proc = subprocess.run(cmd + ["-f", container, output], capture_output=True, text=True)
        if proc.returncode:
            if "No space left on device" in proc.stderr:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), name)
            detail = "; ".join(line.strip() for line in proc.stderr.splitlines() if line.strip())[-2000:]
            raise ToolError(f"{name}: ffmpeg failed to join its segments: {detail or proc.returncode}")
    finally:
        fileio.remove(listing)
