"""Inference speed of Deep SR-ITM against this machine's physical peak (`sritm bench speed`).

In one run it prints:

1. the CPU's peak for float32 FMA, bfloat16 and int8 matrix work, twice:
   nominal  = FLOP per cycle per core (from the ISA flags) x cores x clock, with
              FLOP/cycle/core: float32 64 with AVX-512 (two 512-bit FMA pipes:
              2 x 16 lanes x 2), 32 with AVX2; bfloat16 1024 with AMX-BF16, 128
              with AVX512-BF16 (two VDPBF16PS), else the float32 figure; int8 2048
              with AMX-INT8, 256 with AVX512-VNNI (two VPDPBUSD), 128 with AVX-VNNI;
              the clock is the CPU's maximum frequency where Linux tells it (cpufreq),
              else the frequency /proc/cpuinfo reports (in a VM often the base clock,
              so a measured peak at turbo clocks can exceed the nominal figure);
   measured = a large matrix product in that precision through the engine (oneDNN
              under TensorFlow): the practical ceiling. int8 (LiteRT) has no measured peak yet.
2. per engine and precision: achieved GFLOP/s of the whole tiled frame (guided
   filter, skips and tile margins included; GFLOP counted for the useful output,
   `sritm_tf.flops`), its ratio to the matching measured peak, and seconds per
   1080p -> 4K frame (x2; at x4 a 960x540 LR frame);
3. last line: `s_per_4k_frame=<best engine> peak_ratio=<its achieved / its measured peak>`, of
   the x2 rows when there are any.

Each engine runs in a fresh process (TF_ENABLE_ONEDNN_OPTS and KERAS_BACKEND are read
once, at import). Wall times on a shared machine are noisy; the ratios are taken in the
same run as the peaks they are divided by.
"""
import itertools
import json
import os
import sys
import time

from sritm_tf.benchmarks import UHD, ChildError, best_time, run_child
from sritm_tf.presets import MODELS

# name -> (environment, precision, how the model runs)
ENGINES = {
    "tf-fp32": ({"KERAS_BACKEND": "tensorflow", "TF_ENABLE_ONEDNN_OPTS": "1"}, "fp32", "tiled"),
    "tf-bf16": ({"KERAS_BACKEND": "tensorflow", "TF_ENABLE_ONEDNN_OPTS": "1"}, "bf16", "tiled"),
    "tf-xla-fp32": ({"KERAS_BACKEND": "tensorflow", "TF_ENABLE_ONEDNN_OPTS": "1"}, "fp32", "xla"),
    "jax-fp32": ({"KERAS_BACKEND": "jax"}, "fp32", "xla"),
    "jax-bf16": ({"KERAS_BACKEND": "jax"}, "bf16", "xla"),
    # sritm_tf.engines (sritm convert --engine): the float32 network, lowered by the engine itself
    "openvino-fp32": ({"KERAS_BACKEND": "tensorflow"}, "fp32", "openvino"),
    "openvino-bf16": ({"KERAS_BACKEND": "tensorflow"}, "bf16", "openvino"),
    "openvino-int8": ({"KERAS_BACKEND": "tensorflow"}, "int8", "openvino"),  # NNCF, calibrated once (cached)
    "litert-fp32": ({"KERAS_BACKEND": "tensorflow"}, "fp32", "litert"),
    "litert-int8": ({"KERAS_BACKEND": "tensorflow"}, "int8", "litert"),
}
DEFAULT_ENGINES = ["tf-fp32", "tf-bf16"]


def add_arguments(p):
    p.add_argument("--scale", type=int, nargs="+", choices=(2, 4), default=[2])
    p.add_argument("--model", nargs="+", choices=("full", "tv"), default=["full"],
                   help="the networks to time (default full; tv: the TV-class network, sritm_tf.presets.MODELS)")
    p.add_argument("--full", action="store_true",
                   help="a whole 4K output frame (LR 1920x1080 at x2, 960x540 at x4) instead of a 480x270 LR frame")
    p.add_argument("--frame", metavar="WxH", help="LR frame size (overrides the default / --full size)")
    p.add_argument("--tile", nargs="+", metavar="WxH",
                   help="LR tile cores to try (default 640x360, and 480x270 for small frames)")
    p.add_argument("--engines", nargs="+", default=DEFAULT_ENGINES,
                   help=f"any of {', '.join(ENGINES)} or 'all' (default: {' '.join(DEFAULT_ENGINES)})")
    p.add_argument("--repeats", type=int, default=2, help="timed runs per measurement, the best is kept")
    p.add_argument("--json", help="also write the peaks and rows to this JSON file")
    p.add_argument("--profile", action="store_true",
                   help="also print the time per op type of one tile on OpenVINO bf16 (its PERF_COUNT)")


# ---------------------------------------------------------------------------
# Peaks
# ---------------------------------------------------------------------------
def _max_clock_ghz():
    try:
        with open("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq") as f:
            return int(f.read()) / 1e6, "cpufreq max"
    except (OSError, ValueError):
        pass
    try:
        with open("/proc/cpuinfo") as f:
            mhz = [float(line.split(":")[1]) for line in f if line.startswith("cpu MHz")]
        return max(mhz) / 1e3, "/proc/cpuinfo current"
    except (OSError, ValueError):
        return float("nan"), "unknown"


def nominal_peaks(flags=None, cores=None):
    """{precision: (GFLOP/s, "formula")} from ISA flags x cores x clock (module doc)."""
    from sritm_tf.precision import cpu_flags

    flags = cpu_flags() if flags is None else flags
    cores = cores or len(os.sched_getaffinity(0))
    ghz, clock = _max_clock_ghz()
    fp32 = 64 if "avx512f" in flags else 32
    bf16 = 1024 if "amx_bf16" in flags else 128 if "avx512_bf16" in flags else fp32
    int8 = 2048 if "amx_int8" in flags else 256 if "avx512_vnni" in flags else 128 if "avx_vnni" in flags else fp32
    out = {}
    for name, per_cycle in (("fp32", fp32), ("bf16", bf16), ("int8", int8)):
        out[name] = (per_cycle * cores * ghz, f"{per_cycle} x {cores} cores x {ghz:.2f} GHz ({clock})")
    return out


def measured_peaks(size=4096, repeats=3):
    """{precision: GFLOP/s} of a size^3 matrix product through TensorFlow (oneDNN)."""
    import numpy as np
    import tensorflow as tf

    out = {}
    for name, dtype in (("fp32", tf.float32), ("bf16", tf.bfloat16)):
        a = tf.constant(np.random.default_rng(0).random((size, size), np.float32), dtype=dtype)
        matmul = tf.function(lambda x: tf.linalg.matmul(x, x))
        matmul(a).numpy()
        best = best_time(lambda: matmul(a).numpy(), repeats)
        out[name] = 2 * size**3 / best / 1e9
    int8 = measured_int8_peak(size // 2, repeats)
    if int8:
        out["int8"] = int8
    return out


def measured_int8_peak(size=2048, repeats=3):
    """GOP/s of a size^3 int8 matrix product through LiteRT (XNNPACK), the engine
    that runs int8 here: a Dense layer quantised to int8, batch `size`. None
    without ai-edge-litert."""
    import importlib.util

    if importlib.util.find_spec("ai_edge_litert") is None:
        return None
    import keras
    import numpy as np
    import tensorflow as tf

    from sritm_tf.export import run_tflite, tflite_interpreter

    x = np.random.default_rng(0).random((size, size), np.float32)
    dense = keras.Sequential([keras.Input((size,), batch_size=size), keras.layers.Dense(size, use_bias=False)])
    converter = tf.lite.TFLiteConverter.from_keras_model(dense)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x] for _ in range(2))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    interpreter = tflite_interpreter(converter.convert(), num_threads=os.cpu_count())
    codes = np.random.default_rng(1).integers(-128, 128, (size, size), dtype=np.int8)
    run = lambda: run_tflite(interpreter, codes, dtype=np.int8)  # noqa: E731
    run()
    return 2 * size**3 / best_time(run, repeats) / 1e9


# ---------------------------------------------------------------------------
# Worker: one engine, one scale, in a fresh process
# ---------------------------------------------------------------------------
def _runner(model, mode, precision):
    """A function NHWC float32 batch -> output array."""
    if mode == "tiled":
        return None  # TiledPredictor's own tf.function
    if mode in ("openvino", "litert"):
        from sritm_tf import engines

        return engines.runner(model, mode, precision)
    model.compile(jit_compile=True)
    return model.predict_on_batch


def openvino_profile(scale, tile):
    """{op type: seconds} of one tile (core `tile` plus the tiling margin on each side) of the
    x`scale` network on OpenVINO bf16, from OpenVINO's own per-node counters (PERF_COUNT)."""
    import collections

    import numpy as np
    import openvino as ov

    from sritm_tf.engines import openvino_config, openvino_network
    from sritm_tf.inference import receptive_margin
    from sritm_tf.model import build_deep_sritm

    model = build_deep_sritm(scale=scale, skip="classical", precision="fp32")
    margin = receptive_margin(model)
    network = openvino_network(model)
    shape = [1, tile[0] + 2 * margin, tile[1] + 2 * margin, 3]
    network.reshape({0: shape})
    compiled = ov.Core().compile_model(network, "CPU", openvino_config("bf16", PERF_COUNT="YES"))
    request = compiled.create_infer_request()
    x = np.random.default_rng(0).random(shape, np.float32)
    request.infer({0: x})
    request.infer({0: x})
    seconds = collections.Counter()
    for node in request.get_profiling_info():
        seconds[node.node_type] += node.real_time.total_seconds()
    return dict(seconds.most_common())


def format_profile(seconds):
    total = sum(seconds.values())
    lines = ["| op type | s per tile | share |", "|---|---|---|"]
    lines += [f"| {name} | {t:.3f} | {t / total:.1%} |" for name, t in seconds.items() if t / total >= 0.001]
    return "\n".join(lines + [f"| all | {total:.3f} | |"])


def worker(job):
    import numpy as np

    if job.get("profile"):
        return openvino_profile(job["scale"], tuple(job["tile"]))

    from sritm_tf import engines
    from sritm_tf.flops import model_macs
    from sritm_tf.inference import TiledPredictor
    from sritm_tf.model import build_deep_sritm

    if job.get("peaks"):
        return measured_peaks()
    _, precision, mode = ENGINES[job["engine"]]
    scale, frame, repeats = job["scale"], tuple(job["frame"]), job["repeats"]
    import keras

    keras.utils.set_random_seed(0)  # the same weights each run: an int8 network calibrated once is read back
    model = build_deep_sritm(scale=scale, skip="classical", **MODELS[job.get("model", "full")],
                             precision=precision if mode in ("tiled", "xla") else engines.model_precision(mode, precision))
    image = np.random.default_rng(0).random(frame + (3,), dtype=np.float32)
    run = _runner(model, mode, precision)  # converted once; an engine compiles each new tile shape
    macs = model_macs(model, *frame)
    rows = []
    for tile in job["tiles"]:
        tile = (min(tile[0], frame[0]), min(tile[1], frame[1]))
        predictor = TiledPredictor(model, tile=tile, run=run)
        t0 = time.perf_counter()
        predictor(image)
        first = time.perf_counter() - t0
        seconds = best_time(lambda: predictor(image), repeats)
        uhd_lr_pixels = UHD[0] * UHD[1] / scale**2
        rows.append({
            "engine": job["engine"], "precision": precision, "scale": scale, "model": job.get("model", "full"),
            "frame": f"{frame[1]}x{frame[0]}", "tile": f"{tile[1]}x{tile[0]}",  # WxH
            "gflops": 2 * macs / seconds / 1e9,
            "s_per_4k_frame": seconds * uhd_lr_pixels / (frame[0] * frame[1]),
            "extrapolated": frame[0] * frame[1] != uhd_lr_pixels, "first_call_s": first,
        })
    return rows


def _run_worker(job, env):
    try:
        return run_child("speed", job, env)
    except ChildError as e:
        print(e, file=sys.stderr)
        return None


# ---------------------------------------------------------------------------
# Parent: peaks, engines, tables
# ---------------------------------------------------------------------------
def format_peaks(nominal, measured):
    lines = ["| precision | nominal GFLOP/s | formula | measured GFLOP/s (matmul) | measured / nominal |",
             "|---|---|---|---|---|"]
    for name, (value, formula) in nominal.items():
        m = measured.get(name)
        cells = (name, f"{value:.0f}", formula, f"{m:.0f}" if m else "n/a (not measured)",
                 f"{m / value:.2f}" if m else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_rows(rows):
    head = ("model", "engine", "precision", "scale", "LR frame", "tile", "GFLOP/s", "of measured peak", "s per 4K frame",
            "first call s")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = (r.get("model", "full"), r["engine"], r["precision"], f"x{r['scale']}", r["frame"], r["tile"], f"{r['gflops']:.0f}",
                 f"{r['peak_ratio']:.2f}" if r.get("peak_ratio") else "", 
                 f"{r['s_per_4k_frame']:.1f}{'*' if r['extrapolated'] else ''}", f"{r['first_call_s']:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(args):
    from sritm_tf.errors import UserError
    from sritm_tf.sizes import parse_shape

    frame_arg = parse_shape(args.frame, "--frame") if args.frame else None  # (h, w) from here on
    tiles_arg = [parse_shape(t, "--tile") for t in args.tile] if args.tile else None
    engines = list(ENGINES) if args.engines == ["all"] else args.engines
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        raise UserError(f"unknown engine {unknown[0]!r}; choose from {', '.join(ENGINES)} or 'all'")

    print("measuring the matrix-product peaks ...", file=sys.stderr, flush=True)
    nominal = nominal_peaks()
    measured = _run_worker({"peaks": True}, ENGINES["tf-fp32"][0]) or {}
    print(format_peaks(nominal, measured))
    print()

    rows = []
    for scale, network, engine in itertools.product(args.scale, args.model, engines):
        frame = frame_arg or ((UHD[0] // scale, UHD[1] // scale) if args.full else (270, 480))
        tiles = tiles_arg or ([(360, 640)] if args.full else [frame, (frame[0] // 2, frame[1] // 2)])
        job = {"engine": engine, "scale": scale, "frame": list(frame), "tiles": [list(t) for t in tiles],
               "repeats": args.repeats, "model": network}
        print(f"running {network} {engine} x{scale}, LR frame {frame[1]}x{frame[0]} ...", file=sys.stderr, flush=True)
        new = _run_worker(job, ENGINES[engine][0]) or []
        for r in new:
            peak = measured.get(r["precision"])
            r["peak_ratio"] = r["gflops"] / peak if peak else None
        rows += new
    if not rows:
        print("no engine ran", file=sys.stderr)
        return 1
    print(format_rows(rows))
    if any(r["extrapolated"] for r in rows):
        print("* extrapolated from the measured frame to the LR pixels of one 3840x2160 output frame")
    if args.json:
        from sritm_tf.fileio import atomic_path

        with atomic_path(args.json) as tmp, open(tmp, "w") as f:
            json.dump({"nominal": nominal, "measured": measured, "rows": rows}, f, indent=1)
    if args.profile:
        from sritm_tf.engines import installed

        if installed("openvino"):
            tile = tiles_arg[0] if tiles_arg else (360, 640)
            print(f"\nTime per op type, OpenVINO bf16, x{args.scale[0]}, one {tile[1]}x{tile[0]} tile plus margins:")
            print(format_profile(_run_worker({"profile": True, "scale": args.scale[0], "tile": list(tile)},
                                             ENGINES["openvino-bf16"][0]) or {}))
        else:
            print("--profile: OpenVINO is not installed (pip install \"sritm_tf[openvino]\")", file=sys.stderr)
    full = [r for r in rows if r["model"] == "full"] or rows  # the last line speaks of the full network
    best = min([r for r in full if r["scale"] == 2] or full, key=lambda r: r["s_per_4k_frame"])
    ratio = f"{best['peak_ratio']:.3f}" if best.get("peak_ratio") else "nan"
    print(f"s_per_4k_frame={best['s_per_4k_frame']:.2f} peak_ratio={ratio}")
    return 0


if __name__ == "__main__":
    from sritm_tf.benchmarks import child_main

    sys.exit(child_main(worker))
