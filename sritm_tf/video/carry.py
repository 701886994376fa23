"""What an encoded output keeps of its source besides the picture (`carry_args`): audio, subtitles,
attachments (fonts, Matroska only), chapters, the file's tags (its title among them) and its
timecode, copied by ffmpeg (-map, -map_metadata, -map_chapters, -timecode), converted only where
the container needs it; the streams no container rule lets through are named in one note.
"""
import json
import os
import subprocess

from sritm_tf.errors import InputError
from sritm_tf.notes import note
from sritm_tf.video.hdr10 import MP4_AUDIO
from sritm_tf.video.probe import require

#: Text subtitle codecs: converted where the container does not take them as they are.
TEXT_SUBTITLES = {"subrip", "ass", "ssa", "webvtt", "mov_text", "text"}
#: Subtitle codecs each output format takes as they are (ffmpeg's Matroska and mov muxers).
SUBTITLES_KEPT = {"mkv": {"subrip", "ass", "ssa", "webvtt", "hdmv_pgs_subtitle", "dvd_subtitle", "dvb_subtitle"},
                  "mp4": {"mov_text", "dvd_subtitle"}, "mov": {"mov_text"}}
#: The subtitle encoder a text subtitle is converted with: SubRip, or 3GPP Timed Text for MP4 / QuickTime.
TEXT_INTO = {"mkv": "srt", "mp4": "mov_text", "mov": "mov_text"}
#: Audio codecs each output format takes as they are (None: all); the encoder of the others.
AUDIO_KEPT = {"mkv": None, "mp4": MP4_AUDIO,
              "mov": {"aac", "alac", "mp3", "ac3", "eac3", "pcm_s16le", "pcm_s16be", "pcm_s24le", "pcm_s24be",
                      "pcm_s32le", "pcm_s32be", "pcm_f32le", "pcm_f32be"}}
AUDIO_INTO = {"mp4": ["aac", "-b:a", "192k"], "mov": ["pcm_s24le"]}


def source_streams(path):
    """ffprobe's streams, format tags and chapters of `path` (JSON)."""
    require("ffprobe")
    out = subprocess.run(["ffprobe", "-v", "error", "-of", "json", "-show_streams", "-show_format",
                          "-show_chapters", os.fspath(path)], capture_output=True, text=True)
    if out.returncode:
        raise InputError(f"{path}: ffprobe cannot read it ({out.stderr.strip()[-300:]})")
    return json.loads(out.stdout)


def timecode(info):
    """The source's start timecode ("HH:MM:SS:FF"): the file's `timecode` tag, else a stream's
    (a QuickTime 'tmcd' track's is on the video stream and the data stream both), else None."""
    for tags in [info.get("format", {}).get("tags", {})] + [s.get("tags", {}) for s in info["streams"]]:
        value = next((v for k, v in tags.items() if k.lower() == "timecode"), None)
        if value:
            return value
    return None


def _stream(stream, fmt, chapters):
    """(ffmpeg codec arguments of this output stream, or None with why it cannot go into .`fmt`)."""
    kind, codec = stream["codec_type"], stream.get("codec_name")
    if kind == "audio":
        kept = AUDIO_KEPT[fmt]
        return (["copy"] if kept is None or codec in kept else AUDIO_INTO[fmt]), None
    if kind == "subtitle":
        if codec in SUBTITLES_KEPT[fmt]:
            return ["copy"], None
        if codec in TEXT_SUBTITLES:
            return [TEXT_INTO[fmt]], None
        return None, f"subtitle {codec}: .{fmt} takes no such subtitles"
    if kind == "attachment":
        return (["copy"], None) if fmt == "mkv" else (None, f"attachment: .{fmt} holds no attachments")
    if kind == "data" and stream.get("codec_tag_string") == "tmcd":
        return None, ""  # the timecode, carried by -timecode
    if kind == "data" and stream.get("codec_tag_string") == "text" and chapters:
        return None, ""  # QuickTime's chapter track: the chapters, carried by -map_chapters
    return None, f"{kind} {codec or stream.get('codec_tag_string', '')}".strip()


def carry_args(source, fmt, output):
    """ffmpeg arguments that map video input 0 and, as input 1, what output format `fmt` (mkv,
    mp4, mov) can take of the video file `source`: every stream but its first video stream
    (the one converted), copied or converted (`_stream`), its chapters, its tags
    (title included) and its timecode (a 'tmcd' track in .mov / .mp4, a TIMECODE tag in .mkv).
    What cannot go in is named in one note."""
    info = source_streams(source)
    args = ["-i", os.fspath(source), "-map", "0:v:0"]
    lost, out_index = [], 1
    converted = next((s["index"] for s in info["streams"] if s["codec_type"] == "video"), None)
    for stream in info["streams"]:
        if stream["index"] == converted:
            continue
        if stream["codec_type"] == "video":  # a second picture, or cover art
            codec_args, why = None, f"video {stream.get('codec_name', '')}".strip()
        else:
            codec_args, why = _stream(stream, fmt, info.get("chapters"))
        if codec_args is None:
            if why:
                lost.append(f"stream #{stream['index']} ({why})")
            continue
        args += ["-map", f"1:{stream['index']}", f"-c:{out_index}", *codec_args]
        out_index += 1
    args += ["-map_metadata", "1", "-map_chapters", "1"]
    if (value := timecode(info)) is not None:
        args += ["-timecode", value]
    if lost:
        note(f"{source}: not carried into {output}: {', '.join(lost)}")
    return args
