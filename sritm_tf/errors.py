"""The errors of sritm_tf. Each is a `SritmError`: a problem the user can fix, with
a message that names the file or option at fault; the `sritm` command line prints
it as one line (`sritm COMMAND: error: MESSAGE`) and exits with status 2.

The subclasses keep the built-in ancestry that callers catch (`InputError` is a
ValueError, `ToolError` a RuntimeError).
"""


class SritmError(Exception):
    """Base class: a problem with the user's input or setup, printed as one line, exit status 2."""


class UserError(SritmError):
    """A bad command line argument or combination of arguments."""


class InputError(SritmError, ValueError):
    """An input file or value the converter cannot use (message starts with the file or option)."""


class SourceError(SritmError):
    """A training source file that cannot be used; the message starts with the file name."""


class ToolError(SritmError, RuntimeError):
    """ffmpeg / ffprobe missing or failing."""
