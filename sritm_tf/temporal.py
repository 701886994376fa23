"""Temporal stability of a conversion, with no reference: the flow-warped frame-to-frame error
of its output on an SDR clip (`sritm eval --video`).

For each pair of consecutive frames, the motion is measured on the SDR input: OpenCV's DIS
optical flow (Kroeger et al., "Fast Optical Flow using Dense Inverse Search", ECCV 2016;
`cv2.DISOpticalFlow_create`) on the LR BT.709 luma, both ways. A pixel is kept where the two
flows agree (the forward-backward check of Sundaram et al., ECCV 2010:
|b + f(x + b)|^2 <= 0.01 (|b|^2 + |f(x + b)|^2) + 0.5 px^2), its match lies inside the
frame, and it is off the motion boundaries (same paper: |grad b|^2 <= 0.01 |b|^2 + 0.002);
elsewhere it is occluded or uncovered, or its flow unsure, and masked. The backward flow,
scaled up to the output size, warps the previous output onto the current one (`cv2.remap`,
bilinear), and the error is the mean absolute difference of the two in ten-bit PQ codes (PQ
R'G'B' x 1023, unrounded, all three channels, kept pixels only). Mean absolute rather than RMS:
a global step of k codes scores k, and the few pixels the flow gets wrong weigh no more than
their share. The error of a clip is the mean over its pairs. It is also taken after
a Gaussian low-pass of both outputs (sigma in output pixels, `cv2.GaussianBlur`): fine grain
averages out there, a flicker of the whole picture or of a region does not.

A pair is a scene cut, and left out of the averages, where the luma histograms of the two SDR
frames are far apart (half the L1 distance of 64-bin histograms above 0.4) or fewer than half
of the pixels pass the forward-backward check (the two frames show different things).
"""
import itertools
import os

import numpy as np

CODES = 1023.0  # ten-bit PQ codes
SIGMAS = (0.0, 1.5, 4.0)  # output pixels; 0: full resolution
CUT_HISTOGRAM = 0.4  # half the L1 distance of the 64-bin luma histograms
CUT_CONSISTENT = 0.5  # least fraction of pixels that pass the forward-backward check
BT709_LUMA = np.array([0.2126, 0.7152, 0.0722])  # ITU-R BT.709-6 item 3.2


def luma8(rgb):
    """BT.709 luma of an SDR R'G'B' frame (uint8, or float in [0, 1], taken to 8-bit codes first)
    as uint8, which DIS needs."""
    rgb = np.asarray(rgb)
    codes = rgb if rgb.dtype == np.uint8 else np.clip(np.rint(rgb * 255.0), 0, 255)
    return np.rint(codes.astype(np.float32) @ BT709_LUMA.astype(np.float32)).astype(np.uint8)


def _remap(image, flow):
    """`image` sampled at x + flow(x) (bilinear, border replicated)."""
    import cv2

    height, width = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return cv2.remap(image, grid_x + flow[..., 0], grid_y + flow[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


class Motion:
    """The motion from one SDR frame to the next, measured on their LR luma.

    `flow`: the backward flow at `scale` x the frame size (for each pixel of the later frame,
    where it was in the earlier one, in output pixels); `mask`: bool, the pixels kept;
    `consistent`: the fraction of LR pixels that pass the check; `histogram`: the histogram
    distance; `cut`: whether the pair is a scene cut.
    """

    def __init__(self, previous, current, scale=1, dis=None):
        import cv2

        a, b = luma8(previous), luma8(current)
        if dis is None:
            dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        backward = dis.calc(b, a, None)  # current -> previous
        forward = dis.calc(a, b, None)  # previous -> current
        back_again = _remap(forward, backward)
        error = np.sum((backward + back_again) ** 2, axis=-1)
        bound = 0.01 * (np.sum(backward**2, axis=-1) + np.sum(back_again**2, axis=-1)) + 0.5
        height, width = a.shape
        x = np.arange(width)[None, :] + backward[..., 0]
        y = np.arange(height)[:, None] + backward[..., 1]
        inside = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
        gradient = sum(np.square(g) for g in np.gradient(backward, axis=(0, 1)))
        boundary = np.sum(gradient, axis=-1) > 0.01 * np.sum(backward**2, axis=-1) + 0.002
        mask = (error <= bound) & inside & ~boundary
        self.consistent = float(np.mean(error <= bound))
        ha, hb = (np.bincount(v.ravel() // 4, minlength=64) / v.size for v in (a, b))
        self.histogram = 0.5 * float(np.abs(ha - hb).sum())
        self.cut = self.histogram > CUT_HISTOGRAM or self.consistent < CUT_CONSISTENT
        size = (width * scale, height * scale)
        # cv2.resize puts pixel centres at (i + 0.5) * scale - 0.5, as the converters' upscaling does.
        self.flow = cv2.resize(backward, size, interpolation=cv2.INTER_LINEAR) * np.float32(scale)
        self.mask = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)


def low_pass(frame, sigma):
    """`frame` after a Gaussian of `sigma` pixels (borders reflected); sigma 0: unchanged."""
    import cv2

    if not sigma:
        return frame
    return cv2.GaussianBlur(frame, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def warped_error(previous, current, motion, sigma=0.0):
    """Mean absolute difference, in ten-bit PQ codes, between output `current` and output
    `previous` warped onto it by `motion`, over the pixels `motion` keeps, after a low-pass of
    `sigma` output pixels. NaN where no pixel is kept."""
    previous, current = (low_pass(np.asarray(f, np.float32), sigma) for f in (previous, current))
    if not motion.mask.any():
        return float("nan")
    difference = np.abs(current - _remap(previous, motion.flow))[motion.mask]
    return float(np.mean(difference)) * CODES


def measure(frames, converters, scale, sigmas=SIGMAS, progress=None):
    """The warped error of each converter's output on the SDR `frames`.

    Args:
        frames: iterable of SDR R'G'B' frames (uint8, or float in [0, 1]), in order.
        converters: {name: callable frame -> PQ R'G'B' float (scale x larger)}.
        scale: the output size over the input size.
        sigmas: the low-passes, in output pixels (0: none).
        progress: called after each frame, or None.

    Returns:
        {"errors": {name: {sigma: mean over the pairs used}}, "pairs": pairs used,
        "cuts": pairs left out as scene cuts, "frames": frames read}.
    """
    import cv2

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    sums = {name: {sigma: 0.0 for sigma in sigmas} for name in converters}
    previous, pairs, cuts, count = None, 0, 0, 0
    for frame in frames:
        outputs = {name: convert(frame) for name, convert in converters.items()}
        if previous is not None:
            motion = Motion(previous[0], frame, scale, dis)
            if motion.cut:
                cuts += 1
            else:
                pairs += 1
                for name, output in outputs.items():
                    for sigma in sigmas:
                        sums[name][sigma] += warped_error(previous[1][name], output, motion, sigma)
        previous = (frame, outputs)
        count += 1
        if progress:
            progress()
    errors = {name: {sigma: total / pairs if pairs else float("nan") for sigma, total in values.items()}
              for name, values in sums.items()}
    return {"errors": errors, "pairs": pairs, "cuts": cuts, "frames": count}


def ratio(a, b):
    """a / b; NaN where b is 0."""
    return a / b if b else float("nan")


def open_clip(path):
    """The frame source of the SDR video `path` (`convert.open_source`); InputError for a raw
    .yuv (no frame size here) or a single frame (a still image), MissingFileError for no such file."""
    from sritm_tf import convert
    from sritm_tf.errors import InputError

    path = os.fspath(path)
    convert.check_input(path)
    if path.lower().endswith(".yuv"):
        raise InputError(f"{path}: raw .yuv has no frame size; --video needs a video file ffmpeg decodes")
    source = convert.open_source(path)
    if source.frame_count == 1:
        raise InputError(f"{path}: one frame, not a video clip; --video needs at least 2 frames")
    return source


def measure_clip(path, converters, scale, frames=None, progress=True):
    """`measure` on the first `frames` frames (None: all) of the SDR video `path`, decoded by
    `open_clip`, with a progress bar (tqdm, on stderr)."""
    from tqdm.auto import tqdm

    source = open_clip(path)
    total = source.frame_count if frames is None else min(frames, source.frame_count or frames)
    with tqdm(total=total, unit="frame", desc=os.path.basename(path), disable=not progress) as bar:
        return measure((rgb for rgb, _ in itertools.islice(source, frames)), converters, scale,
                       progress=bar.update)


def format_table(result, first="network", second="baseline"):
    """The errors as a text table: a row per converter and their ratio `first` / `second`,
    a column per low-pass, then the pairs used and the cuts left out."""
    errors = result["errors"]
    sigmas = list(next(iter(errors.values())))
    header = ["warped error (10-bit PQ codes, mean abs)"] + [
        "full res" if not s else f"sigma {s:g}" for s in sigmas]
    rows = [[name] + [f"{errors[name][s]:.3f}" for s in sigmas] for name in errors]
    if first in errors and second in errors:
        rows.append([f"ratio {first}/{second}"] + [f"{ratio(errors[first][s], errors[second][s]):.3f}" for s in sigmas])
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in [header] + rows]
    lines.append(f"pairs used: {result['pairs']}, scene cuts skipped: {result['cuts']} "
                 f"({result['frames']} frames)")
    return "\n".join(lines)
