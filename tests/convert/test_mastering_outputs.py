"""Mastering outputs and what they carry: ProRes 422 HQ / 4444 in .mov and AV1 10-bit in .mkv / .mp4,
with BT.2020 / PQ tags and the HDR10 mastering display and content light levels read back by ffprobe;
the source's subtitles, chapters, title, timecode, audio and fonts carried into .mkv and .mov; the
codec and container combinations that cannot be refused in one line before TensorFlow."""
import json
import logging
import shutil
import subprocess

import av
import numpy as np
import pytest

from sritm_tf import convert
from sritm_tf.video import hdr10, sources

from tests.helpers.media import ffmpeg, make_clip
from tests.helpers.processes import assert_refused, sritm, sritm_reporting_tensorflow

pytestmark = pytest.mark.skipif(
    shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None, reason="ffmpeg/ffprobe not installed")

SUBTITLES = "1\n00:00:00,000 --> 00:00:00,200\nHello there\n\n2\n00:00:00,200 --> 00:00:00,320\nSecond line\n"
CHAPTERS = (";FFMETADATA1\ntitle=A Title\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=160\ntitle=Opening\n"
            "[CHAPTER]\nTIMEBASE=1/1000\nSTART=160\nEND=320\ntitle=Closing\n")


def ffprobe(path, *entries):
    out = subprocess.run(["ffprobe", "-v", "error", "-of", "json", *entries, str(path)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def side_data(items):
    return {d["side_data_type"]: d for d in items.get("side_data_list", [])}


def subtitle_text(path):
    return subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:s:0", "-f", "srt", "-"],
                          capture_output=True, text=True, check=True).stdout


def convert_baseline(src, out, **kwargs):
    return convert.convert_video(src, out, baseline=True, progress=False, preset="ultrafast", **kwargs)


@pytest.fixture(scope="module")
def rich_source(tmp_path_factory):
    """8 frames 64x36 H.264 in Matroska with AAC audio, an SRT subtitle stream, two chapters, a title,
    a start timecode and a font attachment."""
    folder = tmp_path_factory.mktemp("rich")
    (folder / "s.srt").write_text(SUBTITLES)
    (folder / "meta.txt").write_text(CHAPTERS)
    (folder / "font.ttf").write_bytes(b"\x00\x01\x00\x00 not really a font")
    path = folder / "rich.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x36:rate=25", "-f", "lavfi", "-i", "sine=frequency=440",
           "-i", folder / "s.srt", "-i", folder / "meta.txt", "-map", "0:v", "-map", "1:a", "-map", "2",
           "-map_metadata", "3", "-map_chapters", "3", "-t", "0.32", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           "-c:a", "aac", "-c:s", "srt", "-timecode", "01:00:00:00", "-attach", folder / "font.ttf",
           "-metadata:s:t", "mimetype=application/x-truetype-font", path)
    return path


def first_frame_signal(src):
    """The baseline's PQ R'G'B' of the first frame of `src`, 2x."""
    rgb, _ = next(iter(sources.VideoSource(str(src))))
    return convert.FrameConverter(2, baseline=True)(rgb)


@pytest.mark.parametrize("codec, profile, tag, pix_fmt, planes_fmt", [
    ("prores422hq", "HQ", "apch", "yuv422p10le", "yuv422p10le"),
    ("prores4444", "4444", "ap4h", "yuv444p12le", "yuv444p10le"),  # ffmpeg decodes ProRes 4444 to 12 bits
])
def test_prores_mov_is_tagged_and_carries_the_measured_hdr10_metadata(tmp_path, codec, profile, tag, pix_fmt,
                                                                       planes_fmt):
    src = make_clip(tmp_path / "src.mp4", 4)
    out = tmp_path / "master.mov"
    result = convert_baseline(src, out, codec=codec if codec != "prores422hq" else None)  # 422 HQ: .mov's default
    info = ffprobe(out, "-show_streams")
    (stream,) = info["streams"]
    assert (stream["codec_name"], stream["profile"], stream["codec_tag_string"], stream["pix_fmt"]) == \
        ("prores", profile, tag, pix_fmt)
    assert (stream["color_primaries"], stream["color_transfer"], stream["color_space"], stream["color_range"]) == \
        ("bt2020", "smpte2084", "bt2020nc", "tv")
    assert (stream["width"], stream["height"], result["frames"]) == (128, 72, 4)
    data = side_data(stream)
    light = data["Content light level metadata"]
    assert (light["max_content"], light["max_average"]) == (result["max_cll"], result["max_fall"])
    assert 0 < result["max_fall"] <= result["max_cll"] <= 1000
    mastering = data["Mastering display metadata"]
    assert (mastering["red_x"], mastering["green_y"], mastering["white_point_x"]) == ("35400/50000", "39850/50000",
                                                                                      "15635/50000")
    assert (mastering["max_luminance"], mastering["min_luminance"]) == ("10000000/10000", "1/10000")
    # The pixels: the first decoded frame is the converted one's 10-bit Y'CbCr in this chroma format.
    with av.open(str(out)) as container:
        frame = next(container.decode(video=0)).reformat(format=planes_fmt)
    want = hdr10.pq_rgb_to_yuv10(first_frame_signal(src), planes_fmt)
    decoded = [np.frombuffer(p, "<u2").reshape(p.height, p.line_size // 2)[:, :p.width] for p in frame.planes]
    for plane, expected in zip(decoded, want):
        assert plane.shape == expected.shape
        assert np.abs(plane.astype(np.int64) - expected).mean() < 4  # ProRes is near lossless at this size


def test_prores_hlg_is_tagged_hlg_without_hdr10_metadata(tmp_path):
    src = make_clip(tmp_path / "src.mp4", 2)
    out = tmp_path / "hlg.mov"
    result = convert_baseline(src, out, codec="prores4444", transfer="hlg")
    (stream,) = ffprobe(out, "-show_streams")["streams"]
    assert (stream["profile"], stream["color_transfer"], stream["color_primaries"]) == \
        ("4444", "arib-std-b67", "bt2020")
    assert "max_cll" not in result and not side_data(stream)


@pytest.mark.parametrize("ext", ["mkv", "mp4"])
def test_av1_is_10_bit_tagged_with_the_measured_hdr10_metadata(tmp_path, ext):
    src = make_clip(tmp_path / "src.mp4", 4)
    out = tmp_path / f"master.{ext}"
    result = convert_baseline(src, out, codec="av1")
    info = ffprobe(out, "-show_streams", "-show_frames", "-read_intervals", "%+#1")
    (stream,) = info["streams"]
    assert (stream["codec_name"], stream["pix_fmt"], stream["color_primaries"], stream["color_transfer"],
            stream["color_space"]) == ("av1", "yuv420p10le", "bt2020", "smpte2084", "bt2020nc")
    frame = info["frames"][0]
    assert (frame["color_primaries"], frame["color_transfer"], frame["color_space"]) == \
        ("bt2020", "smpte2084", "bt2020nc")  # the AV1 sequence header's colour description
    light = side_data(frame)["Content light level metadata"]
    assert (light["max_content"], light["max_average"]) == (result["max_cll"], result["max_fall"])
    assert side_data(frame)["Mastering display metadata"]["max_luminance"] == "256000/256"  # 1000 cd/m2, 24.8
    if ext == "mp4":  # the sample entry's boxes too, moov first ('faststart') and the chunk offsets moved
        light = side_data(stream)["Content light level metadata"]
        assert (light["max_content"], light["max_average"]) == (result["max_cll"], result["max_fall"])
        with av.open(str(out)) as container:
            assert len(list(container.decode(video=0))) == 4


@pytest.mark.parametrize("ext", ["mkv", "mov"])
def test_subtitles_chapters_title_timecode_audio_are_carried(tmp_path, rich_source, ext, caplog):
    out = tmp_path / f"out.{ext}"
    with caplog.at_level(logging.INFO, logger="sritm_tf"):
        convert_baseline(rich_source, out)
    info = ffprobe(out, "-show_streams", "-show_format", "-show_chapters")
    kinds = [(s["codec_type"], s.get("codec_name")) for s in info["streams"]]
    video = "hevc" if ext == "mkv" else "prores"
    subtitle = "subrip" if ext == "mkv" else "mov_text"
    assert kinds[:3] == [("video", video), ("audio", "aac"), ("subtitle", subtitle)]
    assert subtitle_text(out) == subtitle_text(rich_source)
    assert "Hello there" in subtitle_text(out)
    assert [(round(float(c["start_time"]), 3), c["tags"]["title"]) for c in info["chapters"]] == \
        [(0.0, "Opening"), (0.16, "Closing")]
    tags = {k.lower(): v for k, v in info["format"]["tags"].items()}
    assert tags["title"] == "A Title"
    if ext == "mkv":
        assert tags["timecode"] == "01:00:00:00"
        assert ("attachment", "ttf") in kinds  # the font
        assert not [r for r in caplog.records if "not carried" in r.getMessage()]
    else:
        tmcd = [s for s in info["streams"] if s.get("codec_tag_string") == "tmcd"]
        assert [s["tags"]["timecode"] for s in tmcd] == ["01:00:00:00"]
        notes = [r.getMessage() for r in caplog.records if "not carried" in r.getMessage()]
        assert len(notes) == 1 and "attachment" in notes[0] and str(out) in notes[0], notes


def test_timecode_and_subtitles_of_a_mov_source_reach_an_mkv(tmp_path, rich_source):
    mov = tmp_path / "in.mov"
    ffmpeg("-i", rich_source, "-map", "0:v", "-map", "0:a", "-map", "0:s", "-c", "copy", "-c:s", "mov_text", mov)
    out = tmp_path / "out.mkv"
    convert_baseline(mov, out, codec="av1")
    info = ffprobe(out, "-show_streams", "-show_format", "-show_chapters")
    assert [s["codec_name"] for s in info["streams"]] == ["av1", "aac", "subrip"]  # no data stream: tmcd, chapters
    assert {k.lower(): v for k, v in info["format"]["tags"].items()}["timecode"] == "01:00:00:00"
    assert len(info["chapters"]) == 2
    assert "Second line" in subtitle_text(out)


@pytest.mark.parametrize("output, extra, names", [
    ("o.mp4", ["--codec", "prores4444"], ["o.mp4", "prores4444", ".mov"]),
    ("o.mkv", ["--codec", "prores422hq"], ["o.mkv", "prores422hq", ".mov"]),
    ("o.mov", ["--codec", "av1"], ["o.mov", "av1", ".mkv or .mp4"]),
    ("o.yuv", ["--codec", "hevc"], ["o.yuv", "--codec hevc"]),
])
def test_a_codec_the_container_cannot_hold_is_refused_in_one_line(tmp_path, output, extra, names):
    src = make_clip(tmp_path / "src.mp4", 1)
    result = sritm_reporting_tensorflow("convert", src, "-o", tmp_path / output, "--baseline", *extra)
    assert_refused(result, "convert", *names)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.mp4"]


def test_convert_batch_refuses_a_mov_output(tmp_path):
    result = sritm("convert-batch", tmp_path, "-o", tmp_path / "out", "--format", "mov", timeout=60)
    assert result.returncode == 2 and "--format" in result.stderr and "mov" in result.stderr


def test_4_2_2_chroma_is_co_sited_with_the_first_luma_sample_of_each_pair():
    row = np.array([[0.0, 4, 8, 12, 16, 20]])
    np.testing.assert_allclose(hdr10.chroma_444_to_422(row), [[1, 8, 16]])  # [1, 2, 1] / 4, edges replicated
    y, cb, cr = hdr10.pq_rgb_to_yuv10(np.full((2, 6, 3), 0.5), "yuv422p10le")
    assert (y.shape, cb.shape, cr.shape) == ((2, 6), (2, 3), (2, 3))
    assert (int(cb[0, 0]), int(cr[0, 0])) == (512, 512)  # grey: no colour difference


def test_an_ffmpeg_without_the_encoder_is_one_tool_error(monkeypatch):
    from sritm_tf.errors import ToolError
    from sritm_tf.video import mastering

    monkeypatch.setattr(mastering, "ffmpeg_encoders", lambda: frozenset({"libx265", "prores_ks"}))
    with pytest.raises(ToolError, match=r"^o\.mkv: the installed ffmpeg has no libsvtav1 encoder for av1$"):
        mastering.output_codec("o.mkv", "mkv", "av1")
    assert mastering.output_codec("o.mov", "mov") == "prores422hq"
