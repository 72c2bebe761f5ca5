"""Every Python example of the README and of the documentation pages runs.

Each fenced ```` ```python ```` block of ``README.md`` and ``docs/**/*.md`` runs as a script in a
fresh subprocess (this interpreter, the ``brainpy_halfproj`` these tests import), in an empty
folder, with a timeout: an exception or a hang fails it. A hang is what brainpy 2.9 does to a
script that exits while a ``bm.for_loop`` or ``brainstate`` result is still being computed
(inside jaxlib's CPU client destructor), which is why the examples read their results.
Identical blocks (the README's example is also the first model of the getting-started page)
run once.

A block that cannot run here opts out with a visible first line that says why::

    # not run by tests/test_examples.py: <why>

Blocks run only on the lines that have what they use: ``brainpy_halfproj.state`` or
``brainstate`` needs brainpy >= 2.9; ``partition(`` needs the brainevent kernels (brainpy >= 2.8:
on 2.5 ``partition`` raises ``PartitionError``, tested in ``test_partition.py``); a block that sets
the fused guide's XLA options needs jax >= 0.10 (2.8 and 2.9; ``test_xla_flags.py``).
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import jax
import pytest

import brainpy_halfproj
from brainpy_halfproj._compat import BRAINPY_VERSION, event_kernel_library

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
GENERATED = {"_build", "api", "notebooks"}  # written by the docs build, not pages of ours
OPT_OUT = "# not run by tests/test_examples.py:"
JAX_VERSION = tuple(int(x) for x in jax.__version__.split(".")[:2])
TIMEOUT_S = 600  # generous: a cold JAX compile on a busy CI machine; a hang waits this long
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)

# (pattern in the code, whether this line has what it needs, why not)
REQUIREMENTS = [
    (re.compile(r"brainpy_halfproj\.state|\bbrainstate\b"), BRAINPY_VERSION >= (2, 9),
     "uses brainpy.state, which needs brainpy >= 2.9 (Python >= 3.12)"),
    (re.compile(r"xla_cpu_enable_concurrency_optimized_scheduler"), JAX_VERSION >= (0, 10),
     "sets XLA options that jax < 0.10 (the brainpy 2.5 line's 0.4.25) does not know: XLA ends the process"),
    (re.compile(r"\bpartition\("), event_kernel_library() == "brainevent",
     "partition() needs brainpy >= 2.8 (brainevent kernels, jax.shard_map); here it raises PartitionError"),
]


@dataclass(frozen=True)
class Block:
    code: str
    where: tuple[str, ...]  # 'README.md:57' (the line of the fence), every place it appears

    @property
    def opt_out(self) -> str | None:
        """The reason given on an opt-out first line, or ``None``."""
        first = self.code.lstrip().splitlines()[0] if self.code.strip() else ""
        return first[len(OPT_OUT):].strip() if first.startswith(OPT_OUT) else None


def pages(root: Path = ROOT) -> list[Path]:
    """README.md and the documentation pages (Markdown under docs/, generated folders left out)."""
    docs = root / "docs"
    found = [root / "README.md"]
    found += sorted(p for p in docs.rglob("*.md") if not GENERATED & set(p.relative_to(docs).parts[:-1]))
    return found


def blocks(files: list[Path], root: Path = ROOT) -> list[Block]:
    """The ```python blocks of ``files``, identical ones once, in order of first appearance."""
    where: dict[str, list[str]] = {}
    for path in files:
        text = path.read_text(encoding="utf-8")
        for m in FENCE.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            where.setdefault(m.group(1), []).append(f"{path.relative_to(root)}:{line}")
    return [Block(code, tuple(places)) for code, places in where.items()]


def run(code: str, cwd: Path, timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess:
    """Run ``code`` as a script in a fresh interpreter; ``pytest.fail`` on an error or a hang."""
    package_parent = str(Path(brainpy_halfproj.__file__).parent.parent)  # the package these tests import
    env = {**os.environ, "MPLBACKEND": "Agg",
           "PYTHONPATH": os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH")) if p)}
    script = cwd / "example.py"
    script.write_text(code, encoding="utf-8")
    proc = subprocess.Popen([sys.executable, str(script)], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"the example did not finish within {timeout} s (a hang?); its output:\n{out[-3000:]}")
    if proc.returncode != 0:
        pytest.fail(f"the example exited with status {proc.returncode}; its output:\n{out[-5000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out)


BLOCKS = blocks(pages()) if DOCS.is_dir() else []


@pytest.mark.slow
@pytest.mark.parametrize("block", BLOCKS, ids=[b.where[0] for b in BLOCKS])
def test_example_runs(block, tmp_path):
    if block.opt_out is not None:
        pytest.skip(f"opted out: {block.opt_out}")
    for pattern, available, why in REQUIREMENTS:
        if pattern.search(block.code) and not available:
            pytest.skip(why)
    run(block.code, tmp_path)


def test_the_readme_and_every_guide_page_with_code_are_collected():
    if not DOCS.is_dir():
        pytest.skip("no docs/ in this tree (an unpacked sdist carries the README only)")
    collected = {w.split(":")[0] for b in BLOCKS for w in b.where}
    expected = {"README.md", "docs/getting_started.md", "docs/guide/state.md", "docs/guide/checkpoints.md",
                "docs/guide/fused.md", "docs/guide/partition.md"}
    assert expected <= collected
    readme = next(b for b in BLOCKS if any(w.startswith("README.md:") for w in b.where))
    assert "bhp.use_native_kernels()" in readme.code
    assert any(w.startswith("docs/getting_started.md:") for w in readme.where)  # the same first model


def test_every_opt_out_says_why():
    for block in BLOCKS:
        if block.code.lstrip().startswith("# not run"):
            assert block.opt_out is not None and len(block.opt_out.split()) >= 4, block.where


def test_blocks_are_found_with_their_lines_and_identical_ones_once(tmp_path):
    (tmp_path / "docs" / "guide").mkdir(parents=True)
    (tmp_path / "docs" / "_build").mkdir()
    (tmp_path / "README.md").write_text("# t\n\n```python\nprint(1)\n```\n\n```bash\nls\n```\n")
    (tmp_path / "docs" / "guide" / "a.md").write_text(
        "x\n```python\nprint(1)\n```\n```python\n# not run by tests/test_examples.py: needs two hosts\nx = k\n```\n")
    (tmp_path / "docs" / "_build" / "b.md").write_text("```python\nraise SystemExit(1)\n```\n")
    found = blocks(pages(tmp_path), tmp_path)
    assert [(b.code, b.where) for b in found] == [
        ("print(1)\n", ("README.md:3", "docs/guide/a.md:2")),
        ("# not run by tests/test_examples.py: needs two hosts\nx = k\n", ("docs/guide/a.md:5",)),
    ]
    assert [b.opt_out for b in found] == [None, "needs two hosts"]


def test_an_error_fails_with_the_output(tmp_path):
    with pytest.raises(pytest.fail.Exception, match=r"(?s)exited with status 1.*ZeroDivisionError"):
        run("print('before')\n1 / 0\n", tmp_path)


@pytest.mark.slow
def test_a_hang_fails_after_the_timeout(tmp_path):
    code = textwrap.dedent("""\
        import time
        print('started', flush=True)
        time.sleep(60)
    """)
    with pytest.raises(pytest.fail.Exception, match=r"(?s)did not finish within 2 s.*started"):
        run(code, tmp_path, timeout=2)


@pytest.mark.slow
def test_an_example_runs_with_this_brainpy_halfproj(tmp_path):
    out = run("import brainpy_halfproj, os\nprint(os.path.realpath(brainpy_halfproj.__file__))\n", tmp_path).stdout
    assert out.strip() == os.path.realpath(brainpy_halfproj.__file__)
