"""Running `sritm` as a user does: a fresh interpreter, the repository on PYTHONPATH; the
checks on what it printed; signalling a run in progress."""
import os
import subprocess
import sys
import time

from tests.helpers.paths import REPO


def python_env(**extra):
    """os.environ with the repository first on PYTHONPATH, then `extra`."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, **extra}


def sritm(*args, timeout=180, env=None, cwd=None):
    """Runs `sritm ARGS` in a fresh interpreter; returns the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "sritm_tf.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=python_env(**(env or {})), cwd=cwd)


def sritm_reporting_tensorflow(*args, tmp=None, prelude="", env=None, cwd=None, timeout=180):
    """`sritm ARGS` in a fresh interpreter, after the Python code `prelude` (a fault to inject), with
    `env` added and TMPDIR=`tmp` where given; its last stdout line says whether TensorFlow was imported."""
    code = (f"{prelude}\nimport sys\nfrom sritm_tf.cli import main\ncode = main(sys.argv[1:])\n"
            "print('tensorflow' in sys.modules)\nsys.exit(code)")
    env = {**(env or {}), **({"TMPDIR": str(tmp)} if tmp is not None else {})}
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          env=python_env(**env), cwd=cwd, timeout=timeout)


def assert_one_error_line(result, command, *names):
    """Exit status 2 and a single stderr line `sritm COMMAND: error: ...` naming each of `names`."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"sritm {command}: error: "), lines[0]
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    return lines[0]


def assert_refused(result, command, *names, code=2, before_tensorflow=True):
    """Exit status `code`, one stderr line `sritm COMMAND: ...` naming each of `names`; with
    `before_tensorflow`, the last stdout line of `sritm_reporting_tensorflow` says it was not imported."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, result.stderr
    assert len(lines) == 1 and lines[0].startswith(f"sritm {command}: "), result.stderr
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    if before_tensorflow:
        assert result.stdout.strip().splitlines()[-1:] == ["False"], "TensorFlow was imported first"
    return lines[0]


def default_sigint():
    """preexec_fn: SIGINT back to Python's default in the child. A shell starts background jobs with
    SIGINT ignored, and Python then never raises KeyboardInterrupt: without this the SIGINT tests
    would test nothing when the suite itself runs in the background."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def has_bytes(path):
    """The file exists and is not empty (False if it is renamed away meanwhile)."""
    try:
        return os.path.getsize(path) > 0
    except OSError:
        return False


def start_and_signal(source, output, signum, *options, env=None):
    """Starts `sritm convert SOURCE -o OUTPUT OPTIONS` (default: the network, fp32) with `env` added to
    the environment, sends `signum` once the encoder is writing its temporary output, and returns
    (exit status, stderr)."""
    import signal

    process = subprocess.Popen([sys.executable, "-m", "sritm_tf.cli", "convert", str(source), "-o", str(output),
                                "--quiet", *(options or ("--precision", "fp32"))], stderr=subprocess.PIPE, text=True,
                               env=python_env(**(env or {})), preexec_fn=default_sigint)
    deadline = time.monotonic() + 90
    partial = output.parent / f".part-{process.pid}-{output.name}"
    while not has_bytes(partial):
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert signum != signal.SIGKILL or process.returncode == -signal.SIGKILL
    return process.returncode, err
