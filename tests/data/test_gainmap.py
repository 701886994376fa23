"""Ultra HDR (gain-map) JPEGs: synthetic files assembled here (MPF index, hdrgm XMP) decode to
the HDR put in; the real phone photos decode with plausible metadata; the seine gain-map JPEG
agrees with its own HDR rendition, a 10-bit PQ AVIF."""
import struct

import cv2
import numpy as np
import pytest

from sritm_tf import colour
from sritm_tf.data import gainmap
from sritm_tf.errors import SourceError

from tests.helpers.paths import SHARED_DATA, need_shared

GAINMAP = SHARED_DATA / "hdri" / "gainmap"
PHONE = ["uhdr_01.jpg", "uhdr_02.jpg", "uhdr_04.jpg"]
SEINE = GAINMAP / "seine_sdr_gainmap_srgb.jpg"
#: Row of the Display-P3 normalised primary matrix: linear P3 RGB -> luminance Y.
P3_LUMA = colour.rgb_to_xyz_matrix(colour.P3_PRIMARIES_XY)[1]


# ---------------------------------------------------------------------------
# Building Ultra HDR files (Ultra HDR v1.0: primary JPEG + MPF index + gain map JPEG with XMP)
# ---------------------------------------------------------------------------
def segment(marker, payload):
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def xmp(attrs="", body=""):
    packet = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:hdrgm="http://ns.adobe.com/hdr-gain-map/1.0/"'
        f' hdrgm:Version="1.0" {attrs}>'
        f"{body}</rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    return segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + packet.encode())


def seq(name, values):
    items = "".join(f"<rdf:li>{v}</rdf:li>" for v in values)
    return f"<hdrgm:{name}><rdf:Seq>{items}</rdf:Seq></hdrgm:{name}>"


def mpf(primary_size, gain_size, gain_offset):
    """APP2 MPF segment (CIPA DC-007): little-endian TIFF header, 3-entry IFD, 2 MP entries."""
    ifd = struct.pack("<H", 3)
    ifd += struct.pack("<HHI4s", 0xB000, 7, 4, b"0100")
    ifd += struct.pack("<HHII", 0xB001, 4, 1, 2)
    ifd += struct.pack("<HHII", 0xB002, 7, 32, 8 + len(ifd) + 12 + 4)
    ifd += struct.pack("<I", 0)
    entries = struct.pack("<IIIHH", 0x030000, primary_size, 0, 0, 0)
    entries += struct.pack("<IIIHH", 0, gain_size, gain_offset, 0, 0)
    return segment(0xE2, b"MPF\x00" + b"II*\x00" + struct.pack("<I", 8) + ifd + entries)


def encode(image_rgb_or_grey, quality=98):
    image = image_rgb_or_grey if image_rgb_or_grey.ndim == 2 else image_rgb_or_grey[..., ::-1]
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buffer.tobytes()


def ultra_hdr(base, gain, attrs="", body="", with_mpf=True, primary_xmp=True):
    """Bytes of an Ultra HDR JPEG: `base` uint8 RGB, `gain` uint8 grey or RGB, hdrgm metadata."""
    gain_jpeg = encode(gain)
    gain_jpeg = gain_jpeg[:2] + xmp(attrs, body) + gain_jpeg[2:]
    base_jpeg = encode(base)
    head = xmp() if primary_xmp else b""  # the primary carries hdrgm:Version only
    if not with_mpf:
        return base_jpeg[:2] + head + base_jpeg[2:] + gain_jpeg
    size = len(base_jpeg) + len(head) + len(mpf(0, 0, 0))
    # MPF offsets count from the TIFF header, 4 bytes after the APP2 marker and length.
    tiff_at = 2 + len(head) + 4 + 4
    primary = base_jpeg[:2] + head + mpf(size, len(gain_jpeg), size - tiff_at) + base_jpeg[2:]
    assert len(primary) == size
    return primary + gain_jpeg


def smooth_base(height=48, width=64):
    y, x = np.mgrid[0:height, 0:width] / np.array([height, width])[:, None, None]
    rgb = np.stack([0.2 + 0.6 * x, 0.3 + 0.5 * y, 0.5 + 0.3 * np.sin(3 * x)], axis=-1)
    return np.round(rgb * 255).astype(np.uint8)


def decoded(buffer, flags):
    image = cv2.imdecode(np.frombuffer(buffer, np.uint8), flags)
    return image if image.ndim == 2 else image[..., ::-1]


def apply_gain(sdr_linear, g, lo, hi, gamma, off_sdr, off_hdr, weight=1.0):
    """Ultra HDR v1.0 "Applying the gain map", written out independently of the module."""
    log_boost = lo + (hi - lo) * g ** (1 / gamma)
    return (sdr_linear + off_sdr) * 2.0 ** (log_boost * weight) - off_hdr


# ---------------------------------------------------------------------------
# Synthetic files
# ---------------------------------------------------------------------------
def test_synthetic_file_decodes_to_the_hdr_put_in(tmp_path):
    base = smooth_base()
    ramp = np.linspace(0, 1, 32)[None, :] * np.linspace(0.3, 1, 24)[:, None]
    gain = np.round(ramp * 255).astype(np.uint8)  # grey, half resolution
    path = tmp_path / "synthetic.jpg"
    path.write_bytes(ultra_hdr(base, gain, 'hdrgm:GainMapMin="-0.5" hdrgm:GainMapMax="2.5" hdrgm:Gamma="2.0"'))

    sdr, hdr, meta = gainmap.read_ultra_hdr(str(path))
    assert sdr.shape == hdr.shape == (48, 64, 3) and sdr.dtype == hdr.dtype == np.float64
    assert meta["GainMapMin"] == (-0.5,) * 3 and meta["GainMapMax"] == (2.5,) * 3 and meta["Gamma"] == (2.0,) * 3
    # Spec defaults: offsets 1/64, capacity min 0, capacity max = GainMapMax.
    assert meta["OffsetSDR"] == meta["OffsetHDR"] == (1 / 64,) * 3
    assert meta["HDRCapacityMin"] == 0.0 and meta["HDRCapacityMax"] == 2.5 and not meta["BaseRenditionIsHDR"]
    assert meta["gainmap_size"] == (32, 24) and meta["gainmap_channels"] == 1
    assert meta["base_primaries"] == "Display-P3 (assumed)"  # no ICC profile

    # Against the values put in (before JPEG): within JPEG error (about 1 code of 255).
    g = cv2.resize(ramp.astype(np.float32), (64, 48), interpolation=cv2.INTER_LINEAR)[..., None]
    truth = apply_gain(colour.srgb_eotf(base / 255), g, -0.5, 2.5, 2.0, 1 / 64, 1 / 64)
    np.testing.assert_allclose(sdr, base / 255, atol=6 / 255)
    log_error = np.abs(np.log2((hdr + 1 / 64) / (truth + 1 / 64)))
    # In stops, out of a 3-stop range (measured 0.013 and 0.11; 1.1 if Gamma were inverted).
    assert log_error.mean() < 0.03 and log_error.max() < 0.2
    assert truth.max() > 3 and hdr.max() > 3  # values above SDR white


def test_per_channel_metadata_rgb_gain_map_and_no_mpf(tmp_path):
    base = smooth_base(40, 40)
    gain = np.stack([np.full((40, 40), v, np.uint8) for v in (40, 128, 230)], axis=-1)
    body = seq("GainMapMin", [0, -1, 0.5]) + seq("GainMapMax", [1, 2, 3]) + seq("Gamma", [1, 0.5, 2])
    attrs = 'hdrgm:OffsetSDR="0" hdrgm:OffsetHDR="0.03125" hdrgm:HDRCapacityMax="3"'
    path = tmp_path / "no_mpf.jpg"
    # No MPF index: the gain map is found as the JPEG after the primary's scan data.
    path.write_bytes(ultra_hdr(base, gain, attrs, body, with_mpf=False, primary_xmp=False))
    sdr, hdr, meta = gainmap.read_ultra_hdr(str(path))
    assert meta["GainMapMin"] == (0, -1, 0.5) and meta["Gamma"] == (1, 0.5, 2) and meta["gainmap_channels"] == 3
    # Exactly the formula on the decoded JPEGs (full-size gain map: no resampling).
    data = path.read_bytes()
    g = decoded(data[data.find(b"\xff\xd8\xff", 10) :], cv2.IMREAD_COLOR) / 255
    lo, hi, gamma = np.array([0, -1, 0.5]), np.array([1, 2, 3]), np.array([1, 0.5, 2])
    want = apply_gain(colour.srgb_eotf(sdr), g, lo, hi, gamma, 0, 1 / 32)
    np.testing.assert_allclose(hdr, want, rtol=1e-5, atol=1e-7)


def test_display_boost_weights_the_gain(tmp_path):
    base = smooth_base(32, 32)
    gain = np.full((16, 16), 200, np.uint8)
    path = tmp_path / "boost.jpg"
    path.write_bytes(ultra_hdr(base, gain, 'hdrgm:GainMapMax="2" hdrgm:HDRCapacityMin="0" hdrgm:HDRCapacityMax="2"'))
    sdr, full, _ = gainmap.read_ultra_hdr(str(path))
    sdr_linear = colour.srgb_eotf(sdr)
    _, half, _ = gainmap.read_ultra_hdr(str(path), display_boost=2.0)  # log2 = 1: weight 0.5
    _, none, _ = gainmap.read_ultra_hdr(str(path), display_boost=1.0)  # weight 0: the SDR rendition
    _, more, _ = gainmap.read_ultra_hdr(str(path), display_boost=16.0)  # clamped to weight 1
    np.testing.assert_allclose(none, sdr_linear, atol=1e-12)
    np.testing.assert_allclose(more, full, atol=1e-12)
    np.testing.assert_allclose((half + 1 / 64) ** 2, (full + 1 / 64) * (sdr_linear + 1 / 64), rtol=1e-9)


def test_gainmap_pair_follows_the_project_conventions(tmp_path):
    base = (smooth_base() * 0.5 + 64).astype(np.uint8)  # low saturation: inside BT.709 as P3
    path = tmp_path / "pair.jpg"
    path.write_bytes(ultra_hdr(base, np.full((24, 32), 180, np.uint8), 'hdrgm:GainMapMax="1.5"'))
    sdr, hdr, _ = gainmap.read_ultra_hdr(str(path))
    for white in (203.0, 100.0):
        sdr709, hdr_pq = gainmap.gainmap_pair(str(path), white)
        assert sdr709.shape == hdr_pq.shape == (48, 64, 3) and 0 <= sdr709.min() and sdr709.max() <= 1
        # The baseline SDR -> HDR10 mapping of sdr709 is the SDR rendition, P3 -> BT.2020.
        sdr_in_hdr10 = colour.pq_inverse_eotf(colour.srgb_eotf(sdr) @ colour.P3_TO_BT2020.T * white)
        np.testing.assert_allclose(colour.sdr_to_hdr10_baseline(sdr709, white), sdr_in_hdr10, atol=1e-9)
        np.testing.assert_allclose(hdr_pq, colour.pq_inverse_eotf(hdr @ colour.P3_TO_BT2020.T * white), atol=1e-12)
        # The HDR rendition is brighter: the gain is >= 0 everywhere here.
        assert np.all(colour.pq_eotf(hdr_pq) >= colour.pq_eotf(sdr_in_hdr10) - 1e-6)


def test_problems_raise_source_error_naming_the_file(tmp_path):
    base, gain = smooth_base(), np.full((24, 32), 100, np.uint8)
    good = ultra_hdr(base, gain, 'hdrgm:GainMapMax="2"')
    cases = {
        "image.png": (cv2.imencode(".png", base)[1].tobytes(), "not a JPEG file"),
        "plain.jpg": (encode(base), "has no gain map"),
        "no_meta.jpg": (ultra_hdr(base, gain), "has no gain map metadata"),  # hdrgm:Version only
        "cut_gain.jpg": (good[:-200], "truncated file"),
        "cut_primary.jpg": (good[:1500], "truncated"),
        "hdr_base.jpg": (
            ultra_hdr(base, gain, 'hdrgm:GainMapMax="2" hdrgm:BaseRenditionIsHDR="True"'),
            "base rendition is HDR",
        ),
    }
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(SourceError, match=f"{name}: {message}"):
            gainmap.read_ultra_hdr(str(tmp_path / name))
        assert not gainmap.has_gainmap(str(tmp_path / name)) or name == "hdr_base.jpg"
    with pytest.raises(SourceError, match="missing.jpg: cannot read"):
        gainmap.gainmap_pair(str(tmp_path / "missing.jpg"))


# ---------------------------------------------------------------------------
# Real files
# ---------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", PHONE)
def test_phone_ultra_hdr_photos(name):
    need_shared(GAINMAP / name)
    sdr, hdr, meta = gainmap.read_ultra_hdr(str(GAINMAP / name))
    assert sdr.shape == hdr.shape == (3072, 4080, 3)
    assert meta["Version"] == "1.0" and meta["base_primaries"] == "Display-P3"  # from the ICC profile
    assert meta["gainmap_size"] == (1020, 768) and meta["gainmap_channels"] == 1
    top = max(meta["GainMapMax"])
    assert meta["GainMapMin"] == (0.0,) * 3 and 2 <= top <= 2.7 and meta["HDRCapacityMax"] == pytest.approx(top)
    sdr_linear = colour.srgb_eotf(sdr)
    # GainMapMin = 0: every pixel is at least as bright as in SDR, at most 2^GainMapMax brighter.
    assert np.all(hdr >= sdr_linear - 1e-12)
    ratio = (hdr + meta["OffsetHDR"][0]) / (sdr_linear + meta["OffsetSDR"][0] + 1e-12)
    assert ratio.max() <= 2**top * (1 + 1e-6) and ratio.max() > 2 ** (top - 0.1)
    nits = hdr[::4, ::4] @ P3_LUMA * 203.0
    assert 30 < np.median(nits) < 300 and np.percentile(nits, 99) <= 203 * 2**top


def test_seine_gain_map_metadata():
    need_shared(SEINE)
    sdr, hdr, meta = gainmap.read_ultra_hdr(str(SEINE))
    assert sdr.shape == hdr.shape == (300, 400, 3) and meta["gainmap_channels"] == 3
    assert meta["base_primaries"] == "BT.709"  # ICC "sRGB IEC61966-2.1": converted to Display-P3
    assert meta["GainMapMin"] == pytest.approx((-0.256907, -0.261365, -0.280284))
    assert meta["GainMapMax"] == pytest.approx((1.277177, 1.277203, 1.277969))
    assert meta["Gamma"] == pytest.approx((0.953784, 0.941095, 0.919422))
    assert meta["OffsetSDR"] == meta["OffsetHDR"] == (0.015625,) * 3 and meta["HDRCapacityMax"] == 1.3
    ratio = (hdr + 1 / 64) / (colour.srgb_eotf(sdr) + 1 / 64)
    # Per-channel bounds hold in the base's BT.709 space; allow for the conversion to P3.
    assert 2**-0.3 * 0.9 < ratio.min() and ratio.max() < 2**1.278 * 1.1


def read_avif_pq709(path):
    """10-bit AVIF (nclx 1/16/6, full range, 4:4:4) -> PQ BT.709 R'G'B' through PyAV (dav1d).
    Pillow 13 reads the same file as 8-bit RGB only."""
    import av

    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
    # H.273: primaries 1 (BT.709), transfer 16 (PQ), matrix 6 (BT.601), full range.
    assert (frame.color_primaries, frame.color_trc, frame.colorspace, frame.color_range) == (1, 16, 6, 2)
    assert frame.format.name == "yuv444p10le"
    y, cb, cr = (
        np.frombuffer(bytes(p), "<u2").reshape(p.height, -1)[:, : p.width].astype(np.float64) for p in frame.planes
    )
    # Full range: Y' = D / 1023, Cb, Cr = (D - 512) / 1023; BT.601 Kr = 0.299, Kb = 0.114.
    y, cb, cr = y / 1023, (cb - 512) / 1023, (cr - 512) / 1023
    r, b = y + 1.402 * cr, y + 1.772 * cb
    g = (y - 0.299 * r - 0.114 * b) / 0.587
    return np.clip(np.stack([r, g, b], axis=-1), 0.0, 1.0)


def test_seine_gain_map_matches_its_hdr_avif():
    need_shared(GAINMAP / "seine_hdr_srgb.avif")
    need_shared(SEINE)
    reference = read_avif_pq709(GAINMAP / "seine_hdr_srgb.avif")
    _, hdr, _ = gainmap.read_ultra_hdr(str(SEINE))
    hdr709 = hdr @ colour.P3_TO_BT709.T
    # The AVIF puts SDR white at 203 cd/m2 (BT.2408).
    lit = hdr709 > 0.05
    assert np.median(colour.pq_eotf(reference)[lit] / hdr709[lit]) == pytest.approx(203, rel=0.02)
    ours = colour.pq_inverse_eotf(np.clip(hdr709 * 203, 0, colour.PQ_PEAK))
    psnr = 10 * np.log10(1 / np.mean((ours - reference) ** 2))
    assert psnr > 38  # measured 39.8 dB (8-bit base and gain map JPEGs); 23 dB with white at 100
