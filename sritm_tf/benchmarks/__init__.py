"""Benchmarks as importable modules: `sritm bench NAME` runs `sritm_tf.benchmarks.NAME`,
whose `add_arguments(parser)` and `run(args)` it calls. A benchmark that measures in a
fresh process runs itself as a child (`run_child`, `child_main`)."""
import json
import os
import subprocess
import sys
import time

UHD = (2160, 3840)  # a 4K output frame, (height, width)


def best_time(fn, repeats):
    """The shortest of `repeats` wall-clock timings of `fn()`, in seconds."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


class ChildError(RuntimeError):
    """A benchmark child process that failed or printed no JSON line."""

    def __init__(self, job, returncode, stderr):
        self.returncode, self.stderr = returncode, stderr
        super().__init__(f"{job} failed (exit {returncode}):\n{self.tail(5)}")

    def tail(self, lines):
        """The last `lines` lines of the child's stderr ("" when it printed none)."""
        return "\n".join(self.stderr.strip().splitlines()[-lines:])


def run_child(name, job, env=None):
    """Runs `python -m sritm_tf.benchmarks.<name> --child JOB` (JOB: `job` as JSON) in a
    fresh process, `env` added to the environment and TensorFlow's C++ log quiet, and
    returns the last JSON line it printed, parsed; ChildError when it fails or prints none."""
    cmd = [sys.executable, "-m", f"sritm_tf.benchmarks.{name}", "--child", json.dumps(job)]
    proc = subprocess.run(cmd, env={**os.environ, **(env or {}), "TF_CPP_MIN_LOG_LEVEL": "2"},
                          capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(("[", "{"))]
    if proc.returncode or not lines:
        raise ChildError(job, proc.returncode, proc.stderr)
    return json.loads(lines[-1])


def child_main(child, argv=None):
    """The entry point of a benchmark's child process, `python -m sritm_tf.benchmarks.NAME
    --child JOB` (`run_child`): prints child(job) as one JSON line. Benchmarks themselves
    run as `sritm bench NAME`."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] != "--child":
        raise SystemExit("this module runs as the child of `sritm bench`; run `sritm bench --help`")
    print(json.dumps(child(json.loads(argv[1]))))
    return 0
