"""Video conversion with the network on a JAX device (a GPU, or JAX's own CPU device):
`applies(convert)` says when, `run_pipeline` converts.

Each stage works on its own, with bounded queues between them, so that the device never
waits for the host and the host never holds more than a few frames:

- decode thread: the source's frames, made network input (`FrameConverter.network_input`);
- this thread: `batch` frames stacked and sent with `jax.device_put`, the network run on
  them (`DevicePredictor`: jitted and compiled once per input shape, XLA's ahead-of-time
  `lower(...).compile()`), and the copy of the result back started at once
  (`jax.Array.copy_to_host_async`). JAX dispatches asynchronously: the next batch is sent and
  started before the last one is read back (`np.asarray` blocks on it), so one batch is in
  flight on the device while the host finishes the one before;
- colour threads: the network's output -> the output signal (`FrameConverter.signal`,
  resized by `geometry.Resized` where asked), NumPy releasing the GIL, in order;
- encode thread: the frames, in order, to `write` (light levels, packing, the encoder pipe).

Tiles: on a GPU the whole frame is one tile when the compiled network's memory (XLA's
`memory_analysis` of a one-frame batch: arguments, output and temporaries) fits in half of
the device's memory (`memory_stats()["bytes_limit"]`), and the batch is as many frames as fit
there (at most `MAX_BATCH`); else, and on the CPU device, the converter's own tiles with their
margins (`inference.TiledPredictor`: the same cores, the same result), cropped and joined on
the device. A last, short batch is filled with copies of its last frame (their outputs are
dropped), so that no other batch shape is compiled.
"""
import concurrent.futures
import os
import queue
import threading

import numpy as np

from sritm_tf import signals
from sritm_tf.inference import tile_bounds
from sritm_tf.precision import keras_backend

MAX_BATCH = 8  # frames per device batch at most: more only delays the first frame
MEMORY_SHARE = 0.5  # of the device's memory for one batch of the network


def _inner(convert):
    """(the `FrameConverter`, the output size of a `geometry.Resized` around it or None)."""
    if hasattr(convert, "size") and hasattr(convert, "convert"):
        return convert.convert, convert.size
    return convert, None


def applies(convert):
    """Whether `convert` runs its network through this pipeline: the Keras model itself
    (engine "tf") on the JAX backend."""
    inner, _ = _inner(convert)
    return (keras_backend() == "jax" and not getattr(inner, "baseline", True)
            and getattr(inner, "engine", None) == "tf" and hasattr(inner, "predict"))


class DevicePredictor:
    """Callable: a device batch (B, H, W, C) and a tile (h, w) -> the network's output on the
    device, float32 (B, sH, sW, C'), tiled with the margin of `predictor` (an
    `inference.TiledPredictor`; its tile where none is given).

    `plan(height, width, batch)` picks the tile and the batch for a frame size (see the module);
    `compiled` holds the network compiled per input shape."""

    def __init__(self, predictor, device=None):
        import jax
        import jax.numpy as jnp

        self.model, self.margin = predictor.model, predictor.margin
        self.tile = predictor.tile
        self.device = device or jax.devices()[0]
        self.forward = jax.jit(lambda x: jnp.asarray(self.model(x, training=False), jnp.float32))
        self.compiled, self.plans = {}, {}

    def compile(self, shape):
        """The network compiled for input `shape` (B, H, W, C), once."""
        import jax

        if shape not in self.compiled:
            spec = jax.ShapeDtypeStruct(shape, np.float32)
            self.compiled[shape] = self.forward.lower(spec).compile()
        return self.compiled[shape]

    def frame_bytes(self, height, width, channels=3):
        """Device bytes of the network on one whole frame: XLA's memory analysis of the compiled
        program (arguments, output, temporaries); None where XLA gives none."""
        analysis = self.compile((1, height, width, channels)).memory_analysis()
        if analysis is None:
            return None
        return (analysis.argument_size_in_bytes + analysis.output_size_in_bytes
                + analysis.temp_size_in_bytes)

    def plan(self, height, width, batch=None):
        """(tile (h, w), batch) for frames of `height` x `width`: whole frames and as many per
        batch as half the device's memory holds on a GPU; else the converter's tile and `batch`
        (default 1). Kept per frame size: with no `batch`, the last plan of that size."""
        if batch is None and (height, width) in self.plans:
            return self.plans[height, width]
        self.plans[height, width] = self._plan(height, width, batch)
        return self.plans[height, width]

    def _plan(self, height, width, batch):
        limit = (self.device.memory_stats() or {}).get("bytes_limit") if self.device.platform != "cpu" else None
        if limit:
            need = self.frame_bytes(height, width)
            if need and need <= MEMORY_SHARE * limit:
                fits = int(MEMORY_SHARE * limit // need)
                return (height, width), max(1, min(batch or MAX_BATCH, fits, MAX_BATCH))
        return self.tile, max(1, batch or 1)

    def __call__(self, x, tile=None):
        import jax.numpy as jnp

        height, width = x.shape[1:3]
        tile = tile or self.tile
        rows = []
        for y0, y1 in tile_bounds(height, tile[0]):
            row = []
            for x0, x1 in tile_bounds(width, tile[1]):
                top, left = max(0, y0 - self.margin), max(0, x0 - self.margin)
                bottom, right = min(height, y1 + self.margin), min(width, x1 + self.margin)
                part = x[:, top:bottom, left:right]
                out = self.compile(part.shape)(part)
                s = out.shape[1] // (bottom - top)
                row.append(out[:, (y0 - top) * s:(y1 - top) * s, (x0 - left) * s:(x1 - left) * s])
            rows.append(row[0] if len(row) == 1 else jnp.concatenate(row, axis=2))
        return rows[0] if len(rows) == 1 else jnp.concatenate(rows, axis=1)


def put(q, item, stop):
    """Puts `item` on `q` unless `stop` is set meanwhile; whether it did."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            pass
    return False


def _get(q, errors):
    """The next item of `q`, waiting while no stage has failed; None after a failure."""
    while not errors:
        signals.check()  # a SIGTERM whose raise was lost stops here
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            pass
    return None


def stacked(frames, batch):
    """`frames` (a list of arrays of one shape) stacked into a batch of `batch`, the last frame
    repeated to fill it."""
    return np.stack(frames + frames[-1:] * (batch - len(frames)))


class Pipeline:
    """The stages of the module around one converter: `predictor` (a `DevicePredictor`),
    `network_input` and `signal` (the converter's, resized where `convert` is a `Resized`).
    `plan(height, width)` is called before the first batch; `batch`: frames per device batch
    (None: `DevicePredictor.plan`'s). The predictor, compiled networks and all, is kept on the
    converter."""

    def __init__(self, convert, batch=None, workers=None):
        from sritm_tf.video import geometry

        inner, size = _inner(convert)
        if not hasattr(inner, "device_predictor"):  # kept: the next video (a segment, say) compiles nothing
            inner.device_predictor = DevicePredictor(inner.predict)
        self.predictor = inner.device_predictor
        self.network_input = inner.network_input
        self.signal = inner.signal if size is None else (lambda y: geometry.resize(inner.signal(y), size))
        self.batch, self.planned = batch, None
        self.workers = workers or min(8, os.cpu_count() or 1)

    def plan(self, height, width):
        if self.planned is None:
            self.planned = self.predictor.plan(height, width, self.batch)
        return self.planned

    def send(self, frames):
        """A list of network inputs -> (their device output, started; how many are real)."""
        import jax

        tile, batch = self.plan(*frames[0].shape[:2])
        x = jax.device_put(stacked(frames, batch), self.predictor.device)
        y = self.predictor(x, tile)
        y.copy_to_host_async()
        return y, len(frames)

    def run(self, source, write, progress=True, desc=None):
        """Converts the frames of `source` ((rgb, pts) with `frame_rate`, `time_base`,
        `frame_count`) and hands each, in order, to `write(signal, pts)`. Returns the frame count."""
        from tqdm.auto import tqdm

        decoded, ready = queue.Queue(maxsize=2 * MAX_BATCH), queue.Queue(maxsize=MAX_BATCH + 2 * self.workers)
        stop, errors = threading.Event(), []
        pool = concurrent.futures.ThreadPoolExecutor(self.workers)

        def decode():
            try:
                for count, (rgb, pts) in enumerate(source):
                    if pts is None:
                        pts = round(count / source.frame_rate / source.time_base)
                    if not put(decoded, (self.network_input(rgb), pts), stop):
                        return
            except BaseException as err:  # handed to this thread
                errors.append(err)
            finally:
                put(decoded, None, stop)

        def encode():
            while (item := ready.get()) is not None:
                if not errors:
                    try:
                        write(item[0].result(), item[1])
                    except BaseException as err:
                        errors.append(err)
                        stop.set()

        def hand_on(sent, stamps):
            host = np.asarray(sent[0])  # waits for that batch only
            for frame, pts in zip(host[:sent[1]], stamps):
                put(ready, (pool.submit(self.signal, frame), pts), stop)

        threads = [threading.Thread(target=decode, daemon=True), threading.Thread(target=encode, daemon=True)]
        for thread in threads:
            thread.start()
        count, flight, done, batch = 0, None, False, None
        try:
            with tqdm(total=source.frame_count, unit="frame", desc=desc, disable=not progress) as bar:
                while not done and not errors:
                    frames, stamps = [], []
                    while not frames or len(frames) < batch:
                        item = _get(decoded, errors)
                        if item is None:
                            done = True
                            break
                        frames.append(item[0])
                        stamps.append(item[1])
                        batch = batch or self.plan(*item[0].shape[:2])[1]
                    sent = (self.send(frames), stamps) if frames else None
                    if flight is not None:
                        hand_on(*flight)
                        bar.update(len(flight[1]))
                    flight = sent
                    count += len(stamps)
                if flight is not None and not errors:
                    hand_on(*flight)
                    bar.update(len(flight[1]))
        finally:
            ready.put(None)
            threads[1].join()
            stop.set()
            threads[0].join()
            pool.shutdown(cancel_futures=True)
        if errors:
            raise errors[0]
        return count


def run_pipeline(source, convert, write, progress=True, desc=None):
    """`Pipeline(convert).run(source, write, progress, desc)`: the frame count."""
    return Pipeline(convert).run(source, write, progress, desc)
