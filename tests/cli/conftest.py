"""Inputs shared by the fault tests of the command line: tiny stills, clips, pairs and weights."""
import numpy as np
import pytest

from tests.helpers.media import ffmpeg, make_clip


@pytest.fixture
def folders(tmp_path):
    """(out, tmp): an empty output folder and an empty TMPDIR for the subprocess."""
    out, tmp = tmp_path / "out", tmp_path / "tmp"
    out.mkdir()
    tmp.mkdir()
    return out, tmp


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A folder of tiny valid inputs: 32x24 stills in every image format, 5-frame 64x48 clips in every
    container, a raw yuv420p file of 3 frames."""
    import cv2
    import OpenEXR

    folder = tmp_path_factory.mktemp("inputs")
    rgb = np.random.default_rng(0).integers(0, 256, (24, 32, 3), np.uint8)
    for ext in ("png", "jpg", "tif", "bmp", "webp"):
        cv2.imwrite(str(folder / f"img.{ext}"), rgb)
    cv2.imwrite(str(folder / "img16.png"), rgb.astype(np.uint16) * 257)
    cv2.imwrite(str(folder / "img.hdr"), rgb.astype(np.float32) / 255)
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, {"RGB": rgb.astype(np.float16) / 255}) as exr:
        exr.write(str(folder / "img.exr"))
    source = ["-f", "lavfi", "-i", "testsrc=size=64x48:rate=10", "-frames:v", 5]
    for ext, codec in (("mp4", "libx264"), ("mkv", "libx264"), ("mov", "libx264"), ("webm", "libvpx-vp9"),
                       ("avi", "mpeg4")):
        ffmpeg(*source, "-c:v", codec, "-pix_fmt", "yuv420p", folder / f"clip.{ext}")
    ffmpeg(*source[:-1], 3, "-pix_fmt", "yuv420p", "-f", "rawvideo", folder / "clip.yuv")  # half: 1.5 frames
    return folder


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4")


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("long") / "long.mp4", 3000)  # killed long before its end
