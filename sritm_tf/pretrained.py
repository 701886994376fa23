"""Weights of Deep SR-ITM: the shipped ones (`sritm_tf.presets`), and a compact `.npz` format for them.

The `.npz` holds one array per layer weight, keyed "<layer name>/<index>" (the
order of `layer.get_weights()`), plus a "config" entry: a JSON string with the
arguments of `build_deep_sritm` (scale, channels, m, n, modulation, skip and,
for the classical skip, its gates), so the file alone rebuilds the model.
Weights are stored as float16 by default, which halves the size of the package;
they are cast back to float32 on load. Weights go only into the network their
"config" describes: the parameterless layers (skip, gates) change the output
without changing any weight's shape, so a fit by shape proves nothing.
"""
import json
import os
import re
import zipfile
import zlib

import numpy as np

from sritm_tf import presets
from sritm_tf.errors import InputError, MissingFileError
from sritm_tf.fileio import atomic_path

WEIGHTS_DIR = os.path.join(os.path.dirname(__file__), "weights")
SAMPLES_DIR = os.path.join(os.path.dirname(__file__), "samples")


def bundled_weights_path(scale=2, model="full"):
    """Path of the weights of the shipped `model` ("full" or "tv") for `scale`
    (`presets.preset_for_scale`)."""
    return preset_weights_path(presets.preset_for_scale(scale, model).name)


def preset_weights_path(name):
    """Path of the weights file of the preset `name` (`sritm_tf.presets`)."""
    return os.path.join(WEIGHTS_DIR, presets.preset(name).weights)


def sample_path():
    """Path of the bundled 240x136 8-bit SDR sample image (see samples/LICENSE)."""
    return os.path.join(SAMPLES_DIR, "sample_sdr.png")


def model_config(model):
    """The `build_deep_sritm` arguments of `model`, read back from its layers. The
    ablation switches `decomposition` and `skips` (Table 3) appear only when off."""
    names = {layer.name for layer in model.layers}
    count = lambda block: sum(1 for name in names if re.fullmatch(f"{block}\\d+_conv1", name))
    if "base_conv1" not in names or "bicubic" not in names:
        raise ValueError(f"{model.name} is not a Deep SR-ITM network (no base_conv1 / bicubic layer)")
    config = {
        "scale": int(model.get_layer("bicubic").scale),
        "channels": int(model.get_layer("base_conv1").filters),
        "m": count("base_rb"),
        "n": count("fusion_rb"),
        "modulation": "base_smf_conv1" in names,
        "skip": "classical" if "classical" in names else "bicubic",
    }
    if "guided_filter" not in names:
        config["decomposition"] = False
    if config["m"] > 0 and "detail_rsmb1_reduce" not in names:
        config["skips"] = False
    if "classical" in names:  # a config without it (weights saved before the gate) gets the default gate
        config["chroma_gate"] = model.get_layer("classical_chroma_gate").c0 if "classical_chroma_gate" in names else 0
        config["shadow_gate"] = model.get_layer("classical_shadow_gate").y0 if "classical_shadow_gate" in names else 0
    return config


def save_weights_npz(model, path, dtype="float16"):
    """Writes the weights of a Deep SR-ITM `model` to `path` (.npz), as `dtype`.

    The file is written under a temporary name and renamed at the end, so an
    interrupted save never leaves a truncated file.
    """
    arrays = {"config": np.array(json.dumps(model_config(model)))}
    for layer in model.layers:
        for i, weight in enumerate(layer.get_weights()):
            arrays[f"{layer.name}/{i}"] = np.asarray(weight).astype(dtype)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
    return path


# The `build_deep_sritm` arguments that shape the network (the rest, e.g. white_nits
# and precision, are settings of a built network that any weights suit).
ARCHITECTURE = ("scale", "channels", "m", "n", "modulation", "skip", "decomposition", "skips", "chroma_gate",
                "shadow_gate")


def load_weights_npz(path, **overrides):
    """Builds the model described by the "config" entry of `path` (with the settings
    `overrides`, e.g. white_nits=400 or precision="bf16") and fills its weights (cast
    to float32). Raises ValueError if the file does not match (InputError, naming the
    file, if it is no readable .npz: damaged, truncated, or another kind of file, or
    if `overrides` would change the stored network, e.g. skip="bicubic")."""
    return _npz(path, None, overrides)


def fill_weights_npz(model, path):
    """Fills `model` with the weights of `path` (cast to float32) and returns it, after
    checking that the file's "config" describes `model`'s network: InputError naming
    `path` and what differs (scale, channels, m, n, skip, gates, ...) otherwise."""
    return _npz(path, model, {})


def _npz(path, model, overrides):
    try:
        return _read_npz(path, model, overrides)
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:  # a damaged archive or member
        raise InputError(f"{path}: not a readable .npz weights file ({err})") from None


def _read_npz(path, model, overrides):
    from sritm_tf.model import build_deep_sritm

    try:
        data = np.load(path, allow_pickle=False)
    except ValueError:  # numpy's "pickled data" message: neither .npy nor a zip archive
        raise InputError(f"{path}: not a .npz weights file (not a zip archive)") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise InputError(f"{path}: a single .npy array, not a .npz weights file")
    with data:
        if "config" not in data:
            raise ValueError(f"{path}: no 'config' entry; not a sritm_tf weights file")
        try:
            config = json.loads(str(data["config"]))
            config.setdefault("skip", "bicubic")  # files written before the classical skip existed
            _check_network(path, config, model_config(model) if model is not None else {**config, **overrides})
            if model is None:
                model = build_deep_sritm(**{**config, **overrides})
        except (ValueError, TypeError, AttributeError) as err:
            if isinstance(err, InputError):
                raise
            raise InputError(f"{path}: unusable 'config' entry ({err})") from None
        used = {"config"}
        for layer in model.layers:
            if not layer.weights:
                continue
            keys = [f"{layer.name}/{i}" for i in range(len(layer.weights))]
            missing = [k for k in keys if k not in data]
            if missing:
                raise ValueError(f"{path}: missing {missing[0]} for the model {config}")
            try:
                layer.set_weights([data[k].astype(np.float32) for k in keys])
            except ValueError as err:  # Keras names the layer and the shapes, not the file
                raise InputError(f"{path}: {_reason(err)}") from None
            used.update(keys)
        extra = sorted(set(data.files) - used)
        if extra:
            raise ValueError(f"{path}: {len(extra)} entries the model {config} lacks, e.g. {extra[0]}")
    return model


def _architecture(config):
    """The ARCHITECTURE entries of `config` (`build_deep_sritm` arguments), with the
    function's defaults filled in and the gates 0 where the network has none."""
    import inspect

    from sritm_tf.model import build_deep_sritm

    defaults = {k: p.default for k, p in inspect.signature(build_deep_sritm).parameters.items()}
    unknown = sorted(set(config) - set(defaults))
    if unknown:
        raise TypeError(f"build_deep_sritm() has no argument {unknown[0]!r}")
    full = {**defaults, **config}
    if full["skip"] != "classical":  # the gates act on the classical skip only
        full["chroma_gate"] = full["shadow_gate"] = 0
    for gate in ("chroma_gate", "shadow_gate"):  # None and 0 both mean none; JSON keeps a float's digits
        full[gate] = round(float(full[gate] or 0), 9)
    return {key: full[key] for key in ARCHITECTURE}


def _check_network(path, stored, wanted):
    """InputError naming `path` and each difference when the network `wanted` is not
    the one whose weights `path` stores (`stored`, its "config")."""
    have, want = _architecture(stored), _architecture(wanted)
    differ = [key for key in ARCHITECTURE if have[key] != want[key]]
    if differ:
        changes = "; ".join(f"{key} {have[key]!r}, not {want[key]!r}" for key in differ)
        raise InputError(f"{path}: these weights are for another network ({changes})")


def configure(model, white_nits=None, precision=None):
    """`model` with the SDR reference white of its classical skip set to
    `white_nits` cd/m2 and/or its compute precision set to "bf16" / "fp32"
    (`sritm_tf.precision`): a rebuilt copy with the same weights, or `model`
    itself when nothing changes (None leaves a setting as it is)."""
    from sritm_tf.model import build_deep_sritm

    names = {layer.name for layer in model.layers}
    white_changes = (white_nits is not None and "classical" in names
                     and model.get_layer("classical").white_nits != float(white_nits))
    current = "bf16" if model.get_layer("base_conv1").dtype_policy.compute_dtype == "bfloat16" else "fp32"
    precision_changes = precision is not None and precision != current
    if not (white_changes or precision_changes):
        return model
    white = white_nits if white_changes else (model.get_layer("classical").white_nits if "classical" in names else 203.0)
    rebuilt = build_deep_sritm(**model_config(model), white_nits=white, precision=precision or current,
                               name=model.name)
    rebuilt.set_weights(model.get_weights())
    return rebuilt


WEIGHTS_FORMATS = (".npz", ".keras", ".weights.h5")
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"  # at offset 0, or 512, 1024, 2048, ... after a user block


def check_weights_file(path):
    """Refuses, before TensorFlow is imported, a weights file that cannot be one:
    missing, of an unknown extension, or without its container: .npz and .keras
    are zip archives (whose central directory, at the end, a cut file lacks),
    .weights.h5 is HDF5 (its signature). Raises InputError naming `path`."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such weights file")
    kind = next((k for k in WEIGHTS_FORMATS if path.endswith(k)), None)
    if kind is None:
        raise InputError(f"{path}: unknown weights format (expected {', '.join(WEIGHTS_FORMATS)})")
    if kind != ".weights.h5" and not zipfile.is_zipfile(path):
        raise InputError(f"{path}: not a {kind} weights file (not a zip archive, or cut short)")
    if kind == ".weights.h5":
        size, offset = os.path.getsize(path), 0
        with open(path, "rb") as f:
            while offset + len(HDF5_SIGNATURE) <= size:
                f.seek(offset)
                if f.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
                    return
                offset = max(512, 2 * offset)
        raise InputError(f"{path}: not a .weights.h5 weights file (no HDF5 signature)")


def _reason(err):
    """The first line of an exception's message (Keras and h5py write several)."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def read_weights(path, like=None, scale=2):
    """The network stored in a weights file, by format: .npz by `load_weights_npz`,
    .keras by `keras.saving.load_model` (not compiled: no training state needed),
    .weights.h5 loaded into `like` (a model of the stored architecture, filled in
    place) or else into `build_deep_sritm(scale)`. Raises ValueError for another
    extension, and InputError naming `path` for a file that does not load."""
    import keras

    path = os.fspath(path)
    if path.endswith(".npz"):
        return _finite(load_weights_npz(path), path)
    if path.endswith(".keras"):
        try:
            model = keras.saving.load_model(path, compile=False)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, zipfile.BadZipFile) as err:  # h5py's too
            raise InputError(f"{path}: not a readable .keras model ({_reason(err)})") from None
        return _finite(model, path)
    if path.endswith(".weights.h5"):
        from sritm_tf.model import build_deep_sritm

        model = like if like is not None else build_deep_sritm(scale=scale)
        try:
            _check_h5_skip(path, model)
            model.load_weights(path)
        except InputError:
            raise
        except (OSError, ValueError, KeyError, RuntimeError) as err:  # h5py's OSError / RuntimeError: damage
            raise InputError(f"{path}: cannot load these weights ({_reason(err)})") from None
        return _finite(model, path)
    raise InputError(f"{path}: unknown weights format (expected {', '.join(WEIGHTS_FORMATS)})")


def _check_h5_skip(path, model):
    """InputError naming `path` when the network saved there and `model` differ in their
    skip (Eq. 12's bicubic input, or the classical conversion): the skip has no weights,
    so Keras would fill either network from either file. A .weights.h5 keeps one group
    per layer, weights or not, named after the layer's class (Keras 3) or the layer."""
    import h5py

    with h5py.File(path, "r") as f:
        saved = "classical" if any("classical" in name for name in f.get("layers", {})) else "bicubic"
    skip = "classical" if "classical" in {layer.name for layer in model.layers} else "bicubic"
    if saved != skip:
        raise InputError(f"{path}: these weights are for another network (skip {saved!r}, not {skip!r}); "
                         "a .weights.h5 does not record the network: load the .npz or .keras file")


def _finite(model, path):
    """`model`, or InputError naming `path` and the first layer whose weights hold NaN or
    infinity (a diverged training run): such a network converts every frame to garbage."""
    for layer in model.layers:
        if any(not np.isfinite(w).all() for w in layer.get_weights()):
            raise InputError(f"{path}: layer {layer.name} holds non-finite weights (NaN or infinity), "
                             "as a diverged training run leaves them")
    return model


def load_model(scale=2, weights=None, white_nits=203.0, precision=None):
    """The full Deep SR-ITM network for `scale`, with weights.

    Args:
        scale: 2 or 4.
        weights: None for the weights file of the shipped network of `scale`
            (`sritm_tf.presets`; `from_preset` also checks the file against the
            table); a path ending in .npz, .keras or .weights.h5; or a keras.Model.
        white_nits: SDR reference white of the classical skip (cd/m2), for
            weights trained with it; no effect on the paper's bicubic skip.
        precision: "bf16" or "fp32" compute (`sritm_tf.precision`; weights
            stay float32); None: as built.

    Returns:
        A keras.Model.

    Files are read by `read_weights` (.weights.h5 into `build_deep_sritm(scale)`). Raises
    MissingFileError (a FileNotFoundError) naming the missing file and InputError
    (a ValueError) when the weights are for another scale.
    """
    import keras

    if isinstance(weights, keras.Model):
        model = weights
    else:
        path = os.fspath(weights) if weights is not None else bundled_weights_path(scale)
        if not os.path.isfile(path):
            if weights is None:
                raise MissingFileError(
                    f"{path}: the bundled x{scale} weights are not installed; "
                    "pass weights (--weights PATH) or use --baseline")
            raise MissingFileError(f"{path}: no such weights file")
        model = read_weights(path, scale=scale)
    layer_names = {layer.name for layer in model.layers}
    model_scale = model.get_layer("bicubic").scale if "bicubic" in layer_names else scale
    if model_scale != scale:
        raise InputError(f"{getattr(weights, 'name', weights)}: weights are for x{model_scale}, not x{scale}")
    return configure(model, white_nits, precision)


def from_preset(name, white_nits=203.0, precision=None):
    """The shipped network `name` of `sritm_tf.presets` (e.g. "deep_sritm_x2"): built
    exactly as the table says and filled with its weights, which must have been saved
    from that network (`fill_weights_npz`).

    Args:
        name: a key of `presets.PRESETS`; InputError listing them for another name.
        white_nits: SDR reference white of the classical skip, cd/m2 (ITU-R BT.2408).
        precision: "bf16" or "fp32" compute (`sritm_tf.precision`); None: as built.

    Returns:
        A keras.Model. Raises MissingFileError when the weights file is not installed.
    """
    from sritm_tf.model import build_deep_sritm

    entry = presets.preset(name)
    path = preset_weights_path(name)
    if not os.path.isfile(path):
        raise MissingFileError(f"{path}: the weights of the preset {name} are not installed")
    model = build_deep_sritm(**entry.config, white_nits=white_nits, precision=precision)
    return _finite(fill_weights_npz(model, path), path)
