"""Inference speed of the full Deep SR-ITM against a bare-conv roofline.

Same as `sritm bench speed`; see `sritm_tf/commands/bench.py` and the Results section of
the top-level README.md.

    python benchmarks/bench_speed.py                      # x2, 480x270 LR frame, settings tf and tf-xla
    python benchmarks/bench_speed.py --scale 2 4 --settings all
    python benchmarks/bench_speed.py --full               # a whole 1920x1080 -> 3840x2160 frame
"""
import sys

from sritm_tf.commands.bench import speed_main

if __name__ == "__main__":
    sys.exit(speed_main())
