"""SIGTERM as a request to stop, honoured even where Python discards an exception.

A signal handler runs between two bytecodes of the main thread, wherever that is: a
`Terminated` raised from it inside a garbage-collector callback, a `__del__` or a
weakref callback is printed as "Exception ignored" and lost (Python discards exceptions
there), and the run would go on to write its output. So the handler records the request
before it raises, and the places where a run spends its time or commits its work call
`check()`: the frame pipeline between frames, the training loop between steps, and
`fileio.atomic_path` before it puts an output in place. A second SIGTERM is delivered
too (never ignored) but only records: the cleanup of the first is not interrupted.
"""
import contextlib
import signal
import threading

_requested = threading.Event()


class Terminated(BaseException):
    """SIGTERM, raised in the main thread like KeyboardInterrupt so that the same cleanup runs."""


def _handler(signum, frame):
    first = not _requested.is_set()
    _requested.set()
    if first:
        raise Terminated()


def requested():
    """True once SIGTERM has arrived (while `handled` is active)."""
    return _requested.is_set()


def check():
    """Raises `Terminated` if SIGTERM has arrived: the safe point for a handler's raise that was lost."""
    if _requested.is_set() and threading.current_thread() is threading.main_thread():
        raise Terminated()


@contextlib.contextmanager
def handled():
    """SIGTERM handled as above while the block runs (in the main thread only, where Python
    delivers signals); the previous handler afterwards."""
    previous = signal.getsignal(signal.SIGTERM)
    install = previous is not None and threading.current_thread() is threading.main_thread()
    _requested.clear()
    if install:
        signal.signal(signal.SIGTERM, _handler)
    try:
        yield
    finally:
        if install:
            signal.signal(signal.SIGTERM, previous)
        _requested.clear()
