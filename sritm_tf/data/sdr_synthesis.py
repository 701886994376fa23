"""HDR10 -> SDR conversion operators, to make SDR inputs for sources without an SDR master.

Every operator takes PQ-encoded BT.2020 R'G'B' in [0, 1] (..., 3) and returns
gamma-encoded BT.709 R'G'B' in [0, 1] (BT.1886 with L_B = 0: V = L^(1/2.4)),
ready to be quantised to 8 bits. Wide-gamut colours are brought into BT.709 by
clipping linear light to [0, 1].

Operators (select by name with `OPERATORS` / `synthesize_sdr`):
  * "bt2446a": ITU-R BT.2446-1 Method A (HDR-to-SDR tone mapping, clause 4.2 / Annex);
  * "hable":   J. Hable's filmic curve ("Uncharted 2", GDC 2010), per channel in BT.709;
  * "knee":    SDR anchored at a reference white: linear light relative to `white_nits`
               kept up to a knee, then a logarithmic shoulder (the shape of BT.2446-1
               Method C's tone curve), on luminance or per channel; knee=1 is a hard clip,
               the exact inverse of the classical BT.2408 mapping below white; `black`
               grades it for a BT.1886 display with that black level (a toe).
`sample_params(name, rng)` draws randomised parameters for augmentation.
"""
import numpy as np

from sritm_tf import colour

SDR_GAMMA = 2.4


def _to_bt709_gamma(rgb2020_linear, black=0.0):
    """Linear BT.2020 [0, 1] -> BT.709 by matrix (BT.2087 inverse), clip to [0, 1],
    then the inverse BT.1886 EOTF with black level `black` (L_B / L_W; 0: gamma 1/2.4)."""
    rgb709 = np.clip(colour.rgb2020_to_rgb709(rgb2020_linear), 0.0, 1.0)
    return _encode(rgb709, black)


def _encode(linear, black=0.0):
    """Relative display light [0, 1] -> SDR code values for a BT.1886 display with
    black level `black` = L_B / L_W (Annex 1; black=0 is gamma 1/2.4), clipped to
    [0, 1]: light below the black level goes to code 0."""
    return np.clip(colour.bt1886_inverse_eotf(linear, 1.0, black), 0.0, 1.0)


# ---------------------------------------------------------------------------
# ITU-R BT.2446-1 Method A
# ---------------------------------------------------------------------------
def bt2446a_rho(luminance):
    """rho = 1 + 32 (L / 10000)^(1/2.4) (BT.2446-1 Method A, steps 1 and 3)."""
    return 1 + 32 * (luminance / 10000.0) ** (1 / 2.4)


def bt2446a_tone_curve(y_p):
    """Knee curve of BT.2446-1 Method A, step 2 (perceptually linear domain):

    Y'c = 1.077 Y'p                             for 0 <= Y'p <= 0.7399
    Y'c = -1.1510 Y'p^2 + 2.7811 Y'p - 0.6302   for 0.7399 < Y'p < 0.9909
    Y'c = 0.5 Y'p + 0.5                         for 0.9909 <= Y'p <= 1
    """
    y_p = np.asarray(y_p, dtype=np.float64)
    return np.where(
        y_p <= 0.7399,
        1.077 * y_p,
        np.where(y_p < 0.9909, -1.1510 * y_p**2 + 2.7811 * y_p - 0.6302, 0.5 * y_p + 0.5),
    )


def bt2446a_luma(y_hdr, l_hdr=1000.0, l_sdr=100.0):
    """Luma tone mapping Y'_HDR -> Y'_SDR of BT.2446-1 Method A, steps 1-3.

    Step 1: Y'p = log(1 + (rho_HDR - 1) Y'_HDR) / log(rho_HDR);
    step 2: Y'c = tone curve(Y'p);
    step 3: Y'_SDR = (rho_SDR^Y'c - 1) / (rho_SDR - 1).
    """
    rho_hdr, rho_sdr = bt2446a_rho(l_hdr), bt2446a_rho(l_sdr)
    y_p = np.log1p((rho_hdr - 1) * np.clip(y_hdr, 0.0, 1.0)) / np.log(rho_hdr)
    y_c = bt2446a_tone_curve(y_p)
    return (rho_sdr**y_c - 1) / (rho_sdr - 1)


def bt2446a(hdr_pq, l_hdr=1000.0, l_sdr=100.0):
    """ITU-R BT.2446-1 Method A: PQ BT.2020 R'G'B' -> gamma BT.709 R'G'B'.

    Input preparation: linear display light from the PQ EOTF (ST 2084), normalised
    so that L_HDR cd/m2 is 1 (brighter values clipped), then R'G'B' = RGB^(1/2.4).
    Y'_HDR = 0.2627 R' + 0.6780 G' + 0.0593 B' (BT.2020);
    luma tone mapping (`bt2446a_luma`);
    colour correction: f = Y'_SDR / (1.1 Y'_HDR), Cb_TMO = f Cb, Cr_TMO = f Cr,
    Y'_TMO = Y'_SDR - max(0.1 Cr_TMO, 0), with Cb = (B' - Y') / 1.8814,
    Cr = (R' - Y') / 1.4746;
    back to BT.2020 R'G'B' (gamma 2.4), then BT.2020 -> BT.709 by clipping.
    """
    linear = np.clip(colour.pq_eotf(hdr_pq) / l_hdr, 0.0, 1.0)
    rgb_p = linear ** (1 / 2.4)
    ycbcr = colour.rgb_to_ycbcr(rgb_p, "bt2020")
    y_hdr, cb, cr = ycbcr[..., 0], ycbcr[..., 1], ycbcr[..., 2]
    y_sdr = bt2446a_luma(y_hdr, l_hdr, l_sdr)
    f = np.where(y_hdr > 0, y_sdr / (1.1 * np.maximum(y_hdr, 1e-12)), 0.0)
    cb_tmo, cr_tmo = f * cb, f * cr
    y_tmo = y_sdr - np.maximum(0.1 * cr_tmo, 0.0)
    rgb_sdr_p = colour.ycbcr_to_rgb(np.stack([y_tmo, cb_tmo, cr_tmo], axis=-1), "bt2020")
    return _to_bt709_gamma(colour.gamma_decode(np.clip(rgb_sdr_p, 0.0, 1.0), 2.4))


# ---------------------------------------------------------------------------
# Hable filmic
# ---------------------------------------------------------------------------
def hable_curve(x, a=0.15, b=0.50, c=0.10, d=0.20, e=0.02, f=0.30):
    """Hable's filmic curve: ((x(ax + cb) + de) / (x(ax + b) + df)) - e/f."""
    return (x * (a * x + c * b) + d * e) / (x * (a * x + b) + d * f) - e / f


def hable(hdr_pq, white_nits=203.0, exposure=2.0, white_point=11.2):
    """Hable filmic tone mapping: PQ BT.2020 R'G'B' -> gamma BT.709 R'G'B'.

    Linear light (cd/m2) -> BT.709 (negatives clipped) -> x = L / white_nits * exposure
    -> hable_curve(x) / hable_curve(white_point), per channel -> gamma 1/2.4.
    """
    nits = colour.rgb2020_to_rgb709(colour.pq_eotf(hdr_pq))
    x = np.maximum(nits, 0.0) / white_nits * exposure
    mapped = hable_curve(x) / hable_curve(white_point)
    return colour.gamma_encode(np.clip(mapped, 0.0, 1.0), SDR_GAMMA)


# ---------------------------------------------------------------------------
# White-anchored knee
# ---------------------------------------------------------------------------
def knee_curve(x, knee=0.8):
    """x for x <= knee, knee (1 + ln(x / knee)) above (slope 1 at the knee), clipped
    to [0, 1]: linear then logarithmic, as BT.2446-1 Method C's tone curve."""
    x = np.maximum(np.asarray(x, np.float64), 0.0)
    shoulder = knee * (1 + np.log(np.maximum(x, knee) / knee))
    return np.clip(np.where(x <= knee, x, shoulder), 0.0, 1.0)


def knee(hdr_pq, white_nits=203.0, knee=0.8, per_channel=False, black=0.0):
    """PQ BT.2020 R'G'B' -> gamma BT.709 R'G'B' with SDR white at `white_nits`.

    Linear light / white_nits; the knee curve (`knee_curve`) applied to BT.2020
    luminance with R:G:B kept, or (`per_channel`) to each BT.709 channel; then
    BT.2020 -> BT.709 with clipping and the inverse BT.1886 EOTF. With black=0
    (gamma 1/2.4) this is, below the knee, the exact inverse of
    `colour.sdr_to_hdr10_baseline(sdr, white_nits)`.

    `black` = L_B / L_W: the SDR graded on a BT.1886 display with that black level
    (Annex 1, L = a (V + b)^2.4), so the light the colourist saw is the HDR's. Read
    back at gamma 2.4 (L_B = 0), as the classical mapping does, such an SDR has a
    toe: its shadows come out darker than the HDR grade's, and everything below
    L_B is crushed to code 0.
    """
    rel = np.maximum(colour.pq_eotf(hdr_pq), 0.0) / white_nits
    if per_channel:
        rgb709 = knee_curve(colour.rgb2020_to_rgb709(rel), knee)
        return _encode(np.clip(rgb709, 0.0, 1.0), black)
    luminance = rel @ colour.HLG_WEIGHTS
    gain = np.where(luminance > 0, knee_curve(luminance, knee) / np.maximum(luminance, 1e-12), 0.0)
    return _to_bt709_gamma(rel * gain[..., None], black)


OPERATORS = {"bt2446a": bt2446a, "hable": hable, "knee": knee}

DEFAULT_PARAMS = {
    "bt2446a": {"l_hdr": 1000.0, "l_sdr": 100.0},
    "hable": {"white_nits": 203.0, "exposure": 2.0, "white_point": 11.2},
    "knee": {"white_nits": 203.0, "knee": 0.8, "per_channel": False, "black": 0.0},
}


# SDR mastering-display black levels (L_B / L_W) drawn for half of the knee pairs:
# 0.001-0.03 cd/m2 under a 100 cd/m2 white, OLED to good LCD grading monitors; the
# other half is graded at L_B = 0 (as phone cameras' SDR/HDR pairs are).
KNEE_BLACK_RANGE = (1e-5, 3e-4)
KNEE_BLACK_PROB = 0.5
# Knee of the tone curve (x diffuse white, log-uniform) and the share of per-channel
# curves: fitted to the real pairs (`training/measure_toe.py --fit`), every grade,
# film and phone, has its shoulder start at 0.15-0.25 of white, five of six on
# luminance; the range reaches up to 1.0 (no shoulder below white) so both are seen.
KNEE_RANGE = (0.15, 1.0)
KNEE_PER_CHANNEL_PROB = 0.2


def log_uniform(rng, low, high):
    """A float drawn from `rng` uniformly in log(low)..log(high)."""
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def sample_params(name, rng):
    """Randomised operator parameters for augmentation (log-uniform ranges)."""
    if name == "bt2446a":
        return {"l_hdr": log_uniform(rng, 500, 2000), "l_sdr": 100.0}
    if name == "hable":
        return {"white_nits": 203.0, "exposure": log_uniform(rng, 1.0, 4.0), "white_point": log_uniform(rng, 4.0, 16.0)}
    if name == "knee":
        black = log_uniform(rng, *KNEE_BLACK_RANGE) if rng.random() < KNEE_BLACK_PROB else 0.0
        return {"white_nits": 203.0, "knee": log_uniform(rng, *KNEE_RANGE),
                "per_channel": bool(rng.random() < KNEE_PER_CHANNEL_PROB), "black": black}
    raise ValueError(f"unknown operator {name!r}; choose from {sorted(OPERATORS)}")


def synthesize_sdr(hdr_pq, name="bt2446a", params=None):
    """Apply operator `name` (with `params`, default `DEFAULT_PARAMS[name]`): PQ 2020 -> gamma 709."""
    if name not in OPERATORS:
        raise ValueError(f"unknown operator {name!r}; choose from {sorted(OPERATORS)}")
    return OPERATORS[name](hdr_pq, **(params if params is not None else DEFAULT_PARAMS[name]))
