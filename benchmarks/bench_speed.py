"""Inference speed of the full Deep SR-ITM against this machine's physical peak.

Same as `sritm bench speed`; see `sritm_tf/benchmarks/speed.py` and the Results section of
the top-level README.md.

    python benchmarks/bench_speed.py                      # x2, 480x270 LR frame, tf-fp32 and tf-bf16
    python benchmarks/bench_speed.py --scale 2 4 --engines all
    python benchmarks/bench_speed.py --full               # a whole 1920x1080 -> 3840x2160 frame
"""
import sys

from sritm_tf.benchmarks import main

if __name__ == "__main__":
    sys.exit(main("speed"))
