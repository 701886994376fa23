"""Readers of HDR training material. Each yields `Frame`s holding HDR10 ground truth
(PQ-encoded BT.2020 R'G'B', float in [0, 1]) and, where the source has one, the SDR master.

Kinds of sources:
  "exr":    scene-linear OpenEXR stills (half-float RGB(A), BT.709 primaries), read with
            the `OpenEXR` package; exposure normalised (see `exposure_scale`), BT.709 ->
            BT.2020 (BT.2087), clipped to [0, 10000] cd/m2, PQ (ST 2084);
  "hdr10":  16-bit PNG/TIFF stills, BT.2020 primaries, PQ, full range;
  "video":  HDR10 video (HEVC / AV1 ... 10-bit, PQ, limited range) through PyAV;
  "yuv":    raw yuv420p10le files, BT.2020 NCL, PQ, limited range; needs the frame size;
  "pairs":  `<name>_sdr.<ext>` + `<name>_hdr.<ext>` stills (SDR 8-bit BT.709 gamma, alpha
            dropped; HDR as "hdr10");
  "radiance": scene-linear Radiance RGBE `.hdr` stills (BT.709 primaries assumed), read with
            OpenCV, then as "exr";
  "hlg":    16-bit PNG/TIFF stills, BT.2020, HLG (BT.2100), converted to PQ; only when asked
            for (`kind="hlg"`): 16-bit PNGs are "hdr10" by default;
  "gainmap": Ultra HDR / gain-map JPEGs (`gainmap.py`), an SDR and an HDR rendition per file.
Equirectangular maps (exr, radiance; width = 2 x height) keep their middle band of rows
(`middle_band`). JPEGs in folders without a gain map are skipped like unknown files.
Any problem with a file raises `SourceError("<file>: <problem>")`.
"""
import dataclasses
import glob
import os
import re

import cv2
import numpy as np

from sritm_tf import colour, imageio
from sritm_tf.errors import InputError, SourceError
from sritm_tf.fileio import captured_stderr

EXR_EXTS = (".exr",)
IMAGE_EXTS = (".png", ".tif", ".tiff")
VIDEO_EXTS = (".mp4", ".mkv", ".mov", ".webm", ".ts", ".m2ts", ".hevc", ".h265", ".265", ".ivf", ".obu")
YUV_EXTS = (".yuv",)
RADIANCE_EXTS = (".hdr",)
JPEG_EXTS = (".jpg", ".jpeg")
KINDS = ("auto", "exr", "hdr10", "video", "yuv", "pairs", "radiance", "hlg", "gainmap")

#: BT.2408 reference levels for PQ: 18% grey card at 26 cd/m2 when diffuse white is 203 cd/m2.
GREY_TO_WHITE = 26.0 / 203.0


@dataclasses.dataclass
class Source:
    """One input: `path` (for pairs, the HDR file), its `kind`, and the SDR file of a pair."""

    path: str
    kind: str
    sdr_path: str | None = None


@dataclasses.dataclass
class Frame:
    """One frame: `hdr_pq` float (H, W, 3) PQ BT.2020 in [0, 1]; `sdr` float (H, W, 3)
    gamma BT.709 in [0, 1] for pairs and gain-map JPEGs, else None; `index` in the source."""

    index: int
    hdr_pq: np.ndarray
    sdr: np.ndarray | None = None


# ---------------------------------------------------------------------------
# Discovery
# ---------------------------------------------------------------------------
_PAIR = re.compile(r"^(?P<stem>.+)_(?P<role>sdr|hdr)\.[^.]+$", re.IGNORECASE)


def _kind_of_file(path):
    ext = os.path.splitext(path)[1].lower()
    if ext in EXR_EXTS:
        return "exr"
    if ext in IMAGE_EXTS:
        return "hdr10"
    if ext in VIDEO_EXTS:
        return "video"
    if ext in YUV_EXTS:
        return "yuv"
    if ext in RADIANCE_EXTS:
        return "radiance"
    if ext in JPEG_EXTS:
        return "gainmap"
    return None


def _pairs_in(files):
    """Group `<stem>_sdr.*` / `<stem>_hdr.*` files; returns (pairs, leftover files)."""
    groups = {}
    for path in files:
        match = _PAIR.match(os.path.basename(path))
        if match:
            key = (os.path.dirname(path), match["stem"])
            groups.setdefault(key, {})[match["role"].lower()] = path
    pairs, used = [], set()
    for key in sorted(groups):
        roles = groups[key]
        if "sdr" in roles and "hdr" in roles:
            pairs.append(Source(roles["hdr"], "pairs", roles["sdr"]))
            used.update(roles.values())
    return pairs, [f for f in files if f not in used]


def find_pairs(folder):
    """Sorted [(name, sdr_path, hdr_path)] of the pairs in `folder` (not recursive):
    `<name>_sdr.*` / `<name>_hdr.*` files grouped as `discover` does (an SDR JPEG is
    not paired), and Ultra HDR gain-map JPEGs (sdr_path == hdr_path: one file holds
    the pair, named after the file)."""
    from sritm_tf.data import gainmap

    files = sorted(glob.glob(os.path.join(folder, "*")))
    pairs = [(_PAIR.match(os.path.basename(p.path))["stem"], p.sdr_path, p.path)
             for p in _pairs_in(files)[0] if not p.sdr_path.lower().endswith(JPEG_EXTS)]
    pairs += [(os.path.splitext(os.path.basename(f))[0], f, f) for f in files
              if f.lower().endswith(JPEG_EXTS) and gainmap.has_gainmap(f)]
    return sorted(pairs)


def discover(paths, kind="auto"):
    """Expand files and folders (recursively) into a sorted list of `Source`s.

    kind="auto" picks by extension, and turns `*_sdr.*` / `*_hdr.*` siblings into pairs.
    Unknown extensions in folders are ignored; a named file of unknown type raises SourceError.
    With kind="auto" a JPEG is a "gainmap" source if it holds a gain map; one without is
    skipped in folders, and raises SourceError when named.
    """
    from sritm_tf.data import gainmap

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    files, named = [], set()
    for path in paths:
        if os.path.isdir(path):
            for folder, subfolders, names in os.walk(path):
                subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
                files += [os.path.join(folder, n) for n in sorted(names) if _kind_of_file(n) and not n.startswith(".")]
        elif os.path.exists(path):
            files.append(path)
            named.add(os.path.abspath(path))
        else:
            raise SourceError(f"{path}: no such file or folder")
    files = [os.path.abspath(f) for f in files]
    sources = []
    if kind in ("auto", "pairs"):
        pairs, files = _pairs_in(files)
        sources += pairs
        if kind == "pairs":
            for f in files:
                raise SourceError(f"{f}: no matching *_sdr / *_hdr partner")
    for f in files:
        file_kind = _kind_of_file(f) if kind == "auto" else kind
        if file_kind is None:
            raise SourceError(f"{f}: unknown file type (use --kind)")
        if file_kind == "gainmap" and kind == "auto":
            if f in named:
                gainmap.read_metadata(f)  # SourceError "<f>: has no gain map ..."
            elif not gainmap.has_gainmap(f):
                continue
        sources.append(Source(f, file_kind))
    return sorted(sources, key=lambda s: s.path)


# ---------------------------------------------------------------------------
# EXR
# ---------------------------------------------------------------------------
def read_exr(path, window="data"):
    """Read an OpenEXR file's RGB as float32 (H, W, 3) scene-linear light.

    window="data": the stored pixels (data window), as in the file;
    window="display": the display window, with black where there is no data.
    Uses the "RGB"/"RGBA" interleaved channel group of the `OpenEXR` package (>= 3.3).
    """
    import OpenEXR

    try:
        with captured_stderr(), OpenEXR.File(path, separate_channels=False) as exr:  # its C core prints damage
            header = dict(exr.header())
            # Channels are released when the file closes: keep the pixel arrays.
            channels = {name: channel.pixels.copy() for name, channel in exr.channels().items()}
    except Exception as err:  # OpenEXR raises plain exceptions for unreadable files
        raise SourceError(f"{path}: cannot read as OpenEXR ({err})") from None
    group = next((channels[k] for k in ("RGBA", "RGB") if k in channels), None)
    if group is None:
        if all(k in channels for k in "RGB"):
            rgb = np.stack([channels[k] for k in "RGB"], axis=-1)
        else:
            raise SourceError(f"{path}: no R, G, B channels (found {sorted(channels)})")
    else:
        rgb = group[..., :3]
    rgb = np.nan_to_num(rgb.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if window == "data":
        return rgb
    (dx0, dy0), (dx1, dy1) = header["dataWindow"]
    (wx0, wy0), (wx1, wy1) = header["displayWindow"]
    out = np.zeros((wy1 - wy0 + 1, wx1 - wx0 + 1, 3), np.float32)
    # Intersection of the data window with the display window.
    y0, y1 = max(dy0, wy0), min(dy1, wy1)
    x0, x1 = max(dx0, wx0), min(dx1, wx1)
    if y0 <= y1 and x0 <= x1:
        out[y0 - wy0 : y1 - wy0 + 1, x0 - wx0 : x1 - wx0 + 1] = rgb[y0 - dy0 : y1 - dy0 + 1, x0 - dx0 : x1 - dx0 + 1]
    return out


def exposure_scale(linear_rgb709, white_nits=203.0):
    """Factor from scene-linear values to cd/m2 that puts diffuse white near `white_nits`.

    Mean-log-luminance anchoring (Reinhard et al. 2002, "key"): the geometric mean of the
    BT.709 luminance of the non-black pixels is taken as an 18% grey card and mapped to
    `white_nits * 26 / 203`, BT.2408's PQ grey-card level (26 cd/m2 for white at 203).
    """
    luminance = np.asarray(linear_rgb709, np.float64) @ np.array([0.2126, 0.7152, 0.0722])
    lit = luminance[luminance > 1e-6]
    if lit.size == 0:
        return 1.0
    key = float(np.exp(np.mean(np.log(lit))))
    return white_nits * GREY_TO_WHITE / key


def scene_linear_to_hdr10(linear_rgb709, white_nits=203.0):
    """Scene-linear BT.709 -> PQ BT.2020 R'G'B' in [0, 1].

    Scale by `exposure_scale` to cd/m2, BT.709 -> BT.2020 (BT.2087), clip to [0, 10000]
    cd/m2 (highlights beyond PQ's peak are clipped), PQ inverse EOTF (ST 2084).
    """
    nits = np.asarray(linear_rgb709, np.float64) * exposure_scale(linear_rgb709, white_nits)
    nits2020 = np.clip(colour.rgb709_to_rgb2020(nits), 0.0, colour.PQ_PEAK)
    return colour.pq_inverse_eotf(nits2020)


# ---------------------------------------------------------------------------
# Radiance RGBE and equirectangular maps
# ---------------------------------------------------------------------------
def read_radiance(path):
    """Read a Radiance RGBE `.hdr` (Ward, Graphics Gems II "Real Pixels") with OpenCV as float64
    (H, W, 3) scene-linear RGB; BT.709 primaries assumed (the header's PRIMARIES are ignored)."""
    with captured_stderr():  # OpenCV's log of a damaged file
        image = cv2.imread(path, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_COLOR)
    if image is None or image.dtype != np.float32:
        raise SourceError(f"{path}: cannot read as Radiance RGBE (missing, corrupt or truncated)")
    rgb = image[..., ::-1].astype(np.float64)  # BGR -> RGB
    return np.nan_to_num(rgb, nan=0.0, posinf=0.0, neginf=0.0)


def middle_band(image, fraction=0.5):
    """The central `fraction` of the rows of an equirectangular (latitude-longitude) map.

    Rows near the poles are stretched horizontally (by 1 / cos(latitude)); keeping the middle
    half keeps latitudes within +-45 degrees, where the stretch is at most 1.41.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    height = image.shape[0]
    keep = max(1, int(round(height * fraction)))
    top = (height - keep) // 2
    return image[top : top + keep]


# ---------------------------------------------------------------------------
# Stills: HDR10 PNG/TIFF and SDR
# ---------------------------------------------------------------------------
def _read_image(path):
    """`imageio.read_image`, its errors as SourceError."""
    try:
        return imageio.read_image(path)
    except (OSError, InputError):
        raise SourceError(f"{path}: cannot read as an image (missing, corrupt or unsupported)") from None


def read_hdr10_image(path):
    """16-bit RGB PNG/TIFF (BT.2020, PQ, full range) -> PQ R'G'B' float in [0, 1] (v / 65535)."""
    image = _read_image(path)
    if image.dtype != np.uint16:
        raise SourceError(f"{path}: HDR10 still must be 16-bit, got {image.dtype} (an SDR image?)")
    return image.astype(np.float64) / 65535.0


def read_sdr_image(path):
    """8-bit RGB(A) image (BT.709, gamma) -> float in [0, 1]; alpha dropped."""
    image = _read_image(path)
    if image.dtype != np.uint8:
        raise SourceError(f"{path}: SDR image must be 8-bit, got {image.dtype}")
    return image.astype(np.float64) / 255.0


def read_hlg_image(path, L_W=1000.0):
    """16-bit RGB PNG/TIFF (BT.2020, HLG, full range) -> PQ BT.2020 R'G'B' float in [0, 1].

    Signal v / 65535 -> HLG reference EOTF with its OOTF for a display of peak `L_W` cd/m2
    (BT.2100-2 Table 5, L_B = 0) -> PQ inverse EOTF (ST 2084). The primaries stay BT.2020.
    """
    image = _read_image(path)
    if image.dtype != np.uint16:
        raise SourceError(f"{path}: HLG still must be 16-bit, got {image.dtype}")
    display = colour.hlg_eotf(image.astype(np.float64) / 65535.0, L_W)
    return colour.pq_inverse_eotf(np.clip(display, 0.0, colour.PQ_PEAK))


# ---------------------------------------------------------------------------
# Video and raw YUV: BT.2020 NCL, PQ, limited range, 4:2:0 10-bit
# ---------------------------------------------------------------------------
AVCOL_TRC_SMPTE2084 = 16
AVCOL_TRC_ARIB_STD_B67 = 18
AVCOL_RANGE_JPEG = 2


def yuv420p10_to_pq_rgb(y, u, v, full_range=False):
    """10-bit Y, U, V planes (4:2:0) -> PQ BT.2020 R'G'B' (H, W, 3) in [0, 1].

    Code values -> float (BT.2100-2 Table 9, narrow or full range), chroma to 4:4:4
    (`colour.chroma_420_to_444`), Y'CbCr -> R'G'B' with the BT.2020 NCL matrix.
    """
    height, width = y.shape
    # BT.2100-2 Table 9: narrow range D_Y = (219 E + 16) 4, D_C = (224 E + 128) 4.
    luma = colour.dequantize(y, 10, full_range, "rgb")
    scale, offset = (1023.0, 512.0) if full_range else (224 * 4.0, 128 * 4.0)
    cb = colour.chroma_420_to_444((np.asarray(u, np.float64) - offset) / scale, height, width)
    cr = colour.chroma_420_to_444((np.asarray(v, np.float64) - offset) / scale, height, width)
    rgb = colour.ycbcr_to_rgb(np.stack([luma, cb, cr], axis=-1), "bt2020")
    return np.clip(rgb, 0.0, 1.0)


def _split_yuv420(planes, height, width):
    """(H * 3/2, W) stacked yuv420p planes (PyAV's layout) -> Y, U, V arrays."""
    ch, cw = (height + 1) // 2, (width + 1) // 2
    flat = planes.reshape(-1)
    y = flat[: height * width].reshape(height, width)
    u = flat[height * width : height * width + ch * cw].reshape(ch, cw)
    v = flat[height * width + ch * cw : height * width + 2 * ch * cw].reshape(ch, cw)
    return y, u, v


def iter_video(path, stride=30, max_frames=None):
    """Yield `Frame`s of an HDR10 video (every `stride`-th frame) decoded with PyAV.

    The stream must be PQ (color_trc smpte2084) with >= 10-bit samples; an HLG or SDR
    stream raises SourceError. Frames are converted to yuv420p10le, then to PQ R'G'B'
    with the BT.2020 NCL matrix and the stream's range (limited unless tagged full).
    """
    import av

    try:
        container = av.open(path, metadata_errors="replace")
    except Exception as err:
        raise SourceError(f"{path}: cannot open as video ({err})") from None
    with container:
        if not container.streams.video:
            raise SourceError(f"{path}: no video stream")
        stream = container.streams.video[0]
        count = 0
        try:
            for index, frame in enumerate(container.decode(stream)):
                if index == 0:
                    _check_hdr10_frame(path, frame)
                if index % stride:
                    continue
                full_range = frame.color_range == AVCOL_RANGE_JPEG
                if frame.format.name != "yuv420p10le":
                    frame = frame.reformat(format="yuv420p10le")
                y, u, v = _split_yuv420(frame.to_ndarray(), frame.height, frame.width)
                yield Frame(index, yuv420p10_to_pq_rgb(y, u, v, full_range))
                count += 1
                if max_frames and count >= max_frames:
                    break
        except av.error.FFmpegError as err:
            raise SourceError(f"{path}: decoding failed ({err})") from None
        if count == 0:
            raise SourceError(f"{path}: no decodable frames")


def _check_hdr10_frame(path, frame):
    trc = frame.color_trc
    if trc == AVCOL_TRC_ARIB_STD_B67:
        raise SourceError(f"{path}: transfer is HLG (arib-std-b67), expected PQ (smpte2084)")
    if trc != AVCOL_TRC_SMPTE2084:
        raise SourceError(f"{path}: transfer is not PQ (color_trc={trc}), expected smpte2084 HDR10")
    bits = max(c.bits for c in frame.format.components)
    if bits < 10:
        raise SourceError(f"{path}: {bits}-bit video, expected 10-bit HDR10")


def iter_yuv(path, size, stride=30, max_frames=None):
    """Yield `Frame`s of a raw yuv420p10le file (BT.2020 NCL, PQ, limited range).

    `size` is (width, height). The file size must be a whole number of frames.
    """
    if size is None:
        raise SourceError(f"{path}: raw .yuv needs --input-size WxH")
    width, height = size
    ch, cw = (height + 1) // 2, (width + 1) // 2
    frame_samples = width * height + 2 * ch * cw
    frame_bytes = 2 * frame_samples
    total = os.path.getsize(path)
    if total == 0 or total % frame_bytes:
        raise SourceError(
            f"{path}: size {total} bytes is not a multiple of one {width}x{height} yuv420p10le frame ({frame_bytes} bytes)"
        )
    count = 0
    with open(path, "rb") as f:
        for index in range(0, total // frame_bytes, stride):
            f.seek(index * frame_bytes)
            planes = np.frombuffer(f.read(frame_bytes), dtype="<u2")
            if planes.max() > 1023:
                raise SourceError(f"{path}: sample values above 1023, not 10-bit yuv420p10le")
            y, u, v = _split_yuv420(planes, height, width)
            yield Frame(index, yuv420p10_to_pq_rgb(y, u, v, full_range=False))
            count += 1
            if max_frames and count >= max_frames:
                break


# ---------------------------------------------------------------------------
# Dispatch
# ---------------------------------------------------------------------------
def iter_frames(source, white_nits=203.0, stride=30, size=None, max_frames=None):
    """Yield the `Frame`s of a `Source`."""
    if source.kind in ("exr", "radiance"):
        linear = read_exr(source.path) if source.kind == "exr" else read_radiance(source.path)
        if linear.shape[1] == 2 * linear.shape[0]:  # equirectangular map
            linear = middle_band(linear)
        yield Frame(0, scene_linear_to_hdr10(linear, white_nits))
    elif source.kind == "hdr10":
        yield Frame(0, read_hdr10_image(source.path))
    elif source.kind == "hlg":
        yield Frame(0, read_hlg_image(source.path))
    elif source.kind == "gainmap":
        from sritm_tf.data import gainmap

        sdr, hdr = gainmap.gainmap_pair(source.path, white_nits)
        yield Frame(0, hdr, sdr)
    elif source.kind == "pairs":
        hdr = read_hdr10_image(source.path)
        sdr = read_sdr_image(source.sdr_path)
        if sdr.shape[:2] != hdr.shape[:2]:
            raise SourceError(
                f"{source.sdr_path}: SDR size {sdr.shape[1]}x{sdr.shape[0]} differs from HDR "
                f"{os.path.basename(source.path)} {hdr.shape[1]}x{hdr.shape[0]}"
            )
        yield Frame(0, hdr, sdr)
    elif source.kind == "video":
        yield from iter_video(source.path, stride, max_frames)
    elif source.kind == "yuv":
        yield from iter_yuv(source.path, size, stride, max_frames)
    else:
        raise ValueError(f"unknown source kind {source.kind!r}")
