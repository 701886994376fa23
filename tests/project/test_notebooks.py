"""Executes each notebook end to end with nbclient and checks the figures it saved.

The kernel is the Python running the tests (a kernelspec written to a temporary
folder whose argv is sys.executable), the working directory a temporary folder,
the backend Agg, and SRITM_FIGURES names the folder the notebooks save PNGs to.
"""
import json
import os
import sys

import matplotlib.pyplot as plt
import nbformat
import numpy as np
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from tests.helpers.paths import REPO

pytestmark = pytest.mark.slow  # a kernel per notebook

NOTEBOOKS = str(REPO / "notebooks")

EXPECTED_FIGURES = {
    "quickstart.ipynb": ["previews", "luminance_heatmap", "nits_histogram"],
    "modulation_maps.ipynb": ["decomposition", "modulation_maps"],
    "feature_maps.ipynb": ["conv1_features", "pass_features"],
}


def this_python_kernel(folder):
    """A KernelManager whose kernel runs this interpreter (the venv's ipykernel)."""
    spec_dir = folder / "kernels" / "sritm-test"
    spec_dir.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec = {"argv": argv, "display_name": "sritm test", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    specs = KernelSpecManager(kernel_dirs=[str(folder / "kernels")])
    return KernelManager(kernel_name="sritm-test", kernel_spec_manager=specs)


@pytest.mark.parametrize("name", sorted(EXPECTED_FIGURES))
def test_notebook_runs_and_saves_figures(name, tmp_path, monkeypatch):
    path = os.path.join(NOTEBOOKS, name)
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{name}: commit it without outputs"

    figures = tmp_path / "figures"
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.setenv("SRITM_FIGURES", str(figures))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    client = NotebookClient(notebook, km=this_python_kernel(tmp_path), timeout=300,
                            resources={"metadata": {"path": str(workdir)}})
    client.execute()  # raises CellExecutionError when a cell fails

    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    # The notebook says which weights it ran with: the bundled trained ones.
    notes = [out.data["text/markdown"] for out in outputs if "text/markdown" in out.get("data", {})]
    assert len(notes) == 1 and "bundled trained weights" in notes[0]

    saved = sorted(p.stem for p in figures.glob("*.png"))
    assert saved == sorted(EXPECTED_FIGURES[name])
    for stem in saved:
        image = plt.imread(figures / f"{stem}.png")[..., :3]
        assert image.shape[0] > 200 and image.shape[1] > 400, (stem, image.shape)
        # A real figure, not a blank canvas: many colours, a good share of non-white pixels.
        assert len(np.unique(image.reshape(-1, 3), axis=0)) > 100, stem
        assert (image < 0.9).any(axis=-1).mean() > 0.05, stem
