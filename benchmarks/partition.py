"""A model split over 1, 2 and 4 devices: time per step, memory per device, collectives per step.

Every case runs in its own process, started with that many simulated CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=N``) and wrapped in
``flock /tmp/halfproj-cpu.lock`` like the other benchmarks. Simulated devices share the
machine's cores, so on this 2-core machine the table shows what splitting costs, not a
speed-up. The baseline is the same model on one device, not partitioned (just-in-time
connectivity); "1 device, partitioned" runs the read-out connectivity on a one-device mesh,
the exactness reference.

Per case: build; ``partition``; the collectives of one compiled step, counted in its HLO
(``step_collectives``); a jitted ``for_loop`` of ``--steps`` steps, called once to compile
and then ``--repeats`` times (median time per step); memory per device from the layout
(``partition_report``: state and connectivity held by each device) and from XLA
(``memory_analysis`` of the compiled loop: arguments and temporaries per device); the
number of spikes in each step, hashed, to check that every device count gives the same
spikes.

Usage::

    python benchmarks/partition.py                       # seed network (4000) and microcircuit (0.05)
    python benchmarks/partition.py --smoke --out /tmp/p  # seconds, tiny sizes

Writes ``results/partition.json`` and the markdown section ``results/partition.md``
(included at the end of ``BENCHMARKS.md`` by ``report.py``).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from machine import machine_info  # benchmarks/, next to this script

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LOCK = "/tmp/halfproj-cpu.lock"
MIB = 2.0 ** 20


# --------------------------------------------------------------------------- one case
def worker(a: argparse.Namespace) -> dict:
    sys.path.insert(0, str(ROOT))
    import brainpy as bp
    import brainpy.math as bm
    import jax
    import jax.numpy as jnp
    import numpy as np

    import brainpy_halfproj as bhp

    bm.set_dt(0.1)
    t0 = time.perf_counter()
    if a.model in ("einet", "einet-fused"):
        bm.random.seed(42)
        net = bhp.EINet(a.size, fused=a.model == "einet-fused")
        groups, args = [net.N], (20.,)
    else:
        from brainpy_halfproj.models import microcircuit

        net = microcircuit(a.scale, seed=1, size_multiple=4)
        groups, args = list(net.populations.values()), ()
    t_build = time.perf_counter() - t0

    t0 = time.perf_counter()
    report = bhp.partition(net, a.devices) if a.partition else None
    t_partition = time.perf_counter() - t0
    collectives = bhp.step_collectives(net, *args)

    def body(i):
        net.step_run(i, *args)
        return sum(jnp.sum(bm.as_jax(g.spike.value), dtype=jnp.int32) for g in groups)

    loop = bm.jit(lambda idx: bm.for_loop(body, idx))
    times = []
    counts = []
    for r in range(a.repeats + 1):
        idx = np.arange(r * a.steps, (r + 1) * a.steps)
        t0 = time.perf_counter()
        counts.append(np.asarray(jax.block_until_ready(loop(idx))))
        times.append(time.perf_counter() - t0)
    memory = loop.lower(np.arange(a.steps)).compile().memory_analysis()
    counts = np.concatenate(counts)
    n_dev = a.devices if a.partition else 1
    if report is not None:
        state, conn = report.state_bytes_per_device, report.connectivity_bytes_per_device
        synapses, slots = report.synapses, sum(c.slots_per_device for c in report.calls)
        calls = len(report.calls)
    else:  # one device, not partitioned: JIT layers store no synapses; a fused call stores its stack
        from brainpy_halfproj._connectivity import EVENT_LAYERS
        from brainpy_halfproj._fused import FusedCall

        nodes = list(net.nodes().unique().values())
        fused = [n for n in nodes if isinstance(n, FusedCall)]
        state = sum(np.asarray(v.value).nbytes for v in net.vars().unique().values())
        conn = sum(c.connectivity.nbytes for c in fused)
        synapses, slots = 0, 0
        calls = len(fused) + sum(1 for n in nodes if isinstance(n, bp.Projection)
                                 and getattr(n, "fused_call", None) is None
                                 and type(getattr(n, "comm", None)).__name__ in EVENT_LAYERS)
    return dict(
        model=a.model, size=a.size if a.model != "microcircuit" else None,
        scale=a.scale if a.model == "microcircuit" else None,
        neurons=int(sum(g.num for g in groups)), devices=n_dev, partitioned=bool(a.partition),
        steps=a.steps, repeats=a.repeats, build_s=t_build, partition_s=t_partition,
        first_call_s=times[0], us_per_step=statistics.median(times[1:]) / a.steps * 1e6,
        us_per_step_min=min(times[1:]) / a.steps * 1e6,
        state_bytes_per_device=int(state), connectivity_bytes_per_device=int(conn),
        synapses=int(synapses), slots_per_device=int(slots),
        xla_argument_bytes=int(memory.argument_size_in_bytes), xla_temp_bytes=int(memory.temp_size_in_bytes),
        collectives=collectives, kernel_calls_per_device=calls, spikes=int(counts.sum()),
        spikes_hash=hashlib.sha1(counts.astype(np.int32).tobytes()).hexdigest()[:12],
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        versions=dict(brainpy=bp.__version__, jax=jax.__version__),
    )


# --------------------------------------------------------------------------- driver
def _case(a: argparse.Namespace, model: str, devices: int, partitioned: bool) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--model", model, "--devices", str(devices),
           "--steps", str(a.steps), "--repeats", str(a.repeats), "--size", str(a.size), "--scale", str(a.scale)]
    if partitioned:
        cmd.append("--partition")
    if shutil.which("flock") and not a.smoke:  # smoke runs time nothing: no lock (as run.py --smoke)
        cmd = ["flock", LOCK, *cmd]
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
               PYTHONPATH=os.pathsep.join([str(ROOT)] + ([os.environ["PYTHONPATH"]]
                                                         if os.environ.get("PYTHONPATH") else [])))
    print("$", " ".join(cmd), flush=True)
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if p.returncode != 0:
        sys.stderr.write(p.stdout[-2000:] + p.stderr[-4000:])
        raise SystemExit(f"case failed ({p.returncode}): {model} on {devices} devices")
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def _others(c: dict) -> int:
    return sum(v for k, v in c.items() if k != "all-gather")


def write_markdown(doc: dict) -> str:
    m = doc["machine"]
    lines = [
        "## Partitioned over devices (simulated CPU devices)",
        "",
        f"Generated by `python benchmarks/partition.py` ({m['date']}, commit `{m['commit']}`, "
        f"{m['cpu']}, {m['cores']} cores; brainpy {doc['runs'][0]['versions']['brainpy']}, "
        f"jax {doc['runs'][0]['versions']['jax']}). Each row is one process with that many simulated "
        "CPU devices (`XLA_FLAGS=--xla_force_host_platform_device_count`). **The devices share the "
        f"machine's {m['cores']} cores, so these rows measure the cost of splitting (per-device "
        "kernel calls, the spike exchange, XLA's partitioned program), not a speed-up**: on separate "
        "devices each would do 1/N of the neuron and synapse work.",
        "",
        f"- *µs/step*: median over {doc['runs'][0]['repeats']} calls of a compiled loop of "
        f"{doc['runs'][0]['steps']} steps (after one call that compiles), one process per row, run "
        "once; *vs 1 device*: against the same model on one device, not partitioned (just-in-time "
        "connectivity).",
        "- *state / connectivity per device*: bytes each device holds (`partition_report`); the "
        "connectivity is the read-out synapses, padded to a row pointer shared by all devices "
        "(*padding*); the unpartitioned model stores none (it regenerates its synapses), unless "
        "fused (one stacked matrix).",
        "- *XLA args / temp per device*: `memory_analysis()` of the compiled loop; *kernel calls*: "
        "event-kernel calls each device makes per step (`partition_report(...).calls`; fused: one "
        "per post group).",
        "- *collectives per step*: counted in the compiled HLO of one step: one all-gather per "
        "neuron group's spikes, nothing else. *same spikes*: the spike count of every step "
        "equals the 1-device run's (hash).",
        "",
        "| model | devices | partitioned | µs/step | vs 1 device | state MiB/device | "
        "connectivity MiB/device | padding | XLA args MiB/device | XLA temp MiB/device | kernel calls/device/step | "
        "all-gathers/step | other collectives/step | peak RSS MiB (process) | same spikes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model in dict.fromkeys(r["model"] for r in doc["runs"]):
        runs = [r for r in doc["runs"] if r["model"] == model]
        base = next(r for r in runs if not r["partitioned"])
        ref = next((r for r in runs if r["partitioned"] and r["devices"] == 1), base)
        if model == "microcircuit":
            name = f"microcircuit, scale {base['scale']:g} ({base['neurons']} neurons)"
        else:
            name = f"seed network, {base['neurons']} neurons" + (", fused" if model == "einet-fused" else "")
        for r in runs:
            pad = (f"{r['slots_per_device'] * r['devices'] / r['synapses'] - 1:.0%}" if r["synapses"] else "–")
            lines.append(
                f"| {name} | {r['devices']} | {'yes' if r['partitioned'] else 'no'} | {r['us_per_step']:.0f} | "
                f"{r['us_per_step'] / base['us_per_step']:.2f} | {r['state_bytes_per_device'] / MIB:.2f} | "
                f"{r['connectivity_bytes_per_device'] / MIB:.2f} | {pad} | {r['xla_argument_bytes'] / MIB:.2f} | "
                f"{r['xla_temp_bytes'] / MIB:.2f} | {r['kernel_calls_per_device']} | "
                f"{r['collectives']['all-gather']} | {_others(r['collectives'])} | "
                f"{r['peak_rss_mib']:.0f} | {'yes' if r['spikes_hash'] == ref['spikes_hash'] else 'NO'} |")
    lines += [
        "",
        "Reading it: connectivity per device falls with the device count (the padding grows as "
        "each device's rows get shorter); state per device falls less, because delay buffers "
        "and spikes are replicated. Simulated devices are threads of one process: up to the "
        "number of cores they can run at once, beyond it they take turns, and each pays its own "
        "kernel calls and its part of the exchange.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--partition", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", default="einet", help=argparse.SUPPRESS)
    p.add_argument("--devices", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--models", nargs="+", default=["einet", "einet-fused", "microcircuit"],
                   choices=["einet", "einet-fused", "microcircuit"])
    p.add_argument("--device-counts", nargs="+", type=int, default=[1, 2, 4])
    p.add_argument("--size", type=int, default=4000, help="seed network size (default 4000)")
    p.add_argument("--scale", type=float, default=0.05, help="microcircuit scale (default 0.05)")
    p.add_argument("--steps", type=int, default=1000, help="steps per timed call (default 1000)")
    p.add_argument("--repeats", type=int, default=5, help="timed calls after the first (default 5)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, seconds (numbers mean nothing)")
    p.add_argument("--out", default=str(HERE / "results"), help="results folder")
    p.add_argument("--markdown-only", action="store_true", help="rewrite partition.md from partition.json")
    a = p.parse_args(argv)
    if a.worker:
        print("RESULT " + json.dumps(worker(a)), flush=True)
        return
    if a.markdown_only:
        doc = json.loads((Path(a.out) / "partition.json").read_text())
        (Path(a.out) / "partition.md").write_text(write_markdown(doc))
        return
    if a.smoke:
        a.models, a.size, a.steps, a.repeats, a.device_counts = ["einet"], 400, 20, 1, [1, 2]
    runs = []
    for model in a.models:
        runs.append(_case(a, model, 1, partitioned=False))
        runs += [_case(a, model, n, partitioned=True) for n in a.device_counts]
    doc = dict(section="partition", smoke=a.smoke, machine=machine_info(), runs=runs)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "partition.json").write_text(json.dumps(doc, indent=1) + "\n")
    text = write_markdown(doc)
    (out / "partition.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
