"""`sritm bench stream`: peak temporary disk and RSS of a streamed conversion."""
import re
import shutil
import subprocess
import sys

import pytest


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")
def test_stream_benchmark_measures_no_intermediate_and_extrapolates():
    out = subprocess.run([sys.executable, "-m", "sritm_tf.cli", "bench", "stream", "--sizes", "32x24", "64x48",
                          "--frames", "12", "--preset", "ultrafast"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines if re.match(r"\| \d+x\d+ \|", line)]
    assert [row[:2] for row in rows] == [["32x24", "64x48"], ["64x48", "128x96"]]
    for _, _, peak, output, raw_frame, rss, encoder in rows:
        # The folder never held more than the output itself, which is smaller than 12 raw frames by far.
        assert 0 < float(peak) <= float(output) < 12 * float(raw_frame) / 2
        assert float(rss) > 100 and float(encoder) > 1
    summary = re.fullmatch(r"1 min 1080p -> 4K \(extrapolated\): peak temp disk (\d+) MiB \(the compressed output, "
                           r"([\d.]+) B/pixel\), no uncompressed intermediate \(was 35\.8 GB\); "
                           r"peak RSS (\d+) MiB \+ encoder (\d+) MiB", lines[-1])
    assert summary, lines[-1]
    per_pixel = float(summary.group(2))
    assert int(summary.group(1)) == pytest.approx(per_pixel * 1440 * 3840 * 2160 / 2**20, rel=0.01, abs=1)
