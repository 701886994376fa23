"""`training/train_synthetic.py`: its worker processes make batches on one core each."""
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from sritm_tf.data import augment

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import ctypes, glob, multiprocessing, os, sys
import train_synthetic as t  # training/ is on PYTHONPATH
import numpy

def probe(_):
    # OpenCV's threads, and the threads of numpy's own OpenBLAS as it was loaded
    import cv2
    libs = glob.glob(os.path.dirname(numpy.__file__) + ".libs/libscipy_openblas*.so")
    blas = ctypes.CDLL(libs[0]).scipy_openblas_get_num_threads64_() if libs else "no bundled OpenBLAS"
    return cv2.getNumThreads(), blas

pool = multiprocessing.get_context("fork").Pool(2, t._worker_init, (sys.argv[1],))
print(pool.map(probe, range(2)))
x, w, y = pool.apply(t._make_batch, (([0, 1], 3, 16, 2, None),))
print(x.shape, w.shape, y.shape, float(x.min()) >= 0.0, bool(100 <= w.min() and w.max() <= 500))
pool.terminate()
"""


def test_workers_run_single_threaded_and_make_batches(tmp_path):
    """A BLAS or OpenCV pool of every core in each worker oversubscribed the 16-core GPU
    machine (training ran 6-8x slower); the script pins each worker to one thread."""
    rng = np.random.default_rng(0)
    index = []
    for name in ("a", "b"):
        scene = np.exp(rng.normal(-1.5, 1.2, (64, 80, 3))).astype(np.float32)
        cv2.imwrite(str(tmp_path / f"{name}.png"), augment.encode_scene(scene)[..., ::-1])
        index.append({"name": name, "source": name, "size": [64, 80]})
    (tmp_path / "index.json").write_text(json.dumps(index))
    env = {"PATH": "/usr/bin:/bin", "KERAS_BACKEND": "numpy", "PYTHONPATH": f"{ROOT}:{ROOT / 'training'}"}  # no thread settings given
    out = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)],
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    threads, batch = out.stdout.strip().splitlines()[-2:]
    if "no bundled OpenBLAS" in threads:
        pytest.skip("this numpy has no bundled OpenBLAS to ask")
    assert threads == "[(1, 1), (1, 1)]"
    assert batch == "(3, 16, 16, 3) (3, 1) (3, 32, 32, 3) True True"


def test_a_bad_scenes_folder_is_one_line_before_any_worker_starts(tmp_path):
    """A worker that fails to start is restarted by the pool for ever: the script checks the
    folders first and stops with one line, exit 2, and no output folder."""
    (tmp_path / "index.json").write_text(json.dumps([{"name": "gone", "source": "gone", "size": [8, 8]}]))
    out = subprocess.run([sys.executable, str(ROOT / "training" / "train_synthetic.py"), "--scenes", str(tmp_path),
                          "--val-scenes", str(tmp_path), "--out", str(tmp_path / "run")],
                         capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == (
        f"train_synthetic.py: error: {tmp_path}: gone.png is listed in index.json but missing")
    assert not (tmp_path / "run").exists()
