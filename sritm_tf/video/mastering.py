"""Encoded outputs: the video codec an output takes (`output_codec`), its writer (`open_writer`:
HEVC Main10 `hdr10.HevcWriter`; Apple ProRes 422 HQ / 4444 in QuickTime .mov through ffmpeg's
prores_ks; AV1 10-bit in .mkv / .mp4 through SVT-AV1), with what the source has besides the
picture (`carry.carry_args`), and the HDR10 static metadata written once the last frame is
measured (`write_light_levels`).

ProRes carries no HDR10 metadata of its own: its frame header and the 'colr' box say BT.2020 / PQ
(or HLG) / BT.2020 NCL, and the mastering display and content light levels are the 'mdcv' and
'clli' boxes of its sample entry (`isobmff`). SVT-AV1 writes them as metadata OBUs (AV1 6.7.3 and
6.7.4: metadata_hdr_cll, metadata_hdr_mdcv) with placeholder values, which are replaced in place:
AV1 has no emulation prevention, so the final values always fit.
"""
import functools
import os
import struct
import subprocess

from sritm_tf import colour
from sritm_tf.errors import InputError, ToolError
from sritm_tf.video import carry, hdr10, isobmff, sequences
from sritm_tf.video.probe import require
from sritm_tf.video.sources import VideoSource

#: The codecs of encoded outputs (`--codec`), each with the output formats that hold it.
CODECS = {"hevc": ("mkv", "mp4"), "av1": ("mkv", "mp4"), "prores422hq": ("mov",), "prores4444": ("mov",)}
#: The codec of each encoded output format when none is asked for.
DEFAULT_CODEC = {"mkv": "hevc", "mp4": "hevc", "mov": "prores422hq"}
#: ffmpeg's muxer of each encoded output format.
MUXERS = {"mkv": "matroska", "mp4": "mp4", "mov": "mov"}
#: The ffmpeg encoder of each codec.
ENCODERS = {"hevc": "libx265", "av1": "libsvtav1", "prores422hq": "prores_ks", "prores4444": "prores_ks"}
#: prores_ks profile and the 10-bit pixel format it is fed: 3 = 422 HQ, 4 = 4444 (no alpha).
PRORES = {"prores422hq": (3, "yuv422p10le"), "prores4444": (4, "yuv444p10le")}
#: SVT-AV1 presets (0 slowest .. 13 fastest) of like speed to each x265 preset name.
SVT_PRESETS = dict(zip(hdr10.X265_PRESETS, (12, 11, 10, 9, 8, 6, 5, 4, 2, 1)))


@functools.lru_cache(maxsize=None)
def ffmpeg_encoders():
    """The names of the encoders the installed ffmpeg has (`ffmpeg -encoders`)."""
    require("ffmpeg")
    out = subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    return frozenset(line.split()[1] for line in out.splitlines() if len(line.split()) > 1 and line[:2] == " V")


def output_codec(output, fmt, codec=None):
    """The video codec of output `output` of format `fmt` (`convert.output_format`): `codec`, or
    the format's own (`DEFAULT_CODEC`); None for .png / .yuv. InputError for a codec the format
    cannot hold, ToolError where ffmpeg lacks the encoder: before any frame is converted."""
    if fmt not in DEFAULT_CODEC:
        if codec is not None:
            raise InputError(f"{output}: --codec {codec}: a .{fmt} output has no video codec; "
                             "use a .mkv, .mp4 or .mov output")
        return None
    codec = codec or DEFAULT_CODEC[fmt]
    if codec not in CODECS:
        raise InputError(f"--codec: expected one of {', '.join(CODECS)}, got {codec!r}")
    if fmt not in CODECS[codec]:
        raise InputError(f"{output}: {codec} is written to {' or '.join('.' + f for f in CODECS[codec])}, "
                         f"not .{fmt}")
    if ENCODERS[codec] not in ffmpeg_encoders():
        raise ToolError(f"{output}: the installed ffmpeg has no {ENCODERS[codec]} encoder for {codec}")
    return codec


def _colour_args(transfer, pix_fmt):
    """ffmpeg's arguments that tag the stream BT.2020 / `transfer` / BT.2020 NCL, limited range."""
    _, trc = colour.TRANSFERS[transfer]
    return ["-pix_fmt", pix_fmt, "-color_primaries", "bt2020", "-color_trc", trc, "-colorspace", "bt2020nc",
            "-color_range", "tv", "-fps_mode", "passthrough",
            "-enc_time_base", "-1"]  # the NUT stream's time base (the source's): timestamps kept


def prores_args(codec, transfer):
    """prores_ks arguments: the profile, the vendor Apple's decoders expect, and the colour tags
    set on the frames too (setparams), since the ProRes frame header takes them from the frames."""
    profile, pix_fmt = PRORES[codec]
    _, trc = colour.TRANSFERS[transfer]
    return (["-c:v", "prores_ks", "-profile:v", str(profile), "-vendor", "apl0",
             "-vf", f"setparams=color_primaries=bt2020:color_trc={trc}:colorspace=bt2020nc:range=tv"]
            + _colour_args(transfer, pix_fmt))


def svt_mastering_display(peak=hdr10.PLACEHOLDER_PEAK):
    """SVT-AV1's `mastering-display` (SMPTE ST 2086) for a BT.2020 / D65 display of `peak` cd/m2."""
    (rx, ry), (gx, gy), (bx, by) = colour.BT2020_PRIMARIES_XY
    wx, wy = colour.D65_XY
    return f"G({gx},{gy})B({bx},{by})R({rx},{ry})WP({wx},{wy})L({peak},{hdr10.MASTERING_MIN_NITS})"


def av1_args(crf, preset, transfer):
    """libsvtav1 arguments: 10-bit 4:2:0, the colour description in the sequence header, and for
    PQ the HDR10 metadata OBUs with placeholder values (`write_light_levels` replaces them)."""
    code, _ = colour.TRANSFERS[transfer]
    params = [f"color-primaries=9:transfer-characteristics={code}:matrix-coefficients=9:color-range=0"]
    if transfer == "pq":
        params += [f"mastering-display={svt_mastering_display()}",
                   "content-light={},{}".format(*hdr10.PLACEHOLDER_LIGHT)]
    return (["-c:v", "libsvtav1", "-preset", str(SVT_PRESETS[preset]), "-crf", str(crf),
             "-svtav1-params", ":".join(params)] + _colour_args(transfer, "yuv420p10le"))


def _video_file(source):
    """The video file `source` decodes (a `sources.VideoSource`, or one that wraps it), whose
    other streams are carried; None for a raw .yuv, a still image or an image sequence."""
    inner = getattr(source, "source", source)
    if isinstance(inner, VideoSource) and not sequences.is_pattern(inner.path):
        return inner.path
    return None


def open_writer(path, fmt, codec, width, height, source, name, crf=18, preset="medium", transfer="pq"):
    """The writer of an encoded output (`hdr10.EncoderPipe`) to `path` (a temporary name of
    `name`), format `fmt` and `codec` (`output_codec`), for frames of `source`; a video file
    source's other streams, chapters, tags and timecode are carried (`carry.carry_args`)."""
    hdr10.check_encoder(crf, preset)
    video_file = _video_file(source)
    source_args = carry.carry_args(video_file, fmt, name) if video_file else ["-map", "0:v:0"]
    if codec == "hevc":
        return hdr10.HevcWriter(path, width, height, source.frame_rate, source.time_base, MUXERS[fmt], crf, preset,
                                video_offset=source.start_offset, name=name, transfer=transfer,
                                source_args=source_args)
    if codec == "av1":
        args, pix_fmt, env = av1_args(crf, preset, transfer), "yuv420p10le", {"SVT_LOG": "1"}  # SVT: errors only
    else:
        args, pix_fmt, env = prores_args(codec, transfer), PRORES[codec][1], None
    if fmt == "mp4":
        args += ["-movflags", "+faststart"]
    return hdr10.EncoderPipe(path, width, height, source.frame_rate, source.time_base,
                             source_args + args + ["-f", MUXERS[fmt]], pix_fmt, source.start_offset, name, env)


def av1_metadata_obus(peak, max_cll, max_fall):
    """The AV1 metadata OBUs (5.8, 6.7: header type 5 with a size field, metadata_type, payload,
    trailing bits) of the HDR10 static metadata: metadata_hdr_mdcv (type 2: primaries R, G, B and
    white point in 0.16 fixed point, luminance max in 24.8 and min in 18.14) for a BT.2020 / D65
    display of `peak` cd/m2, and metadata_hdr_cll (type 1: MaxCLL, MaxFALL), as SVT-AV1 writes them."""
    (rx, ry), (gx, gy), (bx, by) = colour.BT2020_PRIMARIES_XY
    wx, wy = colour.D65_XY
    mdcv = struct.pack(">8H2I", *(round(v * 65536) for v in (rx, ry, gx, gy, bx, by, wx, wy)),
                       round(peak * 256), round(hdr10.MASTERING_MIN_NITS * 16384))
    return (b"\x2a" + bytes([len(mdcv) + 2, 2]) + mdcv + b"\x80",
            b"\x2a\x06\x01" + struct.pack(">2H", max_cll, max_fall) + b"\x80")


def _write_av1_levels(path, levels, name):
    """Replaces SVT-AV1's placeholder HDR10 metadata OBUs in `path` with `levels`', in place."""
    old = av1_metadata_obus(hdr10.PLACEHOLDER_PEAK, *hdr10.PLACEHOLDER_LIGHT)
    new = av1_metadata_obus(hdr10.mastering_peak(levels.max_cll), levels.max_cll, levels.max_fall)
    found = hdr10.find_in_file(path, list(old))
    if not all(found.values()):
        raise ToolError(f"{name}: SVT-AV1 wrote no HDR10 metadata OBUs to update")
    with open(path, "r+b") as f:
        for a, b in zip(old, new):
            for offset in sorted(found[a]):
                f.seek(offset)
                f.write(b)


def write_light_levels(path, fmt, codec, levels, name=None):
    """Writes the final HDR10 static metadata (`levels`: `hdr10.LightLevels`; None for HLG, which
    has none) into the finished output `path`: the HEVC SEI (`hdr10.write_light_levels`), the AV1
    metadata OBUs, and in .mov / .mp4 (ProRes, AV1) the sample entry's 'mdcv' and 'clli' boxes."""
    if levels is None:
        return
    name = os.fspath(name or path)
    if codec == "hevc":
        return hdr10.write_light_levels(path, levels, name=name)
    if codec == "av1":
        _write_av1_levels(path, levels, name)
    if fmt in ("mov", "mp4"):
        xy, high, low = hdr10.mastering_values(hdr10.mastering_peak(levels.max_cll))
        isobmff.add_video_boxes(path, isobmff.hdr10_boxes(struct.pack(">8H2I", *xy, high, low),
                                                          struct.pack(">2H", levels.max_cll, levels.max_fall)), name)
