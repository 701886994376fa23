"""Inference engines: what runs the network on each tile of
`inference.TiledPredictor`, which tiles a frame exactly the same way for all.

- `tf`: the Keras model itself, in a `tf.function` (or called directly on JAX).
- `openvino`: the same model converted by OpenVINO's converter from a
  SavedModel, compiled once per tile shape (tiling makes a handful), bfloat16
  through OpenVINO's `INFERENCE_PRECISION_HINT` for `bf16`. An optional extra:
  `pip install "sritm_tf[openvino]"`.
  int8: quantised by NNCF, calibrated once per network (`quantize.int8_network`);
  needs nncf, in the same extra.
- `litert`: the model's TFLite flatbuffer (`export.convert_tflite`, built-in
  ops, float32 or int8 with what int8 loses kept float, `export.INT8_FLOAT_LAYERS`,
  and its learned passes' input dithered, `export.int8_dithered`), run by the
  LiteRT interpreter with XNNPACK, one interpreter per window shape:
  `TiledPredictor` gives it windows of one shape (`same_shape`), so one per frame
  size. `int8` is its precision, calibrated once per network (`calibration.cached`).

`auto` takes OpenVINO for bf16 when it is installed and the CPU has Intel AMX
(OpenVINO's bf16 kernels use its tiles, where they beat TF bf16 by far); else
`tf`, whose output the API's default gives too. Without AMX, OpenVINO bf16 is
only somewhat faster than TF bf16, with a larger bf16 error against float32, so
it is left to `--engine openvino`. Timings per engine: `sritm bench speed
--engines all` (see docs/benchmarks.md).
"""
import importlib.util
import os
import tempfile

import numpy as np

from sritm_tf import quantize
from sritm_tf.errors import InputError
from sritm_tf.precision import cpu_flags, keras_backend

ENGINES = ("auto", "tf", "openvino", "litert")
EXTRAS = {"openvino": ("openvino", "openvino"), "litert": ("ai_edge_litert", "litert")}


def installed(engine):
    """True when the engine's package can be imported (`tf` always)."""
    return engine == "tf" or importlib.util.find_spec(EXTRAS[engine][0]) is not None


def resolve(engine="auto", precision="fp32"):
    """(engine, reason) for `engine` in ENGINES and a resolved precision
    ("fp32", "bf16" or "int8"). Raises InputError for an engine that is not
    installed, or a precision it does not run."""
    if engine not in ENGINES:
        raise InputError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "auto":
        if precision == "int8":
            engine, why = "litert", "int8 runs on LiteRT"
        elif precision == "bf16" and "amx_bf16" in cpu_flags() and installed("openvino") \
                and keras_backend() == "tensorflow":  # found without importing Keras
            engine, why = "openvino", "OpenVINO is installed and the CPU has AMX"
        else:
            engine, why = "tf", "the Keras model"
    else:
        why = "as asked"
    if not installed(engine):
        module, extra = EXTRAS[engine]
        raise InputError(f"--engine {engine} needs {module}: pip install \"sritm_tf[{extra}]\"")
    if precision == "int8" and engine not in ("litert", "openvino"):
        raise InputError(f"int8 runs on --engine litert or openvino, not {engine}")
    if precision == "int8" and engine == "openvino" and not quantize.installed():
        raise InputError("--engine openvino --precision int8 needs nncf: pip install \"sritm_tf[openvino]\"")
    if engine == "litert" and precision == "bf16":
        raise InputError("--engine litert runs fp32 or int8, not bf16")
    return engine, why


def tf_runner(model):
    """The Keras model in a `tf.function` traced for any spatial size (JAX: called directly)."""
    if keras_backend() != "tensorflow":
        return lambda x: model(x, training=False)
    import tensorflow as tf

    spec = tf.TensorSpec((1, None, None, model.inputs[0].shape[-1]), tf.float32)
    return tf.function(lambda x: model(x, training=False), input_signature=[spec])


class ShapeCache:
    """Callable NHWC float32 batch -> output: compiles `compile(shape)` once per
    input shape and calls the result (tiling produces a few shapes per frame size)."""

    def __init__(self, compile):
        self.compile, self.compiled = compile, {}

    def __call__(self, x):
        x = np.ascontiguousarray(x, np.float32)
        if x.shape not in self.compiled:
            self.compiled[x.shape] = self.compile(x.shape)
        return self.compiled[x.shape](x)


def openvino_network(model):
    """`model` (float32 weights) -> SavedModel -> `openvino.convert_model`: an OpenVINO model."""
    import openvino as ov

    with tempfile.TemporaryDirectory() as tmp:
        model.export(os.path.join(tmp, "model"), format="tf_saved_model", verbose=False)
        return ov.convert_model(os.path.join(tmp, "model"))


def openvino_config(precision, **extra):
    """The CPU plugin's settings: INFERENCE_PRECISION_HINT bf16 or f32, latency first."""
    return {"INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32", "PERFORMANCE_HINT": "LATENCY",
            **extra}


def openvino_runner(model, precision="bf16"):
    """OpenVINO: `openvino_network(model)` compiled per tile shape on the CPU, the buffers
    of the shape that ran before released (`CompiledModel.release_memory`); int8:
    the network quantised by NNCF (`quantize.int8_network`), its float parts in float32."""
    import openvino as ov

    if precision == "int8":
        network = quantize.int8_network(model, openvino_network)
    else:
        network = openvino_network(model)
    core = ov.Core()
    config = openvino_config(precision)

    last = []  # the compiled model that ran last

    def compile(shape):
        reshaped = network.clone()
        reshaped.reshape({0: list(shape)})
        compiled = core.compile_model(reshaped, "CPU", config)

        def run(x):
            if last and last[0] is not compiled:  # one tile shape's buffers at a time, not one set per shape
                last.pop().release_memory()
            last[:] = [compiled]
            return compiled(x)[0]

        return run

    return ShapeCache(compile)


CALIBRATION_SIZE = (128, 224)  # int8: activation ranges need real content, not full tiles


def litert_network(model, precision="fp32"):
    """The TFLite flatbuffer of `model` for LiteRT, with a dynamic [1, H, W, 3] input
    (`export.convert_tflite`). int8 is calibrated on `CALIBRATION_SIZE` frames
    (`export.calibration_frames`) once per network: kept in the cache of
    `calibration.cached`, keyed by the weights, the calibration size and the recipe."""
    from sritm_tf import calibration, export

    if precision != "int8":
        return export.convert_tflite(model, quantize="none", input_size=CALIBRATION_SIZE, any_size=True)
    def build():
        return export.convert_tflite(model, "int8", CALIBRATION_SIZE, any_size=True)

    return calibration.cached(f"{model.name}-int8", calibration.cache_key(model, CALIBRATION_SIZE), build)


def litert_runner(model, precision="fp32"):
    """LiteRT: `litert_network(model, precision)` in an interpreter per input shape,
    XNNPACK's start-up line kept off the terminal. XNNPACK holds buffers per convolution
    that grow with the input (about 2 GiB for the full network at a 640x360 tile), so
    the runner asks `inference.TiledPredictor` for windows of one shape (`same_shape`):
    one interpreter per frame size, not one per border tile's shape."""
    from sritm_tf import export
    from sritm_tf.fileio import captured_stderr

    content = litert_network(model, precision)

    def compile(shape):
        with captured_stderr():
            interpreter = export.tflite_interpreter(content)
            interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], list(shape))
            interpreter.allocate_tensors()
        return lambda x: export.run_tflite(interpreter, x)

    run = ShapeCache(compile)
    run.same_shape = True
    return run


def model_precision(engine, precision):
    """The precision to build the Keras network in for `engine`: OpenVINO and LiteRT take
    the float32 network and lower its precision themselves."""
    return precision if engine == "tf" else "fp32"


def runner(model, engine, precision):
    """The run callable of `engine` ("tf", "openvino", "litert") for `model`."""
    if engine == "openvino":
        return openvino_runner(model, precision)
    if engine == "litert":
        return litert_runner(model, precision)
    return tf_runner(model)
