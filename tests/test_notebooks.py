"""The notebooks in notebooks/ run top to bottom on the embedded default model, and the
dashboard notebook is the one inferviz.widgets.dashboard serves."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ["quickstart", "samplers", "logit_lens", "why", "dashboard"]
CELL_TIMEOUT_S = 600  # a cold model load plus a lens on a busy 2-core machine


def execute(path: Path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(str(path), as_version=4)
    # The kernel is this interpreter's (the venv's) python3 kernel.
    env_path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    os.environ["PATH"] = env_path
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    return nb


def test_every_notebook_is_listed():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == sorted(NAMES)


def test_dashboard_notebook_matches_the_cells_dashboard_serves():
    nbformat = pytest.importorskip("nbformat")
    from inferviz.widgets.dashboard.launcher import DASHBOARD_CELLS

    nb = nbformat.read(str(NOTEBOOKS / "dashboard.ipynb"), as_version=4)
    assert [(c.cell_type, c.source) for c in nb.cells] == DASHBOARD_CELLS


@pytest.mark.model
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_top_to_bottom(name):
    nb = execute(NOTEBOOKS / f"{name}.ipynb")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code_cells)
    # Widgets render as widget views (the last cell of each notebook shows one or a value).
    assert code_cells[-1].get("outputs"), f"{name}: the last cell shows nothing"
