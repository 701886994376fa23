"""Sizes on the command line and in the Python API: one parser, one order.

A size is written WxH, width first (ffmpeg's habit): `--size 960x540`, `--tile 640x360`,
`--input-size 960x540`, `--crop 512x256`. Options that take a square size also take a
single N. Code keeps (height, width), the order of array shapes, right after parsing
(`parse_shape`).
"""
import re

from sritm_tf.errors import InputError

_SIZE = re.compile(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?")


def parse_size(text, option="size", square=False):
    """'WxH' -> (width, height); with `square`, also 'N' (or an int) -> (N, N).

    Args:
        text: the size as typed, such as "960x540".
        option: the option or argument named in the error, such as "--tile".
        square: whether a single N means NxN.

    Returns:
        (width, height), both positive ints.

    Raises:
        InputError (a ValueError) naming `option` and `text` when the size is
        malformed, zero or negative.
    """
    match = _SIZE.fullmatch(str(text)) if isinstance(text, (str, int)) else None
    if match and (match[2] is not None or square):
        width, height = int(match[1]), int(match[2] or match[1])
        if width > 0 and height > 0:
            return width, height
    form = "N or WxH" if square else "WxH"
    raise InputError(f"{option}: expected {form} (width x height, positive) such as 960x540, got {text!r}")


def parse_shape(text, option="size", square=False):
    """`parse_size`, returned as (height, width)."""
    width, height = parse_size(text, option, square)
    return height, width
