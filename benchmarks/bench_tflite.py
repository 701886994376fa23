"""Thin wrapper: `sritm bench tflite` (sritm_tf/benchmarks/tflite.py); the same arguments."""
import sys

from sritm_tf.benchmarks import main

if __name__ == "__main__":
    sys.exit(main("tflite"))
