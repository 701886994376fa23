"""Thin wrapper: `sritm bench pipeline` (sritm_tf/benchmarks/pipeline.py); the same arguments."""
import sys

from sritm_tf.benchmarks import main

if __name__ == "__main__":
    sys.exit(main("pipeline"))
