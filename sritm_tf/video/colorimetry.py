"""The colour signal of a video source: its tags (ITU-T H.273 code points, as FFmpeg reads them
from the stream and its first frame: `stream_tags`), the refusal of a source that is HDR already
(`check_sdr_signal`), and its frames as R'G'B' in BT.709 primaries (`Signal.rgb`).

- HDR already: a PQ (SMPTE ST 2084) or HLG (ARIB STD-B67) transfer, BT.2020 primaries or Y'CbCr
  matrix, or floating-point samples (OpenEXR, Radiance: linear light). Any other transfer is taken
  as SDR (BT.1886 display), at any integer bit depth.
- Y'CbCr matrix as tagged (BT.709; BT.601 bt470bg / smpte170m; SMPTE 240M); untagged: BT.709 for
  HD (720 lines or more), BT.601 for SD, as players assume. Limited or full range, any chroma
  subsampling (4:2:0, 4:2:2, 4:4:4).
- Primaries: BT.601 525-line (SMPTE 170M) and 625-line (BT.470-6 B, G) sources are converted to
  BT.709 primaries (`bt601_to_bt709`). Untagged Y'CbCr: 625-line for 576 lines, 525-line for
  480 or 486, BT.709 otherwise (mpv's guess). A note says what an untagged stream is taken as.
- Precision: 8-bit frames as uint8 R'G'B' (swscale's rgb24, as before); deeper ones widened to 16
  bits by swscale (yuv444p16le: luma codes shifted left, exact; rgb48le) and converted here with
  BT.2100-2 Table 9 code values (`colour.dequantize`) and the stream's matrix, as float32 in [0, 1].
"""
import re

import numpy as np

from sritm_tf import colour
from sritm_tf.notes import note
from sritm_tf.errors import InputError

UNSPECIFIED = 2  # H.273 code 2 of TransferCharacteristics, ColourPrimaries, MatrixCoefficients
#: H.273 TransferCharacteristics of HDR: (name, ffmpeg's name).
HDR_TRANSFERS = {16: ("PQ", "smpte2084"), 18: ("HLG", "arib-std-b67")}
#: H.273 ColourPrimaries 9 and MatrixCoefficients 9, 10: BT.2020 (ffmpeg's names).
BT2020_TAGS = {"primaries": {9: "bt2020"}, "matrix": {9: "bt2020nc", 10: "bt2020c"}}
#: H.273 MatrixCoefficients -> `colour.KR_KB` key: 1 BT.709, 5 bt470bg and 6 smpte170m (BT.601), 7 SMPTE 240M.
MATRICES = {1: "bt709", 5: "bt601", 6: "bt601", 7: "smpte240m"}
#: H.273 ColourPrimaries of SD: 5 bt470bg (625 lines), 6 smpte170m and 7 smpte240m (525 lines).
SD_PRIMARIES = {5: 625, 6: 525, 7: 525}
#: Primaries (x, y) of SD, white D65: 525 lines, SMPTE 170M-2004 clause 7 (BT.601-7's 525 system);
#: 625 lines, BT.470-6 Table 1 systems B, G (BT.601-7's 625 system, EBU Tech 3213).
BT601_PRIMARIES_XY = {525: ((0.630, 0.340), (0.310, 0.595), (0.155, 0.070)),
                      625: ((0.640, 0.330), (0.290, 0.600), (0.150, 0.060))}
#: Linear-light BT.601 RGB -> BT.709 RGB (NPM_709^-1 NPM_601, SMPTE RP 177; same D65 white).
BT601_TO_BT709 = {lines: np.linalg.solve(colour.rgb_to_xyz_matrix(colour.BT709_PRIMARIES_XY),
                                         colour.rgb_to_xyz_matrix(xy)) for lines, xy in BT601_PRIMARIES_XY.items()}


def bt601_to_bt709(rgb, lines):
    """SD R'G'B' [0, 1] in the primaries of the `lines` (525 or 625) system -> R'G'B' in BT.709
    primaries: to linear light by the BT.1886 EOTF the project uses (pure gamma 2.4,
    `colour.gamma_decode`), `BT601_TO_BT709`, clipped to [0, 1] (the few colours outside
    BT.709), gamma 2.4 again."""
    linear = colour.gamma_decode(rgb) @ BT601_TO_BT709[lines].T
    return colour.gamma_encode(np.clip(linear, 0.0, 1.0))


def stream_tags(info):
    """The colour tags of the video stream `info` (`probe.probe`): transfer, primaries, matrix,
    color_range, pix_fmt, each as its first decoded frame says where it says (the bitstream's,
    as FFmpeg's decoder attaches them), else as the stream; with field_order (FFmpeg's
    AVFieldOrder), interlaced (the first frame's flag) and rgb_format (its pixel format is RGB);
    both False if no frame decodes."""
    tags = {key: info[key] for key in ("transfer", "primaries", "matrix", "color_range", "field_order", "pix_fmt")}
    tags["interlaced"] = tags["rgb_format"] = False
    frame = info["first_frame"]
    if frame is not None:
        for key, unknown in (("transfer", (0, 2)), ("primaries", (0, 2)), ("matrix", (2,)), ("color_range", (0,))):
            tags[key] = tags[key] if frame[key] in unknown else frame[key]
        tags["interlaced"], tags["rgb_format"], tags["pix_fmt"] = (frame["interlaced"], frame["rgb_format"],
                                                                    frame["pix_fmt"])
    return tags


def check_sdr_signal(tags, path):
    """Refuses a stream that is HDR already (`stream_tags`): PQ or HLG transfer, tagged BT.2020, or
    floating-point samples (FFmpeg's pixel formats ...f16, ...f32)."""
    if re.search(r"f(16|32)(le|be)?$", tags["pix_fmt"] or ""):
        raise InputError(f"{path}: floating-point samples ({tags['pix_fmt']}), taken as HDR "
                         "(linear light) already; sritm converts SDR video")
    if tags["transfer"] in HDR_TRANSFERS:
        name, transfer = HDR_TRANSFERS[tags["transfer"]]
        raise InputError(f"{path}: already HDR ({name} transfer {transfer}); sritm converts SDR video")
    for key, names in BT2020_TAGS.items():
        if tags[key] in names:
            raise InputError(f"{path}: tagged BT.2020 ({key} {names[tags[key]]}), taken as HDR or wide gamut "
                             "already; sritm converts SDR video (BT.709 or BT.601)")


class Signal:
    """How the frames of one stream become R'G'B' in BT.709 primaries (`rgb`): its Y'CbCr
    matrix (H.273 code), range, and the SD system (525, 625) whose primaries are converted, or
    None. `tags`: `stream_tags`' (an RGB pixel format has no matrix, and untagged primaries are
    taken as BT.709 there); `height`: the frame's. Notes what an untagged stream is taken as."""

    def __init__(self, tags, height, path):
        rgb_format = tags["rgb_format"]
        hd = height >= 720
        self.full_range = tags["color_range"] == 2  # AVCOL_RANGE_JPEG
        self.matrix = tags["matrix"] if tags["matrix"] in MATRICES else (1 if hd else 5)
        guessed_primaries = tags["primaries"] in (0, UNSPECIFIED) and not rgb_format
        if tags["primaries"] in SD_PRIMARIES:
            self.lines = SD_PRIMARIES[tags["primaries"]]
        else:
            self.lines = {576: 625, 480: 525, 486: 525}.get(height) if guessed_primaries else None
        taken = []
        if tags["matrix"] not in MATRICES and not rgb_format:
            taken.append(f"Y'CbCr matrix BT.{'709' if hd else '601'} ({'HD' if hd else 'SD'}, {height} lines)")
        if guessed_primaries and self.lines:
            taken.append(f"BT.601 {self.lines}-line primaries ({height} lines), converted to BT.709")
        if taken:
            note(f"{path}: untagged colour, taken as " + " and ".join(taken))

    def rgb(self, frame):
        """R'G'B' of a decoded PyAV `frame` in BT.709 primaries: uint8 for an 8-bit BT.709 stream
        (swscale's rgb24), else float32 in [0, 1] (10-, 12-, 16-bit: from 16-bit codes, see the module)."""
        from av.video.reformatter import ColorRange

        bits = max((c.bits for c in frame.format.components), default=8)
        if bits <= 8:
            full = self.full_range or frame.format.name.startswith("yuvj")
            rgb = frame.reformat(format="rgb24", src_colorspace=self.matrix, dst_colorspace=self.matrix,
                                 src_color_range=ColorRange.JPEG if full else ColorRange.MPEG,
                                 dst_color_range=ColorRange.JPEG).to_ndarray()
        elif frame.format.is_rgb:
            rgb = frame.reformat(format="rgb48le").to_ndarray() / 65535.0  # swscale widens by bit replication
        else:
            matrix, offset = self._affine(bits)
            rgb = np.clip(frame.reformat(format="yuv444p16le").to_ndarray().astype(np.float32) @ matrix + offset, 0, 1)
        if self.lines:
            rgb = bt601_to_bt709(rgb / 255.0 if rgb.dtype == np.uint8 else rgb, self.lines)
        return rgb if rgb.dtype == np.uint8 else rgb.astype(np.float32)

    def _affine(self, bits):
        """(M, c), float32: R'G'B' = codes @ M + c from the 16-bit Y'CbCr codes that swscale makes
        of `bits`-bit ones (shifted left). `colour.dequantize` (BT.2100-2 Table 9) and
        `colour.ycbcr_to_rgb` are affine: evaluated at code 0 and the unit codes, one product per frame."""
        bits = bits if bits in (10, 12, 16) else 16  # limited range is exact at 16 bits for any depth

        def to_rgb(codes):
            ycbcr = colour.dequantize(codes / 2.0 ** (16 - bits), bits, self.full_range, kind="ycbcr")
            return colour.ycbcr_to_rgb(ycbcr, MATRICES[self.matrix])

        offset = to_rgb(np.zeros(3))
        return (to_rgb(np.eye(3)) - offset).astype(np.float32), offset.astype(np.float32)
