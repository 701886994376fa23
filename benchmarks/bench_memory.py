"""Thin wrapper: `sritm bench memory` (sritm_tf/benchmarks/memory.py); the same arguments."""
import sys

from sritm_tf.benchmarks import main

if __name__ == "__main__":
    sys.exit(main("memory"))
