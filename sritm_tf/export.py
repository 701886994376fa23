"""Deployment exports of Deep SR-ITM: a TF Serving SavedModel and TFLite (LiteRT) files.

SavedModel signatures (dynamic batch, height and width):

    serving_default  sdr_yuv  float32 [N, H, W, 3] -> hdr_yuv  float32 [N, sH, sW, 3]
                     the network's own convention: full-range Y'CbCr, chroma + 0.5,
                     BT.709 gamma in, BT.2020 NCL PQ out, all in [0, 1].
    rgb8_to_pq16     sdr_rgb8 uint8   [N, H, W, 3] -> hdr_pq16 uint16  [N, sH, sW, 3]
                     8-bit BT.709 R'G'B' in; PQ (SMPTE ST 2084) BT.2020 R'G'B' codes
                     out, full range 0..65535 (E' = code / 65535, the convention of
                     16-bit HDR10 PNGs), colour conversion done in the graph.

TF Serving reads `<base>/<model_name>/<version>/saved_model.pb` (see
`serving_path`). TFLite files have one fixed input size, chosen at export
(`DEFAULT_INPUT_SIZE`, an LR 960x540 frame whose output is 1920x1080 at x2);
export another size with `input_size="WxH"` or `(h, w)` / `sritm export --input-size WxH`.
"""
import warnings
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from sritm_tf import colour
from sritm_tf.layers import BicubicUpsample, DetailLayer, SelfGuidedFilter, YCbCrConverter
from sritm_tf.fileio import atomic_path, captured_stderr
from sritm_tf.sizes import parse_shape
from sritm_tf.pretrained import sample_path

# signature -> (input name, input dtype, output name, output dtype)
SIGNATURES = {
    "serving_default": ("sdr_yuv", "float32", "hdr_yuv", "float32"),
    "rgb8_to_pq16": ("sdr_rgb8", "uint8", "hdr_pq16", "uint16"),
}
DEFAULT_INPUT_SIZE = (540, 960)  # (height, width)
QUANTIZE_MODES = ("none", "fp16", "dynamic", "int8")
SAMPLE_IMAGE = Path(sample_path())

def serving_functions(model, input_shape=(None, None, None, 3)):
    """The two signatures as `tf.function`s: {name: function}."""
    yuv_in, _, yuv_out, _ = SIGNATURES["serving_default"]
    rgb_in, _, pq_out, _ = SIGNATURES["rgb8_to_pq16"]

    @tf.function(input_signature=[tf.TensorSpec(input_shape, tf.float32, name=yuv_in)])
    def serving_default(sdr_yuv):
        return {yuv_out: model(sdr_yuv, training=False)}

    # The colour convention, once (`layers.YCbCrConverter`): uint8 BT.709 R'G'B' in;
    # out, the inverse BT.2020 NCL matrix, clip, D = floor(65535 E' + 0.5).
    to_yuv = YCbCrConverter("bt709", scale=1 / 255, name="rgb8_to_yuv")
    to_pq16 = YCbCrConverter("bt2020", inverse=True, clip=True, scale=2**16 - 1, round_codes=True, name="yuv_to_pq16")

    @tf.function(input_signature=[tf.TensorSpec(input_shape, tf.uint8, name=rgb_in)])
    def rgb8_to_pq16(sdr_rgb8):
        hdr_yuv = model(to_yuv(sdr_rgb8), training=False)
        return {pq_out: tf.cast(to_pq16(hdr_yuv), tf.uint16)}

    return {"serving_default": serving_default, "rgb8_to_pq16": rgb8_to_pq16}


def serving_path(base, model_name="sritm", version=1):
    """TF Serving's layout: `<base>/<model_name>/<version>`."""
    return Path(base) / model_name / str(int(version))


def _write_savedmodel(model, path, input_shape):
    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, fn in serving_functions(model, input_shape).items():
        archive.add_endpoint(name, fn)
    archive.write_out(str(path), verbose=False)


def export_savedmodel(model, path, overwrite=False):
    """Writes `model` as a SavedModel at `path` (a version folder for TF Serving,
    see `serving_path`) with the `serving_default` and `rgb8_to_pq16` signatures.
    Returns the path."""
    path = Path(path)
    with atomic_path(path, overwrite) as tmp:  # a hidden, non-numeric name: TF Serving ignores it
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_savedmodel(model, tmp, (None, None, None, 3))
    return path


# ---------------------------------------------------------------------------
# TFLite (LiteRT)
# ---------------------------------------------------------------------------
def calibration_images(paths=None):
    """SDR R'G'B' float images [0, 1] for int8 calibration, one per file of `paths`
    (default: the bundled sample image, `pretrained.sample_path()`): 8-bit SDR
    images as they are (`imageio.read_sdr_image`); scene-linear OpenEXR stills read
    with `sources.read_exr`, exposed and encoded as HDR10 (`sources.scene_linear_to_hdr10`)
    and tone-mapped to SDR by BT.2446 method A (`sdr_synthesis.synthesize_sdr`),
    the operator of the training pairs. Never calibrate on evaluation frames."""
    from sritm_tf import imageio
    from sritm_tf.data import sdr_synthesis, sources

    images = []
    for path in paths or [SAMPLE_IMAGE]:
        path = str(path)
        if path.lower().endswith(sources.EXR_EXTS):
            hdr_pq = sources.scene_linear_to_hdr10(sources.read_exr(path))
            images.append(np.clip(sdr_synthesis.synthesize_sdr(hdr_pq, "bt2446a"), 0.0, 1.0))
        else:
            images.append(imageio.read_sdr_image(path) / 255.0)
    return images


def calibration_frames(input_size, images=None):
    """The int8 calibration set: `representative_frames` of `images` (default the
    bundled sample) and the synthetic chart of `calibration.chart_images`, saturated
    colours and flat fields that real crops lack, as network inputs of `input_size`."""
    from sritm_tf.calibration import chart_images

    chart = [colour.sdr_rgb_to_model_yuv(image).astype(np.float32) for image in chart_images(input_size)]
    return representative_frames(input_size, images=images) + chart


def representative_frames(input_size, count=8, images=None, seed=0):
    """`count` float32 [H, W, 3] network inputs (model Y'CbCr) of `input_size`:
    random crops with random flips of `images` (SDR R'G'B' [0, 1]; default
    `calibration_images()`); an image smaller than the crop is first enlarged
    (bicubic) to cover it."""
    import cv2

    h, w = input_size
    images = calibration_images() if images is None else images
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(count):
        image = np.asarray(images[i % len(images)], np.float32)
        grow = max(h / image.shape[0], w / image.shape[1], 1.0)
        if grow > 1.0:
            size = (int(np.ceil(image.shape[1] * grow)), int(np.ceil(image.shape[0] * grow)))
            image = np.clip(cv2.resize(image, size, interpolation=cv2.INTER_CUBIC), 0.0, 1.0)
        y = rng.integers(0, image.shape[0] - h + 1)
        x = rng.integers(0, image.shape[1] - w + 1)
        crop = image[y:y + h, x:x + w]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        frames.append(colour.sdr_rgb_to_model_yuv(crop).astype(np.float32))
    return frames


#: Negative slope that stands in for ReLU in full-int8 TFLite files (see `int8_friendly_relus`).
INT8_RELU_SLOPE = 1.0 / 256.0


def int8_friendly_relus(model):
    """A copy of `model` (same weights) whose stand-alone ReLU layers are
    LeakyReLU(INT8_RELU_SLOPE), for full-int8 TFLite.

    XNNPACK runs int8 LEAKY_RELU but not an int8 RELU that the converter cannot
    fuse into the convolution before it: the pre-activation ReLU opening each
    residual block (Eq. 3) and the ReLU after a concatenation. Each such RELU split
    the int8 graph into another XNNPACK partition with a reference kernel between.
    With the 1/256 slope a negative input maps to within about half an int8 step
    of zero, so at 8-bit precision it acts as the ReLU (in float the copy differs
    from the network by a fraction of int8's own error; tested). ReLUs right after
    a convolution stay: they fuse into it.
    """
    def after_conv(layer):
        producer = layer._inbound_nodes[0].input_tensors[0]._keras_history.operation
        return isinstance(producer, keras.layers.Conv2D)

    standalone = {layer.name for layer in model.layers
                  if isinstance(layer, keras.layers.ReLU) and not after_conv(layer)}

    def clone(layer):
        if layer.name in standalone:
            return keras.layers.LeakyReLU(negative_slope=INT8_RELU_SLOPE, name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


#: Least divisor of the detail layer in full-int8 TFLite files (see `Int8SafeDetailLayer`).
INT8_DETAIL_FLOOR = 1.0 / 128.0
#: Amplitude of `int8_dithered`'s dither: about a third of the int8 step of the network's
#: input, half an 8-bit code.
INT8_DITHER = 0.002
#: Period (pixels) of its pattern.
INT8_DITHER_PERIOD = 32
_DITHER = np.random.default_rng(0).uniform(-INT8_DITHER, INT8_DITHER,
                                           (INT8_DITHER_PERIOD, INT8_DITHER_PERIOD, 3)).astype(np.float32)


def int8_input(x):
    """max(x, -1e4): the identity on any network input, written so that the int8
    converter gives the float front end one shared copy of the input.

    The converter hands a layer it keeps float the dequantised int8 input where the
    layer reads it through an op of its own, but the float input where it reads the
    input directly; the guided filter mixed both (its mean from one, its x^2 from the
    other), so a flat field got a variance of a few 1e-3 and a detail layer off by 6 %
    in its low chroma channels. Read through this one op, they all agree exactly."""
    return keras.ops.maximum(x, -1e4)


def int8_dithered(x):
    """`int8_input(x)` plus a fixed dither, uniform in +-`INT8_DITHER`: a pseudo-random
    `INT8_DITHER_PERIOD`-pixel pattern tiled from the top left corner: the image as
    the learned passes of full-int8 TFLite files read it (the guided filter, the detail
    layer and the passes' inputs; the classical skip reads it undithered).

    Without it every pixel of a flat area rounds the same way in each int8 layer, and the
    rounding errors of sixty layers add up to one offset over the whole area (40-56 dB
    against float32 on flat primaries, depending on the calibration); with it they
    differ from pixel to pixel and the convolutions average them out (non-subtractive
    dither; L. Schuchman, IEEE Trans. Commun. Technol. 12(4), 1964)."""
    x = int8_input(x)
    shape = keras.ops.shape(x)
    h, w = shape[1], shape[2]
    reps = [1, h // INT8_DITHER_PERIOD + 1, w // INT8_DITHER_PERIOD + 1, 1]
    # + 0 x (a pixel of x): the pattern depends on the input, so that a converter cannot fold
    # the tiled pattern into a constant of the frame's size (24 MB at 1920x1080).
    period = keras.ops.convert_to_tensor(_DITHER)[None] + 0.0 * x[:, :1, :1, :1]
    pattern = keras.ops.tile(period, reps)
    return x + pattern[:, :h, :w, :]


class Int8SafeDetailLayer(DetailLayer):
    """I / max(I_b, INT8_DETAIL_FLOOR), I read through `int8_dithered`: the detail layer
    of full-int8 TFLite files (it stays float there, `INT8_FLOAT_LAYERS`).

    The floor keeps the quotient in a range that int8 can hold after it (the network's
    own delta = 1e-6 makes it up to 1e6 next to black); black still maps to 0 as in
    float (0 / floor)."""

    def call(self, inputs):
        image, base = inputs
        return int8_dithered(image) / keras.ops.maximum(base, INT8_DETAIL_FLOOR)


class Int8GuidedFilter(SelfGuidedFilter):
    """The guided filter of full-int8 TFLite files: its input read through `int8_dithered`."""

    def call(self, x):
        return super().call(int8_dithered(x))


class Int8BicubicUpsample(BicubicUpsample):
    """The bicubic skip of full-int8 TFLite files: its input read through `int8_input`."""

    def call(self, x):
        return super().call(int8_input(x))


class Int8PassInput(keras.layers.Concatenate):
    """[I, I_b] or [I, I_d], I read through `int8_dithered`: the passes' inputs
    (`base_input`, `detail_input`) in full-int8 TFLite files."""

    def call(self, inputs):
        image, other = inputs
        return super().call([int8_dithered(image), other])


INT8_LAYERS = {DetailLayer: Int8SafeDetailLayer, SelfGuidedFilter: Int8GuidedFilter,
               BicubicUpsample: Int8BicubicUpsample}
INT8_PASS_INPUTS = ("base_input", "detail_input")


def int8_front_end(model):
    """A copy of `model` (same weights) whose detail layer, guided filter, bicubic
    skip and passes' inputs are the `INT8_LAYERS` and `Int8PassInput` ones, for
    full-int8 TFLite; float exports keep the network's own layers."""
    def clone(layer):
        if layer.name in INT8_PASS_INPUTS:
            return Int8PassInput.from_config(layer.get_config())
        return INT8_LAYERS.get(type(layer), type(layer)).from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def convert_tflite(model, quantize="none", input_size=DEFAULT_INPUT_SIZE, representative_data=None, any_size=False):
    """The TFLite flatbuffer (bytes) of `model` for a fixed [1, H, W, 3] float32
    input named `sdr_yuv` (the `serving_default` convention), built-in ops only;
    with `any_size`, [1, None, None, 3] (resize it with `resize_tensor_input`;
    `input_size` is then only the calibration size).

    quantize: "none" (float32), "fp16" (float16 weights), "dynamic" (int8
    weights, dynamic-range activations), "int8" (full integer: weights and
    activations int8, calibrated on `representative_data`, an iterable of
    [H, W, 3] inputs, default `representative_frames(input_size)`; the model
    still takes and returns float32, with quantise / dequantise at its ends; its
    stand-alone ReLUs become `int8_friendly_relus` so that XNNPACK runs them, its
    front end `int8_front_end`, and the layers of `INT8_FLOAT_LAYERS` stay float,
    by selective quantisation). What the converter prints is kept off the terminal
    (`fileio.captured_stderr`).
    """
    if quantize not in QUANTIZE_MODES:
        raise ValueError(f"quantize must be one of {QUANTIZE_MODES}, got {quantize!r}")
    with captured_stderr(), warnings.catch_warnings():
        # The debugger's own tf.lite.Interpreter (deprecated in favour of LiteRT) warns on creation.
        warnings.filterwarnings("ignore", message=r"\s*Warning: tf.lite.Interpreter is deprecated")
        return _convert(model, quantize, input_size, representative_data, any_size)


def _convert(model, quantize, input_size, representative_data, any_size):
    if quantize == "int8":
        model = int8_front_end(int8_friendly_relus(model))
    if isinstance(input_size, str):
        input_size = parse_shape(input_size, "input_size")
    h, w = input_size
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        archive = keras.export.ExportArchive()
        archive.track(model)
        shape = (1, None, None, 3) if any_size else (1, h, w, 3)
        archive.add_endpoint("serving_default", serving_functions(model, shape)["serving_default"])
        archive.write_out(tmp, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if quantize != "none":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "fp16":
            converter.target_spec.supported_types = [tf.float16]
        if quantize == "int8":
            frames = calibration_frames(input_size) if representative_data is None else list(representative_data)
            data = lambda: ([np.asarray(f, np.float32)[None]] for f in frames)  # noqa: E731
            converter.representative_dataset = data
            float_nodes = _float_tensors(tmp, model)
            if float_nodes:
                options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=float_nodes)
                debugger = tf.lite.experimental.QuantizationDebugger(
                    converter=converter, debug_dataset=data, debug_options=options)
                return debugger.get_nondebug_quantized_model()
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        return converter.convert()


#: Layers that full-int8 TFLite files keep float (cheap: a few percent of the time of a tile),
#: with every Add layer and the network's input and output (`_float_tensors`).
#: The classical skip, its gates and the output sum: int8 is too coarse for the PQ domain.
#: The sums of the residual streams: re-rounded at every block, they carry each block's
#: rounding on to the next (float: 2-5 dB better on flat fields; see also `int8_dithered`).
#: The guided filter and the detail layer: a variance of a few 1e-3 and a quotient by
#: small chroma values. The bicubic skip: the classical skip's input. The first convolutions
#: of both passes and of their modulation features: they read the detail layer, whose int8
#: range is wide (up to about 4 next to saturated colours). The last convolution: its output
#: is added to the classical skip as it is.
INT8_FLOAT_LAYERS = ("classical", "classical_chroma_gate", "classical_shadow_gate", "hdr_yuv", "bicubic",
                     "guided_filter", "detail_layer", "base_input", "detail_input", "base_conv1", "detail_conv1",
                     "base_smf_conv1", "detail_smf_conv1", "out_conv")


def _float_tensors(saved_model_dir, model):
    """Names of the tensors in the TFLite graph of `saved_model_dir` that the int8 export
    leaves in float: those of the `INT8_FLOAT_LAYERS` and of every Add layer of `model`,
    and the output."""
    import re

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = tflite_interpreter(converter.convert())
    adds = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Add)]
    layer = re.compile(rf"/(?:{'|'.join(INT8_FLOAT_LAYERS + tuple(adds))})(?:_\d+)?/")
    names = [t["name"] for t in interpreter.get_tensor_details() if layer.search(t["name"])]
    ends = interpreter.get_input_details() + interpreter.get_output_details()
    return names + [t["name"] for t in ends]


def export_tflite(model, path, quantize="none", input_size=DEFAULT_INPUT_SIZE, representative_data=None,
                  overwrite=False):
    """Writes `convert_tflite(...)` to `path` (via a temporary file). Returns the path."""
    path = Path(path)
    with atomic_path(path, overwrite) as tmp:
        content = convert_tflite(model, quantize, input_size, representative_data)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(content)
    return path


def _content(model_content_or_path):
    if isinstance(model_content_or_path, (bytes, bytearray)):
        return bytes(model_content_or_path)
    return Path(model_content_or_path).read_bytes()


def tflite_ops(model_content_or_path):
    """Sorted operator names of a TFLite file, read from its flatbuffer op codes
    (LiteRT schema): built-ins by their BuiltinOperator name, custom ops (Flex
    included) as "CUSTOM:<custom code>"."""
    from ai_edge_litert import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    flat = schema.Model.GetRootAs(_content(model_content_or_path))
    ops = set()
    for i in range(flat.OperatorCodesLength()):
        code = flat.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())  # schema v3a keeps both
        if builtin == schema.BuiltinOperator.CUSTOM:
            ops.add(f"CUSTOM:{code.CustomCode().decode()}")
        else:
            ops.add(names[builtin])
    return sorted(ops)


def tflite_interpreter(model_content_or_path, num_threads=None):
    """A LiteRT `ai_edge_litert.interpreter.Interpreter` (falls back to
    `tf.lite.Interpreter` when ai-edge-litert is not installed), tensors allocated."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        Interpreter = tf.lite.Interpreter
    interpreter = Interpreter(model_content=_content(model_content_or_path), num_threads=num_threads)
    interpreter.allocate_tensors()
    return interpreter


def run_tflite(interpreter, x, dtype=np.float32):
    """Runs a single-input, single-output interpreter on `x` ([H, W, 3] or [1, H, W, 3]
    of `dtype`; other ranks are passed as they are)."""
    x = np.asarray(x, dtype)
    batched = x.ndim != 3
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.set_tensor(inp["index"], x if batched else x[None])
    interpreter.invoke()
    y = interpreter.get_tensor(out["index"])
    return y if batched else y[0]
