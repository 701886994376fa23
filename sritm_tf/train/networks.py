"""The networks of a training run: the full or pre-training network of a `TrainConfig`,
its optimiser and loss per recipe, the weights it starts from (--init), and a float32
copy for saving."""
import keras

from sritm_tf.metrics import keras_metrics
from sritm_tf.model import build_deep_sritm, transfer_weights
from sritm_tf.train.config import MatConvNetAdam, reference_l2_loss


def build_model(cfg, modulation=True):
    """The network of `cfg`; with mixed precision, a float32 output layer is added."""
    model = build_deep_sritm(cfg.scale, cfg.channels, cfg.m, cfg.n, modulation=modulation, skip=cfg.skip,
                             white_nits=cfg.white_nits, chroma_gate=cfg.chroma_gate, shadow_gate=cfg.shadow_gate)
    if cfg.mixed_precision:
        out = keras.layers.Activation("linear", dtype="float32", name="hdr_yuv_float32")(model.output)
        model = keras.Model(model.input, out, name=model.name)
    return model


def compile_model(model, lr, recipe="ours"):
    """Adam and MSE (ours), or `MatConvNetAdam` and `reference_l2_loss` (paper);
    `lr` a number or a schedule."""
    if recipe == "paper":
        model.compile(optimizer=MatConvNetAdam(lr), loss=reference_l2_loss, metrics=keras_metrics())
    else:
        model.compile(optimizer=keras.optimizers.Adam(lr), loss="mse", metrics=keras_metrics())
    return model


def load_init_weights(model, path):
    """Fills `model` from a .keras / .weights.h5 / .npz file (`pretrained.read_weights`),
    layer by layer by name (`transfer_weights`: layers of the file that `model` lacks are
    skipped; a layer of another shape is an error)."""
    from sritm_tf.pretrained import read_weights

    source = read_weights(path, like=model)
    if source is model:  # .weights.h5: loaded in place
        return model
    # Layers only one side has (modulation branches, x4's second upsampling conv) are left as they are.
    transfer_weights(source, model, missing="skip")
    return model


def init_architecture(path):
    """{scale, channels, m, n, skip} and, for a classical skip, {chroma_gate, shadow_gate}
    of the network stored in a .keras or .npz file (None for .weights.h5, which does
    not record it)."""
    from sritm_tf.pretrained import model_config, read_weights

    if path.endswith(".weights.h5"):
        return None
    config = model_config(read_weights(path))
    keys = ("scale", "channels", "m", "n", "skip", "chroma_gate", "shadow_gate")
    return {key: config[key] for key in keys if key in config}


def plain_copy(model, cfg):
    """A float32 full network of `cfg` with the weights of `model`, if given (drops the
    mixed-precision head)."""
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")  # else the copy would be mixed too
    try:
        plain = build_deep_sritm(cfg.scale, cfg.channels, cfg.m, cfg.n, modulation=True, skip=cfg.skip,
                                 white_nits=cfg.white_nits, chroma_gate=cfg.chroma_gate,
                                 shadow_gate=cfg.shadow_gate)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    if model is not None:
        transfer_weights(model, plain)
    return plain

