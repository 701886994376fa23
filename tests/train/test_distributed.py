"""Distributed training and resume: MirroredStrategy over 2 logical CPUs matches one
device; a 2-worker MultiWorkerMirroredStrategy run finishes; a killed run resumes to
the weights of an uninterrupted one. Each case runs in subprocesses (tests/helpers/train_worker.py)."""
import dataclasses
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from sritm_tf.train.config import TrainConfig  # noqa: E402

from tests.helpers.paths import HELPERS  # noqa: E402
from tests.helpers.processes import python_env  # noqa: E402
from tests.helpers.records import write_records  # noqa: E402

TRAIN_WORKER = str(HELPERS / "train_worker.py")

pytestmark = pytest.mark.slow  # every case runs training in subprocesses


def _env(**extra):
    env = python_env(TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="", KERAS_BACKEND="tensorflow")
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _worker(*args, env=None, timeout=240):
    return subprocess.run([sys.executable, TRAIN_WORKER, *map(str, args)],
                          env=env or _env(), capture_output=True, text=True, timeout=timeout)


def _tiny_config(tmp_path, run_dir, **overrides):
    records = str(tmp_path / "records")
    if not os.path.isdir(records):
        write_records(records, count=24, size=16, shards=2)
    cfg = TrainConfig(data=records, run_dir=str(run_dir), channels=8, m=1, n=1, batch_size=4,
                      pretrain_steps=2, steps=6, checkpoint_every=2, seed=3, shuffle_buffer=24, **overrides)
    path = str(tmp_path / f"{os.path.basename(run_dir)}.json")
    with open(path, "w") as f:
        json.dump(dataclasses.asdict(cfg), f)
    return path


def test_mirrored_two_devices_match_one_device(tmp_path):
    out = tmp_path / "mirrored.json"
    proc = _worker("mirrored", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["replicas"] == 2
    assert result["loss_2"] == pytest.approx(result["loss_1"], rel=1e-5)
    assert result["grad_max"] > 1e-4  # a real step happened
    assert result["grad_diff"] <= 1e-4 * result["grad_max"]


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_multi_worker_run_finishes(tmp_path):
    run_dir = tmp_path / "mw"
    config = _tiny_config(tmp_path, run_dir, stage="full")
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    procs = [subprocess.Popen([sys.executable, TRAIN_WORKER, "train", config],
                              env=_env(TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outputs = [p.communicate(timeout=240) for p in procs]
    for p, (_, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]
    assert (run_dir / "final.keras").exists()  # written by the chief (worker 0)
    assert (run_dir / "full" / "logs").is_dir()


def test_killed_run_resumes_to_the_same_weights(tmp_path):
    import keras

    config_a = _tiny_config(tmp_path, tmp_path / "uninterrupted")
    config_b = _tiny_config(tmp_path, tmp_path / "killed")
    proc = _worker("train", config_a)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # 2 pre-training steps, then 3 of the 6 full-network steps: one past the checkpoint at 2.
    proc = _worker("train", config_b, "--kill-after", 5)
    assert proc.returncode == 17, proc.stderr[-3000:]
    assert not (tmp_path / "killed" / "final.keras").exists()
    assert (tmp_path / "killed" / "full" / "backup" / "training_metadata.json").exists()
    proc = _worker("train", config_b)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resuming full at step 2" in proc.stdout

    a = keras.saving.load_model(str(tmp_path / "uninterrupted" / "final.keras"), compile=False)
    b = keras.saving.load_model(str(tmp_path / "killed" / "final.keras"), compile=False)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wb, wa, rtol=1e-5, atol=1e-6)
    initial = _initial_full_weights(tmp_path)
    assert any(not np.allclose(w, w0) for w, w0 in zip(a.get_weights(), initial))  # it did train


def _initial_full_weights(tmp_path):
    """Stage-2 start of the uninterrupted run: its pre-trained weights in the full network."""
    import keras

    from sritm_tf.model import build_deep_sritm, transfer_weights

    keras.utils.set_random_seed(4)
    full = build_deep_sritm(2, channels=8, m=1, n=1)
    pre = build_deep_sritm(2, channels=8, m=1, n=1, modulation=False)
    pre.load_weights(str(tmp_path / "uninterrupted" / "pretrain.weights.h5"))
    transfer_weights(pre, full)
    return full.get_weights()
