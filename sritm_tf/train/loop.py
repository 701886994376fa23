"""Training Deep SR-ITM: the two stages of the paper (Kim et al., ICCV 2019, Sec. 4.1).

Stage 1 (`pretrain`) trains the network without its modulation branches
(`build_deep_sritm(modulation=False)`); its weights move by layer name into the
full network (`transfer_weights`), which stage 2 (`full`) trains. Both stages:
L2 loss on the HR HDR Y'CbCr, Adam, PSNR / SSIM metrics (max_val 1).

Two recipes (`TrainConfig.recipe`, `sritm_tf.train.config`): ours (default) and paper,
the authors' optimiser, loss, initialisation and schedule.

The run folder holds:

    config.yaml                    the run's full configuration (`sritm train config.yaml`)
    {stage}/backup/                BackupAndRestore state, every `checkpoint_every` steps
    {stage}/best.keras             best model on validation loss (training loss without validation)
    {stage}/logs/                  TensorBoard
    pretrain.weights.h5            stage 1 result (stage 2 starts from it)
    final.keras, deep_sritm_x{scale}.npz   the trained full network

An "epoch" here is one checkpoint interval (`checkpoint_every` steps): Keras
restores a backup at an epoch boundary, so a killed run restarts from its last
checkpoint and, as the data stream is seeded and skipped to the same position,
continues exactly as the uninterrupted run would.
"""
import json
import math
import os

import keras
import numpy as np

from sritm_tf import precision, signals
from sritm_tf.errors import UserError
from sritm_tf.fileio import atomic_path
from sritm_tf.model import transfer_weights
from sritm_tf.train.config import paper_schedule, resolve_recipe, xavier_normal
from sritm_tf.train.data import anchor_teacher, crops_dataset, load_pairs, validation_data
from sritm_tf.train.finetune import KeepBest, split_holdout
from sritm_tf.train.distribute import (StrategyScope, get_strategy, is_tensorflow, patch_multi_worker_fit,
                                       worker_info)
from sritm_tf.train.networks import build_model, compile_model, load_init_weights, plain_copy


def _completed_epochs(backup_dir):
    path = os.path.join(backup_dir, "training_metadata.json")
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return int(json.load(f)["epoch"])


class StopOnNaN(keras.callbacks.Callback):
    """Keras' `TerminateOnNaN` as an error: a loss that is no longer finite, with weights that
    are no longer finite, stops the run (`UserError`, one line) before the epoch's end writes a
    checkpoint or a model of NaNs. A non-finite loss with finite weights goes on: under
    --mixed-precision (float16) the loss scaling skips such a step."""

    def __init__(self):
        super().__init__()
        self.step = 0

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            if all(np.isfinite(w).all() for w in self.model.get_weights()):
                return  # a step the float16 loss scaling skipped
            raise UserError(f"the training loss became {float(loss)} at step {self.step} of this run and the weights "
                            "are no longer finite; "
                            "nothing of it was saved: lower the learning rate (--lr, --pretrain-lr) or check the data")


class StopOnSignal(keras.callbacks.Callback):
    """Stops between steps after a SIGTERM whose raise was lost (`sritm_tf.signals`)."""

    def on_train_batch_end(self, batch, logs=None):
        signals.check()


def fit_stage(model, train_ds, val_ds, cfg, stage_dir, steps, chief=True, worker_index=0,
              extra_callbacks=()):
    """`steps` training steps (rounded up to whole checkpoint intervals) with
    backup / restore, TensorBoard and best-model callbacks. Returns the History."""
    interval = max(1, min(cfg.checkpoint_every, steps))
    epochs = math.ceil(steps / interval)
    # Non-chief workers keep their own backup; only the chief writes logs and models.
    backup_dir = os.path.join(stage_dir, "backup" if chief else f"backup-worker{worker_index}")
    done = _completed_epochs(backup_dir)
    if done:
        print(f"resuming {os.path.basename(stage_dir)} at step {done * interval}")
        train_ds = train_ds.skip(done * interval)
    callbacks = [StopOnSignal(), StopOnNaN(), keras.callbacks.BackupAndRestore(backup_dir, save_freq="epoch")]
    if chief:
        monitor = "val_loss" if val_ds is not None else "loss"
        callbacks += [
            keras.callbacks.TensorBoard(os.path.join(stage_dir, "logs")),
            keras.callbacks.ModelCheckpoint(os.path.join(stage_dir, "best.keras"), monitor=monitor,
                                            save_best_only=True),
        ]
    callbacks += list(extra_callbacks)
    if is_tensorflow():
        patch_multi_worker_fit(model, model.distribute_strategy)
    # Other backends (JAX) take the tf.data.Dataset as it is: Keras iterates it as numpy.
    return model.fit(train_ds, steps_per_epoch=interval, epochs=epochs, validation_data=val_ds,
                     callbacks=callbacks, verbose=2)


def train(cfg, strategy=None, extra_callbacks=()):
    """Runs `cfg.stage` ("pretrain", "full" or "both") and writes the run folder.
    Returns the trained model of the last stage run."""

    previous = keras.mixed_precision.global_policy()
    if cfg.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    else:
        chosen, why = precision.resolve(cfg.precision)
        keras.mixed_precision.set_global_policy(precision.policy(chosen))
        print(f"precision: {chosen} ({why})", flush=True)
    try:
        return _train(cfg, strategy, extra_callbacks)
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _train(cfg, strategy, extra_callbacks):
    from sritm_tf.pipeline import make_dataset

    from sritm_tf.pipeline import count_records

    records = []

    def count():
        records.append(cfg.crops if cfg.pairs else count_records(cfg.data))
        return records[-1]

    resolve_recipe(cfg, count)
    if cfg.recipe == "paper":
        epoch = ""
        if records:
            epoch = f"{math.ceil(records[-1] / cfg.batch_size)} steps per epoch ({records[-1]} records), "
        print(f"recipe paper: {epoch}pre-training {cfg.pretrain_steps} steps at {cfg.pretrain_lr:g}, "
              f"full network {cfg.steps} steps at {cfg.lr:g} / {cfg.lr / 10:g} / {cfg.lr / 100:g}", flush=True)
    strategy = strategy if strategy is not None else get_strategy()
    worker_index, chief = worker_info()
    os.makedirs(cfg.run_dir, exist_ok=True)
    if chief:
        cfg.save(os.path.join(cfg.run_dir, "config.yaml"))
    val_ds = validation_data(cfg)

    pairs, held = split_holdout(load_pairs(cfg.pairs, cfg.scale), cfg.holdout, cfg.scale) if cfg.pairs else ([], [])

    def dataset():
        if cfg.pairs:
            return crops_dataset(pairs, cfg, teacher=anchor_teacher(cfg))
        return make_dataset(cfg.data, cfg.batch_size, cfg.scale, training=True,
                            shuffle_buffer=cfg.shuffle_buffer, seed=cfg.seed, patch_size=cfg.patch_size,
                            augment=not paper)

    paper = cfg.recipe == "paper"

    def new_model(modulation, lr):
        model = build_model(cfg, modulation=modulation)
        if paper:
            xavier_normal(model)  # seeded by keras.utils.set_random_seed below
        return compile_model(model, lr, cfg.recipe)

    pretrain_path = os.path.join(cfg.run_dir, "pretrain.weights.h5")
    model = None
    if cfg.stage in ("pretrain", "both") and not os.path.exists(pretrain_path):
        keras.utils.set_random_seed(cfg.seed)
        with StrategyScope(strategy):
            model = new_model(False, cfg.pretrain_lr)
            if cfg.init:
                load_init_weights(model, cfg.init)
        fit_stage(model, dataset(), val_ds, cfg, os.path.join(cfg.run_dir, "pretrain"),
                  cfg.pretrain_steps, chief, worker_index, extra_callbacks)
        if chief:
            _save_atomic(model.save_weights, pretrain_path)
    if cfg.stage in ("full", "both"):
        keras.utils.set_random_seed(cfg.seed + 1)
        with StrategyScope(strategy):
            pretrained, model = model, new_model(True, paper_schedule(cfg.lr, cfg.steps) if paper else cfg.lr)
            if pretrained is not None:  # stage 1 just ran here
                transfer_weights(pretrained, model)
            elif os.path.exists(pretrain_path) and not cfg.init:
                pretrained = build_model(cfg, modulation=False)
                pretrained.load_weights(pretrain_path)
                transfer_weights(pretrained, model)
            elif cfg.init:
                load_init_weights(model, cfg.init)
        keep = [KeepBest(held, max(1, min(cfg.checkpoint_every, cfg.steps)))] if held else []
        fit_stage(model, dataset(), val_ds, cfg, os.path.join(cfg.run_dir, "full"),
                  cfg.steps, chief, worker_index, [*extra_callbacks, *keep])
        if chief:
            save_final(model, cfg)
    return model


def _save_atomic(save, path):
    with atomic_path(path) as tmp:
        save(tmp)


def save_final(model, cfg):
    """`final.keras` and `deep_sritm_x{scale}.npz` (float16, `sritm_tf.pretrained`)."""
    from sritm_tf.pretrained import save_weights_npz  # writes atomically itself

    plain = model
    if model.get_layer("base_conv1").dtype_policy.name != "float32":  # mixed precision: save float32
        plain = plain_copy(model, cfg)
        compile_model(plain, cfg.lr, cfg.recipe)  # final.keras loads compiled, as a float32 run's does
    _save_atomic(plain.save, os.path.join(cfg.run_dir, "final.keras"))
    save_weights_npz(plain, os.path.join(cfg.run_dir, f"deep_sritm_x{cfg.scale}.npz"))
