"""Thin wrapper: `sritm bench stream` (sritm_tf/benchmarks/stream.py); the same arguments."""
import sys

from sritm_tf.benchmarks import main

if __name__ == "__main__":
    sys.exit(main("stream"))
