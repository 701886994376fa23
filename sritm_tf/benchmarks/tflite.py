"""TFLite (LiteRT) variants of Deep SR-ITM against the Keras model: PSNR on the
graded pairs of --pairs (default ../shared/data/graded) and CPU latency per tile.

The LR input is the MATLAB-style bicubic downscale of the SDR master
(`sritm_tf.data.resize.downscale`); the ground truth is the HDR10 master (PQ
BT.2020 R'G'B', E' = code / 65535). A TFLite file has one fixed input size, so
every variant, and the Keras model too, runs on the same tile-sized windows of
the LR frame (default: the 4 windows nearest the centre of each frame); PSNR is
over the PQ R'G'B' of those windows, MSE pooled over windows. Int8 calibration
uses the bundled sample image, never the graded pairs.

    sritm bench tflite                          # bundled weights, x2
    sritm bench tflite --weights w.npz --tile 480x270 --windows 0 --runs 10

--windows 0 covers the whole frame (windows overlap where the frame size is not
a multiple of the tile). Latency: median of --runs invocations on one tile,
--threads CPU threads (default: all cores), after one warm-up call.
"""
import os
import time
from pathlib import Path

import numpy as np

from sritm_tf import colour
from sritm_tf.commands import options
from sritm_tf.data.resize import downscale
from sritm_tf.imageio import read_image
from sritm_tf.sizes import parse_shape

QUANTIZE_MODES = ("none", "fp16", "dynamic", "int8")  # sritm_tf.export.QUANTIZE_MODES (tested equal)



def load_pair(graded, stem, scale):
    """(LR model Y'CbCr [h, w, 3], HR PQ BT.2020 R'G'B' [s h, s w, 3], HR SDR R'G'B') of a graded pair."""
    sdr = read_image(graded / f"{stem}_sdr.png") / 255.0  # drops alpha
    hdr = read_image(graded / f"{stem}_hdr.png") / 65535.0
    h, w = (sdr.shape[0] // scale) * scale, (sdr.shape[1] // scale) * scale
    lr = np.clip(downscale(sdr[:h, :w], scale), 0.0, 1.0)
    return colour.sdr_rgb_to_model_yuv(lr).astype(np.float32), hdr[:h, :w], sdr[:h, :w]


def window_starts(length, tile):
    """Start offsets of tile-sized windows covering `length`, the last flush with the end."""
    starts = list(range(0, max(length - tile, 0) + 1, tile))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


def windows(shape, tile, count):
    """(y, x) of the `count` windows nearest the frame centre (all when count is 0)."""
    h, w = shape[:2]
    boxes = [(y, x) for y in window_starts(h, tile[0]) for x in window_starts(w, tile[1])]
    centre = np.array([(h - tile[0]) / 2, (w - tile[1]) / 2])
    boxes.sort(key=lambda b: np.abs(np.array(b) - centre).sum())
    return sorted(boxes[:count] if count else boxes)


def pooled_psnr(predict_pq, hdr, boxes, tile, scale):
    """PSNR over the PQ R'G'B' of all windows, 10 log10(1 / MSE) with the MSE pooled;
    `predict_pq(y, x)` gives the HR PQ R'G'B' of the LR window at (y, x)."""
    errors = []
    for y, x in boxes:
        target = hdr[y * scale:(y + tile[0]) * scale, x * scale:(x + tile[1]) * scale]
        errors.append(np.mean((predict_pq(y, x) - target) ** 2))
    return float(10 * np.log10(1.0 / np.mean(errors)))


def median_latency(run, tile_input, runs):
    run(tile_input)  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run(tile_input)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def add_arguments(parser):
    options.add_scale(parser)
    parser.add_argument("--pairs", default=os.path.join("..", "shared", "data", "graded"),
                        help="folder of <name>_sdr.png / <name>_hdr.png graded pairs (default ../shared/data/graded)")
    options.add_weights(parser)
    parser.add_argument("--tile", default="128x128", help="LR tile WxH, the TFLite input size (default 128x128)")
    parser.add_argument("--windows", type=int, default=4, help="windows per frame, 0 = whole frame (default 4)")
    parser.add_argument("--runs", type=int, default=3, help="latency runs per variant (default 3)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--variants", default=",".join(QUANTIZE_MODES), help="comma-separated subset of "
                        + ",".join(QUANTIZE_MODES))


def run(args):
    import tensorflow as tf

    from sritm_tf.errors import MissingFileError
    from sritm_tf.export import convert_tflite, run_tflite, tflite_interpreter
    from sritm_tf.pretrained import load_model

    graded = Path(args.pairs)
    if not graded.is_dir():
        raise MissingFileError(f"{graded}: no such folder (--pairs: the graded pairs are needed)")
    tile = parse_shape(args.tile, "--tile")  # (h, w)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    except RuntimeError:  # TensorFlow already started (`sritm bench`): the Keras row keeps its threads
        pass
    model = load_model(args.scale, args.weights)
    stems = sorted(p.name[:-len("_sdr.png")] for p in graded.glob("*_sdr.png"))
    pairs = {stem: load_pair(graded, stem, args.scale) for stem in stems}
    boxes = {stem: windows(lr.shape, tile, args.windows) for stem, (lr, _, _) in pairs.items()}
    probe = pairs[stems[0]][0][:tile[0], :tile[1]]

    keras_fn = tf.function(lambda x: model(x, training=False),
                           input_signature=[tf.TensorSpec((1, *tile, 3), tf.float32)])
    runners = {"keras": (lambda x: keras_fn(x[None]).numpy()[0], None)}
    for mode in args.variants.split(","):
        start = time.perf_counter()
        content = convert_tflite(model, mode, tile)
        print(f"converted {mode}: {len(content) / 1e6:.2f} MB in {time.perf_counter() - start:.0f} s", flush=True)
        interpreter = tflite_interpreter(content, num_threads=args.threads)
        runners[f"tflite {mode}"] = (lambda x, it=interpreter: run_tflite(it, x), len(content))

    n_windows = sum(len(b) for b in boxes.values())
    print(f"\nx{args.scale}, tile {tile[1]}x{tile[0]} LR -> {tile[1] * args.scale}x{tile[0] * args.scale}, "
          f"{n_windows} windows, {args.threads} threads; PSNR in dB on PQ BT.2020 R'G'B'\n")
    header = f"{'variant':<16}{'MB':>7}" + "".join(f"{s:>14}" for s in stems) + f"{'mean':>9}{'vs keras':>10}{'ms/tile':>10}"
    print(header)
    print("-" * len(header))
    keras_mean = None
    for name, (run, size) in runners.items():
        scores = []
        for s in stems:
            lr, hdr, _ = pairs[s]
            predict = lambda y, x: colour.model_yuv_to_pq2020_rgb(run(lr[y:y + tile[0], x:x + tile[1]]))
            scores.append(pooled_psnr(predict, hdr, boxes[s], tile, args.scale))
        mean = float(np.mean(scores))
        keras_mean = mean if keras_mean is None else keras_mean
        latency = median_latency(run, probe, args.runs)
        mb = f"{size / 1e6:.2f}" if size else "-"
        print(f"{name:<16}{mb:>7}" + "".join(f"{v:>14.2f}" for v in scores)
              + f"{mean:>9.2f}{mean - keras_mean:>+10.2f}{latency:>10.1f}", flush=True)
    # Context: the classical BT.2408 mapping of the HR SDR master on the same windows.
    base_scores = []
    for s in stems:
        _, hdr, sdr = pairs[s]
        mapped = colour.sdr_to_hdr10_baseline(sdr)
        hr = lambda y, x: mapped[y * args.scale:(y + tile[0]) * args.scale, x * args.scale:(x + tile[1]) * args.scale]
        base_scores.append(pooled_psnr(hr, hdr, boxes[s], tile, args.scale))
    print(f"{'BT.2408 (HR SDR)':<16}{'-':>7}" + "".join(f"{v:>14.2f}" for v in base_scores)
          + f"{np.mean(base_scores):>9.2f}{np.mean(base_scores) - keras_mean:>+10.2f}{'-':>10}")
    return 0
