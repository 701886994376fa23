"""The committed notebooks are built from their plain sources: each `notebooks/NAME.ipynb`
has the cells (type and source text) of `notebooks/NAME.py` (jupytext percent format).
Rebuild one with `jupytext --to ipynb --update notebooks/NAME.py`."""
import glob
import os

import nbformat
import pytest

from tests.helpers.paths import REPO

NOTEBOOKS = str(REPO / "notebooks")
SOURCES = sorted(glob.glob(os.path.join(NOTEBOOKS, "*.py")))


def cells(notebook):
    return [(cell.cell_type, cell.source) for cell in notebook.cells]


def test_every_notebook_has_a_source_and_back():
    notebooks = sorted(glob.glob(os.path.join(NOTEBOOKS, "*.ipynb")))
    assert [os.path.splitext(p)[0] for p in notebooks] == [os.path.splitext(p)[0] for p in SOURCES]
    assert len(SOURCES) == 3


@pytest.mark.parametrize("source", SOURCES, ids=os.path.basename)
def test_committed_notebook_matches_its_source(source):
    jupytext = pytest.importorskip("jupytext")  # in the dev extra
    built = jupytext.read(source)
    committed = nbformat.read(os.path.splitext(source)[0] + ".ipynb", as_version=4)
    assert cells(committed) == cells(built), f"rebuild: jupytext --to ipynb --update {source}"
    for cell in committed.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None
