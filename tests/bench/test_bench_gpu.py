"""`sritm bench gpu`: the network on JAX against the device's measured matrix peak."""
import os
import re
import subprocess
import sys

import pytest

from sritm_tf.benchmarks import UHD
from sritm_tf.flops import model_macs
from sritm_tf.model import build_deep_sritm


def _bench(backend, *args):
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", "sritm_tf.cli", "bench", "gpu", *args],
                          capture_output=True, text=True, timeout=600, env=env)


def _printed(text):
    """(lowest, highest) value that prints as `text` (its last decimal rounded half to even or up)."""
    decimals = len(text.partition(".")[2])
    half = 0.5 * 10.0**-decimals
    return float(text) - half, float(text) + half


@pytest.mark.slow
def test_gpu_benchmark_rows_follow_from_the_macs_and_the_peak():
    """Runs on whatever JAX device there is (the CPU here). Per row, s per 4K frame x GFLOP/s
    is the network's work on a 4K frame, and the ratio is GFLOP/s over the printed peak, each
    within what the printed figures' rounding allows (on a slow, busy machine the figures are
    small and their last digit is a large part of them)."""
    out = _bench("jax", "--frame", "40x24", "--repeats", "1", "--peak-size", "128")
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("device: ")
    peak = re.fullmatch(r"measured peak \(128\^3 matmul\), GFLOP/s: bf16 (\S+), fp32 at XLA's default precision (\S+)",
                        lines[1])
    peaks = {"bf16": float(peak[1]), "fp32": float(peak[2])}
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in lines if line.startswith("| x")]
    assert [r[:3] for r in rows] == [["x2", "fp32", "40x24"], ["x2", "bf16", "40x24"],
                                     ["x4", "fp32", "40x24"], ["x4", "bf16", "40x24"]]
    for scale, precision, _, seconds, gflops, ratio in rows:
        scale = int(scale[1:])
        assert seconds.endswith("*")  # extrapolated from the 40x24 frame
        work = 2 * model_macs(build_deep_sritm(scale, skip="classical"), 24, 40) / 1e9 * UHD[0] * UHD[1] / scale**2 / 960
        (s_lo, s_hi), (g_lo, g_hi), (r_lo, r_hi) = _printed(seconds[:-1]), _printed(gflops), _printed(ratio)
        p_lo, p_hi = _printed(peak[1] if precision == "bf16" else peak[2])
        assert s_lo * g_lo * 0.999 <= work <= s_hi * g_hi * 1.001, (seconds, gflops, work)
        assert r_lo * 0.999 <= g_hi / p_lo and g_lo / p_hi <= r_hi * 1.001, (ratio, gflops, peaks[precision])


@pytest.mark.slow
def test_gpu_benchmark_asks_for_jax():
    out = _bench("tensorflow", "--frame", "40x24")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == "sritm bench: error: bench gpu runs on JAX: set KERAS_BACKEND=jax"
