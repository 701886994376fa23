"""Distributed training: the tf.distribute strategy of a run, this worker's place in a
TF_CONFIG cluster, and the multi-worker `fit` workaround Keras 3 needs."""
import json
import os
import re

import keras

# The Keras versions whose TensorFlow trainer needs `patch_multi_worker_fit`: from 3.0
# up to, not including, the second (checked on 3.15.1). A newer Keras runs `fit` as it
# is: widen the range once tests/train/test_distributed.py shows it still needs the patch.
MULTI_WORKER_FIT_PATCHED = ((3, 0), (3, 16))


def is_tensorflow():
    return keras.backend.backend() == "tensorflow"


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


def keras_version(text):
    """(major, minor) of a Keras version string such as "3.15.1" or "3.16.0.dev2025"."""
    major, minor = (re.findall(r"\d+", text) + ["0", "0"])[:2]
    return int(major), int(minor)


def multi_worker_fit_needs_patch(version=None):
    """Whether Keras `version` (default: the installed one) is one that
    `patch_multi_worker_fit` is known to be needed on (`MULTI_WORKER_FIT_PATCHED`)."""
    low, high = MULTI_WORKER_FIT_PATCHED
    return low <= keras_version(version or keras.__version__) < high


def patch_multi_worker_fit(model, strategy):
    """Works around https://github.com/keras-team/keras/issues/20585 (Keras 3 `fit` under
    MultiWorkerMirroredStrategy), on the Keras versions known to need it
    (`multi_worker_fit_needs_patch`), in two places:

    - `fit` starts by reducing the first distributed batch with
      `strategy.reduce("MEAN", ...)`, which that strategy refuses (PerReplica ->
      Tensor); the build it feeds needs only shapes, so it gets the first local
      replica's batch instead;
    - each step reduces the scalar loss / metrics with `strategy.reduce("MEAN",
      v, axis=0)`, which fails on a scalar; scalars are reduced with axis=None.

    The first is an attribute of `model`; the second replaces the private
    `keras.src.backend.tensorflow.trainer.reduce_per_replica` for the whole process
    (around the original, kept as its `__wrapped__`, so a second call wraps it once), and leaves every other strategy's
    reductions to the original. Other strategies, and other Keras versions, are left alone.
    """
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or not multi_worker_fit_needs_patch():
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


class StrategyScope:
    """`strategy.scope()`, or nothing for None (a backend other than TensorFlow)."""

    def __init__(self, strategy):
        self.strategy = strategy

    def __enter__(self):
        self._ctx = self.strategy.scope() if self.strategy is not None else None
        return self._ctx.__enter__() if self._ctx else None

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc) if self._ctx else False


