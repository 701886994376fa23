"""The configuration of `sritm train` and its two recipes (Kim et al., ICCV 2019, Sec. 4.1).

  ours   (default) Adam (Keras defaults, lr 1e-4 both stages), MSE, Glorot-uniform
         kernels, random flips / 90-degree rotations, 20000 steps per stage;
  paper  the authors' `train_base_net.m` / `train_full_net.m` (MatConvNet 1.0-beta25
         `cnn_train_dag.m`, `+solver/adam.m`): `MatConvNetAdam` (eps 1e-8, biases at
         0.1x the weights' rate, L2 decay 5e-4 on kernels added to the gradient),
         `reference_l2_loss`, Xavier-normal kernels (`xavier_normal`), no
         augmentation, lr 5e-7 for 200 epochs of pre-training, then 1e-7 / 1e-8 /
         1e-9 for 250 / 10 / 10 epochs of the full network (`paper_schedule`), one
         epoch = ceil(training records / batch size) steps (`paper_steps`).
"""
import dataclasses
import math

import keras
import yaml

from sritm_tf.fileio import atomic_path
from sritm_tf.model import CHROMA_GATE, SHADOW_GATE


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
    holdout: float = 0.25             # fine-tuning: share of each pair's width held out to choose the step (0: none)

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

