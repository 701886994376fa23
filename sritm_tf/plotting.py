"""Matplotlib helpers shared by the notebooks.

An SDR preview of HDR10 (PQ) images, luminance in cd/m2 as a heat map and as a
histogram, and panels of feature maps with colour bars (paper Figs. 6 and 8).
Nothing here needs a screen: figures render with any backend, Agg included, and
`save_figure` writes them as PNG.
"""
import os

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm

from sritm_tf import colour

FIGURES_ENV = "SRITM_FIGURES"  # folder `save_figure` writes to, when set
BT2020_LUMINANCE = np.array([0.2627, 0.6780, 0.0593])  # BT.2100-2 Table 6
NITS_RANGE = (0.01, 10000.0)  # cd/m2, what the heat maps and histograms span


def sample_inputs(scale=2):
    """What the notebooks start from: (the bundled model for `scale`, `sritm_tf.load_model`;
    the bundled sample frame, `pretrained.sample_path()`, as SDR BT.709 R'G'B' float32
    (H, W, 3) in [0, 1]; the same frame as the network's input, full-range BT.709 Y'CbCr
    float32 with chroma + 0.5)."""
    from sritm_tf import imageio, pretrained

    sdr = imageio.read_sdr_image(pretrained.sample_path()).astype(np.float32) / 255
    return pretrained.load_model(scale), sdr, colour.sdr_rgb_to_model_yuv(sdr).astype(np.float32)


def luminance_nits(pq_rgb):
    """Display luminance in cd/m2 of BT.2020 PQ R'G'B' in [0, 1]: the PQ EOTF
    (SMPTE ST 2084) per channel, then Y = 0.2627 R + 0.6780 G + 0.0593 B."""
    return colour.pq_eotf(pq_rgb) @ BT2020_LUMINANCE


def hdr10_preview(pq_rgb, white_nits=203.0, gamma=2.4):
    """SDR preview of an HDR10 image (BT.2020 PQ R'G'B' in [0, 1]).

    PQ EOTF -> cd/m2, BT.2020 -> BT.709 primaries, divide by `white_nits` so
    that HDR reference white (203 cd/m2, ITU-R BT.2408) shows as SDR peak white,
    clip to [0, 1], then gamma 1/`gamma` (BT.1886 with a zero black level).
    Highlights above `white_nits` clip to white: the heat map shows them. For
    in-gamut colours this inverts `colour.sdr_to_hdr10_baseline`.
    """
    linear = colour.rgb2020_to_rgb709(colour.pq_eotf(pq_rgb)) / white_nits
    return colour.gamma_encode(np.clip(linear, 0.0, 1.0), gamma)


def sdr_preview(yuv):
    """The network's input convention (BT.709 Y'CbCr, chroma + 0.5) as displayable
    R'G'B' in [0, 1]."""
    return np.clip(colour.model_yuv_to_sdr_rgb(yuv), 0.0, 1.0)


def nits_bins(count=60, low=NITS_RANGE[0], high=NITS_RANGE[1]):
    """`count` log-spaced bins from `low` to `high` cd/m2 (count + 1 edges)."""
    return np.geomspace(low, high, count + 1)


def nits_histogram(nits, bins=None):
    """Pixel counts of a luminance image in log-spaced bins (`nits_bins()` by
    default). Values outside the bins are clamped into the first or last bin, so
    the counts add up to the number of pixels. Returns (counts, edges)."""
    edges = nits_bins() if bins is None else np.asarray(bins, dtype=np.float64)
    clamped = np.clip(np.ravel(nits), edges[0], edges[-1])
    counts, _ = np.histogram(clamped, edges)
    return counts, edges


def plot_nits_histograms(ax, named_nits, bins=None):
    """Histograms of luminance images (dict label -> cd/m2 array) on one log axis,
    as the fraction of pixels per bin."""
    for label, nits in named_nits.items():
        counts, edges = nits_histogram(nits, bins)
        ax.stairs(counts / counts.sum(), edges, label=label, fill=True, alpha=0.45)
    ax.set_xscale("log")
    ax.set_xlabel("luminance (cd/m2)")
    ax.set_ylabel("fraction of pixels")
    ax.legend()
    return ax


def show_nits(ax, nits, title, vmin=0.1, vmax=NITS_RANGE[1], cmap="inferno"):
    """A luminance image as a heat map on a log colour scale, with a colour bar in
    cd/m2. Values below `vmin` show as `vmin`."""
    image = ax.imshow(np.clip(nits, vmin, vmax), cmap=cmap, norm=LogNorm(vmin, vmax))
    ax.set_title(title)
    ax.axis("off")
    ax.figure.colorbar(image, ax=ax, label="cd/m2", fraction=0.046, pad=0.02)
    return image


def show_image(ax, rgb, title):
    """An R'G'B' image in [0, 1], no axes."""
    ax.imshow(np.clip(rgb, 0.0, 1.0))
    ax.set_title(title)
    ax.axis("off")


def show_map(ax, values, title, cmap="viridis", percentiles=(1, 99)):
    """A 2-D array with its own colour bar. The colour scale spans the given
    percentiles of the values (None: min to max), so that a few outliers (such
    as the borders of zero-padded convolutions) do not flatten the rest."""
    vmin, vmax = np.percentile(values, percentiles) if percentiles else (None, None)
    image = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.02)
    return image


def strongest_channels(maps, k=3):
    """Indices of the `k` channels of an (H, W, C) array with the largest spatial
    standard deviation (the most structured ones), strongest first."""
    spread = np.asarray(maps).reshape(-1, np.shape(maps)[-1]).std(axis=0)
    return [int(c) for c in np.argsort(-spread, kind="stable")[:k]]


def plot_channel_grid(named_maps, k=3, title=None, cmap="viridis"):
    """One row per (H, W, C) array of `named_maps` (dict label -> array): its `k`
    strongest channels (`strongest_channels`) and the mean over all channels,
    each with its own colour bar (`show_map`). Returns the figure."""
    rows = len(named_maps)
    fig, axes = plt.subplots(rows, k + 1, figsize=(3.6 * (k + 1), 2.3 * rows), squeeze=False,
                             layout="constrained")
    for row, (label, maps) in zip(axes, named_maps.items()):
        maps = np.asarray(maps)
        for ax, c in zip(row, strongest_channels(maps, k)):
            show_map(ax, maps[..., c], f"channel {c}", cmap)
        show_map(row[-1], maps.mean(axis=-1), f"mean of {maps.shape[-1]} channels", cmap)
        row[0].set_ylabel(label, fontsize=10)
    if title:
        fig.suptitle(title)
    return fig


def save_figure(fig, name, folder=None):
    """Saves `fig` as `<folder>/<name>.png`; `folder` defaults to the environment
    variable SRITM_FIGURES. Returns the path, or None when no folder is set."""
    folder = folder or os.environ.get(FIGURES_ENV)
    if not folder:
        return None
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{name}.png")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path
