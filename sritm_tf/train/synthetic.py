"""Trains Deep SR-ITM with the classical skip on pairs synthesised on the fly (the bundled weights' recipe).

Pairs come from `sritm_tf.data.augment` (scene-linear HDR -> random white level,
colour augmentation, BT.2390-mastered HDR10 target, white-anchored SDR, bicubic LR),
made by a pool of CPU worker processes (`sritm_tf.data.scenes`) while the network
trains on any Keras backend (JAX on a GPU: `KERAS_BACKEND=jax`). The learning rate
follows a cosine over the wall-clock budget, so a run fits the time it is given. Each
epoch writes the weights (`deep_sritm_x{scale}.npz`, float32) and a line of the
learning curve (`curve.tsv`: training loss, validation loss on pairs from held-out
scenes, and the classical mapping's loss on the same pairs) to the output folder.

    KERAS_BACKEND=jax sritm train --synthetic .devdata/scenes --val-scenes .devdata/val \\
        --scale 2 --minutes 5 -o runs/synth_x2

Distillation (`teacher`): a trained network, e.g. the shipped full one, predicts each
training batch, and the target becomes (1 - a) * HDR + a * teacher's output, a =
`teacher_share`. Since (1 - a)|s - y|^2 + a|s - t|^2 = |s - ((1 - a)y + at)|^2 + const,
the MSE to that blend is the weighted sum of the losses to the real target and to the
teacher (Hinton et al. 2015, with the regression loss of the student's own task).
Validation stays on the real targets. The teacher costs far more than the student, so each
labelled batch can serve `teacher_reuse` steps, each under another of the eight flips and
quarter turns of the square (input and target alike; the pairs are made square).
"""
import math
import os
import time

import numpy as np

from sritm_tf.data import scenes as scene_data
from sritm_tf.errors import InputError

VAL_BATCHES = 8  # validation pairs: 8 batches of 32 from the held-out scenes
VAL_BATCH = 32
VAL_SEED = 10**6


def default_workers():
    """Worker processes by default: every core but two (one at least)."""
    return max(1, (os.cpu_count() or 2) - 2)


def check_inputs(scenes, val_scenes, init=None):
    """The scene folders and the --init file, checked before any worker starts (a worker
    that fails to start is restarted by the pool for ever): InputError naming the fault."""
    for folder in (scenes, val_scenes):
        scene_data.scene_files(folder)
    if init and not os.path.isfile(init):
        raise InputError(f"{init}: no such file")


def start_from(model, path):
    """Fills `model` from the .npz weights at `path`: layers matched by name and shape
    (`transfer_weights`, others keep their initialisation). A bicubic-skip network's last
    conv predicts a different residual: it restarts at zero."""
    from sritm_tf import pretrained
    from sritm_tf.model import transfer_weights

    source = pretrained.load_weights_npz(path)
    exclude = () if pretrained.model_config(source)["skip"] == "classical" else ("out_conv",)
    return transfer_weights(source, model, missing="skip", mismatched="skip", exclude=exclude)


def train_synthetic(scenes, val_scenes, output, scale=2, init=None, minutes=5.0, batch_size=16, patch_size=48,
                    lr=2e-4, epoch_steps=250, workers=None, precision="bf16", seed=1, graphics_prob=None,
                    channels=64, m=3, n=10, teacher=None, teacher_share=0.5, teacher_reuse=1):
    """Trains on pairs from the scene folder `scenes` for about `minutes` (whole epochs of
    `epoch_steps` steps; the last one ends past the budget), validating on pairs from
    `val_scenes`; writes `output`/curve.tsv and `output`/deep_sritm_x{scale}.npz every
    epoch. `patch_size`: the LR patch side; `precision`: bf16 (Keras' mixed_bfloat16),
    fp32, or auto (`sritm_tf.precision.resolve`); `graphics_prob`: share of training pairs
    with SDR graphics (None: `augment.GRAPHICS_PROB`; validation keeps the default).
    `teacher`: .npz weights to distil from (module docstring), `teacher_share` its share,
    `teacher_reuse` the steps each of its labelled batches serves.
    Returns the trained model."""
    check_inputs(scenes, val_scenes, init)
    if teacher and not os.path.isfile(teacher):
        raise InputError(f"{teacher}: no such file")
    os.makedirs(output, exist_ok=True)
    pool = scene_data.worker_pool(workers or default_workers(), scenes)
    try:
        with scene_data.worker_pool(1, val_scenes) as val_pool:
            val = [val_pool.apply(scene_data.make_batch, (([VAL_SEED, i], VAL_BATCH, patch_size, scale, None),))
                   for i in range(VAL_BATCHES)]
        data = scene_data.batches(pool, seed, batch_size, patch_size, scale, graphics_prob)
        if teacher:
            data = distilled(data, teacher, teacher_share, teacher_reuse)
        return _fit(data, val, output, scale, init, minutes, lr, epoch_steps, precision, channels, m, n)
    finally:
        pool.terminate()


def dihedral(image, k):
    """`image` (N, H, W, C) under the k-th (0-7) of the square's eight symmetries: k % 4
    quarter turns, then a left-right flip for k >= 4."""
    image = np.rot90(image, k % 4, axes=(1, 2))
    return np.ascontiguousarray(image[:, :, ::-1] if k >= 4 else image)


def distilled(data, teacher, share, reuse=1):
    """The batches of `data` with targets blended toward the predictions of the network
    in the .npz file `teacher` (module docstring), each yielded `reuse` times under
    successive symmetries (`dihedral`); the teacher runs under the global precision policy."""
    from sritm_tf import pretrained

    model = pretrained.load_weights_npz(teacher, white_input=True)
    for x, y in data:
        t = np.asarray(model.predict_on_batch(x), dtype=np.float32)
        target = (1 - share) * y + share * t
        for k in range(reuse):
            yield {**x, "sdr_yuv": dihedral(x["sdr_yuv"], k % 8)}, dihedral(target, k % 8)


def _fit(data, val, output, scale, init, minutes, lr, epoch_steps, precision, channels, m, n):
    import keras

    from sritm_tf import precision as precisions
    from sritm_tf import pretrained
    from sritm_tf.model import build_deep_sritm

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precisions.policy(precisions.resolve(precision)[0]))
    try:
        model = build_deep_sritm(scale, channels, m, n, skip="classical", white_input=True)
        if init:
            start_from(model, init)
        model.compile(optimizer=keras.optimizers.Adam(lr), loss="mse")

        vx = {"sdr_yuv": np.concatenate([b[0] for b in val]), "white_nits": np.concatenate([b[1] for b in val])}
        vy = np.concatenate([b[2] for b in val])
        classical = build_deep_sritm(scale, channels, m, n, skip="classical", white_input=True)  # untrained
        classical_loss = float(np.mean((classical.predict(vx, batch_size=VAL_BATCH, verbose=0) - vy) ** 2))
        print(f"classical mapping: val mse {classical_loss:.6f}", flush=True)

        budget = minutes * 60
        start = time.time()
        with open(os.path.join(output, "curve.tsv"), "a") as log:
            log.write("epoch\tsteps\tseconds\tlr\ttrain_mse\tval_mse\tclassical_val_mse\n")

            class Schedule(keras.callbacks.Callback):
                def on_epoch_begin(self, epoch, logs=None):
                    frac = min((time.time() - start) / budget, 1.0)
                    warm = min(1.0, (epoch + 1) / 2)
                    self.model.optimizer.learning_rate.assign(lr * warm * 0.5 * (1 + math.cos(math.pi * frac)))

                def on_epoch_end(self, epoch, logs=None):
                    val_loss = float(self.model.evaluate(vx, vy, batch_size=VAL_BATCH, verbose=0))
                    rate = float(np.asarray(self.model.optimizer.learning_rate))
                    seconds = time.time() - start
                    log.write(f"{epoch + 1}\t{(epoch + 1) * epoch_steps}\t{seconds:.0f}\t{rate:.3g}\t"
                              f"{logs['loss']:.6f}\t{val_loss:.6f}\t{classical_loss:.6f}\n")
                    log.flush()
                    print(f"epoch {epoch + 1}: {seconds:.0f}s lr {rate:.2e} train {logs['loss']:.6f} "
                          f"val {val_loss:.6f} (classical {classical_loss:.6f})", flush=True)
                    pretrained.save_weights_npz(self.model, os.path.join(output, f"deep_sritm_x{scale}.npz"),
                                                dtype="float32")
                    if seconds > budget:
                        self.model.stop_training = True

            model.fit(data, steps_per_epoch=epoch_steps, epochs=10**6, callbacks=[Schedule()], verbose=0)
        return model
    finally:
        keras.mixed_precision.set_global_policy(previous)
