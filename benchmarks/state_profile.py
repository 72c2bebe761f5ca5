"""Where a step of the seed network goes on brainpy.state and on bp.dyn: XLA's per-thunk profile.

Usage::

    python benchmarks/state_profile.py                  # both APIs, fused + native, writes results/state_profile.*
    python benchmarks/state_profile.py --smoke --out /tmp/p   # 400 neurons, 200 steps (tested)
    python benchmarks/state_profile.py --markdown-only

The seed E/I network (4000 neurons, JIT connectivity, ``benchmarks/state_workloads.py`` and
``benchmarks/workloads.py``) with ``fused=True`` and native kernels, once built from
``brainpy_halfproj.state`` and once from ``brainpy_halfproj.dyn``, each in its own process
pinned to one core (so that XLA runs one thunk at a time and a thunk's duration is its own
work). The method is ``breakdown.py``'s (read its docstring): with
``XLA_FLAGS=--xla_cpu_enable_xprof_traceme=true`` every thunk of the compiled loop records an
event in ``jax.profiler``'s trace; each thunk's mean duration over the traced steps (less the
cost of recording, the cheapest thunk's duration) is listed with what it computes, read from
the optimized HLO: a custom call (the event kernel), a conditional, or a fused loop and its
operations. ``wall``: untraced time per step on that one core (median of ``--repeats`` calls).

A second process per API runs on all the cores (not pinned) and reads from the same kind of
trace which threads ran the step's thunks: how often consecutive thunks ran on different
threads, and which fused loops XLA split over its thread pool (a thunk during which its thread
recorded a ``ThreadpoolListener::Record`` event: XLA handed part of the loop to another thread).

Every worker runs under ``flock /tmp/halfproj-cpu.lock`` (``run.py``'s lock). Results go to
``results/state_profile.json`` and ``results/state_profile.md`` (included in ``BENCHMARKS.md`` by
``run.py --report-only``).
"""
from __future__ import annotations

import argparse
import bisect
import collections
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import machine_info  # benchmarks/, next to this script

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
LOCK = "/tmp/halfproj-cpu.lock"
TRACE_FLAG = "--xla_cpu_enable_xprof_traceme=true"
APIS = ("brainpy.state", "bp.dyn")
#: Operations worth naming in a fused loop (the others move or reshape data).
_NAMED = ("exponential-minus-one", "exponential", "divide", "log", "select", "compare", "concatenate",
          "dynamic-update-slice", "dynamic-slice", "reduce", "reduce-window", "multiply", "add")


def _ops(name: str, instr: dict, comps: dict) -> collections.Counter:
    """Operations in thunk ``name`` (through the computations it calls), trivial ones left out."""
    opcode, calls, _ = instr.get(name, ("?", None, ""))
    found: collections.Counter = collections.Counter()
    if calls:
        for inner in comps.get(calls, []):
            found += _ops(inner, instr, comps)
        return found
    if opcode not in {"parameter", "constant", "bitcast", "broadcast", "tuple", "get-tuple-element", "reshape"}:
        found[opcode] += 1
    return found


def _kind(name: str, instr: dict, comps: dict) -> str:
    opcode = instr[name][0]
    if opcode == "custom-call":
        return "event kernel"
    if opcode == "conditional":
        return "conditional"
    ops = _ops(name, instr, comps)
    if opcode == "fusion" and ops["multiply"] + ops["add"] >= 10:
        return "neuron + synapse update"
    return "other"


def _timeline(directory: str, names: set, steps: int) -> dict:
    """Which threads ran the thunks ``names`` in the trace under ``directory``, per step of ``steps``."""
    import jax

    path = sorted(glob.glob(os.path.join(directory, "**", "*.xplane.pb"), recursive=True))[-1]
    thunks, records = [], []
    for plane in jax.profiler.ProfileData.from_file(path).planes:
        for k, line in enumerate(plane.lines):
            for e in line.events:
                if e.name in names:
                    thunks.append((e.start_ns, e.start_ns + e.duration_ns, (plane.name, k), e.name))
                elif e.name == "ThreadpoolListener::Record":
                    records.append((e.start_ns, (plane.name, k)))
    thunks.sort()
    by_line = collections.defaultdict(list)
    for start, end, line, name in thunks:
        by_line[line].append((start, end, name))
    split: collections.Counter = collections.Counter()
    for t, line in records:  # the thunk running on that thread at that moment handed work to the pool
        runs = by_line.get(line, [])
        i = bisect.bisect_right(runs, (t, float("inf"), "")) - 1
        if i >= 0 and runs[i][0] <= t <= runs[i][1]:
            split[runs[i][2]] += 1
    changes = sum(a[2] != b[2] for a, b in zip(thunks[:-1], thunks[1:], strict=True))
    return dict(threads=len(by_line), thread_changes_per_step=changes / steps,
                split_per_step={name: n / steps for name, n in split.most_common()})


def worker(a: argparse.Namespace) -> dict:
    if not a.all_cores:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # before XLA sizes its thread pool
    sys.path.insert(0, str(HERE))
    import jax
    import numpy as np
    from breakdown import _robust_mean, _trace_events, parse_hlo

    import brainpy_halfproj as bhp

    bhp.use_native_kernels()
    steps = a.steps
    if a.api == "brainpy.state":
        import brainstate
        import brainunit as u
        import state_workloads as sw

        import brainpy_halfproj.state as ns
        brainstate.environ.set(dt=0.1 * u.ms)
        net = sw.make_einet(ns, n=a.n, conn="jit", fused=True)
        run = brainstate.transform.jit(lambda idx: brainstate.transform.for_loop(net.update, idx))
    else:
        import brainpy.math as bm
        import workloads as w

        import brainpy_halfproj.dyn as dyn
        bm.set_dt(0.1)
        model = w.make_einet(dyn, n=a.n, kernel="jit", fused=True)
        run = bm.jit(lambda idx: bm.for_loop(lambda i: model.step_run(i, w.I_EXT), idx))
    instr, comps = parse_hlo(run.lower(np.arange(steps)).compile().as_text())
    jax.block_until_ready(run(np.arange(steps)))
    walls = []
    for k in range(a.repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(run(np.arange(steps) + (k + 1) * steps))
        walls.append((time.perf_counter() - t0) / steps * 1e6)
    trace_dir = tempfile.mkdtemp(prefix="bhp_state_profile_")
    try:
        jax.profiler.start_trace(trace_dir)
        jax.block_until_ready(run(np.arange(steps) + (a.repeats + 1) * steps))
        jax.profiler.stop_trace()
        events = _trace_events(trace_dir)
        per_step = {n for n, d in events.items() if len(d) == steps and n in instr}  # the loop body's thunks
        timeline = _timeline(trace_dir, per_step, steps) if a.all_cores else None
    finally:
        shutil.rmtree(trace_dir, ignore_errors=True)
    thunks = {n: _robust_mean(events[n]) / 1e3 for n in per_step}
    record_us = min(thunks.values())
    rows = []
    for name, us in sorted(thunks.items(), key=lambda t: -t[1]):
        ops = _ops(name, instr, comps)
        rows.append(dict(thunk=name, us=us - record_us, kind=_kind(name, instr, comps),
                         ops={op: ops[op] for op in _NAMED if ops[op]}))
    import brainpy
    if a.all_cores:
        return dict(api=a.api, n=a.n, steps=steps, cores=len(os.sched_getaffinity(0)),
                    wall_us=statistics.median(walls), **timeline)
    return dict(api=a.api, n=a.n, steps=steps, wall_us=statistics.median(walls), record_us=record_us,
                thunks=rows, versions=dict(brainpy=brainpy.__version__, jax=jax.__version__))


def _markdown(doc: dict) -> str:
    m = doc["machine"]
    when = str(m.get("date", ""))[:16].replace("T", " ")
    lines = ["## brainpy.state beside bp.dyn: where a step of the seed network goes", "",
             f"Written by `python benchmarks/state_profile.py` ({when} UTC, commit "
             f"`{m.get('commit', '')}`, {m.get('cpu', '')}, {m.get('cores')} cores; "
             + ", ".join(f"{k} {v}" for k, v in doc["runs"][0]["versions"].items())
             + "). The seed E/I network (4000 neurons, JIT connectivity), fused + native, one process per API "
             "pinned to one core; µs per step of each thunk of the compiled loop (XLA's profile, the method of "
             "`breakdown.py`), grouped by what it computes. *wall*: untraced time per step on that core.", "",
             "| API | wall µs/step | event kernel | neuron + synapse update | conditional | other | thunks |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in doc["runs"]:
        by = collections.defaultdict(float)
        for t in r["thunks"]:
            by[t["kind"]] += t["us"]
        lines.append(f"| {r['api']} | {r['wall_us']:.1f} | {by['event kernel']:.1f} | "
                     f"{by['neuron + synapse update']:.1f} | {by['conditional']:.1f} | {by['other']:.1f} | "
                     f"{len(r['thunks'])} |")
    lines += ["", "The neuron + synapse loops, operation by operation:", ""]
    for r in doc["runs"]:
        for t in r["thunks"]:
            if t["kind"] == "neuron + synapse update":
                ops = ", ".join(f"{k} {v}" for k, v in t["ops"].items())
                lines.append(f"- {r['api']}, `{t['thunk']}`: {t['us']:.2f} µs ({ops})")
    if doc.get("all_cores"):
        lines += ["", "The same, each API in a process on all the cores (not pinned): *thread changes*: consecutive "
                  "thunks of the step run on different threads; *split*: XLA handed part of a fused loop to another "
                  "thread of its pool (per step).", "",
                  "| API | cores | wall µs/step | pinned (above) | threads that ran thunks | thread changes per step "
                  "| loops split per step |", "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
        pinned = {r["api"]: r["wall_us"] for r in doc["runs"]}
        for r in doc["all_cores"]:
            split = ", ".join(f"`{k}` {v:.2f}" for k, v in r["split_per_step"].items() if v >= 0.01) or "none"
            lines.append(f"| {r['api']} | {r['cores']} | {r['wall_us']:.1f} | {pinned.get(r['api'], 0):.1f} | "
                         f"{r['threads']} | {r['thread_changes_per_step']:.2f} | {split} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--api", choices=APIS, default=APIS[0], help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, default=4000)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--all-cores", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--smoke", action="store_true", help="400 neurons, 200 steps, no lock")
    p.add_argument("--out", default=str(HERE), help="folder that gets results/state_profile.{json,md}")
    p.add_argument("--markdown-only", action="store_true")
    a = p.parse_args(argv)
    if a.worker:
        print("RESULT " + json.dumps(worker(a)), flush=True)
        return
    out = Path(a.out) / "results"
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "state_profile.json", out / "state_profile.md"
    if a.markdown_only:
        doc = json.loads(json_path.read_text())
    else:
        if a.smoke:
            a.n, a.steps, a.repeats = 400, 200, 2
        runs, all_cores = [], []
        for cores in ("one", "all"):
            for api in APIS:
                cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--api", api, "--n", str(a.n),
                       "--steps", str(a.steps), "--repeats", str(a.repeats)]
                cmd += ["--all-cores"] if cores == "all" else []
                if not a.smoke:
                    cmd = ["flock", LOCK, *cmd]
                env = dict(os.environ, XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + " " + TRACE_FLAG).strip())
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
                result = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
                if proc.returncode or not result:
                    raise RuntimeError(f"{api} worker failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
                (runs if cores == "one" else all_cores).append(json.loads(result[-1][len("RESULT "):]))
                print(f"{api}: {json.loads(result[-1][len('RESULT '):])['wall_us']:.1f} µs per step on {cores} core(s)",
                      flush=True)
        doc = dict(machine=machine_info(), smoke=a.smoke, runs=runs, all_cores=all_cores)
        json_path.write_text(json.dumps(doc, indent=1))
    md_path.write_text(_markdown(doc))
    print(f"wrote {md_path}", flush=True)


if __name__ == "__main__":
    main()
