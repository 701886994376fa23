"""The networks shipped with sritm_tf: one table, the single source of truth.

Each preset names the exact `build_deep_sritm` configuration its weights were
trained with, the weights file in `sritm_tf/weights/`, and its section of the
model card. `sritm_tf.from_preset(name)` builds that network and fills it,
refusing a weights file whose stored configuration differs from the table
(`pretrained.fill_weights_npz`).

The shipped networks use the classical skip (`layers.ClassicalMapping`, ITU-R
BT.2408 reference white) with its two parameterless gates on the residual:
the chroma gate c0 = 4/255 (`layers.ChromaGate`) and the shadow gate
y0 = 1e-3 of SDR white (`layers.ShadowGate`; BT.1886 black, 0.1 of 100 cd/m2).
The paper's own network (`build_deep_sritm()`'s default) adds the residual to
the bicubic-upsampled input instead (Kim et al. 2019, Eq. 12).

This module imports nothing heavy: it can be read before Keras starts.
"""
from typing import NamedTuple

from sritm_tf.errors import InputError


class Preset(NamedTuple):
    """A shipped network: `config` holds the `build_deep_sritm` arguments,
    `weights` the file name in `sritm_tf/weights/`, `card` its model-card section,
    `model` the family member (`--model`)."""
    name: str
    config: dict
    weights: str
    card: str
    model: str = "full"


# The family members `--model` names: the paper's size, and the TV-class network, the same
# structure narrower and shallower, distilled from the full one, within 300 GFLOP per
# 1080p -> 4K frame (`sritm info --model tv`).
MODELS = {"full": {"channels": 64, "m": 3, "n": 10}, "tv": {"channels": 12, "m": 2, "n": 4}}


def _shipped(scale, model="full"):
    name = f"deep_sritm_x{scale}" if model == "full" else f"deep_sritm_{model}_x{scale}"
    config = {"scale": scale, **MODELS[model], "modulation": True, "skip": "classical",
              "chroma_gate": 4 / 255, "shadow_gate": 1e-3}
    return Preset(name, config, f"{name}.npz", f"MODEL_CARD.md#{name}", model)


PRESETS = {preset.name: preset for preset in (_shipped(2), _shipped(4), _shipped(2, "tv"), _shipped(4, "tv"))}


def preset(name):
    """The `Preset` called `name`; InputError listing the known names otherwise."""
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})")
    return PRESETS[name]


def preset_for_scale(scale, model="full"):
    """The shipped `Preset` of `scale` (2 or 4) and `model` (a key of MODELS); InputError
    for another scale or model."""
    if model not in MODELS:
        raise InputError(f"unknown model {model!r} (known: {', '.join(MODELS)})")
    for entry in PRESETS.values():
        if entry.config["scale"] == scale and entry.model == model:
            return entry
    raise InputError(f"no shipped {model} network for x{scale}")
