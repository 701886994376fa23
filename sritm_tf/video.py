"""Video files: SDR decode (PyAV, raw .yuv), HDR10 raw yuv420p10le and HEVC
Main10 HDR10 encode (x265 through the ffmpeg CLI, fed frame by frame through a
pipe: `HevcWriter`), and input probing (PyAV).

Output signal: BT.2020 NCL Y'CbCr (BT.2020-2 Table 4) of PQ R'G'B', 10-bit
limited range (BT.2100-2 Table 9: Y' 64..940, Cb/Cr 64..960), 4:2:0 with
centre-sited chroma (2x2 box average; signalled as chroma sample location 1).
HDR10 static metadata (SMPTE ST 2086 mastering display, CTA-861.3 MaxCLL /
MaxFALL) is written into the HEVC stream by x265 (`hdr10=1`) with placeholder
values, which `write_light_levels` replaces in the finished file once the last
frame is measured.
"""
import contextlib
import errno
import hashlib
import math
import numbers
import os
import shutil
import struct
import subprocess
import threading
from fractions import Fraction

import numpy as np

from sritm_tf import colour, fileio
from sritm_tf.errors import InputError, ToolError

#: FFmpeg's AVColorTransferCharacteristic codes of HDR transfers: (name, ffmpeg's name).
HDR_TRANSFERS = {code: (key.upper(), name) for key, (code, name) in colour.TRANSFERS.items()}
#: Mastering display peaks to choose from (cd/m2): the common HDR10 mastering monitors, and PQ's top.
MASTERING_PEAKS_NITS = (1000.0, 4000.0, 10000.0)
MASTERING_MIN_NITS = 0.0001


def mastering_peak(max_cll):
    """The mastering display peak to signal: the smallest of 1000, 4000 and 10000
    cd/m2 that holds the content's MaxCLL, so that the ST 2086 metadata never
    claims a display dimmer than the brightest pixel (players tone-map by it)."""
    return next(p for p in MASTERING_PEAKS_NITS if max_cll <= p)


def _require(tool):
    if shutil.which(tool) is None:
        raise ToolError(f"{tool} not found: install ffmpeg (it provides ffmpeg and ffprobe)")


# ---------------------------------------------------------------------------
# Probing
# ---------------------------------------------------------------------------
def probe(path):
    """The first video stream of `path`, opened with PyAV, as a dict: index, width,
    height, frame_rate (Fraction: average, else base rate, else 25), time_base
    (Fraction), start_offset (seconds from the file start to the first video frame),
    frame_count (from the container, else duration x rate; None if unknown),
    transfer (FFmpeg's color_trc code), bits (per sample, from the pixel format)
    and audio_codecs. Raises InputError if the file cannot be opened or has no
    video stream."""
    import av

    try:
        container = av.open(os.fspath(path), metadata_errors="replace")  # damaged tags do not stop us
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
            "transfer": context.color_trc,
            "bits": max((c.bits for c in context.format.components), default=8) if context.format else 8,
            "audio_codecs": [a.codec_context.name for a in container.streams.audio],
        }


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


def check_sdr_stream(info, path):
    """Refuses a stream (`probe`) that is already HDR: PQ or HLG transfer, or more than 8 bits."""
    if info["transfer"] in HDR_TRANSFERS:
        name, transfer = HDR_TRANSFERS[info["transfer"]]
        raise InputError(f"{path}: already HDR ({name} transfer {transfer}); sritm converts SDR video")
    if info["bits"] > 8:
        raise InputError(f"{path}: {info['bits']}-bit video, which is taken as HDR or high bit depth already; "
                         "sritm converts 8-bit SDR video")


# ---------------------------------------------------------------------------
# Sources: frames as RGB (uint8 or float in [0, 1]) with timestamps
# ---------------------------------------------------------------------------
class VideoSource:
    """An 8-bit SDR video decoded by PyAV, frames as RGB uint8.

    Attributes: width, height, frame_rate (Fraction), time_base (Fraction),
    start_offset (seconds from the file start to the first video frame),
    frame_count (estimate, for progress), has_audio, audio_codecs, path.
    Iterating yields (rgb, pts) with pts in `time_base` units. Decoding errors (frames
    the decoder marks corrupt included), fewer frames than the container lists, or, where
    it lists no frame count (Matroska), frames that end more than 1.5 frame intervals
    before the end it lists for the stream (`frames_missing`), raise InputError at the
    end, unless `allow_truncated`: then `truncated` is (frames decoded, frames listed, or
    estimated from the listed end, or None).
    """

    def __init__(self, path, allow_truncated=False):
        info = probe(path)
        check_sdr_stream(info, path)
        self.path = path
        self.width, self.height = info["width"], info["height"]
        self.frame_rate, self.time_base = info["frame_rate"], info["time_base"]
        self.start_offset = info["start_offset"]
        self.frame_count = info["frame_count"]
        self.audio_codecs = info["audio_codecs"]
        self.has_audio = bool(self.audio_codecs)
        self._stream_index = info["index"]
        self._container_frames, self.allow_truncated, self.truncated = info["container_frames"], allow_truncated, None
        self.listed_end = info["listed_end"]  # seconds (`_listed_end`), for containers without a frame count

    def __iter__(self):
        yield from self.frames()

    def frames(self, start=None, end=None):
        """(rgb, pts) of the frames with `start` <= pts < `end` (None: open ended), in
        presentation order. With a `start`, decoding begins at the keyframe at or before it
        (a seek), so that the first frame kept decodes cleanly; if the container's seek lands
        after `start`, decoding starts from the beginning instead. The checks for a damaged
        or truncated file (see the class) cover the frames decoded; the frame count check
        needs the whole title (no `start`, no `end`)."""
        import av
        from av.video.reformatter import ColorRange, Colorspace

        whole = start is None and end is None
        with av.open(self.path, metadata_errors="replace") as container:
            stream = container.streams[self._stream_index]
            stream.thread_type = "AUTO"
            count, corrupt, damage, last_end = 0, 0, None, None
            frames = _decoded(container, stream, start)
            while True:
                try:
                    frame = next(frames)
                except StopIteration:
                    break
                except av.error.FFmpegError as err:
                    damage = err.strerror or str(err)
                    break
                if start is not None and frame.pts is not None and frame.pts < start:
                    continue  # context before the range (open-GOP leading frames of the keyframe before)
                if end is not None and frame.pts is not None and frame.pts >= end:
                    break
                # Untagged streams: BT.709 for HD, BT.601 for SD (as players assume).
                space = frame.colorspace if frame.colorspace in (1, 5, 6, 9) else (
                    Colorspace.ITU709 if frame.height >= 720 else Colorspace.ITU601)
                full = frame.color_range == ColorRange.JPEG or frame.format.name.startswith("yuvj")
                rgb = frame.reformat(format="rgb24", src_colorspace=space, dst_colorspace=space,
                                     src_color_range=ColorRange.JPEG if full else ColorRange.MPEG,
                                     dst_color_range=ColorRange.JPEG).to_ndarray()
                count += 1
                corrupt += frame.is_corrupt  # decoded with errors the decoder concealed
                if frame.pts is not None:  # Frame.duration: PyAV 14.4 and later
                    end_pts = frame.pts + (getattr(frame, "duration", None) or 0)
                    last_end = end_pts if last_end is None else max(last_end, end_pts)
                yield rgb, frame.pts
        listed = self._container_frames if whole else None
        if count == 0:
            raise InputError(f"{self.path}: no frame decodes" + (f" ({damage})" if damage else ""))
        about = ""
        missing = 0
        if whole and not listed:  # Matroska: no frame count, only where the stream ends
            missing = frames_missing(self.listed_end, last_end, self.time_base, self.frame_rate)
        if missing:
            listed, about = count + missing, "about "
            damage = damage or (f"the frames end at {float(last_end * self.time_base):.3f} s, the container "
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
            raise FileNotFoundError(f"{path}: no such file")
        self.path, self.width, self.height = path, int(width), int(height)
        self.frame_rate = Fraction(frame_rate)
        self.time_base = 1 / self.frame_rate
        self.start_offset, self.has_audio, self.audio_codecs = 0.0, False, []
        self._frame_bytes = yuv420_frame_bytes(self.width, self.height)
        size = os.path.getsize(path)
        if size == 0 or size % self._frame_bytes:
            raise InputError(f"{path}: {size} bytes is not a whole number of {self.width}x{self.height} "
                             f"yuv420p frames ({self._frame_bytes} bytes each); check --size")
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


# ---------------------------------------------------------------------------
# HDR10 output
# ---------------------------------------------------------------------------
def pq_rgb_to_yuv420p10(pq_rgb):
    """PQ BT.2020 R'G'B' (H, W, 3) in [0, 1] -> (Y, Cb, Cr) uint16 planes, 10-bit
    limited range BT.2020 NCL, chroma 2x2-averaged (even H, W). HLG R'G'B' takes the
    same matrix and quantisation (BT.2100-2 Tables 6 and 9)."""
    ycbcr = colour.rgb_to_ycbcr(pq_rgb, "bt2020")
    luma = colour.quantize(ycbcr[..., 0], 10, full_range=False, kind="rgb")  # 219 E + 16, same as Y'
    cb, cr = colour.chroma_444_to_420(ycbcr[..., 1]), colour.chroma_444_to_420(ycbcr[..., 2])
    chroma = colour.quantize(np.stack([np.zeros_like(cb), cb, cr], axis=-1), 10, full_range=False, kind="ycbcr")
    return luma, chroma[..., 1], chroma[..., 2]


class LightLevels:
    """Running HDR10 content light levels (CTA-861.3): MaxCLL, the largest
    max(R,G,B) of any pixel, and MaxFALL, the largest frame average of
    max(R,G,B), in cd/m2 (PQ EOTF of the BT.2020 R'G'B' signal), rounded up."""

    def __init__(self):
        self.peak, self.frame_average = 0.0, 0.0

    def update(self, pq_rgb):
        nits = colour.pq_eotf(np.max(pq_rgb, axis=-1).astype(np.float64))  # float32 is 0.05 cd/m2 off at 1000
        self.peak = max(self.peak, float(nits.max()))
        self.frame_average = max(self.frame_average, float(nits.mean()))

    @property
    def max_cll(self):
        return math.ceil(self.peak - 1e-6)

    @property
    def max_fall(self):
        return math.ceil(self.frame_average - 1e-6)


class Yuv420p10Writer:
    """Appends frames to a raw yuv420p10le file (no header, no timestamps)."""

    def __init__(self, path, width, height, frame_rate=None, time_base=None):
        self.file = open(path, "wb")

    def write(self, pq_rgb, pts=None):
        for plane in pq_rgb_to_yuv420p10(pq_rgb):
            self.file.write(plane.astype("<u2").tobytes())

    def close(self):
        self.file.close()

    abort = close


class NutWriter:
    """Writes yuv420p10le frames, uncompressed, with their source timestamps, as a
    NUT stream (PyAV) to `file`: a path, or a binary file object (the pipe into ffmpeg)."""

    def __init__(self, file, width, height, frame_rate, time_base):
        import av

        self.container = av.open(file, "w", format="nut")
        self.stream = self.container.add_stream("rawvideo", rate=frame_rate)
        self.stream.width, self.stream.height = width, height
        self.stream.pix_fmt = "yuv420p10le"
        # The source's time base for the stream and the encoder both: a variable frame rate's timestamps
        # are kept exactly (in 1/average-rate units they would round and collide).
        self.stream.time_base = self.stream.codec_context.time_base = time_base
        self.time_base = time_base

    def write(self, pq_rgb, pts):
        import av

        y, cb, cr = pq_rgb_to_yuv420p10(pq_rgb)
        height, width = y.shape
        # PyAV reads the three planes one after the other from a (3H/2, W) array.
        planes = np.concatenate([y.ravel(), cb.ravel(), cr.ravel()]).reshape(height * 3 // 2, width)
        frame = av.VideoFrame.from_ndarray(planes, format="yuv420p10le")
        frame.pts, frame.time_base = pts, self.time_base
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self):
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


def _mastering_values(peak, minimum=MASTERING_MIN_NITS):
    """SMPTE ST 2086 for a BT.2020 / D65 display as H.265 D.3.28 codes it: xy in units of
    0.00002 in the order G, B, R, white point; luminance in units of 0.0001 cd/m2 (max, min)."""
    (rx, ry), (gx, gy), (bx, by) = colour.BT2020_PRIMARIES_XY
    wx, wy = colour.D65_XY
    xy = [round(v / 0.00002) for v in (gx, gy, bx, by, rx, ry, wx, wy)]
    return xy, round(peak * 10000), round(minimum * 10000)


def master_display(peak=MASTERING_PEAKS_NITS[0], minimum=MASTERING_MIN_NITS):
    """x265 `master-display` (SMPTE ST 2086) for a BT.2020 / D65 display: xy in
    units of 0.00002, luminance in units of 0.0001 cd/m2, order G, B, R, WP, L."""
    (gx, gy, bx, by, rx, ry, wx, wy), high, low = _mastering_values(peak, minimum)
    return f"G({gx},{gy})B({bx},{by})R({rx},{ry})WP({wx},{wy})L({high},{low})"


def sei_nal(payload_type, payload):
    """A prefix SEI NAL unit holding one sei_message, as x265 writes each HDR10 message: NAL
    header (H.265 7.3.1.2: type 39, layer 0, temporal id 0), payload type and size (7.3.5,
    both < 255), payload, rbsp_trailing_bits, with emulation prevention bytes (7.4.2: a 0x03
    after two zero bytes that precede a byte <= 3)."""
    rbsp = bytes([payload_type, len(payload)]) + payload + b"\x80"
    nal, zeros = bytearray(b"\x4e\x01"), 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            nal.append(3)
            zeros = 0
        nal.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(nal)


def hdr10_sei_nals(peak, max_cll, max_fall):
    """The HDR10 static metadata SEI NAL units: mastering display colour volume (H.265 D.2.28,
    payloadType 137) for a BT.2020 / D65 display of `peak` cd/m2, and content light level
    (D.2.35, payloadType 144: MaxCLL, MaxFALL in cd/m2)."""
    xy, high, low = _mastering_values(peak)
    return (sei_nal(137, struct.pack(">8H2I", *xy, high, low)),
            sei_nal(144, struct.pack(">2H", max_cll, max_fall)))


#: What x265 is started with and `write_light_levels` replaces: the mastering peak and
#: (MaxCLL, MaxFALL). 0xFFFF needs no emulation prevention byte, so the final values
#: take its place in the file byte for byte (see `write_light_levels`).
PLACEHOLDER_PEAK, PLACEHOLDER_LIGHT = MASTERING_PEAKS_NITS[0], (0xFFFF, 0xFFFF)


#: x265's presets, fastest first, and its constant rate factor range (x265 --crf <0..51.0>).
X265_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")
X265_CRF_RANGE = (0, 51)


def check_encoder(crf=18, preset="medium"):
    """Refuses an x265 setting that the encoder would reject: called before any frame is converted."""
    if preset not in X265_PRESETS:
        raise InputError(f"--preset: x265 has no preset {preset!r}; use one of {', '.join(X265_PRESETS)}")
    low, high = X265_CRF_RANGE
    if isinstance(crf, bool) or not isinstance(crf, numbers.Real) or not low <= crf <= high:
        raise InputError(f"--crf: expected an x265 constant rate factor in [{low}, {high}], got {crf!r}")


# Audio codecs an MP4 file can carry as they are; others are re-encoded to AAC.
MP4_AUDIO = {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"}


def _audio_args(container, audio_source, audio_codecs):
    """ffmpeg arguments that map video input 0 and, if `audio_source` has audio, its audio
    streams as input 1: copied, or AAC where an MP4 cannot carry them."""
    if audio_source is None or not audio_codecs:
        return ["-map", "0:v:0"]
    copy = container != "mp4" or all(c in MP4_AUDIO for c in audio_codecs)
    return (["-i", os.fspath(audio_source), "-map", "0:v:0", "-map", "1:a?"]
            + (["-c:a", "copy"] if copy else ["-c:a", "aac", "-b:a", "192k"]))


class HevcWriter:
    """Encodes frames to HEVC Main10 HDR10 as they are converted: PyAV writes each
    frame, uncompressed with its source timestamp, as NUT into a pipe, from which
    ffmpeg/libx265 encodes into `path` ("mp4" or "matroska" `container`): BT.2020 /
    PQ / BT.2020 NCL tags, limited range, centre chroma, the mastering display and
    content light level SEI (with placeholders until `write_light_levels`), at every
    keyframe. `transfer="hlg"`: BT.2100 HLG frames, tagged arib-std-b67, no HDR10 SEI. No uncompressed frame reaches the disk: in flight are the pipe's buffer,
    ffmpeg's input probe and x265's lookahead, all in memory.

    Audio streams of `audio_source` (if given) are muxed in, copied (AAC where MP4 cannot
    carry them). `video_offset`: seconds from the file start to the first video frame.
    `name`: the file errors name (default `path`), the destination when `path` is a
    temporary name. Use: `write(pq_rgb, pts)` per frame, then `close()`; `abort()`
    after a failure stops ffmpeg (the caller removes `path`).
    """

    def __init__(self, path, width, height, frame_rate, time_base, container="mp4", crf=18, preset="medium",
                 video_offset=0.0, audio_source=None, audio_codecs=(), name=None, transfer="pq"):
        _require("ffmpeg")
        check_encoder(crf, preset)
        self.path = os.fspath(path)
        self.name = os.fspath(name or path)
        _, trc = colour.TRANSFERS[transfer]
        params = ["repeat-headers=1", "log-level=error", "colorprim=bt2020", f"transfer={trc}",
                  "colormatrix=bt2020nc", "range=limited", "chromaloc=1"]
        if transfer == "pq":  # HDR10 static metadata; HLG has none (BT.2100 HLG is scene referred)
            params += ["hdr10=1", f"master-display={master_display(PLACEHOLDER_PEAK)}",
                       "max-cll={},{}".format(*PLACEHOLDER_LIGHT)]
        x265_params = ":".join(params)
        cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-itsoffset", f"{video_offset:.6f}",
               "-f", "nut", "-i", "pipe:0"]
        cmd += _audio_args(container, audio_source, audio_codecs)
        cmd += ["-c:v", "libx265", "-pix_fmt", "yuv420p10le", "-profile:v", "main10",
                "-preset", preset, "-crf", str(crf), "-x265-params", x265_params,
                "-color_primaries", "bt2020", "-color_trc", trc, "-colorspace", "bt2020nc",
                "-color_range", "tv", "-chroma_sample_location", "center", "-fps_mode", "passthrough",
                "-enc_time_base", "-1"]  # the NUT stream's time base (the source's): timestamps kept
        if container == "mp4":
            cmd += ["-tag:v", "hvc1", "-movflags", "+faststart"]
        cmd += ["-f", container, self.path]
        # A session of its own: Ctrl-C reaches this process only, which stops ffmpeg in `abort`.
        self.process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, start_new_session=True)
        self._stderr = []
        self._reader = threading.Thread(target=lambda: self._stderr.append(self.process.stderr.read()), daemon=True)
        self._reader.start()
        try:
            self.frames = NutWriter(self.process.stdin, width, height, frame_rate, time_base)
        except BaseException:
            self.abort()
            raise

    def write(self, pq_rgb, pts):
        import av

        try:
            self.frames.write(pq_rgb, pts)
        except (OSError, av.error.FFmpegError) as err:  # ffmpeg stopped reading: its message says why
            self._finish(err)

    def close(self):
        """Sends the last frames and waits for ffmpeg to finish `path`; raises its error."""
        import av

        try:
            self.frames.close()
        except (OSError, av.error.FFmpegError) as err:
            self._finish(err)
        self._finish(None)

    def _finish(self, err):
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        code = self.process.wait()
        self._reader.join()
        message = b"".join(self._stderr).decode(errors="replace")
        # ffmpeg 5.1 exits 0 when writing the trailer or closing the file fails (a full disk, say).
        unfinished = "Error writing trailer" in message or "Error closing file" in message
        if code == 0 and err is None and not unfinished:
            return
        if "No space left on device" in message:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.name)
        if code == 0 and err is not None and not unfinished:
            raise err
        lines = [line.strip() for line in message.replace(self.path, self.name).splitlines()]
        detail = "; ".join(line for line in lines if line)[-2000:] or f"exit status {code}"
        raise ToolError(f"{self.name}: ffmpeg failed to encode it: {detail}")

    def abort(self):
        """Stops ffmpeg at once and waits for it: nothing writes `path` afterwards."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        with contextlib.suppress(Exception):  # the pipe is closed: PyAV's trailer cannot go anywhere
            self.frames.close()
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        self._reader.join()


def _chunks_find(path, patterns, chunk=1 << 24):
    """The offsets in file `path` of every occurrence of each of `patterns` (bytes), read in chunks."""
    found = {p: set() for p in patterns}
    overlap = max(map(len, patterns)) - 1
    with open(path, "rb") as f:
        offset, tail = 0, b""
        while block := f.read(chunk):
            data = tail + block
            base = offset - len(tail)
            for p in patterns:
                i = data.find(p)
                while i >= 0:
                    found[p].add(base + i)
                    i = data.find(p, i + 1)
            offset += len(block)
            tail = data[-overlap:] if overlap else b""
    return found


def write_light_levels(path, levels, name=None, resumed=False):
    """Writes the final HDR10 static metadata into the HEVC stream of `path` made by
    `HevcWriter`: every mastering display and content light level SEI (in the stream's
    header, hvcC, and at each keyframe) gets `levels`' MaxCLL / MaxFALL (CTA-861.3) and
    the mastering peak that holds them (`mastering_peak`), without re-encoding.

    The new SEI NAL units overwrite the placeholders in place when they are as long:
    always but where the new values need an emulation prevention byte the placeholders
    do not have (MaxCLL 0, or a multiple of 256 with MaxFALL <= 3, or a mastering peak of
    4000 or 10000 cd/m2). Then the file is re-muxed once (`_remux_replacing`), which
    needs a second copy of the compressed file for a moment. `resumed`: a killed call may
    have replaced some placeholders already; those that are left are replaced."""
    path, name = os.fspath(path), os.fspath(name or path)
    old = hdr10_sei_nals(PLACEHOLDER_PEAK, *PLACEHOLDER_LIGHT)
    new = hdr10_sei_nals(mastering_peak(levels.max_cll), levels.max_cll, levels.max_fall)
    changes = [(a, b) for a, b in zip(old, new) if a != b]
    # A NAL unit is preceded by its length (2 bytes in hvcC, 4 in the samples): both end in these 2.
    keys = {a: len(a).to_bytes(2, "big") + a for a, _ in changes}
    found = _chunks_find(path, list(keys.values()))
    if resumed:
        changes = [(a, b) for a, b in changes if found[keys[a]]]
    elif not all(found[keys[a]] for a, _ in changes):
        raise ToolError(f"{name}: x265 wrote no HDR10 SEI to update (an x265 that ignores hdr10=1?)")
    if any(len(a) != len(b) for a, b in changes):
        return _remux_replacing(path, changes)
    with open(path, "r+b") as f:
        for a, b in changes:
            for offset in sorted(found[keys[a]]):
                f.seek(offset + 2)
                f.write(b)


def _replace_nals(data, changes, length_size):
    """`data` (NAL units each preceded by its `length_size`-byte length) with NAL units replaced."""
    for a, b in changes:
        data = data.replace(len(a).to_bytes(length_size, "big") + a, len(b).to_bytes(length_size, "big") + b)
    return data


def _remux_replacing(path, changes):
    """Re-muxes `path` (PyAV, streams copied, timestamps kept) with the HEVC NAL units
    `changes` ((old, new) pairs) replaced in its header (hvcC) and its packets."""
    import av

    remuxed = f"{path}.{os.path.splitext(path)[1].lstrip('.') or 'mkv'}"
    try:
        with av.open(path) as src:
            mp4 = "mp4" in src.format.name.split(",")
            with av.open(remuxed, "w", format="mp4" if mp4 else "matroska",
                         options={"movflags": "+faststart"} if mp4 else {}) as dst:
                video_in = src.streams.video[0]
                streams = {s.index: dst.add_stream_from_template(s) for s in src.streams if s.type in ("video", "audio")}
                video_out = streams[video_in.index].codec_context
                header = video_in.codec_context.extradata
                video_out.extradata = _replace_nals(header, changes, 2)
                if mp4:
                    video_out.codec_tag = video_in.codec_context.codec_tag  # hvc1 stays hvc1
                length_size = (header[21] & 3) + 1  # hvcC lengthSizeMinusOne (ISO/IEC 14496-15 8.3.3.1)
                for packet in src.demux():
                    if packet.dts is None or packet.stream.index not in streams:
                        continue
                    index = packet.stream.index
                    if index == video_in.index:
                        copy = av.Packet(_replace_nals(bytes(packet), changes, length_size))
                        copy.pts, copy.dts, copy.duration = packet.pts, packet.dts, packet.duration
                        copy.time_base, copy.is_keyframe = packet.time_base, packet.is_keyframe
                        packet = copy
                    packet.stream = streams[index]
                    dst.mux(packet)
        os.replace(remuxed, path)
    finally:
        fileio.remove(remuxed)


def join_segments(segments, output, container="mp4", video_offset=0.0, audio_source=None, audio_codecs=(),
                  name=None):
    """Joins HEVC segments that `HevcWriter` wrote (container "nut", same encoder settings) into
    `output` ("mp4" or "matroska" `container`) without re-encoding: ffmpeg's concat demuxer,
    streams copied, with the audio of `audio_source` copied once (as `HevcWriter` does).

    `segments`: (path, duration) in order, duration the seconds (Fraction) from the segment's
    first frame to the next segment's (None for the last): each segment is placed exactly
    there, so the source's timestamps are kept across the joins (HevcWriter's segment files
    start at 0, ffmpeg normalising them). `video_offset`: as `HevcWriter`'s."""
    _require("ffmpeg")
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
        cmd += _audio_args(container, audio_source, audio_codecs) + ["-c:v", "copy"]
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


# ---------------------------------------------------------------------------
# Matroska joined in place, segment by segment (sritm convert-batch)
# ---------------------------------------------------------------------------
# Matroska element IDs (RFC 9559; EBML, RFC 8794), marker bits included.
EBML_HEADER, SEGMENT, SEEK_HEAD, SEEK, SEEK_ID, SEEK_POSITION = 0x1A45DFA3, 0x18538067, 0x114D9B74, 0x4DBB, 0x53AB, 0x53AC
INFO, TIMESTAMP_SCALE, DURATION, TRACKS, TAGS = 0x1549A966, 0x2AD7B1, 0x4489, 0x1654AE6B, 0x1254C367
TRACK_ENTRY, TRACK_NUMBER, TRACK_TYPE, DEFAULT_DURATION, CODEC_PRIVATE = 0xAE, 0xD7, 0x83, 0x23E383, 0x63A2
CLUSTER, TIMESTAMP, SIMPLE_BLOCK, BLOCK_GROUP, BLOCK, REFERENCE_BLOCK = 0x1F43B675, 0xE7, 0xA3, 0xA0, 0xA1, 0xFB
CUES, CUE_POINT, CUE_TIME, CUE_TRACK_POSITIONS, CUE_TRACK, CUE_CLUSTER_POSITION = (0x1C53BB6B, 0xBB, 0xB3, 0xB7, 0xF7,
                                                                                  0xF1)
VOID = 0xEC
#: Bytes kept before Info for the SeekHead (4 entries: 89 bytes), written when the join is finished.
SEEK_HEAD_ROOM = 128


def _vint(data, i):
    """(value, length) of the EBML variable-size integer at data[i] (RFC 8794 section 4); value None
    for the reserved all-ones value (an element of unknown size)."""
    length = 9 - data[i].bit_length()
    if length > 8:
        raise ValueError("not an EBML variable-size integer")
    value = int.from_bytes(data[i:i + length], "big") & ((1 << 7 * length) - 1)
    return (None if value == (1 << 7 * length) - 1 else value), length


def _elements(data, start=0, end=None):
    """(id, payload start, payload end) of the EBML elements in data[start:end], in order; an
    element of unknown size runs to `end`. ValueError for an element that runs past `end`."""
    end = len(data) if end is None else end
    while start < end:
        id_length = 9 - data[start].bit_length()
        size, size_length = _vint(data, start + id_length)
        body = start + id_length + size_length
        stop = end if size is None else body + size
        if id_length > 4 or stop > end:
            raise ValueError(f"a damaged or truncated element at byte {start}")
        yield int.from_bytes(data[start:start + id_length], "big"), body, stop
        start = stop


def _element(element_id, payload, size_length=8):
    """An EBML element: its ID, its size (a `size_length`-byte variable-size integer), `payload`."""
    size = (1 << 7 * size_length | len(payload)).to_bytes(size_length, "big")
    return element_id.to_bytes((element_id.bit_length() + 7) // 8, "big") + size + payload


def _uint(element_id, value):
    return _element(element_id, value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"), 1)


def _void(length):
    """A Void element exactly `length` (>= 2) bytes long."""
    return _element(VOID, bytes(length - 2), 1) if length - 2 < 127 else _element(VOID, bytes(length - 9))


def _children(data, start, end):
    return {element_id: (body, stop) for element_id, body, stop in _elements(data, start, end)}


def _live_matroska(chunk, name):
    """(head, clusters): the EBML header and the Segment's elements before its first Cluster as
    {id: (start, end)} (with "ebml" and "first cluster" offsets), and the Cluster spans, of a
    Matroska stream that ffmpeg wrote to a pipe."""
    try:
        top = list(_elements(chunk))
        if len(top) < 2 or top[0][0] != EBML_HEADER or top[1][0] != SEGMENT:
            raise ValueError("no EBML header and Segment")
        head, clusters = {"ebml": (0, top[0][2])}, []
        for element_id, body, stop in _elements(chunk, top[1][1], top[1][2]):
            if element_id == CLUSTER:
                clusters.append((body, stop))
            elif not clusters:
                head[element_id] = (body, stop)
    except ValueError as err:
        raise ToolError(f"{name}: ffmpeg wrote a Matroska segment this join cannot read ({err})") from None
    return head, clusters


def _video_track(chunk, tracks):
    """(track number, default frame duration in ns or 0, CodecPrivate) of the video track in Tracks."""
    for element_id, body, stop in _elements(chunk, *tracks):
        if element_id == TRACK_ENTRY:
            entry = _children(chunk, body, stop)
            value = lambda key, default=0: int.from_bytes(chunk[slice(*entry[key])], "big") if key in entry else default
            if value(TRACK_TYPE) == 1:
                private = chunk[slice(*entry[CODEC_PRIVATE])] if CODEC_PRIVATE in entry else b""
                return value(TRACK_NUMBER), value(DEFAULT_DURATION), private
    raise ToolError("the joined segment has no video track")


def mkv_segment_chunk(segment, offset, audio=None, audio_offset=0, name=None):
    """One segment of a title as live Matroska (RFC 9559), in memory: ffmpeg copies the HEVC
    stream of `segment` (`HevcWriter`'s NUT) with its first frame at `offset` seconds (Fraction:
    the source timestamp's place in the output, as `join_segments` places it), and the audio of
    `audio` (`segment_audio`'s NUT, first packet at `audio_offset` seconds), streams copied."""
    _require("ffmpeg")
    seconds = lambda t: f"{round(Fraction(t) * 1_000_000) / 1_000_000:.6f}"
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-itsoffset", seconds(offset), "-i", os.fspath(segment)]
    cmd += ["-itsoffset", seconds(audio_offset), "-i", os.fspath(audio), "-map", "0:v:0", "-map", "1:a"] if audio \
        else ["-map", "0:v:0"]
    proc = subprocess.run(cmd + ["-c", "copy", "-f", "matroska", "pipe:1"], capture_output=True)
    if proc.returncode:
        detail = "; ".join(line.strip() for line in proc.stderr.decode(errors="replace").splitlines() if line.strip())
        raise ToolError(f"{name or segment}: ffmpeg failed to remux a segment: {detail[-2000:] or proc.returncode}")
    return proc.stdout


def segment_audio(source, start, end, path):
    """Copies the audio packets of `source` whose time is in [`start`, `end`) seconds (None: open
    ended) to `path` (NUT, streams copied), time as ffmpeg places it in an output: the packet's
    timestamp less the file's start. Each packet lands in exactly one segment, so that the joined
    title has the source's audio once. Returns the time of the first packet written; None (and no
    file) if there is none."""
    import av

    first = None
    with av.open(os.fspath(source), metadata_errors="replace") as src:
        streams = list(src.streams.audio)
        if not streams:
            return None
        origin = Fraction(src.start_time or 0, 1_000_000)  # AV_TIME_BASE
        if start is not None:  # from a second before: the demuxer's seek lands on a packet at or before it
            src.seek(max(0, int((start + origin - 1) * 1_000_000)), backward=True)
        with av.open(os.fspath(path), "w", format="nut") as dst:
            out = {s.index: dst.add_stream_from_template(s) for s in streams}
            done = set()
            for packet in src.demux(*streams):
                if packet.pts is None or packet.size == 0:
                    continue
                time = packet.pts * packet.time_base - origin
                if end is not None and time >= end + 1:  # the demuxer's order is by dts: a margin
                    done.add(packet.stream.index)
                    if len(done) == len(streams):
                        break
                if (start is not None and time < start) or (end is not None and time >= end):
                    continue
                first = time if first is None else min(first, time)
                packet.stream = out[packet.stream.index]
                dst.mux(packet)
    if first is None:
        fileio.remove(path)
    return first


def mkv_join_start(path, chunk, name=None):
    """Starts the Matroska file `path` that segments are appended to (`mkv_join_append`), from the
    first segment's `mkv_segment_chunk`: its EBML header, a Segment of unknown size, room for the
    SeekHead, Info (with a Duration to fill in), Tracks and Tags. Returns the join's state (JSON)."""
    head, _ = _live_matroska(chunk, name or path)
    if INFO not in head or TRACKS not in head:
        raise ToolError(f"{name or path}: ffmpeg's Matroska segment has no Info or Tracks")
    info = b"".join(chunk[start:stop] for element_id, start, stop in _elements_with_headers(chunk, *head[INFO])
                    if element_id != DURATION)
    scale = _children(chunk, *head[INFO]).get(TIMESTAMP_SCALE)
    scale = int.from_bytes(chunk[slice(*scale)], "big") if scale else 1_000_000
    track, frame_ns, private = _video_track(chunk, head[TRACKS])
    parts = [chunk[slice(*head["ebml"])], SEGMENT.to_bytes(4, "big") + b"\x01" + b"\xff" * 7]
    segment = sum(map(len, parts))
    state = {"segment": segment, "seek_head": segment, "cues": [], "end": None, "scale": scale,
             "frame": frame_ns / scale, "track": track, "private": hashlib.sha256(private).hexdigest()}
    parts.append(_void(SEEK_HEAD_ROOM))
    state["info"] = sum(map(len, parts)) - segment
    info_element = _element(INFO, info + _element(DURATION, struct.pack(">d", 0.0), 1))
    state["duration"] = sum(map(len, parts)) + len(info_element) - 8
    parts.append(info_element)
    state["tracks"] = sum(map(len, parts)) - segment
    parts.append(_element(TRACKS, chunk[slice(*head[TRACKS])]))
    if TAGS in head:
        state["tags"] = sum(map(len, parts)) - segment
        parts.append(_element(TAGS, chunk[slice(*head[TAGS])]))
    with open(path, "wb") as f:
        f.write(b"".join(parts))
    state["length"] = sum(map(len, parts))
    return state


def _elements_with_headers(data, start, end):
    """As `_elements`, but each span includes the element's ID and size."""
    begin = start
    for element_id, body, stop in _elements(data, start, end):
        yield element_id, begin, stop
        begin = stop


def mkv_join_append(path, chunk, state, name=None, shift=0):
    """Appends the Clusters of `chunk` (a later segment's `mkv_segment_chunk`, whose video track
    must be the first's) to `path` at `state["length"]` (what a killed append left after it is cut
    off), each `shift` (TimestampScale units) later, and notes its keyframes for the Cues. Returns
    the new state; `path` is synced to disk."""
    name = name or path
    head, clusters = _live_matroska(chunk, name)
    track, _, private = _video_track(chunk, head[TRACKS])
    if (track, hashlib.sha256(private).hexdigest()) != (state["track"], state["private"]):
        raise ToolError(f"{name}: a segment's HEVC parameter sets differ from the first segment's; cannot join")
    state = dict(state, cues=list(state["cues"]))
    with open(path, "r+b") as f:
        f.truncate(state["length"])
        f.seek(state["length"])
        for body, stop in clusters:
            position = f.tell() - state["segment"]
            base = 0
            payload = chunk[body:stop]
            for element_id, start, end in _elements(chunk, body, stop):
                if element_id == TIMESTAMP:
                    base = int.from_bytes(chunk[start:end], "big") + shift
                    if shift:  # the Cluster's Timestamp, its first child (RFC 9559 5.1.3.1), moved
                        payload = _uint(TIMESTAMP, base) + chunk[end:stop]
                elif element_id in (SIMPLE_BLOCK, BLOCK_GROUP):
                    block = (start, end) if element_id == SIMPLE_BLOCK else _children(chunk, start, end).get(BLOCK)
                    if block is None:
                        continue
                    number, length = _vint(chunk, block[0])
                    time = base + struct.unpack(">h", chunk[block[0] + length:block[0] + length + 2])[0]
                    state["end"] = time if state["end"] is None else max(state["end"], time)
                    key = (chunk[block[0] + length + 2] & 0x80 if element_id == SIMPLE_BLOCK
                           else REFERENCE_BLOCK not in _children(chunk, start, end))
                    if number == track and key:
                        state["cues"].append([time, position])
            f.write(_element(CLUSTER, payload))
        f.flush()
        os.fsync(f.fileno())
        state["length"] = f.tell()
    return state


def mkv_join_finish(path, state):
    """Finishes the Matroska file of `mkv_join_start` / `mkv_join_append` in place: appends the
    Cues (a CuePoint per video keyframe), and writes the SeekHead, the Segment's size and the
    Duration (the last frame's time plus a frame). Repeatable: what a killed finish wrote is
    written again."""
    cues = b"".join(_element(CUE_POINT, _uint(CUE_TIME, time) + _element(
        CUE_TRACK_POSITIONS, _uint(CUE_TRACK, state["track"]) + _uint(CUE_CLUSTER_POSITION, position)))
        for time, position in state["cues"])
    entries = [(INFO, state["info"]), (TRACKS, state["tracks"]), (CUES, state["length"] - state["segment"])]
    entries += [(TAGS, state["tags"])] if "tags" in state else []
    seek = lambda element_id, position: _element(SEEK, _element(SEEK_ID, element_id.to_bytes(4, "big"), 1)
                                                 + _element(SEEK_POSITION, position.to_bytes(8, "big"), 1), 1)
    seek_head = _element(SEEK_HEAD, b"".join(seek(*entry) for entry in entries), 1)
    with open(path, "r+b") as f:
        f.truncate(state["length"])
        f.seek(state["length"])
        f.write(_element(CUES, cues))
        size = f.tell() - state["segment"]
        f.seek(state["segment"] - 8)
        f.write((1 << 56 | size).to_bytes(8, "big"))
        f.seek(state["seek_head"])
        f.write(seek_head + _void(SEEK_HEAD_ROOM - len(seek_head)))
        f.seek(state["duration"])
        f.write(struct.pack(">d", float((state["end"] or 0) + state["frame"])))
        f.flush()
        os.fsync(f.fileno())
