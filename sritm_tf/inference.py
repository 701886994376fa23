"""Tiled inference: runs a fully convolutional SR model on a frame of any size,
tile by tile, with the same result as one whole-frame call and bounded memory.

Each tile is a core block of the LR frame plus a margin of real neighbouring
pixels on every side where the frame has them. Inside the network an interior
tile edge is padded differently from the whole frame (zeros for 'same' convs,
edge replication for the guided filter and the bicubic skip), and that
difference travels inwards by the receptive-field radius of each layer; the
margin is that total radius (`receptive_margin`), so the cropped core of each
tile output is exact. At the frame border a tile is not padded with anything
of ours: it is cut flush with the frame, so the network pads it exactly as it
pads the whole frame.

For the full Deep SR-ITM (m=3, n=10) at x2 and x4 the margin is 41 LR pixels:
guided filter 4 (two 5x5 boxes), 36 3x3 convs on the longest LR path
(base_conv1, 5 base blocks to the last ResSkipMod input, that block, fusion
conv, 10 fusion blocks, 2 upsampling convs = 1+10+2+1+20+2), and the HR convs
after the pixel shuffle (half or a quarter of an LR pixel each), rounded up.

No padding is needed for odd or tiny sizes (down to 1x1): every LR layer has
stride 1 and the pixel shuffle only multiplies the size.
"""
import math

import numpy as np

from sritm_tf.errors import InputError
from sritm_tf.notes import note
from sritm_tf.sizes import parse_shape

# LR tile of tiled inference: a 1080p -> 4K x2 frame is 3x3 tiles and stays under 3 GiB peak
# RSS on CPU, which 960x540 tiles exceed (`sritm bench memory`, see docs/benchmarks.md). (height, width)
DEFAULT_TILE = (360, 640)
# bf16 halves the activations: 960x540 tiles (2x2 for 1080p) stay under 3 GiB too and run faster
# than 640x360 (`sritm bench speed --full`, see docs/benchmarks.md). int8: LiteRT's XNNPACK keeps
# buffers per convolution that grow with the tile's area (a 1080p frame peaks at 3.2 GiB RSS in
# 640x360 tiles, 2.5 GiB in 480x270). Per precision, (height, width):
DEFAULT_TILES = {"fp32": DEFAULT_TILE, "bf16": (540, 960), "int8": (270, 480)}

# Layers that mix no neighbouring pixels.
_POINTWISE = {"InputLayer", "ReLU", "Activation", "Add", "Subtract", "Multiply", "Concatenate",
              "DetailLayer", "Identity", "Rescaling", "ClassicalMapping",
              "PreActivationReLU", "ChromaGate", "ShadowGate"}


def _layer_reach(layer):
    """(radius in the layer's input pixels, resolution factor of its output)."""
    kind = type(layer).__name__
    if kind in _POINTWISE:
        return 0, 1
    if kind == "Conv2D":
        if max(layer.strides) != 1:
            raise ValueError(f"{layer.name}: strided conv, tiling would not be exact")
        return max((k - 1) // 2 * d for k, d in zip(layer.kernel_size, layer.dilation_rate)), 1
    if kind == "SelfGuidedFilter":
        return 2 * (layer.size // 2), 1  # box filter of (a, b) after the box filter of I
    if kind == "BicubicUpsample":
        return 2, layer.scale  # 5 taps
    if kind == "DepthToSpace":
        return 0, layer.block_size
    raise ValueError(f"{layer.name}: cannot tell the receptive field of a {kind} layer; pass margin=")


def receptive_margin(model):
    """Receptive-field radius of `model`'s output in LR input pixels, rounded up:
    the longest path, summing each layer's radius divided by the resolution
    (LR = 1, after a x2 shuffle = 2, ...) it works at."""
    radius, factor = {}, {}
    for layer in model.layers:
        parents = [] if type(layer).__name__ == "InputLayer" else [
            node.operation.name for node in layer._inbound_nodes[0].parent_nodes]
        r_in = max((radius[p] for p in parents), default=0.0)
        f_in = max((factor[p] for p in parents), default=1)
        reach, up = _layer_reach(layer)
        radius[layer.name] = r_in + reach / f_in
        factor[layer.name] = f_in * up
    out = model.outputs[0]._keras_history.operation.name
    return math.ceil(radius[out] - 1e-9)


def tile_bounds(length, tile):
    """Splits [0, length) into ceil(length / tile) near-equal (start, stop) cores."""
    count = max(1, math.ceil(length / tile))
    edges = np.linspace(0, length, count + 1).round().astype(int)
    return list(zip(edges[:-1], edges[1:]))


def parse_tile(tile, option="tile"):
    """Tile size as (height, width) from an int N, a string "N" / "WxH"
    (`sritm_tf.sizes`), or a (height, width) pair. InputError names `option`."""
    if isinstance(tile, (str, int)):
        return parse_shape(tile, option, square=True)
    tile = tuple(int(t) for t in tile)
    if len(tile) != 2 or min(tile) < 1:
        raise InputError(f"{option}: expected a positive (height, width) pair, got {tile}")
    return tile


class TiledPredictor:
    """Callable: LR image (H, W, C) float32 -> the model's output (sH, sW, C').

    Args:
        model: a keras.Model (the network).
        tile: core size, "WxH", N or (height, width), in LR pixels.
        margin: real pixels added around each core; default `receptive_margin(model)`. A
            tile side below it is rounded up to it (said in a note: a 1-pixel tile would
            compute a 83x83 window for each output pixel).
        run: callable NHWC float32 batch -> output array, e.g. another
            engine's (`sritm_tf.engines.runner`); default: `engines.tf_runner`,
            the model in a `tf.function` traced for any spatial size (on the JAX
            backend, the model called directly). A `run` with `same_shape` set true
            (`engines.litert_runner`) gets windows of one shape: those at the frame's
            border are moved inside it rather than cut, so the core has more context
            than the margin on one side (the output is the same) and an engine whose
            buffers grow with every input shape it holds keeps one set.
    """

    def __init__(self, model, tile=DEFAULT_TILE, margin=None, run=None):
        self.model = model
        self.tile = parse_tile(tile)
        self.margin = receptive_margin(model) if margin is None else int(margin)
        if min(self.tile) < self.margin:  # each tile would compute mostly margin: round it up
            rounded = tuple(max(t, self.margin) for t in self.tile)
            note(f"tile {self.tile[1]}x{self.tile[0]} is smaller than the network's {self.margin}-pixel margin: "
                 f"tiles of {rounded[1]}x{rounded[0]} used")
            self.tile = rounded
        if run is None:
            from sritm_tf.engines import tf_runner

            run = tf_runner(model)
        self._run = run
        self.same_shape = bool(getattr(run, "same_shape", False))

    def __call__(self, image):
        image = np.asarray(image, np.float32)
        height, width = image.shape[:2]
        output = None
        rows, columns = tile_bounds(height, self.tile[0]), tile_bounds(width, self.tile[1])
        if self.same_shape:  # every window a tile and its margins (one shape for any larger frame)
            window_h = min(height, self.tile[0] + 2 * self.margin)
            window_w = min(width, self.tile[1] + 2 * self.margin)
        windows = []
        for y0, y1 in rows:
            for x0, x1 in columns:
                # Margin of real pixels only: clipped at the frame border.
                top, left = max(0, y0 - self.margin), max(0, x0 - self.margin)
                bottom, right = min(height, y1 + self.margin), min(width, x1 + self.margin)
                if self.same_shape:  # a window that holds [top, bottom) holds the core's margins
                    top, left = min(top, height - window_h), min(left, width - window_w)
                    bottom, right = top + window_h, left + window_w
                windows.append((y0, y1, x0, x1, top, left, bottom, right))
        # Tiles of one shape one after another: an engine that holds one shape's buffers at a
        # time (`engines.openvino_runner`) switches once per shape.
        windows.sort(key=lambda w: (w[6] - w[4], w[7] - w[5]))
        for y0, y1, x0, x1, top, left, bottom, right in windows:
            result = np.asarray(self._run(image[None, top:bottom, left:right]))[0]
            scale = result.shape[0] // (bottom - top)
            if output is None:
                output = np.empty((height * scale, width * scale, result.shape[-1]), np.float32)
            output[y0 * scale:y1 * scale, x0 * scale:x1 * scale] = result[
                (y0 - top) * scale:(y1 - top) * scale, (x0 - left) * scale:(x1 - left) * scale]
        return output


def predict_tiled(model, image, tile=DEFAULT_TILE, margin=None):
    """One-off `TiledPredictor(model, tile, margin)(image)`."""
    return TiledPredictor(model, tile, margin)(image)
