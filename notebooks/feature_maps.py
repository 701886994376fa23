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
# # Feature maps of the two passes and the fusion (Deep SR-ITM, Fig. 8)
#
# The first convolution of the base pass (on [I, I_b]) and of the detail pass (on [I, I_d]), the
# outputs of the two passes FE_b and FE_d (Eq. 6 and 9), and the fused features y_f after the
# fusion ResBlocks (Eq. 10-11), just before the upsampling head. Each row shows three channels
# (those with the largest spatial spread) and the mean over all 64 channels, each with its own
# colour bar spanning the map's 1st to 99th percentiles (the thin frame at the borders comes from
# the zero padding of the convolutions).

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

# %%
names = ["base_conv1", "detail_conv1", "fe_b", "fe_d", "y_f"]
tensors = sritm_tf.intermediate_model(model, names).predict(sdr_yuv[None], verbose=0)
tensors = {name: np.asarray(value[0]) for name, value in tensors.items()}
for name, value in tensors.items():
    print(f"{name:13s} {value.shape}  min {value.min():8.3f}  max {value.max():8.3f}")

# %% [markdown]
# ## conv1 of each pass

# %%
fig = plotting.plot_channel_grid(
    {"conv1, base pass": tensors["base_conv1"], "conv1, detail pass": tensors["detail_conv1"]},
    k=3, title="First convolution of each pass")
plotting.save_figure(fig, "conv1_features")
plt.show()

# %% [markdown]
# ## FE_b, FE_d and y_f

# %%
fig = plotting.plot_channel_grid(
    {"FE_b (base pass)": tensors["fe_b"], "FE_d (detail pass)": tensors["fe_d"],
     "y_f (fusion)": tensors["y_f"]},
    k=3, title="Pass outputs and fused features")
plotting.save_figure(fig, "pass_features")
plt.show()
