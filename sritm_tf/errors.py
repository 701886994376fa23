"""The errors of sritm_tf. Each is a `SritmError`: a problem the user can fix, with
a message that names the file or option at fault; the `sritm` command line prints
it as one line (`sritm COMMAND: error: MESSAGE`) and exits with status 2.

The subclasses keep the built-in ancestry that callers catch (`InputError` is a
ValueError, `ToolError` a RuntimeError, `FileError` an OSError: `MissingFileError` a
FileNotFoundError, ...). Library code raises them where it knows the fault is the
user's (a file the user named, a value the user typed); every other exception is a
bug or an outside failure and keeps its traceback.
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
    """An outside program or service missing or failing: ffmpeg / ffprobe, a TF Serving server."""


class FileError(SritmError, OSError):
    """A file or folder the user named that cannot be used; the message starts with its name.
    The subclasses keep the OSError subclass that says why."""


class MissingFileError(FileError, FileNotFoundError):
    """A named file that does not exist, or is not a regular file."""


class OutputExistsError(FileError, FileExistsError):
    """An output that exists (and may not be replaced), or that is the input itself."""


class FolderError(FileError, IsADirectoryError):
    """A folder where a file is expected."""


class NoFolderError(FileError, NotADirectoryError):
    """An output whose folder does not exist."""


class AccessError(FileError, PermissionError):
    """A file that cannot be read, or a folder that cannot be written in."""
