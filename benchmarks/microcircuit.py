"""Benchmark the Potjans & Diesmann (2014) microcircuit: merged vs unmerged, and NEST.

Every measurement runs in its own subprocess, so that build time, compile time,
run time and peak RSS (``resource.getrusage(...).ru_maxrss``) are its own.

Usage::

    python benchmarks/microcircuit.py --smoke            # seconds, scale 0.02
    python benchmarks/microcircuit.py --scale 1 --scale 0.1 --variants merged unmerged
    python benchmarks/microcircuit.py --nest-python /tmp/vnest/bin/python --nest-scale 1
    python benchmarks/microcircuit.py --markdown-only     # rewrite results/microcircuit.md from the JSON

Protocol per run: build; simulate ``--transient`` ms in chunks of 100 ms (the
first chunk includes jit compilation; compile time is reported as the first
chunk's time minus the mean of the later transient chunks); reset the spike
counters; simulate ``--duration`` ms and report its wall time per biological
second and the rate of each population.  Results are merged into
``benchmarks/results/microcircuit.json`` (keyed by run) and the markdown section
``benchmarks/results/microcircuit.md`` is rewritten from the JSON (with a table of derived
parameters computed from ``brainpy_halfproj/models/potjans2014.py``, not measured).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from machine import machine_info  # benchmarks/, next to this script

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
JSON_PATH = RESULTS / "microcircuit.json"
MD_PATH = RESULTS / "microcircuit.md"


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux


# --------------------------------------------------------------------------- brainpy worker
def worker_brainpy(a: argparse.Namespace) -> dict:
    sys.path.insert(0, str(ROOT))
    t0 = time.perf_counter()
    import brainpy as bp
    import brainpy.math as bm
    import case  # benchmarks/, next to this script
    import numpy as np
    import workloads  # benchmarks/, next to this script

    import brainpy_halfproj
    from brainpy_halfproj import dyn, merge_report
    from brainpy_halfproj.models import PUBLISHED_RATES, microcircuit, population_rates, simulate

    bm.set_dt(0.1)
    if a.native:
        brainpy_halfproj.use_native_kernels()
    t_import = time.perf_counter() - t0

    t0 = time.perf_counter()
    net = microcircuit(a.scale, background=a.background, merged=a.variant in ("merged", "fused"),
                       fused=a.variant == "fused", connectivity=a.connectivity, seed=a.seed, dyn=dyn,
                       delays=a.delays, jit_correction=not a.no_jit_correction)
    t_build = time.perf_counter() - t0
    kernel_calls = workloads.kernel_calls_per_step(net, net.step_run)

    # The transient runs the loop the measured run uses (record="counts", 1000 steps a call),
    # so that its first chunk compiles it and the measured run compiles nothing.
    chunk = 100.0
    n_chunks = max(2, int(round(a.transient / chunk)))
    times = []
    for k in range(n_chunks):
        t0 = time.perf_counter()
        simulate(net, chunk, record="counts", start_step=int(round(k * chunk / 0.1)))
        times.append(time.perf_counter() - t0)
    steady = sum(times[1:]) / len(times[1:])
    t_compile = times[0] - steady

    net.reset_spike_counts()
    compiled = case.compilations_so_far()
    t0 = time.perf_counter()
    counts = simulate(net, a.duration, record="counts", start_step=int(round(n_chunks * chunk / 0.1)))
    t_run = time.perf_counter() - t0
    compilations_during_run = case.compilations_so_far() - compiled
    rates = population_rates(net, a.duration)
    activity = {}
    for p, c in counts.items():  # 1 ms population rate: irregularity and dominant frequency
        r = np.asarray(c, float).reshape(-1, 10).sum(1) / net.sizes[p] / 1e-3
        f = np.fft.rfftfreq(len(r), 1e-3)
        power = np.abs(np.fft.rfft(r - r.mean())) ** 2
        band = f > 5.0
        activity[p] = dict(cv_1ms=float(r.std() / max(r.mean(), 1e-12)),
                           peak_hz=float(f[band][np.argmax(power[band])]))
    report = merge_report(net)
    return dict(
        simulator="brainpy", line=bp.__version__, variant=a.variant, scale=a.scale, native=a.native,
        kernel_calls_per_step=kernel_calls,
        stacked_connectivity_gib=sum(f.nbytes for f in report.fused) / 2**30,
        background=a.background, connectivity=a.connectivity, seed=a.seed, delays=a.delays,
        jit_correction=not a.no_jit_correction, pinned=os.sched_getaffinity(0) != set(range(os.cpu_count())),
        neurons=int(sum(net.sizes.values())),
        projections=len(net.projections), merge_groups=len(report.groups),
        import_s=t_import, build_s=t_build, compile_s=t_compile,
        transient_ms=n_chunks * chunk, duration_ms=a.duration,
        run_s_per_bio_s=t_run / (a.duration * 1e-3), compilations_during_run=compilations_during_run,
        rates=rates, activity=activity, published_full_scale=PUBLISHED_RATES, peak_rss_gib=_peak_rss_gib(),
        versions=dict(brainpy=bp.__version__, jax=__import__("jax").__version__),
    )


# --------------------------------------------------------------------------- NEST worker
def _potjans2014():
    """The model's tables and rules (``brainpy_halfproj/models/potjans2014.py``), loaded from its file.

    Importing it through the package would import brainpy, which the NEST venv lacks; the
    module itself needs only numpy.
    """
    name = "potjans2014"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "brainpy_halfproj" / "models" / "potjans2014.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses looks the module up while it builds the class
        spec.loader.exec_module(module)
    return sys.modules[name]


def nest_parameters(scale: float, seed: int, fixed_delays: bool) -> dict:
    """What the NEST reference needs, from the same tables and scaling rules as our model.

    NEST draws a fixed total number of synapses (multapses allowed), one normal weight
    and delay per synapse, and integrates the exponential current exactly, so it takes
    the reference's weights without our charge correction and no JIT correction.
    """
    import numpy as np

    m = _potjans2014()
    prm = m.derive(scale, background="poisson", connectivity="multapse",
                   delays="fixed" if fixed_delays else "normal", jit_numerator=None, seed=seed, dt=0.1)
    pops = m.POPULATIONS
    n_full = np.array([m.FULL_SIZES[p] for p in pops], float)
    return dict(
        populations=pops,
        sizes=np.array([prm.sizes[p] for p in pops]),
        neuron=dict(C_m=m.C_M, tau_m=m.TAU_M, tau_syn_ex=m.TAU_SYN, tau_syn_in=m.TAU_SYN, t_ref=m.T_REF,
                    E_L=m.E_L, V_th=m.V_TH, V_reset=m.V_RESET),
        dc=np.array([prm.dc[p] for p in pops]),
        v0_mean=[m.V0_MEAN[p] for p in pops], v0_std=[m.V0_STD[p] for p in pops],
        # synapses per projection: the full-scale total (mean synapses per pair times pairs),
        # scaled by N_scaling * K_scaling
        n_syn=np.round(prm.prob * np.outer(n_full, n_full) * scale * scale).astype(int),
        weights=prm.weights / prm.charge_correction, weight_rel_std=m.WEIGHT_REL_STD,
        w_ext=prm.w_ext / prm.charge_correction, k_ext=np.array([prm.k_ext[p] for p in pops]),
        bg_rate=m.BG_RATE,
        delay_mean=[prm.delay_ms[p] for p in pops], delay_rel_std=m.DELAY_REL_STD,
        fixed_delay=[round(prm.delay_steps[p] * prm.dt, 6) if fixed_delays else None for p in pops],
        published_rates=m.PUBLISHED_RATES,
    )


def worker_nest(a: argparse.Namespace) -> dict:
    """The reference model in NEST: fixed total number of synapses, normal weights
    and delays (redrawn to keep their sign / stay >= dt), Poisson background."""
    import numpy as np

    t0 = time.perf_counter()
    import nest

    nest.set_verbosity("M_ERROR")
    t_import = time.perf_counter() - t0
    s = a.scale
    prm = nest_parameters(s, a.seed, a.fixed_delays)
    POP, n, n_syn = prm["populations"], prm["sizes"], prm["n_syn"]

    t0 = time.perf_counter()
    nest.ResetKernel()
    nest.SetKernelStatus({"resolution": 0.1, "local_num_threads": a.threads, "rng_seed": a.seed + 1,
                          "print_time": False})
    pops, recs = [], []
    for i in range(len(POP)):
        pop = nest.Create("iaf_psc_exp", int(n[i]), params={**prm["neuron"], "I_e": float(prm["dc"][i])})
        pop.set({"V_m": nest.random.normal(mean=prm["v0_mean"][i], std=prm["v0_std"][i])})
        pops.append(pop)
        rec = nest.Create("spike_recorder", params={"start": a.transient})
        nest.Connect(pop, rec)
        recs.append(rec)
        pg = nest.Create("poisson_generator", params={"rate": prm["bg_rate"] * float(prm["k_ext"][i])})
        nest.Connect(pg, pop, "all_to_all", {"weight": float(prm["w_ext"]), "delay": 1.5})
    for i in range(8):
        for j in range(8):
            if n_syn[i, j] <= 0:
                continue
            mu = float(prm["weights"][i, j])
            wd = nest.math.redraw(nest.random.normal(mean=mu, std=abs(mu) * prm["weight_rel_std"]),
                                  min=0.0 if mu > 0 else -np.inf, max=np.inf if mu > 0 else 0.0)
            if a.fixed_delays:  # as our model: 1.5 ms and 0.75 ms rounded to 0.8 ms
                dd = prm["fixed_delay"][j]
            else:
                d = prm["delay_mean"][j]
                dd = nest.math.redraw(nest.random.normal(mean=d, std=d * prm["delay_rel_std"]), min=0.1, max=np.inf)
            nest.Connect(pops[j], pops[i],
                         {"rule": "fixed_total_number", "N": int(n_syn[i, j]),
                          "allow_autapses": True, "allow_multapses": True},
                         {"synapse_model": "static_synapse", "weight": wd, "delay": dd})
    nest.Prepare()
    nest.Run(0.1)  # forces the connection infrastructure to be finalised
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    nest.Run(a.transient - 0.1)
    t_transient = time.perf_counter() - t0
    t0 = time.perf_counter()
    nest.Run(a.duration)
    t_run = time.perf_counter() - t0
    nest.Cleanup()
    out_rates = {p: recs[i].get("n_events") / n[i] / (a.duration * 1e-3) for i, p in enumerate(POP)}
    return dict(
        simulator="nest", variant=f"nest-{a.threads}threads" + ("-fixed-delays" if a.fixed_delays else ""),
        scale=s, background="poisson",
        connectivity="fixed_total_number", seed=a.seed, neurons=int(n.sum()),
        synapses=int(n_syn.sum()), import_s=t_import, build_s=t_build, compile_s=None,
        transient_ms=a.transient, transient_s=t_transient, duration_ms=a.duration,
        run_s_per_bio_s=t_run / (a.duration * 1e-3), rates=out_rates,
        published_full_scale=prm["published_rates"], peak_rss_gib=_peak_rss_gib(),
        versions=dict(nest=nest.__version__ if hasattr(nest, "__version__") else "?"),
    )


# --------------------------------------------------------------------------- driver
def _gib(machine: dict) -> str:
    """The machine's memory as text (``memory``: the records' key before ``mem_gib``)."""
    if machine.get("mem_gib"):
        return f"{machine['mem_gib']:.1f} GiB"
    return machine.get("memory", "?")


def _run_worker(python: str, args: list[str], taskset: str | None = None) -> dict:
    cmd = [python, str(Path(__file__).resolve()), "--worker", *args]
    if taskset:
        cmd = ["taskset", "-c", taskset, *cmd]
    print("$", " ".join(cmd), flush=True)
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stderr[-4000:])
        raise SystemExit(f"worker failed ({p.returncode}): {' '.join(args)}")
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def _key(r: dict) -> str:
    """Run key; runs from before the delay-timing fix (no ``delays`` field) say so."""
    if r["simulator"] == "brainpy":
        who = f"brainpy {r.get('line') or r['versions']['brainpy']}"
        delays = r.get("delays", "fixed-old")
        corr = "jitcorr" if r.get("jit_correction") else "raw"
        pin = "/pinned" if r.get("pinned") else ""
        pin += "/native" if r.get("native") else ""
        return (f"{who}{pin}/{r['variant']}/scale={r['scale']}/{r['background']}/{r['connectivity']}"
                f"/delays={delays}/{corr}/seed={r['seed']}")
    return (f"{r['simulator']}/{r['variant']}/scale={r['scale']}/{r['background']}/{r['connectivity']}"
            f"/seed={r['seed']}")


def write_markdown(data: dict) -> str:
    runs = data["runs"]
    pops = ["L23E", "L23I", "L4E", "L4I", "L5E", "L5I", "L6E", "L6I"]
    m = data.get("machine", {})
    lines = ["## Cortical microcircuit", ""]
    lines += [
        "Potjans & Diesmann (2014) microcircuit built by `brainpy_halfproj.models.microcircuit`: "
        "8 populations, LIF with exponential current synapses (tau_syn 0.5 ms), JIT connectivity "
        "(`bp.dnn.EventJitFPNormalLinear`), one `bp.VarDelay` per population, Poisson background. "
        "`merged` uses `HalfProjAlignPostMg` (one synapse state per post population), "
        "`unmerged` uses `HalfProjAlignPost` (one per projection), `fused` is `merged` with "
        "`fused=True` (one event-kernel call per population for its recurrent input, on the "
        "connectivity read out of the JIT layers); `/native` runs with "
        "`brainpy_halfproj.use_native_kernels()`. Kernel calls per step are custom calls in the "
        "compiled step (the background's `OneToOne` layers are not kernel calls). dt = 0.1 ms. "
        "Each row is its own subprocess; compile = first 100 ms chunk minus a steady chunk; "
        "run = wall time per biological second after the transient; RSS = `ru_maxrss`.",
        "",
        f"Machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores, {_gib(m)}; "
        f"Python {m.get('python', '?')}. Shared with other jobs; timing runs were serialised "
        "with a lock, but other processes may have run.",
        "",
        "| run | neurons | kernel calls / step | build (s) | compile (s) | run (s per bio s) | × real time "
        "| peak RSS (GiB) | stacked connectivity (GiB) | versions | date (UTC) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for k in sorted(runs):
        r = runs[k]
        comp = "—" if r.get("compile_s") is None else f"{r['compile_s']:.1f}"
        ver = ", ".join(f"{a} {b}" for a, b in r.get("versions", {}).items())
        calls = r.get("kernel_calls_per_step", "–")
        stacked = f"{r['stacked_connectivity_gib']:.2f}" if "stacked_connectivity_gib" in r else "–"
        lines.append(
            f"| {k} | {r['neurons']} | {calls} | {r['build_s']:.1f} | {comp} | {r['run_s_per_bio_s']:.1f} | "
            f"{r['run_s_per_bio_s']:.0f}× | {r['peak_rss_gib']:.2f} | {stacked} | {ver} | {r.get('date', '?')} |"
        )
    lines += ["", "Rates (spikes/s) over the measured window; `published` is the full-scale PyNEST "
              "reference (`full_mean_rates`, NEST 3 `Potjans_2014`). `max |Δ|`: the largest "
              "relative deviation over the 8 populations from the reference at the same scale: "
              "the published rates at full scale, NEST's run of the reference (seed 1, same "
              "input, normal delays) at scale 0.1. Runs keyed `delays=fixed-old/raw` are the "
              "0.1.0 model (fixed delays 0.2 ms shorter than NEST's, no JIT or multapse "
              "correction), kept for comparison.", ""]
    lines.append("| run | " + " | ".join(pops) + " | reference | max \\|Δ\\| |")
    lines.append("| --- |" + " ---: |" * len(pops) + " --- | ---: |")
    published = next(iter(runs.values()))["published_full_scale"] if runs else {}
    if runs:
        lines.append("| published (full scale) | " + " | ".join(f"{published[p]:.3f}" for p in pops)
                     + " | | |")
    nest_ref = {r["scale"]: r for k, r in runs.items()
                if r["simulator"] == "nest" and "fixed-delays" not in r["variant"]}
    for k in sorted(runs):
        r = runs[k]
        ref, ref_name = None, ""
        if r["simulator"] == "brainpy" and r["scale"] == 1.0:
            ref, ref_name = published, "published"
        elif r["simulator"] == "brainpy" and r["scale"] in nest_ref:
            ref, ref_name = nest_ref[r["scale"]]["rates"], f"NEST scale {r['scale']}"
        elif r["simulator"] == "nest" and r["scale"] == 1.0:
            ref, ref_name = published, "published"
        dev = "" if ref is None else f"{max(abs(r['rates'][p] / ref[p] - 1) for p in pops) * 100:.0f} %"
        lines.append(f"| {k} | " + " | ".join(f"{r['rates'][p]:.3f}" for p in pops)
                     + f" | {ref_name} | {dev} |")
    notes = data.get("notes", [])
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    lines += ["", *derived_markdown()]
    return "\n".join(lines) + "\n"


def derived_markdown() -> list[str]:
    """Lines of the "derived parameters" table: computed from ``potjans2014.derive``, not measured."""
    import numpy as np

    m = _potjans2014()
    nz = m.CONN_PROBS > 0
    i, j = m.POPULATIONS.index("L5E"), m.POPULATIONS.index("L5I")
    cols = {"brainpy 2.8 (brainevent, c = 2)": 2.0, "brainpy 2.5 (brainpylib, c = 1)": 1.0,
            "a kernel that realises any probability": None}
    rows: dict[str, list[str]] = {
        "JIT weight factor `p / realised`, range": [],
        "projections with a factor within 2 % of 1": [],
        "L5I -> L5E: `lam`; realised without / with the correction": [],
        "multapse weight spread `weight_rel_std`, range (L5I -> L5E)": [],
    }
    for c in cols.values():
        prm = m.derive(1.0, jit_numerator=c, delays="fixed")
        raw = m.derive(1.0, jit_numerator=c, jit_correction=False, connectivity="matched", delays="fixed")
        f, spread = prm.weight_factor[nz], prm.weight_rel_std[nz]
        rows["JIT weight factor `p / realised`, range"].append(f"{f.min():.2f}-{f.max():.2f}")
        rows["projections with a factor within 2 % of 1"].append(f"{int((abs(f - 1) <= 0.02).sum())} of {f.size}")
        rows["L5I -> L5E: `lam`; realised without / with the correction"].append(
            f"{prm.prob[i, j]:.3f}; {raw.realised_prob[i, j]:.3f} / {prm.realised_prob[i, j]:.3f}")
        rows["multapse weight spread `weight_rel_std`, range (L5I -> L5E)"].append(
            f"{spread.min():.2f}-{spread.max():.2f} ({prm.weight_rel_std[i, j]:.2f})")
    table = m.derive(1.0, connectivity="table", delays="fixed")
    multapse = m.derive(1.0, delays="fixed")
    fewer = np.zeros(nz.shape)
    fewer[nz] = 1.0 - table.prob[nz] / multapse.prob[nz]
    post, pre = (m.POPULATIONS[k] for k in np.unravel_index(np.argmax(fewer), fewer.shape))
    fixed = m.derive(1.0, delays="fixed", dt=0.1)
    lines = [
        "### Derived parameters",
        "",
        "Computed by `brainpy_halfproj.models.potjans2014.derive` (full scale, defaults) when this "
        "section is written: what the options of `microcircuit()` do to the parameters, not measurements.",
        "",
        "| | " + " | ".join(cols) + " |",
        "| --- |" + " ---: |" * len(cols),
    ]
    lines += [f"| {name} | " + " | ".join(vals) + " |" for name, vals in rows.items()]
    lines += [
        "",
        f"- `connectivity='table'` connects up to {fewer.max() * 100:.0f} % fewer synapses than the "
        f"reference ({pre} -> {post}).",
        f"- Charge correction at dt = 0.1 ms: {m.charge_correction(0.1, True):.3f} merged, "
        f"{m.charge_correction(0.1, False):.3f} unmerged.",
        "- `delays='fixed'`: " + ", ".join(f"{m.DELAY_EXC if p.endswith('E') else m.DELAY_INH} ms from {p} "
                                           f"-> {fixed.delay_steps[p]} steps" for p in ("L4E", "L4I")) + ".",
    ]
    return lines


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--smoke", action="store_true", help="scale 0.02, 200 ms: takes seconds")
    ap.add_argument("--scale", type=float, action="append")
    ap.add_argument("--variants", nargs="*", default=["merged", "unmerged"],
                    help="merged, unmerged, fused (merged with fused=True)")
    ap.add_argument("--native", action="store_true", help="brainpy_halfproj.use_native_kernels() (2.8/2.9)")
    ap.add_argument("--variant", default="merged")
    ap.add_argument("--background", default="poisson", choices=["poisson", "dc"])
    ap.add_argument("--connectivity", default="multapse", choices=["multapse", "matched", "table"])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--transient", type=float, default=500.0)
    ap.add_argument("--duration", type=float, default=1000.0)
    ap.add_argument("--nest", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--nest-python", help="python with nest-simulator installed")
    ap.add_argument("--nest-scale", type=float, action="append", default=[])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fixed-delays", action="store_true",
                    help="NEST only: fixed delays as in our model instead of normal ones")
    ap.add_argument("--delays", default="normal", choices=["normal", "fixed"])
    ap.add_argument("--no-jit-correction", action="store_true")
    ap.add_argument("--python", default=sys.executable,
                    help="python of the brainpy line to run (default: this one)")
    ap.add_argument("--taskset", help="pin brainpy workers to these CPUs (taskset -c LIST)")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--markdown-only", action="store_true",
                    help="rewrite results/microcircuit.md from results/microcircuit.json; run nothing")
    a = ap.parse_args(argv)
    if a.markdown_only:
        MD_PATH.write_text(write_markdown(json.loads(JSON_PATH.read_text())))
        return

    if a.worker:
        a.scale = a.scale[-1]
        res = worker_nest(a) if a.nest else worker_brainpy(a)
        print("RESULT " + json.dumps(res), flush=True)
        return

    if a.smoke:
        a.scale, a.transient, a.duration = [0.02], 200.0, 100.0
    scales = a.scale or [0.1]
    data = {"runs": {}}
    if JSON_PATH.exists() and not a.smoke:
        data = json.loads(JSON_PATH.read_text())
    data["machine"] = machine_info()
    nest_extra = ["--fixed-delays"] if a.fixed_delays else []
    common = ["--background", a.background, "--connectivity", a.connectivity, "--seed", str(a.seed),
              "--transient", str(a.transient), "--duration", str(a.duration)]
    ours = (["--delays", a.delays] + (["--no-jit-correction"] if a.no_jit_correction else [])
            + (["--native"] if a.native else []))
    new = []
    for s in scales:
        for v in a.variants:
            new.append(_run_worker(a.python, ["--scale", str(s), "--variant", v, *common, *ours],
                                   taskset=a.taskset))
    for s in a.nest_scale:
        new.append(_run_worker(a.nest_python or sys.executable,
                               ["--nest", "--scale", str(s), "--threads", str(a.threads), *nest_extra, *common]))
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M")
    data["runs"] = {_key(r): r for r in data["runs"].values()}
    for r in new:
        r["date"] = stamp
        key = _key(r)
        data["runs"][key] = r
        print(f"{key}: build {r['build_s']:.1f} s, compile {r['compile_s']}, "
              f"run {r['run_s_per_bio_s']:.1f} s/bio-s, RSS {r['peak_rss_gib']:.2f} GiB")
        print("   rates", {p: round(x, 3) for p, x in r["rates"].items()})
    if a.smoke or a.no_write:
        print(write_markdown({"runs": {_key(r): r for r in new}, "machine": data["machine"]}))
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    JSON_PATH.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    MD_PATH.write_text(write_markdown(data))


if __name__ == "__main__":
    main()
