"""sritm_tf.temporal and `sritm eval --video` on synthetic frames whose warped error is known:
translations of a texture, a global step, grain, a moving object, a hard cut."""
import itertools
import json

import cv2
import numpy as np
import pytest

from sritm_tf import temporal
from sritm_tf.cli import main

from tests.helpers.clips import BICUBIC, CAMERA
from tests.helpers.media import ffmpeg, make_clip
from tests.helpers.processes import assert_one_error_line, sritm_reporting_tensorflow

K = 12.0  # codes


def texture(height, width, seed):
    """Smooth random colour texture, R'G'B' float32 in [0.1, 0.9]."""
    noise = np.random.default_rng(seed).uniform(0, 1, (height, width, 3)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 2.0) * 4 - 1.5, 0, 1) * 0.8 + 0.1


def pan(frames=4, step=3, seed=0):
    """`frames` 144x256 windows of a texture, each `step` px further right than the last."""
    big = texture(200, 300, seed)
    return [big[20:164, 20 + i * step:276 + i * step] for i in range(frames)]


def identity(frame):
    return np.asarray(frame, np.float32)


def flicker():
    """A converter that adds K codes to every other frame."""
    steps = itertools.cycle([0.0, K / 1023])
    return lambda frame: identity(frame) + np.float32(next(steps))


def test_a_translation_scores_near_zero_and_a_global_step_scores_its_size():
    a, b = pan(2)
    motion = temporal.Motion(a, b)
    assert not motion.cut and motion.consistent > 0.95
    assert np.median(motion.flow[..., 0]) == pytest.approx(3.0, abs=0.05)
    assert np.median(motion.flow[..., 1]) == pytest.approx(0.0, abs=0.05)
    for sigma in temporal.SIGMAS:
        assert temporal.warped_error(a, b, motion, sigma) < 1.0
        assert temporal.warped_error(a, b + np.float32(K / 1023), motion, sigma) == pytest.approx(K, abs=1.0)
    # Content enters on the right: its last columns have no match in the frame before.
    assert not motion.mask[:, -2:].any() and motion.mask[:, :-8].mean() > 0.95
    result = temporal.measure(pan(5), {"identity": identity, "flicker": flicker()}, scale=1)
    assert (result["pairs"], result["cuts"], result["frames"]) == (4, 0, 5)
    for sigma in temporal.SIGMAS:
        assert result["errors"]["identity"][sigma] < 1.0
        assert result["errors"]["flicker"][sigma] == pytest.approx(K, abs=1.0)


def test_uint8_and_float_frames_measure_alike():
    codes = [np.rint(f * 255).astype(np.uint8) for f in pan(3)]
    floats = [c / np.float32(255) for c in codes]
    np.testing.assert_array_equal(temporal.luma8(codes[0]), temporal.luma8(floats[0]))
    step = {"flicker": lambda f: identity(f / 255 if f.dtype == np.uint8 else f) + np.float32(K / 1023)}
    assert temporal.measure(codes, step, 1) == temporal.measure(floats, step, 1)


def test_flow_is_scaled_to_the_output_size():
    a, b = pan(2, step=2)
    upscale = lambda f: cv2.resize(identity(f), None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR)  # noqa: E731
    motion = temporal.Motion(a, b, scale=2)
    assert motion.flow.shape == (288, 512, 2) and motion.mask.shape == (288, 512)
    assert np.median(motion.flow[..., 0]) == pytest.approx(4.0, abs=0.1)
    assert temporal.warped_error(upscale(a), upscale(b), motion) < 1.0


def test_the_low_pass_removes_grain_but_keeps_a_flicker():
    rng = np.random.default_rng(1)

    def grain(frame):  # independent noise of 20 codes in every frame
        return identity(frame) + rng.normal(0, 20 / 1023, frame.shape).astype(np.float32)

    result = temporal.measure(pan(4), {"grain": grain, "flicker": flicker()}, scale=1)
    grain_errors, flicker_errors = result["errors"]["grain"], result["errors"]["flicker"]
    # |N(0, s) - N(0, s)| has mean 2 s / sqrt(pi): 22.6 codes at full resolution.
    assert grain_errors[0.0] == pytest.approx(40 / np.sqrt(np.pi), rel=0.05)
    assert grain_errors[1.5] < grain_errors[0.0] / 4 and grain_errors[4.0] < grain_errors[1.5]
    assert flicker_errors[1.5] == pytest.approx(K, abs=1.0) and flicker_errors[4.0] == pytest.approx(K, abs=1.0)


def test_occluded_and_uncovered_pixels_are_masked():
    background, square = texture(72, 128, 1), texture(24, 24, 2) * 0.5

    def scene(x):
        frame = background.copy()
        frame[24:48, x:x + 24] = square
        return frame

    a, b = scene(40), scene(46)  # the square moves 6 px right over a still background
    motion = temporal.Motion(a, b)
    uncovered = np.zeros(motion.mask.shape, bool)
    uncovered[24:48, 40:46] = True  # background in b, the square in a
    far = np.ones_like(uncovered)
    far[16:56, 28:84] = False
    assert not motion.cut
    assert motion.mask[uncovered].mean() < 0.2 and motion.mask[far].mean() > 0.9
    masked = temporal.warped_error(a, b, motion)
    motion.mask[:] = True
    assert masked < 1.0 and temporal.warped_error(a, b, motion) > 5 * masked


def test_a_hard_cut_is_detected_and_left_out():
    first, second = pan(3, seed=3), pan(3, seed=4)  # unrelated pictures of the same statistics
    motion = temporal.Motion(first[-1], second[0])
    assert motion.cut and motion.consistent < temporal.CUT_CONSISTENT
    dark = [np.float32(0.4) * f for f in second]  # another picture, and another histogram too
    assert temporal.Motion(first[-1], dark[0]).histogram > temporal.CUT_HISTOGRAM
    result = temporal.measure(first + second + dark, {"identity": identity}, scale=1)
    assert (result["pairs"], result["cuts"]) == (6, 2)
    assert result["errors"]["identity"][0.0] < 1.0


def test_table_rows_and_ratio():
    result = {"errors": {"network": {0.0: 3.0, 1.5: 1.1}, "baseline": {0.0: 2.0, 1.5: 1.0}},
              "pairs": 5, "cuts": 1, "frames": 7}
    lines = temporal.format_table(result).splitlines()
    assert lines[1].split()[1:] == ["3.000", "1.100"] and lines[2].split()[1:] == ["2.000", "1.000"]
    assert lines[3].split()[-2:] == ["1.500", "1.100"] and lines[3].startswith("ratio network/baseline")
    assert lines[4] == "pairs used: 5, scene cuts skipped: 1 (7 frames)"


@pytest.mark.parametrize("sampling, responses", [(BICUBIC, (0.53, 0.21, 0.04)), (CAMERA, (0.37, 0.23, 0.14))])
def test_pan_samplings_respond_as_their_comment_says(sampling, responses, tmp_path):
    """A sine grating through the pan's 2:1 downscale: its amplitude after, over before, at 0.96
    x the new Nyquist frequency and at 1.25 and 1.5 x (folded back below it)."""
    for cycles, expected in zip((0.24, 0.3125, 0.375), responses):  # per source pixel
        row = 0.5 + 0.4 * np.cos(2 * np.pi * cycles * np.arange(960))
        cv2.imwrite(str(tmp_path / "sine.png"), np.tile(np.rint(row * 65535).astype(np.uint16), (540, 1)))
        ffmpeg("-i", tmp_path / "sine.png", "-vf", f"{sampling},format=gray16le", tmp_path / "out.png")
        out = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)[135, 40:-40] / 65535.0
        folded = 2 * min(cycles, 0.5 - cycles)  # per output pixel
        amplitude = 2 * abs(np.mean((out - out.mean()) * np.exp(-2j * np.pi * folded * np.arange(out.size))))
        assert amplitude / 0.4 == pytest.approx(expected, abs=0.015), cycles


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clip") / "tiny.mp4", 6, "64x36")


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    import keras

    from sritm_tf import pretrained
    from sritm_tf.model import build_deep_sritm

    keras.utils.set_random_seed(4)
    model = build_deep_sritm(scale=2, channels=8, m=1, n=1)
    return pretrained.save_weights_npz(model, str(tmp_path_factory.mktemp("w") / "tiny.npz"), dtype="float32")


def test_cli_prints_the_network_the_baseline_and_their_ratio(clip, tiny_weights, tmp_path, capsys):
    from sritm_tf.convert import FrameConverter

    out = tmp_path / "t.json"
    assert main(["eval", "--video", str(clip), "--weights", tiny_weights, "--precision", "fp32",
                 "--json", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines[1:4]] == ["network", "baseline", "ratio"]
    assert lines[-1] == "pairs used: 5, scene cuts skipped: 0 (6 frames)"
    result = json.loads(out.read_text())
    network, baseline = result["errors"]["network"], result["errors"]["baseline"]
    ratios = [float(v) for v in lines[3].split()[-3:]]
    assert ratios == [round(network[s] / baseline[s], 3) for s in ("0.0", "1.5", "4.0")]
    # The same figures as the library's, on the same decoded frames.
    converters = {"network": FrameConverter(2, tiny_weights), "baseline": FrameConverter(2, baseline=True)}
    expected = temporal.measure_clip(clip, converters, 2, progress=False)["errors"]
    for name in converters:
        assert [result["errors"][name][str(s)] for s in temporal.SIGMAS] == pytest.approx(
            [expected[name][s] for s in temporal.SIGMAS], rel=1e-5)
    assert 0 < baseline["1.5"] < baseline["0.0"]

    assert main(["eval", "--video", str(clip), "--baseline-only", "--frames", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines[1:-1]] == ["baseline"]
    assert lines[-1] == "pairs used: 2, scene cuts skipped: 0 (3 frames)"


@pytest.mark.slow
def test_bad_clips_are_one_line_before_tensorflow(clip, tmp_path):
    image = tmp_path / "still.png"
    cv2.imwrite(str(image), np.zeros((36, 64, 3), np.uint8))
    (tmp_path / "text.mp4").write_text("not a video")
    raw = tmp_path / "raw.yuv"
    raw.write_bytes(bytes(64 * 36 * 3 // 2))
    for args, names in (((tmp_path / "missing.mp4",), ("missing.mp4", "no such file")),
                        ((tmp_path / "text.mp4",), ("text.mp4", "not a readable video")),
                        ((image,), ("still.png", "not a video clip")),
                        ((raw,), ("raw.yuv", "no frame size")),
                        ((clip, "--frames", "1"), ("--frames", "at least 2")),
                        ((clip, "--white-nits", "auto"), ("--white-nits auto", "--video")),
                        ((clip, "--crop", "32x32"), ("--crop", "--video"))):
        result = sritm_reporting_tensorflow("eval", "--video", *args)
        assert_one_error_line(result, "eval", *names)
        assert result.stdout.strip().splitlines()[-1] == "False", args
    result = sritm_reporting_tensorflow("eval")
    assert_one_error_line(result, "eval", "PAIRS_DIR", "--video")
    result = sritm_reporting_tensorflow("eval", tmp_path, "--video", clip)
    assert_one_error_line(result, "eval", "not both")
