"""Notes: one line to the user about a choice made for them (an untagged stream taken as
BT.601, an anamorphic frame resized to square pixels), logged at INFO on the "sritm_tf" logger.
`sritm` prints each distinct note once, as "sritm COMMAND: note: ..." on stderr (not with
--quiet); a library user sees them through `logging` as any other library's.
"""
import logging

LOGGER = logging.getLogger("sritm_tf")


def note(message):
    """Tells the user `message` (one line: the file, what was found, what was done)."""
    LOGGER.info(message)


class _Once(logging.Filter):
    """Passes each distinct message once (a source is opened by the check and again by the run)."""

    def __init__(self):
        super().__init__()
        self.seen = set()

    def filter(self, record):
        message = record.getMessage()
        if message in self.seen:
            return False
        self.seen.add(message)
        return True


def print_notes(prog, quiet=False):
    """Prints the notes of this process on stderr as "`prog`: note: ...", each once; none if `quiet`."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(f"{prog}: note: %(message)s"))
    handler.addFilter(_Once())
    for old in [h for h in LOGGER.handlers if getattr(h, "sritm_notes", False)]:
        LOGGER.removeHandler(old)
    handler.sritm_notes = True
    LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.WARNING if quiet else logging.INFO)
    LOGGER.propagate = False
