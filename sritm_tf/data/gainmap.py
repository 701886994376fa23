"""Ultra HDR (gain-map) JPEG reader: one file, an SDR and an HDR rendition of the same photo.

Format: Google "Ultra HDR Image Format v1.0" (developer.android.com/media/platform/hdr-image-format)
with the Adobe gain-map metadata (`hdrgm` XMP namespace, http://ns.adobe.com/hdr-gain-map/1.0/);
ISO 21496-1 describes the same maths. A file is two JPEGs back to back:
  - the primary image, the SDR base rendition (8-bit, sRGB transfer, Display-P3 primaries on
    phones; an sRGB / BT.709 ICC profile is recognised too);
  - the gain map, a smaller grey or RGB JPEG, found through the Multi-Picture Format index of
    the primary (CIPA DC-007, APP2 "MPF\\0"), or failing that as the first JPEG (SOI) after the
    primary's scan data, and carrying the `hdrgm` metadata in its XMP (APP1
    "http://ns.adobe.com/xap/1.0/"; the primary's XMP is tried too).
Images are read in stored orientation (EXIF Orientation is ignored for both JPEGs alike).
Any problem raises `SourceError("<file>: <problem>")`.
"""
import re
import struct
import xml.etree.ElementTree as ET

import cv2
import numpy as np

from sritm_tf import colour, imageio
from sritm_tf.errors import SourceError

_XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
_HDRGM = "{http://ns.adobe.com/hdr-gain-map/1.0/}"
_RDF_LI = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}li"
_PER_CHANNEL = ("GainMapMin", "GainMapMax", "Gamma", "OffsetSDR", "OffsetHDR")
#: x chromaticity of the ICC profile's red colorant (rXYZ, D50-adapted) of the known bases.
_ICC_RED_X = {"Display-P3": 0.6820, "BT.709": 0.6485}


# ---------------------------------------------------------------------------
# Container: JPEG segments, MPF index, XMP, ICC
# ---------------------------------------------------------------------------
def _segments(data, start, path):
    """{marker: [(offset, payload), ...]} of the JPEG at `start` up to its first SOS, and the
    offset of the SOS marker."""
    if data[start : start + 2] != b"\xff\xd8":
        raise SourceError(f"{path}: not a JPEG file (no SOI marker at byte {start})")
    found, i = {}, start + 2
    while True:
        if i + 4 > len(data):
            raise SourceError(f"{path}: truncated JPEG (headers end at byte {len(data)})")
        if data[i] != 0xFF:
            raise SourceError(f"{path}: corrupt JPEG (no marker at byte {i})")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if i + 2 + length > len(data):
            raise SourceError(f"{path}: truncated JPEG (segment at byte {i} runs past the end)")
        if marker == 0xDA:  # SOS: entropy-coded data follows
            return found, i
        found.setdefault(marker, []).append((i + 4, data[i + 4 : i + 2 + length]))
        i += 2 + length


def _mpf_second_image(app2, path):
    """File offset of the second image of the MPF index (CIPA DC-007 5.2), or None."""
    mpf = next(((at, p) for at, p in app2 if p.startswith(b"MPF\x00")), None)
    if mpf is None:
        return None
    # TIFF-style header: byte order, 0x002A, IFD offset; offsets count from the byte order mark.
    header_at, tiff = mpf[0] + 4, mpf[1][4:]
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None:
        raise SourceError(f"{path}: corrupt MPF index (bad byte order)")
    try:
        (ifd,) = struct.unpack(order + "I", tiff[4:8])
        (count,) = struct.unpack(order + "H", tiff[ifd : ifd + 2])
        for k in range(count):
            tag, _, size, value = struct.unpack(order + "HHII", tiff[ifd + 2 + 12 * k : ifd + 14 + 12 * k])
            if tag == 0xB002 and size >= 32:  # MP Entry: 16 bytes per image
                _, _, offset, _, _ = struct.unpack(order + "IIIHH", tiff[value + 16 : value + 32])
                return header_at + offset
    except struct.error:
        raise SourceError(f"{path}: corrupt MPF index") from None
    return None


def _locate(data, path):
    """(primary segments, primary bytes, gain-map bytes) of an Ultra HDR file."""
    segments, sos = _segments(data, 0, path)
    start = _mpf_second_image(segments.get(0xE2, []), path)
    if start is not None and start >= len(data):
        raise SourceError(f"{path}: truncated file (MPF puts the gain map at byte {start}, file has {len(data)})")
    if start is None or data[start : start + 3] != b"\xff\xd8\xff":
        # No usable index: the first SOI after the primary's scan data (FF D8 cannot occur
        # inside entropy-coded data, which stuffs every FF with 00 or an RSTn marker).
        start = data.find(b"\xff\xd8\xff", sos)
        if start < 0:
            raise SourceError(f"{path}: has no gain map (no MPF index and no second JPEG image)")
    primary, gain = data[:start], data[start:]
    for name, part in (("primary image", primary), ("gain map image", gain)):
        if part.rstrip(b"\x00\r\n ")[-2:] != b"\xff\xd9":
            raise SourceError(f"{path}: truncated file ({name} has no EOI marker)")
    return segments, primary, gain


def _icc_primaries(app2):
    """'Display-P3' or 'BT.709' from the red colorant of the ICC profile (ICC.1 9.2.41, rXYZ),
    'Display-P3 (assumed)' when there is no profile or it is neither."""
    chunks = sorted((p[12:14], p[14:]) for _, p in app2 if p.startswith(b"ICC_PROFILE\x00"))
    icc = b"".join(c for _, c in chunks)
    try:
        (count,) = struct.unpack(">I", icc[128:132])
        for k in range(count):
            sig, offset, _ = struct.unpack(">4sII", icc[132 + 12 * k : 144 + 12 * k])
            if sig == b"rXYZ":
                X, Y, Z = (v / 65536 for v in struct.unpack(">3i", icc[offset + 8 : offset + 20]))
                x = X / (X + Y + Z)
                name = min(_ICC_RED_X, key=lambda n: abs(_ICC_RED_X[n] - x))
                return name if abs(_ICC_RED_X[name] - x) < 0.005 else "Display-P3 (assumed)"
    except (struct.error, ZeroDivisionError):
        pass
    return "Display-P3 (assumed)"


def _hdrgm(app1, path):
    """hdrgm properties {name: str or [str, ...]} of the XMP packets among APP1 payloads."""
    found = {}
    for _, payload in app1:
        if not payload.startswith(_XMP_HEADER):
            continue
        match = re.search(rb"<x:xmpmeta.*?</x:xmpmeta>", payload, re.S)
        if match is None:
            continue
        try:
            root = ET.fromstring(match.group(0))
        except ET.ParseError as err:
            raise SourceError(f"{path}: malformed XMP ({err})") from None
        # Properties come as attributes (hdrgm:Gamma="1") or elements, the latter either plain
        # (<hdrgm:Gamma>1</hdrgm:Gamma>) or per channel (<hdrgm:Gamma><rdf:Seq><rdf:li>...).
        for element in root.iter():
            for key, value in element.attrib.items():
                if key.startswith(_HDRGM):
                    found[key[len(_HDRGM) :]] = value
            if element.tag.startswith(_HDRGM):
                items = [li.text or "" for li in element.iter(_RDF_LI)]
                found[element.tag[len(_HDRGM) :]] = items or (element.text or "").strip()
    return found


def _metadata(raw, path):
    """Parsed hdrgm metadata with the defaults of Ultra HDR v1.0 "Gain map metadata"."""
    if "GainMapMax" not in raw:
        raise SourceError(f"{path}: has no gain map metadata (no hdrgm:GainMapMax in the XMP)")

    def floats(name, default):
        value = raw.get(name, default)
        try:
            values = [float(v) for v in (value if isinstance(value, list) else [value])]
        except ValueError:
            raise SourceError(f"{path}: bad hdrgm:{name} value {value!r}") from None
        if len(values) not in (1, 3):
            raise SourceError(f"{path}: hdrgm:{name} has {len(values)} values, expected 1 or 3")
        return tuple(values * 3 if len(values) == 1 else values)

    meta = {name: floats(name, default) for name, default in zip(_PER_CHANNEL, (0.0, None, 1.0, 1 / 64, 1 / 64))}
    meta["HDRCapacityMin"] = floats("HDRCapacityMin", 0.0)[0]
    meta["HDRCapacityMax"] = floats("HDRCapacityMax", max(meta["GainMapMax"]))[0]
    meta["BaseRenditionIsHDR"] = str(raw.get("BaseRenditionIsHDR", "False")).strip().lower() == "true"
    meta["Version"] = raw.get("Version")
    return meta


def _read(path):
    """(meta, primary JPEG bytes, gain-map JPEG bytes) of an Ultra HDR file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise SourceError(f"{path}: cannot read ({err.strerror})") from None
    segments, primary, gain = _locate(data, path)
    gain_segments, _ = _segments(gain, 0, path)
    # Ultra HDR v1.0 puts the hdrgm values in the gain map's XMP; the primary's XMP only has
    # hdrgm:Version there, but other writers (Adobe) may put everything in the primary.
    raw = {**_hdrgm(segments.get(0xE1, []), path), **_hdrgm(gain_segments.get(0xE1, []), path)}
    meta = _metadata(raw, path)
    meta["base_primaries"] = _icc_primaries(segments.get(0xE2, []))
    return meta, primary, gain


def read_metadata(path):
    """Locate the gain map of an Ultra HDR JPEG and parse its metadata, without decoding pixels.

    Returns the `meta` dict of `read_ultra_hdr` less the gain map's size and channels.
    """
    return _read(path)[0]


def has_gainmap(path):
    """True if `path` is a JPEG with a gain map and hdrgm metadata (see `read_metadata`)."""
    try:
        read_metadata(path)
    except SourceError:
        return False
    return True


# ---------------------------------------------------------------------------
# Applying the gain map
# ---------------------------------------------------------------------------
def _decode(buffer, flags, path, name):
    image = imageio.decode_image(buffer, flags | cv2.IMREAD_IGNORE_ORIENTATION)  # RGB order
    if image is None or image.dtype != np.uint8:
        raise SourceError(f"{path}: cannot decode the {name} JPEG")
    return image


def read_ultra_hdr(path, display_boost=None):
    """Decode an Ultra HDR JPEG into its SDR and HDR renditions (Ultra HDR v1.0, "Decode").

    Returns `(sdr_srgb, hdr_linear, meta)`:
      - sdr_srgb: float64 (H, W, 3) sRGB-encoded Display-P3 R'G'B' in [0, 1], the base image
        (a BT.709 / sRGB base, recognised from its ICC profile, is converted to Display-P3);
      - hdr_linear: float64 (H, W, 3) linear Display-P3, 1.0 = SDR white (not clipped);
      - meta: GainMapMin, GainMapMax, Gamma, OffsetSDR, OffsetHDR (3-tuples, log2 units for
        min / max), HDRCapacityMin, HDRCapacityMax (log2), BaseRenditionIsHDR, Version,
        base_primaries, gainmap_size (w, h), gainmap_channels.
    Ultra HDR v1.0 "Applying the gain map": the gain map (codes / 255) is upsampled bilinearly
    to the base size, recovery = g^(1/Gamma), log_boost = GainMapMin (1 - recovery) +
    GainMapMax recovery, weight = clamp((log2(display_boost) - HDRCapacityMin) /
    (HDRCapacityMax - HDRCapacityMin), 0, 1) (1 when `display_boost` is None: the full HDR
    rendition), HDR = (SDR + OffsetSDR) 2^(log_boost weight) - OffsetHDR, SDR being the base
    in linear light (sRGB EOTF, IEC 61966-2-1). The gain map is applied in the base's colour
    space. Files whose base rendition is HDR (BaseRenditionIsHDR) are rejected.
    """
    meta, primary, gain = _read(path)
    if meta["BaseRenditionIsHDR"]:
        raise SourceError(f"{path}: base rendition is HDR (hdrgm:BaseRenditionIsHDR), not supported")
    base = _decode(primary, cv2.IMREAD_COLOR, path, "primary")
    gmap = _decode(gain, cv2.IMREAD_ANYCOLOR, path, "gain map")
    meta["gainmap_size"] = (gmap.shape[1], gmap.shape[0])
    meta["gainmap_channels"] = 1 if gmap.ndim == 2 else 3
    height, width = base.shape[:2]
    g = cv2.resize(gmap.astype(np.float32) / 255, (width, height), interpolation=cv2.INTER_LINEAR)
    g = g[..., None] if g.ndim == 2 else g

    lo, hi = (np.array(meta[k]) for k in ("GainMapMin", "GainMapMax"))
    recovery = g.astype(np.float64) ** (1 / np.array(meta["Gamma"]))
    log_boost = lo * (1 - recovery) + hi * recovery
    cap_lo, cap_hi = meta["HDRCapacityMin"], meta["HDRCapacityMax"]
    if display_boost is None:
        weight = 1.0
    elif cap_hi > cap_lo:
        weight = float(np.clip((np.log2(display_boost) - cap_lo) / (cap_hi - cap_lo), 0.0, 1.0))
    else:
        weight = float(np.log2(display_boost) >= cap_hi)
    sdr_srgb = base / 255.0
    sdr_linear = colour.srgb_eotf(sdr_srgb)
    hdr_linear = (sdr_linear + meta["OffsetSDR"]) * np.exp2(log_boost * weight) - meta["OffsetHDR"]
    if meta["base_primaries"] == "BT.709":
        to_p3 = np.linalg.inv(colour.P3_TO_BT709)
        sdr_srgb = colour.srgb_inverse_eotf(np.clip(sdr_linear @ to_p3.T, 0.0, 1.0))
        hdr_linear = hdr_linear @ to_p3.T
    return sdr_srgb, hdr_linear, meta


def gainmap_pair(path, white_nits=203.0):
    """An Ultra HDR JPEG as an (SDR, HDR10) training pair in this project's conventions.

    Returns `(sdr709, hdr_pq)`, float64 (H, W, 3) in [0, 1]:
      - sdr709: the SDR rendition in linear light, Display-P3 -> BT.709 (SMPTE EG 432-1
        primaries), clipped to [0, 1], pure-gamma encoded V = L^(1/2.4) (BT.1886 with L_B = 0),
        so that `colour.sdr_to_hdr10_baseline(sdr709, white_nits)` is the SDR rendition in HDR10;
      - hdr_pq: the HDR rendition, Display-P3 -> BT.2020, SDR white at `white_nits` cd/m2
        (BT.2408 reference white 203 by default), clipped to [0, 10000], PQ (ST 2084).
    """
    sdr_srgb, hdr_linear, _ = read_ultra_hdr(path)
    sdr_linear = colour.srgb_eotf(sdr_srgb) @ colour.P3_TO_BT709.T
    sdr709 = colour.gamma_encode(np.clip(sdr_linear, 0.0, 1.0))
    nits = np.clip(hdr_linear @ colour.P3_TO_BT2020.T * white_nits, 0.0, colour.PQ_PEAK)
    return sdr709, colour.pq_inverse_eotf(nits)
