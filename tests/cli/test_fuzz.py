"""Fuzzing the readers: random byte flips and truncations of real
files. A damaged input either reads completely and consistently or fails with the
project's one error type (SritmError, which the CLI prints as one line naming the
file), within a few seconds: never another exception, never a hang, never a short
video passed off as whole."""
import os
import shutil
import signal
import subprocess

import numpy as np
import pytest

from sritm_tf import imageio, pretrained
from sritm_tf.errors import SritmError
from sritm_tf.video import sources

from tests.helpers.paths import SHARED_DATA, needs_shared

CASES = 120


def damaged(data, rng):
    """A copy of `data` with a few random bytes changed, or cut short, or both."""
    data = bytearray(data)
    kind = rng.integers(3)
    if kind in (0, 2):
        for _ in range(int(rng.integers(1, 24))):
            data[int(rng.integers(len(data)))] = int(rng.integers(256))
    if kind in (1, 2):
        data = data[: int(rng.integers(0, len(data)))]
    return bytes(data)


class Timeout(Exception):
    pass


def bounded(fn, seconds=10):
    def alarm(*_):
        raise Timeout()

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        return fn()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def fuzz(path_in, tmp_path, read, cases, seed):
    rng = np.random.default_rng(seed)
    original = open(path_in, "rb").read()
    ext = os.path.splitext(path_in)[1]
    outcomes = {"read": 0, "refused": 0}
    for i in range(cases):
        path = tmp_path / f"case{i}{ext}"
        path.write_bytes(damaged(original, rng))
        try:
            bounded(lambda: read(str(path)))
            outcomes["read"] += 1
        except SritmError as err:
            assert str(path) in str(err) and "\n" not in str(err), err
            outcomes["refused"] += 1
        except Timeout:
            pytest.fail(f"{path}: the reader hung")
        path.unlink()
    return outcomes


def test_damaged_images_read_or_fail_with_one_line(tmp_path):
    def read(path):
        rgb = imageio.read_sdr_image(path)
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3

    sample = pretrained.sample_path()
    jpeg = tmp_path / "sample.jpg"
    imageio.write_image(str(jpeg), imageio.read_sdr_image(sample))
    png = fuzz(sample, tmp_path, read, CASES, 1)
    jpg = fuzz(str(jpeg), tmp_path, read, CASES, 2)
    assert png["refused"] > 0 and jpg["refused"] > 0  # the damage is real


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_damaged_videos_decode_whole_or_fail_with_one_line(tmp_path):
    clip = tmp_path / "clip.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x36:rate=10:duration=1",
                    "-pix_fmt", "yuv420p", "-c:v", "libx264", "-movflags", "+faststart", str(clip)], check=True)

    def read(path):
        source = sources.VideoSource(path)
        frames = sum(1 for _ in source)
        assert frames > 0 and (source.truncated is None)

    outcomes = fuzz(str(clip), tmp_path, read, CASES, 3)
    assert outcomes["refused"] > 0


@needs_shared("hdri/gainmap")
def test_damaged_gain_map_jpegs_read_or_fail_with_one_line(tmp_path):
    from sritm_tf.data import gainmap

    def read(path):
        sdr, hdr = gainmap.gainmap_pair(path)
        assert sdr.shape == hdr.shape and np.isfinite(hdr).all()

    outcomes = fuzz(str(SHARED_DATA / "hdri" / "gainmap" / "seine_sdr_gainmap_srgb.jpg"), tmp_path, read, 60, 4)
    assert outcomes["refused"] > 0
