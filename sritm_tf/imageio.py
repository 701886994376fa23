"""Image files: the one reader and writer of PNG / JPEG / TIFF ... files in sritm_tf.

    rgb = read_image(path)          # (H, W, 3) uint8 or uint16 as stored, alpha dropped
    write_image(path, rgb)          # atomic, format by extension
    read_sdr_image(path)            # 8-bit SDR input of the converter
    write_hdr_png(path, pq_rgb)     # 16-bit HDR10 PNG output (HLG with transfer="hlg"), cICP chunk

Format-specific readers (OpenEXR, Radiance, HLG stills, gain-map JPEGs, in
`sritm_tf.data`) decode their PNG / JPEG parts with `decode_image`.

HDR PNG convention (same as the graded pairs in ../shared/data/graded, and the
training records of `sritm_tf.data.records`): RGB, BT.2020 primaries, PQ (SMPTE
ST 2084; or HLG, BT.2100, for `sritm convert --transfer hlg`), full range, written
with a cICP chunk that signals it; the signal is quantised to 10-bit codes D10 = Round(1023 E')
(BT.2100-2 Table 9, full range) and stored as D16 = Round(D10 * 65535 / 1023)
(`hdr10_codes_to_uint16`), so 0 -> 0, 1023 -> 65535 and D10 is read back exactly
as Round(D16 * 1023 / 65535) (`uint16_to_hdr10_codes`, which also inverts
bit replication, (D10 << 6) | (D10 >> 4), the other common widening).
"""
import os
import struct
import zlib

import cv2
import numpy as np

from sritm_tf import colour
from sritm_tf.errors import AccessError, InputError, MissingFileError
from sritm_tf.fileio import atomic_path, captured_stderr

SDR_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")


def is_image(path):
    """True if `path` names an SDR image by its extension (`SDR_IMAGE_EXTENSIONS`), not a video."""
    return os.path.splitext(path)[1].lower() in SDR_IMAGE_EXTENSIONS


TOO_MANY_PIXELS = "its header declares more pixels than OpenCV decodes, CV_IO_MAX_IMAGE_PIXELS"


def decode_image(data, flags=cv2.IMREAD_UNCHANGED):
    """Encoded image bytes (PNG, JPEG, TIFF, ...) -> the decoded array with its colour
    channels in RGB(A) order (grey stays (H, W)), or None if `data` cannot be decoded.
    `flags`: OpenCV imread flags (default: as stored, EXIF orientation ignored).

    What the codec libraries print (libpng, libjpeg, libtiff through OpenCV's log) is
    kept off stderr; a TIFF whose strips libtiff reported damaged is None, though
    OpenCV returns an image for it (partly garbage)."""
    return _decode(data, flags)[0]


def _decode(data, flags):
    """(`decode_image`'s result, why it is None: `TOO_MANY_PIXELS` or None)."""
    buffer = np.frombuffer(data, np.uint8)
    if not buffer.size:
        return None, None
    with captured_stderr() as log:
        try:
            image = cv2.imdecode(buffer, flags)
        except cv2.error as err:  # what OpenCV will not decode, e.g. a header of 10^10 pixels
            return None, TOO_MANY_PIXELS if "CV_IO_MAX_IMAGE_PIXELS" in str(err) else None
    if "TIFF_Error" in log.text:
        return None, None
    if image is None or image.ndim == 2 or image.shape[-1] < 3:
        return image, None
    return np.ascontiguousarray(image[..., [2, 1, 0, *range(3, image.shape[-1])]]), None  # BGR(A) -> RGB(A)


def read_image(path, upright=False):
    """Reads an image file as RGB (H, W, 3) with the stored sample type (uint8 or
    uint16; float32 for float TIFFs): alpha dropped, grey replicated to 3 channels.
    `upright`: with its EXIF orientation (1-8, a phone's JPEG) applied, by OpenCV
    (IMREAD_COLOR | IMREAD_ANYDEPTH; IMREAD_UNCHANGED ignores it).

    Raises MissingFileError (a FileNotFoundError) if `path` is not a file, AccessError
    if it cannot be read and InputError ("<path>: not a readable image ...") if it
    cannot be decoded.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MissingFileError(f"{path}: no such file")
    try:
        data = np.fromfile(path, np.uint8)
    except PermissionError as err:
        raise AccessError(f"{path}: cannot read ({err.strerror})") from None
    image, why = _decode(data, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH if upright else cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InputError(f"{path}: not a readable image ({why or 'unsupported format or corrupt file'})")
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=-1)
    if image.shape[-1] < 3:  # grey + alpha
        return np.repeat(image[..., :1], 3, axis=-1)
    return image[..., :3]


def encode_image(rgb, ext=".png", params=()):
    """RGB (H, W, 3) or grey (H, W) uint8 / uint16 -> encoded bytes of format `ext`."""
    rgb = np.asarray(rgb)
    bgr = rgb[..., ::-1] if rgb.ndim == 3 else rgb
    ok, encoded = cv2.imencode(ext, np.ascontiguousarray(bgr), list(params))
    if not ok:
        raise ValueError(f"{ext} encoding failed")
    return encoded.tobytes()


def write_image(path, rgb, params=()):
    """Writes RGB `rgb` to `path` in the format of its extension, atomically
    (`fileio.atomic_path`)."""
    encoded = encode_image(rgb, os.path.splitext(os.fspath(path))[1], params)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(encoded)


def read_sdr_image(path):
    """Reads an 8-bit SDR image as RGB uint8 (H, W, 3), upright: its EXIF orientation applied.

    RGBA: alpha dropped; grey: replicated to 3 channels. Raises MissingFileError
    if `path` does not exist and InputError if it cannot be decoded or is not
    8-bit (16-bit and float images are taken as HDR and refused).
    """
    image = read_image(path, upright=True)
    if image.dtype != np.uint8:
        raise InputError(
            f"{path}: {image.dtype} samples, this looks like an HDR (or high bit depth) image already; "
            "sritm converts 8-bit SDR images")
    return image


def hdr10_codes_to_uint16(codes10):
    """10-bit codes -> 16-bit PNG codes: D16 = Round(D10 * 65535 / 1023)."""
    codes10 = np.asarray(codes10).astype(np.uint32)
    return ((codes10 * 65535 + 511) // 1023).astype(np.uint16)


def uint16_to_hdr10_codes(values16):
    """16-bit PNG codes -> 10-bit codes: D10 = Round(D16 * 1023 / 65535); inverts both
    `hdr10_codes_to_uint16` and bit replication."""
    return np.round(np.asarray(values16, dtype=np.float64) * 1023 / 65535).astype(np.uint16)


def hdr_codes16(pq_rgb):
    """PQ R'G'B' in [0, 1] -> 16-bit PNG codes: 10-bit full-range quantisation,
    then `hdr10_codes_to_uint16`."""
    return hdr10_codes_to_uint16(colour.quantize(pq_rgb, 10, full_range=True))


def png_with_cicp(png, primaries, transfer, matrix=0, full_range=True):
    """PNG bytes with a cICP chunk (PNG 3rd edition 11.3.2.6: H.273 ColourPrimaries,
    TransferCharacteristics, MatrixCoefficients (0: RGB), VideoFullRangeFlag) after IHDR."""
    signature, ihdr_end = png[:8], 8 + 4 + 4 + 13 + 4  # IHDR is first and 13 bytes long
    if signature != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    body = b"cICP" + bytes([primaries, transfer, matrix, int(full_range)])
    chunk = struct.pack(">I", 4) + body + struct.pack(">I", zlib.crc32(body))
    return png[:ihdr_end] + chunk + png[ihdr_end:]


def png_cicp(png):
    """The (primaries, transfer, matrix, full range) of a PNG's cICP chunk, or None."""
    offset = 8
    while offset + 8 <= len(png):
        length, kind = struct.unpack(">I4s", png[offset:offset + 8])
        if kind == b"cICP" and length == 4:
            return tuple(png[offset + 8:offset + 12])
        if kind == b"IDAT":
            return None  # cICP comes before the image data
        offset += 12 + length
    return None


def write_hdr_png(path, signal, transfer="pq"):
    """Writes BT.2020 R'G'B' (H, W, 3) in [0, 1], PQ or HLG (`transfer`), as a 16-bit
    RGB PNG (see the module docstring) with a cICP chunk that says so: BT.2020 (9),
    PQ (16) or HLG (18), RGB, full range. Written to a temporary name, then renamed."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(encode_hdr_png(signal, transfer))


def encode_hdr_png(signal, transfer="pq"):
    """The bytes of the 16-bit HDR PNG that `write_hdr_png` writes."""
    code, _ = colour.TRANSFERS[transfer]
    return png_with_cicp(encode_image(hdr_codes16(signal), ".png"), 9, code)


def read_hdr_png(path):
    """Reads a 16-bit HDR10 PNG as PQ R'G'B' float64 in [0, 1] (D16 / 65535)."""
    try:
        image = read_image(path)
    except FileNotFoundError:
        image = None
    if image is None or image.dtype != np.uint16:
        raise InputError(f"{path}: not a 16-bit RGB PNG")
    return image / 65535.0
