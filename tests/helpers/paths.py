"""Where things are: the repository root, the real HDR material in `../shared/data` beside it,
and the test helpers (for the scripts the tests run as subprocesses)."""
from pathlib import Path

import pytest

HELPERS = Path(__file__).resolve().parent
REPO = HELPERS.parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def _absent(parts):
    return [path for path in (SHARED_DATA / part for part in parts) if not path.exists()]


def _message(path):
    return f"shared data not found: {path} (expected ../shared/data next to the repo)"


def need_shared(*parts):
    """The path of `SHARED_DATA / parts[0]`; skips the test, naming what is missing, unless every
    one of `parts` exists (paths relative to ../shared/data, or already under it)."""
    absent = _absent(parts)
    if absent:
        pytest.skip(_message(absent[0]))
    return SHARED_DATA / parts[0]


def needs_shared(*parts):
    """A skipif mark, for tests whose parameters or fixtures read ../shared/data: skips unless
    every one of `parts` exists."""
    absent = _absent(parts)
    return pytest.mark.skipif(bool(absent), reason=_message(absent[0]) if absent else "")
