"""Training Deep SR-ITM: the two stages of the paper (Kim et al., ICCV 2019, Sec. 4.1).

Stage 1 (`pretrain`) trains the network without its modulation branches
(`build_deep_sritm(modulation=False)`); its weights move by layer name into the
full network (`transfer_weights`), which stage 2 (`full`) trains. Both stages:
L2 (MSE) loss on the HR HDR Y'CbCr, Adam, PSNR / SSIM metrics (max_val 1).

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
import dataclasses
import json
import math
import os

import keras
import numpy as np
import yaml

from sritm_tf import colour
from sritm_tf.fileio import atomic_path
from sritm_tf import precision
from sritm_tf.metrics import keras_metrics
from sritm_tf.model import build_deep_sritm, transfer_weights


@dataclasses.dataclass
class TrainConfig:
    data: str = None                  # folder (or glob) of training TFRecord shards
    run_dir: str = "runs/sritm"
    scale: int = 2
    channels: int = 64
    m: int = 3
    n: int = 10
    skip: str = "classical"           # global residual over the BT.2408 conversion; "bicubic": the paper's
    white_nits: float = 203.0         # SDR white of the classical skip (fine-tuning: the grade's white)
    stage: str = "both"               # pretrain | full | both
    pretrain_steps: int = 20000
    steps: int = 20000
    batch_size: int = 16
    patch_size: int = None            # LR crop of each record (None: records as they are)
    lr: float = 1e-4
    pretrain_lr: float = 1e-4
    checkpoint_every: int = 500       # steps per checkpoint (= Keras epoch)
    seed: int = 0
    shuffle_buffer: int = 2048
    mixed_precision: bool = False     # mixed_float16 (GPUs); else `precision` decides
    precision: str = "auto"           # bf16 | fp32 | auto: bf16 where the CPU or GPU has bfloat16 units
    val_pairs: str = None             # folder of *_sdr.* / *_hdr.* pairs (HR), for validation
    val_records: str = None           # held-out TFRecord shards, for validation
    val_crop: int = 256               # centre crop of each validation pair, LR pixels (0: whole)
    init: str = None                  # weights to start from (.keras / .weights.h5 / .npz)
    pairs: str = None                 # fine-tuning: folder of graded pairs to adapt to
    crops: int = 256                  # fine-tuning: random crops taken from the pairs

    def save(self, path):
        with atomic_path(path) as tmp, open(tmp, "w") as f:
            yaml.safe_dump(dataclasses.asdict(self), f, sort_keys=False)

    @classmethod
    def load(cls, path):
        with open(path) as f:
            values = yaml.safe_load(f) or {}
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"{path}: unknown keys {sorted(unknown)}")
        return cls(**values)


def is_tensorflow():
    return keras.backend.backend() == "tensorflow"


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------
def find_pairs(folder):
    """Sorted [(sdr_path, hdr_path)] of `<name>_sdr.*` / `<name>_hdr.*` in `folder`."""
    from sritm_tf.evaluate import find_pairs as find_named_pairs

    pairs = [(sdr, hdr) for _, sdr, hdr in find_named_pairs(folder)]
    if not pairs:
        raise FileNotFoundError(f"{folder}: no *_sdr.* / *_hdr.* pairs")
    return pairs


def load_pair(sdr_path, hdr_path, scale, crop=0):
    """One graded pair (both at HR) -> (sdr_yuv [h, w, 3] LR, hdr_yuv [s*h, s*w, 3]).

    SDR: 8-bit R'G'B'(A), alpha dropped, bicubic-downscaled by `scale` with
    antialiasing; HDR: 16-bit (or 8-bit) BT.2020 PQ R'G'B' at HR. `crop`: keep a
    centre square of `crop` LR pixels (0: whole frame)."""
    from sritm_tf.data.resize import downscale
    from sritm_tf.evaluate import read_pair

    sdr, hdr = (a.astype(np.float32) for a in read_pair(sdr_path, hdr_path))
    if sdr.shape != hdr.shape:
        raise ValueError(f"{sdr_path}: size {sdr.shape[:2]} differs from {hdr_path} {hdr.shape[:2]}")
    h, w = (sdr.shape[0] // scale) * scale, (sdr.shape[1] // scale) * scale
    if crop:
        ch, cw = min(crop * scale, h), min(crop * scale, w)
        y0, x0 = ((h - ch) // 2 // scale) * scale, ((w - cw) // 2 // scale) * scale
        sdr, hdr = sdr[y0:y0 + ch, x0:x0 + cw], hdr[y0:y0 + ch, x0:x0 + cw]
    else:
        sdr, hdr = sdr[:h, :w], hdr[:h, :w]
    sdr_lr = np.clip(np.asarray(downscale(sdr, scale), np.float32), 0.0, 1.0)
    return (colour.sdr_rgb_to_model_yuv(sdr_lr).astype(np.float32),
            colour.pq2020_rgb_to_model_yuv(hdr).astype(np.float32))


def load_pairs(folder, scale, crop=0):
    return [load_pair(s, h, scale, crop) for s, h in find_pairs(folder)]


def validation_data(cfg):
    """A tf.data.Dataset of validation (sdr_yuv, hdr_yuv) batches, or None."""
    import tensorflow as tf

    from sritm_tf.pipeline import make_dataset

    datasets = []
    if cfg.val_pairs:
        pairs = load_pairs(cfg.val_pairs, cfg.scale, cfg.val_crop)
        datasets.append(tf.data.Dataset.from_generator(
            lambda: ((s[None], h[None]) for s, h in pairs),
            output_signature=(tf.TensorSpec((1, None, None, 3), tf.float32),
                              tf.TensorSpec((1, None, None, 3), tf.float32))))
    if cfg.val_records:
        datasets.append(make_dataset(cfg.val_records, 1, cfg.scale, training=False))
    if not datasets:
        return None
    ds = datasets[0]
    for other in datasets[1:]:
        ds = ds.concatenate(other)
    count = sum(1 for _ in ds)  # a known length keeps Keras from warning at the end of each pass
    return ds.cache().apply(tf.data.experimental.assert_cardinality(count))


def crops_dataset(pairs, cfg):
    """Fine-tuning data: `cfg.crops` aligned random crops (`cfg.patch_size` LR pixels,
    default 48) from in-memory pairs, random flips / rotations, repeated."""
    import tensorflow as tf

    from sritm_tf.pipeline import augment_pair

    patch = cfg.patch_size or 48
    rng = np.random.default_rng(cfg.seed)
    sdr_crops, hdr_crops = [], []
    for i in range(cfg.crops):
        sdr, hdr = pairs[i % len(pairs)]
        y = rng.integers(0, sdr.shape[0] - patch + 1)
        x = rng.integers(0, sdr.shape[1] - patch + 1)
        s = cfg.scale
        sdr_crops.append(sdr[y:y + patch, x:x + patch])
        hdr_crops.append(hdr[y * s:(y + patch) * s, x * s:(x + patch) * s])
    ds = tf.data.Dataset.from_tensor_slices((np.stack(sdr_crops), np.stack(hdr_crops)))
    ds = ds.shuffle(len(sdr_crops), seed=cfg.seed).repeat().enumerate()
    ds = ds.map(lambda i, p: augment_pair(p[0], p[1], tf.stack([tf.constant(cfg.seed, tf.int64), i])))
    return ds.batch(cfg.batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


# ---------------------------------------------------------------------------
# Distribution
# ---------------------------------------------------------------------------
def get_strategy(devices=None):
    """MultiWorkerMirroredStrategy when TF_CONFIG is set; MirroredStrategy over
    `devices` or over all visible GPUs when there are several; else the default
    strategy. None on a backend other than TensorFlow."""
    if not is_tensorflow():
        return None
    import tensorflow as tf

    if os.environ.get("TF_CONFIG"):
        return tf.distribute.MultiWorkerMirroredStrategy()
    if devices:
        return tf.distribute.MirroredStrategy(devices)
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def worker_info():
    """(task index, is_chief) from TF_CONFIG; (0, True) without it."""
    tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = tf_config.get("task", {})
    kind, index = task.get("type", "worker"), int(task.get("index", 0))
    has_chief = "chief" in tf_config.get("cluster", {})
    chief = kind == "chief" or (kind == "worker" and index == 0 and not has_chief)
    return (index + (1 if has_chief and kind == "worker" else 0)), chief


def patch_multi_worker_fit(model, strategy):
    """Works around keras-team/keras#20585 (Keras 3 `fit` under
    MultiWorkerMirroredStrategy; open upstream when this was written), in two places:

    - `fit` starts by reducing the first distributed batch with
      `strategy.reduce("MEAN", ...)`, which that strategy refuses (PerReplica ->
      Tensor); the build it feeds needs only shapes, so it gets the first local
      replica's batch instead;
    - each step reduces the scalar loss / metrics with `strategy.reduce("MEAN",
      v, axis=0)`, which fails on a scalar; scalars are reduced with axis=None.

    Other strategies are left alone.
    """
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return model
    from keras import tree
    from keras.src.backend.tensorflow import trainer as tf_trainer

    def local_batch(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    build = model._maybe_symbolic_build

    def maybe_symbolic_build(iterator=None, data_batch=None):
        if iterator is not None and data_batch is None:
            for _, _, it in iterator:
                data_batch = tree.map_structure(local_batch, next(it))
                break
        return build(data_batch=data_batch)

    model._maybe_symbolic_build = maybe_symbolic_build

    reduce = getattr(tf_trainer.reduce_per_replica, "__wrapped__", tf_trainer.reduce_per_replica)

    def reduce_per_replica(values, strategy_, reduction="auto"):
        if isinstance(strategy_, tf.distribute.MultiWorkerMirroredStrategy) and reduction in ("auto", "mean"):
            def mean(v):
                if isinstance(v, tf.distribute.DistributedValues) or tf.is_tensor(v):
                    return strategy_.reduce("MEAN", v, axis=0 if v.shape.rank else None)
                return v
            return tree.map_structure(mean, values)
        return reduce(values, strategy_, reduction)

    reduce_per_replica.__wrapped__ = reduce
    tf_trainer.reduce_per_replica = reduce_per_replica
    return model


class _Scope:
    def __init__(self, strategy):
        self.strategy = strategy

    def __enter__(self):
        self._ctx = self.strategy.scope() if self.strategy is not None else None
        return self._ctx.__enter__() if self._ctx else None

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc) if self._ctx else False


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------
def build_model(cfg, modulation=True):
    """The network of `cfg`; with mixed precision, a float32 output layer is added."""
    model = build_deep_sritm(cfg.scale, cfg.channels, cfg.m, cfg.n, modulation=modulation, skip=cfg.skip,
                             white_nits=cfg.white_nits)
    if cfg.mixed_precision:
        out = keras.layers.Activation("linear", dtype="float32", name="hdr_yuv_float32")(model.output)
        model = keras.Model(model.input, out, name=model.name)
    return model


def compile_model(model, lr):
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="mse", metrics=keras_metrics())
    return model


def load_init_weights(model, path):
    """Fills `model` from a .keras / .weights.h5 / .npz file (`pretrained.read_weights`),
    layer by layer by name."""
    from sritm_tf.pretrained import read_weights

    source = read_weights(path, like=model)
    if source is model:  # .weights.h5: loaded in place
        return model
    # By name; layers only one side has (modulation branches) are left as they are.
    source_layers = {layer.name: layer for layer in source.layers if layer.weights}
    for layer in model.layers:
        if layer.name in source_layers:
            layer.set_weights(source_layers[layer.name].get_weights())
    return model


def init_architecture(path):
    """{scale, channels, m, n, skip} of the network stored in a .keras or .npz file
    (None for .weights.h5, which does not record it)."""
    from sritm_tf.pretrained import model_config, read_weights

    if path.endswith(".weights.h5"):
        return None
    config = model_config(read_weights(path))
    return {key: config[key] for key in ("scale", "channels", "m", "n", "skip")}


def plain_copy(model, cfg):
    """A float32 full network with the weights of `model` (drops the mixed-precision head)."""
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")  # else the copy would be mixed too
    try:
        plain = build_deep_sritm(cfg.scale, cfg.channels, cfg.m, cfg.n, modulation=True, skip=cfg.skip,
                                 white_nits=cfg.white_nits)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    transfer_weights(model, plain)
    return plain


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------
def _completed_epochs(backup_dir):
    path = os.path.join(backup_dir, "training_metadata.json")
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return int(json.load(f)["epoch"])


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
    callbacks = [keras.callbacks.BackupAndRestore(backup_dir, save_freq="epoch")]
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
    from sritm_tf.pipeline import make_dataset

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

    strategy = strategy if strategy is not None else get_strategy()
    worker_index, chief = worker_info()
    os.makedirs(cfg.run_dir, exist_ok=True)
    if chief:
        cfg.save(os.path.join(cfg.run_dir, "config.yaml"))
    val_ds = validation_data(cfg)

    def dataset():
        if cfg.pairs:
            return crops_dataset(load_pairs(cfg.pairs, cfg.scale), cfg)
        return make_dataset(cfg.data, cfg.batch_size, cfg.scale, training=True,
                            shuffle_buffer=cfg.shuffle_buffer, seed=cfg.seed, patch_size=cfg.patch_size)

    pretrain_path = os.path.join(cfg.run_dir, "pretrain.weights.h5")
    model = None
    if cfg.stage in ("pretrain", "both") and not os.path.exists(pretrain_path):
        keras.utils.set_random_seed(cfg.seed)
        with _Scope(strategy):
            model = compile_model(build_model(cfg, modulation=False), cfg.pretrain_lr)
            if cfg.init:
                load_init_weights(model, cfg.init)
        fit_stage(model, dataset(), val_ds, cfg, os.path.join(cfg.run_dir, "pretrain"),
                  cfg.pretrain_steps, chief, worker_index, extra_callbacks)
        if chief:
            _save_atomic(model.save_weights, pretrain_path)
    if cfg.stage in ("full", "both"):
        keras.utils.set_random_seed(cfg.seed + 1)
        with _Scope(strategy):
            pretrained, model = model, compile_model(build_model(cfg, modulation=True), cfg.lr)
            if pretrained is not None:  # stage 1 just ran here
                transfer_weights(pretrained, model)
            elif os.path.exists(pretrain_path) and not cfg.init:
                pretrained = build_model(cfg, modulation=False)
                pretrained.load_weights(pretrain_path)
                transfer_weights(pretrained, model)
            elif cfg.init:
                load_init_weights(model, cfg.init)
        fit_stage(model, dataset(), val_ds, cfg, os.path.join(cfg.run_dir, "full"),
                  cfg.steps, chief, worker_index, extra_callbacks)
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
        compile_model(plain, cfg.lr)  # final.keras loads compiled, as a float32 run's does
    _save_atomic(plain.save, os.path.join(cfg.run_dir, "final.keras"))
    save_weights_npz(plain, os.path.join(cfg.run_dir, f"deep_sritm_x{cfg.scale}.npz"))
