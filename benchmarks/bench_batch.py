"""Thin wrapper: `sritm bench batch` (sritm_tf/benchmarks/batch.py); the same arguments."""
import sys

from sritm_tf.benchmarks import main

if __name__ == "__main__":
    sys.exit(main("batch"))
