"""sritm_tf: Deep SR-ITM, joint super-resolution and inverse tone-mapping, in Keras 3.

LR SDR (BT.709, gamma, 8-bit) in, HR HDR10 (BT.2020, PQ, 10-bit) out. The public
names below load lazily, so `import sritm_tf.colour` does not start Keras.
"""
import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "build_deep_sritm": "sritm_tf.model",
    "build_toy_network": "sritm_tf.model",
    "intermediate_model": "sritm_tf.model",
    "transfer_weights": "sritm_tf.model",
    "INTERMEDIATES": "sritm_tf.model",
    "load_model": "sritm_tf.pretrained",
    "from_preset": "sritm_tf.pretrained",
    "PRESETS": "sritm_tf.presets",
    "convert_image": "sritm_tf.convert",
    "convert_video": "sritm_tf.convert",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sritm_tf' has no attribute {name!r}")
