"""HDR10 output: raw yuv420p10le (`Yuv420p10Writer`), uncompressed NUT (`NutWriter`), an ffmpeg CLI
encode fed frame by frame through a pipe (`EncoderPipe`; the ProRes and AV1 outputs of
`video.mastering`) and HEVC Main10 HDR10 through it (x265: `HevcWriter`), the HDR10 SEI messages,
and the final light levels written into a finished file (`write_light_levels`).

Output signal: BT.2020 NCL Y'CbCr (BT.2020-2 Table 4) of PQ R'G'B', 10-bit
limited range (BT.2100-2 Table 9: Y' 64..940, Cb/Cr 64..960), 4:2:0 with
centre-sited chroma (2x2 box average; signalled as chroma sample location 1);
4:2:2 (co-sited) and 4:4:4 for ProRes (`pq_rgb_to_yuv10`).
HDR10 static metadata (SMPTE ST 2086 mastering display, CTA-861.3 MaxCLL /
MaxFALL) is written into the HEVC stream by x265 (`hdr10=1`) with placeholder
values, which `write_light_levels` replaces in the finished file once the last
frame is measured.
"""
import contextlib
import errno
import math
import numbers
import os
import struct
import subprocess
import threading

import numpy as np

from sritm_tf import colour, fileio
from sritm_tf.errors import InputError, ToolError
from sritm_tf.video.probe import require

#: Mastering display peaks to choose from (cd/m2): the common HDR10 mastering monitors, and PQ's top.
MASTERING_PEAKS_NITS = (1000.0, 4000.0, 10000.0)
MASTERING_MIN_NITS = 0.0001


def mastering_peak(max_cll):
    """The mastering display peak to signal: the smallest of 1000, 4000 and 10000
    cd/m2 that holds the content's MaxCLL, so that the ST 2086 metadata never
    claims a display dimmer than the brightest pixel (players tone-map by it)."""
    return next(p for p in MASTERING_PEAKS_NITS if max_cll <= p)


def chroma_444_to_422(c):
    """Horizontal 4:2:2 subsampling of a (..., H, W) chroma plane -> (..., H, ceil(W/2)): a [1, 2, 1] / 4
    filter at the even columns (edges replicated), so that each sample is co-sited with the first
    luma sample of its pair, as studio 4:2:2 has it (BT.709-6 Part 2 item 5.6; ProRes 422)."""
    pad = [(0, 0)] * (c.ndim - 1) + [(1, 1 + c.shape[-1] % 2)]
    p = np.pad(np.asarray(c, np.float64), pad, mode="edge")
    return (p[..., 0:-2:2] + 2 * p[..., 1:-1:2] + p[..., 2::2]) / 4


#: The chroma planes of each output pixel format from full-resolution ones: 2x2 box average (4:2:0,
#: centre sited: H.273 chroma sample location 1), co-sited 4:2:2, or none (4:4:4).
CHROMA = {"yuv420p10le": colour.chroma_444_to_420, "yuv422p10le": chroma_444_to_422,
          "yuv444p10le": lambda c: np.asarray(c, np.float64)}


def pq_rgb_to_yuv10(pq_rgb, pix_fmt="yuv420p10le"):
    """PQ BT.2020 R'G'B' (H, W, 3) in [0, 1] -> (Y, Cb, Cr) uint16 planes, 10-bit limited range
    BT.2020 NCL, chroma as `pix_fmt` has it (`CHROMA`). HLG R'G'B' takes the same matrix and
    quantisation (BT.2100-2 Tables 6 and 9)."""
    ycbcr = colour.rgb_to_ycbcr(pq_rgb, "bt2020")
    luma = colour.quantize(ycbcr[..., 0], 10, full_range=False, kind="rgb")  # 219 E + 16, same as Y'
    cb, cr = CHROMA[pix_fmt](ycbcr[..., 1]), CHROMA[pix_fmt](ycbcr[..., 2])
    chroma = colour.quantize(np.stack([np.zeros_like(cb), cb, cr], axis=-1), 10, full_range=False, kind="ycbcr")
    return luma, chroma[..., 1], chroma[..., 2]


def pq_rgb_to_yuv420p10(pq_rgb):
    """`pq_rgb_to_yuv10` in 4:2:0 (even H, W)."""
    return pq_rgb_to_yuv10(pq_rgb, "yuv420p10le")


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
    """Writes 10-bit Y'CbCr frames (`pix_fmt`: yuv420p10le, yuv422p10le or yuv444p10le), uncompressed,
    with their source timestamps, as a NUT stream (PyAV) to `file`: a path, or a binary file
    object (the pipe into ffmpeg)."""

    def __init__(self, file, width, height, frame_rate, time_base, pix_fmt="yuv420p10le"):
        import av

        self.container = av.open(file, "w", format="nut")
        self.stream = self.container.add_stream("rawvideo", rate=frame_rate)
        self.stream.width, self.stream.height = width, height
        self.stream.pix_fmt = self.pix_fmt = pix_fmt
        # The source's time base for the stream and the encoder both: a variable frame rate's timestamps
        # are kept exactly (in 1/average-rate units they would round and collide).
        self.stream.time_base = self.stream.codec_context.time_base = time_base
        self.time_base = time_base

    def write(self, pq_rgb, pts):
        import av

        height, width = pq_rgb.shape[:2]
        frame = av.VideoFrame(width, height, self.pix_fmt)
        for plane, values in zip(frame.planes, pq_rgb_to_yuv10(pq_rgb, self.pix_fmt)):
            rows = np.zeros((plane.height, plane.line_size // 2), "<u2")  # each line padded to the plane's stride
            rows[:, :plane.width] = values
            plane.update(rows.tobytes())
        frame.pts, frame.time_base = pts, self.time_base
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self):
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


def mastering_values(peak, minimum=MASTERING_MIN_NITS):
    """SMPTE ST 2086 for a BT.2020 / D65 display as H.265 D.3.28 codes it: xy in units of
    0.00002 in the order G, B, R, white point; luminance in units of 0.0001 cd/m2 (max, min)."""
    (rx, ry), (gx, gy), (bx, by) = colour.BT2020_PRIMARIES_XY
    wx, wy = colour.D65_XY
    xy = [round(v / 0.00002) for v in (gx, gy, bx, by, rx, ry, wx, wy)]
    return xy, round(peak * 10000), round(minimum * 10000)


def master_display(peak=MASTERING_PEAKS_NITS[0], minimum=MASTERING_MIN_NITS):
    """x265 `master-display` (SMPTE ST 2086) for a BT.2020 / D65 display: xy in
    units of 0.00002, luminance in units of 0.0001 cd/m2, order G, B, R, WP, L."""
    (gx, gy, bx, by, rx, ry, wx, wy), high, low = mastering_values(peak, minimum)
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
    xy, high, low = mastering_values(peak)
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


def audio_args(container, audio_source, audio_codecs):
    """ffmpeg arguments that map video input 0 and, if `audio_source` has audio, its audio
    streams as input 1: copied, or AAC where an MP4 cannot carry them."""
    if audio_source is None or not audio_codecs:
        return ["-map", "0:v:0"]
    copy = container != "mp4" or all(c in MP4_AUDIO for c in audio_codecs)
    return (["-i", os.fspath(audio_source), "-map", "0:v:0", "-map", "1:a?"]
            + (["-c:a", "copy"] if copy else ["-c:a", "aac", "-b:a", "192k"]))


class EncoderPipe:
    """Encodes frames as they are converted: PyAV writes each frame, uncompressed with its
    source timestamp, as NUT (`NutWriter`, `pix_fmt`) into a pipe, from which the ffmpeg CLI
    encodes into `path` with `output_args` (the maps, codecs and muxer; `path` is appended).
    `video_offset`: seconds from the file start to the first video frame (-itsoffset of the
    pipe). `name`: the file errors name (default `path`), the destination when `path` is a
    temporary name. `env`: extra environment variables of ffmpeg. Use: `write(pq_rgb, pts)`
    per frame, then `close()`; `abort()` after a failure stops ffmpeg (the caller removes `path`).
    """

    def __init__(self, path, width, height, frame_rate, time_base, output_args, pix_fmt="yuv420p10le",
                 video_offset=0.0, name=None, env=None):
        require("ffmpeg")
        self.path = os.fspath(path)
        self.name = os.fspath(name or path)
        cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-itsoffset", f"{video_offset:.6f}",
               "-f", "nut", "-i", "pipe:0", *output_args,
               "-aspect", f"{width}:{height}", self.path]  # square pixels, SAR 1:1 (`geometry`); after the inputs
        # A session of its own: Ctrl-C reaches this process only, which stops ffmpeg in `abort`.
        self.process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, start_new_session=True,
                                        env=dict(os.environ, **env) if env else None)
        self._stderr = []
        self._reader = threading.Thread(target=lambda: self._stderr.append(self.process.stderr.read()), daemon=True)
        self._reader.start()
        try:
            self.frames = NutWriter(self.process.stdin, width, height, frame_rate, time_base, pix_fmt)
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


class HevcWriter(EncoderPipe):
    """Encodes frames to HEVC Main10 HDR10 as they are converted (`EncoderPipe`, libx265)
    into `path` ("mp4", "matroska" or "nut" `container`): BT.2020 / PQ / BT.2020 NCL tags,
    limited range, centre chroma, the mastering display and content light level SEI (with
    placeholders until `write_light_levels`), at every keyframe. `transfer="hlg"`: BT.2100
    HLG frames, tagged arib-std-b67, no HDR10 SEI. No uncompressed frame reaches the disk: in
    flight are the pipe's buffer, ffmpeg's input probe and x265's lookahead, all in memory.

    Audio streams of `audio_source` (if given) are muxed in, copied (AAC where MP4 cannot
    carry them); `source_args`, if given, are the ffmpeg arguments that map the source's
    streams instead (`video.carry.carry_args`). `video_offset`, `name`: as `EncoderPipe`'s.
    """

    def __init__(self, path, width, height, frame_rate, time_base, container="mp4", crf=18, preset="medium",
                 video_offset=0.0, audio_source=None, audio_codecs=(), name=None, transfer="pq", source_args=None):
        check_encoder(crf, preset)
        _, trc = colour.TRANSFERS[transfer]
        params = ["repeat-headers=1", "log-level=error", "colorprim=bt2020", f"transfer={trc}",
                  "colormatrix=bt2020nc", "range=limited", "chromaloc=1"]
        if transfer == "pq":  # HDR10 static metadata; HLG has none (BT.2100 HLG is scene referred)
            params += ["hdr10=1", f"master-display={master_display(PLACEHOLDER_PEAK)}",
                       "max-cll={},{}".format(*PLACEHOLDER_LIGHT)]
        args = audio_args(container, audio_source, audio_codecs) if source_args is None else list(source_args)
        args += ["-c:v", "libx265", "-pix_fmt", "yuv420p10le", "-profile:v", "main10",
                 "-preset", preset, "-crf", str(crf), "-x265-params", ":".join(params),
                 "-color_primaries", "bt2020", "-color_trc", trc, "-colorspace", "bt2020nc",
                 "-color_range", "tv", "-chroma_sample_location", "center", "-fps_mode", "passthrough",
                 "-enc_time_base", "-1"]  # the NUT stream's time base (the source's): timestamps kept
        if container == "mp4":
            args += ["-tag:v", "hvc1", "-movflags", "+faststart"]
        super().__init__(path, width, height, frame_rate, time_base, args + ["-f", container],
                         video_offset=video_offset, name=name)


def find_in_file(path, patterns, chunk=1 << 24):
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
    found = find_in_file(path, list(keys.values()))
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

