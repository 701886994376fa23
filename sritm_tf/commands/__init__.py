"""Subcommands of the `sritm` CLI, one module each (see `sritm_tf/cli.py`)."""
