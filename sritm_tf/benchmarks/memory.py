"""Peak memory (RSS) of one x2 conversion: tiled inference against one whole-frame call.

Each case runs in a fresh Python process, which builds the full-size network
(random weights: memory does not depend on them), makes a random LR Y'CbCr frame,
records its resident set, runs `sritm_tf.inference.TiledPredictor` once and
reports `ru_maxrss` (the process's peak RSS). "whole" is a tile as large as the
frame: a single model call.

    sritm bench memory            # LR 480x270 -> 960x540: whole, tiles 240x135 and 160x90
    sritm bench memory --full     # LR 1920x1080 -> 3840x2160: whole, tiles 960x540, 640x360, 480x270
    sritm bench memory --full --precision bf16 --tiles 960x540 640x360
    sritm bench memory --full --engine openvino --precision int8 --tiles 640x360

Prints a markdown table: case, tile, peak RSS, RSS before the call (model,
frame, TensorFlow, the engine's converted network), and the difference, in MiB.
With --engine openvino or litert the peak includes the engine's conversion (int8:
its calibration, unless the calibrated network is in the cache, `sritm_tf.calibration`).
"""
import resource
import sys

from sritm_tf.benchmarks import ChildError, run_child
from sritm_tf.commands import options
from sritm_tf.sizes import parse_shape


def measure(frame, tile, scale, precision="fp32", engine="tf"):
    """Runs in the child: (rss before the call, peak rss) in MiB."""
    import numpy as np

    from sritm_tf import build_deep_sritm, engines
    from sritm_tf.inference import TiledPredictor

    import keras

    keras.utils.set_random_seed(0)  # the same weights each run: an int8 network calibrated once is read back
    model = build_deep_sritm(scale=scale, skip="classical", precision=engines.model_precision(engine, precision))
    image = np.random.default_rng(0).random(tuple(frame) + (3,), dtype=np.float32)
    predictor = TiledPredictor(model, tile=tuple(tile), run=engines.runner(model, engine, precision))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    output = predictor(image)
    assert output.shape == (frame[0] * scale, frame[1] * scale, 3)
    return before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def add_arguments(parser):
    parser.add_argument("--full", action="store_true", help="a 1920x1080 LR frame (3840x2160 out)")
    options.add_scale(parser)
    parser.add_argument("--precision", choices=("fp32", "bf16", "int8"), default="fp32")
    parser.add_argument("--engine", choices=("tf", "openvino", "litert"), default="tf",
                        help="what runs the network (sritm convert --engine; int8: openvino or litert)")
    parser.add_argument("--tiles", nargs="+", metavar="WxH",
                        help="LR tiles to try (default: 960x540 640x360 480x270 with --full, else 240x135 160x90)")


def run(args):
    from sritm_tf.engines import resolve

    resolve(args.engine, args.precision)  # an engine that is missing or does not run that precision: one line
    frame = (1080, 1920) if args.full else (270, 480)
    tiles = [(540, 960), (360, 640), (270, 480)] if args.full else [(135, 240), (90, 160)]
    if args.tiles:
        tiles = [parse_shape(t, "--tiles") for t in args.tiles]  # (h, w)
    cases = [("tiled", t) for t in tiles] if args.tiles else [("whole", frame)] + [("tiled", t) for t in tiles]

    print(f"x{args.scale}, LR {frame[1]}x{frame[0]} -> HR {frame[1] * args.scale}x{frame[0] * args.scale}, "
          f"{args.precision} on {args.engine}")
    print("| case | tile (LR WxH) | peak RSS MiB | before call MiB | call adds MiB |")
    print("|---|---|---|---|---|")
    for name, tile in cases:
        try:
            before, peak = run_child("memory", {"frame": frame, "tile": tile, "scale": args.scale,
                                                "precision": args.precision, "engine": args.engine})
        except ChildError as e:
            print(f"| {name} | {tile[1]}x{tile[0]} | failed (exit {e.returncode}) | | |")
            print(e.tail(1), file=sys.stderr)
            continue
        print(f"| {name} | {tile[1]}x{tile[0]} | {peak:.0f} | {before:.0f} | {peak - before:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    from sritm_tf.benchmarks import child_main

    sys.exit(child_main(lambda job: measure(**job)))
