"""SIGTERM as a request to stop (`sritm_tf.signals`): a raise that Python discards (a signal
handled inside a finaliser or a garbage-collector callback) still stops the run at its next safe
point, a second SIGTERM does not interrupt the cleanup of the first, and TensorFlow starts without
JAX, whose garbage-collector hook is such a place."""
import os
import signal
import subprocess
import sys
import time

import pytest

from sritm_tf import cli, fileio, signals
from tests.helpers.processes import python_env


class _Finaliser:
    """Sends SIGTERM to this process from `__del__`, where Python discards an exception (as it
    does in a garbage-collector callback): the handler's raise is lost."""

    def __del__(self):
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # the handler runs at the next bytecode boundary of this thread
            time.sleep(0)


@pytest.fixture
def lost(monkeypatch):
    """The exceptions Python discards (sys.unraisablehook) while the test runs."""
    discarded = []
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: discarded.append(unraisable.exc_type))
    return discarded


def _lose_a_raise():
    _Finaliser()  # collected at once: its __del__ runs here


def test_a_lost_raise_is_still_a_request_to_stop(lost):
    with signals.handled():
        _lose_a_raise()
        assert lost == [signals.Terminated]  # Python discarded the handler's raise
        assert signals.requested()
        with pytest.raises(signals.Terminated):
            signals.check()
    assert not signals.requested()  # the next run starts clean


def test_nothing_is_put_in_place_after_a_lost_raise(tmp_path, lost):
    output = tmp_path / "out.png"
    with signals.handled():
        with pytest.raises(signals.Terminated):
            with fileio.atomic_path(output) as tmp:
                tmp.write_bytes(b"frame")
                _lose_a_raise()
    assert lost == [signals.Terminated] and os.listdir(tmp_path) == []


def test_a_second_sigterm_is_delivered_but_does_not_interrupt_the_cleanup():
    cleaned = False
    with signals.handled():
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the raise lands here
        except signals.Terminated:
            os.kill(os.getpid(), signal.SIGTERM)  # during the cleanup: recorded, not raised
            time.sleep(0.05)
            cleaned = True
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN
    assert cleaned


def test_a_command_that_returns_after_a_lost_raise_exits_143(monkeypatch, capsys, lost):
    from sritm_tf.commands import info

    def run(args):
        _lose_a_raise()
        return 0

    monkeypatch.setattr(info, "run", run)
    assert cli.main(["info"]) == 143 and lost == [signals.Terminated]
    assert capsys.readouterr().err.strip().splitlines()[-1] == "sritm info: terminated"


def test_a_raise_a_library_turned_into_its_own_error_exits_143(monkeypatch, capsys):
    """SIGTERM during the import of a C extension surfaces as ImportError("initialization
    failed"), not as Terminated: still one line and 143, no traceback."""
    from sritm_tf.commands import info

    def run(args):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        except signals.Terminated:
            raise ImportError("initialization failed") from None
        return 0

    monkeypatch.setattr(info, "run", run)
    assert cli.main(["info"]) == 143
    assert capsys.readouterr().err.strip().splitlines() == ["sritm info: terminated"]
    monkeypatch.setattr(info, "run", lambda args: int("x"))  # without SIGTERM an error stays an error
    with pytest.raises(ValueError):
        cli.main(["info"])


@pytest.mark.slow
def test_tensorflow_starts_without_jax():
    pytest.importorskip("jax")
    code = ("import sys\nfrom sritm_tf import cli\ncli.quiet_tensorflow_start()\n"
            "import tensorflow\nprint(sorted(m for m in sys.modules if m.split('.')[0] == 'jax'))\n"
            "import jax\nprint(jax.numpy.ones(2).sum())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=python_env(),
                         timeout=300, check=True).stdout.split("\n")
    assert out[0] == "[]" and out[1] == "2.0", out  # no JAX with TensorFlow; a later import works
