"""Full-int8 calibration of the network: the synthetic chart it is calibrated on
besides real pictures, and a disk cache of the calibrated TFLite network.

Activation ranges are measured on what the frames show. The bundled sample holds
neither saturated colours nor flat fields, so a network calibrated on it alone
clipped them (a 75 % blue bar came out about five times too dark). `chart_images`
adds 75 % colour bars (the bars of ITU-R BT.801-1 / SMPTE RP 219), flat black,
grey and white fields, the primaries and secondaries as flat fields, and ramps of
them. (Blocks of saturated colours with hard edges widened the ranges for little:
a flat green lost 2 dB.)

Calibrating takes tens of seconds, so `cached` keeps the calibrated flatbuffer in
`cache_dir()` under a key of the network (its configuration and its weights'
bytes), the calibration size and `RECIPE`; a file that does not check out against
its stored SHA-256 is built again. No TensorFlow here.
"""
import hashlib
import json
import os
from pathlib import Path

import numpy as np

#: Version of the calibration recipe (frames, layers kept float): part of the cache key.
RECIPE = 3
CACHE_ENV = "SRITM_CACHE"
_DIGEST = 32  # bytes of the SHA-256 that closes a cache file

# White, yellow, cyan, green, magenta, red, blue, black: the order of BT.801 / RP 219 bars.
BAR_COLOURS = np.float32([[1, 1, 1], [1, 1, 0], [0, 1, 1], [0, 1, 0], [1, 0, 1], [1, 0, 0], [0, 0, 1], [0, 0, 0]])


def chart_images(size):
    """SDR R'G'B' float32 images [0, 1] of `size` (h, w): 75 % colour bars
    (`BAR_COLOURS`), flat black, 50 % grey and white, the six primaries and
    secondaries at 100 % over the whole frame, and a ramp 0..100 % of each bar
    colour but black, one band each."""
    h, w = size
    bars = 0.75 * BAR_COLOURS[np.minimum(np.arange(w) * 8 // w, 7)][None].repeat(h, axis=0)
    flats = [np.full((h, w, 3), level, np.float32) for level in (0.0, 0.5, 1.0)]
    flats += [np.broadcast_to(c, (h, w, 3)).copy() for c in BAR_COLOURS[1:7]]
    ramp = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :, None]
    ramps = ramp * BAR_COLOURS[np.minimum(np.arange(h) * 7 // h, 6)][:, None, :]
    return [bars, *flats, ramps]


def cache_dir():
    """Where calibrated networks are kept: $SRITM_CACHE, else $XDG_CACHE_HOME/sritm_tf,
    else ~/.cache/sritm_tf (the XDG Base Directory default)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sritm_tf"


def cache_key(model, input_size, any_size=True, quantize="int8"):
    """SHA-256 (hex) of what the calibrated network depends on: `RECIPE`, the
    TensorFlow version (its converter), `quantize`, the calibration `input_size`,
    `any_size`, the model's configuration (scale, white level, layers) and the
    bytes of its weights."""
    import tensorflow as tf

    digest = hashlib.sha256()
    head = {"recipe": RECIPE, "tensorflow": tf.__version__, "quantize": quantize,
            "input_size": [int(n) for n in input_size], "any_size": bool(any_size)}
    digest.update(json.dumps(head, sort_keys=True).encode())
    digest.update(json.dumps(model.get_config(), sort_keys=True, default=str).encode())
    for weights in model.get_weights():
        array = np.ascontiguousarray(weights)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _read(path):
    """The flatbuffer of cache file `path`, or None when it is missing or damaged."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    content, digest = data[:-_DIGEST], data[-_DIGEST:]
    return content if len(data) > _DIGEST and hashlib.sha256(content).digest() == digest else None


def cached(name, key, build, suffix=".tflite"):
    """The bytes `build()` returns (a calibrated network), kept in `cache_dir()` as
    `<name>-<key[:20]><suffix>` followed by their SHA-256: read back when it is there and intact, else built and
    written atomically (`fileio.atomic_path`). A cache folder that cannot be written is a
    note (`notes.note`): the network is then calibrated again on the next run."""
    from sritm_tf.fileio import atomic_path
    from sritm_tf.notes import note

    path = cache_dir() / f"{name}-{key[:20]}{suffix}"
    content = _read(path)
    if content is not None:
        return content
    content = build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_bytes(content + hashlib.sha256(content).digest())
    except OSError as e:
        note(f"{path.parent}: cannot keep the calibrated int8 network there ({e.strerror}); "
             f"set {CACHE_ENV} to a writable folder")
    return content
