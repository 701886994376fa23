"""Scene folders for synthetic training pairs, and the worker processes that make the pairs.

A scene folder (`training/pack_scenes.py`) holds scene-linear HDR images as 16-bit PNGs of
log2 codes (`augment.encode_scene`) and an index.json listing them: [{"name", "source",
"size"}, ...], each name with its `<name>.png`. `worker_pool` starts processes that each
hold a folder's scenes and make batches of pairs (`augment.sample_batch`) on one core;
`batches` streams them to `fit`.
"""
import collections
import json
import multiprocessing
import os

import numpy as np

from sritm_tf.errors import InputError

# One thread per worker process: a BLAS pool of every core in each of a dozen workers
# oversubscribes the CPUs (on a 16-core GPU machine, training ran 6-8x slower).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

_SCENES = None  # a worker's (scenes, their peaks)


def scene_files(folder):
    """The scene names that `folder`'s index.json lists, each with its PNG there;
    InputError saying what is wrong otherwise."""
    path = os.path.join(folder, "index.json")
    if not os.path.isfile(path):
        raise InputError(f"{folder}: no index.json (not a training/pack_scenes.py output folder)")
    try:
        with open(path) as f:
            names = [entry["name"] for entry in json.load(f)]
    except (ValueError, KeyError, TypeError):
        raise InputError(f"{path}: not a scene list of training/pack_scenes.py") from None
    missing = [n for n in names if not os.path.isfile(os.path.join(folder, f"{n}.png"))]
    if missing:
        raise InputError(f"{folder}: {missing[0]}.png is listed in index.json but missing")
    if not names:
        raise InputError(f"{path}: lists no scenes")
    return names


def load_scenes(folder):
    """The scenes of `folder` as linear BT.709 RGB float32 arrays (`augment.decode_scene`)."""
    import cv2

    from sritm_tf.data import augment

    return [augment.decode_scene(cv2.imread(os.path.join(folder, f"{n}.png"), cv2.IMREAD_UNCHANGED)[..., ::-1])
            for n in scene_files(folder)]


def _worker_init(folder):
    global _SCENES
    import cv2

    from sritm_tf.data import augment

    os.environ["KERAS_BACKEND"] = "numpy"  # workers never touch the accelerator
    cv2.setNumThreads(1)  # one core per worker, as THREAD_VARIABLES
    scenes = load_scenes(folder)
    _SCENES = (scenes, [augment.source_peak(s) for s in scenes])


def make_batch(job):
    """One batch of a worker: job = (seed, batch_size, lr_patch, scale, graphics_prob)."""
    from sritm_tf.data import augment

    seed, batch_size, lr_patch, scale, graphics_prob = job
    scenes, peaks = _SCENES
    if graphics_prob is None:
        graphics_prob = augment.GRAPHICS_PROB
    return augment.sample_batch(scenes, peaks, np.random.default_rng(seed), batch_size, lr_patch, scale,
                                graphics_prob)


def worker_pool(workers, folder):
    """A pool of `workers` processes holding the scenes of `folder`, each on one thread.

    The thread settings go into the environment (unless set already) before the workers
    start, and the workers are started fresh ("spawn"), so each loads numpy and OpenCV
    with them even where this process loaded numpy first; the main process keeps them
    too, which leaves TensorFlow's and XLA's own thread pools as they are. Check the
    folder first (`scene_files`): a worker that fails to start is restarted for ever."""
    for variable in THREAD_VARIABLES:
        os.environ.setdefault(variable, "1")
    return multiprocessing.get_context("spawn").Pool(workers, _worker_init, (folder,))


def batches(pool, seed, batch_size, lr_patch, scale, graphics_prob, prefetch=96):
    """Endless ({"sdr_yuv", "white_nits"}, hdr_yuv) batches from the worker pool."""
    pending = collections.deque()
    index = 0
    while True:
        while len(pending) < prefetch:
            pending.append(pool.apply_async(make_batch, (([seed, index], batch_size, lr_patch, scale, graphics_prob),)))
            index += 1
        x, w, y = pending.popleft().get()
        yield {"sdr_yuv": x, "white_nits": w}, y
