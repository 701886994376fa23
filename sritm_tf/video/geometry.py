"""Geometry of the picture: what a player does to a video before it shows it, done before the
output is written, so that every output shows upright with square pixels.

- Rotation: a phone clip is stored sideways with a display matrix that says how to turn it
  (ISO/IEC 14496-12 `tkhd` matrix; FFmpeg's AV_FRAME_DATA_DISPLAYMATRIX, ffprobe's "Display
  Matrix" side data). Its frames are turned upright (`upright`, as ffmpeg's autorotate does)
  before the network, and the source reports the upright width and height (`UprightSource`).
  Quarter turns only; mirroring in the matrix is not applied.
- Sample aspect ratio: an anamorphic source (SAR != 1, e.g. 720x576 with SAR 64:45, 16:9 on
  screen) is resized after the network to square pixels (`output_size`, `resize`).
- `--size WxH`: the output frame size, as ffmpeg's -s on an output; any source.

A still image's EXIF orientation is applied where it is read (`imageio.read_sdr_image`).
"""
import math
from fractions import Fraction

import numpy as np

from sritm_tf.errors import InputError
from sritm_tf.notes import note
from sritm_tf.sizes import parse_size

#: Picture heights of BT.601 (480, 576), BT.709 (720, 1080), BT.2020 (2160, 4320), and 1440.
STANDARD_HEIGHTS = (480, 576, 720, 1080, 1440, 2160, 4320)
#: A standard height is taken when it is within this factor of the network's.
NEAR = Fraction(9, 8)
#: Output formats of RGB images (PNG, TIFF, and sequences of them): any size. The video formats'
#: chroma is subsampled (4:2:0, ProRes 4:2:2): even sizes only.
IMAGE_FORMATS = ("png", "tif", "tiff", "png-sequence", "tiff-sequence")


def quarter_turns(degrees):
    """A display rotation in degrees counter-clockwise (PyAV's `VideoFrame.rotation`, ffprobe's
    Display Matrix rotation) -> the nearest multiple of 90 in {0, 90, 180, 270}."""
    return int(round((degrees or 0) / 90.0)) % 4 * 90


def upright(rgb, angle):
    """The frame `rgb` (H, W, ...) turned `angle` degrees counter-clockwise (a multiple of 90):
    the display matrix applied, as ffmpeg's autorotate (transpose filters) applies it."""
    turns = angle // 90 % 4
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


class UprightSource:
    """A `sources.VideoSource` whose frames are turned upright by `angle` degrees (`upright`):
    width and height are the upright frames', `sample_aspect_ratio` theirs (inverted by a
    quarter turn); everything else is the source's (`truncated` after the frames are read)."""

    def __init__(self, source, angle=0, sar=Fraction(1)):
        self.source, self.angle = source, angle
        turned = angle in (90, 270)
        self.width, self.height = (source.height, source.width) if turned else (source.width, source.height)
        self.sample_aspect_ratio = 1 / Fraction(sar) if turned else Fraction(sar)

    def __getattr__(self, name):
        if name == "source":  # not set yet (a copy being made)
            raise AttributeError(name)
        return getattr(self.source, name)

    def __iter__(self):
        return self.frames()

    def frames(self, start=None, end=None):
        """The source's (rgb, pts) of `start` <= pts < `end`, upright (`sources.VideoSource.frames`)."""
        for rgb, pts in self.source.frames(start, end):
            yield upright(rgb, self.angle), pts


def oriented(source):
    """`source` (a `sources.VideoSource`) as an `UprightSource` with its stream's rotation (its
    first frame's display matrix, `quarter_turns`) and SAR; a note says when its frames are turned."""
    angle = quarter_turns(source.rotation)
    upright_source = UprightSource(source, angle, source.sample_aspect_ratio)
    if angle:
        note(f"{source.path}: display rotation {angle} degrees (display matrix): frames turned upright, "
             f"{source.width}x{source.height} -> {upright_source.width}x{upright_source.height}")
    return upright_source


def check_size(size, fmt=None):
    """`--size` ("WxH" or (w, h)) as (w, h), or None for None; InputError for a malformed size, or
    an odd one for a video output format `fmt` (any but `IMAGE_FORMATS`; None: not checked)."""
    if size is None:
        return None
    width, height = parse_size(size, "--size") if isinstance(size, str) else (int(v) for v in size)
    if width < 1 or height < 1:
        raise InputError(f"--size: expected a positive WxH, got {width}x{height}")
    if fmt is not None and fmt not in IMAGE_FORMATS and (width % 2 or height % 2):
        raise InputError(f"--size {width}x{height}: .{fmt} video has subsampled chroma (4:2:0 or 4:2:2), "
                         "so both dimensions must be even")
    return width, height


def output_size(width, height, sar=1, scale=2, size=None):
    """(w, h, note or None): the output frame size of a `width` x `height` source (upright) of
    sample aspect ratio `sar` that the network makes `scale` times larger.

    - `size` (the user's --size, "WxH" or (w, h)): that size, no note.
    - Square pixels (SAR 1 or unknown): the network's scale*width x scale*height, no note.
    - Anamorphic: square pixels at the display aspect ratio DAR = width * SAR / height. The short
      side (the height of a landscape frame) is the standard picture height (`STANDARD_HEIGHTS`)
      nearest the network's, if it is within 9/8 of it, else the network's; the long side is
      short side x DAR (or / DAR), rounded to even. So 720x576 SAR 64:45 (16:9) gives 3840x2160
      at scale 4 (the network's 2880x2304) and 1920x1080 at scale 2; 720x576 SAR 16:15 (4:3)
      gives 2880x2160 at scale 4. The note names both sizes.
    """
    net_w, net_h = width * scale, height * scale
    if size is not None:
        return (*check_size(size), None)
    sar = Fraction(sar or 1)
    if sar == 1:
        return net_w, net_h, None
    dar = Fraction(width, height) * sar
    portrait = dar < 1
    short = net_w if portrait else net_h
    nearest = min(STANDARD_HEIGHTS, key=lambda h: abs(math.log(h / short)))
    if 1 / NEAR <= Fraction(nearest, short) <= NEAR:
        short = nearest
    long = 2 * round(short / dar / 2) if portrait else 2 * round(short * dar / 2)
    w, h = (short, long) if portrait else (long, short)
    return w, h, (f"anamorphic {width}x{height} (SAR {sar.numerator}:{sar.denominator}, display "
                  f"{dar.numerator}:{dar.denominator}): the network's {net_w}x{net_h} resized to {w}x{h}, "
                  "square pixels")


def resize(signal, size):
    """The R'G'B' frame `signal` (H, W, 3; PQ or HLG, float in [0, 1]) resized to `size` (w, h):
    one axis at a time, OpenCV's INTER_AREA (pixel area averaging) where it shrinks and
    INTER_CUBIC where it grows, then clipped to the frame's own range, so that the cubic's
    overshoot makes no pixel brighter than the converter left it (--peak-nits). Unchanged when
    it is `size` already."""
    import cv2

    width, height = size
    out = np.asarray(signal, np.float32)
    if out.shape[:2] == (height, width):
        return signal
    low, high = float(out.min()), float(out.max())
    if out.shape[1] != width:
        out = cv2.resize(out, (width, out.shape[0]),
                         interpolation=cv2.INTER_AREA if width < out.shape[1] else cv2.INTER_CUBIC)
    if out.shape[0] != height:
        out = cv2.resize(out, (width, height),
                         interpolation=cv2.INTER_AREA if height < out.shape[0] else cv2.INTER_CUBIC)
    return np.clip(out, low, high)


class Resized:
    """A frame converter (`convert.FrameConverter`) whose frames are resized to `size` (w, h)
    (`resize`); `transfer` is the converter's."""

    def __init__(self, convert, size):
        self.convert, self.size = convert, tuple(size)
        self.transfer = getattr(convert, "transfer", "pq")

    def __call__(self, rgb):
        return resize(self.convert(rgb), self.size)


def fit(source, convert, scale, size=None):
    """(converter, width, height) of the output of `source` (its upright width, height and
    `sample_aspect_ratio`, 1 if it has none): `convert` wrapped in `Resized` when the output size
    (`output_size`) is not the network's; a note says why for an anamorphic source."""
    width, height, why = output_size(source.width, source.height, getattr(source, "sample_aspect_ratio", 1),
                                     scale, size)
    if why:
        note(f"{source.path}: {why}")
    if (width, height) != (source.width * scale, source.height * scale):
        convert = Resized(convert, (width, height))
    return convert, width, height
