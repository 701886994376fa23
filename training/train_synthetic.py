"""Trains Deep SR-ITM with the classical skip on pairs synthesised on the fly.

Pairs come from `sritm_tf.data.augment` (scene-linear HDR -> random white level,
colour augmentation, BT.2390-mastered HDR10 target, white-anchored SDR, bicubic LR),
made by a pool of CPU worker processes while the network trains on any Keras
backend (JAX on a GPU: `KERAS_BACKEND=jax`). The learning rate follows a cosine
over the wall-clock budget, so a run fits the time it is given. Each epoch writes
the weights (`deep_sritm_x{scale}.npz`) and a line of the learning curve (training
loss, validation loss on pairs from held-out scenes, and the classical mapping's
loss on the same pairs) to `--out`.

    KERAS_BACKEND=jax python training/train_synthetic.py --scenes .devdata/scenes \\
        --val-scenes .devdata/val --scale 2 --minutes 5 --out runs/synth_x2
"""
import argparse
import collections
import json
import math
import multiprocessing
import os
import time

# One thread per worker process: a BLAS pool of every core in each of a dozen workers
# oversubscribes the CPUs (on a 16-core GPU machine, training ran 6-8x slower). Set before
# numpy loads its BLAS; the forked workers inherit it. The main process gets it too, which
# leaves TensorFlow's and XLA's own thread pools as they are.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

_SCENES = None


def _scene_files(folder):
    """The scene names that `folder`'s index.json (`training/pack_scenes.py`) lists, each
    with its PNG there; ValueError saying what is wrong otherwise."""
    path = os.path.join(folder, "index.json")
    if not os.path.isfile(path):
        raise ValueError(f"{folder}: no index.json (not a training/pack_scenes.py output folder)")
    try:
        with open(path) as f:
            names = [entry["name"] for entry in json.load(f)]
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{path}: not a scene list of training/pack_scenes.py") from None
    missing = [n for n in names if not os.path.isfile(os.path.join(folder, f"{n}.png"))]
    if missing:
        raise ValueError(f"{folder}: {missing[0]}.png is listed in index.json but missing")
    if not names:
        raise ValueError(f"{path}: lists no scenes")
    return names


def _load_scenes(folder):
    import cv2

    from sritm_tf.data import augment

    names = _scene_files(folder)
    return [augment.decode_scene(cv2.imread(os.path.join(folder, f"{n}.png"), cv2.IMREAD_UNCHANGED)[..., ::-1])
            for n in names]


def _worker_init(folder):
    global _SCENES
    import cv2

    os.environ["KERAS_BACKEND"] = "numpy"  # workers never touch the accelerator
    cv2.setNumThreads(1)  # one core per worker, as above
    _SCENES = _load_scenes(folder)
    from sritm_tf.data import augment

    _SCENES = (_SCENES, [augment.source_peak(s) for s in _SCENES])


def _make_batch(job):
    from sritm_tf.data import augment

    seed, batch_size, lr_patch, scale, graphics_prob = job
    scenes, peaks = _SCENES
    if graphics_prob is None:
        graphics_prob = augment.GRAPHICS_PROB
    return augment.sample_batch(scenes, peaks, np.random.default_rng(seed), batch_size, lr_patch, scale,
                                graphics_prob)


def batches(pool, seed, batch_size, lr_patch, scale, graphics_prob, prefetch=96):
    """Endless ({"sdr_yuv", "white_nits"}, hdr_yuv) batches from the worker pool."""
    pending = collections.deque()
    index = 0
    while True:
        while len(pending) < prefetch:
            pending.append(pool.apply_async(_make_batch, (([seed, index], batch_size, lr_patch, scale, graphics_prob),)))
            index += 1
        x, w, y = pending.popleft().get()
        yield {"sdr_yuv": x, "white_nits": w}, y


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", required=True)
    parser.add_argument("--val-scenes", required=True)
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--init", help="weights (.npz) to start from; layers are matched by name and shape")
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--patch-size", type=int, default=48, help="LR patch side")
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--epoch-steps", type=int, default=250)
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    parser.add_argument("--precision", default="mixed_bfloat16")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--graphics-prob", type=float, default=None,
                        help="share of training pairs with SDR graphics keyed over them (default: augment.GRAPHICS_PROB); "
                             "the validation pairs keep the default")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    # Checked here: a worker that fails to start is restarted by the pool for ever.
    for folder in (args.scenes, args.val_scenes):
        try:
            _scene_files(folder)
        except ValueError as e:
            parser.error(str(e))
    if args.init and not os.path.isfile(args.init):
        parser.error(f"{args.init}: no such file")
    os.makedirs(args.out, exist_ok=True)

    # The pool is forked before Keras / JAX are imported.
    pool = multiprocessing.get_context("fork").Pool(args.workers, _worker_init, (args.scenes,))
    val_pool = multiprocessing.get_context("fork").Pool(1, _worker_init, (args.val_scenes,))
    val = [val_pool.apply(_make_batch, (([10**6, i], 32, args.patch_size, args.scale, None),)) for i in range(8)]
    val_pool.close()

    import keras

    from sritm_tf import pretrained
    from sritm_tf.model import build_deep_sritm

    keras.mixed_precision.set_global_policy(args.precision)
    model = build_deep_sritm(args.scale, skip="classical", white_input=True)
    if args.init:
        source = pretrained.load_weights_npz(args.init)
        shapes = {l.name: [w.shape for w in l.get_weights()] for l in source.layers}
        # A bicubic-skip network's last conv predicts a different residual: it restarts at zero.
        keep_out = pretrained.model_config(source)["skip"] == "classical"
        for layer in model.layers:
            if (layer.weights and (keep_out or layer.name != "out_conv")
                    and shapes.get(layer.name) == [w.shape for w in layer.get_weights()]):
                layer.set_weights(source.get_layer(layer.name).get_weights())
    model.compile(optimizer=keras.optimizers.Adam(args.lr), loss="mse")

    vx = {"sdr_yuv": np.concatenate([b[0] for b in val]), "white_nits": np.concatenate([b[1] for b in val])}
    vy = np.concatenate([b[2] for b in val])
    classical = build_deep_sritm(args.scale, skip="classical", white_input=True)  # untrained = classical
    classical_loss = float(np.mean((classical.predict(vx, batch_size=32, verbose=0) - vy) ** 2))
    print(f"classical mapping: val mse {classical_loss:.6f}", flush=True)

    budget = args.minutes * 60
    start = time.time()
    log = open(os.path.join(args.out, "curve.tsv"), "a")
    log.write("epoch\tsteps\tseconds\tlr\ttrain_mse\tval_mse\tclassical_val_mse\n")

    class Schedule(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            frac = min((time.time() - start) / budget, 1.0)
            warm = min(1.0, (epoch + 1) / 2)
            self.model.optimizer.learning_rate.assign(args.lr * warm * 0.5 * (1 + math.cos(math.pi * frac)))

        def on_epoch_end(self, epoch, logs=None):
            val_loss = float(self.model.evaluate(vx, vy, batch_size=32, verbose=0))
            lr = float(np.asarray(self.model.optimizer.learning_rate))
            log.write(f"{epoch + 1}\t{(epoch + 1) * args.epoch_steps}\t{time.time() - start:.0f}\t{lr:.3g}\t"
                      f"{logs['loss']:.6f}\t{val_loss:.6f}\t{classical_loss:.6f}\n")
            log.flush()
            print(f"epoch {epoch + 1}: {time.time() - start:.0f}s lr {lr:.2e} train {logs['loss']:.6f} "
                  f"val {val_loss:.6f} (classical {classical_loss:.6f})", flush=True)
            pretrained.save_weights_npz(self.model, os.path.join(args.out, f"deep_sritm_x{args.scale}.npz"),
                                        dtype="float32")
            if time.time() - start > budget:
                self.model.stop_training = True

    data = batches(pool, args.seed, args.batch_size, args.patch_size, args.scale, args.graphics_prob)
    model.fit(data, steps_per_epoch=args.epoch_steps, epochs=10**6, callbacks=[Schedule()], verbose=0)
    pool.terminate()


if __name__ == "__main__":
    main()
