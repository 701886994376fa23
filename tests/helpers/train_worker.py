"""Subprocess side of the distribution / resume tests (TF settings that must come
before TensorFlow initialises, or a process that dies mid-run).

    python tests/helpers/train_worker.py train CONFIG_JSON [--kill-after K]
        sritm_tf.train.loop.train; os._exit after K steps
    python tests/helpers/train_worker.py mirrored OUT_JSON
        1 vs 2 logical CPUs, same global batch
"""
import json
import os
import sys

import numpy as np


def deterministic():
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()


def run_train(config_path, kill_after=None):
    import keras

    from sritm_tf.train.config import TrainConfig
    from sritm_tf.train.loop import train

    deterministic()
    with open(config_path) as f:
        cfg = TrainConfig(**json.load(f))

    class KillAfter(keras.callbacks.Callback):
        """Dies like a pre-empted job: no cleanup, no callbacks, after `steps` steps in all."""

        def __init__(self, steps):
            super().__init__()
            self.steps = steps
            self.seen = 0

        def on_train_batch_end(self, batch, logs=None):
            self.seen += 1
            if self.seen == self.steps:
                sys.stdout.flush()
                os._exit(17)

    train(cfg, extra_callbacks=[KillAfter(kill_after)] if kill_after else ())


def run_mirrored(out_path):
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    deterministic()
    import keras

    from sritm_tf.model import build_deep_sritm
    from sritm_tf.metrics import keras_metrics
    from sritm_tf.train.distribute import get_strategy

    rng = np.random.default_rng(0)
    x = rng.random((8, 16, 16, 3)).astype("float32")
    y = rng.random((8, 32, 32, 3)).astype("float32")
    keras.utils.set_random_seed(0)
    initial = build_deep_sritm(2, channels=8, m=1, n=1).get_weights()
    lr = 0.1

    def one_step(strategy):
        scope = strategy.scope()
        with scope:
            model = build_deep_sritm(2, channels=8, m=1, n=1)
            model.set_weights(initial)
            model.compile(optimizer=keras.optimizers.SGD(lr), loss="mse", metrics=keras_metrics())
        history = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
        grads = [(a - b) / lr for a, b in zip(initial, model.get_weights())]
        return history.history["loss"][0], grads

    mirrored = get_strategy(devices=["/cpu:0", "/cpu:1"])
    loss_1, grads_1 = one_step(tf.distribute.get_strategy())
    loss_2, grads_2 = one_step(mirrored)
    result = {
        "replicas": mirrored.num_replicas_in_sync,
        "loss_1": float(loss_1), "loss_2": float(loss_2),
        "grad_max": max(float(np.abs(g).max()) for g in grads_1),
        "grad_diff": max(float(np.abs(a - b).max()) for a, b in zip(grads_1, grads_2)),
    }
    with open(out_path, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    mode, path = sys.argv[1], sys.argv[2]
    if mode == "train":
        kill = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[3] == "--kill-after" else None
        run_train(path, kill)
    elif mode == "mirrored":
        run_mirrored(path)
    else:
        sys.exit(f"unknown mode {mode}")
