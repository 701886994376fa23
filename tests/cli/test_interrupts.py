"""Signals to a running `sritm convert`: SIGINT and SIGTERM are one line and leave nothing;
SIGKILL leaves only temporaries, which the next run removes (keeping those of processes
still running); SIGINT while TensorFlow starts is one line too. Every case starts `sritm`
in a subprocess and runs it for seconds: all are marked slow.
"""
import os
import signal
import subprocess
import sys

import pytest

from tests.helpers.processes import default_sigint, python_env, sritm_reporting_tensorflow, start_and_signal

pytestmark = pytest.mark.slow


# ---------------------------------------------------------------------------
# SIGINT / SIGTERM / SIGKILL mid-run, then a re-run
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("signum, code, message, engine", [
    (signal.SIGINT, 130, "sritm convert: interrupted", "baseline"),
    (signal.SIGTERM, 143, "sritm convert: terminated", "baseline"),
    (signal.SIGTERM, 143, "sritm convert: terminated", "network"),
    (signal.SIGKILL, -signal.SIGKILL, "", "baseline"),
    (signal.SIGKILL, -signal.SIGKILL, "", "network")])
def test_signal_mid_run_then_a_rerun(inputs, long_clip, folders, signum, code, message, engine):
    """The signal comes once frames are being encoded (the partial output has bytes), to a run of the
    classical conversion or of the network (fp32). SIGINT and SIGTERM clean up; SIGKILL leaves
    temporaries that the re-run removes, keeping those of a process still running; the re-run succeeds."""
    from sritm_tf import fileio

    out, tmp = folders
    output = out / "o.mp4"
    options = ["--baseline"] if engine == "baseline" else ["--precision", "fp32"]
    # The network's run keeps the usual TMPDIR: TensorFlow's autograph writes its generated modules
    # there, which a SIGKILL leaves behind; TMPDIR=tmp checks the classical conversion's.
    env = {"TMPDIR": str(tmp)} if engine == "baseline" else None
    returncode, err = start_and_signal(long_clip, output, signum, *options, env=env)
    assert returncode == code and err.strip() == message, err
    left = os.listdir(out)
    assert (left == []) if signum != signal.SIGKILL else (left and all(map(fileio.is_temporary, left))), left

    alive = out / f".part-{os.getpid()}-o.mp4"  # a running process's temporary: kept
    alive.write_bytes(b"in use")
    result = sritm_reporting_tensorflow("convert", inputs / "clip.mp4", "-o", output, "--baseline", "--quiet",
                                        tmp=tmp)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert sorted(os.listdir(out)) == sorted([alive.name, "o.mp4"]) and os.listdir(tmp) == []


# ---------------------------------------------------------------------------
# SIGINT while TensorFlow starts
# ---------------------------------------------------------------------------
def test_sigint_while_tensorflow_starts_is_one_line(tmp_path):
    import time

    from sritm_tf.pretrained import sample_path

    env = python_env()
    process = subprocess.Popen([sys.executable, "-m", "sritm_tf.cli", "convert", sample_path(), "-o",
                                str(tmp_path / "x.png"), "--quiet"], stderr=subprocess.PIPE, text=True, env=env,
                               preexec_fn=default_sigint)
    deadline = time.monotonic() + 60
    while "tensorflow" not in open(f"/proc/{process.pid}/maps").read():  # TensorFlow's libraries load
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and err.strip() == "sritm convert: interrupted", err
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------
# SIGTERM anywhere in the start-up window
# ---------------------------------------------------------------------------
def test_sigterm_across_the_start_up_window_always_stops_the_run(long_clip, folders):
    """SIGTERM at 0.5 s steps from 0.5 s to 8 s after `sritm convert` starts (the interpreter, the
    checks, TensorFlow's import and start-up, the model's build, the first frames): every run stops,
    with exit status 143 and one line (or, before Python has installed its handler, killed by the
    signal), and leaves no output."""
    import time

    out, _ = folders
    for delay in [step / 2 for step in range(1, 17)]:
        output = out / "o.mkv"
        process = subprocess.Popen([sys.executable, "-m", "sritm_tf.cli", "convert", str(long_clip), "-o",
                                    str(output), "--quiet", "--precision", "fp32"], stderr=subprocess.PIPE,
                                   text=True, env=python_env())
        time.sleep(delay)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=120)
        assert process.returncode == -signal.SIGTERM or (
            process.returncode == 143 and err.strip() in ("sritm convert: terminated", "sritm: terminated")), (
            delay, process.returncode, err)
        assert os.listdir(out) == [], (delay, os.listdir(out))
