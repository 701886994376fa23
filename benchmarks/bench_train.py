"""Thin wrapper: `sritm bench train` (sritm_tf/benchmarks/train.py); the same arguments."""
import sys

from sritm_tf.benchmarks import main

if __name__ == "__main__":
    sys.exit(main("train"))
