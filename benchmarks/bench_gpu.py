"""Thin wrapper: `sritm bench gpu` (sritm_tf/benchmarks/gpu.py); the same arguments."""
import sys

from sritm_tf.benchmarks import main

if __name__ == "__main__":
    sys.exit(main("gpu"))
