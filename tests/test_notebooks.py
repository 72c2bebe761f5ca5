"""Every ``notebooks/*.ipynb`` runs top to bottom without an error, in this interpreter.

Each notebook runs in a fresh kernel started with ``sys.executable`` (a kernelspec
written for the test session and put first on ``JUPYTER_PATH``), so the notebooks
see the same brainpy line and the same ``brainpy_halfproj`` as the tests. The
kernel inherits the environment, ``PYTHONPATH`` included.

When ``HALFPROJ_EXECUTED_NOTEBOOKS`` names a folder, each executed notebook is written
there: the documentation build renders those outputs instead of executing the
notebooks a second time (``docs/_notebooks.py``).
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

try:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
except ImportError as err:  # pragma: no cover - a set-up error, not a test failure
    raise ImportError(f"{err}: the notebook tests need nbclient, nbformat and ipykernel; "
                      f"install the test extra: pip install '.[test]'") from None

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
KERNEL_NAME = "brainpy-halfproj-tests"
CELL_TIMEOUT_S = 600  # generous: a cold JAX compile on a busy CI machine
EXECUTED_DIR = os.environ.get("HALFPROJ_EXECUTED_NOTEBOOKS")


@pytest.fixture(scope="session")
def kernel_name(tmp_path_factory):
    """A kernelspec that runs ``sys.executable``, found before any user or system one."""
    root = tmp_path_factory.mktemp("jupyter")
    spec_dir = root / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": f"Python ({sys.executable})", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    old = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = os.pathsep.join([str(root)] + ([old] if old else []))
    yield KERNEL_NAME
    if old is None:
        del os.environ["JUPYTER_PATH"]
    else:
        os.environ["JUPYTER_PATH"] = old


def execute(nb, kernel_name: str, cwd: Path = NOTEBOOK_DIR):
    """Run ``nb`` in place, top to bottom; nbclient raises ``CellExecutionError`` on any error."""
    client = NotebookClient(nb, kernel_name=kernel_name, timeout=CELL_TIMEOUT_S,
                            resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return nb


def test_notebooks_are_found():
    names = [p.name for p in NOTEBOOKS]
    assert {"01_quickstart.ipynb", "02_merging.ipynb", "03_migrating_from_bp_dyn.ipynb",
            "06_brainpy_state.ipynb"} <= set(names)


def test_only_the_brainpy_state_notebook_needs_brainpy_29():
    from brainpy_halfproj._compat import BRAINPY_VERSION

    needs = {p.name for p in NOTEBOOKS if nbformat.read(p, as_version=4).metadata.get(
        "brainpy_halfproj", {}).get("requires_brainpy") == "2.9"}
    assert needs == {"06_brainpy_state.ipynb"}
    nb = nbformat.read(NOTEBOOK_DIR / "06_brainpy_state.ipynb", as_version=4)
    assert (_skip_reason(nb) is None) is (BRAINPY_VERSION >= (2, 9))


def test_kernel_runs_this_interpreter(kernel_name):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import sys; print(sys.executable)")])
    execute(nb, kernel_name)
    assert nb.cells[0].outputs[0]["text"].strip() == sys.executable


def test_an_error_in_any_cell_fails(kernel_name):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in ("x = 1", "1 / x0", "x = 2")])
    with pytest.raises(CellExecutionError, match="NameError"):
        execute(nb, kernel_name)
    assert "execution_count" not in nb.cells[2] or nb.cells[2].execution_count is None


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (
                f"{path.name} cell {i} has stored outputs; clear them before committing "
                f"(jupyter nbconvert --clear-output --inplace {path.name})")


def _skip_reason(nb) -> str | None:
    """Why ``nb`` cannot run on this brainpy line: its ``brainpy_halfproj.requires_brainpy`` metadata."""
    from brainpy_halfproj._compat import BRAINPY_VERSION, _parse_version

    needed = nb.metadata.get("brainpy_halfproj", {}).get("requires_brainpy")
    if needed and BRAINPY_VERSION < _parse_version(needed):
        this = ".".join(map(str, BRAINPY_VERSION))
        return f"needs brainpy >= {needed} (its metadata says so); this is brainpy {this}"
    return None


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, kernel_name):
    nb = nbformat.read(path, as_version=4)
    reason = _skip_reason(nb)
    if reason:
        pytest.skip(reason)
    start = time.perf_counter()
    execute(nb, kernel_name)
    print(f"{path.name}: {time.perf_counter() - start:.1f} s")
    errors = [out for cell in nb.cells for out in cell.get("outputs", []) if out.get("output_type") == "error"]
    assert not errors
    if EXECUTED_DIR:
        Path(EXECUTED_DIR).mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, Path(EXECUTED_DIR) / path.name)
