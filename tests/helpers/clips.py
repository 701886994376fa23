"""SDR clips of real content for `sritm eval --video`, made from ../shared/data:

- `beachball_clip`: the 8 frames of the OpenEXR beachball CG shot, made HDR10 and then SDR as
  the training pairs are (`sritm_tf.data`: exposure for diffuse white at 203 cd/m2, BT.709 ->
  BT.2020, PQ; ITU-R BT.2446-1 Method A to SDR; bicubic downscale by 4), 512x388, H.264;
- `pan_clip`: a slow diagonal pan across a graded SDR master (ffmpeg's crop filter with a
  moving window, then its bicubic scale), 480x270, H.264; with `sampling=CAMERA`, the same pan
  sampled as a camera does (below).

Run `python -m tests.helpers.clips OUT_DIR` from the repository root to write all three.
"""
import os
import sys
import tempfile

import numpy as np

from tests.helpers.media import ffmpeg
from tests.helpers.paths import SHARED_DATA

BT709_TAGS = ("-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709")


def encode_sdr(pattern, path, rate=24, video_filter="null", *inputs):
    """The frames `pattern` (an image2 pattern, or one image with `inputs` "-loop 1") as 8-bit
    H.264 yuv420p, BT.709 matrix, limited range, tagged BT.709, crf 12."""
    ffmpeg(*inputs, "-framerate", rate, "-i", pattern, "-vf",
           f"{video_filter},scale=out_color_matrix=bt709:out_range=tv,format=yuv420p",
           "-c:v", "libx264", "-crf", 12, *BT709_TAGS, path)
    return path


def beachball_clip(path, scale=4):
    """The beachball shot as an SDR clip, each frame 1/`scale` of the EXR display window."""
    from sritm_tf import colour
    from sritm_tf.data import resize, sdr_synthesis
    from sritm_tf.data.sources import exposure_scale, read_exr
    from sritm_tf.imageio import write_image

    files = [SHARED_DATA / "exr" / "beachball" / f"singlepart.{i:04d}.exr" for i in range(1, 9)]
    exposure = None
    with tempfile.TemporaryDirectory() as folder:
        for i, file in enumerate(files):
            linear = read_exr(str(file), window="display")
            linear = linear[: linear.shape[0] // (2 * scale) * 2 * scale, : linear.shape[1] // (2 * scale) * 2 * scale]
            exposure = exposure_scale(linear) if exposure is None else exposure  # one exposure for the shot
            nits = np.clip(colour.rgb709_to_rgb2020(linear * exposure), 0.0, colour.PQ_PEAK)
            sdr = sdr_synthesis.synthesize_sdr(colour.pq_inverse_eotf(nits), "bt2446a")
            lr = colour.quantize(np.clip(resize.downscale(sdr, scale), 0.0, 1.0), 8)
            write_image(os.path.join(folder, f"{i:04d}.png"), lr)
        return encode_sdr(os.path.join(folder, "%04d.png"), path)


# The window's 2:1 downscale of `pan_clip`, with its response to a sine of 0.96, 1.25 and 1.5 x
# the new Nyquist frequency (the last two alias). BICUBIC: swscale's bicubic (B = 0, C = 0.6,
# kernel stretched 2x), a sharp downconversion: 0.53, 0.21, 0.04. CAMERA: ffmpeg's gblur
# (sigma 1 source pixel: lens and optical low-pass filter), then the mean of each 2x2 block (the
# pixel's aperture): 0.37, 0.23, 0.14, softer below Nyquist and no less aliased above it.
BICUBIC = "scale=480:270:flags=bicubic"
CAMERA = "gblur=sigma=1,scale=480:270:flags=area"


def pan_clip(path, frames=36, name="cosmos01650_sdr.png", sampling=BICUBIC):
    """A 960x540 window of a graded SDR master moving 3 px right and 1 px down a frame,
    downscaled to 480x270 by `sampling` (1.5 and 0.5 px a frame there)."""
    source = SHARED_DATA / "graded" / name
    return encode_sdr(str(source), path, 24, f"crop=960:540:x='500+3*n':y='250+n',{sampling}",
                      "-loop", 1, "-t", frames / 24)


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    os.makedirs(out, exist_ok=True)
    print(beachball_clip(os.path.join(out, "beachball_sdr.mp4")))
    print(pan_clip(os.path.join(out, "pan_sdr.mp4")))
    print(pan_clip(os.path.join(out, "pan_camera_sdr.mp4"), sampling=CAMERA))
