"""The main job, ``python -m brainpy_halfproj``: a network where merging happens, shown.

By default it builds the Potjans & Diesmann (2014) microcircuit at a small scale: 55
recurrent projections and 8 background drives onto 8 populations, which merging turns
into 8 synapse states. It prints the kernel path, the merge report (projections -> shared
states, memory saved) and the times, and saves one figure: a raster by population and
the rates beside the published ones. ``--model einet`` runs the seed E/I network instead.

Every argument is checked before anything runs, as an argparse error (exit status 2)
that names the option and the fix: a bad ``--output`` must never cost a finished run.
"""
from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._compat import event_kernel_library

__all__ = ["main"]

DEFAULT_SCALE = 0.1
DEFAULT_DURATION = {"microcircuit": 300., "einet": 100.}  # ms
DEFAULT_OUTPUT = {"microcircuit": "microcircuit.png", "einet": "einet_raster.png"}
EINET_MIN_SIZE = 80  # EINet's connection probability 0.02 * 4000 / n stays <= 1
MIN_SCALE = 0.001  # the smallest population (L5I) keeps one neuron; the background keeps its inputs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m brainpy_halfproj",
        description="Show brainpy-halfproj at work on CPU: build a network whose projections merge, run it, "
                    "print the merge report and save a figure (raster by population, rates).")
    parser.add_argument("--model", choices=["microcircuit", "einet"], default="microcircuit",
                        help="microcircuit (default): Potjans & Diesmann (2014), 63 projections onto 8 "
                             "populations; einet: the seed E/I network (upstream's example)")
    parser.add_argument("--scale", type=float, default=None,
                        help=f"microcircuit only: fraction of the full model's 77,169 neurons, in [{MIN_SCALE}, 1] "
                             f"(default {DEFAULT_SCALE})")
    parser.add_argument("--size", type=int, default=None,
                        help=f"einet only: number of neurons, at least {EINET_MIN_SIZE} (default 4000)")
    parser.add_argument("--duration", type=float, default=None,
                        help="biological time in ms (default: 300 for the microcircuit, 100 for einet)")
    parser.add_argument("--output", default=None,
                        help="the figure; its suffix picks the format (default: microcircuit.png or "
                             "einet_raster.png)")
    parser.add_argument("--seed", type=int, default=42, help="random seed, 0 to 2**32 - 1 (default 42)")
    parser.add_argument("--no-progress", action="store_true",
                        help="hide the progress bar (shown when standard error is a terminal)")
    parser.add_argument("--all-cores", action="store_true",
                        help="on the brainpy 2.5 line, do not pin the process to one core (see BENCHMARKS.md)")
    parser.add_argument("--fused", action="store_true",
                        help="fused merge groups: one event-kernel call per post group and step (the build reads the "
                             "connectivity out of every layer first, so it takes longer)")
    parser.add_argument("--no-native", action="store_true",
                        help="on brainpy 2.8/2.9, keep brainevent's Python bridge instead of native kernel handlers")
    return parser


def writable_formats() -> list[str]:
    """The file suffixes matplotlib's Agg canvas can write here (pgf only where its TeX is installed)."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    formats = set(FigureCanvasAgg.get_supported_filetypes())
    if shutil.which(matplotlib.rcParams["pgf.texsystem"]) is None:
        formats.discard("pgf")
    return sorted(formats)


def check_output(parser: argparse.ArgumentParser, output: str) -> Path:
    """Refuse, before the run, an output the figure could not be saved to."""
    path = Path(output)
    if path.is_dir():
        parser.error(f"--output {output!r} is a directory; give a file name, e.g. {str(path / 'figure.png')!r}")
    suffix = path.suffix.lower().lstrip(".")
    formats = writable_formats()
    if suffix not in formats:
        what = f"'.{suffix}' files" if suffix else "a file without a suffix"
        parser.error(f"--output {output!r}: matplotlib cannot write {what}; "
                     f"end the name in one of {', '.join('.' + f for f in formats)}")
    folder = path.parent
    if not folder.is_dir():
        parser.error(f"--output {output!r}: the folder {str(folder)!r} does not exist; create it or choose another")
    try:  # what savefig will do: create a file in the folder (this also catches read-only file systems)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".halfproj-probe-"):
            pass
        if path.exists():
            with open(path, "ab"):
                pass
    except OSError as err:
        parser.error(f"--output {output!r} cannot be written ({err.strerror}); choose a writable folder")
    return path


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """Validate every argument and fill in the model's defaults; argparse errors (exit 2) on a bad one."""
    import brainpy.math as bm

    einet = args.model == "einet"
    if einet and args.scale is not None:
        parser.error("--scale applies to the microcircuit; the E/I network's size is --size")
    if not einet and args.size is not None:
        parser.error("--size applies to --model einet; the microcircuit's size is --scale "
                     "(a fraction of its 77,169 neurons)")
    if args.duration is None:
        args.duration = DEFAULT_DURATION[args.model]
    dt = bm.get_dt()
    if not math.isfinite(args.duration) or args.duration <= 0:
        parser.error(f"--duration must be a positive number of ms, got {args.duration}")
    args.n_steps = int(round(args.duration / dt))
    if args.n_steps < 1:
        parser.error(f"--duration {args.duration:g} ms is less than one time step (dt = {dt} ms) after rounding; "
                     f"give at least {dt:g} ms")
    if not 0 <= args.seed < 2**32:
        parser.error(f"--seed must be in 0 .. 2**32 - 1, got {args.seed}")
    if einet:
        if args.size is None:
            args.size = 4000
        if args.size < EINET_MIN_SIZE:
            parser.error(f"--size must be at least {EINET_MIN_SIZE} (the connection probability "
                         f"0.02 * 4000 / size must not exceed 1), got {args.size}")
    else:
        if args.scale is None:
            args.scale = DEFAULT_SCALE
        if not (math.isfinite(args.scale) and MIN_SCALE <= args.scale <= 1):
            parser.error(f"--scale must be in [{MIN_SCALE}, 1] (1: the full model; at {MIN_SCALE} the "
                         f"smallest population has one neuron), got {args.scale}")
        from .models.potjans2014 import derive

        try:  # the model's own rules, without building it (numpy only)
            derive(args.scale, seed=args.seed, dt=dt)
        except ValueError as err:
            parser.error(f"--scale {args.scale}: {err}")
    if args.output is None:
        args.output = DEFAULT_OUTPUT[args.model]
    args.output = check_output(parser, args.output)
    return args


def kernel_path(native: bool) -> str:
    """Switch native kernel handlers on where they apply (brainpy 2.8/2.9); say which path runs."""
    from ._native import NativeKernelsError, use_native_kernels

    if event_kernel_library() == "brainpylib":
        return "brainpylib (native custom calls)"
    if not native:
        return "brainevent's Python bridge (--no-native)"
    try:
        use_native_kernels()
    except NativeKernelsError as err:
        return f"brainevent's Python bridge (native handlers unavailable: {err})"
    return "native handlers (brainpy_halfproj.use_native_kernels)"


def run_microcircuit(args: argparse.Namespace) -> dict[str, Any]:
    """Build and run the microcircuit; spikes and rates per population."""
    from .models import PUBLISHED_RATES, microcircuit, population_rates, simulate

    t0 = time.perf_counter()
    net = microcircuit(args.scale, seed=args.seed, fused=args.fused)
    t1 = time.perf_counter()
    spikes = simulate(net, args.duration, record=True, progress=False if args.no_progress else None)
    return {"net": net, "spikes": spikes, "rates": population_rates(net, args.duration),
            "published": dict(PUBLISHED_RATES), "build_s": t1 - t0, "run_s": time.perf_counter() - t1,
            "title": f"Potjans & Diesmann (2014) microcircuit at scale {args.scale:g}, "
                     f"{sum(net.sizes.values())} neurons"}


def run_einet_model(args: argparse.Namespace) -> dict[str, Any]:
    """Build and run the seed E/I network; spikes and rates of its E and I neurons."""
    import brainpy.math as bm

    from ._demo import EINet, run_einet

    t0 = time.perf_counter()
    net = EINet(args.size, fused=args.fused)
    t1 = time.perf_counter()
    raster = run_einet(net, args.n_steps, progress=False if args.no_progress else None)
    spikes = {"E": raster[:, :net.n_exc], "I": raster[:, net.n_exc:]}
    seconds = args.n_steps * bm.get_dt() / 1000.
    rates = {p: float(s.sum()) / s.shape[1] / seconds for p, s in spikes.items()}
    return {"net": net, "spikes": spikes, "rates": rates,
            "published": None, "build_s": t1 - t0, "run_s": time.perf_counter() - t1,
            "title": f"E/I network, {args.size} neurons"}


def save_figure(path: Path, result: dict[str, Any], dt: float, per_population: int = 200) -> None:
    """One figure: a raster (up to ``per_population`` neurons each) and the rates (beside the published ones)."""
    import matplotlib.pyplot as plt

    spikes, rates, published = result["spikes"], result["rates"], result["published"]
    pops = list(spikes)
    fig, (ax_raster, ax_rates) = plt.subplots(1, 2, figsize=(12, 5), width_ratios=(2.2, 1))
    rng = np.random.default_rng(0)
    offset, ticks = 0, []
    for p in pops:
        s = spikes[p]
        keep = np.sort(rng.choice(s.shape[1], size=min(per_population, s.shape[1]), replace=False))
        t, i = np.nonzero(s[:, keep])
        colour = "tab:red" if p.endswith("I") else "tab:blue"
        ax_raster.scatter(t * dt, offset + i, s=0.5, c=colour, rasterized=True)
        ticks.append((offset + len(keep) / 2, p))
        offset += len(keep)
    ax_raster.set_ylim(offset, 0)  # first population on top (layers top to bottom, as in cortex)
    ax_raster.set_yticks([y for y, _ in ticks], [p for _, p in ticks])
    ax_raster.set_xlabel("time (ms)")
    ax_raster.set_title(f"spikes of up to {per_population} neurons per population")
    x = np.arange(len(pops))
    width = 0.4 if published else 0.6
    ax_rates.barh(x - (width / 2 if published else 0), [rates[p] for p in pops], width, label="this run")
    if published:
        ax_rates.barh(x + width / 2, [published[p] for p in pops], width, color="0.7",
                      label="published (full scale)")
        ax_rates.legend(loc="upper right")
    ax_rates.set_yticks(x, pops)
    ax_rates.set_ylim(len(pops) - 0.5, -0.5)
    ax_rates.set_xlabel("rate (spikes/s)")
    ax_rates.set_title("mean firing rate")
    fig.suptitle(result["title"])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m brainpy_halfproj`` (or ``brainpy-halfproj-demo``); ``--help`` lists the options."""
    parser = build_parser()
    args = check_args(parser, parser.parse_args(argv))
    # Everything is validated; only now touch the process (a rejected call leaves it as it was).
    if event_kernel_library() == "brainpylib" and not args.all_cores and hasattr(os, "sched_setaffinity"):
        # brainpylib's taichi JIT-connectivity kernels hand each call to a thread pool; on a
        # few cores the cross-core hand-off costs more than the kernel. One core is faster
        # (BENCHMARKS.md, "Threads and pinning"). Threads started later inherit the mask.
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    import brainpy as bp
    import brainpy.math as bm
    import matplotlib
    matplotlib.use("Agg")

    from ._report import merge_report

    bm.set_platform("cpu")
    kernels = kernel_path(native=not args.no_native)
    bm.random.seed(args.seed)
    result = (run_einet_model if args.model == "einet" else run_microcircuit)(args)
    dt = bm.get_dt()
    report = merge_report(result["net"])
    n_neurons = sum(s.shape[1] for s in result["spikes"].values())
    print(f"brainpy {bp.__version__}: {result['title']}; {args.duration:g} ms ({args.n_steps} steps of {dt} ms)")
    print(f"event kernels: {kernels}; projections: {'fused' if args.fused else 'one kernel call each'}")
    if hasattr(os, "sched_getaffinity"):
        print(f"cores used: {len(os.sched_getaffinity(0))}")
    print(f"time: build {result['build_s']:.2f} s, compile + run {result['run_s']:.2f} s")
    print(merging_summary(report))
    print()
    print(report)
    print()
    published = result["published"]
    print("rates (spikes/s)" + (", this run / published at full scale (below full scale the reference fires "
                                "less too; BENCHMARKS.md compares at equal scale):" if published else ":"))
    for p, r in result["rates"].items():
        print(f"  {p:>5}: {r:6.2f}" + (f" / {published[p]:5.2f}" if published else ""))
    mean = sum(float(s.sum()) for s in result["spikes"].values()) / n_neurons / (args.n_steps * dt / 1000.)
    print(f"mean firing rate: {mean:.2f} Hz")
    save_figure(args.output, result, dt)
    print(f"figure (raster by population, rates) saved to {args.output}")
    return 0


def merging_summary(report: Any) -> str:
    """One line: how many projections share how many synapse states, and the memory merging saved."""
    members = sum(len(g.projections) for g in report.groups)
    saved = 0
    for g in report.groups:  # bytes of one copy of the group's synapse state, times the copies merging saved
        state = g.group.syn.vars().unique().values()
        saved += sum(int(np.prod(v.value.shape)) * v.value.dtype.itemsize for v in state) * (len(g.projections) - 1)
    return (f"merging: {members} projection(s) -> {len(report.groups)} shared synapse state(s) "
            f"(without merging: {members}); "
            f"memory saved: {report.saved_elements} state elements, {saved / 1024:.1f} KiB")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
