"""`sritm train --synthetic`: worker processes that make batches on one core each, the
up-front checks and option refusals, and a tiny run end to end."""
import json
import math
import subprocess
import sys

import cv2
import numpy as np
import pytest

from sritm_tf import cli
from sritm_tf.data import augment

from tests.helpers.paths import REPO
from tests.helpers.processes import python_env

CHILD = """
import ctypes, glob, os, sys
import numpy  # loaded before the pool: the workers must still get one thread
from sritm_tf.data import scenes

def probe(_):
    # OpenCV's threads, and the threads of numpy's own OpenBLAS as it was loaded
    import cv2
    libs = glob.glob(os.path.dirname(numpy.__file__) + ".libs/libscipy_openblas*.so")
    blas = ctypes.CDLL(libs[0]).scipy_openblas_get_num_threads64_() if libs else "no bundled OpenBLAS"
    return cv2.getNumThreads(), blas

if __name__ == "__main__":
    pool = scenes.worker_pool(2, sys.argv[1])
    print(pool.map(probe, range(2)))
    x, w, y = pool.apply(scenes.make_batch, (([0, 1], 3, 16, 2, None),))
    print(x.shape, w.shape, y.shape, float(x.min()) >= 0.0, bool(100 <= w.min() and w.max() <= 500))
    pool.terminate()
"""


def write_scenes(folder, names=("a", "b")):
    """A scene folder as training/pack_scenes.py writes it: index.json and 16-bit PNGs."""
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    index = []
    for name in names:
        scene = np.exp(rng.normal(-1.5, 1.2, (64, 80, 3))).astype(np.float32)
        cv2.imwrite(str(folder / f"{name}.png"), augment.encode_scene(scene)[..., ::-1])
        index.append({"name": name, "source": name, "size": [64, 80]})
    (folder / "index.json").write_text(json.dumps(index))
    return folder


def train_cli(capsys, *argv):
    code = cli.main(["train", *map(str, argv)])
    return code, capsys.readouterr().err


def test_workers_run_single_threaded_and_make_batches(tmp_path):
    """A BLAS or OpenCV pool of every core in each worker oversubscribed the 16-core GPU
    machine (training ran 6-8x slower); the pool pins each worker to one thread."""
    scenes = write_scenes(tmp_path / "scenes")
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {"PATH": "/usr/bin:/bin", "KERAS_BACKEND": "numpy", "PYTHONPATH": str(REPO)}  # no thread settings given
    out = subprocess.run([sys.executable, str(script), str(scenes)], capture_output=True, text=True, timeout=300,
                         env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    threads, batch = out.stdout.strip().splitlines()[-2:]
    if "no bundled OpenBLAS" in threads:
        pytest.skip("this numpy has no bundled OpenBLAS to ask")
    assert threads == "[(1, 1), (1, 1)]"
    assert batch == "(3, 16, 16, 3) (3, 1) (3, 32, 32, 3) True True"


def test_a_bad_scenes_folder_is_one_line_before_any_worker_starts(tmp_path, capsys):
    """A worker that fails to start is restarted by the pool for ever: the folders are
    checked first, and the run stops with one line, exit 2, and no output folder."""
    (tmp_path / "index.json").write_text(json.dumps([{"name": "gone", "source": "gone", "size": [8, 8]}]))
    code, err = train_cli(capsys, "--synthetic", tmp_path, "--val-scenes", tmp_path, "-o", tmp_path / "run")
    assert code == 2
    assert err.strip().splitlines() == [
        f"sritm train: error: {tmp_path}: gone.png is listed in index.json but missing"]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv, line", [
    (["DATA"], "DATA: not used with --synthetic"),
    (["--steps", "3"], "--steps: not used with --synthetic"),
    (["--recipe", "paper"], "--recipe: not used with --synthetic"),
    (["--pairs", "p"], "--pairs: not used with --synthetic"),
    (["--overwrite"], "--overwrite: not used with --synthetic"),
    (["--init", "w.keras"], "w.keras: --init of --synthetic takes .npz weights"),
    (["--teacher", "t.h5"], "t.h5: --teacher of --synthetic takes .npz weights"),
    (["--teacher", "missing.npz"], "missing.npz: no such file"),
    (["--teacher-share", "1.5"], "--teacher-share: expected a share from 0 to 1, got 1.5"),
    (["--teacher-reuse", "0"], "--teacher-reuse: expected a whole number of at least 1, got 0"),
    (["--init", "missing.npz"], "missing.npz: no such file"),
    (["--graphics-prob", "1.5"], "--graphics-prob: expected a share from 0 to 1, got 1.5"),
    (["--minutes", "0"], "--minutes: expected a positive number, got 0.0"),
    (["--workers", "0"], "--workers: expected a whole number of at least 1, got 0"),
])
def test_options_of_the_other_trainer_are_refused(tmp_path, capsys, argv, line):
    scenes = write_scenes(tmp_path / "scenes")
    code, err = train_cli(capsys, "--synthetic", scenes, "--val-scenes", scenes, "-o", tmp_path / "run", *argv)
    assert code == 2 and err.strip().splitlines() == [f"sritm train: error: {line}"]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv, line", [
    (["data", "--minutes", "3"], "--minutes: only used with --synthetic"),
    (["data", "--val-scenes", "v"], "--val-scenes: only used with --synthetic"),
    (["--synthetic", "s", "-o", "run"], "--synthetic: needs --val-scenes"),
    (["--synthetic", "s", "--val-scenes", "v"], "--synthetic: needs -o (the output folder)"),
])
def test_synthetic_options_are_refused_without_it(tmp_path, capsys, argv, line):
    code, err = train_cli(capsys, *argv)
    assert code == 2 and err.strip().splitlines() == [f"sritm train: error: {line}"]


@pytest.mark.slow  # a fresh process: TensorFlow's start and three traced functions
def test_a_tiny_synthetic_run_writes_the_curve_and_the_weights(tmp_path):
    """One epoch of two steps on a tiny network, started from --init: curve.tsv has a row
    of finite losses, and the weights load as the classical-skip network they trained."""
    from sritm_tf import pretrained
    from sritm_tf.model import CHROMA_GATE, SHADOW_GATE, build_deep_sritm

    scenes = write_scenes(tmp_path / "scenes")
    val = write_scenes(tmp_path / "val", names=("c",))
    init = pretrained.save_weights_npz(build_deep_sritm(2, 8, 1, 1, skip="classical", white_input=True),
                                       str(tmp_path / "init.npz"), dtype="float32")
    run = tmp_path / "run"
    env = python_env()
    out = subprocess.run([sys.executable, "-m", "sritm_tf.cli", "train", "--synthetic", str(scenes),
                          "--val-scenes", str(val), "-o", str(run), "--scale", "2", "--init", init,
                          "--minutes", "0.05", "--epoch-steps", "2", "--batch-size", "2", "--patch-size", "16",
                          "--workers", "1", "--channels", "8", "--m", "1", "--n", "1", "--precision", "fp32"],
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"wrote {run}" in out.stdout
    header, *rows = (run / "curve.tsv").read_text().strip().splitlines()
    assert header.split("\t") == ["epoch", "steps", "seconds", "lr", "train_mse", "val_mse", "classical_val_mse"]
    assert len(rows) == 1
    values = dict(zip(header.split("\t"), rows[0].split("\t")))
    assert values["epoch"] == "1" and values["steps"] == "2"
    assert all(math.isfinite(float(values[k])) and float(values[k]) > 0
               for k in ("train_mse", "val_mse", "classical_val_mse"))
    model = pretrained.load_weights_npz(str(run / "deep_sritm_x2.npz"))
    config = pretrained.model_config(model)
    assert (config["scale"], config["skip"], config["channels"], config["m"], config["n"]) == (2, "classical", 8, 1, 1)
    assert config["chroma_gate"] == pytest.approx(CHROMA_GATE) and config["shadow_gate"] == pytest.approx(SHADOW_GATE)
    out = np.asarray(model(np.full((1, 8, 8, 3), 0.5, "float32")))
    assert out.shape == (1, 16, 16, 3) and np.isfinite(out).all()


def test_distillation_blends_the_target_with_the_teachers_output(tmp_path):
    """share 0 keeps the pairs' HDR, share 1 is the teacher's prediction, 0.5 their mean."""
    from sritm_tf import pretrained
    from sritm_tf.model import build_deep_sritm
    from sritm_tf.train.synthetic import dihedral, distilled

    teacher = build_deep_sritm(2, 8, 1, 1, skip="classical", white_input=True)
    rng = np.random.default_rng(0)
    for layer in teacher.layers:  # a teacher whose output is not the classical conversion's
        layer.set_weights([rng.normal(0, 0.05, w.shape).astype("float32") for w in layer.get_weights()])
    path = pretrained.save_weights_npz(teacher, str(tmp_path / "teacher.npz"), dtype="float32")
    x = {"sdr_yuv": rng.uniform(0, 1, (2, 12, 12, 3)).astype("float32"),
         "white_nits": np.array([[203.0], [400.0]], "float32")}
    y = rng.uniform(0, 1, (2, 24, 24, 3)).astype("float32")
    t = np.asarray(teacher.predict_on_batch(x))
    assert np.abs(t - y).mean() > 0.1
    for share, want in ((0.0, y), (1.0, t), (0.5, (y + t) / 2)):
        (_, target), = distilled(iter([(x, y)]), path, share)
        np.testing.assert_allclose(target, want, atol=2e-3)
    # reused under the eight symmetries: input and target turned and flipped together
    batches = list(distilled(iter([(x, y)]), path, 1.0, reuse=8))
    assert len(batches) == 8
    for k, (xk, tk) in enumerate(batches):
        assert xk["white_nits"] is x["white_nits"]
        np.testing.assert_allclose(tk, dihedral(t, k), atol=2e-3)
        np.testing.assert_array_equal(xk["sdr_yuv"], dihedral(x["sdr_yuv"], k))
    assert len({dihedral(x["sdr_yuv"], k).tobytes() for k in range(8)}) == 8
    np.testing.assert_array_equal(dihedral(x["sdr_yuv"], 5)[0], np.fliplr(np.rot90(x["sdr_yuv"][0])))
