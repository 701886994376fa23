"""Training Deep SR-ITM (`sritm train`), one module per job:

    config      TrainConfig, the ours / paper recipes and the paper's optimiser, loss and init
    networks    the networks of a run: build, compile, --init weights, float32 copy
    data        graded pairs (validation, fine-tuning) and anchored fine-tuning's crops
    finetune    fine-tuning's held-out strip and its early stopping
    distribute  tf.distribute strategy, TF_CONFIG workers, the multi-worker fit workaround
    loop        the two stages of the paper on records or pairs, and the run folder
    synthetic   the bundled weights' trainer: pairs synthesised on the fly from HDR scenes

`train(TrainConfig(...))` and `train_synthetic(...)` are the entry points.
"""
from sritm_tf.train.config import TrainConfig
from sritm_tf.train.loop import train
from sritm_tf.train.synthetic import train_synthetic

__all__ = ["TrainConfig", "train", "train_synthetic"]
