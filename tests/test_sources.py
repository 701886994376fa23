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
from sritm_tf.data.sources import SourceError

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
EXR = DATA / "exr"
GRADED = DATA / "graded"
BEACHBALL = sorted((EXR / "beachball").glob("singlepart.*.exr"))


def need(path):
    if not Path(path).exists():
        pytest.skip(f"shared data not found: {path} (expected ../shared/data next to the repo)")


def psnr(a, b):
    return 10 * np.log10(1.0 / np.mean((np.asarray(a) - np.asarray(b)) ** 2))


# ---------------------------------------------------------------------------
# EXR
# ---------------------------------------------------------------------------
def test_read_exr_still():
    need(EXR / "Bonita.exr")
    rgb = sources.read_exr(str(EXR / "Bonita.exr"))
    assert rgb.shape == (832, 550, 3) and rgb.dtype == np.float32
    assert np.isfinite(rgb).all() and rgb.mean() > 0.05


def test_exr_data_window_inside_display_window():
    need(EXR / "beachball")
    path = str(BEACHBALL[0])
    data = sources.read_exr(path, "data")
    full = sources.read_exr(path, "display")
    # singlepart.0001: data window (654, 245)-(1564, 1120), display window (0, 0)-(2047, 1555).
    assert data.shape == (876, 911, 3) and full.shape == (1556, 2048, 3)
    np.testing.assert_array_equal(full[245:1121, 654:1565], data)
    assert not full[:245].any() and not full[:, :654].any()


def test_exposure_puts_log_average_at_the_bt2408_grey_card():
    need(EXR / "Cannon.exr")
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
    need(EXR / "Desk.exr")
    hdr = sources.scene_linear_to_hdr10(sources.read_exr(str(EXR / "Desk.exr")))
    assert hdr.max() == pytest.approx(1.0) and 0 < np.mean(hdr >= 1 - 1e-12) < 0.05


def test_discover_exr_folder_recursively():
    need(EXR / "beachball")
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
    need(GRADED / "cosmos01000_hdr.png")
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
    need(GRADED / "cosmos01000_sdr.png")
    path = str(GRADED / "cosmos01000_sdr.png")
    with pytest.raises(SourceError, match=r"cosmos01000_sdr.png: HDR10 still must be 16-bit, got uint8"):
        sources.read_hdr10_image(path)
    with pytest.raises(SourceError, match="cosmos01000_sdr.png"):
        list(sources.iter_frames(sources.Source(path, "hdr10")))


def test_pair_size_mismatch(tmp_path):
    need(GRADED / "cosmos01000_hdr.png")
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
    with pytest.raises(SourceError, match="needs --size"):
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
    args = ["prepare", clips["yuv"], "-o", str(tmp_path / "yuv"), "--size", f"{WIDTH}x{HEIGHT}",
            "--patch", "64", "--crops", "2", "--stride", "3", "--quiet"]
    assert main(args) == 0
    yuv_rows = prepare.read_manifest(str(tmp_path / "yuv"))
    # Every 3rd frame of the raw file, two patches each.
    assert [r["frame"] for r in yuv_rows] == [0, 0, 3, 3, 6, 6]
