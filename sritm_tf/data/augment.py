"""Training pairs synthesised on the fly from scene-linear HDR, mastered like HDR10.

A scene (linear BT.709 RGB, 1.0 = diffuse white, see `sources.exposure_scale`)
becomes one training pair per draw:

  1. a random crop, flipped / rotated;
  2. exposure jitter, then BT.709 -> BT.2020 (BT.2087) at a random diffuse white
     W in `WHITE_RANGE` cd/m2 (the model's classical skip gets the same W);
  3. colour augmentation in ICtCp (BT.2100-2 Table 7): hue rotation and
     saturation change, so saturated colours of every hue, including ones outside
     BT.709 that the SDR clips, are in the training set; a tenth of the pairs are
     made neutral grey; then every colour is limited to the P3-D65 gamut
     (`limit_to_p3`), as on the mastering displays HDR10 is graded on;
  4. the HDR10 target: BT.2390 EETF roll-off to the mastering peak
     (`colour.master_hdr10`, default 1000 cd/m2), PQ;
  5. the SDR input from that master with a white-anchored operator
     (`sdr_synthesis.knee`, knee 0.15-1.0 of white, mostly on luminance; half of the
     pairs graded for a BT.1886 display with a black level, which gives the SDR the
     toe of real SDR grades);
  6. for a fifth of the pairs, SDR graphics keyed over both (`overlay_graphics`:
     boxes, bars, text), their HDR the classical conversion of their SDR colour;
  7. MATLAB-style bicubic downscale (`resize.downscale`), 8 bits.

Numpy only (no TensorFlow), so it feeds any Keras backend: `sample_batch` gives
({"sdr_yuv", "white_nits"}-ready arrays, hdr_yuv) for the network built with
`white_input=True` (`sritm train --synthetic` runs it in worker processes, `sritm_tf.data.scenes`).
"""
import numpy as np

from sritm_tf import colour
from sritm_tf.data import resize, sdr_synthesis

WHITE_RANGE = (100.0, 500.0)  # cd/m2, diffuse white of the HDR target (log-uniform)
PEAK_NITS = 1000.0
GREY_PROB = 0.1  # share of pairs made neutral (every pixel grey)
GRAPHICS_PROB = 0.2  # share of pairs with SDR graphics keyed over them
MASTERING_GAMUT_P3 = True  # targets limited to P3-D65 (`limit_to_p3`)
_GLYPHS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:-"


def rotate_hue(nits2020, degrees=0.0, saturation=1.0):
    """Rotates the hue of linear BT.2020 RGB (cd/m2) by `degrees` and scales its
    chroma by `saturation` in ICtCp (BT.2100-2 Table 7); I (intensity) is kept.
    Colours pushed outside BT.2020 are clipped to it (negative linear -> 0)."""
    ictcp = colour.rgb2020_to_ictcp(np.maximum(nits2020, 0.0))
    a = np.deg2rad(degrees)
    ct, cp = ictcp[..., 1], ictcp[..., 2]
    rot = np.stack([ictcp[..., 0],
                    saturation * (np.cos(a) * ct - np.sin(a) * cp),
                    saturation * (np.sin(a) * ct + np.cos(a) * cp)], axis=-1)
    return np.maximum(colour.ictcp_to_rgb2020(rot), 0.0)


def limit_to_p3(nits2020):
    """Linear BT.2020 RGB limited to the P3-D65 gamut (SMPTE EG 432-1 primaries; negative
    P3 components -> 0, which shifts an out-of-gamut colour's hue and luminance slightly),
    as a grade made on a P3 mastering display is: HDR10 travels in a BT.2020 container
    (BT.2100-2) but is graded on P3 monitors (the SMPTE ST 2086 mastering display primaries
    of HDR10 releases are typically P3-D65). The real HDR10 masters we validate on
    (`../shared/data/graded`, the gain-map photos) have no pixel outside P3 (0.00 %,
    `training/measure_toe.py --gamut`), while hue and saturation augmentation pushed 4 % of
    the training pixels outside it: trained on those, the network extended colours that the
    SDR clips (outside BT.709) further than real grades do."""
    p3 = np.maximum(np.asarray(nits2020) @ colour.BT2020_TO_P3.T, 0.0)
    return p3 @ colour.P3_TO_BT2020.T


def source_peak(scene709):
    """Brightest level of a scene relative to its diffuse white (99.99th percentile of
    max(R, G, B)): with the white level, the L_W of the mastering EETF."""
    return float(np.percentile(np.max(scene709, axis=-1), 99.99))


def random_geometry(patch, rng):
    """Random flip / 90-degree rotation of an (H, W, C) patch."""
    patch = np.rot90(patch, int(rng.integers(4)))
    return patch[:, ::-1] if rng.random() < 0.5 else patch


def make_pair(scene709, rng, scale, white_nits=None, peak_nits=PEAK_NITS, colour_prob=0.7, scene_peak=None,
              graphics_prob=GRAPHICS_PROB):
    """One training pair from a scene-linear BT.709 patch (H, W multiples of `scale`).

    Returns (LR SDR BT.709 R'G'B' uint8 (H/s, W/s, 3), HR PQ BT.2020 R'G'B' float
    (H, W, 3), white level cd/m2). `scene_peak`: the whole scene's relative peak
    (for a mastering curve shared by all patches of a scene; default: the patch's). `graphics_prob`:
    the chance of SDR graphics keyed over the pair (`overlay_graphics`).
    """
    white = white_nits or sdr_synthesis.log_uniform(rng, *WHITE_RANGE)
    exposure = sdr_synthesis.log_uniform(rng, 0.7, 1.4)
    nits = np.maximum(colour.rgb709_to_rgb2020(scene709 * exposure * white), 0.0)
    draw = rng.random()
    if draw < GREY_PROB:  # neutral scenes teach that grey stays grey
        nits = np.repeat(nits @ colour.HLG_WEIGHTS[:, None], 3, axis=-1)
    elif draw < GREY_PROB + colour_prob:
        nits = rotate_hue(nits, rng.uniform(0, 360), sdr_synthesis.log_uniform(rng, 0.7, 1.6))
    if MASTERING_GAMUT_P3:
        nits = limit_to_p3(nits)
    peak = None if scene_peak is None else min(scene_peak * exposure * white, colour.PQ_PEAK)
    hdr_pq = colour.master_hdr10(nits, peak_nits, peak)
    params = sdr_synthesis.sample_params("knee", rng)
    sdr = sdr_synthesis.knee(hdr_pq, **{**params, "white_nits": white})
    if rng.random() < graphics_prob:
        sdr, hdr_pq = overlay_graphics(sdr, hdr_pq, white, rng)
    lr = colour.quantize(np.clip(resize.downscale(sdr, scale), 0.0, 1.0), 8).astype(np.uint8)
    return lr, hdr_pq, white


def overlay_graphics(sdr, hdr_pq, white, rng):
    """SDR graphics (captions, logos, bars) keyed over an HR pair, placed in the HDR
    as SDR graphics are placed in an HDR programme: by the classical display-light
    conversion of their SDR colour at the pair's white, whatever the grade of the
    picture beneath (BT.2408-7 clause 5: SDR 100 % at HDR Reference White, 203 cd/m2
    when `white` is 203). So the network learns that flat, hard-edged SDR white is
    graphics white, not a clipped highlight to expand.

    One to three shapes, each a box or bar, or a line of text (`cv2.putText`), in one
    flat colour: half neutral (white, or a grey from 60 % up), half random R'G'B'.
    Returns new (SDR R'G'B', PQ BT.2020 R'G'B') arrays."""
    import cv2

    sdr, hdr_pq = sdr.copy(), hdr_pq.copy()
    h, w = sdr.shape[:2]
    for _ in range(int(rng.integers(1, 4))):
        if rng.random() < 0.5:
            grey = 1.0 if rng.random() < 0.5 else rng.uniform(0.6, 1.0)
            rgb = np.full(3, grey)
        else:
            rgb = rng.random(3)
        mask = np.zeros((h, w), np.uint8)
        if rng.random() < 0.5:
            y0, y1 = np.sort(rng.integers(0, h + 1, 2))
            x0, x1 = np.sort(rng.integers(0, w + 1, 2))
            mask[y0:y1 + 2, x0:x1 + 2] = 1  # at least 2 pixels each way
        else:
            text = "".join(rng.choice(list(_GLYPHS), int(rng.integers(2, 12))))
            size = rng.uniform(0.15, 1.2) * min(h, w) / 40  # capitals 22 px per unit: 8-66 % of the side
            org = (int(rng.integers(-w // 4, w // 2)), int(rng.integers(h // 4, h + 1)))
            cv2.putText(mask, text, org, cv2.FONT_HERSHEY_SIMPLEX, size, 1, int(rng.integers(1, 4)))
        on = mask.astype(bool)
        sdr[on] = rgb
        hdr_pq[on] = colour.sdr_to_hdr10_baseline(rgb, white)
    return sdr, hdr_pq


def sample_batch(scenes, peaks, rng, batch_size, lr_patch, scale, graphics_prob=GRAPHICS_PROB):
    """A batch of pairs from random crops of `scenes` (list of (H, W, 3) relative
    linear BT.709) with relative `peaks`: (sdr_yuv (N, p, p, 3), white (N, 1),
    hdr_yuv (N, sp, sp, 3)) float32, in the network's Y'CbCr convention. `graphics_prob`: as
    in `make_pair`."""
    hr = lr_patch * scale
    xs, ws, ys = [], [], []
    for _ in range(batch_size):
        i = int(rng.integers(len(scenes)))
        scene = scenes[i]
        y0 = int(rng.integers(scene.shape[0] - hr + 1))
        x0 = int(rng.integers(scene.shape[1] - hr + 1))
        patch = random_geometry(scene[y0:y0 + hr, x0:x0 + hr], rng).astype(np.float64)
        lr, hdr_pq, white = make_pair(patch, rng, scale, scene_peak=peaks[i], graphics_prob=graphics_prob)
        xs.append(colour.sdr_rgb_to_model_yuv(lr / 255.0))
        ys.append(colour.pq2020_rgb_to_model_yuv(colour.dequantize(colour.quantize(hdr_pq, 10), 10)))
        ws.append([white])
    f32 = lambda a: np.asarray(a, np.float32)
    return f32(xs), f32(ws), f32(ys)


SCENE_STEPS_PER_STOP = 256


def encode_scene(scene709):
    """Relative linear RGB -> uint16 log2 codes, 1/256 stop apart (0.27 %, finer than
    a 10-bit PQ step) from 2^-24 up: a compact store that PNG compresses."""
    log = np.log2(np.maximum(scene709, 2.0**-24)) + 24
    return np.clip(np.round(log * SCENE_STEPS_PER_STOP), 0, 65535).astype(np.uint16)


def decode_scene(codes):
    """Inverse of `encode_scene` (codes of 0 decode to 0)."""
    log = codes.astype(np.float32) / SCENE_STEPS_PER_STOP - 24
    return np.where(codes > 0, 2.0**log, 0.0).astype(np.float32)
