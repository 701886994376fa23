"""Colour maths of the project (numpy only).

Transfer functions, primaries conversion, Y'CbCr matrices, code-value
quantisation and 4:2:0 chroma resampling used to go from SDR (BT.709, gamma)
to HDR10 (BT.2020, PQ). Every function is vectorised over arbitrary leading
dimensions and returns float64 arrays (integer arrays for `quantize`).

Standards referenced:
  SMPTE ST 2084:2014 and ITU-R BT.2100-2 (PQ, HLG, ICtCp, code ranges),
  ITU-R BT.1886 (reference EOTF), ITU-R BT.709-6 (OETF, Y'CbCr, primaries),
  ITU-R BT.2020-2 (primaries, NCL Y'CbCr), ITU-R BT.2087-0 (709 -> 2020),
  IEC 61966-2-1 (sRGB), ITU-R BT.2408 (HDR reference white).
"""

import numpy as np

# ---------------------------------------------------------------------------
# PQ: SMPTE ST 2084 / BT.2100-2 Table 4
# ---------------------------------------------------------------------------
PQ_M1 = 2610 / 16384
PQ_M2 = 2523 / 4096 * 128
PQ_C1 = 3424 / 4096
PQ_C2 = 2413 / 4096 * 32
PQ_C3 = 2392 / 4096 * 32
PQ_PEAK = 10000.0


def _f(x):
    return np.asarray(x, dtype=np.float64)


def pq_eotf(E):
    """PQ EOTF, SMPTE ST 2084:2014 clause 5 / BT.2100-2 Table 4.

    F_D = 10000 * (max(E'^(1/m2) - c1, 0) / (c2 - c3 E'^(1/m2)))^(1/m1).
    Input: non-linear signal E' in [0, 1] (negatives clipped to 0).
    Output: absolute display luminance in cd/m2 (0..10000).
    """
    p = np.maximum(_f(E), 0.0) ** (1 / PQ_M2)
    return PQ_PEAK * (np.maximum(p - PQ_C1, 0.0) / (PQ_C2 - PQ_C3 * p)) ** (1 / PQ_M1)


def pq_inverse_eotf(L):
    """PQ inverse EOTF, SMPTE ST 2084:2014 clause 5 / BT.2100-2 Table 4.

    E' = ((c1 + c2 Y^m1) / (1 + c3 Y^m1))^m2 with Y = F_D / 10000.
    Input: luminance in cd/m2 (negatives clipped to 0). Output: signal [0, 1].
    """
    y = (np.maximum(_f(L), 0.0) / PQ_PEAK) ** PQ_M1
    return ((PQ_C1 + PQ_C2 * y) / (1 + PQ_C3 * y)) ** PQ_M2


# ---------------------------------------------------------------------------
# HLG: BT.2100-2 Table 5
# ---------------------------------------------------------------------------
HLG_A = 0.17883277
HLG_B = 1 - 4 * HLG_A  # 0.28466892
HLG_C = 0.5 - HLG_A * np.log(4 * HLG_A)  # 0.55991073
#: Luminance weights of the HLG OOTF (BT.2100-2 Table 5, = BT.2020 K_R, K_G, K_B).
HLG_WEIGHTS = np.array([0.2627, 0.6780, 0.0593])


def hlg_oetf(E):
    """HLG OETF, BT.2100-2 Table 5.

    E' = sqrt(3 E) for 0 <= E <= 1/12, else a ln(12 E - b) + c.
    Input: normalised scene linear E in [0, 1] (negatives clipped). Output E'.
    """
    E = np.maximum(_f(E), 0.0)
    log = HLG_A * np.log(np.maximum(12 * E - HLG_B, 1e-12)) + HLG_C
    return np.where(E <= 1 / 12, np.sqrt(3 * E), log)


def hlg_inverse_oetf(E_prime):
    """HLG inverse OETF, BT.2100-2 Table 5.

    E = E'^2 / 3 for 0 <= E' <= 1/2, else (exp((E' - c) / a) + b) / 12.
    Input: signal E' (negatives clipped). Output: scene linear E in [0, 1].
    """
    Ep = np.maximum(_f(E_prime), 0.0)
    return np.where(Ep <= 0.5, Ep**2 / 3, (np.exp((Ep - HLG_C) / HLG_A) + HLG_B) / 12)


def hlg_system_gamma(L_W=1000.0):
    """HLG system gamma, BT.2100-2 Table 5 (OOTF notes): 1.2 + 0.42 log10(L_W / 1000)."""
    return 1.2 + 0.42 * np.log10(L_W / 1000.0)


def _hlg_beta(L_W, L_B, gamma):
    # BT.2100-2 Table 5, EOTF: beta = sqrt(3 (L_B / L_W)^(1/gamma)) (black lift).
    return np.sqrt(3 * (L_B / L_W) ** (1 / gamma))


def hlg_eotf(E_prime, L_W=1000.0, L_B=0.0):
    """HLG reference EOTF with OOTF, BT.2100-2 Table 5.

    E = OETF^-1(max(0, (1 - beta) E' + beta)), Y_S = 0.2627 R_S + 0.6780 G_S
    + 0.0593 B_S, F_D = L_W Y_S^(gamma - 1) E, gamma = 1.2 + 0.42 log10(L_W/1000),
    beta = sqrt(3 (L_B / L_W)^(1/gamma)).
    Input: R'G'B' signal (..., 3). Output: display R_D G_D B_D in cd/m2.
    """
    gamma = hlg_system_gamma(L_W)
    beta = _hlg_beta(L_W, L_B, gamma)
    E = hlg_inverse_oetf(np.maximum((1 - beta) * _f(E_prime) + beta, 0.0))
    Y_S = (E @ HLG_WEIGHTS)[..., None]
    scale = np.where(Y_S > 0, np.maximum(Y_S, 1e-300) ** (gamma - 1), 0.0)
    return L_W * scale * E


def hlg_inverse_eotf(F_D, L_W=1000.0, L_B=0.0):
    """Inverse of the HLG reference EOTF, BT.2100-2 Table 5.

    Y_D = 0.2627 R_D + 0.6780 G_D + 0.0593 B_D, E = (Y_D / L_W)^((1-gamma)/gamma)
    F_D / L_W (inverse OOTF), E' = (OETF(E) - beta) / (1 - beta).
    Input: display RGB in cd/m2 (..., 3). Output: HLG R'G'B' signal.
    """
    gamma = hlg_system_gamma(L_W)
    beta = _hlg_beta(L_W, L_B, gamma)
    F_D = np.maximum(_f(F_D), 0.0)
    Y_D = (F_D @ HLG_WEIGHTS)[..., None]
    scale = np.where(Y_D > 0, np.maximum(Y_D / L_W, 1e-300) ** ((1 - gamma) / gamma), 0.0)
    return (hlg_oetf(scale * F_D / L_W) - beta) / (1 - beta)



#: Output transfers of the converter: BT.2100-2 Table 4 (PQ) and Table 5 (HLG), with the
#: H.273 / ISO/IEC 23091-2 TransferCharacteristics codes that signal them (16, 18) and ffmpeg's names.
TRANSFERS = {"pq": (16, "smpte2084"), "hlg": (18, "arib-std-b67")}
#: Nominal peak of the HLG display that PQ output is transcoded for (BT.2100-2 Table 5 L_W, BT.2390 7.2).
HLG_NOMINAL_PEAK = 1000.0


def pq_to_hlg(pq_rgb, L_W=HLG_NOMINAL_PEAK):
    """PQ R'G'B' -> HLG R'G'B', the display-light transcoding of ITU-R BT.2390-11
    clause 7: PQ EOTF (BT.2100-2 Table 4) to display light F_D, clipped to the HLG
    display's nominal peak L_W (no HLG signal reaches above it), then the inverse HLG
    reference EOTF of Table 5 for that display (inverse OOTF with system gamma
    1.2 + 0.42 log10(L_W / 1000): 1.2 at 1000 cd/m2; L_B = 0; inverse OETF). The
    reference HLG display of peak L_W shows the same light as the PQ display did.

    Input: PQ R'G'B' (..., 3) in [0, 1]. Output: HLG R'G'B' in [0, 1].
    """
    display = np.minimum(pq_eotf(pq_rgb), L_W)
    return np.clip(hlg_inverse_eotf(display, L_W=L_W), 0.0, 1.0)

# ---------------------------------------------------------------------------
# SDR transfer functions
# ---------------------------------------------------------------------------
def _bt1886_ab(L_W, L_B, gamma=2.4):
    # BT.1886 Annex 1: a = (L_W^(1/g) - L_B^(1/g))^g, b = L_B^(1/g) / (L_W^(1/g) - L_B^(1/g)).
    n = L_W ** (1 / gamma) - L_B ** (1 / gamma)
    return n**gamma, L_B ** (1 / gamma) / n


def bt1886_eotf(V, L_W=100.0, L_B=0.0):
    """BT.1886 Annex 1 reference EOTF: L = a max(V + b, 0)^2.4 (cd/m2)."""
    a, b = _bt1886_ab(L_W, L_B)
    return a * np.maximum(_f(V) + b, 0.0) ** 2.4


def bt1886_inverse_eotf(L, L_W=100.0, L_B=0.0):
    """Inverse of BT.1886 Annex 1 EOTF: V = (L / a)^(1/2.4) - b (L clipped >= 0)."""
    a, b = _bt1886_ab(L_W, L_B)
    return (np.maximum(_f(L), 0.0) / a) ** (1 / 2.4) - b


def gamma_decode(V, gamma=2.4):
    """Pure power decoding L = V^gamma (BT.1886 Annex 1 with L_B = 0, L_W = 1)."""
    return np.maximum(_f(V), 0.0) ** gamma


def gamma_encode(L, gamma=2.4):
    """Pure power encoding V = L^(1/gamma) (inverse of `gamma_decode`)."""
    return np.maximum(_f(L), 0.0) ** (1 / gamma)


def srgb_eotf(V):
    """sRGB EOTF, IEC 61966-2-1:1999 clause 5.2: V/12.92 if V <= 0.04045 else ((V+0.055)/1.055)^2.4."""
    V = _f(V)
    return np.where(V <= 0.04045, V / 12.92, ((np.maximum(V, 0.0) + 0.055) / 1.055) ** 2.4)


def srgb_inverse_eotf(L):
    """sRGB inverse EOTF, IEC 61966-2-1:1999 clause 5.3: 12.92 L if L <= 0.0031308 else 1.055 L^(1/2.4) - 0.055."""
    L = _f(L)
    return np.where(L <= 0.0031308, 12.92 * L, 1.055 * np.maximum(L, 0.0) ** (1 / 2.4) - 0.055)


def bt709_oetf(L):
    """BT.709-6 item 1.2 OETF: V = 4.5 L if L < 0.018 else 1.099 L^0.45 - 0.099."""
    L = _f(L)
    return np.where(L < 0.018, 4.5 * L, 1.099 * np.maximum(L, 0.0) ** 0.45 - 0.099)


def bt709_inverse_oetf(V):
    """Inverse of the BT.709-6 OETF: L = V/4.5 below the knee, else ((V + 0.099)/1.099)^(1/0.45).

    The two OETF branches do not meet exactly at L = 0.018 (4.5 L = 0.081 but
    1.099 L^0.45 - 0.099 = 0.081243); the knee is taken on the power branch,
    V < 0.081243, as colour-science does, so bt709_inverse_oetf(bt709_oetf(L)) = L
    for all L >= 0 (V in [0.081, 0.081243) has no exact preimage).
    """
    V = _f(V)
    knee = 1.099 * 0.018**0.45 - 0.099
    return np.where(V < knee, V / 4.5, ((np.maximum(V, 0.0) + 0.099) / 1.099) ** (1 / 0.45))


# ---------------------------------------------------------------------------
# Primaries: BT.709-6 Part 2 item 1.3, BT.2020-2 Table 3, BT.2087-0
# ---------------------------------------------------------------------------
D65_XY = (0.3127, 0.3290)
BT709_PRIMARIES_XY = ((0.640, 0.330), (0.300, 0.600), (0.150, 0.060))
BT2020_PRIMARIES_XY = ((0.708, 0.292), (0.170, 0.797), (0.131, 0.046))
#: Display-P3 primaries: the DCI-P3 primaries of SMPTE RP 431-2 with the D65 white point
#: of SMPTE EG 432-1 (Display P3, the colour space of Ultra HDR / phone photo JPEGs).
P3_PRIMARIES_XY = ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060))


def rgb_to_xyz_matrix(primaries_xy, white_xy=D65_XY):
    """Normalised primary matrix (SMPTE RP 177 eq. 1-3; BT.2087-0 Annex 1 step 1).

    Columns are the primaries' XYZ scaled so that RGB = (1, 1, 1) gives the white
    point with Y = 1.
    """
    xy = np.array(primaries_xy, dtype=np.float64)
    P = np.stack([xy[:, 0] / xy[:, 1], np.ones(3), (1 - xy[:, 0] - xy[:, 1]) / xy[:, 1]])
    wx, wy = white_xy
    W = np.array([wx / wy, 1.0, (1 - wx - wy) / wy])
    return P * np.linalg.solve(P, W)


#: Linear-light BT.709 RGB -> BT.2020 RGB (BT.2087-0 Annex 1, M = NPM_2020^-1 NPM_709;
#: rounded in the Recommendation to [[0.6274, 0.3293, 0.0433], [0.0691, 0.9195, 0.0114],
#: [0.0164, 0.0880, 0.8956]]).
BT709_TO_BT2020 = np.linalg.solve(rgb_to_xyz_matrix(BT2020_PRIMARIES_XY), rgb_to_xyz_matrix(BT709_PRIMARIES_XY))
#: Linear-light BT.2020 RGB -> BT.709 RGB (inverse of `BT709_TO_BT2020`).
BT2020_TO_BT709 = np.linalg.inv(BT709_TO_BT2020)
#: Linear-light Display-P3 RGB -> BT.709 RGB (SMPTE EG 432-1 D65 P3; NPM_709^-1 NPM_P3).
P3_TO_BT709 = np.linalg.solve(rgb_to_xyz_matrix(BT709_PRIMARIES_XY), rgb_to_xyz_matrix(P3_PRIMARIES_XY))
#: Linear-light Display-P3 RGB -> BT.2020 RGB (SMPTE EG 432-1 D65 P3; NPM_2020^-1 NPM_P3).
P3_TO_BT2020 = np.linalg.solve(rgb_to_xyz_matrix(BT2020_PRIMARIES_XY), rgb_to_xyz_matrix(P3_PRIMARIES_XY))
#: Linear-light BT.2020 RGB -> Display-P3 RGB (inverse of `P3_TO_BT2020`).
BT2020_TO_P3 = np.linalg.inv(P3_TO_BT2020)


def rgb709_to_rgb2020(rgb):
    """Linear BT.709 RGB (..., 3) -> linear BT.2020 RGB (BT.2087-0 Annex 1, step 2)."""
    return _f(rgb) @ BT709_TO_BT2020.T


def rgb2020_to_rgb709(rgb):
    """Linear BT.2020 RGB (..., 3) -> linear BT.709 RGB (out-of-gamut values not clipped)."""
    return _f(rgb) @ BT2020_TO_BT709.T


# ---------------------------------------------------------------------------
# Y'CbCr: BT.709-6 items 3.2-3.3, BT.2020-2 Table 4 (NCL), BT.601-7 item 2.5.1, SMPTE 240M-1999 4.2
# ---------------------------------------------------------------------------
KR_KB = {"bt709": (0.2126, 0.0722), "bt2020": (0.2627, 0.0593), "bt601": (0.299, 0.114), "smpte240m": (0.212, 0.087)}


def _ycbcr_matrix(matrix):
    kr, kb = KR_KB[matrix]
    kg = 1 - kr - kb
    # Y' = Kr R' + Kg G' + Kb B'; Cb = (B' - Y') / (2 (1 - Kb)); Cr = (R' - Y') / (2 (1 - Kr)).
    return np.array([
        [kr, kg, kb],
        [-kr / (2 * (1 - kb)), -kg / (2 * (1 - kb)), 0.5],
        [0.5, -kg / (2 * (1 - kr)), -kb / (2 * (1 - kr))],
    ])


def rgb_to_ycbcr(rgb, matrix="bt709"):
    """Non-linear R'G'B' (..., 3) -> float full-range Y'CbCr (BT.709-6 item 3.2-3.3 or
    BT.2020-2 Table 4 NCL): Y' in [0, 1], Cb, Cr in [-0.5, 0.5]."""
    return _f(rgb) @ _ycbcr_matrix(matrix).T


def ycbcr_to_rgb(ycbcr, matrix="bt709"):
    """Inverse of `rgb_to_ycbcr` (no clipping)."""
    return _f(ycbcr) @ np.linalg.inv(_ycbcr_matrix(matrix)).T


# ---------------------------------------------------------------------------
# Network I/O convention: Y'CbCr with chroma offset +0.5, all in [0, 1]
# ---------------------------------------------------------------------------
_CHROMA_OFFSET = np.array([0.0, 0.5, 0.5])


def sdr_rgb_to_model_yuv(rgb):
    """Gamma-encoded BT.709 R'G'B' [0, 1] -> BT.709 Y'CbCr (BT.709-6 item 3.2-3.3)
    with Cb, Cr + 0.5 (network input convention)."""
    return rgb_to_ycbcr(rgb, "bt709") + _CHROMA_OFFSET


def model_yuv_to_sdr_rgb(yuv):
    """Inverse of `sdr_rgb_to_model_yuv` (no clipping)."""
    return ycbcr_to_rgb(_f(yuv) - _CHROMA_OFFSET, "bt709")


def pq2020_rgb_to_model_yuv(rgb):
    """PQ-encoded BT.2020 R'G'B' [0, 1] -> BT.2020 NCL Y'CbCr (BT.2100-2 Table 6)
    with Cb, Cr + 0.5 (network target convention)."""
    return rgb_to_ycbcr(rgb, "bt2020") + _CHROMA_OFFSET


def model_yuv_to_pq2020_rgb(yuv):
    """Inverse of `pq2020_rgb_to_model_yuv`, result clipped to [0, 1]."""
    return np.clip(ycbcr_to_rgb(_f(yuv) - _CHROMA_OFFSET, "bt2020"), 0.0, 1.0)


def sdr_to_hdr10_baseline(rgb, white_nits=203.0, gamma=2.4):
    """Classical SDR-in-HDR10 mapping (ITU-R BT.2408: SDR white at HDR Reference White,
    203 cd/m2 = 58 % PQ, BT.2408 Table 1).

    SDR BT.709 R'G'B' [0, 1] -> linear by pure gamma (BT.1886, L_B = 0) x white_nits
    -> BT.709 to BT.2020 (BT.2087-0) -> PQ inverse EOTF (ST 2084) -> R'G'B' [0, 1].
    """
    linear = gamma_decode(np.clip(_f(rgb), 0.0, 1.0), gamma) * white_nits
    return pq_inverse_eotf(np.maximum(rgb709_to_rgb2020(linear), 0.0))


# ---------------------------------------------------------------------------
# Digital code values: BT.2100-2 Table 9 (BT.709-6 uses the same narrow-range formulas)
# ---------------------------------------------------------------------------
_DTYPES = {8: np.uint8, 10: np.uint16, 12: np.uint16, 16: np.uint16}


def _code_params(bits, full_range, kind):
    """Per-channel (scale, offset) so that D = Round(scale * E + offset), and the code clip range."""
    if bits not in _DTYPES:
        raise ValueError(f"bits must be one of {sorted(_DTYPES)}, got {bits}")
    if kind not in ("rgb", "ycbcr"):
        raise ValueError(f"kind must be 'rgb' or 'ycbcr', got {kind!r}")
    top = 2**bits - 1
    if full_range:
        # D = Round((2^n - 1) E), chroma D = Round((2^n - 1) E + 2^(n-1)); codes 0..2^n-1.
        scale = np.full(3, float(top))
        offset = np.array([0.0, 2 ** (bits - 1), 2 ** (bits - 1)]) if kind == "ycbcr" else np.zeros(3)
        lo, hi = 0, top
    else:
        # D = Round((219 E + 16) 2^(n-8)), chroma D = Round((224 E + 128) 2^(n-8));
        # codes 0..2^(n-8)-1 and 2^n-2^(n-8)..2^n-1 are reserved (timing reference).
        k = 2.0 ** (bits - 8)
        scale = k * (np.array([219.0, 224.0, 224.0]) if kind == "ycbcr" else np.full(3, 219.0))
        offset = k * (np.array([16.0, 128.0, 128.0]) if kind == "ycbcr" else np.full(3, 16.0))
        lo, hi = int(k), top - int(k)
    return scale, offset, lo, hi


def quantize(x, bits, full_range=True, kind="rgb"):
    """Float signal -> integer code values (BT.2100-2 Table 9).

    kind="rgb": E' in [0, 1]; kind="ycbcr": (..., 3) with Y' in [0, 1] and Cb, Cr
    in [-0.5, 0.5]. Full range: D = Round((2^n-1) E) (+ 2^(n-1) for chroma).
    Narrow range: D = Round((219 E + 16) 2^(n-8)) for RGB and Y',
    Round((224 E + 128) 2^(n-8)) for chroma, clipped to the video data range
    2^(n-8)..2^n-2^(n-8)-1 (e.g. 1..254 at 8 bit, 4..1019 at 10 bit).
    Round(x) = floor(x + 0.5). Returns uint8 for 8 bits, uint16 otherwise.
    For kind="rgb" any shape works; for "ycbcr" the last axis must be 3.
    """
    _, _, lo, hi = _code_params(bits, full_range, kind)
    codes = np.floor(code_values(x, bits, full_range, kind) + 0.5)
    return np.clip(codes, lo, hi).astype(_DTYPES[bits])


def code_values(x, bits, full_range=True, kind="rgb"):
    """The code values of `quantize` before Round and the clip: scale E + offset
    (BT.2100-2 Table 9), float64. The Deep SR-ITM reference scores its prediction
    as such unrounded 10-bit codes / 1023 (`test_yuv.m`)."""
    scale, offset, _, _ = _code_params(bits, full_range, kind)
    if kind == "rgb":
        scale, offset = scale[0], offset[0]
    return _f(x) * scale + offset


def dequantize(codes, bits, full_range=True, kind="rgb"):
    """Integer code values -> float signal, exact inverse of the `quantize` formulas
    (BT.2100-2 Table 9), returned as float64."""
    scale, offset, _, _ = _code_params(bits, full_range, kind)
    if kind == "rgb":
        scale, offset = scale[0], offset[0]
    return (_f(codes) - offset) / scale


# ---------------------------------------------------------------------------
# 4:2:0 chroma resampling
# ---------------------------------------------------------------------------
def chroma_444_to_420(c):
    """2x2 box average of a (..., H, W) chroma plane -> (..., ceil(H/2), ceil(W/2)).

    Odd H or W is first padded by replicating the last row/column. The resulting
    samples sit at the centre of each 2x2 block (ITU-T H.273 chroma sample
    location type 1, "centre"); the H.264/HEVC default (type 0) is left co-sited.
    """
    c = _f(c)
    H, W = c.shape[-2:]
    pad = [(0, 0)] * (c.ndim - 2) + [(0, H % 2), (0, W % 2)]
    c = np.pad(c, pad, mode="edge")
    h, w = c.shape[-2] // 2, c.shape[-1] // 2
    return c.reshape(c.shape[:-2] + (h, 2, w, 2)).mean(axis=(-3, -1))


def _bilinear_axis(n_out, n_in):
    # Half-pixel centres: output i samples input at (i + 0.5) / 2 - 0.5, clamped (edge replication).
    pos = np.clip((np.arange(n_out) + 0.5) / 2 - 0.5, 0, n_in - 1)
    i0 = np.floor(pos).astype(int)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, pos - i0


def chroma_420_to_444(c, height, width):
    """Bilinear 2x upsampling of a (..., h, w) plane with half-pixel centres (the
    inverse sampling grid of `chroma_444_to_420`), cropped to (..., height, width).

    Output row i reads input position (i + 0.5)/2 - 0.5 clamped to [0, h-1]; e.g.
    rows 0..3 of the output are c0, 0.75 c0 + 0.25 c1, 0.25 c0 + 0.75 c1, ...
    """
    c = _f(c)
    y0, y1, wy = _bilinear_axis(height, c.shape[-2])
    x0, x1, wx = _bilinear_axis(width, c.shape[-1])
    rows = c[..., y0, :] * (1 - wy)[:, None] + c[..., y1, :] * wy[:, None]
    return rows[..., x0] * (1 - wx) + rows[..., x1] * wx


# ---------------------------------------------------------------------------
# ICtCp: BT.2100-2 Table 7 (PQ)
# ---------------------------------------------------------------------------
#: Linear BT.2020 RGB -> LMS (BT.2100-2 Table 7, with crosstalk).
BT2100_RGB_TO_LMS = np.array([[1688, 2146, 262], [683, 2951, 462], [99, 309, 3688]]) / 4096
#: PQ L'M'S' -> ICtCp (BT.2100-2 Table 7).
BT2100_LMS_TO_ICTCP = np.array([[2048, 2048, 0], [6610, -13613, 7003], [17933, -17390, -543]]) / 4096


def rgb2020_to_ictcp(rgb_nits):
    """Linear BT.2020 RGB in cd/m2 (..., 3) -> ICtCp, PQ variant (BT.2100-2 Table 7):
    LMS = M_RGB->LMS RGB, L'M'S' = PQ^-1(LMS), ICtCp = M_LMS'->ICtCp L'M'S'."""
    lms = _f(rgb_nits) @ BT2100_RGB_TO_LMS.T
    return pq_inverse_eotf(lms) @ BT2100_LMS_TO_ICTCP.T


def ictcp_to_rgb2020(ictcp):
    """Inverse of `rgb2020_to_ictcp` (BT.2100-2 Table 7, PQ): ICtCp -> L'M'S' ->
    PQ EOTF -> LMS -> linear BT.2020 RGB in cd/m2 (not clipped)."""
    lms_p = _f(ictcp) @ np.linalg.inv(BT2100_LMS_TO_ICTCP).T
    return pq_eotf(lms_p) @ np.linalg.inv(BT2100_RGB_TO_LMS).T


# ---------------------------------------------------------------------------
# Mastering: ITU-R BT.2390-10 clause 5.4.1 EETF (highlight roll-off in PQ)
# ---------------------------------------------------------------------------
def bt2390_eetf(E, source_peak=10000.0, target_peak=1000.0):
    """EETF of ITU-R BT.2390-10 clause 5.4.1 with black levels 0: maps a PQ signal
    mastered up to `source_peak` cd/m2 to one that peaks at `target_peak`.

    E1 = E' / PQ(L_W); maxLum = PQ(L_max) / PQ(L_W); KS = 1.5 maxLum - 0.5;
    E2 = E1 below KS, else the Hermite spline
    P(E1) = (2T^3 - 3T^2 + 1) KS + (T^3 - 2T^2 + T)(1 - KS) + (-2T^3 + 3T^2) maxLum,
    T = (E1 - KS) / (1 - KS); E' out = E2 PQ(L_W). Identity when L_max >= L_W.
    """
    E = _f(E)
    pq_w = pq_inverse_eotf(source_peak)
    max_lum = pq_inverse_eotf(target_peak) / pq_w
    ks = 1.5 * max_lum - 0.5
    if ks >= 1.0:
        return E
    e1 = np.clip(E / pq_w, 0.0, 1.0)
    t = np.clip((e1 - ks) / (1 - ks), 0.0, 1.0)
    spline = (2 * t**3 - 3 * t**2 + 1) * ks + (t**3 - 2 * t**2 + t) * (1 - ks) + (-2 * t**3 + 3 * t**2) * max_lum
    return np.where(e1 < ks, e1, spline) * pq_w


def master_hdr10(nits2020, peak_nits=1000.0, source_peak=None):
    """Linear BT.2020 RGB in cd/m2 -> PQ R'G'B' of an HDR10 master that peaks at
    `peak_nits`: the BT.2390 EETF (`bt2390_eetf`) applied to max(R, G, B) in PQ, the
    three channels scaled by the same factor (hue and saturation kept), then the PQ
    inverse EOTF (ST 2084). `source_peak`: the brightest level the content holds
    (default: its max(R, G, B), at most 10000 cd/m2); no pixel exceeds `peak_nits`.
    """
    rgb = np.maximum(_f(nits2020), 0.0)
    m = rgb.max(axis=-1, keepdims=True)
    if source_peak is None:
        source_peak = float(min(m.max(initial=0.0), PQ_PEAK))
    source_peak = max(source_peak, peak_nits)
    m_in = np.minimum(m, source_peak)
    m_out = pq_eotf(bt2390_eetf(pq_inverse_eotf(m_in), source_peak, peak_nits))
    scale = np.where(m > 0, m_out / np.maximum(m, 1e-12), 0.0)
    return pq_inverse_eotf(np.minimum(rgb * scale, peak_nits))


def hdr10_preview(pq_rgb, peak_nits=1000.0, display_nits=250.0):
    """PQ BT.2020 R'G'B' -> 8-bit-ready sRGB R'G'B' in [0, 1] for an SDR screen: the
    BT.2390 EETF (`bt2390_eetf`) rolls highlights from `peak_nits` down to
    `display_nits`, which becomes the screen's white; BT.2020 -> BT.709 (clipped),
    sRGB encoding (IEC 61966-2-1). Highlights stay visible instead of clipping."""
    nits = pq_eotf(bt2390_eetf(np.clip(_f(pq_rgb), 0.0, 1.0), max(peak_nits, display_nits), display_nits))
    rgb709 = np.clip(rgb2020_to_rgb709(nits) / display_nits, 0.0, 1.0)
    return srgb_inverse_eotf(rgb709)
