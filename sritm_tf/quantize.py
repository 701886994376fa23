"""Post-training int8 quantisation of the OpenVINO network by NNCF (`nncf.quantize`,
https://github.com/openvinotoolkit/nncf): `sritm convert --engine openvino --precision int8`.

NNCF inserts FakeQuantize operations on the inputs of the convolutions and the
element-wise operations between them, with ranges measured on calibration frames
(`export.calibration_frames`: crops of the bundled sample and the synthetic chart of
`calibration.chart_images`, which covers saturated colours and flat fields), and
corrects the convolutions' biases for the shift that int8 brings (fast bias
correction). OpenVINO's CPU plugin then runs the quantised convolutions in int8
(AVX512-VNNI / AMX-INT8).

What int8 loses stays float, as in the LiteRT export (`export.INT8_FLOAT_LAYERS`; not
its float residual sums and dither: flat saturated colours lose more here, see
docs/benchmarks.md), through NNCF's `IgnoredScope` (`float_operations`): everything in front of the
first learned convolution (guided filter, detail layer, bicubic skip, the classical
mapping of the skip), everything behind the last one (the skip's gates and the output
sum) and the learned convolutions named in `FLOAT_CONVOLUTIONS`. OpenVINO renames
operations when it converts, so the convolutions are found by their weights.

Quantising takes tens of seconds, so `int8_network` keeps the quantised network in
`calibration.cache_dir()` (the IR's .xml and .bin in one file), keyed like the LiteRT
int8 network plus `RECIPE`: it calibrates once per network. The quantised network has
a dynamic input size; the engine reshapes it per tile shape.
"""
import contextlib
import io
import logging
import struct

import numpy as np

#: Version of the NNCF recipe (frames, scope kept float, options): part of the cache key.
RECIPE = 1
#: Learned convolutions (Keras layer names) kept float: the first of each pass and of its
#: modulation features (they read the detail layer, whose range is wide) and the last.
FLOAT_CONVOLUTIONS = ("base_conv1", "detail_conv1", "base_smf_conv1", "detail_smf_conv1", "out_conv")
CALIBRATION_SIZE = (128, 224)
_SKIPPED = ("Constant", "Parameter", "Result")


def installed():
    """True when NNCF can be imported."""
    import importlib.util

    return importlib.util.find_spec("nncf") is not None


def _convolutions(network, model):
    """{OpenVINO Convolution operation: Keras Conv2D layer name}, matched by their kernels'
    bytes (OpenVINO keeps weights as OIHW constants, Keras as HWIO)."""
    import keras

    kernels = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kernel = np.ascontiguousarray(np.transpose(np.asarray(layer.kernel, np.float32), (3, 2, 0, 1)))
            kernels[kernel.shape, kernel.tobytes()] = layer.name
    found = {}
    for op in network.get_ordered_ops():
        if op.get_type_name() != "Convolution":
            continue
        weights = op.input_value(1).get_node()
        if weights.get_type_name() == "Constant":
            data = np.ascontiguousarray(weights.get_data(), np.float32)
            name = kernels.get((data.shape, data.tobytes()))
            if name:
                found[op.get_friendly_name()] = name
    return found


def float_operations(network, model, convolutions=FLOAT_CONVOLUTIONS):
    """Friendly names of the operations of OpenVINO `network` (converted from Keras
    `model`) to keep float: those with no learned convolution before them, those with
    none after them, and the learned convolutions of `convolutions`."""
    learned = _convolutions(network, model)
    ops = [op for op in network.get_ordered_ops() if op.get_type_name() not in _SKIPPED]
    after, before = set(), set()  # names of ops with a learned convolution before / after them
    for op in ops:
        inputs = [v.get_node().get_friendly_name() for v in op.input_values()]
        if any(name in after or name in learned for name in inputs):
            after.add(op.get_friendly_name())
    for op in reversed(ops):
        outputs = [t.get_node().get_friendly_name() for out in op.outputs() for t in out.get_target_inputs()]
        if any(name in before or name in learned for name in outputs):
            before.add(op.get_friendly_name())
    keep = []
    for op in ops:
        name = op.get_friendly_name()
        if learned.get(name) in convolutions or (name not in learned and (name not in after or name not in before)):
            keep.append(name)
    return keep


def quantize(network, model, frames, preset="mixed", float_ops=None):
    """`network` (OpenVINO, converted from `model`) quantised by `nncf.quantize` on
    `frames` ([H, W, 3] network inputs), the `float_operations` left float, NNCF's
    log and progress bars kept off the terminal (`fileio.captured_stderr`)."""
    import nncf

    from sritm_tf.fileio import captured_stderr

    nncf.set_log_level(logging.ERROR)
    float_ops = float_operations(network, model) if float_ops is None else float_ops
    dataset = nncf.Dataset(list(frames), lambda frame: np.asarray(frame, np.float32)[None])
    with captured_stderr(), contextlib.redirect_stdout(io.StringIO()):  # its progress bars too
        return nncf.quantize(network, dataset, preset=nncf.QuantizationPreset(preset), subset_size=len(frames),
                             ignored_scope=nncf.IgnoredScope(names=float_ops, validate=False))


def ir_bytes(network):
    """The OpenVINO IR (.xml, .bin) of `network` as one bytes object: the length of the
    .xml (8 bytes, little-endian), the .xml, the .bin."""
    import os
    import tempfile

    import openvino as ov

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.xml")
        ov.save_model(network, path, compress_to_fp16=False)
        with open(path, "rb") as f:
            xml = f.read()
        with open(path[:-4] + ".bin", "rb") as f:
            weights = f.read()
    return struct.pack("<Q", len(xml)) + xml + weights


def read_ir(content):
    """The OpenVINO model of `ir_bytes` content."""
    import openvino as ov

    size = struct.unpack("<Q", content[:8])[0]
    weights = np.frombuffer(content, np.uint8, offset=8 + size)
    return ov.Core().read_model(model=content[8:8 + size].decode(), weights=ov.Tensor(weights))


def int8_network(model, convert):
    """The int8 OpenVINO network of `model` (`quantize` of `convert(model)`, its
    float OpenVINO network, calibrated on
    `CALIBRATION_SIZE` frames), kept in the cache of `calibration.cached`, keyed by the
    weights, the calibration size and both recipes."""
    from sritm_tf import calibration, export

    def build():
        return ir_bytes(quantize(convert(model), model, export.calibration_frames(CALIBRATION_SIZE)))

    from importlib.metadata import version

    recipe = f"openvino {version('openvino')}, nncf {version('nncf')}, recipe {RECIPE}"
    key = calibration.cache_key(model, CALIBRATION_SIZE, quantize=recipe)
    return read_ir(calibration.cached(f"{model.name}-openvino-int8", key, build, suffix=".ovir"))
