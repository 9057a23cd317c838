"""Executes every ``notebooks/*.ipynb`` top to bottom in a fresh kernel, at small sizes.

The kernel is the ``python3`` kernel spec, which resolves to this interpreter (the venv's
python) when ipykernel is installed in it. The notebooks read their sizes from ``NB_*``
environment variables, which the kernel inherits; ``TMPDIR`` points into pytest's tmp_path so
the run directories a notebook creates with ``tempfile`` are cleaned up with it.
"""
from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="notebook tests need the test extras (pip install -e .[test])")
nbclient = pytest.importorskip("nbclient", reason="notebook tests need the test extras (pip install -e .[test])")
pytest.importorskip("ipykernel", reason="notebook tests need ipykernel in this interpreter (pip install -e .[test])")

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
SMALL = {"NB_USERS": "600", "NB_ITEMS": "400", "NB_EPOCHS": "1"}
CELL_TIMEOUT_S = 300
# Text that must appear in some cell's outputs, per notebook.
EXPECTED = {
    "01_data_and_retrieval.ipynb": ["| test | popularity |", "recall@10 vs exact", "a-brand-new-user"],
    "02_ranker_and_uncertainty.ipynb": ["| head | target | policy | test precision", "max abs difference",
                                        "| planted | 0.9 | dp |", "item-prior AUC"],
    "03_serving.ipynb": ["models.config: lists 5 models", "path personalized", "path cold_start",
                         "predict_with_uncertainty", "docker run"],
}


def _notebooks() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def _output_text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream":
            parts.append(output["text"])
        elif output["output_type"] in ("execute_result", "display_data"):
            parts.append(str(output["data"].get("text/plain", "")))
            parts.append(str(output["data"].get("text/html", "")))
    return "\n".join(parts)


@pytest.mark.parametrize("path", _notebooks(), ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{path.name} cell {index}: strip outputs"


@pytest.mark.slow  # ~110 s for the three: in CI's slow set, so the default suite stays under 10 minutes
@pytest.mark.parametrize("path", _notebooks(), ids=lambda p: p.name)
def test_notebook_executes(path, tmp_path, monkeypatch):
    for name, value in SMALL.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(notebook, kernel_name="python3", timeout=CELL_TIMEOUT_S, startup_timeout=120,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError (with the traceback) if a cell fails

    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code)
    assert not [o for cell in code for o in cell.outputs if o["output_type"] == "error"]
    text = "\n".join(_output_text(cell) for cell in code)
    for expected in EXPECTED.get(path.name, []):
        assert expected in text, f"{path.name}: {expected!r} not in the outputs"
