"""`sritm bench speed` against the physical peak."""
import re
import subprocess
import sys

import pytest

from sritm_tf.benchmarks import speed


def test_nominal_peaks_follow_the_isa_flags():
    amx = speed.nominal_peaks({"avx512f", "amx_bf16", "amx_int8", "avx512_bf16", "avx512_vnni"}, cores=2)
    zen = speed.nominal_peaks({"avx512f", "avx512_bf16", "avx512_vnni"}, cores=2)
    old = speed.nominal_peaks({"avx2", "fma"}, cores=4)
    ghz = amx["fp32"][0] / 128
    assert amx["bf16"][0] == pytest.approx(1024 * 2 * ghz) and amx["int8"][0] == pytest.approx(2048 * 2 * ghz)
    assert zen["bf16"][0] == pytest.approx(2 * zen["fp32"][0]) and zen["int8"][0] == pytest.approx(4 * zen["fp32"][0])
    assert old["fp32"][0] == pytest.approx(32 * 4 * ghz) and old["bf16"][0] == old["fp32"][0]
    assert "1024 x 2 cores" in amx["bf16"][1]


@pytest.mark.slow
def test_speed_benchmark_prints_peaks_rows_and_the_summary_line():
    from sritm_tf.engines import installed

    profile = ["--profile"] if installed("openvino") else []
    out = subprocess.run([sys.executable, "-m", "sritm_tf.cli", "bench", "speed", "--frame", "64x48", "--tile", "32x24",
                          "--repeats", "1", "--engines", "tf-fp32", "tf-bf16", "--model", "full", "tv", *profile],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert any(line.startswith("| fp32 |") for line in lines) and any(line.startswith("| bf16 |") for line in lines)
    rows = [line for line in lines if line.startswith(("| full | tf-", "| tv | tf-"))]
    assert [row.split("|")[1:3] for row in rows] == [[" full ", " tf-fp32 "], [" full ", " tf-bf16 "],
                                                     [" tv ", " tf-fp32 "], [" tv ", " tf-bf16 "]]
    ratios = [float(row.split("|")[8]) for row in rows]
    assert all(0 < r < 1.5 for r in ratios), rows
    assert re.fullmatch(r"s_per_4k_frame=\d+\.\d\d peak_ratio=\d\.\d{3}", lines[-1]), lines[-1]
    if profile:  # OpenVINO's per-node counters, summed per op type: convolutions lead
        table = [line.split("|") for line in lines if line.startswith("| ") and line.count("|") == 4]
        shares = {c[1].strip(): float(c[3].strip()[:-1]) for c in table if c[3].strip().endswith("%")}
        assert "Convolution" in shares and shares["Convolution"] == max(shares.values()), shares
