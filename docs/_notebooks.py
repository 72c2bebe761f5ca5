"""The notebooks the site renders: executed by the test suite, or here when those are absent.

``tests/test_notebooks.py`` executes every ``notebooks/*.ipynb`` and, when the environment
variable ``HALFPROJ_EXECUTED_NOTEBOOKS`` names a folder, writes the executed notebooks there.
:func:`collect` copies them into ``docs/notebooks/`` after checking that each one has the
same code cells as its source (an executed copy of an older notebook is refused) and that
every source notebook has one. Without the variable it copies the source notebooks and the
build executes them itself.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import nbformat


def code(nb) -> list[str]:
    return [cell.source for cell in nb.cells if cell.cell_type == "code"]


def collect(source: Path, target: Path, executed: str | None) -> str:
    """Fill ``target`` with the notebooks to render; return MyST-NB's ``nb_execution_mode``."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir()
    notebooks = sorted(source.glob("*.ipynb"))
    if not executed:
        for path in notebooks:
            shutil.copy(path, target / path.name)
        return "force"
    for path in notebooks:
        done = Path(executed) / path.name
        if not done.exists():
            raise RuntimeError(f"{done} is missing: run tests/test_notebooks.py with "
                               f"HALFPROJ_EXECUTED_NOTEBOOKS={executed} first, or unset the variable "
                               f"to execute the notebooks in the docs build")
        ran = nbformat.read(done, as_version=4)
        if code(ran) != code(nbformat.read(path, as_version=4)):
            raise RuntimeError(f"{done} was executed from another version of {path.name}: "
                               f"run tests/test_notebooks.py again")
        if not any(cell.get("outputs") for cell in ran.cells if cell.cell_type == "code"):
            raise RuntimeError(f"{done} has no outputs")
        shutil.copy(done, target / path.name)
    return "off"
