"""`sritm bench gpu`: the network on JAX against the device's measured matrix peak."""
import os
import subprocess
import sys


def _bench(backend, *args):
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", "sritm_tf.cli", "bench", "gpu", *args],
                          capture_output=True, text=True, timeout=600, env=env)


def test_gpu_benchmark_prints_the_peak_and_a_row_per_scale_and_precision():
    """Runs on whatever JAX device there is (the CPU here): the table's shape and figures."""
    out = _bench("jax", "--frame", "40x24", "--repeats", "1", "--peak-size", "128")
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("device: ") and "measured peak (128^3 matmul): bf16 " in lines[1]
    rows = [line.split("|")[1:-1] for line in lines if line.startswith("| x")]
    assert [(r[0].strip(), r[1].strip(), r[2].strip()) for r in rows] == [
        ("x2", "fp32", "40x24"), ("x2", "bf16", "40x24"), ("x4", "fp32", "40x24"), ("x4", "bf16", "40x24")]
    for r in rows:
        seconds, gflops, ratio = float(r[3]), float(r[4]), float(r[5])
        assert seconds > 0 and gflops > 0 and ratio > 0


def test_gpu_benchmark_asks_for_jax():
    out = _bench("tensorflow", "--frame", "40x24")
    assert out.returncode != 0
    assert out.stderr.strip().splitlines()[-1] == "bench gpu: run it with KERAS_BACKEND=jax"
