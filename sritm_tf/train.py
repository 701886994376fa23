"""Training Deep SR-ITM: the two stages of the paper (Kim et al., ICCV 2019, Sec. 4.1).

Stage 1 (`pretrain`) trains the network without its modulation branches
(`build_deep_sritm(modulation=False)`); its weights move by layer name into the
full network (`transfer_weights`), which stage 2 (`full`) trains. Both stages:
L2 loss on the HR HDR Y'CbCr, Adam, PSNR / SSIM metrics (max_val 1).

Two recipes (`TrainConfig.recipe`):

  ours   (default) Adam (Keras defaults, lr 1e-4 both stages), MSE, Glorot-uniform
         kernels, random flips / 90-degree rotations, 20000 steps per stage;
  paper  the authors' `train_base_net.m` / `train_full_net.m` (MatConvNet 1.0-beta25
         `cnn_train_dag.m`, `+solver/adam.m`): `MatConvNetAdam` (eps 1e-8, biases at
         0.1x the weights' rate, L2 decay 5e-4 on kernels added to the gradient),
         `reference_l2_loss`, Xavier-normal kernels (`xavier_normal`), no
         augmentation, lr 5e-7 for 200 epochs of pre-training, then 1e-7 / 1e-8 /
         1e-9 for 250 / 10 / 10 epochs of the full network (`paper_schedule`), one
         epoch = ceil(training records / batch size) steps (`paper_steps`).

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
from sritm_tf.errors import UserError
from sritm_tf.metrics import keras_metrics
from sritm_tf.model import CHROMA_GATE, SHADOW_GATE, build_deep_sritm, transfer_weights


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
    chroma_gate: float = CHROMA_GATE  # c0 of layers.ChromaGate (classical skip; 0: none)
    shadow_gate: float = SHADOW_GATE  # y0 of layers.ShadowGate (classical skip; 0: none)
    stage: str = "both"               # pretrain | full | both
    recipe: str = "ours"              # ours | paper: the authors' optimiser, loss, init, schedule (no augmentation)
    pretrain_steps: int = None        # None: the recipe's (ours 20000; paper 200 epochs)
    steps: int = None                 # None: the recipe's (ours 20000; paper 270 epochs)
    batch_size: int = 16
    patch_size: int = None            # LR crop of each record (None: records as they are)
    lr: float = None                  # stage 2; None: the recipe's (ours 1e-4; paper 1e-7, then 1e-8, 1e-9)
    pretrain_lr: float = None         # stage 1; None: the recipe's (ours 1e-4; paper 5e-7)
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
    anchor: bool = True               # fine-tuning: keep the --init network where the pairs show nothing

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


RECIPES = ("ours", "paper")
RECIPE_DEFAULTS = {
    "ours": {"pretrain_lr": 1e-4, "lr": 1e-4, "pretrain_steps": 20000, "steps": 20000},
    # train_base_net.m: 5e-7 for 200 epochs; train_full_net.m: 1e-7, 1e-8, 1e-9 for 250, 10, 10 epochs.
    "paper": {"pretrain_lr": 5e-7, "lr": 1e-7, "pretrain_epochs": 200, "epochs": (250, 10, 10)},
}


def paper_steps(records, batch_size):
    """(pre-training steps, full-network steps) of the paper recipe: the reference's
    200 and 250 + 10 + 10 epochs, one epoch being one pass over the training
    records in batches of `batch_size` (`cnn_train_dag.m`: ceil(records / batch)
    iterations, the last one short), so epochs x ceil(records / batch_size)."""
    per_epoch = math.ceil(records / batch_size)
    paper = RECIPE_DEFAULTS["paper"]
    return paper["pretrain_epochs"] * per_epoch, sum(paper["epochs"]) * per_epoch


def resolve_recipe(cfg, count_records):
    """Fills the fields of `cfg` left None (lr, pretrain_lr, steps, pretrain_steps)
    with its recipe's values; `count_records()` gives the number of training
    records, for the paper recipe's epochs (`paper_steps`). Returns `cfg`."""
    if cfg.recipe not in RECIPES:
        raise ValueError(f"recipe must be one of {RECIPES}, got {cfg.recipe!r}")
    defaults = dict(RECIPE_DEFAULTS[cfg.recipe])
    if cfg.recipe == "paper" and (cfg.steps is None or cfg.pretrain_steps is None):
        defaults["pretrain_steps"], defaults["steps"] = paper_steps(count_records(), cfg.batch_size)
    for key in ("lr", "pretrain_lr", "steps", "pretrain_steps"):
        if getattr(cfg, key) is None:
            setattr(cfg, key, defaults[key])
    return cfg


def paper_schedule(lr, steps):
    """The full network's learning rate in `train_full_net.m`: `lr` (1e-7) for the
    first 250 of its 270 epochs, lr / 10 for the next 10, lr / 100 for the last 10,
    the boundaries at the same fractions of `steps` (whole epochs when `steps`
    comes from `paper_steps`). Keras calls it with the number of steps done, so
    step k (0-based) of the first 250 epochs gets `lr`."""
    first, second, _ = RECIPE_DEFAULTS["paper"]["epochs"]
    total = sum(RECIPE_DEFAULTS["paper"]["epochs"])
    boundaries = [round(steps * first / total) - 1, round(steps * (first + second) / total) - 1]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, [lr, lr / 10, lr / 100])


@keras.saving.register_keras_serializable(package="sritm_tf")
class MatConvNetAdam(keras.optimizers.Adam):
    """Adam as the reference trains with it: MatConvNet 1.0-beta25 `cnn_train_dag.m`
    (accumulateGradients) calling `+solver/adam.m`, with the per-parameter settings
    of `train_base_net.m` / `train_full_net.m`.

    For each parameter, the gradient of the batch-averaged loss (MatConvNet's
    der / batchSize) gets `l2_decay` x value added (weightDecay 5e-4, kernels only;
    the reference sets biases' weightDecay to 0): L2 regularisation in the gradient,
    not AdamW's decoupled decay. The step is then Adam's, at `bias_lr_multiplier`
    (0.1) x the rate for biases (their learningRate 0.1): a per-variable rate, as
    scaling a gradient would change nothing under Adam. `adam.m` computes
    lr_t = lr sqrt(1 - b2^t) / (1 - b1^t), w -= lr_t m / (sqrt(v) + eps), which is
    Keras' Adam update; eps 1e-8 as there (Keras' default is 1e-7).
    """

    def __init__(self, learning_rate=1e-7, bias_lr_multiplier=0.1, l2_decay=5e-4, epsilon=1e-8, **kwargs):
        super().__init__(learning_rate=learning_rate, epsilon=epsilon, **kwargs)
        self.bias_lr_multiplier = bias_lr_multiplier
        self.l2_decay = l2_decay

    def build(self, var_list):
        super().build(var_list)
        # By the Keras variables' names: update_step may get the backend's variable.
        self._roles = [v.name for v in var_list]

    def update_step(self, gradient, variable, learning_rate):
        role = self._roles[self._get_variable_index(variable)]
        if role == "bias":
            learning_rate = learning_rate * self.bias_lr_multiplier
        elif role == "kernel":
            gradient = gradient + self.l2_decay * keras.ops.cast(variable, gradient.dtype)
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "bias_lr_multiplier": self.bias_lr_multiplier, "l2_decay": self.l2_decay}


@keras.saving.register_keras_serializable(package="sritm_tf", name="reference_l2_loss")
def reference_l2_loss(y_true, y_pred):
    """The reference's training loss (`+dagnn/PSNRLoss.m`), per image: the sum over
    H, W, C of 0.5 d^2, d = prediction - target; Keras then averages over the batch
    (MatConvNet's der / batchSize). `PSNRLoss.m` back-propagates d clipped to
    [-1, 1], the gradient of |d| - 0.5 beyond |d| = 1, so that is the loss there
    (a Huber loss with delta 1, summed)."""
    d = keras.ops.abs(keras.ops.cast(y_pred, "float32") - keras.ops.cast(y_true, "float32"))
    return keras.ops.sum(keras.ops.where(d <= 1.0, 0.5 * d * d, d - 0.5), axis=(1, 2, 3))


def xavier_normal(model, seed=None):
    """Re-draws every Glorot-uniform kernel of `model` (this package's default; the
    classical skip's zero-initialised last conv stays zero) from Xavier normal,
    VarianceScaling(1, "fan_avg", "untruncated_normal") = N(0, 2 / (fan_in + fan_out)),
    fan = k^2 x channels: the reference's `+dagnn/Conv.m` initParams,
    randn * sqrt(2 / (prod(size(1:3)) + prod(size([1 2 4])))). Biases stay zero, as
    there. Returns `model`."""
    init = keras.initializers.VarianceScaling(1.0, "fan_avg", "untruncated_normal",
                                              seed=keras.random.SeedGenerator(seed))
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D) and isinstance(layer.kernel_initializer,
                                                                 keras.initializers.GlorotUniform):
            layer.kernel.assign(init(layer.kernel.shape, layer.kernel.dtype))
    return model


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
    antialiasing and rounded to 8 bits, as `sritm eval` and real LR content give it
    (`evaluate.make_lr`); HDR: 16-bit (or 8-bit) BT.2020 PQ R'G'B' at HR. `crop`: keep a
    centre square of `crop` LR pixels (0: whole frame)."""
    from sritm_tf.evaluate import make_lr, read_pair

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
    sdr_lr = make_lr(sdr, scale)
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


# Anchored fine-tuning: the SDR range a set of pairs covers (percentiles of their
# max(R', G', B') 8-bit codes), and the exposure change of the anchor crops in stops.
ANCHOR_COVERAGE = (0.5, 99.5)
ANCHOR_STOPS = 3.0


def sdr_max_codes(sdr_yuv):
    """max(R', G', B') of network-convention SDR Y'CbCr, in 8-bit codes."""
    return np.round(np.clip(colour.model_yuv_to_sdr_rgb(np.asarray(sdr_yuv, np.float64)), 0, 1).max(-1) * 255)


def anchor_crops(sdr_crops, pairs, teacher, scale, rng):
    """Anchor crops of anchored fine-tuning. Each SDR crop is re-exposed by 2^u, u
    uniform in +-`ANCHOR_STOPS` stops (linear light at gamma 2.4, BT.1886 with L_B = 0;
    clipped; 8-bit), so that some of its pixels leave the range of SDR codes the pairs
    cover; the target is the `teacher` network's output (the --init network's). Only
    those pixels count: per-pixel weight where the crop's max(R', G', B') code lies
    outside the `ANCHOR_COVERAGE` percentiles of the pairs' codes, 0 elsewhere, scaled
    so that the anchor term weighs as much as the pairs' term. Where the graded pairs
    show nothing (say, a frame without highlights), the loss keeps the network's prior
    instead of letting the grade's correction extrapolate.
    Returns (sdr, target, weight, share of the pixels counted), or None when none is."""
    codes = np.concatenate([sdr_max_codes(sdr).ravel() for sdr, _ in pairs])
    low, high = np.percentile(codes, ANCHOR_COVERAGE)
    rgb = np.clip(colour.model_yuv_to_sdr_rgb(np.asarray(sdr_crops, np.float64)), 0, 1)
    gain = 2.0 ** rng.uniform(-ANCHOR_STOPS, ANCHOR_STOPS, (len(rgb), 1, 1, 1))
    rgb = colour.dequantize(colour.quantize(colour.gamma_encode(np.clip(colour.gamma_decode(rgb) * gain, 0, 1)), 8), 8)
    sdr = colour.sdr_rgb_to_model_yuv(rgb).astype(np.float32)
    code = sdr_max_codes(sdr)
    counted = (code < low) | (code > high)
    if not counted.any():
        return None
    share = float(counted.mean())
    weight = (counted / share).astype(np.float32).repeat(scale, 1).repeat(scale, 2)
    target = np.asarray(teacher.predict(sdr, batch_size=16, verbose=0), np.float32)
    return sdr, target, weight, share


def anchor_teacher(cfg):
    """The --init network, float32 and outside any distribution strategy, for
    `anchor_crops`; None (and a line saying why) where anchors cannot be made."""
    if not (cfg.pairs and cfg.anchor and cfg.init):
        return None
    if cfg.recipe == "paper":
        print("anchors: off under --recipe paper (the authors' recipe has none)", flush=True)
        return None
    architecture = init_architecture(cfg.init)
    if architecture and architecture.get("scale") != cfg.scale:
        print(f"anchors: off, the --init network is x{architecture['scale']}, not x{cfg.scale}", flush=True)
        return None
    teacher = plain_copy(None, cfg)
    return load_init_weights(teacher, cfg.init)


def crops_dataset(pairs, cfg, teacher=None):
    """Fine-tuning data: `cfg.crops` aligned random crops (`cfg.patch_size` LR pixels,
    default 48) from in-memory pairs, random flips / rotations (none under the paper
    recipe), repeated, as (sdr, hdr) batches. With a `teacher` (`anchor_teacher`), each
    batch also holds as many `anchor_crops`, unflipped (a network is not exactly
    flip-equivariant, so a flipped teacher output is not the teacher's output), and the
    batches are (sdr, hdr, per-pixel weight): 1 for the pairs' crops. The training
    metrics Keras logs then cover both halves."""
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
    sdr_crops, hdr_crops = np.stack(sdr_crops), np.stack(hdr_crops)
    ds = tf.data.Dataset.from_tensor_slices((sdr_crops, hdr_crops)).shuffle(len(sdr_crops), seed=cfg.seed).repeat()
    if cfg.recipe != "paper":
        ds = ds.enumerate().map(lambda i, p: augment_pair(p[0], p[1], tf.stack([tf.constant(cfg.seed, tf.int64), i])))
    ds = ds.batch(cfg.batch_size, drop_remainder=True)
    anchors = None
    if teacher is not None:
        anchors = anchor_crops(sdr_crops, pairs, teacher, cfg.scale, rng)
        print("anchors: none (no re-exposed pixel leaves the SDR codes the pairs cover)" if anchors is None else
              f"anchors: {anchors[3]:.1%} of their pixels lie outside the pairs' SDR codes", flush=True)
    if anchors is not None:
        ones = tf.ones([cfg.batch_size, patch * cfg.scale, patch * cfg.scale])
        anchor_ds = tf.data.Dataset.from_tensor_slices(anchors[:3]).shuffle(len(sdr_crops), seed=cfg.seed + 1)
        anchor_ds = anchor_ds.repeat().batch(cfg.batch_size, drop_remainder=True)
        ds = tf.data.Dataset.zip(ds, anchor_ds).map(
            lambda a, b: (tf.concat([a[0], b[0]], 0), tf.concat([a[1], b[1]], 0), tf.concat([ones, b[2]], 0)))
    return ds.prefetch(tf.data.AUTOTUNE)


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
                             white_nits=cfg.white_nits, chroma_gate=cfg.chroma_gate, shadow_gate=cfg.shadow_gate)
    if cfg.mixed_precision:
        out = keras.layers.Activation("linear", dtype="float32", name="hdr_yuv_float32")(model.output)
        model = keras.Model(model.input, out, name=model.name)
    return model


def compile_model(model, lr, recipe="ours"):
    """Adam and MSE (ours), or `MatConvNetAdam` and `reference_l2_loss` (paper);
    `lr` a number or a schedule."""
    if recipe == "paper":
        model.compile(optimizer=MatConvNetAdam(lr), loss=reference_l2_loss, metrics=keras_metrics())
    else:
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
    """{scale, channels, m, n, skip} and, for a classical skip, {chroma_gate, shadow_gate}
    of the network stored in a .keras or .npz file (None for .weights.h5, which does
    not record it)."""
    from sritm_tf.pretrained import model_config, read_weights

    if path.endswith(".weights.h5"):
        return None
    config = model_config(read_weights(path))
    keys = ("scale", "channels", "m", "n", "skip", "chroma_gate", "shadow_gate")
    return {key: config[key] for key in keys if key in config}


def plain_copy(model, cfg):
    """A float32 full network of `cfg` with the weights of `model`, if given (drops the
    mixed-precision head)."""
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")  # else the copy would be mixed too
    try:
        plain = build_deep_sritm(cfg.scale, cfg.channels, cfg.m, cfg.n, modulation=True, skip=cfg.skip,
                                 white_nits=cfg.white_nits, chroma_gate=cfg.chroma_gate,
                                 shadow_gate=cfg.shadow_gate)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    if model is not None:
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
    callbacks = [StopOnNaN(), keras.callbacks.BackupAndRestore(backup_dir, save_freq="epoch")]
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

    def dataset():
        if cfg.pairs:
            return crops_dataset(load_pairs(cfg.pairs, cfg.scale), cfg, teacher=anchor_teacher(cfg))
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
        with _Scope(strategy):
            model = new_model(False, cfg.pretrain_lr)
            if cfg.init:
                load_init_weights(model, cfg.init)
        fit_stage(model, dataset(), val_ds, cfg, os.path.join(cfg.run_dir, "pretrain"),
                  cfg.pretrain_steps, chief, worker_index, extra_callbacks)
        if chief:
            _save_atomic(model.save_weights, pretrain_path)
    if cfg.stage in ("full", "both"):
        keras.utils.set_random_seed(cfg.seed + 1)
        with _Scope(strategy):
            pretrained, model = model, new_model(True, paper_schedule(cfg.lr, cfg.steps) if paper else cfg.lr)
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
        compile_model(plain, cfg.lr, cfg.recipe)  # final.keras loads compiled, as a float32 run's does
    _save_atomic(plain.save, os.path.join(cfg.run_dir, "final.keras"))
    save_weights_npz(plain, os.path.join(cfg.run_dir, f"deep_sritm_x{cfg.scale}.npz"))
