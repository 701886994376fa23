"""Writes the notebooks of this folder with nbformat, without outputs.

    python notebooks/_make_notebooks.py

Edit the cells here, not in the .ipynb files, and run this again: the three
notebooks share their set-up cells, and the files stay free of outputs and
execution counts. Figures go to the folder named by the environment variable
SRITM_FIGURES when it is set (tests/test_notebooks.py sets it).
"""
import os

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = os.path.dirname(os.path.abspath(__file__))

IMPORTS = """\
import os

import keras
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

import sritm_tf
from sritm_tf import colour, imageio, plotting, pretrained"""

MODEL_MD = """\
## The model

`sritm_tf.load_model(scale=2)` loads the bundled trained x2 weights (see the model card in the
README): a `keras.Model`, the same network `sritm convert` runs."""

MODEL = """\
model = sritm_tf.load_model(scale=2)
display(Markdown(f"`{model.name}`, {model.count_params():,} parameters: bundled trained weights."))"""

FRAME_MD = """\
## The input frame

The bundled sample `sritm_tf/samples/sample_sdr.png`: 8-bit BT.709 R'G'B', 240x136, made from
`Desk.exr` (a stained-glass window above a dark desk), which the bundled weights never saw in
training. The network takes it as full-range BT.709 Y'CbCr with chroma + 0.5."""

FRAME = """\
frame_path = pretrained.sample_path()
sdr = imageio.read_sdr_image(frame_path).astype(np.float32) / 255  # BT.709 R'G'B' in [0, 1]
sdr_yuv = colour.sdr_rgb_to_model_yuv(sdr).astype(np.float32)
print(os.path.basename(frame_path), sdr.shape)"""


def setup_cells():
    """The cells every notebook starts with: imports, the model, the input frame."""
    return [new_code_cell(IMPORTS), new_markdown_cell(MODEL_MD), new_code_cell(MODEL),
            new_markdown_cell(FRAME_MD), new_code_cell(FRAME)]


def modulation_maps():
    return [
        new_markdown_cell("""\
# Decomposition and modulation maps (Deep SR-ITM, Fig. 6)

Deep SR-ITM splits its input into a base layer (self-guided filter, Eq. 1) and a detail layer
(I / I_b, Eq. 2), and runs one pass on each. In the ResModBlocks of the base pass (RMB) and the
ResSkipModBlocks of the detail pass (RSMB), the residual is multiplied element-wise by a
modulation map computed from the pass input (Eq. 5), which makes each block's operation vary
over the image. This notebook shows the decomposition and the modulation maps of the first such
block of each pass, RMB_1 and RSMB_1: three channels (those with the largest spatial spread)
and the mean over all 64 channels, each with its own colour bar spanning the map's 1st to 99th
percentiles (the thin bright or dark frame at the borders comes from the zero padding of the
convolutions)."""),
        *setup_cells(),
        new_markdown_cell("""\
## Intermediate tensors

`sritm_tf.intermediate_model(model)` has the same input and returns a dict of named tensors."""),
        new_code_cell("""\
tensors = sritm_tf.intermediate_model(model).predict(sdr_yuv[None], verbose=0)
tensors = {name: np.asarray(value[0]) for name, value in tensors.items()}
for name, value in tensors.items():
    print(f"{name:17s} {value.shape}  min {value.min():8.3f}  max {value.max():8.3f}")"""),
        new_markdown_cell("""\
## Decomposition

The image and its base layer are shown as R'G'B'. The detail layer is a ratio around 1; its Y'
channel is shown with a colour bar spanning its 1st to 99th percentiles."""),
        new_code_cell("""\
fig, axes = plt.subplots(1, 3, figsize=(13, 2.8), layout="constrained")
plotting.show_image(axes[0], plotting.sdr_preview(tensors["input"]), "input I")
plotting.show_image(axes[1], plotting.sdr_preview(tensors["base_layer"]), "base layer I_b (Eq. 1)")
plotting.show_map(axes[2], tensors["detail_layer"][..., 0], "detail layer I_d = I / I_b, Y' (Eq. 2)", "gray")
fig.suptitle("Decomposition of the input frame")
plotting.save_figure(fig, "decomposition")
plt.show()"""),
        new_markdown_cell("""\
## Modulation maps of RMB_1 and RSMB_1

Each map is the output of the block's modulation branch (Conv, ReLU, Conv of the pass's shared
modulation features), before it multiplies the residual."""),
        new_code_cell("""\
fig = plotting.plot_channel_grid(
    {"RMB_1 (base pass)": tensors["rmb1_modulation"],
     "RSMB_1 (detail pass)": tensors["rsmb1_modulation"]},
    k=3, title="Modulation maps")
plotting.save_figure(fig, "modulation_maps")
plt.show()"""),
    ]


def feature_maps():
    return [
        new_markdown_cell("""\
# Feature maps of the two passes and the fusion (Deep SR-ITM, Fig. 8)

The first convolution of the base pass (on [I, I_b]) and of the detail pass (on [I, I_d]), the
outputs of the two passes FE_b and FE_d (Eq. 6 and 9), and the fused features y_f after the
fusion ResBlocks (Eq. 10-11), just before the upsampling head. Each row shows three channels
(those with the largest spatial spread) and the mean over all 64 channels, each with its own
colour bar spanning the map's 1st to 99th percentiles (the thin frame at the borders comes from
the zero padding of the convolutions)."""),
        *setup_cells(),
        new_code_cell("""\
names = ["base_conv1", "detail_conv1", "fe_b", "fe_d", "y_f"]
tensors = sritm_tf.intermediate_model(model, names).predict(sdr_yuv[None], verbose=0)
tensors = {name: np.asarray(value[0]) for name, value in tensors.items()}
for name, value in tensors.items():
    print(f"{name:13s} {value.shape}  min {value.min():8.3f}  max {value.max():8.3f}")"""),
        new_markdown_cell("## conv1 of each pass"),
        new_code_cell("""\
fig = plotting.plot_channel_grid(
    {"conv1, base pass": tensors["base_conv1"], "conv1, detail pass": tensors["detail_conv1"]},
    k=3, title="First convolution of each pass")
plotting.save_figure(fig, "conv1_features")
plt.show()"""),
        new_markdown_cell("## FE_b, FE_d and y_f"),
        new_code_cell("""\
fig = plotting.plot_channel_grid(
    {"FE_b (base pass)": tensors["fe_b"], "FE_d (detail pass)": tensors["fe_d"],
     "y_f (fusion)": tensors["y_f"]},
    k=3, title="Pass outputs and fused features")
plotting.save_figure(fig, "pass_features")
plt.show()"""),
    ]


def quickstart():
    return [
        new_markdown_cell("""\
# Quick start: one SDR frame to HDR10

Load the model, convert a small SDR frame to HDR10 at twice the resolution, and compare it with
the classical mapping (`colour.sdr_to_hdr10_baseline` after bicubic upscaling: SDR white placed at
203 cd/m2, ITU-R BT.2408). The comparison uses three views: SDR previews, a luminance heat map in
cd/m2 and the histogram of luminance."""),
        *setup_cells(),
        new_markdown_cell("""\
## Convert

The network returns BT.2020 Y'CbCr of PQ R'G'B' (chroma + 0.5) at twice the size;
`colour.model_yuv_to_pq2020_rgb` turns it into PQ R'G'B' in [0, 1]. The baseline upscales the
SDR R'G'B' with bicubic interpolation (`keras.ops.image.resize`, as the network's own bicubic
skip) and maps it to HDR10 with no learning."""),
        new_code_cell("""\
height, width = sdr.shape[:2]
prediction = colour.model_yuv_to_pq2020_rgb(model.predict(sdr_yuv[None], verbose=0)[0])
sdr_up = np.clip(keras.ops.convert_to_numpy(
    keras.ops.image.resize(sdr, (2 * height, 2 * width), interpolation="bicubic")), 0.0, 1.0)
baseline = colour.sdr_to_hdr10_baseline(sdr_up)
nits = {"baseline (SDR in HDR10 container)": plotting.luminance_nits(baseline),
        "Deep SR-ITM": plotting.luminance_nits(prediction)}
for label, values in nits.items():
    p50, p99 = np.percentile(values, [50, 99])
    print(f"{label:40s} median {p50:7.1f}  99th percentile {p99:7.1f}  max {values.max():7.1f} cd/m2")"""),
        new_markdown_cell("""\
## Side-by-side previews

The HDR10 images are shown through a simple SDR display mapping (`plotting.hdr10_preview`):
PQ EOTF to cd/m2, BT.2020 to BT.709 primaries, 203 cd/m2 (HDR reference white) shown as SDR peak
white, clip, gamma 1/2.4. The baseline's preview is therefore the upscaled SDR input itself;
anything brighter than 203 cd/m2 clips to white here, so use the heat map below for highlights."""),
        new_code_cell("""\
fig, axes = plt.subplots(1, 3, figsize=(15, 3.4), layout="constrained")
plotting.show_image(axes[0], sdr, f"SDR input, {width}x{height}")
plotting.show_image(axes[1], plotting.hdr10_preview(baseline), f"baseline, {2 * width}x{2 * height}")
plotting.show_image(axes[2], plotting.hdr10_preview(prediction), "Deep SR-ITM")
fig.suptitle("SDR previews (203 cd/m2 = preview white, BT.709, gamma 1/2.4)")
plotting.save_figure(fig, "previews")
plt.show()"""),
        new_markdown_cell("## Luminance heat map (cd/m2, log scale)"),
        new_code_cell("""\
fig, axes = plt.subplots(1, 2, figsize=(13, 3.4), layout="constrained")
for ax, (label, values) in zip(axes, nits.items()):
    plotting.show_nits(ax, values, label)
fig.suptitle("Display luminance of the HDR10 images")
plotting.save_figure(fig, "luminance_heatmap")
plt.show()"""),
        new_markdown_cell("""\
## Histogram of luminance

The baseline cannot go above 203 cd/m2 (SDR white); an inverse tone-mapping network is expected
to spread highlights above it. Bins are log-spaced, ten per decade from 0.01 to 10,000 cd/m2;
darker pixels count in the first bin."""),
        new_code_cell("""\
fig, ax = plt.subplots(figsize=(8, 3.6), layout="constrained")
plotting.plot_nits_histograms(ax, nits)
ax.axvline(203, color="gray", linestyle="--", linewidth=1, label="SDR reference white, 203 cd/m2")
ax.legend()
ax.set_title("Luminance histogram")
plotting.save_figure(fig, "nits_histogram")
plt.show()"""),
    ]


NOTEBOOKS = {
    "modulation_maps.ipynb": modulation_maps,
    "feature_maps.ipynb": feature_maps,
    "quickstart.ipynb": quickstart,
}


def make_notebook(name, cells):
    """A v4 notebook with stable cell ids (name-index), so that regenerating it
    gives the same file."""
    for i, cell in enumerate(cells):
        cell["id"] = f"{name.split('.')[0]}-{i}"
    metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    return new_notebook(cells=cells, metadata=metadata)


def main():
    for name, cells in NOTEBOOKS.items():
        path = os.path.join(HERE, name)
        nbformat.write(make_notebook(name, cells()), path)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
