"""The `sritm` command line. Each subcommand lives in `sritm_tf/commands/<name>.py`.

A command module exposes `register(subparsers)`, which adds its parser and sets
`func=run` on it. Heavy imports (TensorFlow) happen inside `run`, so `sritm --help`
stays fast.
"""
import argparse
import importlib
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter off the terminal

COMMANDS = ["info", "convert", "prepare", "train", "eval", "export", "bench", "serve_client"]


class UserError(Exception):
    """A problem with the user's input: printed as one line, exit status 2."""


def build_parser():
    parser = argparse.ArgumentParser(
        prog="sritm",
        description="Deep SR-ITM: LR SDR (BT.709, gamma) to HR HDR10 (BT.2020, PQ).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"sritm_tf.commands.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"sritm_tf.commands.{name}":
                continue  # not built yet
            raise
        module.register(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return args.func(args) or 0
    except UserError as err:
        print(f"sritm {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sritm {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
