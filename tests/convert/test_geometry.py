"""Geometry of the output: a rotated phone clip and an EXIF-oriented JPEG come out upright, an
anamorphic source comes out with square pixels at its display aspect ratio, and --size sets the
output frame size (`sritm_tf.video.geometry`)."""
import json
import shutil
import subprocess
from fractions import Fraction

import av
import numpy as np
import pytest

from sritm_tf import convert, imageio
from sritm_tf.errors import InputError
from sritm_tf.video import geometry

from tests.helpers.media import ffmpeg
from tests.helpers.processes import sritm

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")

RED, GREY = (255, 0, 0), (128, 128, 128)


def marked(height, width):
    """A grey RGB picture with a red block in its top-left quarter."""
    rgb = np.full((height, width, 3), GREY, np.uint8)
    rgb[:height // 3, :width // 4] = RED
    return rgb


def stream_of(path):
    """ffprobe's first video stream of `path`, with its side data."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_streams", "-of", "json",
                          str(path)], capture_output=True, text=True, check=True).stdout
    return json.loads(out)["streams"][0]


def first_frame(path):
    """The first frame of `path` as 8-bit RGB, as PyAV decodes it (no rotation applied)."""
    with av.open(str(path)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def is_red(pixel):
    red, green, blue = (int(v) for v in pixel)
    return red > green + 30 and red > blue + 30  # BT.709 red in BT.2020 PQ: about 136, 83, 56


# Pure pieces
# -----------
@pytest.mark.parametrize("width, height, sar, scale, want", [
    (720, 576, Fraction(64, 45), 4, (3840, 2160)),  # PAL 16:9: the network's 2880x2304
    (720, 576, Fraction(64, 45), 2, (1920, 1080)),
    (720, 576, Fraction(16, 15), 4, (2880, 2160)),  # PAL 4:3
    (720, 480, Fraction(32, 27), 2, (1920, 1080)),  # NTSC 16:9: 1440x960
    (576, 720, Fraction(45, 64), 4, (2160, 3840)),  # PAL 16:9 turned portrait
    (64, 36, Fraction(2), 2, (256, 72)),  # no standard height near 72: the network's kept
])
def test_anamorphic_output_size_is_square_pixels_at_a_standard_height(width, height, sar, scale, want):
    w, h, why = geometry.output_size(width, height, sar, scale)
    assert (w, h) == want
    assert f"{width * scale}x{height * scale}" in why and f"{w}x{h}" in why
    assert f"SAR {sar.numerator}:{sar.denominator}" in why


def test_square_pixels_keep_the_network_size_and_size_overrides():
    assert geometry.output_size(64, 36, 1, 2) == (128, 72, None)
    assert geometry.output_size(64, 36, None, 4) == (256, 144, None)
    assert geometry.output_size(64, 36, 1, 2, "100x56") == (100, 56, None)
    assert geometry.output_size(720, 576, Fraction(64, 45), 4, (1280, 720)) == (1280, 720, None)


def test_check_size_wants_even_sizes_for_video_outputs_only():
    assert geometry.check_size(None, "mp4") is None
    assert geometry.check_size("31x17", "png") == geometry.check_size("31x17", "tiff-sequence") == (31, 17)
    assert geometry.check_size("32x18", "mkv") == (32, 18)
    for fmt in ("mp4", "mkv", "yuv", "mov"):
        with pytest.raises(InputError, match=rf"^--size 31x18: \.{fmt} video has subsampled chroma"):
            geometry.check_size("31x18", fmt)
    with pytest.raises(InputError, match="^--size: expected WxH"):
        geometry.check_size("0x8", "png")
    with pytest.raises(InputError, match="^--size: expected a positive WxH"):
        geometry.check_size((0, 8), "png")


def test_upright_turns_counter_clockwise_by_quarter_turns():
    rgb = marked(6, 8)
    assert geometry.upright(rgb, 0) is rgb
    turned = geometry.upright(rgb, 90)
    assert turned.shape == (8, 6, 3) and is_red(turned[-1, 0]) and not is_red(turned[0, 0])
    assert is_red(geometry.upright(rgb, 180)[-1, -1]) and is_red(geometry.upright(rgb, 270)[0, -1])
    assert turned.flags.c_contiguous
    assert [geometry.quarter_turns(d) for d in (None, 0, 90, -90, 180, -180, 270, 89.6, 450)] == \
        [0, 0, 90, 270, 180, 180, 270, 90, 90]


class FakeVideo:
    """Two frames of 6x8 (rows x columns), as `sources.VideoSource.frames` yields them."""
    path, width, height, frame_rate = "fake.mp4", 8, 6, Fraction(25)

    def frames(self, start=None, end=None):
        return iter([(marked(6, 8), 0), (marked(6, 8), 1)])


def test_upright_source_reports_the_upright_frames():
    turned = geometry.UprightSource(FakeVideo(), 270, Fraction(64, 45))
    assert (turned.width, turned.height, turned.sample_aspect_ratio) == (6, 8, Fraction(45, 64))
    assert turned.frame_rate == 25 and turned.path == "fake.mp4"
    frames = list(turned)
    assert [pts for _, pts in frames] == [0, 1] and frames[0][0].shape == (8, 6, 3) and is_red(frames[0][0][0, -1])
    kept = geometry.UprightSource(FakeVideo(), 180)
    assert (kept.width, kept.height, kept.sample_aspect_ratio) == (8, 6, 1)


def test_resize_averages_when_shrinking_and_stays_in_the_frame_range_when_growing():
    rng = np.random.default_rng(0)
    frame = rng.uniform(0.2, 0.6, (8, 8, 3)).astype(np.float32)
    assert geometry.resize(frame, (8, 8)) is frame
    half = geometry.resize(frame, (4, 4))
    np.testing.assert_allclose(half, frame.reshape(4, 2, 4, 2, 3).mean(axis=(1, 3)), atol=1e-6)
    step = np.zeros((8, 8, 3), np.float32)
    step[:, 4:] = 0.75  # a cubic overshoots on both sides of the edge
    grown = geometry.resize(step, (20, 12))
    assert grown.shape == (12, 20, 3) and grown.dtype == np.float32
    assert grown.min() == 0.0 and grown.max() == np.float32(0.75)
    mixed = geometry.resize(np.full((6, 4, 3), 0.5, np.float32), (10, 3))  # grows one way, shrinks the other
    np.testing.assert_allclose(mixed, 0.5, atol=1e-6)


def test_resized_converter_keeps_the_transfer():
    resized = geometry.Resized(convert.FrameConverter(baseline=True, transfer="hlg"), (10, 6))
    assert resized.transfer == "hlg" and resized(marked(8, 8)).shape == (6, 10, 3)


# Still images: EXIF orientation
# ------------------------------
def write_oriented_jpeg(path, upright, orientation=6):
    """A JPEG whose stored picture shows as `upright` once its EXIF `orientation` is applied
    (6: turn 90 degrees clockwise to show, a phone held upright)."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation  # TIFF/EXIF Orientation
    stored = np.ascontiguousarray(np.rot90(upright, 1))  # counter-clockwise, undone by orientation 6
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    return path


def test_exif_orientation_is_applied_to_a_jpeg(tmp_path):
    jpeg = write_oriented_jpeg(tmp_path / "phone.jpg", marked(24, 32))
    assert imageio.read_image(jpeg).shape == (32, 24, 3)  # as stored
    rgb = imageio.read_sdr_image(jpeg)
    assert rgb.shape == (24, 32, 3) and is_red(rgb[2, 2]) and not is_red(rgb[-3, -3])
    signal = convert.convert_image(jpeg, tmp_path / "out.png", baseline=True)
    written = imageio.read_hdr_png(tmp_path / "out.png")
    assert written.shape == signal.shape == (48, 64, 3)
    assert is_red(written[4, 4] * 255) and not is_red(written[-5, -5] * 255)


def test_image_size_is_honoured(tmp_path):
    imageio.write_image(tmp_path / "in.png", marked(24, 32))
    convert.convert_image(tmp_path / "in.png", tmp_path / "out.png", baseline=True, size="31x17")
    assert imageio.read_hdr_png(tmp_path / "out.png").shape == (17, 31, 3)  # odd is fine in a PNG


# Videos
# ------
@pytest.fixture(scope="module")
def rotated_clip(tmp_path_factory):
    """A 64x36 H.264 clip (a red top-left block on grey) whose display matrix turns it 90 degrees
    counter-clockwise, as a phone held upright writes it; and ffmpeg's own upright first frame."""
    folder = tmp_path_factory.mktemp("rotated")
    imageio.write_image(folder / "marker.png", marked(36, 64))
    ffmpeg("-loop", 1, "-i", folder / "marker.png", "-frames:v", 3, "-r", 25, "-c:v", "libx264",
           "-pix_fmt", "yuv420p", folder / "plain.mp4")
    ffmpeg("-i", folder / "plain.mp4", "-c", "copy", "-metadata:s:v", "rotate=90", folder / "phone.mp4")
    ffmpeg("-i", folder / "phone.mp4", "-frames:v", 1, folder / "autorotated.png")  # ffmpeg's autorotate
    return folder / "phone.mp4", imageio.read_image(folder / "autorotated.png")


@pytest.mark.slow
@needs_ffmpeg
def test_rotated_clip_comes_out_upright(rotated_clip, tmp_path):
    clip, reference = rotated_clip
    assert stream_of(clip)["side_data_list"][0]["rotation"] == 90
    assert reference.shape == (64, 36, 3) and is_red(reference[-4, 4]) and not is_red(reference[4, 4])
    result = sritm("convert", clip, "-o", tmp_path / "out.mkv", "--baseline")
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if "display rotation" in line]
    assert notes == [f"sritm convert: note: {clip}: display rotation 90 degrees (display matrix): frames turned "
                     "upright, 64x36 -> 36x64"]
    stream = stream_of(tmp_path / "out.mkv")
    assert (stream["width"], stream["height"]) == (72, 128) and "side_data_list" not in stream
    assert stream["sample_aspect_ratio"] == "1:1"
    frame = first_frame(tmp_path / "out.mkv")
    assert is_red(frame[120, 6]) and not is_red(frame[6, 6]) and not is_red(frame[120, 66])  # as ffmpeg shows it


@needs_ffmpeg
def test_rotated_clip_with_size(rotated_clip, tmp_path):
    clip, _ = rotated_clip
    result = convert.convert_video(clip, tmp_path / "out.yuv", baseline=True, size="128x72", progress=False)
    assert (result["width"], result["height"], result["frames"]) == (128, 72, 3)
    assert (tmp_path / "out.yuv").stat().st_size == 3 * 128 * 72 * 3 // 2 * 2  # yuv420p10le
    with pytest.raises(InputError, match=r"^--size 127x72: \.mkv video has subsampled chroma"):
        convert.convert_video(clip, tmp_path / "odd.mkv", baseline=True, size="127x72", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.yuv"]


def make_anamorphic(path, sar):
    """One 720x576 frame of testsrc, H.264, with sample aspect ratio `sar` ("64/45": 16:9)."""
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=720x576:rate=25", "-frames:v", 1, "-vf", f"setsar={sar}",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", path)
    return path


@pytest.mark.slow
@needs_ffmpeg
def test_anamorphic_clip_comes_out_with_square_pixels(tmp_path):
    clip = make_anamorphic(tmp_path / "pal.mp4", "64/45")
    result = sritm("convert", clip, "-o", tmp_path / "out.mp4", "--baseline", "--preset", "ultrafast")
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if ": anamorphic " in line]
    assert notes == [f"sritm convert: note: {clip}: anamorphic 720x576 (SAR 64:45, display 16:9): the network's "
                     "1440x1152 resized to 1920x1080, square pixels"]
    stream = stream_of(tmp_path / "out.mp4")
    assert (stream["width"], stream["height"]) == (1920, 1080)
    assert (stream["sample_aspect_ratio"], stream["display_aspect_ratio"]) == ("1:1", "16:9")


@pytest.mark.slow
@needs_ffmpeg
def test_anamorphic_clip_at_scale_4(tmp_path):
    clip = make_anamorphic(tmp_path / "pal.mkv", "64/45")
    result = convert.convert_video(clip, tmp_path / "out.mkv", scale=4, baseline=True, preset="ultrafast",
                                   progress=False)
    assert (result["width"], result["height"]) == (3840, 2160)
    stream = stream_of(tmp_path / "out.mkv")
    assert (stream["width"], stream["height"]) == (3840, 2160)
    assert (stream["sample_aspect_ratio"], stream["display_aspect_ratio"]) == ("1:1", "16:9")


@needs_ffmpeg
def test_convert_batch_honours_rotation_and_size(rotated_clip, tmp_path):
    pipeline = pytest.importorskip("sritm_tf.batch.pipeline", reason="Apache Beam not installed")
    clip, _ = rotated_clip
    jpeg = write_oriented_jpeg(tmp_path / "phone.jpg", marked(24, 32))
    report = pipeline.convert_batch([clip, jpeg], tmp_path / "out", workers=1, baseline=True, preset="ultrafast")
    assert report["failed"] == [] and len(report["done"]) == 2
    stream = stream_of(tmp_path / "out" / "phone.mkv")
    assert (stream["width"], stream["height"], stream["sample_aspect_ratio"]) == (72, 128, "1:1")
    assert is_red(first_frame(tmp_path / "out" / "phone.mkv")[120, 6])
    written = imageio.read_hdr_png(tmp_path / "out" / "phone.png")
    assert written.shape == (48, 64, 3) and is_red(written[4, 4] * 255)
    report = pipeline.convert_batch([clip], tmp_path / "sized", workers=1, baseline=True, preset="ultrafast",
                                    size="64x36")
    stream = stream_of(tmp_path / "sized" / "phone.mkv")
    assert report["failed"] == [] and (stream["width"], stream["height"]) == (64, 36)
