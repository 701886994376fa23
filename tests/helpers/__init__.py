"""Helpers shared by the tests: where things are (`paths`), running `sritm` in a subprocess
(`processes`), small clips made with ffmpeg (`media`), synthetic training records and pairs
(`records`, `pairs`). `train_worker.py` is a script the training tests run as a subprocess."""
