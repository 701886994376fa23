"""`sritm bench speed`: inference speed of the full Deep SR-ITM against this
machine's practical roofline.

For each setting (backend, oneDNN, XLA) a fresh Python process builds the
full-size network and measures, best of `--repeats` runs:

  conv   a bare 3x3 64->64 convolution on the tile's LR size, run the same way
         as the model: the practical roofline of this CPU and backend;
  model  one model call on one tile (no margin);
  e2e    the whole LR frame through tiled inference (margins, guided filter,
         bicubic skip included): `sritm_tf.inference.TiledPredictor` for the
         `tf` settings, the same tiling (`tile_bounds`, `receptive_margin`)
         around `predict_on_batch` for the compiled ones.

GFLOP/s = 2 * MACs / seconds, MACs counted from the layers (`sritm_tf.flops`)
for the useful output only (tile margins are overhead). Seconds per 4K frame
are the e2e seconds scaled by the LR pixels of a 3840x2160 output (an
extrapolation unless `--full`). The last line printed is
`roofline_ratio=<best e2e / conv of the x2 rows>`.

Each setting runs in its own process because TF_ENABLE_ONEDNN_OPTS and
KERAS_BACKEND are read once, at import. No TensorFlow import happens in this
module outside the TensorFlow settings' worker.
"""
import json
import os
import subprocess
import sys
import time

# name -> (environment, how the model is run)
SETTINGS = {
    "tf": ({"KERAS_BACKEND": "tensorflow", "TF_ENABLE_ONEDNN_OPTS": "1"}, "tiled"),
    "tf-nodnn": ({"KERAS_BACKEND": "tensorflow", "TF_ENABLE_ONEDNN_OPTS": "0"}, "tiled"),
    "tf-predict": ({"KERAS_BACKEND": "tensorflow", "TF_ENABLE_ONEDNN_OPTS": "1"}, "predict"),
    "tf-xla": ({"KERAS_BACKEND": "tensorflow", "TF_ENABLE_ONEDNN_OPTS": "1"}, "predict-xla"),
    "tf-xla-nodnn": ({"KERAS_BACKEND": "tensorflow", "TF_ENABLE_ONEDNN_OPTS": "0"}, "predict-xla"),
    "jax": ({"KERAS_BACKEND": "jax"}, "predict-xla"),
}
DEFAULT_SETTINGS = ["tf", "tf-xla"]
UHD = (2160, 3840)


def add_speed_arguments(p):
    p.add_argument("--scale", type=int, nargs="+", choices=(2, 4), default=[2])
    p.add_argument("--full", action="store_true",
                   help="a whole 4K output frame (LR 1920x1080 at x2, 960x540 at x4) instead of a 480x270 LR frame")
    p.add_argument("--frame", metavar="WxH", help="LR frame size (overrides the default / --full size)")
    p.add_argument("--tile", nargs="+", metavar="WxH",
                   help="LR tile cores to try (default: the frame and its half; with --full 960x540, 640x360 and 480x270)")
    p.add_argument("--settings", nargs="+", default=DEFAULT_SETTINGS,
                   help=f"any of {', '.join(SETTINGS)} or 'all' (default: {' '.join(DEFAULT_SETTINGS)})")
    p.add_argument("--repeats", type=int, default=2, help="timed runs per measurement, the best is kept")
    p.add_argument("--json", help="also write the rows to this JSON file")


def register(subparsers):
    p = subparsers.add_parser("bench", help="benchmarks: speed, memory, train, pipeline, tflite")
    sub = p.add_subparsers(dest="bench", metavar="BENCH", required=True)
    speed = sub.add_parser("speed", help="GFLOP/s and seconds per 4K frame against a bare-conv roofline")
    add_speed_arguments(speed)
    speed.set_defaults(func=run)
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


# ---------------------------------------------------------------------------
# Worker: one setting, one scale, in a fresh process
# ---------------------------------------------------------------------------
def _best(fn, repeats):
    """(first call seconds, best of `repeats` later calls)."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return first, min(times)


def _tiled(run, image, tile, margin):
    """The tiling of `sritm_tf.inference.TiledPredictor` around any batch runner."""
    import numpy as np

    from sritm_tf.inference import tile_bounds

    height, width = image.shape[:2]
    output = None
    for y0, y1 in tile_bounds(height, tile[0]):
        for x0, x1 in tile_bounds(width, tile[1]):
            top, left = max(0, y0 - margin), max(0, x0 - margin)
            bottom, right = min(height, y1 + margin), min(width, x1 + margin)
            result = np.asarray(run(image[None, top:bottom, left:right]))[0]
            s = result.shape[0] // (bottom - top)
            if output is None:
                output = np.empty((height * s, width * s, result.shape[-1]), np.float32)
            output[y0 * s:y1 * s, x0 * s:x1 * s] = result[(y0 - top) * s:(y1 - top) * s,
                                                          (x0 - left) * s:(x1 - left) * s]
    return output


def _make_runner(model, mode):
    """A function NHWC float32 batch -> output array, run as `mode` says."""
    if mode == "tiled":
        import tensorflow as tf

        fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        return lambda x: fn(x).numpy()
    model.compile(jit_compile=mode == "predict-xla")
    return model.predict_on_batch


def worker(job):
    import keras
    import numpy as np

    from sritm_tf import build_deep_sritm
    from sritm_tf.flops import conv_macs, model_macs
    from sritm_tf.inference import TiledPredictor, receptive_margin

    mode = SETTINGS[job["setting"]][1]
    scale, frame, repeats = job["scale"], tuple(job["frame"]), job["repeats"]
    rng = np.random.default_rng(0)
    model = build_deep_sritm(scale=scale)
    margin = receptive_margin(model)
    image = rng.random(frame + (3,), dtype=np.float32)
    run_model = _make_runner(model, mode)

    conv = keras.Sequential([keras.Input((None, None, 64)), keras.layers.Conv2D(64, 3, padding="same")])
    run_conv = _make_runner(conv, mode)
    rows = []
    for tile in job["tiles"]:
        tile = (min(tile[0], frame[0]), min(tile[1], frame[1]))
        features = rng.random((1,) + tile + (64,), dtype=np.float32)
        _, conv_s = _best(lambda: run_conv(features), repeats)
        conv_gflops = 2 * conv_macs(*tile, 3, 3, 64, 64) / conv_s / 1e9

        patch = image[None, :tile[0], :tile[1]]
        model_first, model_s = _best(lambda: run_model(patch), repeats)
        model_gflops = 2 * model_macs(model, *tile) / model_s / 1e9

        if mode == "tiled":
            predictor = TiledPredictor(model, tile=tile, margin=margin)
            e2e = lambda: predictor(image)
        else:
            e2e = lambda: _tiled(run_model, image, tile, margin)
        e2e_first, e2e_s = _best(e2e, repeats)
        e2e_gflops = 2 * model_macs(model, *frame) / e2e_s / 1e9
        uhd_lr_pixels = UHD[0] * UHD[1] / scale**2
        rows.append({
            "setting": job["setting"], "backend": keras.backend.backend(), "scale": scale,
            "frame": f"{frame[1]}x{frame[0]}", "tile": f"{tile[1]}x{tile[0]}", "margin": margin,  # WxH
            "conv_gflops": conv_gflops, "model_gflops": model_gflops, "model_ratio": model_gflops / conv_gflops,
            "e2e_gflops": e2e_gflops, "e2e_ratio": e2e_gflops / conv_gflops,
            "s_per_4k_frame": e2e_s * uhd_lr_pixels / (frame[0] * frame[1]),
            "extrapolated": frame[0] * frame[1] != uhd_lr_pixels,
            "first_call_s": max(model_first, e2e_first),
        })
    return rows


# ---------------------------------------------------------------------------
# Parent: one subprocess per setting and scale, then the table
# ---------------------------------------------------------------------------
def _run_worker(job):
    env = {**os.environ, **SETTINGS[job["setting"]][0], "TF_CPP_MIN_LOG_LEVEL": "2"}
    cmd = [sys.executable, "-m", "sritm_tf.commands.bench", "--worker", json.dumps(job)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("[")]
    if proc.returncode or not lines:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        print(f"setting {job['setting']} x{job['scale']} failed (exit {proc.returncode}):\n{tail}", file=sys.stderr)
        return []
    return json.loads(lines[-1])


def format_table(rows):
    head = ("setting", "backend", "scale", "LR frame", "tile", "conv GF/s", "model GF/s", "model/conv",
            "e2e GF/s", "e2e/conv", "s/4K frame", "first call s")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = (r["setting"], r["backend"], f"x{r['scale']}", r["frame"], r["tile"], f"{r['conv_gflops']:.1f}",
                 f"{r['model_gflops']:.1f}", f"{r['model_ratio']:.2f}", f"{r['e2e_gflops']:.1f}",
                 f"{r['e2e_ratio']:.2f}", f"{r['s_per_4k_frame']:.1f}{'*' if r['extrapolated'] else ''}",
                 f"{r['first_call_s']:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(args):
    from sritm_tf.errors import UserError
    from sritm_tf.sizes import parse_shape

    args.frame = parse_shape(args.frame, "--frame") if args.frame else None  # (h, w) from here on
    args.tile = [parse_shape(t, "--tile") for t in args.tile] if args.tile else None
    settings = list(SETTINGS) if args.settings == ["all"] else args.settings
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        raise UserError(f"unknown setting {unknown[0]!r}; choose from {', '.join(SETTINGS)} or 'all'")
    rows = []
    for scale in args.scale:
        frame = args.frame or ((UHD[0] // scale, UHD[1] // scale) if args.full else (270, 480))
        tiles = args.tile or ([(540, 960), (360, 640), (270, 480)] if args.full else [frame, (frame[0] // 2, frame[1] // 2)])
        for setting in settings:
            job = {"setting": setting, "scale": scale, "frame": list(frame), "tiles": [list(t) for t in tiles],
                   "repeats": args.repeats}
            print(f"running {setting} x{scale}, LR frame {frame[1]}x{frame[0]} ...", file=sys.stderr, flush=True)
            new_rows = _run_worker(job)
            if new_rows:  # progress: the rows so far, in case the run is cut short
                print("\n".join(format_table(new_rows).splitlines()[2:]), file=sys.stderr, flush=True)
            rows += new_rows
    if not rows:
        print("no setting ran", file=sys.stderr)
        return 1
    print(format_table(rows))
    print("* extrapolated from the measured frame to the LR pixels of one 3840x2160 output frame")
    if args.json:
        from sritm_tf.fileio import atomic_path

        with atomic_path(args.json) as tmp, open(tmp, "w") as f:
            json.dump(rows, f, indent=1)
    ref = [r for r in rows if r["scale"] == 2] or rows
    best = max(ref, key=lambda r: r["e2e_ratio"])
    print(f"best: {best['setting']} x{best['scale']} tile {best['tile']}")
    print(f"roofline_ratio={best['e2e_ratio']:.3f}")
    return 0


def speed_main(argv=None):
    """Entry point of benchmarks/bench_speed.py: the same as `sritm bench speed`."""
    import argparse

    parser = argparse.ArgumentParser(prog="bench_speed.py", description=__doc__.split("\n\n")[0])
    add_speed_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        print(json.dumps(worker(json.loads(sys.argv[2]))))
    else:
        sys.exit(speed_main())
