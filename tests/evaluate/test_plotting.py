"""The notebooks' plotting helpers: display mapping, luminance, histograms, figures."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402

from sritm_tf import colour, plotting  # noqa: E402

PQ_203 = colour.pq_inverse_eotf(203.0)  # HDR reference white, about 0.58


def grey(code):
    return np.full((1, 1, 3), code)


def test_preview_of_known_pq_codes():
    assert plotting.hdr10_preview(grey(0.0)) == pytest.approx(np.zeros((1, 1, 3)))
    # Reference white shows as preview white; anything brighter clips to it.
    assert plotting.hdr10_preview(grey(PQ_203)) == pytest.approx(np.ones((1, 1, 3)))
    assert plotting.hdr10_preview(grey(1.0)) == pytest.approx(np.ones((1, 1, 3)))
    # PQ code 0.5 is 92.2457 cd/m2 (SMPTE ST 2084): (92.2457 / 203) ** (1 / 2.4).
    assert plotting.hdr10_preview(grey(0.5)) == pytest.approx(np.full((1, 1, 3), 0.71986), abs=1e-4)
    # With 100 cd/m2 as preview white and gamma 2.2 instead.
    expected = (92.2457 / 100) ** (1 / 2.2)
    assert plotting.hdr10_preview(grey(0.5), white_nits=100, gamma=2.2) == pytest.approx(
        np.full((1, 1, 3), expected), abs=1e-4)


def test_preview_inverts_the_baseline_and_clips_out_of_gamut():
    rgb = np.random.default_rng(0).random((8, 8, 3))
    assert plotting.hdr10_preview(colour.sdr_to_hdr10_baseline(rgb)) == pytest.approx(rgb, abs=1e-6)
    # Pure BT.2020 green at 100 cd/m2 lies outside BT.709: red and blue clip to 0.
    green = colour.pq_inverse_eotf(np.array([[[0.0, 100.0, 0.0]]]))
    preview = plotting.hdr10_preview(green)
    assert preview[0, 0, 0] == 0.0 and preview[0, 0, 2] == 0.0
    assert 0.0 < preview[0, 0, 1] <= 1.0


def test_luminance_nits():
    assert plotting.luminance_nits(grey(colour.pq_inverse_eotf(100.0))) == pytest.approx(np.array([[100.0]]))
    red = np.array([[[colour.pq_inverse_eotf(1000.0), 0.0, 0.0]]])
    assert plotting.luminance_nits(red) == pytest.approx(np.array([[262.7]]))
    assert plotting.luminance_nits(grey(1.0)) == pytest.approx(np.array([[10000.0]]))


def test_nits_bins_are_ten_per_decade():
    edges = plotting.nits_bins()
    assert len(edges) == 61
    assert edges[0] == pytest.approx(0.01) and edges[-1] == pytest.approx(10000.0)
    assert edges[10] == pytest.approx(0.1) and edges[40] == pytest.approx(100.0)


def test_nits_histogram_counts_and_clamping():
    nits = np.array([[0.001, 0.05, 1.0], [1.0, 150.0, 20000.0]])
    counts, edges = plotting.nits_histogram(nits, bins=[0.01, 1.0, 100.0, 10000.0])
    # 0.001 and 20000 fall outside and are counted in the first and last bins.
    assert counts.tolist() == [2, 2, 2]
    assert edges.tolist() == [0.01, 1.0, 100.0, 10000.0]
    counts, _ = plotting.nits_histogram(np.full((4, 5), 203.0))
    assert counts.sum() == 20 and counts[43] == 20  # 203 lies in [10^2.3, 10^2.4)


def test_histogram_plot_shows_fractions():
    fig, ax = plt.subplots()
    plotting.plot_nits_histograms(ax, {"a": np.full((2, 2), 5.0), "b": np.array([1.0, 1000.0])})
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]
    heights = [patch.get_data().values for patch in ax.patches]
    assert heights[0].max() == 1.0 and heights[1].max() == 0.5
    plt.close(fig)


def test_show_nits_uses_a_log_scale_in_cd_m2():
    fig, ax = plt.subplots()
    image = plotting.show_nits(ax, np.array([[0.0, 1.0], [100.0, 4000.0]]), "heat map")
    assert isinstance(image.norm, LogNorm)
    assert (image.norm.vmin, image.norm.vmax) == (0.1, 10000.0)
    assert image.get_array().min() == 0.1  # zero shown at the bottom of the scale
    assert image.colorbar.ax.get_ylabel() == "cd/m2"
    plt.close(fig)


def test_strongest_channels():
    rng = np.random.default_rng(1)
    maps = np.zeros((16, 16, 5))
    for c, spread in enumerate([0.1, 3.0, 0.0, 1.0, 2.0]):
        maps[..., c] = spread * rng.standard_normal((16, 16))
    assert plotting.strongest_channels(maps, k=3) == [1, 4, 3]


def test_channel_grid_panels():
    maps = np.arange(6 * 8 * 4, dtype=float).reshape(6, 8, 4)
    maps[..., 2] *= 10  # the most spread-out channel
    fig = plotting.plot_channel_grid({"first": maps, "second": -maps}, k=2, title="grid")
    image_axes = [ax for ax in fig.axes if ax.images]
    assert len(image_axes) == 6  # 2 rows x (2 channels + mean)
    assert [ax.get_title() for ax in image_axes[:3]] == ["channel 2", "channel 0", "mean of 4 channels"]
    assert np.array_equal(image_axes[0].images[0].get_array(), maps[..., 2])
    assert np.allclose(image_axes[2].images[0].get_array(), maps.mean(axis=-1))
    assert image_axes[3].get_ylabel() == "second"
    assert all(ax.images[0].colorbar is not None for ax in image_axes)
    # The colour scale spans the 1st to 99th percentiles of each map.
    assert image_axes[0].images[0].get_clim() == pytest.approx(tuple(np.percentile(maps[..., 2], [1, 99])))
    plt.close(fig)


def test_save_figure(tmp_path, monkeypatch):
    fig, ax = plt.subplots(figsize=(4, 3))
    plotting.show_image(ax, np.random.default_rng(2).random((20, 30, 3)), "noise")
    monkeypatch.delenv(plotting.FIGURES_ENV, raising=False)
    assert plotting.save_figure(fig, "noise") is None
    monkeypatch.setenv(plotting.FIGURES_ENV, str(tmp_path / "figs"))
    path = plotting.save_figure(fig, "noise")
    assert path == str(tmp_path / "figs" / "noise.png")
    image = plt.imread(path)
    assert image.shape[0] > 100 and image.shape[1] > 100
    assert len(np.unique(image[..., :3].reshape(-1, 3), axis=0)) > 100
    plt.close(fig)
