"""Atomic writes: every file or folder sritm_tf writes appears complete or not at all.

    with atomic_path("out.png") as tmp:
        write_to(tmp)

`tmp` is a hidden name in the destination folder that ends with the destination's
own name (`.part-<pid>-out.png`), so writers that go by the extension (cv2.imwrite,
Keras `save`) still work, and TF Serving ignores a half-written version folder.

And the process's stderr: `captured_stderr` keeps what native libraries print
(libpng, libjpeg, libtiff, OpenEXR, TensorFlow's C++ start-up) off the one line a
command prints, and hands it to the caller to judge.
"""
import contextlib
import os
import re
import shutil
import sys
import tempfile
import types
from pathlib import Path

from sritm_tf import signals
from sritm_tf.errors import OutputExistsError, UserError


def temporary_path(path, kind="part"):
    """A hidden name beside `path`, for this process: `.<kind>-<pid>-<name>`."""
    folder, name = os.path.split(os.path.abspath(os.fspath(path)))
    return os.path.join(folder, f".{kind}-{os.getpid()}-{name}")


def is_temporary(name):
    """True for a name made by `temporary_path` (by any process): a killed run's leftover."""
    return re.match(r"\.(part|old)-\d+-.", os.path.basename(name)) is not None


def _running(pid):
    """True if process `pid` exists (this process included)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def remove_stale(path):
    """Removes the temporaries of `path` that processes no longer running left behind
    (killed by SIGKILL or a power cut): `.part-<pid>-<name>` and `.old-<pid>-<name>`,
    and names that extend them by one extension (a re-mux's second file, `<tmp>.mp4`)."""
    folder, name = os.path.split(os.path.abspath(os.fspath(path)))
    pattern = re.compile(rf"\.(?:part|old)-(\d+)-{re.escape(name)}(?:\.[^.]+)?")
    try:
        entries = os.listdir(folder)
    except OSError:
        return
    for entry in entries:
        match = pattern.fullmatch(entry)
        if match and not _running(int(match.group(1))):
            remove(os.path.join(folder, entry))


def remove(path):
    """Removes a file or folder if it is there."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


@contextlib.contextmanager
def atomic_path(path, overwrite=True, stale=True):
    """Yields a temporary name beside `path` (a `Path` if `path` is one) to write a
    file or a folder to. When the block ends normally the temporary is renamed to
    `path`, replacing what was there (a folder is swapped in whole); when it raises,
    the temporary is removed and `path` is left as it was (also after a SIGTERM, `signals`,
    whose raise was lost on the way). Temporaries of `path` that
    dead processes left are removed first (`remove_stale`).

    Args:
        path: the destination file or folder; its folder must exist.
        overwrite: if False, raise OutputExistsError (a FileExistsError) up front when `path` exists.
        stale: False skips `remove_stale` (a scan of the folder), for a caller that cleared the
            folder once before writing many files into it (an image sequence).
    """
    if not overwrite and os.path.exists(path):
        raise OutputExistsError(f"{path}: exists (pass --overwrite to replace it)")
    tmp, old = temporary_path(path), temporary_path(path, "old")
    if stale:
        remove_stale(path)
    remove(tmp)
    try:
        yield Path(tmp) if isinstance(path, Path) else tmp
        signals.check()  # nothing is put in place after SIGTERM, even if its raise was lost
        if os.path.isdir(tmp) and os.path.lexists(path):
            os.replace(path, old)  # os.replace cannot put a folder over a non-empty one
        os.replace(tmp, path)
    finally:
        remove(tmp)
        remove(old)


@contextlib.contextmanager
def captured_stderr(path=None):
    """Sends what is written to file descriptor 2 while the block runs (by native
    libraries, which Python's sys.stderr does not see) to a temporary file (or to
    the file `path`, which is kept), and yields a namespace whose `text` holds it
    once the block has ended.

        with captured_stderr() as log:
            image = cv2.imdecode(buffer, flags)
        damaged = "TIFF_Error" in log.text

    The descriptor is the process's: another thread's stderr output in the block
    is captured too, so keep the block short.
    """
    log = types.SimpleNamespace(text="")
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "w+b") if path else tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield log
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            log.text = capture.read().decode(errors="replace")


def write_text(path, text):
    """Writes `text` (UTF-8) to `path` atomically (`atomic_path`), replacing it."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)


def check_folder_output(path, option):
    """UserError when the output folder `path` (given by `option`) is an existing file."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f"{path}: is a file; {option} names a folder")
