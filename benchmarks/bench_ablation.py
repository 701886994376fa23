"""Thin wrapper: `sritm bench ablation` (sritm_tf/benchmarks/ablation.py); the same arguments."""
import sys

from sritm_tf.benchmarks import main

if __name__ == "__main__":
    sys.exit(main("ablation"))
