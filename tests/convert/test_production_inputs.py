"""Production video inputs: 10- and 12-bit SDR masters (ProRes 422 HQ, lossless FFV1) keep their
precision, PQ / HLG / BT.2020 sources are refused in one line, 4:4:4 and full-range sources decode
to the right colours, SD sources are converted from BT.601 to BT.709 primaries (colour-science as
the oracle), and interlaced 576i is deinterlaced with bwdif (frame or field rate)."""
import json
import shutil
import subprocess
from fractions import Fraction

import numpy as np
import pytest

from sritm_tf import cli, colour, convert
from sritm_tf.batch import plan
from sritm_tf.video import hdr10, sources

from tests.helpers.media import ffmpeg, make_clip
from tests.helpers.processes import assert_one_error_line, sritm

pytestmark = pytest.mark.skipif(
    shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
    reason="ffmpeg/ffprobe not installed (apt-get install ffmpeg x265)")

BT709_TAGS = ("-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709")
RAMP_WIDTH, RAMP_HEIGHT = 704, 8
#: A grey ramp of 10-bit limited-range luma codes across the frame, 64 (black) .. 940 (white).
RAMP_CODES = 64 + np.round(np.arange(RAMP_WIDTH) * 876 / (RAMP_WIDTH - 1)).astype(np.int64)
RAMP_TRUE = (RAMP_CODES - 64) / 876.0


def run_cli(capsys, *argv):
    code = cli.main(["convert", *map(str, argv)])
    return code, capsys.readouterr().err


def ffprobe(path, *extra):
    out = subprocess.run(["ffprobe", "-v", "error", "-of", "json", *extra, str(path)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def video_stream(path):
    return ffprobe(path, "-count_frames", "-select_streams", "v:0", "-show_streams")["streams"][0]


def encode_planes(path, planes, pix_fmt, frames=2, rate=25, input_range="tv", *output):
    """`frames` copies of the planar frame `planes` ([Y, Cb, Cr] integer arrays; 16-bit little
    endian above 8 bits) as raw `pix_fmt`, encoded by ffmpeg with `output` options into `path`."""
    dtype = "<u2" if "p1" in pix_fmt else np.uint8
    raw = path.with_suffix(".raw")
    raw.write_bytes(b"".join(np.asarray(p, dtype).tobytes() for p in planes) * frames)
    height, width = planes[0].shape
    ffmpeg("-f", "rawvideo", "-pix_fmt", pix_fmt, "-s", f"{width}x{height}", "-r", rate,
           "-color_range", input_range, "-i", raw, *output, path)
    return path


def subsample(plane, pix_fmt):
    """A full-size chroma plane subsampled as `pix_fmt` is (4:2:0, 4:2:2 or 4:4:4), by taking samples."""
    return plane[::2, ::2] if "420" in pix_fmt else plane[:, ::2] if "422" in pix_fmt else plane


def ramp_planes(bits, pix_fmt="yuv444p10le"):
    """The grey ramp at `bits` (10, or 8: the 10-bit codes rounded), neutral chroma."""
    y = np.tile(RAMP_CODES if bits == 10 else np.round(RAMP_CODES / 4.0).astype(np.int64), (RAMP_HEIGHT, 1))
    chroma = subsample(np.full_like(y, 2 ** (bits - 1)), pix_fmt)
    return [y, chroma, chroma]


def flat_planes(rgb, pix_fmt, bits, full_range, matrix="bt709", size=(64, 32)):
    """A flat R'G'B' patch as Y'CbCr codes (BT.2100-2 Table 9) of `pix_fmt`."""
    codes = colour.quantize(colour.rgb_to_ycbcr(np.array(rgb), matrix), bits, full_range, "ycbcr").astype(np.int64)
    width, height = size
    return [subsample(np.full((height, width), c), pix_fmt if i else "yuv444p") for i, c in enumerate(codes)], codes


def comb(frames):
    """Combing: the mean energy of what alternates between rows (each row against the mean of its
    neighbours), the artefact of two fields of different instants woven into one frame."""
    luma = np.asarray(frames, np.float64)[..., 1]
    return float(np.mean((luma[:, 1:-1] - 0.5 * (luma[:, :-2] + luma[:, 2:])) ** 2))


@pytest.fixture(scope="module")
def ramps(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ramps")
    return {bits: encode_planes(folder / f"ramp{bits}.mkv", ramp_planes(bits), "yuv444p10le" if bits == 10 else
                                "yuv444p", 2, 25, "tv", "-c:v", "ffv1", *BT709_TAGS) for bits in (8, 10)}


def test_a_10_bit_ramp_keeps_its_precision(ramps):
    rgb10 = [rgb for rgb, _ in sources.VideoSource(str(ramps[10]))]
    rgb8 = [rgb for rgb, _ in sources.VideoSource(str(ramps[8]))]
    assert rgb10[0].dtype == np.float32 and rgb8[0].dtype == np.uint8
    row10, row8 = rgb10[0][0, :, 1].astype(np.float64), rgb8[0][0, :, 1] / 255.0
    np.testing.assert_allclose(rgb10[0][..., 0], rgb10[0][..., 2], atol=1e-6)  # grey
    error10, error8 = np.abs(row10 - RAMP_TRUE).max(), np.abs(row8 - RAMP_TRUE).mean()
    assert error10 < 1e-5 < 1e-3 < error8, (error10, error8)
    assert len(np.unique(row10)) == RAMP_WIDTH and len(np.unique(row8)) <= 220


def test_a_10_bit_ramp_converts_smoother_than_its_8_bit_rounding(ramps, tmp_path):
    truth = convert.FrameConverter(baseline=True)(np.tile(RAMP_TRUE, (RAMP_HEIGHT, 3, 1)).transpose(0, 2, 1))
    want = hdr10.pq_rgb_to_yuv420p10(truth)[0][0].astype(np.int64)
    rows = {}
    for bits, clip in ramps.items():
        out = tmp_path / f"out{bits}.yuv"
        assert convert.convert_video(clip, out, baseline=True, progress=False)["frames"] == 2
        rows[bits] = np.fromfile(out, "<u2")[:2 * RAMP_WIDTH].astype(np.int64)  # the first luma row
    assert np.abs(rows[10] - want).max() <= 1  # 10-bit rounding of the output only
    assert np.abs(rows[8] - want).mean() > max(0.3, 4 * np.abs(rows[10] - want).mean())
    assert len(np.unique(rows[10])) > len(np.unique(rows[8]))


def test_a_prores_422_hq_10_bit_master_converts_with_its_precision(tmp_path, capsys):
    clip = encode_planes(tmp_path / "master.mov", ramp_planes(10, "yuv422p10le"), "yuv422p10le", 3, 25, "tv",
                         "-c:v", "prores_ks", "-profile:v", "3", *BT709_TAGS)
    stream = video_stream(clip)
    assert (stream["codec_name"], stream["profile"], stream["pix_fmt"]) == ("prores", "HQ", "yuv422p10le")
    frames = [rgb for rgb, _ in sources.VideoSource(str(clip))]
    row = frames[0][RAMP_HEIGHT // 2, :, 1].astype(np.float64)
    assert frames[0].dtype == np.float32 and len(frames) == 3
    assert np.abs(row - RAMP_TRUE).max() < 2 / 876  # ProRes HQ: within 2 codes of the 10-bit ramp
    assert len(np.unique(np.round(row * 1023))) > 2.5 * 220  # far more levels than 8 bits hold
    out = tmp_path / "hdr.mkv"
    code, err = run_cli(capsys, clip, "-o", out, "--baseline", "--quiet", "--preset", "ultrafast")
    assert code == 0 and err == "", err
    converted = video_stream(out)
    assert (int(converted["nb_read_frames"]), converted["width"], converted["height"]) == (3, 2 * RAMP_WIDTH,
                                                                                           2 * RAMP_HEIGHT)


@pytest.mark.parametrize("tags,words", [
    (("-color_trc", "smpte2084", "-color_primaries", "bt709", "-colorspace", "bt709"), ("already HDR", "PQ", "smpte2084")),
    (("-color_trc", "arib-std-b67", "-color_primaries", "bt709", "-colorspace", "bt709"),
     ("already HDR", "HLG", "arib-std-b67")),
    (("-color_trc", "bt709", "-color_primaries", "bt2020", "-colorspace", "bt709"), ("BT.2020", "primaries bt2020")),
    (("-color_trc", "bt709", "-color_primaries", "bt709", "-colorspace", "bt2020nc"), ("BT.2020", "matrix bt2020nc")),
], ids=["pq", "hlg", "bt2020-primaries", "bt2020-matrix"])
def test_hdr_and_bt2020_sources_are_refused_in_one_line(tmp_path, tags, words):
    clip = tmp_path / "tagged.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x36:rate=25", "-frames:v", 2, "-c:v", "ffv1", "-pix_fmt",
           "yuv422p10le", *tags, clip)
    out = tmp_path / "o.yuv"
    assert_one_error_line(sritm("convert", clip, "-o", out, "--baseline"), "convert", "tagged.mkv", *words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tagged.mkv"]


@pytest.mark.parametrize("pix_fmt,bits,full_range", [
    ("yuv444p", 8, False), ("yuv444p", 8, True), ("yuv420p10le", 10, False), ("yuv422p10le", 10, True),
    ("yuv444p12le", 12, False)])
def test_flat_colours_decode_right_at_any_depth_subsampling_and_range(tmp_path, pix_fmt, bits, full_range):
    cs = pytest.importorskip("colour")
    rgb = (0.25, 0.5, 0.75)
    planes, codes = flat_planes(rgb, pix_fmt, bits, full_range)
    rng = "pc" if full_range else "tv"
    clip = encode_planes(tmp_path / "flat.mkv", planes, pix_fmt, 2, 25, rng, "-c:v", "ffv1", *BT709_TAGS,
                         "-color_range", rng)
    frame = next(iter(sources.VideoSource(str(clip))))[0]
    got = frame / 255.0 if frame.dtype == np.uint8 else frame.astype(np.float64)
    oracle = cs.YCbCr_to_RGB(codes, K=cs.WEIGHTS_YCBCR["ITU-R BT.709"], in_bits=bits, in_legal=not full_range,
                             in_int=True)
    tolerance = 0.6 / 255 if bits == 8 else 1e-5  # rgb24's rounding; float32
    np.testing.assert_allclose(got.reshape(-1, 3), np.broadcast_to(oracle, (got.size // 3, 3)), atol=tolerance)
    np.testing.assert_allclose(got[0, 0], rgb, atol=1.5 / 2 ** bits * 4)  # the codes' rounding


@pytest.mark.parametrize("lines,size,pix_fmt,bits,tag,space", [
    (625, (720, 576), "yuv444p", 8, "bt470bg", "ITU-R BT.470 - 625"),
    (525, (720, 480), "yuv422p10le", 10, "smpte170m", "SMPTE C")])
def test_sd_colours_are_converted_to_bt709_primaries(tmp_path, lines, size, pix_fmt, bits, tag, space):
    cs = pytest.importorskip("colour")
    rgb601 = np.array([0.3, 0.7, 0.3])  # green, where the SD primaries differ most
    planes, codes = flat_planes(rgb601, pix_fmt, bits, False, "bt601", size)
    clip = encode_planes(tmp_path / "sd.mkv", planes, pix_fmt, 2, 25, "tv", "-c:v", "ffv1", "-color_primaries", tag,
                         "-color_trc", tag if tag == "smpte170m" else "gamma28", "-colorspace", tag)
    frame = next(iter(sources.VideoSource(str(clip))))[0]
    got = (frame / 255.0 if frame.dtype == np.uint8 else frame.astype(np.float64))[size[1] // 2, size[0] // 2]
    decoded = cs.YCbCr_to_RGB(codes, K=cs.WEIGHTS_YCBCR["ITU-R BT.601"], in_bits=bits, in_legal=True, in_int=True)
    linear = cs.RGB_to_RGB(decoded ** 2.4, cs.RGB_COLOURSPACES[space], cs.RGB_COLOURSPACES["ITU-R BT.709"],
                           chromatic_adaptation_transform=None)
    want = np.clip(linear, 0, 1) ** (1 / 2.4)
    np.testing.assert_allclose(got, want, atol=1.2 / 255 if bits == 8 else 1e-5)
    assert np.abs(want - decoded).max() > 0.03  # the primaries matter here


def test_an_untagged_sd_clip_is_taken_as_bt601_and_said_so(tmp_path, capsys):
    clip = make_clip(tmp_path / "dvd.mkv", 2, "720x576")
    code, err = run_cli(capsys, clip, "-o", tmp_path / "o.yuv", "--baseline")
    assert code == 0, err
    notes = [line for line in err.splitlines() if "note:" in line]
    assert len(notes) == 1 and "dvd.mkv: untagged colour" in notes[0], err
    assert "Y'CbCr matrix BT.601" in notes[0] and "625-line primaries" in notes[0], notes[0]


@pytest.fixture(scope="module")
def interlaced_576i(tmp_path_factory):
    """4 frames of 576i, top field first (a white bar moving 16 pixels a field on grey, woven from
    50 frames/s), H.264 coded interlaced, in Matroska."""
    clip = tmp_path_factory.mktemp("576i") / "576i.mkv"
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=720x576:r=50", "-f", "lavfi", "-i", "color=c=white:s=96x384:r=50",
           "-filter_complex", "[0][1]overlay=x='mod(n*16,600)':y=96,interlace=scan=tff,setfield=tff",
           "-frames:v", 4, "-c:v", "libx264", "-flags", "+ildct+ilme", "-x264-params", "tff=1", "-g", 2,
           "-pix_fmt", "yuv420p", *BT709_TAGS, clip)
    stream = video_stream(clip)
    assert stream["field_order"] in ("tt", "tb") and int(stream["nb_read_frames"]) == 4
    return clip


def test_interlaced_576i_is_deinterlaced_at_the_frame_or_the_field_rate(interlaced_576i, tmp_path, capsys):
    out = tmp_path / "frames.mkv"
    code, err = run_cli(capsys, interlaced_576i, "-o", out, "--baseline", "--preset", "ultrafast")
    assert code == 0, err
    assert "576i.mkv: interlaced (top field first): deinterlaced with bwdif, 25 frames/s" in err, err
    stream = video_stream(out)
    assert (int(stream["nb_read_frames"]), Fraction(stream["r_frame_rate"])) == (4, 25)
    out = tmp_path / "fields.mkv"
    code, err = run_cli(capsys, interlaced_576i, "-o", out, "--baseline", "--preset", "ultrafast", "--quiet",
                        "--deinterlace", "field")
    assert code == 0 and err == "", err
    stream = video_stream(out)
    assert (int(stream["nb_read_frames"]), Fraction(stream["r_frame_rate"])) == (8, 50)
    times = [float(p["pts_time"]) for p in ffprobe(out, "-select_streams", "v:0", "-show_entries",
                                                     "packet=pts_time")["packets"]]
    np.testing.assert_allclose(np.diff(sorted(times)), 0.02, atol=1e-3)


def test_an_anamorphic_576i_archive_comes_out_progressive_with_square_pixels_at_16_9(tmp_path, capsys):
    """720x576 interlaced, SAR 64:45 (16:9), untagged as SD archives often are: deinterlaced, BT.601
    taken and said, resized after the network to 1920x1080 square pixels at --scale 2."""
    clip = tmp_path / "576i_16x9.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=720x576:rate=50", "-vf",
           "interlace=scan=tff,setfield=tff,setsar=64/45", "-frames:v", 4, "-c:v", "libx264",
           "-flags", "+ildct+ilme", "-x264-params", "tff=1", "-pix_fmt", "yuv420p", clip)
    assert video_stream(clip)["field_order"] in ("tt", "tb")
    out = tmp_path / "uhd.mkv"
    code, err = run_cli(capsys, clip, "-o", out, "--baseline", "--preset", "ultrafast")
    assert code == 0, err
    assert "interlaced (top field first): deinterlaced with bwdif" in err and "SAR 64:45, display 16:9" in err, err
    stream = video_stream(out)
    assert (stream["width"], stream["height"], stream["sample_aspect_ratio"]) == (1920, 1080, "1:1")
    assert stream["display_aspect_ratio"] == "16:9" and stream.get("field_order", "progressive") == "progressive"
    assert (int(stream["nb_read_frames"]), Fraction(stream["r_frame_rate"])) == (4, 25)


def test_deinterlacing_removes_the_combing(interlaced_576i):
    woven = [rgb for rgb, _ in sources.VideoSource(str(interlaced_576i), field_order="progressive")]
    shown = [rgb for rgb, _ in sources.VideoSource(str(interlaced_576i))]
    fields = [rgb for rgb, _ in sources.VideoSource(str(interlaced_576i), deinterlace="field")]
    assert len(woven) == len(shown) == 4 and len(fields) == 8
    assert comb(shown) < comb(woven) / 10 and comb(fields) < comb(woven) / 10, (comb(woven), comb(shown), comb(fields))
    forced = [rgb for rgb, _ in sources.VideoSource(str(interlaced_576i), field_order="tff")]
    np.testing.assert_array_equal(forced[3], shown[3])  # the stream's field order is tff


def test_segments_of_a_field_rate_source_cover_it_once(interlaced_576i, tmp_path):
    settings = {"scale": 2, "size": None, "field_order": "auto", "deinterlace": "field"}
    title = plan.plan_title(str(interlaced_576i), str(tmp_path / "o.mkv"), str(tmp_path / "work"), settings, 0.05)
    assert title["frame_rate"] == 50 and len(title["segments"]) > 1
    source = plan.video_source(str(interlaced_576i), settings)
    whole = [pts for _, pts in source]
    parts = [pts for start, end in title["segments"] for _, pts in sources.VideoSegment(source, start, end)]
    assert parts == whole and len(whole) == 8 and title["first"] == whole[0]
