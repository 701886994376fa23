"""sritm_tf: Deep SR-ITM, joint super-resolution and inverse tone-mapping, in Keras 3.

LR SDR (BT.709, gamma, 8-bit) in, HR HDR10 (BT.2020, PQ, 10-bit) out.
"""
from sritm_tf.model import (
    INTERMEDIATES,
    build_deep_sritm,
    build_toy_network,
    intermediate_model,
    transfer_weights,
)

__version__ = "0.1.0"
