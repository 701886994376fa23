"""`sritm bench speed|memory|train|pipeline|tflite`: the benchmarks.

`speed` is `sritm_tf.benchmarks.speed` (against this machine's physical peak); the
others run the scripts of a source checkout's benchmarks/ folder.
"""
import os
import sys


def register(subparsers):
    p = subparsers.add_parser("bench", help="benchmarks: speed, memory, train, pipeline, tflite")
    sub = p.add_subparsers(dest="bench", metavar="BENCH", required=True)
    from sritm_tf.benchmarks import speed as speed_bench

    speed = sub.add_parser("speed", help="GFLOP/s and seconds per 4K frame against the CPU's physical peak",
                           description=speed_bench.__doc__.split("\n\n")[0])
    speed_bench.add_arguments(speed)
    speed.set_defaults(func=speed_bench.run)
    for name, text in SCRIPTS.items():
        script = sub.add_parser(name, help=text, add_help=False,
                                description=f"Runs benchmarks/bench_{name}.py of a source checkout; "
                                            "the arguments go to the script (--help lists them).")
        script.set_defaults(func=run_script, script=name, pass_through=True)


# Benchmarks that live as scripts in the repository's benchmarks/ folder.
SCRIPTS = {
    "memory": "peak RSS of a 1080p -> 4K conversion, tiled vs whole frame",
    "train": "patches per second of a training step and of the input pipeline",
    "pipeline": "input pipeline next to training speed on your own records",
    "tflite": "TFLite variants: PSNR on the graded pairs and latency per tile",
}


def run_script(args):
    """Runs benchmarks/bench_<name>.py (found beside the package in a source checkout)."""
    import runpy

    from sritm_tf.errors import UserError

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.path.join(root, "benchmarks", f"bench_{args.script}.py")
    if not os.path.isfile(path):
        raise UserError(f"{path}: not found; the benchmark scripts come with a source checkout "
                        "(pip install -e .), not with a wheel")
    saved = sys.argv
    sys.argv = [path, *args.extra_args]
    try:
        runpy.run_path(path, run_name="__main__")
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        sys.argv = saved
    return 0
