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
# # Decomposition and modulation maps (Deep SR-ITM, Fig. 6)
#
# Deep SR-ITM splits its input into a base layer (self-guided filter, Eq. 1) and a detail layer
# (I / I_b, Eq. 2), and runs one pass on each. In the ResModBlocks of the base pass (RMB) and the
# ResSkipModBlocks of the detail pass (RSMB), the residual is multiplied element-wise by a
# modulation map computed from the pass input (Eq. 5), which makes each block's operation vary
# over the image. This notebook shows the decomposition and the modulation maps of the first such
# block of each pass, RMB_1 and RSMB_1: three channels (those with the largest spatial spread)
# and the mean over all 64 channels, each with its own colour bar spanning the map's 1st to 99th
# percentiles (the thin bright or dark frame at the borders comes from the zero padding of the
# convolutions).

# %%
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

import sritm_tf
from sritm_tf import plotting

# %% [markdown]
# The bundled x2 model and sample frame, as in the quickstart (`plotting.sample_inputs`).

# %%
model, sdr, sdr_yuv = plotting.sample_inputs(scale=2)
display(Markdown(f"`{model.name}`, {model.count_params():,} parameters: bundled trained weights; input {sdr.shape}."))

# %% [markdown]
# ## Intermediate tensors
#
# `sritm_tf.intermediate_model(model)` has the same input and returns a dict of named tensors.

# %%
tensors = sritm_tf.intermediate_model(model).predict(sdr_yuv[None], verbose=0)
tensors = {name: np.asarray(value[0]) for name, value in tensors.items()}
for name, value in tensors.items():
    print(f"{name:17s} {value.shape}  min {value.min():8.3f}  max {value.max():8.3f}")

# %% [markdown]
# ## Decomposition
#
# The image and its base layer are shown as R'G'B'. The detail layer is a ratio around 1; its Y'
# channel is shown with a colour bar spanning its 1st to 99th percentiles.

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 2.8), layout="constrained")
plotting.show_image(axes[0], plotting.sdr_preview(tensors["input"]), "input I")
plotting.show_image(axes[1], plotting.sdr_preview(tensors["base_layer"]), "base layer I_b (Eq. 1)")
plotting.show_map(axes[2], tensors["detail_layer"][..., 0], "detail layer I_d = I / I_b, Y' (Eq. 2)", "gray")
fig.suptitle("Decomposition of the input frame")
plotting.save_figure(fig, "decomposition")
plt.show()

# %% [markdown]
# ## Modulation maps of RMB_1 and RSMB_1
#
# Each map is the output of the block's modulation branch (Conv, ReLU, Conv of the pass's shared
# modulation features), before it multiplies the residual.

# %%
fig = plotting.plot_channel_grid(
    {"RMB_1 (base pass)": tensors["rmb1_modulation"],
     "RSMB_1 (detail pass)": tensors["rsmb1_modulation"]},
    k=3, title="Modulation maps")
plotting.save_figure(fig, "modulation_maps")
plt.show()
