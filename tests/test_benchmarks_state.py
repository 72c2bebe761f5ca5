"""``benchmarks/state.py`` runs its brainpy.state case and renders its tables (never timings)."""
import json
import os
import subprocess
import sys

import pytest

from brainpy_halfproj._compat import BRAINPY_VERSION

pytestmark = pytest.mark.skipif(BRAINPY_VERSION < (2, 9), reason="brainpy.state needs brainpy >= 2.9")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")


def _state_module():
    sys.path.insert(0, BENCH)
    try:
        import state
    finally:
        sys.path.remove(BENCH)
    return state


@pytest.fixture(scope="module")
def record():
    proc = subprocess.run([sys.executable, os.path.join(BENCH, "state.py"), "--worker", "--model", "seed",
                           "--conn", "jit", "--n", "200", "--steps", "50"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


@pytest.mark.slow  # the worker in a subprocess (import, build, compile)
def test_the_worker_measures_a_brainpy_state_network(record):
    assert record["api"] == "brainpy.state" and record["ns"] == "brainpy.state" and record["n"] == 200
    assert record["kernel_calls_per_step"] == 2  # E and I: one JIT kernel call each per step
    for key in ("build_s", "first_call_s", "compile_s", "run_s", "s_per_bio_s", "peak_rss_mb", "state_elems"):
        assert isinstance(record[key], (int, float)) and record[key] >= 0, key
    assert record["rate_hz"] > 0


@pytest.mark.slow  # the worker in a subprocess (import, build, compile)
def test_the_tables_show_medians_and_the_rows_not_run_yet(record):
    state = _state_module()
    rows = [dict(record, section="seed", row="brainpy.state, JIT", rep=rep, s_per_bio_s=s)
            for rep, s in enumerate((3.0, 1.0, 2.0))]
    rows.append(dict(section="seed", row="plugin state, JIT, fused", rep=0,
                     error="exit 1: ModuleNotFoundError: No module named 'brainpy_halfproj.state'"))
    text = state.markdown(dict(smoke=True, machine={"cpu": "test"}, cases=rows))
    assert "### Seed E/I network" in text and "SMOKE RUN" in text
    line = next(ln for ln in text.splitlines() if ln.startswith("| brainpy.state, JIT |"))
    assert "| 2 |" in line and "| 2.000 |" in line and line.endswith("| 3 |")  # calls, median, processes
    assert "| plugin state, JIT, fused | not run: needs `brainpy_halfproj.state` with `fused=`" in text


def test_every_section_has_its_bp_dyn_and_brainpy_state_rows():
    import argparse

    state = _state_module()
    cfg = argparse.Namespace(only=list(state.SECTIONS), python="py", python_dyn="pydyn", brian2=None, n=4000,
                             steps=10000, groups=8, n_pop=500, mc_scales=[0.1], mc_transient=500., mc_duration=1000.)
    cases = state._cases(cfg)
    for section in state.SECTIONS:
        scripts = {script for sec, _, _, script, *_ in cases if sec == section}
        assert "state.py" in scripts and scripts & {"case.py", "microcircuit.py"}, section
    assert all(py == "pydyn" for _, _, py, script, *_ in cases if script in ("case.py", "microcircuit.py"))
    flagged = {(sec, name): env[0] for sec, name, _, _, _, *env in cases if env and env[0]}
    assert flagged == {(sec, f"{row}, XLA flags"): {"XLA_FLAGS": state.XLA_FLAGS} for sec, row in [
        ("seed", "plugin state, JIT, fused + native"), ("seed", "bp.dyn plugin, JIT, fused + native"),
        ("multipop", "plugin state, JIT, merged, native"), ("multipop", "plugin state, JIT, fused + native"),
        ("multipop", "bp.dyn plugin, JIT, merged, native"), ("multipop", "bp.dyn plugin, JIT, fused + native")]}
    for sec, name in flagged:  # each beside the same case without the flags
        assert any(s == sec and n == name.removesuffix(", XLA flags") for s, n, *_ in cases)


def _worker(script, *args):
    proc = subprocess.run([sys.executable, os.path.join(BENCH, script), "--worker", *args],
                          capture_output=True, text=True, timeout=900, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))[len("RESULT "):])


@pytest.mark.slow  # a microcircuit compiled and run in a subprocess, per script
@pytest.mark.parametrize("script, args", [
    ("microcircuit.py", ["--variant", "merged"]),  # the bp.dyn model
    ("state.py", ["--model", "microcircuit"]),  # the brainpy.state model
])
def test_the_microcircuit_workers_time_a_run_that_compiles_nothing(script, args):
    """The measured second runs the loop the transient compiled (once, the measured run compiled
    its own ``record='counts'`` loop, and its time counted as run time)."""
    rec = _worker(script, *args, "--scale", "0.02", "--seed", "1", "--transient", "200", "--duration", "100")
    assert rec["compilations_during_run"] == 0
    assert rec["kernel_calls_per_step"] == 55 and rec["neurons"] == 1544
    assert sum(rec["rates"].values()) > 0


@pytest.mark.slow
def test_the_state_profile_lists_each_thunk_of_both_apis(tmp_path):
    proc = subprocess.run([sys.executable, os.path.join(BENCH, "state_profile.py"), "--smoke", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=900, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads((tmp_path / "results" / "state_profile.json").read_text())
    assert [r["api"] for r in doc["runs"]] == ["brainpy.state", "bp.dyn"]
    for run in doc["runs"]:
        kinds = [t["kind"] for t in run["thunks"]]
        assert kinds.count("event kernel") == 1  # fused: one kernel call per step
        assert "neuron + synapse update" in kinds and run["wall_us"] > 0
        assert all(t["us"] >= 0 for t in run["thunks"])
    assert [r["api"] for r in doc["all_cores"]] == ["brainpy.state", "bp.dyn"]  # the processes not pinned
    for run in doc["all_cores"]:
        assert run["cores"] >= 1 and run["wall_us"] > 0 and run["threads"] >= 1
        assert run["thread_changes_per_step"] >= 0 and all(v > 0 for v in run["split_per_step"].values())
    md = (tmp_path / "results" / "state_profile.md").read_text()
    assert md.startswith("## brainpy.state beside bp.dyn: where a step of the seed network goes")
    assert "| brainpy.state |" in md and "| bp.dyn |" in md
    assert "| API | cores | wall µs/step | pinned (above) | threads that ran thunks |" in md
