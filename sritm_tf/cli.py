"""The `sritm` command line. Each subcommand lives in `sritm_tf/commands/<name>.py`.

A command module exposes `register(subparsers)`, which adds its parser and sets
`func=run` on it, and optionally `check=check`: argument checks that need no
TensorFlow, run before it is imported so that a mistyped value fails at once.
Heavy imports (TensorFlow) happen inside `run`, so `sritm --help` stays fast.
Errors: `_main` is the one place that turns an exception into a message. A `SritmError`
(`sritm_tf.errors`), which the library raises where it knows the fault is the user's, is
printed as one line, `sritm COMMAND: error: MESSAGE`, exit status 2; any other exception
is a bug or an outside failure and keeps its traceback (exit status 1). Commands do not
catch built-in exceptions to re-raise them as user errors.
Defaults a parser may set: `tensorflow=False` (the command does not start TensorFlow
here: `sritm convert-batch`, whose workers do), `beam_args=True` (the options after a bare
`--` are passed to the command as `args.beam_args`; unknown options before it are refused).
"""
import argparse
import contextlib
import importlib
import os
import sys

from sritm_tf import signals
from sritm_tf.errors import SritmError
from sritm_tf.notes import print_notes
from sritm_tf.signals import Terminated

# TensorFlow's C++ start-up notes and warnings stay quiet; its errors are shown (a grappler
# error such as "remapper failed" means lost speed: tests/convert/test_speed_graph.py guards it).
# Set it to 0 to see everything.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

COMMANDS = ["info", "convert", "convert_batch", "prepare", "train", "eval", "calibrate", "export", "bench",
            "serve_client"]


def quiet_tensorflow_start():
    """Imports TensorFlow with its stderr (fd 2) output dropped (`fileio.captured_stderr`).

    TensorFlow 2.21 prints oneDNN / CUDA-probe lines from C++ before its log
    level applies, at import and when its runtime starts; a command line tool
    should not. The runtime is started here too (one tiny op), except under
    TF_CONFIG, where MultiWorkerMirroredStrategy must configure it first.
    SRITM_TF_LOGS=1 keeps TensorFlow's own output.
    """
    import importlib.util

    from sritm_tf.precision import keras_backend

    if os.environ.get("SRITM_TF_LOGS") == "1" or keras_backend() != "tensorflow":
        return
    if importlib.util.find_spec("tensorflow") is None:
        return
    from sritm_tf.fileio import captured_stderr

    with captured_stderr(), _without_jax():
        import tensorflow as tf

        if not os.environ.get("TF_CONFIG"):
            tf.constant(0.0)


@contextlib.contextmanager
def _without_jax():
    """TensorFlow's import without JAX's: `tensorflow.lite.python.util` imports JAX when it is
    installed (a `try: from jax import jit`), and JAX then hooks the garbage collector, a place
    where Python discards the exception a signal handler raises. Keras on TensorFlow does not
    use JAX; a later `import jax` works as usual."""
    if "jax" in sys.modules:
        yield
        return
    sys.modules["jax"] = None  # import jax raises ImportError, which TensorFlow expects
    try:
        yield
    finally:
        if sys.modules.get("jax", 0) is None:
            del sys.modules["jax"]


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, whose errors are one line, `sritm COMMAND: error: MESSAGE`, exit status 2
    (as every other user error; `--help` shows the usage)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser():
    parser = ArgumentParser(
        prog="sritm",
        description="Deep SR-ITM: LR SDR (BT.709, gamma) to HR HDR10 (BT.2020, PQ).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"sritm_tf.commands.{name}").register(sub)
    parser.commands = sub.choices  # name -> the command's parser
    return parser


def parse(parser, argv):
    """The parsed `argv`; unknown options are refused (one line, exit 2). A command that passes
    options on (`beam_args=True`: Apache Beam's) gets those after a bare `--` as `args.beam_args`,
    so that a mistyped option of its own is refused, not handed on and ignored."""
    argv, passed = list(argv), []
    cut = argv.index("--") if "--" in argv else len(argv)
    command = next((parser.commands[a] for a in argv[:cut] if a in parser.commands), None)
    if command is not None and command.get_default("beam_args") is True:
        argv, passed = argv[:cut], argv[cut + 1:]
    args, extra = parser.parse_known_args(argv)  # elsewhere, -- keeps argparse's meaning (a file named -x)
    passes_on = getattr(args, "beam_args", None) is True
    if extra:
        command = parser.commands.get(getattr(args, "command", None), parser)
        command.error(f"unrecognized arguments: {' '.join(extra)}"
                     + ("; Apache Beam's own options go after a bare --" if passes_on else ""))
    if passes_on:
        args.beam_args = passed
    return args


def main(argv=None):
    """Runs `sritm ARGV`; SIGTERM is handled like Ctrl-C (cleanup, one line), exit status 143
    (`sritm_tf.signals`: a termination whose raise a library swallowed still stops the run at its
    next safe point, and a command that returns after one still exits 143)."""
    with signals.handled():
        try:
            return _main(argv)
        except Terminated:
            print("sritm: terminated", file=sys.stderr)
            return 143


def _main(argv):
    try:
        parser = build_parser()
    except KeyboardInterrupt:  # Ctrl-C while starting: no traceback
        print("sritm: interrupted", file=sys.stderr)
        return 130
    args = parse(parser, sys.argv[1:] if argv is None else argv)
    if not getattr(args, "func", None):  # bare `sritm`: one line, as any other missing argument
        parser.error(f"a COMMAND is needed: {', '.join(name.replace('_', '-') for name in COMMANDS)}")
    print_notes(f"sritm {args.command}", quiet=getattr(args, "quiet", False))
    try:  # the checks, TensorFlow's start-up (SIGINT there too is one line) and the command
        if getattr(args, "model", None) is not None and hasattr(args, "weights"):
            from sritm_tf.commands.options import resolve_model

            resolve_model(args)
        if getattr(args, "check", None):
            args.check(args)
        if getattr(args, "tensorflow", True):
            quiet_tensorflow_start()
        status = args.func(args) or 0
        signals.check()  # a SIGTERM whose raise a library swallowed: not a success
        return status
    except SritmError as err:
        print(f"sritm {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sritm {args.command}: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print(f"sritm {args.command}: terminated", file=sys.stderr)
        return 143
    except Exception:
        if not signals.requested():
            raise
        # The raise landed where a library turned it into its own error (a C extension's
        # module init that TensorFlow imports reports "ImportError: initialization failed").
        print(f"sritm {args.command}: terminated", file=sys.stderr)
        return 143


if __name__ == "__main__":
    sys.exit(main())
