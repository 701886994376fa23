"""Source readers on real files: EXR stills and the beachball sequence, graded HDR10 pairs,
an HDR10 HEVC clip and raw yuv420p10le made from the beachball frames."""
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from sritm_tf import colour
from sritm_tf.data import sources
from sritm_tf.errors import SourceError

from tests.helpers.paths import SHARED_DATA, need_shared

EXR = SHARED_DATA / "exr"
GRADED = SHARED_DATA / "graded"
BEACHBALL = sorted((EXR / "beachball").glob("singlepart.*.exr"))


def psnr(a, b):
    return 10 * np.log10(1.0 / np.mean((np.asarray(a) - np.asarray(b)) ** 2))


# ---------------------------------------------------------------------------
# EXR
# ---------------------------------------------------------------------------
def test_read_exr_still():
    need_shared(EXR / "Bonita.exr")
    rgb = sources.read_exr(str(EXR / "Bonita.exr"))
    assert rgb.shape == (832, 550, 3) and rgb.dtype == np.float32
    assert np.isfinite(rgb).all() and rgb.mean() > 0.05


def test_exr_data_window_inside_display_window():
    need_shared(EXR / "beachball")
    path = str(BEACHBALL[0])
    data = sources.read_exr(path, "data")
    full = sources.read_exr(path, "display")
    # singlepart.0001: data window (654, 245)-(1564, 1120), display window (0, 0)-(2047, 1555).
    assert data.shape == (876, 911, 3) and full.shape == (1556, 2048, 3)
    np.testing.assert_array_equal(full[245:1121, 654:1565], data)
    assert not full[:245].any() and not full[:, :654].any()


def test_exposure_puts_log_average_at_the_bt2408_grey_card():
    need_shared(EXR / "Cannon.exr")
    linear = sources.read_exr(str(EXR / "Cannon.exr"))
    luminance = linear.astype(np.float64) @ [0.2126, 0.7152, 0.0722]
    for white in (203.0, 406.0):
        scaled = luminance * sources.exposure_scale(linear, white)
        geo_mean = np.exp(np.mean(np.log(scaled[scaled > 0])))
        assert geo_mean == pytest.approx(white * 26 / 203, rel=1e-6)
    hdr = sources.scene_linear_to_hdr10(linear, 203.0)
    nits = colour.pq_eotf(hdr) @ colour.HLG_WEIGHTS  # BT.2020 luminance
    assert 10 < np.median(nits) < 100 and hdr.min() >= 0 and hdr.max() <= 1


def test_highlights_clip_at_10000_nits():
    need_shared(EXR / "Desk.exr")
    hdr = sources.scene_linear_to_hdr10(sources.read_exr(str(EXR / "Desk.exr")))
    assert hdr.max() == pytest.approx(1.0) and 0 < np.mean(hdr >= 1 - 1e-12) < 0.05


def test_discover_exr_folder_recursively():
    need_shared(EXR / "beachball")
    found = sources.discover([str(EXR)])
    assert len(found) == 19 and all(s.kind == "exr" for s in found)
    assert sum("beachball" in s.path for s in found) == 8


def test_corrupt_and_missing_files_name_the_file(tmp_path):
    bad = tmp_path / "broken.exr"
    bad.write_bytes(b"not an exr at all")
    with pytest.raises(SourceError, match="broken.exr: cannot read as OpenEXR"):
        sources.read_exr(str(bad))
    png = tmp_path / "broken_hdr.png"
    png.write_bytes(b"\x89PNG garbage")
    with pytest.raises(SourceError, match="broken_hdr.png: cannot read"):
        sources.read_hdr10_image(str(png))
    with pytest.raises(SourceError, match="nothing.exr: no such file"):
        sources.discover([str(tmp_path / "nothing.exr")])


# ---------------------------------------------------------------------------
# Graded pairs and HDR10 stills
# ---------------------------------------------------------------------------
def test_graded_pairs():
    need_shared(GRADED / "cosmos01000_hdr.png")
    found = sources.discover([str(GRADED)])
    assert [s.kind for s in found] == ["pairs", "pairs"]
    assert found[0].sdr_path.endswith("cosmos01000_sdr.png") and found[0].path.endswith("cosmos01000_hdr.png")
    (frame,) = sources.iter_frames(found[0])
    assert frame.hdr_pq.shape == frame.sdr.shape == (858, 2048, 3)  # SDR alpha dropped
    raw = cv2.imread(found[0].sdr_path, cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(frame.sdr * 255, raw[..., 2::-1])
    # The HDR master is 10-bit codes widened to 16 bits, read as v / 65535.
    codes = np.round(frame.hdr_pq * 1023)
    assert np.max(np.abs(frame.hdr_pq - codes / 1023)) < 2e-5


def test_sdr_image_given_as_hdr10_is_rejected():
    need_shared(GRADED / "cosmos01000_sdr.png")
    path = str(GRADED / "cosmos01000_sdr.png")
    with pytest.raises(SourceError, match=r"cosmos01000_sdr.png: HDR10 still must be 16-bit, got uint8"):
        sources.read_hdr10_image(path)
    with pytest.raises(SourceError, match="cosmos01000_sdr.png"):
        list(sources.iter_frames(sources.Source(path, "hdr10")))


def test_pair_size_mismatch(tmp_path):
    need_shared(GRADED / "cosmos01000_hdr.png")
    shutil.copy(GRADED / "cosmos01000_hdr.png", tmp_path / "shot_hdr.png")
    sdr = cv2.imread(str(GRADED / "cosmos01000_sdr.png"), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(tmp_path / "shot_sdr.png"), sdr[:400, :600])
    (pair,) = sources.discover([str(tmp_path)], "pairs")
    with pytest.raises(SourceError, match=r"shot_sdr.png: SDR size 600x400 differs from HDR shot_hdr.png 2048x858"):
        list(sources.iter_frames(pair))


# ---------------------------------------------------------------------------
# Raw YUV and HDR10 video made from the beachball frames
# ---------------------------------------------------------------------------
WIDTH, HEIGHT = 256, 194  # beachball display window 2048x1552 (cropped) / 8


def beachball_pq_frames():
    frames = []
    for path in BEACHBALL:
        linear = sources.read_exr(str(path), "display")[:1552]
        small = linear.reshape(HEIGHT, 8, WIDTH, 8, 3).mean(axis=(1, 3))
        # Fixed exposure for the whole shot (no flicker): the sequence's values are <= 0.5.
        nits = colour.rgb709_to_rgb2020(small * 400.0)
        frames.append(colour.pq_inverse_eotf(np.clip(nits, 0, 10000)))
    return frames


def write_yuv420p10(path, pq_frames):
    """PQ BT.2020 R'G'B' frames -> raw yuv420p10le, BT.2020 NCL, limited range (BT.2100 Table 9)."""
    with open(path, "wb") as f:
        for rgb in pq_frames:
            ycbcr = colour.rgb_to_ycbcr(rgb, "bt2020")
            y = colour.quantize(ycbcr[..., 0], 10, full_range=False)
            chroma = [colour.chroma_444_to_420(ycbcr[..., i]) for i in (1, 2)]
            uv = [np.clip(np.floor(c * 896 + 512 + 0.5), 64, 960).astype("<u2") for c in chroma]
            for plane in (y.astype("<u2"), *uv):
                f.write(plane.tobytes())


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    if len(BEACHBALL) != 8:
        pytest.skip(f"beachball frames not found in {EXR / 'beachball'}")
    if not shutil.which("ffmpeg"):
        pytest.skip("ffmpeg not installed")
    folder = tmp_path_factory.mktemp("clips")
    frames = beachball_pq_frames()
    yuv = str(folder / "beachball.yuv")
    write_yuv420p10(yuv, frames)

    def encode(name, trc, pix_fmt="yuv420p10le", extra=()):
        out = str(folder / name)
        cmd = [
            "ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "yuv420p10le",
            "-s", f"{WIDTH}x{HEIGHT}", "-r", "24", "-i", yuv, "-c:v", "libx265", "-preset", "ultrafast",
            "-x265-params", "lossless=1:log-level=error", "-pix_fmt", pix_fmt, "-color_range", "tv",
            "-color_trc", trc, "-color_primaries", "bt2020", "-colorspace", "bt2020nc", *extra, out,
        ]
        subprocess.run(cmd, check=True)
        return out

    return {
        "frames": frames,
        "yuv": yuv,
        "pq": encode("beachball_pq.mp4", "smpte2084"),
        "hlg": encode("beachball_hlg.mkv", "arib-std-b67"),
        "sdr8": encode("beachball_8bit.mp4", "smpte2084", "yuv420p"),
    }


def test_raw_yuv_matches_the_source_frames(clips):
    frames = list(sources.iter_yuv(clips["yuv"], (WIDTH, HEIGHT), stride=1))
    assert [f.index for f in frames] == list(range(8))
    for frame, original in zip(frames, clips["frames"]):
        assert frame.hdr_pq.shape == (HEIGHT, WIDTH, 3)
        assert psnr(frame.hdr_pq, original) > 38  # 10-bit quantisation and 4:2:0 chroma only
    strided = list(sources.iter_yuv(clips["yuv"], (WIDTH, HEIGHT), stride=3))
    assert [f.index for f in strided] == [0, 3, 6]


def test_raw_yuv_wrong_size_is_rejected(clips):
    with pytest.raises(SourceError, match=r"beachball.yuv: size \d+ bytes is not a multiple of one 250x194"):
        list(sources.iter_yuv(clips["yuv"], (250, 194)))
    with pytest.raises(SourceError, match="needs --input-size"):
        list(sources.iter_yuv(clips["yuv"], None))


def test_hevc_pq_video_decodes_like_the_raw_yuv(clips):
    video = list(sources.iter_frames(sources.Source(clips["pq"], "video"), stride=3))
    assert [f.index for f in video] == [0, 3, 6]
    raw = list(sources.iter_yuv(clips["yuv"], (WIDTH, HEIGHT), stride=3))
    for v, r in zip(video, raw):
        np.testing.assert_array_equal(v.hdr_pq, r.hdr_pq)  # lossless HEVC Main10
    assert sources.discover([clips["pq"]])[0].kind == "video"


def test_hlg_and_8bit_videos_are_rejected(clips):
    with pytest.raises(SourceError, match=r"beachball_hlg.mkv: transfer is HLG"):
        list(sources.iter_video(clips["hlg"]))
    with pytest.raises(SourceError, match=r"beachball_8bit.mp4: 8-bit video, expected 10-bit"):
        list(sources.iter_video(clips["sdr8"]))


def test_prepare_from_hdr10_video_and_raw_yuv(clips, tmp_path):
    from sritm_tf.cli import main
    from sritm_tf.data import prepare

    config = prepare.PrepareConfig(patch=64, crops=2, stride=3)
    summary = prepare.prepare([clips["pq"]], str(tmp_path / "video"), config, progress=False)
    assert summary["written"] == 1 and summary["patches"] == 6
    rows = prepare.read_manifest(str(tmp_path / "video"))
    assert [r["frame"] for r in rows] == [0, 0, 3, 3, 6, 6] and rows[0]["operator"] == "bt2446a"
    args = ["prepare", clips["yuv"], "-o", str(tmp_path / "yuv"), "--input-size", f"{WIDTH}x{HEIGHT}",
            "--patch-size", "32", "--crops", "2", "--stride", "3", "--quiet"]
    assert main(args) == 0
    yuv_rows = prepare.read_manifest(str(tmp_path / "yuv"))
    # Every 3rd frame of the raw file, two patches each.
    assert [r["frame"] for r in yuv_rows] == [0, 0, 3, 3, 6, 6]


# ---------------------------------------------------------------------------
# Radiance RGBE, equirectangular maps, HLG stills, gain-map JPEGs (shared/data/hdri)
# ---------------------------------------------------------------------------
HDRI = SHARED_DATA / "hdri"
POLYHAVEN = HDRI / "polyhaven" / "adams_place_bridge_1k.hdr"
HLG_ROOM = HDRI / "hlg" / "hdr_room.png"
SEINE = HDRI / "gainmap" / "seine_sdr_gainmap_srgb.jpg"


def test_read_radiance_polyhaven():
    need_shared(POLYHAVEN)
    rgb = sources.read_radiance(str(POLYHAVEN))
    assert rgb.shape == (512, 1024, 3) and rgb.dtype == np.float64
    assert np.isfinite(rgb).all() and rgb.min() >= 0 and rgb.max() > 1  # scene-linear HDR
    # OpenCV reads BGR: the reader returns RGB.
    bgr = cv2.imread(str(POLYHAVEN), cv2.IMREAD_ANYDEPTH | cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(rgb, bgr[..., ::-1])


def test_middle_band_keeps_the_central_rows():
    image = np.arange(8)[:, None, None] * np.ones((8, 16, 3))  # row index as value
    assert sources.middle_band(image).shape == (4, 16, 3)
    np.testing.assert_array_equal(sources.middle_band(image)[:, 0, 0], [2, 3, 4, 5])
    np.testing.assert_array_equal(sources.middle_band(image, 0.25)[:, 0, 0], [3, 4])
    assert sources.middle_band(image, 1.0).shape == image.shape
    with pytest.raises(ValueError, match="fraction"):
        sources.middle_band(image, 0)


def test_radiance_sources_equirectangular_and_flat():
    need_shared(POLYHAVEN)
    crop = HDRI / "astc_crops" / "arboretum.hdr"
    found = sources.discover([str(POLYHAVEN), str(crop)])
    assert [s.kind for s in found] == ["radiance", "radiance"]
    frames = {Path(s.path).name: next(sources.iter_frames(s)) for s in found}
    # 1024x512 equirectangular map: the middle half of the rows; the flat crop is kept whole.
    assert frames[POLYHAVEN.name].hdr_pq.shape == (256, 1024, 3)
    assert frames["arboretum.hdr"].hdr_pq.shape == (768, 768, 3)
    band = sources.middle_band(sources.read_radiance(str(POLYHAVEN)))
    np.testing.assert_allclose(frames[POLYHAVEN.name].hdr_pq, sources.scene_linear_to_hdr10(band))
    assert all(f.sdr is None and 0 <= f.hdr_pq.min() and f.hdr_pq.max() <= 1 for f in frames.values())


def test_equirectangular_exr_keeps_the_middle_band():
    path = HDRI / "blender_world" / "blender_city.exr"
    need_shared(path)
    (frame,) = sources.iter_frames(sources.discover([str(path)])[0])
    assert frame.hdr_pq.shape == (256, 1024, 3)


def test_corrupt_radiance_names_the_file(tmp_path):
    need_shared(POLYHAVEN)
    bad = tmp_path / "cut.hdr"
    bad.write_bytes(POLYHAVEN.read_bytes()[:5000])
    with pytest.raises(SourceError, match="cut.hdr: cannot read as Radiance RGBE"):
        sources.read_radiance(str(bad))
    (source,) = sources.discover([str(bad)])
    with pytest.raises(SourceError, match="cut.hdr: cannot read as Radiance RGBE"):
        list(sources.iter_frames(source))


def test_hlg_still_to_pq():
    need_shared(HLG_ROOM)
    pq = sources.read_hlg_image(str(HLG_ROOM))
    raw = cv2.imread(str(HLG_ROOM), cv2.IMREAD_UNCHANGED)[..., ::-1] / 65535.0
    assert pq.shape == (449, 676, 3) and 0 <= pq.min() and pq.max() <= 1
    # Round trip: PQ -> display light -> HLG inverse EOTF (1000 cd/m2 display) = the HLG signal.
    np.testing.assert_allclose(colour.hlg_inverse_eotf(colour.pq_eotf(pq), 1000.0), raw, atol=1e-9)
    assert colour.pq_eotf(pq).max() == pytest.approx(1000.0, rel=1e-6)  # HLG 1.0 at L_W
    # A 16-bit PNG is "hdr10" unless "hlg" is asked for.
    assert sources.discover([str(HLG_ROOM)])[0].kind == "hdr10"
    (source,) = sources.discover([str(HLG_ROOM)], "hlg")
    assert source.kind == "hlg"
    np.testing.assert_array_equal(next(sources.iter_frames(source)).hdr_pq, pq)


def test_gainmap_jpeg_source(tmp_path):
    need_shared(SEINE)
    from sritm_tf.data import gainmap

    (source,) = sources.discover([str(SEINE)])
    assert source.kind == "gainmap"
    (frame,) = sources.iter_frames(source, white_nits=150.0)
    sdr709, hdr_pq = gainmap.gainmap_pair(str(SEINE), 150.0)
    np.testing.assert_array_equal(frame.sdr, sdr709)
    np.testing.assert_array_equal(frame.hdr_pq, hdr_pq)
    assert frame.sdr.shape == frame.hdr_pq.shape == (300, 400, 3)
    # The gain-map folder: 4 gain-map JPEGs (the AVIF is not a source); a plain JPEG in a folder
    # is skipped, a plain JPEG named on its own is an error.
    assert [s.kind for s in sources.discover([str(SEINE.parent)])] == ["gainmap"] * 4
    cv2.imwrite(str(tmp_path / "plain.jpg"), np.full((16, 16, 3), 128, np.uint8))
    assert sources.discover([str(tmp_path)]) == []
    with pytest.raises(SourceError, match="plain.jpg: has no gain map"):
        sources.discover([str(tmp_path / "plain.jpg")])
