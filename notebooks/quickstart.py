# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Quick start: one SDR frame to HDR10
#
# Load the model, convert a small SDR frame to HDR10 at twice the resolution, and compare it with
# the classical mapping (`colour.sdr_to_hdr10_baseline` after bicubic upscaling: SDR white placed at
# 203 cd/m2, ITU-R BT.2408). The comparison uses three views: SDR previews, a luminance heat map in
# cd/m2 and the histogram of luminance.

# %%
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

from sritm_tf import colour, convert, plotting

# %% [markdown]
# ## The model and the input frame
#
# `plotting.sample_inputs()` loads the bundled trained x2 weights (`sritm_tf.load_model(scale=2)`,
# see MODEL_CARD.md: a `keras.Model`, the same network `sritm convert` runs) and
# the bundled sample `sritm_tf/samples/sample_sdr.png`: 8-bit BT.709 R'G'B', 240x136, made from
# `Desk.exr` (a stained-glass window above a dark desk), which the bundled weights never saw in
# training. The network takes it as full-range BT.709 Y'CbCr with chroma + 0.5 (`sdr_yuv`).

# %%
model, sdr, sdr_yuv = plotting.sample_inputs(scale=2)
display(Markdown(f"`{model.name}`, {model.count_params():,} parameters: bundled trained weights; input {sdr.shape}."))

# %% [markdown]
# ## Convert
#
# The network returns BT.2020 Y'CbCr of PQ R'G'B' (chroma + 0.5) at twice the size;
# `colour.model_yuv_to_pq2020_rgb` turns it into PQ R'G'B' in [0, 1]. The baseline is the one
# `sritm convert --baseline` runs (`convert.FrameConverter(baseline=True)`): bicubic upscaling
# (the network's own bicubic skip, `convert.bicubic_upscale`), then SDR placed in HDR10 with
# white at 203 cd/m2 (`colour.sdr_to_hdr10_baseline`), with no learning.

# %%
height, width = sdr.shape[:2]
prediction = colour.model_yuv_to_pq2020_rgb(model.predict(sdr_yuv[None], verbose=0)[0])
baseline = convert.FrameConverter(scale=2, baseline=True)(sdr)
nits = {"baseline (SDR in HDR10 container)": plotting.luminance_nits(baseline),
        "Deep SR-ITM": plotting.luminance_nits(prediction)}
for label, values in nits.items():
    p50, p99 = np.percentile(values, [50, 99])
    print(f"{label:40s} median {p50:7.1f}  99th percentile {p99:7.1f}  max {values.max():7.1f} cd/m2")

# %% [markdown]
# ## Side-by-side previews
#
# The HDR10 images are shown tone-mapped to an SDR screen (`colour.hdr10_preview`): the BT.2390
# EETF rolls highlights from 1000 cd/m2 down to a 250 cd/m2 screen white instead of clipping them,
# then BT.2020 to BT.709 primaries and sRGB encoding. Highlights above SDR white stay visible as
# brighter, less saturated tones; the heat map below gives their luminance.

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 3.4), layout="constrained")
plotting.show_image(axes[0], sdr, f"SDR input, {width}x{height}")
plotting.show_image(axes[1], colour.hdr10_preview(baseline), f"baseline, {2 * width}x{2 * height}")
plotting.show_image(axes[2], colour.hdr10_preview(prediction), "Deep SR-ITM")
fig.suptitle("SDR previews (BT.2390 EETF, 1000 -> 250 cd/m2, BT.709, sRGB)")
plotting.save_figure(fig, "previews")
plt.show()

# %% [markdown]
# ## Luminance heat map (cd/m2, log scale)

# %%
fig, axes = plt.subplots(1, 2, figsize=(13, 3.4), layout="constrained")
for ax, (label, values) in zip(axes, nits.items()):
    plotting.show_nits(ax, values, label)
fig.suptitle("Display luminance of the HDR10 images")
plotting.save_figure(fig, "luminance_heatmap")
plt.show()

# %% [markdown]
# ## Histogram of luminance
#
# The baseline cannot go above 203 cd/m2 (SDR white); an inverse tone-mapping network is expected
# to spread highlights above it. Bins are log-spaced, ten per decade from 0.01 to 10,000 cd/m2;
# darker pixels count in the first bin.

# %%
fig, ax = plt.subplots(figsize=(8, 3.6), layout="constrained")
plotting.plot_nits_histograms(ax, nits)
ax.axvline(203, color="gray", linestyle="--", linewidth=1, label="SDR reference white, 203 cd/m2")
ax.legend()
ax.set_title("Luminance histogram")
plotting.save_figure(fig, "nits_histogram")
plt.show()
