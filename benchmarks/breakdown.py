"""Where one step of the microcircuit goes: XLA's own per-thunk profile of the compiled loop.

Usage::

    python benchmarks/breakdown.py --line 2.8=/path/venv/bin/python --line 2.9=/path/venv312/bin/python \\
        --scale 0.1 --scale 1 --variants merged fused --label before
    python benchmarks/breakdown.py --floor --line 2.8=...     # bandwidth and scatter benchmarks for the floor
    python benchmarks/breakdown.py --smoke                    # seconds, scale 0.02, writes nothing
    python benchmarks/breakdown.py --markdown-only            # rewrite results/breakdown.md from the JSON

Method. XLA's CPU runtime executes a compiled program as a sequence of *thunks* (a fused
loop, a custom call such as an event kernel, a copy, ...). With
``XLA_FLAGS=--xla_cpu_enable_xprof_traceme=true`` every thunk, including those inside the
``while`` loop of ``bm.for_loop``, records one event with its name and duration in
``jax.profiler``'s trace (checked on jax 0.10 and 0.12). The worker traces one chunk of
steps, sums the events by thunk name and maps each name to its instruction in the optimized
HLO (``compile().as_text()``). Each part of the model is traced inside a
``jax.named_scope`` (set here by wrapping the classes' methods, the model is not changed), so
every HLO instruction carries its part in ``op_name``; a fusion is attributed to the part
that owns most of its instructions, and fusions that mix parts are listed (XLA fuses, for
instance, the Poisson sampler with the synapse update that consumes it: the profile cannot
split one fused loop). Custom calls are the event kernels.

The profiled worker runs pinned to one core: XLA then runs one thunk at a time, so a thunk's
duration is its own work and the parts add up to the step (with two cores, independent
thunks overlap and a split loop waits for its slower half, so the sum says little). The
wall time per step without tracing is measured on one core and on two (both cores, as
users run it), as medians over ``--repeats`` chunks, with the CPU used by other processes
during the chunks (the machine is shared). ``executor`` is the untraced CPU time per step
(one core) not explained by the thunks (loop control, the thunk executor). ``sampler alone``
times the background's draws outside the model (the same generators and sizes, in a loop of
their own): the profile cannot separate them from the synapse update XLA fuses them with.

Every worker is its own process, under ``flock /tmp/halfproj-cpu.lock``. Results are merged
into ``results/breakdown.json`` (keyed by label, line, scale, variant, cores) and
``results/breakdown.md`` is rewritten from it; ``run.py --report-only`` includes it in
``BENCHMARKS.md``.
"""
from __future__ import annotations

import argparse
import collections
import datetime as _dt
import functools
import glob
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import machine_info  # benchmarks/, next to this script

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
JSON_PATH = RESULTS / "breakdown.json"
MD_PATH = RESULTS / "breakdown.md"
LOCK = "/tmp/halfproj-cpu.lock"
TRACE_FLAG = "--xla_cpu_enable_xprof_traceme=true"

#: The parts of a step, in table order. ``event kernels``: custom calls; ``other``: every
#: thunk outside the scoped parts (spike counters, loop counter, copies XLA inserts);
#: ``executor``: CPU time per step outside every thunk.
PARTS = ("event kernels", "background", "delay read", "delay write", "synapse", "neuron", "other", "executor")
_TRIVIAL = {"parameter", "constant", "bitcast", "broadcast", "tuple", "get-tuple-element", "reshape"}


# --------------------------------------------------------------------------- worker
def _scope_parts(bp, bhp, mc) -> None:
    """Trace each part of the model inside ``jax.named_scope('bhp_part_<part>')``."""
    import jax

    def wrap(cls, method, part):
        f = getattr(cls, method, None)
        if f is None or getattr(f, "_bhp_part", None):
            return

        @functools.wraps(f)
        def scoped(*args, **kwargs):
            with jax.named_scope("bhp_part_" + part.replace(" ", "_")):
                return f(*args, **kwargs)

        scoped._bhp_part = part
        setattr(cls, method, scoped)

    from brainpy_halfproj import _fused

    wrap(mc._PoissonCounts, "update", "background")
    wrap(bp.dnn.OneToOne, "update", "background")  # the background's weight
    wrap(bp.VarDelay, "retrieve", "delay read")
    wrap(bp.VarDelay, "update", "delay write")
    wrap(bp.dyn.Expon, "update", "synapse")
    wrap(bhp.HalfProjAlignPostMg, "update", "synapse")  # adds its comm's output into the shared synapse
    wrap(bhp.HalfProjAlignPost, "update", "synapse")
    wrap(_fused.FusedCall, "update", "synapse")  # spike buffers of the fused call and its additions
    wrap(_fused.FusedCall, "hand", "synapse")
    wrap(bp.dyn.LifRef, "update", "neuron")


def parse_hlo(text: str) -> tuple[dict, dict]:
    """``(instructions, computations)`` of an optimized HLO module's text.

    ``instructions[name] = (opcode, called computation or None, op_name)``;
    ``computations[name] = [instruction names]``.
    """
    instr, comps, current = {}, {}, None
    for line in text.splitlines():
        if line and not line[0].isspace():
            m = re.match(r"^(?:ENTRY )?%(\S+) ", line)
            current = m.group(1) if m and line.rstrip().endswith("{") else None
            if current:
                comps[current] = []
            continue
        m = re.match(r"^\s+(?:ROOT )?%(\S+) = .*? ([a-z][a-z0-9\-]*)\((.*)$", line)
        if m and current:
            name, opcode, rest = m.groups()
            op_name = re.search(r'op_name="([^"]*)"', rest)
            calls = re.search(r"calls=%([^,\s}]+)", rest)
            instr[name] = (opcode, calls.group(1) if calls else None, op_name.group(1) if op_name else "")
            comps[current].append(name)
    return instr, comps


def part_of(name: str, instr: dict, comps: dict) -> collections.Counter:
    """Instructions per part in thunk ``name`` (recursively through fused computations)."""
    opcode, calls, op_name = instr.get(name, ("?", None, ""))
    found: collections.Counter = collections.Counter()
    if opcode == "custom-call":
        found["event kernels"] += 1
        return found
    if calls:
        for inner in comps.get(calls, []):
            found += part_of(inner, instr, comps)
        return found
    if opcode in _TRIVIAL:
        return found
    scopes = re.findall(r"bhp_part_(\w+)", op_name)
    found[scopes[-1].replace("_", " ") if scopes else "other"] += 1
    return found


def _trace_events(directory: str) -> dict[str, list[int]]:
    """Durations (ns) of every event in the trace under ``directory``, by event name."""
    import jax

    path = sorted(glob.glob(os.path.join(directory, "**", "*.xplane.pb"), recursive=True))[-1]
    data = jax.profiler.ProfileData.from_file(path)
    durations: dict[str, list[int]] = collections.defaultdict(list)
    for plane in data.planes:
        for line in plane.lines:
            for event in line.events:
                durations[event.name].append(event.duration_ns)
    return durations


def _robust_mean(durations: list[int]) -> float:
    """Mean of a thunk's durations, leaving out those in which the core was taken away.

    A thunk's work varies from step to step with the spikes (a few times at most); a
    preemption by another process adds a scheduler time slice (milliseconds). Durations over
    ten times the median plus 100 µs are the latter.
    """
    import numpy as np

    d = np.asarray(durations, dtype=float)
    return float(d[d <= 10 * np.median(d) + 100e3].mean())


def _cpu_busy_s() -> float:
    """CPU seconds all processes have used so far (``/proc/stat``)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def worker(a: argparse.Namespace) -> dict:
    if a.cores == 1:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # before XLA sizes its thread pool
    import brainpy as bp
    import brainpy.math as bm
    import jax
    import numpy as np

    import brainpy_halfproj as bhp
    from brainpy_halfproj.models import POPULATIONS, microcircuit

    mc = sys.modules["brainpy_halfproj.models.microcircuit"]
    _scope_parts(bp, bhp, mc)
    bm.set_dt(0.1)
    if a.native:
        bhp.use_native_kernels()

    t0 = time.perf_counter()
    net = microcircuit(a.scale, seed=a.seed, fused=a.variant == "fused")
    build_s = time.perf_counter() - t0

    def body(i):
        net.step_run(i)

    run = bm.jit(lambda idx: bm.for_loop(body, idx))
    steps = a.steps
    counters = lambda: [v.value for v in net.spike_counts.values()]  # noqa: E731

    def chunk(k: int) -> float:
        t = time.perf_counter()
        run(np.arange(k * steps, (k + 1) * steps))
        jax.block_until_ready(counters())
        return time.perf_counter() - t

    hlo = run.lower(np.arange(steps)).compile().as_text()
    first = chunk(0)
    chunk(1)
    net.reset_spike_counts()
    walls, cpus, others = [], [], []
    for k in range(a.repeats):
        b0, o0 = _cpu_busy_s(), _own_cpu_s()
        walls.append(chunk(2 + k))
        cpus.append(_own_cpu_s() - o0)
        others.append(((_cpu_busy_s() - b0) - cpus[-1]) / walls[-1])
    spikes = {p: float(np.asarray(net.spike_counts[p].value).sum()) / (a.repeats * steps) for p in POPULATIONS}

    # The same chunk is traced ``--traces`` times from the same state (the model's variables
    # are put back before each), so every trace does the same work; for each thunk, the mean
    # duration over the chunk's steps (without steps in which another process took the core,
    # see ``_robust_mean``) of the least disturbed trace counts. Every duration includes the
    # cost of recording the event, estimated as the duration of the cheapest thunk (a scalar
    # operation) and taken off every thunk; what the parts do not explain of the untraced
    # step's CPU time is the executor's (dispatch, loop control).
    instr, comps = parse_hlo(hlo)
    start = [(var, var.value) for var in net.vars().unique().values()]
    traces, traced = [], []
    for _ in range(a.traces):
        for var, value in start:
            var.value = value
        trace_dir = tempfile.mkdtemp(prefix="bhp_breakdown_")
        try:
            jax.profiler.start_trace(trace_dir)
            traced.append(chunk(2 + a.repeats))
            jax.profiler.stop_trace()
            events = _trace_events(trace_dir)
        finally:
            shutil.rmtree(trace_dir, ignore_errors=True)
        traces.append({name: _robust_mean(d) / 1e3 for name, d in events.items()
                       if len(d) == steps and name in instr})
    thunks = {name: min(t.get(name, np.inf) for t in traces) for name in traces[0]}
    unmatched = sorted(name for name, d in events.items()
                       if len(d) == steps and name not in instr and not name.startswith(("$", "end: ")))
    record_us = min(thunks.values())
    parts = {p: dict(us=0.0, thunks=0) for p in PARTS}
    mixed = []
    for name, us in thunks.items():
        by_part = part_of(name, instr, comps)
        part = by_part.most_common(1)[0][0] if by_part else "other"
        parts[part]["us"] += us - record_us
        parts[part]["thunks"] += 1
        if len(by_part) > 1:
            mixed.append(dict(thunk=name, us=us - record_us, instructions=dict(by_part)))
    wall_us = float(np.median(walls)) / steps * 1e6
    cpu_us = float(np.median(cpus)) / steps * 1e6
    parts["executor"]["us"] = (cpu_us if a.cores == 1 else wall_us) - sum(p["us"] for p in parts.values())

    sampler_us = _time_sampler(net, steps) if net.sources else None

    # synapses per spike of each population (expected; exact for the stored connectivity)
    prm = net.params
    out_degree = {pre: float(sum(prm.realised_prob[POPULATIONS.index(post), POPULATIONS.index(pre)] * net.sizes[post]
                                 for post in POPULATIONS)) for pre in POPULATIONS}
    events = sum(spikes[p] * out_degree[p] for p in POPULATIONS)
    # the outputs of the event-kernel calls, per post population: one per recurrent
    # projection, or one per fused call
    calls_into = {post: (1 if a.variant == "fused" else sum(1 for pre, q, _ in net.routes if q == post and pre != "bg"))
                  for post in POPULATIONS}
    return dict(
        line=bp.__version__, scale=a.scale, variant=a.variant, native=a.native, cores=a.cores, seed=a.seed,
        steps=steps, repeats=a.repeats, neurons=int(sum(net.sizes.values())),
        build_s=build_s, first_chunk_s=first,
        wall_us=wall_us, wall_us_all=[w / steps * 1e6 for w in walls], cpu_us=cpu_us,
        others_cores=float(np.median(others)), traced_us=min(traced) / steps * 1e6, record_us=record_us,
        thunks_per_step=len(thunks), unmatched_thunks=unmatched,
        parts=parts, mixed=sorted(mixed, key=lambda m: -m["us"])[:12],
        spikes_per_step=spikes, events_per_step=events, sampler_us=sampler_us,
        sizes=dict(net.sizes), kernel_outputs_per_post=calls_into,
        hlo_fusions=sum(1 for v in instr.values() if v[0] == "fusion"),
        peak_rss_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        versions=dict(brainpy=bp.__version__, jax=jax.__version__,
                      brainevent=_version("brainevent")),
    )


def _time_sampler(net, steps: int) -> float:
    """CPU µs per step of the background's draws for every population, in a loop of their own."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from brainpy_halfproj.models._poisson import poisson_counts

    sources = list(net.sources.values())

    def body(i, total):
        return total + sum(poisson_counts(s.thresholds, s.key, i.astype(jnp.uint32), s.size).sum() for s in sources)

    loop = jax.jit(lambda k: jax.lax.fori_loop(k * steps, (k + 1) * steps, body, jnp.float32(0)))
    loop(0).block_until_ready()
    cpus = []
    for k in range(1, 4):
        c = _own_cpu_s()
        loop(k).block_until_ready()
        cpus.append(_own_cpu_s() - c)
    return float(np.median(cpus)) / steps * 1e6


def _version(name: str) -> str | None:
    from importlib import metadata
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


# --------------------------------------------------------------------------- floor
def floor_worker(a: argparse.Namespace) -> dict:
    """Memory bandwidth, and the cost of one random access (a scattered add, a gather), on one core."""
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    import jax
    import numba
    import numpy as np

    def bandwidth(nbytes: int, passes: int) -> float:
        """GB/s of an in-place ``x += 1`` over ``nbytes`` (read and written once per pass)."""
        x = np.zeros(nbytes // 4, dtype=np.float32)
        np.add(x, 1.0, out=x)  # the pages exist before the clock starts
        ts = []
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(passes):
                np.add(x, 1.0, out=x)
            ts.append(time.perf_counter() - t)
        return 2 * nbytes * passes / float(np.median(ts)) / 1e9

    out = {"cache_gb_s": bandwidth(4 * 2**20, 64), "dram_gb_s": bandwidth(512 * 2**20, 2)}
    # Random access, as a compiled loop does it (numba, which brainevent's CPU kernels use):
    # one scattered add per synaptic event into a post population, one gathered byte per
    # neuron from a delay buffer (rows at random, as per-neuron delays read them).
    @numba.njit(cache=False)
    def scatter(out, idx, w):
        for k in range(idx.size):
            out[idx[k]] += w[k]

    @numba.njit(cache=False)
    def gather(buf, rows, out):
        for j in range(rows.size):
            out[j] = buf[rows[j], j]

    def per_item_ns(f, args, items):
        f(*args)
        ts = []
        for _ in range(9):
            t = time.perf_counter()
            for _ in range(20):
                f(*args)
            ts.append(time.perf_counter() - t)
        return float(np.median(ts)) / (20 * items) * 1e9

    rng = np.random.default_rng(0)
    n_post, events = 20000, 100_000
    idx = rng.integers(0, n_post, events).astype(np.int32)
    out["scatter_ns_per_event"] = per_item_ns(scatter, (np.zeros(n_post, np.float32), idx,
                                                        rng.normal(size=events).astype(np.float32)), events)
    n, length = 20683, 49
    buf = rng.random((length, n)) < 0.01
    out["gather_ns_per_neuron"] = per_item_ns(gather, (buf, rng.integers(0, length, n).astype(np.int32),
                                                       np.zeros(n, bool)), n)
    from importlib import metadata

    out["line"] = metadata.version("brainpy")
    out["versions"] = dict(jax=jax.__version__)
    return out


# --------------------------------------------------------------------------- driver
def _run(python: str, args: list[str], env_flags: str = "", tree: Path = ROOT, timeout: int = 3600,
         locked: bool = True) -> dict:
    cmd = [python, str(Path(__file__).resolve()), *args]
    if locked and shutil.which("flock"):
        cmd = ["flock", LOCK, *cmd]
    env = dict(os.environ, PYTHONPATH=str(tree) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + env_flags).strip()
    print("$", " ".join(args), flush=True)
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if p.returncode != 0:
        sys.stderr.write(p.stderr[-4000:])
        raise SystemExit(f"worker failed ({p.returncode}): {' '.join(args)}")
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def _key(r: dict) -> str:
    kernels = "" if r["native"] else "/bridge"
    return f"{r['label']}/brainpy {r['line']}/scale={r['scale']}/{r['variant']}{kernels}/cores={r['cores']}"


def _fmt(x: float) -> str:
    return f"{x:.0f}" if abs(x) >= 10 else f"{x:.1f}"


def write_markdown(data: dict) -> str:
    runs = data.get("runs", {})
    m = data.get("machine", {})
    lines = [
        "## Microcircuit: where a step goes",
        "",
        "Written by `benchmarks/breakdown.py` (method in its docstring): XLA's own per-thunk profile of "
        "the compiled `for_loop` (`XLA_FLAGS=--xla_cpu_enable_xprof_traceme=true`, `jax.profiler`), each "
        "thunk mapped through the optimized HLO to the part of the model whose `jax.named_scope` owns most "
        "of its instructions. Profiled on one core, so that thunks do not overlap: per part, the sum over "
        "its thunks of each thunk's mean duration over the profiled steps (without the steps in which "
        "another process took the core), less the cost of recording "
        "an event (`rec.`: the duration of the cheapest thunk, a scalar operation), in µs per step "
        "and as a share of the process's CPU time per step on one core (untraced; unlike wall time, it "
        "does not count the time other processes held the core); `executor`: that CPU time minus the "
        "parts (thunk dispatch, loop control). Wall time per step without tracing on one core and on both "
        "(as users run it): medians of chunks; in brackets the cores other processes used meanwhile (the "
        "machine is shared, and a loaded second core slows a two-core run). `s per bio s`: the faster "
        "wall time. `sampler alone`: CPU time of the background's draws in a loop of their own (XLA fuses "
        "them with the synapse update, so the profile's `background` holds both). Microcircuit "
        "`seed=1`, native kernels; events per step from the spike counts of the timed chunks and each "
        "population's expected synapses per spike. The profiled chunk is traced three times from the "
        "same state; per thunk, the least disturbed trace counts.",
        "",
        f"Machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores; commit {m.get('commit', '?')}.",
        "",
    ]
    header = ("| run | 1 core: wall / CPU µs per step (others) | 2 cores: wall (others) | s per bio s | "
              + " | ".join(PARTS) + " | sampler alone | thunks | rec. µs | events / step | kernel ns / event |")
    lines += [header, "| --- |" + " ---: |" * (header.count("|") - 2)]
    groups: dict = collections.defaultdict(dict)
    for r in runs.values():
        groups[(r["label"], r["line"], r["scale"], r["variant"], r["native"])][r["cores"]] = r
    for (label, line, scale, variant, native), by_cores in sorted(groups.items(), key=lambda kv: (
            kv[0][1], kv[0][2], kv[0][3], kv[0][0] != "before", kv[0][0])):
        one, two = by_cores.get(1), by_cores.get(2)
        prof = one or two
        walls = [r["wall_us"] for r in (one, two) if r]
        cells = [
            f"{label}: brainpy {line}, scale {scale}, {variant}{'' if native else ' (bridge)'}",
            f"{_fmt(one['wall_us'])} / {_fmt(one['cpu_us'])} ({one['others_cores']:.1f})" if one else "–",
            f"{_fmt(two['wall_us'])} ({two['others_cores']:.1f})" if two else "–",
            f"{min(walls) * 1e-2:.2f}",
        ]
        total = prof["cpu_us"] if prof["cores"] == 1 else prof["wall_us"]
        for p in PARTS:
            us = prof["parts"][p]["us"]
            cells.append(f"{_fmt(us)} ({us / total * 100:.0f} %)")
        events = prof["events_per_step"]
        kernel_ns = f"{prof['parts']['event kernels']['us'] * 1e3 / events:.1f}" if events >= 1 else "–"
        sampler = prof.get("sampler_us")
        cells += ["–" if sampler is None else _fmt(sampler), str(prof["thunks_per_step"]), f"{prof['record_us']:.2f}",
                  f"{events:.0f}", kernel_ns]
        lines.append("| " + " | ".join(cells) + " |")
    mixed = collections.Counter()
    profiled = [r for r in runs.values() if r["cores"] == 1]
    for r in profiled:
        for kinds in {" + ".join(sorted(f["instructions"])) for f in r["mixed"]}:
            mixed[kinds] += 1
    if mixed:
        lines += ["", "Fused loops that hold more than one part (attributed to the part with most instructions), "
                  f"and in how many of the {len(profiled)} profiled runs they occur: "
                  + "; ".join(f"{k} ({v})" for k, v in mixed.most_common()) + "."]
    floor = data.get("floor")
    if floor:
        lines += ["", "### Floor", ""] + floor_markdown(floor, runs)
    notes = data.get("notes", [])
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def floor_bytes(r: dict) -> dict[str, float]:
    """Bytes each element-wise part must move per step, at least (one pass, nothing recomputed)."""
    sizes, outs = r["sizes"], r["kernel_outputs_per_post"]
    n = sum(sizes.values())
    return {
        "event kernels": 4.0 * sum(sizes[p] * outs[p] for p in sizes),  # zeroing each call's output
        "synapse": 4.0 * sum(sizes[p] * (2 + outs[p]) for p in sizes),  # g read and written, each output read
        "neuron": 21.0 * n,  # V, last spike time, input read; V, last spike time, spike written
        "delay read": 4.0 * n,  # the neuron's delay (the spike: one random access, see floor_markdown)
        "delay write": 1.0 * n,
        "other": 8.0 * n,  # spike counters
    }


def floor_markdown(floor: dict, runs: dict) -> list[str]:
    """The per-step floor of each part from bandwidth and event count, against the profile."""
    lines = []
    for line, f in sorted(floor.items()):
        lines.append(f"- brainpy {line} (jax {f['versions']['jax']}), one core: copy bandwidth "
                     f"{f['cache_gb_s']:.0f} GB/s in cache (4 MiB), {f['dram_gb_s']:.0f} GB/s from memory "
                     f"(512 MiB); in a compiled loop (numba), a scattered add of one event into a "
                     f"20,000-neuron vector {f['scatter_ns_per_event']:.2f} ns, a byte gathered from a random "
                     f"row of a 49 x 20,683 delay buffer {f.get('gather_ns_per_neuron', float('nan')):.2f} ns.")
    lines += [
        "",
        "Floor per part: the bytes it must move in one pass (state read and written once, nothing "
        "recomputed; the whole state fits in the 32 MiB cache) at the cache bandwidth, plus one "
        "scattered add per synaptic event for the event kernels and one random gather per neuron for "
        "the delay read. The background's floor is arithmetic, "
        "not memory (its counts are consumed where they are drawn): it is left out. The profile puts the "
        "synapse update in the background's fused loop, so the two are compared together.",
        "",
        "| run | floor µs/step | event kernels: measured / floor | background + synapse | delay read | "
        "delay write | neuron | other + executor |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key in sorted(runs):
        r = runs[key]
        f = floor.get(r["line"])
        if r["cores"] != 1 or f is None or "sizes" not in r:
            continue
        bw = f["cache_gb_s"]  # bytes per ns
        fl = {k: v / bw / 1e3 for k, v in floor_bytes(r).items()}
        fl["event kernels"] += r["events_per_step"] * f["scatter_ns_per_event"] / 1e3
        fl["delay read"] += sum(r["sizes"].values()) * f.get("gather_ns_per_neuron", 0.0) / 1e3
        parts = r["parts"]

        def pair(measured: float, floor_us: float) -> str:
            return f"{_fmt(measured)} / {_fmt(floor_us)} ({measured / floor_us:.0f}x)" if floor_us > 0 else "–"

        lines.append("| " + " | ".join([
            f"{r['label']}: brainpy {r['line']}, scale {r['scale']}, {r['variant']}",
            _fmt(sum(fl.values())),
            pair(parts["event kernels"]["us"], fl["event kernels"]),
            pair(parts["background"]["us"] + parts["synapse"]["us"], fl["synapse"]),
            pair(parts["delay read"]["us"], fl["delay read"]),
            pair(parts["delay write"]["us"], fl["delay write"]),
            pair(parts["neuron"]["us"], fl["neuron"]),
            pair(parts["other"]["us"] + parts["executor"]["us"], fl["other"]),
        ]) + " |")
    return lines


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--floor-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--line", action="append", default=[], metavar="LABEL=PYTHON",
                    help="a brainpy line and its interpreter (default: this interpreter)")
    ap.add_argument("--scale", type=float, action="append")
    ap.add_argument("--variants", nargs="*", default=["merged", "fused"], help="merged, fused")
    ap.add_argument("--variant", default="merged", help=argparse.SUPPRESS)
    ap.add_argument("--cores", type=int, nargs="*", default=[1, 2], help="1 (pinned; profiled), 2")
    ap.add_argument("--steps", type=int, default=500, help="steps per chunk (timed and profiled)")
    ap.add_argument("--repeats", type=int, default=5, help="timed chunks (median)")
    ap.add_argument("--traces", type=int, default=3, help="profiled runs of one chunk (the least disturbed counts)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bridge", action="store_true", help="brainevent's Python bridge instead of native kernels")
    ap.add_argument("--label", default="now", help="key of these runs in the JSON, e.g. before / after")
    ap.add_argument("--tree", action="append", default=[], metavar="LABEL=PATH",
                    help="measure the plugin in another checkout (e.g. before=/tmp/main-copy) under its own "
                         "label; runs of the trees alternate, so that they share the machine's load")
    ap.add_argument("--floor", action="store_true", help="run the bandwidth and scatter benchmarks")
    ap.add_argument("--smoke", action="store_true",
                    help="scale 0.02, 20 steps, one core, no lock; writes nothing (timings meaningless)")
    ap.add_argument("--markdown-only", action="store_true")
    a = ap.parse_args(argv)
    a.native = not a.bridge
    if a.markdown_only:
        MD_PATH.write_text(write_markdown(json.loads(JSON_PATH.read_text())))
        return
    if a.worker or a.floor_worker:
        if a.worker:
            a.scale, a.cores = a.scale[-1], a.cores[-1]
        print("RESULT " + json.dumps(worker(a) if a.worker else floor_worker(a)), flush=True)
        return

    lines = dict(item.split("=", 1) for item in a.line) or {"this": sys.executable}
    trees = {tag: Path(path).resolve() for tag, path in (item.split("=", 1) for item in a.tree)} or {a.label: ROOT}
    if a.smoke:
        a.scale, a.variants, a.cores, a.steps, a.repeats, a.traces = [0.02], ["merged"], [1], 20, 2, 1
    data = json.loads(JSON_PATH.read_text()) if JSON_PATH.exists() and not a.smoke else {"runs": {}}
    data["machine"] = machine_info()
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M")
    new = []
    for _label, python in lines.items():
        if a.floor:
            f = _run(python, ["--floor-worker"])
            data.setdefault("floor", {})[f["line"]] = dict(f, date=stamp)
            continue
        for scale in a.scale or [0.1]:
            for variant in a.variants:
                for cores in a.cores:
                    for tag, tree in trees.items():
                        args = ["--worker", "--scale", str(scale), "--variant", variant, "--cores", str(cores),
                                "--steps", str(a.steps), "--repeats", str(a.repeats), "--traces", str(a.traces),
                                "--seed", str(a.seed)]
                        r = _run(python, args + (["--bridge"] if a.bridge else []), TRACE_FLAG, tree,
                                 locked=not a.smoke)
                        r.update(label=tag, date=stamp)
                        new.append(r)
                        data["runs"][_key(r)] = r
                        print(f"{_key(r)}: {r['wall_us']:.0f} us/step (others {r['others_cores']:.1f}), "
                              + ", ".join(f"{p} {v['us']:.0f}" for p, v in r["parts"].items()), flush=True)
    if a.smoke:
        print(write_markdown({"runs": {_key(r): r for r in new}, "machine": data["machine"]}))
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    JSON_PATH.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    MD_PATH.write_text(write_markdown(data))


if __name__ == "__main__":
    main()
