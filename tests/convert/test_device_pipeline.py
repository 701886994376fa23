"""The JAX conversion pipeline (`sritm_tf.device_pipeline`) on JAX's CPU device, in fresh
processes with KERAS_BACKEND=jax (this one runs TensorFlow): the same frames as the TensorFlow
path, in order, with batches of any size; `sritm bench convert` and the prepared device script."""
import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

from sritm_tf import convert, pretrained
from sritm_tf.benchmarks.convert import STAGES
from sritm_tf.model import build_deep_sritm

from tests.helpers.media import make_clip
from tests.helpers.paths import REPO
from tests.helpers.processes import python_env, sritm_reporting_tensorflow

pytestmark = pytest.mark.slow
JAX = {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(a 5-frame 64x36 clip, the weights of a tiny x2 network as .npz)."""
    folder = tmp_path_factory.mktemp("device")
    keras.utils.set_random_seed(4)
    weights = pretrained.save_weights_npz(build_deep_sritm(scale=2, channels=8, m=1, n=1),
                                          str(folder / "tiny.npz"), dtype="float32")
    return make_clip(str(folder / "clip.mp4"), 5, "64x36"), weights


def yuv_frames(path, width=128, height=72):
    """The yuv420p10le frames of a raw file, one row of codes each."""
    codes = np.fromfile(path, "<u2")
    return codes.reshape(-1, width * height * 3 // 2).astype(np.int64)


def test_jax_convert_gives_the_tensorflow_frames_without_tensorflow(tiny, tmp_path):
    clip, weights = tiny
    convert.convert_video(clip, tmp_path / "tf.yuv", weights=weights, precision="fp32", progress=False)
    result = sritm_reporting_tensorflow("convert", clip, "-o", tmp_path / "jax.yuv", "--weights", weights,
                                        "--precision", "fp32", "--quiet", env=JAX)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False"  # runs where TensorFlow is not installed
    ours, theirs = yuv_frames(tmp_path / "jax.yuv"), yuv_frames(tmp_path / "tf.yuv")
    assert ours.shape == theirs.shape == (5, 128 * 72 * 3 // 2)
    assert np.abs(ours - theirs).max() <= 1  # 10-bit codes


BATCHES = """
import json, sys
import numpy as np
from sritm_tf import convert, device_pipeline
clip, weights, out = sys.argv[1:]
conv = convert.FrameConverter(2, weights, precision="fp32", engine="tf")
assert device_pipeline.applies(conv)
result = {}
for batch in (2, 8):
    frames, stamps = [], []
    count = device_pipeline.Pipeline(conv, batch).run(
        convert.open_source(clip), lambda s, pts: (frames.append(s), stamps.append(pts)), progress=False)
    np.save(f"{out}/b{batch}.npy", np.stack(frames))
    result[batch] = {"count": count, "pts": stamps, "plan": conv.device_predictor.plans[36, 64]}
print(json.dumps(result))
"""


def test_batches_keep_every_frame_in_order(tiny, tmp_path):
    clip, weights = tiny
    run = subprocess.run([sys.executable, "-c", BATCHES, clip, weights, str(tmp_path)], capture_output=True,
                         text=True, env=python_env(**JAX), timeout=600)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    conv = convert.FrameConverter(2, weights, precision="fp32", engine="tf")
    source = list(convert.open_source(clip))
    expected = np.stack([conv(rgb) for rgb, _ in source])
    for batch in (2, 8):  # 5 frames: a short last batch (2), a batch larger than the clip (8)
        got = result[str(batch)]
        assert got["count"] == 5 and got["plan"][1] == batch
        assert got["pts"] == [pts for _, pts in source]
        frames = np.load(tmp_path / f"b{batch}.npy")
        assert frames.shape == expected.shape == (5, 72, 128, 3)
        assert np.abs(frames - expected).max() < 2e-4


def test_device_script_converts_and_benchmarks_every_stage(tiny, tmp_path):
    clip, weights = tiny
    env = python_env(**JAX, PYTHON=sys.executable, SIZE="64x36", FRAMES="5", PRESETS="ultrafast fast",
                     PRECISION="fp32", WEIGHTS=weights, OUT=str(tmp_path / "out"), BATCH="2")
    run = subprocess.run(["bash", os.path.join(REPO, "sritm_tf", "benchmarks", "device_convert.sh"), "run"],
                         capture_output=True, text=True, env=env, timeout=900)
    assert run.returncode == 0, run.stderr
    assert "-> 5 frames 128 x 72 hevc yuv420p10le" in (tmp_path / "out" / "convert.txt").read_text()
    table = (tmp_path / "out" / "bench_convert.md").read_text()
    assert "batch 2" in table and "64x36 -> 128x72" in table
    rows = dict(re.findall(r"^\| \**([a-z][^|*]*?)\** \| \**([0-9.]+)\** \|", table, re.M))
    wanted = [s for s in STAGES if s != "encode"] + [f"encode, x265 --preset {p}" for p in ("ultrafast", "fast")] \
        + [f"whole, x265 --preset {p}" for p in ("ultrafast", "fast")]
    assert sorted(rows) == sorted(wanted)
    assert all(float(rate) > 0 for rate in rows.values())
    limits = re.findall(r"^x265 --preset (\w+): limit ([a-z ]+) \(", table, re.M)
    assert [p for p, _ in limits] == ["ultrafast", "fast"]
    assert all(stage in STAGES for _, stage in limits)
