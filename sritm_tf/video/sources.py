"""Frame sources: frames as RGB (uint8 or float in [0, 1]) with timestamps, from an SDR video
of 8 to 16 bits decoded by PyAV, deinterlaced if it is interlaced (`VideoSource`, and one range
of its frames, `VideoSegment`), raw 8-bit yuv420p (`YuvSource`) or a still image (`ImageSource`).
"""
import os
from fractions import Fraction

import numpy as np

from sritm_tf import colour
from sritm_tf.errors import InputError, MissingFileError
from sritm_tf.video import colorimetry, deinterlace as fields
from sritm_tf.video.probe import frames_missing, probe


class VideoSource:
    """An SDR video decoded by PyAV, frames as R'G'B' in BT.709 primaries (`colorimetry.Signal`):
    uint8 from an 8-bit BT.709 stream, float32 in [0, 1] from a deeper one or an SD one.
    Interlaced (`field_order` "auto": as the stream says; "tff", "bff": as the user says;
    "progressive": left as it is), it is deinterlaced with bwdif (`deinterlace.Deinterlacer`):
    `deinterlace` "frame", one frame per frame; "field", one per field, and then frame_rate is
    twice the stream's and time_base half of it (`pts_scale` 2: pts = the stream's pts x 2).

    Attributes: width, height, frame_rate (Fraction), time_base (Fraction),
    start_offset (seconds from the file start to the first video frame),
    frame_count (estimate, for progress), has_audio, audio_codecs, path, rotation (the display
    matrix's, degrees counter-clockwise) and sample_aspect_ratio (Fraction), signal (`colorimetry.Signal`).
    Iterating yields (rgb, pts) with pts in `time_base` units. Decoding errors (frames
    the decoder marks corrupt included), fewer frames than the container lists, or, where
    it lists no frame count (Matroska), frames that end more than 1.5 frame intervals
    before the end it lists for the stream (`frames_missing`), raise InputError at the
    end, unless `allow_truncated`: then `truncated` is (frames decoded, frames listed, or
    estimated from the listed end, or None).
    """

    def __init__(self, path, allow_truncated=False, format=None, options=None, field_order="auto",
                 deinterlace="frame"):
        fields.check(field_order, deinterlace)
        info = probe(path, format, options)  # format, options: the demuxer's (`sequences.open_sequence`)
        self._demuxer = {"format": format, "options": options or {}}
        tags = colorimetry.stream_tags(info)
        colorimetry.check_sdr_signal(tags, path)
        self.signal = colorimetry.Signal(tags, info["height"], path)
        self.path = path
        self.width, self.height = info["width"], info["height"]
        self.frame_rate, self.time_base = info["frame_rate"], info["time_base"]
        self.start_offset = info["start_offset"]
        self.frame_count = info["frame_count"]
        self.audio_codecs = info["audio_codecs"]
        self.has_audio = bool(self.audio_codecs)
        self._stream_index = info["index"]
        self._container_frames, self.allow_truncated, self.truncated = info["container_frames"], allow_truncated, None
        self.listed_end = info["listed_end"]  # seconds (`probe.probe`), for containers without a frame count
        self.rotation = (info["first_frame"] or {}).get("rotation", 0)  # for `geometry.oriented`
        self.sample_aspect_ratio = info["sample_aspect_ratio"]
        self._parity = fields.parity(tags, field_order)  # None: progressive
        self.pts_scale = 2 if self._parity and deinterlace == "field" else 1
        self._stream_rate, self._stream_time_base = self.frame_rate, self.time_base
        self.frame_rate, self.time_base = self.frame_rate * self.pts_scale, self.time_base / self.pts_scale
        self.frame_count = self.frame_count and self.frame_count * self.pts_scale
        fields.tell(path, tags, field_order, self._parity, self.pts_scale == 2, self.frame_rate)

    def __iter__(self):
        yield from self.frames()

    def frames(self, start=None, end=None):
        """(rgb, pts) of the frames with `start` <= pts < `end` (None: open ended), in
        presentation order. With a `start`, decoding begins at the keyframe at or before it
        (a seek), so that the first frame kept decodes cleanly; if the container's seek lands
        after `start`, decoding starts from the beginning instead. The checks for a damaged
        or truncated file (see the class) cover the frames decoded; the frame count check
        needs the whole title (no `start`, no `end`). With deinterlacing, the frames just outside
        the range are decoded too, as bwdif's context."""
        import av

        whole, scale = start is None and end is None, self.pts_scale
        bwdif = self._parity and fields.Deinterlacer(self._parity, scale == 2, self._stream_time_base)

        def wanted(pts):
            return pts is None or ((start is None or pts >= start) and (end is None or pts < end))

        with av.open(self.path, metadata_errors="replace", **self._demuxer) as container:
            stream = container.streams[self._stream_index]
            stream.thread_type = "AUTO"
            count, corrupt, damage, last_end = 0, 0, None, None
            frames = _decoded(container, stream, None if start is None else start // scale)
            while True:
                try:
                    frame = next(frames)
                except StopIteration:
                    break
                except av.error.FFmpegError as err:
                    damage = err.strerror or str(err)
                    break
                # Before the range: context (open-GOP leading frames of the keyframe before); after it: the end.
                after = end is not None and frame.pts is not None and frame.pts * scale >= end
                if wanted(None if frame.pts is None else frame.pts * scale):
                    count += 1
                    corrupt += frame.is_corrupt  # decoded with errors the decoder concealed
                    if frame.pts is not None:  # Frame.duration: PyAV 14.4 and later
                        end_pts = frame.pts + (getattr(frame, "duration", None) or 0)
                        last_end = end_pts if last_end is None else max(last_end, end_pts)
                for shown, pts in (bwdif.push(frame) if bwdif else [(frame, frame.pts)]):
                    if wanted(pts):
                        yield self.signal.rgb(shown), pts
                if after:
                    break
            for shown, pts in (bwdif.flush() if bwdif else []):
                if wanted(pts):
                    yield self.signal.rgb(shown), pts
        listed = self._container_frames if whole else None
        if count == 0:
            raise InputError(f"{self.path}: no frame decodes" + (f" ({damage})" if damage else ""))
        about = ""
        missing = 0
        if whole and not listed:  # Matroska: no frame count, only where the stream ends
            missing = frames_missing(self.listed_end, last_end, self._stream_time_base, self._stream_rate)
        if missing:
            listed, about = count + missing, "about "
            damage = damage or (f"the frames end at {float(last_end * self._stream_time_base):.3f} s, the container "
                                f"lists {self.listed_end:.3f} s")
        if damage or corrupt or (listed and count < listed):
            what = (f"{self.path}: truncated or damaged video: {count} of {about}{listed or 'unknown'} frames decoded"
                    + (f", {corrupt} of them with errors" if corrupt else "") + (f" ({damage})" if damage else ""))
            if not self.allow_truncated:
                raise InputError(f"{what}; --allow-truncated converts the frames that decode")
            self.truncated = (count, listed)


def _decoded(container, stream, start):
    """The frames of `stream` decoded from the keyframe at or before pts `start` (None: from the
    beginning). If the container's seek lands after `start` (a file without an index), from the beginning."""
    if start is not None:
        container.seek(start, stream=stream, backward=True)
        frames = container.decode(stream)
        first = next(frames, None)
        if first is not None and first.pts is not None and first.pts <= start:
            yield first
            yield from frames
            return
        container.seek(stream.start_time or 0, stream=stream, backward=True)
    yield from container.decode(stream)


class VideoSegment:
    """The frames of a `VideoSource` with `start` <= pts < `end` (None: open ended), as a source
    for `convert.encode_frames`: one unit of work of `sritm convert-batch`."""

    def __init__(self, source, start=None, end=None, frame_count=None):
        self.source, self.start, self.end = source, start, end
        self.path, self.frame_rate, self.time_base = source.path, source.frame_rate, source.time_base
        self.frame_count = frame_count

    def __iter__(self):
        return self.source.frames(self.start, self.end)


def yuv420_frame_bytes(width, height, bytes_per_sample=1):
    """Size of one planar 4:2:0 frame (chroma planes ceil(w/2) x ceil(h/2))."""
    return (width * height + 2 * ((width + 1) // 2) * ((height + 1) // 2)) * bytes_per_sample


def yuv420_to_rgb(data, width, height):
    """One raw 8-bit yuv420p frame (limited range BT.709 Y'CbCr, BT.709-6 items
    3.2-4.6) -> R'G'B' float in [0, 1]; chroma upsampled bilinearly."""
    cw, ch = (width + 1) // 2, (height + 1) // 2
    y = data[:width * height].reshape(height, width)
    cb = data[width * height:width * height + cw * ch].reshape(ch, cw)
    cr = data[width * height + cw * ch:].reshape(ch, cw)
    codes = np.stack([y, colour.chroma_420_to_444(cb, height, width),
                      colour.chroma_420_to_444(cr, height, width)], axis=-1)
    ycbcr = colour.dequantize(codes, 8, full_range=False, kind="ycbcr")
    return np.clip(colour.ycbcr_to_rgb(ycbcr, "bt709"), 0.0, 1.0)


class YuvSource:
    """Raw 8-bit yuv420p frames (limited range, BT.709) of a known size."""

    def __init__(self, path, width, height, frame_rate=25):
        if not os.path.isfile(path):
            raise MissingFileError(f"{path}: no such file")
        self.path, self.width, self.height = path, int(width), int(height)
        self.frame_rate = Fraction(frame_rate)
        self.time_base = 1 / self.frame_rate
        self.start_offset, self.has_audio, self.audio_codecs = 0.0, False, []
        self._frame_bytes = yuv420_frame_bytes(self.width, self.height)
        size = os.path.getsize(path)
        if size == 0 or size % self._frame_bytes:
            raise InputError(f"{path}: {size} bytes is not a whole number of {self.width}x{self.height} "
                             f"yuv420p frames ({self._frame_bytes} bytes each); check --input-size")
        self.frame_count = size // self._frame_bytes

    def __iter__(self):
        with open(self.path, "rb") as f:
            for index in range(self.frame_count):
                data = np.frombuffer(f.read(self._frame_bytes), np.uint8)
                yield yuv420_to_rgb(data, self.width, self.height), index


class ImageSource:
    """A still image as a one-frame video (for .yuv / .mp4 / .mkv output)."""

    def __init__(self, rgb, path, frame_rate=25):
        self.rgb, self.path = rgb, path
        self.height, self.width = rgb.shape[:2]
        self.frame_rate = Fraction(frame_rate)
        self.time_base = 1 / self.frame_rate
        self.start_offset, self.has_audio, self.audio_codecs, self.frame_count = 0.0, False, [], 1

    def __iter__(self):
        yield self.rgb, 0
