"""Training throughput: patches per second of a full Deep SR-ITM training step
and of the tf.data input pipeline alone.

    sritm bench train                   # x2, batch 4 of 80x80 LR patches, 3 timed steps
    sritm bench train --batch-size 16 --steps 5 --scale 4

Training step: `train_on_batch` of the full network compiled as the trainer
compiles it (`sritm_tf.train.networks.compile_model`: Adam, MSE, PSNR/SSIM metrics) on
random batches; the first step (tracing, compilation) is timed apart.
Approximate GFLOP/s counts a step as 3x the forward MACs (forward + backward).

Pipeline: a temporary shard of 96x96 LR / HR patch records (cut from the
bundled sample image, HDR by the BT.2408 mapping) read by `make_dataset`
with the training settings (shuffle, 80x80 crop, flips, rotations, batch),
repeated; batches per second after the first, times the batch size.
"""
import os
import tempfile
import time

import numpy as np

from sritm_tf.commands import options


def train_step_rate(scale, batch, patch, steps):
    import keras

    from sritm_tf import build_deep_sritm
    from sritm_tf.flops import model_macs

    model = build_deep_sritm(scale=scale)
    try:
        from sritm_tf.train.networks import compile_model
        compile_model(model, 1e-4)
        how = "sritm_tf.train.networks.compile_model"
    except ImportError:
        model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="mse")
        how = "Adam + MSE"
    rng = np.random.default_rng(0)
    x = rng.random((batch, patch, patch, 3), dtype=np.float32)
    y = rng.random((batch, patch * scale, patch * scale, 3), dtype=np.float32)
    t0 = time.perf_counter()
    model.train_on_batch(x, y)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    seconds = (time.perf_counter() - t0) / steps
    gflops = 3 * 2 * batch * model_macs(model, patch, patch) / seconds / 1e9
    return {"compile": how, "jit_compile": model.jit_compile, "first_step_s": first, "step_s": seconds,
            "patches_per_s": batch / seconds, "approx_gflops": gflops}


def write_shard(folder, scale, count=64, size=96):
    """`count` records of `size`-pixel LR patches (and their HR twins) from the sample image."""
    import cv2

    from sritm_tf import colour, imageio
    from sritm_tf.data.records import encode_example
    from sritm_tf.pretrained import sample_path

    import tensorflow as tf

    sdr = imageio.read_sdr_image(sample_path()) / 255.0
    hr = cv2.resize(sdr, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC).clip(0, 1)
    hdr = colour.sdr_to_hdr10_baseline(hr)
    rng = np.random.default_rng(0)
    path = os.path.join(folder, "shard-00000.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for _ in range(count):
            y, x = rng.integers(0, sdr.shape[0] - size), rng.integers(0, sdr.shape[1] - size)
            lr8 = np.round(sdr[y:y + size, x:x + size] * 255).astype(np.uint8)
            box = (y * scale, x * scale, size * scale, size * scale)
            hr16 = np.round(hdr[box[0]:box[0] + box[2], box[1]:box[1] + box[3]] * 65535).astype(np.uint16)
            writer.write(encode_example(lr8, hr16, "sample_sdr.png", 0, box, "bt2408"))
    return folder


def pipeline_rate(scale, batch, patch, batches):
    from sritm_tf.pipeline import make_dataset

    with tempfile.TemporaryDirectory() as folder:
        write_shard(folder, scale)
        dataset = iter(make_dataset(folder, batch, scale, training=True, seed=0, patch_size=patch))
        next(dataset)
        t0 = time.perf_counter()
        for _ in range(batches):
            next(dataset)
        seconds = time.perf_counter() - t0
    return {"batches": batches, "patches_per_s": batches * batch / seconds}


def add_arguments(parser):
    options.add_scale(parser)
    parser.add_argument("--batch-size", type=int, default=4, help=f"{options.BATCH_SIZE_HELP} (default 4)")
    parser.add_argument("--patch-size", type=int, default=80, help=f"{options.PATCH_SIZE_HELP} (default 80)")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps (after one warm-up)")
    parser.add_argument("--pipeline-batches", type=int, default=50)


def run(args):

    step = train_step_rate(args.scale, args.batch_size, args.patch_size, args.steps)
    print(f"x{args.scale}, batch {args.batch_size} of {args.patch_size}x{args.patch_size} LR patches, {args.steps} timed steps")
    print("| what | patches/s | s per step | first step s | approx GFLOP/s |")
    print("|---|---|---|---|---|")
    print(f"| train step ({step['compile']}, jit_compile={step['jit_compile']}) | {step['patches_per_s']:.2f} | "
          f"{step['step_s']:.2f} | {step['first_step_s']:.1f} | {step['approx_gflops']:.0f} |")
    pipe = pipeline_rate(args.scale, args.batch_size, args.patch_size, args.pipeline_batches)
    print(f"| input pipeline alone ({pipe['batches']} batches) | {pipe['patches_per_s']:.0f} | | | |")
    return 0
