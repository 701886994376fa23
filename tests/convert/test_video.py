"""Video conversion end to end: SDR clips made with ffmpeg -> HDR10 .mp4 / .mkv / .yuv,
read back with ffprobe (HDR10 signalling, light levels, frame rate, audio) and PyAV (pixels)."""
import json
import math
import os
import shutil
import subprocess
from fractions import Fraction

import keras
import numpy as np
import pytest

from sritm_tf import cli, colour, convert
from sritm_tf.imageio import InputError
from sritm_tf.model import build_deep_sritm
from sritm_tf.video import hdr10, sources

from tests.helpers.media import ffmpeg, make_clip, packet_times
from tests.helpers.processes import sritm

pytestmark = pytest.mark.skipif(
    shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
    reason="ffmpeg/ffprobe not installed (apt-get install ffmpeg x265)")

WIDTH, HEIGHT, FRAMES = 64, 48, 3


def make_sdr_clip(path, rate="25", audio=True, frames=FRAMES):
    """`frames` frames of testsrc2, H.264 8-bit BT.709, with a sine-tone AAC track."""
    args = ["-f", "lavfi", "-i", f"testsrc2=size={WIDTH}x{HEIGHT}:rate={rate}"]
    if audio:
        args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-c:a", "aac", "-shortest"]
    ffmpeg(*args, "-frames:v", frames, "-c:v", "libx264", "-pix_fmt", "yuv420p",
           "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", path)
    return path


def probe_json(path, *extra):
    out = subprocess.run(["ffprobe", "-v", "error", "-of", "json", *extra, str(path)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def decoded_yuv_planes(path):
    """The video frames of `path` as (Y, Cb, Cr) 10-bit planes, via PyAV."""
    import av

    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            planes = frame.reformat(format="yuv420p10le").to_ndarray().astype(np.int64)
            h = frame.height
            y = planes[:h]
            chroma = planes[h:].reshape(2, h // 2, frame.width // 2)
            frames.append((y, chroma[0], chroma[1]))
    return frames


@pytest.fixture(scope="module")
def tiny_model():
    keras.utils.set_random_seed(5)
    return build_deep_sritm(scale=2, channels=8, m=1, n=1)


@pytest.fixture(scope="module")
def sdr_clip(tmp_path_factory):
    return make_sdr_clip(tmp_path_factory.mktemp("clip") / "sdr.mp4")


@pytest.fixture(scope="module")
def expected_frames(sdr_clip, tiny_model):
    """What the converter makes of each decoded source frame: PQ BT.2020 R'G'B'."""
    frame_converter = convert.FrameConverter(weights=tiny_model, tile=20)
    return [frame_converter(rgb) for rgb, _ in sources.VideoSource(str(sdr_clip))]


def test_mp4_has_hdr10_signalling_and_light_levels(sdr_clip, tiny_model, expected_frames, tmp_path):
    out = tmp_path / "hdr.mp4"
    result = convert.convert_video(sdr_clip, out, weights=tiny_model, tile=20, progress=False,
                                   preset="ultrafast")
    assert result["frames"] == FRAMES and (result["width"], result["height"]) == (2 * WIDTH, 2 * HEIGHT)

    streams = probe_json(out, "-show_streams")["streams"]
    v = next(s for s in streams if s["codec_type"] == "video")
    assert v["codec_name"] == "hevc" and v["profile"] == "Main 10" and v["pix_fmt"] == "yuv420p10le"
    assert (v["color_primaries"], v["color_transfer"], v["color_space"], v["color_range"]) == (
        "bt2020", "smpte2084", "bt2020nc", "tv")
    assert (v["width"], v["height"]) == (2 * WIDTH, 2 * HEIGHT)
    assert v["codec_tag_string"] == "hvc1"
    assert Fraction(v["avg_frame_rate"]) == 25 and int(v["nb_frames"]) == FRAMES
    audio = [s for s in streams if s["codec_type"] == "audio"]
    assert [a["codec_name"] for a in audio] == ["aac"]  # carried over from the source

    # HDR10 static metadata, as a player reads it from the first frame.
    frame = probe_json(out, "-select_streams", "v:0", "-show_frames", "-read_intervals", "%+#1")["frames"][0]
    side = {d["side_data_type"]: d for d in frame["side_data_list"]}
    mastering = side["Mastering display metadata"]
    for key, value in [("red_x", 0.708), ("red_y", 0.292), ("green_x", 0.170), ("green_y", 0.797),
                       ("blue_x", 0.131), ("blue_y", 0.046), ("white_point_x", 0.3127),
                       ("white_point_y", 0.3290)]:
        assert float(Fraction(mastering[key])) == pytest.approx(value, abs=2e-5), key
    assert float(Fraction(mastering["min_luminance"])) == pytest.approx(0.0001)

    # MaxCLL / MaxFALL (CTA-861.3) recomputed from the converted frames; the mastering
    # peak is the smallest of 1000 / 4000 / 10000 cd/m2 that holds MaxCLL.
    nits = [colour.pq_eotf(frame.max(axis=-1).astype(np.float64)) for frame in expected_frames]
    max_cll = math.ceil(max(n.max() for n in nits) - 1e-6)
    max_fall = math.ceil(max(n.mean() for n in nits) - 1e-6)
    peak = 1000 if max_cll <= 1000 else 4000 if max_cll <= 4000 else 10000
    assert float(Fraction(mastering["max_luminance"])) == peak >= max_cll
    assert (result["max_cll"], result["max_fall"]) == (max_cll, max_fall)
    light = side["Content light level metadata"]
    assert (int(light["max_content"]), int(light["max_average"])) == (max_cll, max_fall)
    assert max_cll > 0

    # The pixels: the HEVC stream decodes close to the converter's frames.
    decoded = decoded_yuv_planes(out)
    assert len(decoded) == FRAMES
    for planes, pq in zip(decoded, expected_frames):
        reference = hdr10.pq_rgb_to_yuv420p10(pq)
        for got, want in zip(planes, reference):
            mse = np.mean((got - want.astype(np.int64)) ** 2)
            assert 10 * np.log10(1023**2 / max(mse, 1e-9)) > 38
    assert sorted(os.listdir(tmp_path)) == ["hdr.mp4"]


def test_yuv_output_is_exact_limited_range_yuv420p10(sdr_clip, tiny_model, expected_frames, tmp_path):
    out = tmp_path / "hdr.yuv"
    convert.convert_video(sdr_clip, out, weights=tiny_model, tile=20, progress=False)
    w, h = 2 * WIDTH, 2 * HEIGHT
    data = np.fromfile(out, "<u2")
    assert data.size == FRAMES * (w * h * 3 // 2)
    for i, pq in enumerate(expected_frames):
        frame = data[i * w * h * 3 // 2:(i + 1) * w * h * 3 // 2]
        y, cb, cr = hdr10.pq_rgb_to_yuv420p10(pq)
        np.testing.assert_array_equal(frame[:w * h].reshape(h, w), y)
        np.testing.assert_array_equal(frame[w * h:w * h * 5 // 4].reshape(h // 2, w // 2), cb)
        np.testing.assert_array_equal(frame[w * h * 5 // 4:].reshape(h // 2, w // 2), cr)
    assert 64 <= data.min() and data.max() <= 960  # limited range


def test_mkv_keeps_ntsc_frame_rate_and_timestamps(tmp_path):
    src = make_sdr_clip(tmp_path / "ntsc.mkv", rate="30000/1001", audio=False)
    out = tmp_path / "hdr.mkv"
    convert.convert_video(src, out, baseline=True, progress=False, preset="ultrafast")
    v = probe_json(out, "-show_streams")["streams"][0]
    assert Fraction(v["r_frame_rate"]) == Fraction(30000, 1001)
    assert (v["color_transfer"], v["color_primaries"]) == ("smpte2084", "bt2020")
    times = [float(f["pts_time"]) for f in probe_json(out, "-show_frames", "-show_entries", "frame=pts_time")["frames"]]
    assert np.allclose(np.diff(times), 1001 / 30000, atol=2e-3) and len(times) == FRAMES


def test_raw_yuv_input_baseline_matches_rgb_path(tmp_path):
    rng = np.random.default_rng(0)
    w, h = 20, 14
    frames = rng.integers(16, 236, (2, w * h * 3 // 2), dtype=np.uint8)
    (tmp_path / "in.yuv").write_bytes(frames.tobytes())
    out = tmp_path / "out.yuv"
    result = convert.convert_video(tmp_path / "in.yuv", out, baseline=True, input_size=f"{w}x{h}",
                                   progress=False)
    assert result["frames"] == 2
    data = np.fromfile(out, "<u2").reshape(2, -1)
    rgb = sources.yuv420_to_rgb(frames[1], w, h)
    pq = colour.sdr_to_hdr10_baseline(convert.bicubic_upscale(rgb, 2), 203.0)
    np.testing.assert_array_equal(data[1][:4 * w * h].reshape(2 * h, 2 * w), hdr10.pq_rgb_to_yuv420p10(pq)[0])


def run_cli(capsys, *argv):
    code = cli.main(["convert", *map(str, argv), "--quiet"])
    return code, capsys.readouterr().err


def assert_one_error_line(code, err, *words):
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    for word in words:
        assert word in lines[0], lines[0]


def test_hdr_video_input_is_refused(tmp_path, capsys):
    hdr = tmp_path / "pq.mkv"
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={WIDTH}x{HEIGHT}:rate=25", "-frames:v", 2,
           "-c:v", "libx265", "-pix_fmt", "yuv420p10le", "-x265-params", "log-level=error",
           "-color_primaries", "bt2020", "-color_trc", "smpte2084", "-colorspace", "bt2020nc", hdr)
    out = tmp_path / "o.mp4"
    assert_one_error_line(*run_cli(capsys, hdr, "-o", out, "--baseline"), "pq.mkv", "already HDR")
    with pytest.raises(InputError, match="PQ"):
        convert.convert_video(hdr, out, baseline=True, progress=False)
    assert not out.exists()


def test_video_errors_are_one_line_and_leave_nothing(sdr_clip, tmp_path, capsys):
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    assert_one_error_line(*run_cli(capsys, tmp_path / "broken.mp4", "-o", tmp_path / "o.mkv", "--baseline"),
                          "broken.mp4")
    (tmp_path / "short.yuv").write_bytes(b"\x80" * 1000)
    assert_one_error_line(*run_cli(capsys, tmp_path / "short.yuv", "-o", tmp_path / "o.yuv", "--baseline",
                                   "--input-size", "20x14"), "short.yuv", "--input-size")
    assert_one_error_line(*run_cli(capsys, tmp_path / "short.yuv", "-o", tmp_path / "o.yuv", "--baseline"),
                          "short.yuv", "--input-size")
    assert_one_error_line(*run_cli(capsys, sdr_clip, "-o", tmp_path / "o.png", "--baseline"), "o.png")
    existing = tmp_path / "keep.mp4"
    existing.write_bytes(b"mine")
    assert_one_error_line(*run_cli(capsys, sdr_clip, "-o", existing, "--baseline"), "keep.mp4", "--overwrite")
    assert existing.read_bytes() == b"mine"
    assert sorted(os.listdir(tmp_path)) == ["broken.mp4", "keep.mp4", "short.yuv"]


def test_mastering_peak_holds_max_cll():
    assert [hdr10.mastering_peak(v) for v in (0, 203, 1000, 1001, 4000, 4001, 10000)] == [
        1000, 1000, 1000, 4000, 4000, 10000, 10000]
    assert hdr10.master_display(4000).endswith("L(40000000,1)")


def test_failed_encode_leaves_no_partial_output(sdr_clip, tmp_path, monkeypatch):
    close = hdr10.HevcWriter.close

    def fail(self):
        close(self)  # the whole stream is written under its temporary name, then:
        raise hdr10.ToolError("ffmpeg failed (simulated)")

    monkeypatch.setattr(hdr10.HevcWriter, "close", fail)
    with pytest.raises(hdr10.ToolError):
        convert.convert_video(sdr_clip, tmp_path / "o.mp4", baseline=True, progress=False)
    assert os.listdir(tmp_path) == []


def test_hdr10_sei_nals_carry_emulation_prevention():
    """The SEI NAL units that `write_light_levels` looks for and writes (x265's, byte for byte)."""
    mastering, light = hdr10.hdr10_sei_nals(1000, 1000, 400)
    assert light == bytes.fromhex("4e01 90 04 03e8 0190 80")
    assert mastering == bytes.fromhex("4e01 89 18 2134 9baa 1996 08fc 8a48 3908 3d13 4042 00989680 0000 03 0001 80")
    assert hdr10.hdr10_sei_nals(1000, 0, 0)[1] == bytes.fromhex("4e01 90 04 0000 03 0000 80")  # 00 00 00 -> 00 00 03 00
    assert hdr10.hdr10_sei_nals(1000, 512, 2)[1] == bytes.fromhex("4e01 90 04 0200 00 03 02 80")
    assert len(hdr10.hdr10_sei_nals(4000, 1, 1)[0]) == len(mastering) + 1  # 40000000 = 02 62 5a 00


def test_streamed_encode_holds_no_uncompressed_frames_on_disk(tmp_path, monkeypatch):
    """While a 30-frame clip converts, the output folder never holds more than the hidden output
    itself: no intermediate (the old .nut held 30 raw frames, 30 x 36 KiB here). The folder is
    polled every 2 ms, and sampled once more when x265 has finished the hidden output and it is
    not yet renamed, so the polls cannot all miss it on a busy machine."""
    import threading
    import time

    src = tmp_path / "src"
    src.mkdir()
    clip = make_sdr_clip(src / "sdr.mp4", frames=30)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    peak, names, done = [0], set(), threading.Event()

    def sample():
        with os.scandir(out_dir) as entries:
            sizes = {}
            for entry in entries:
                try:
                    sizes[entry.name] = entry.stat().st_size
                except FileNotFoundError:  # renamed meanwhile
                    pass
        names.update(sizes)
        peak[0] = max(peak[0], sum(sizes.values()))

    def poll():
        while not done.is_set():
            sample()
            time.sleep(0.002)

    close = hdr10.HevcWriter.close

    def close_and_sample(writer):
        close(writer)
        sample()

    monkeypatch.setattr(hdr10.HevcWriter, "close", close_and_sample)
    poller = threading.Thread(target=poll)
    poller.start()
    try:
        result = convert.convert_video(clip, out_dir / "o.mkv", baseline=True, progress=False, preset="ultrafast")
    finally:
        done.set()
        poller.join()
    raw_frame = sources.yuv420_frame_bytes(2 * WIDTH, 2 * HEIGHT, 2)
    final = (out_dir / "o.mkv").stat().st_size
    assert result["frames"] == 30 and final < 8 * raw_frame  # compressed: the old intermediate was 30 raw frames
    assert 0 < peak[0] <= final
    assert names <= {"o.mkv", f".part-{os.getpid()}-o.mkv"}, names


def test_light_levels_that_need_an_emulation_prevention_byte_are_remuxed(tmp_path):
    """An all-black clip: MaxCLL = MaxFALL = 0, whose SEI is one byte longer than the placeholder's,
    so the stream is re-muxed: the values are read back, with the frames, timestamps, tag and audio."""
    src = tmp_path / "black.mp4"
    ffmpeg("-f", "lavfi", "-i", f"color=black:size={WIDTH}x{HEIGHT}:rate=30000/1001",
           "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-c:a", "aac", "-shortest",
           "-frames:v", FRAMES, "-c:v", "libx264", "-pix_fmt", "yuvj420p", src)  # full range: Y' 0 is black
    out = tmp_path / "hdr.mp4"
    result = convert.convert_video(src, out, baseline=True, progress=False, preset="ultrafast")
    assert (result["max_cll"], result["max_fall"]) == (0, 0)
    frame = probe_json(out, "-select_streams", "v:0", "-show_frames", "-read_intervals", "%+#1")["frames"][0]
    side = {d["side_data_type"]: d for d in frame["side_data_list"]}
    light = side["Content light level metadata"]
    assert (int(light["max_content"]), int(light["max_average"])) == (0, 0)
    assert float(Fraction(side["Mastering display metadata"]["max_luminance"])) == 1000
    streams = probe_json(out, "-show_streams")["streams"]
    v = next(s for s in streams if s["codec_type"] == "video")
    assert v["codec_tag_string"] == "hvc1" and int(v["nb_frames"]) == FRAMES
    assert Fraction(v["r_frame_rate"]) == Fraction(30000, 1001)
    assert [s["codec_name"] for s in streams if s["codec_type"] == "audio"] == ["aac"]
    times = [float(f["pts_time"]) for f in probe_json(out, "-select_streams", "v:0", "-show_frames",
                                                      "-show_entries", "frame=pts_time")["frames"]]
    assert np.allclose(np.diff(times), 1001 / 30000, atol=1e-3)
    assert sorted(os.listdir(tmp_path)) == ["black.mp4", "hdr.mp4"]


@pytest.mark.parametrize("peak", [1000.0, 600.0, 4000.0])
def test_peak_cap_gives_max_cll_of_the_peak_not_one_more(peak):
    """Saturated highlights decode to at most `peak_nits`: MaxCLL is the peak (a float32 cap rounded up
    would give 1001 at 1000 cd/m2, and a 4000 cd/m2 mastering display)."""
    pq = convert.FrameConverter(baseline=True, white_nits=10000.0, peak_nits=peak)(np.full((4, 6, 3), 255, np.uint8))
    levels = hdr10.LightLevels()
    levels.update(pq)
    assert pq.dtype == np.float32 and levels.max_cll == peak and levels.peak > peak - 0.01
    assert hdr10.mastering_peak(levels.max_cll) == (1000 if peak <= 1000 else 4000)


# ---------------------------------------------------------------------------
# --transfer hlg: BT.2100 HLG output
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hlg_frames(sdr_clip, tiny_model, expected_frames):
    """The converter's PQ frames transcoded to HLG for a 1000 cd/m2 display."""
    return [colour.pq_to_hlg(pq).astype(np.float32) for pq in expected_frames]


@pytest.mark.parametrize("name", ["hlg.mkv", "hlg.mp4"])
def test_hlg_hevc_is_signalled_and_has_no_hdr10_metadata(sdr_clip, tiny_model, hlg_frames, tmp_path, name):
    out = tmp_path / name
    result = convert.convert_video(sdr_clip, out, weights=tiny_model, tile=20, progress=False, preset="ultrafast",
                                   transfer="hlg")
    assert result == {"frames": FRAMES, "width": 2 * WIDTH, "height": 2 * HEIGHT}  # no MaxCLL / MaxFALL
    streams = probe_json(out, "-show_streams")["streams"]
    v = next(s for s in streams if s["codec_type"] == "video")
    assert (v["codec_name"], v["profile"], v["pix_fmt"]) == ("hevc", "Main 10", "yuv420p10le")
    assert (v["color_transfer"], v["color_primaries"], v["color_space"], v["color_range"]) == (
        "arib-std-b67", "bt2020", "bt2020nc", "tv")
    assert [s["codec_name"] for s in streams if s["codec_type"] == "audio"] == ["aac"]
    frame = probe_json(out, "-select_streams", "v:0", "-show_frames", "-read_intervals", "%+#1")["frames"][0]
    assert frame["color_transfer"] == "arib-std-b67"  # in the HEVC VUI too, not only the container
    sides = {d["side_data_type"] for d in frame.get("side_data_list", [])}
    assert not sides & {"Mastering display metadata", "Content light level metadata"}, sides
    for planes, hlg in zip(decoded_yuv_planes(out), hlg_frames):
        for got, want in zip(planes, hdr10.pq_rgb_to_yuv420p10(hlg)):
            mse = np.mean((got - want.astype(np.int64)) ** 2)
            assert 10 * np.log10(1023**2 / max(mse, 1e-9)) > 38
    assert os.listdir(tmp_path) == [name]


def test_hlg_yuv_is_exact(sdr_clip, tiny_model, hlg_frames, tmp_path):
    out = tmp_path / "hlg.yuv"
    convert.convert_video(sdr_clip, out, weights=tiny_model, tile=20, progress=False, transfer="hlg")
    want = np.concatenate([np.concatenate([p.ravel() for p in hdr10.pq_rgb_to_yuv420p10(f)]) for f in hlg_frames])
    np.testing.assert_array_equal(np.fromfile(out, "<u2"), want)
    assert want.max() > 700  # HLG: the highlights near the top of the code range, 1000 cd/m2 = code 940


def test_hlg_png_has_cicp_and_hlg_codes(tmp_path, capsys):
    """16-bit PNG, HLG codes, and a cICP chunk (BT.2020, HLG, RGB, full range) that libavcodec reads back
    (the ffprobe 5.1 of the build machine predates cICP; PyAV's libavcodec reads it)."""
    import av

    from sritm_tf import imageio

    sdr = np.random.default_rng(3).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    imageio.write_image(tmp_path / "sdr.png", sdr)
    code = cli.main(["convert", str(tmp_path / "sdr.png"), "-o", str(tmp_path / "hlg.png"), "--baseline",
                     "--transfer", "hlg", "--quiet"])
    assert code == 0, capsys.readouterr().err
    png = (tmp_path / "hlg.png").read_bytes()
    assert imageio.png_cicp(png) == (9, 18, 0, 1)
    pq = convert.FrameConverter(baseline=True)(sdr)
    want = imageio.hdr_codes16(colour.pq_to_hlg(pq).astype(np.float32))
    np.testing.assert_array_equal(imageio.read_image(tmp_path / "hlg.png"), want)
    with av.open(str(tmp_path / "hlg.png")) as container:
        frame = next(container.decode(video=0))
    assert (frame.color_primaries, frame.color_trc, frame.colorspace, frame.format.name) == (9, 18, 0, "rgb48be")
    # PQ output says PQ (16) the same way.
    convert.convert_image(tmp_path / "sdr.png", tmp_path / "pq.png", baseline=True)
    assert imageio.png_cicp((tmp_path / "pq.png").read_bytes()) == (9, 16, 0, 1)


@pytest.mark.slow
@pytest.mark.parametrize("container", ["mp4", "mkv"])
def test_variable_frame_rate_keeps_source_timestamps(tmp_path, container):
    source = make_clip(tmp_path / "cfr.mp4", 60)
    vfr = tmp_path / f"vfr.{container}"  # gaps of 3 frames, then runs of single ones
    ffmpeg("-i", source, "-an", "-vf", r"select='not(mod(n\,3))+eq(n\,10)+eq(n\,11)+between(n\,40\,50)'",
           "-fps_mode", "vfr", "-c:v", "libx264", vfr)
    output = tmp_path / f"o.{container}"
    result = sritm("convert", vfr, "-o", output, "--baseline", "--quiet")
    assert result.returncode == 0, result.stderr
    want, _ = packet_times(vfr)
    got, tick = packet_times(output)
    assert len(want) == 30 and len(got) == len(want)
    assert max(abs(g - w) for g, w in zip(got, want)) <= tick, (got, want)
    assert sorted(os.listdir(tmp_path)) == sorted(["cfr.mp4", vfr.name, output.name])


@pytest.mark.slow
def test_decimal_fps_converts(tmp_path):
    raw = tmp_path / "in.yuv"
    raw.write_bytes(bytes(16 * 8 * 3 // 2 * 2))
    result = sritm("convert", raw, "-o", tmp_path / "o.yuv", "--input-size", "16x8", "--fps", "29.97", "--baseline",
                   "--quiet")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "o.yuv").stat().st_size == 2 * 32 * 16 * 3 // 2 * 2 and len(os.listdir(tmp_path)) == 2
