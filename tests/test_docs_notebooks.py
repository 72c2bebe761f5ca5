"""The documentation site renders the notebooks the tests executed (``docs/_notebooks.py``).

An executed copy is used only when it is the current notebook (same code cells) with outputs;
otherwise the build stops with a message that says what to run.
"""
import importlib.util
from pathlib import Path

import nbformat
import pytest

SPEC = importlib.util.spec_from_file_location("docs_notebooks", Path(__file__).parent.parent / "docs" / "_notebooks.py")
_notebooks = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(_notebooks)


def notebook(*sources, outputs=False):
    cells = [nbformat.v4.new_markdown_cell("# title")]
    for src in sources:
        cell = nbformat.v4.new_code_cell(src)
        if outputs:
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
            cell.execution_count = 1
        cells.append(cell)
    return nbformat.v4.new_notebook(cells=cells)


@pytest.fixture
def folders(tmp_path):
    source, executed, target = tmp_path / "notebooks", tmp_path / "executed", tmp_path / "docs" / "notebooks"
    source.mkdir()
    executed.mkdir()
    target.parent.mkdir()
    nbformat.write(notebook("print(1)"), source / "01_a.ipynb")
    return source, executed, target


def test_the_executed_notebooks_are_rendered_without_executing_again(folders):
    source, executed, target = folders
    nbformat.write(notebook("print(1)", outputs=True), executed / "01_a.ipynb")
    assert _notebooks.collect(source, target, str(executed)) == "off"
    assert nbformat.read(target / "01_a.ipynb", as_version=4).cells[1].outputs[0]["text"] == "1\n"


def test_without_executed_notebooks_the_build_executes_them(folders):
    source, _, target = folders
    (target / "stale.ipynb").parent.mkdir()
    (target / "stale.ipynb").write_text("{}")
    assert _notebooks.collect(source, target, None) == "force"
    assert sorted(p.name for p in target.iterdir()) == ["01_a.ipynb"]


@pytest.mark.parametrize("executed_nb, message", [
    (None, "01_a.ipynb is missing: run tests/test_notebooks.py with HALFPROJ_EXECUTED_NOTEBOOKS="),
    (notebook("print(2)", outputs=True), "was executed from another version of 01_a.ipynb"),
    (notebook("print(1)"), "01_a.ipynb has no outputs"),
])
def test_a_missing_stale_or_unexecuted_copy_stops_the_build(folders, executed_nb, message):
    source, executed, target = folders
    if executed_nb is not None:
        nbformat.write(executed_nb, executed / "01_a.ipynb")
    with pytest.raises(RuntimeError, match=message):
        _notebooks.collect(source, target, str(executed))
