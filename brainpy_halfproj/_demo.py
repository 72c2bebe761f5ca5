"""The main job: the seed E/I network (upstream's ``HalfProjAlignPostMg`` example)."""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from types import ModuleType

import brainpy as bp
import brainpy.math as bm
import numpy as np

from ._compat import event_kernel_library
from ._progress import show_progress

__all__ = ["EINet", "run_einet", "main"]


class EINet(bp.DynSysGroup):
    """The E/I balanced network of upstream's ``HalfProjAlignPostMg`` example.

    ``n`` LIF neurons (80 % excitatory), a ``bp.VarDelay`` of the spikes, and two
    merging projections with JIT event connectivity, Expon synapses and COBA
    outputs. For ``n != 4000`` the connection probability is ``0.02 * 4000 / n``,
    so each neuron keeps 80 inputs on average.

    Parameters
    ----------
    n
        Number of neurons (4000 in the upstream example).
    dyn
        The namespace that provides the neuron, synapse and projection classes:
        ``brainpy_halfproj.dyn`` (default) or upstream's ``brainpy.dyn``.
    fused
        Build the two projections with ``fused=True`` (one kernel call per step for
        both; plugin namespace only).

    Examples
    --------
    >>> import brainpy_halfproj as bhp
    >>> net = bhp.EINet(400)
    >>> net.E.syn is net.I.syn
    False
    >>> net.step_run(0, 20.).shape
    (400,)
    >>> bhp.EINet(400, fused=True).E.fused_call is not None
    True
    """

    def __init__(self, n: int = 4000, *, dyn: ModuleType | None = None, fused: bool = False):
        super().__init__()
        if dyn is None:
            from . import dyn as default_dyn
            dyn = default_dyn
        extra = {"fused": True} if fused else {}  # upstream's classes have no such keyword
        prob = 0.02 * 4000 / n
        self.n_exc = int(n * 0.8)
        self.N = dyn.LifRef(n, V_rest=-60., V_th=-50., V_reset=-60., tau=20., tau_ref=5.,
                            V_initializer=bp.init.Normal(-55., 2.))
        self.delay = bp.VarDelay(self.N.spike, entries={'I': None})
        self.E = dyn.HalfProjAlignPostMg(comm=bp.dnn.EventJitFPHomoLinear(self.n_exc, n, prob=prob, weight=0.6),
                                         syn=dyn.Expon.desc(size=n, tau=5.),
                                         out=dyn.COBA.desc(E=0.),
                                         post=self.N, **extra)
        self.I = dyn.HalfProjAlignPostMg(comm=bp.dnn.EventJitFPHomoLinear(n - self.n_exc, n, prob=prob, weight=6.7),
                                         syn=dyn.Expon.desc(size=n, tau=10.),
                                         out=dyn.COBA.desc(E=-80.),
                                         post=self.N, **extra)

    def update(self, input):
        spk = self.delay.at('I')
        self.E(spk[:self.n_exc])
        self.I(spk[self.n_exc:])
        self.delay(self.N(input))
        return self.N.spike.value


def run_einet(net: bp.DynamicalSystem, n_steps: int, current: float = 20.,
              progress: bool | None = None) -> np.ndarray:
    """Run ``net`` for ``n_steps`` steps with a constant input; return the spike raster.

    ``progress`` shows brainpy's progress bar: ``None`` (default) when a person is
    watching (standard error is a terminal, or in Jupyter), else as given.

    Examples
    --------
    >>> import brainpy_halfproj as bhp
    >>> run_einet(bhp.EINet(400), 10).shape
    (10, 400)
    """
    indices = np.arange(n_steps)
    spikes = bm.for_loop(lambda i: net.step_run(i, current), indices, progress_bar=show_progress(progress))
    return np.asarray(spikes)


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


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m brainpy_halfproj`` (or ``brainpy-halfproj-demo``)."""
    from ._report import merge_report

    parser = argparse.ArgumentParser(prog="python -m brainpy_halfproj",
                                     description="Run the seed E/I network with brainpy-halfproj on CPU.")
    parser.add_argument("--duration", type=float, default=100., help="biological time in ms (default 100)")
    parser.add_argument("--size", type=int, default=4000, help="number of neurons (default 4000)")
    parser.add_argument("--output", default="einet_raster.png", help="raster plot PNG (default einet_raster.png)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("--no-progress", action="store_true",
                        help="hide the progress bar (shown when standard error is a terminal)")
    parser.add_argument("--all-cores", action="store_true",
                        help="on the brainpy 2.5 line, do not pin the process to one core (see BENCHMARKS.md)")
    parser.add_argument("--fused", action="store_true",
                        help="fused merge groups: one event-kernel call per step for both projections")
    parser.add_argument("--no-native", action="store_true",
                        help="on brainpy 2.8/2.9, keep brainevent's Python bridge instead of native kernel handlers")
    args = parser.parse_args(argv)
    # Validate everything before touching the process (a rejected call must leave it as it was).
    if args.size < 10:
        parser.error(f"--size must be at least 10, got {args.size}")
    if args.duration <= 0:
        parser.error(f"--duration must be positive, got {args.duration}")
    if event_kernel_library() == "brainpylib" and not args.all_cores and hasattr(os, "sched_setaffinity"):
        # brainpylib's taichi JIT-connectivity kernels hand each call to a thread pool; on a
        # few cores the cross-core hand-off costs more than the kernel. One core is faster
        # (BENCHMARKS.md, "Threads and pinning"). Threads started later inherit the mask.
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bm.set_platform("cpu")
    kernels = kernel_path(native=not args.no_native)
    bm.random.seed(args.seed)
    t0 = time.perf_counter()
    net = EINet(args.size, fused=args.fused)
    n_steps = int(round(args.duration / bm.get_dt()))
    spikes = run_einet(net, n_steps, progress=False if args.no_progress else None)
    wall = time.perf_counter() - t0
    rate = spikes.mean() / (bm.get_dt() / 1000.)
    print(f"brainpy {bp.__version__}: {args.size} neurons, {args.duration:g} ms ({n_steps} steps)")
    print(f"event kernels: {kernels}; projections: {'fused' if args.fused else 'one kernel call each'}")
    if hasattr(os, "sched_getaffinity"):
        print(f"cores used: {len(os.sched_getaffinity(0))}")
    print(f"mean firing rate: {rate:.2f} Hz")
    print(f"wall time (build + compile + run): {wall:.2f} s")
    print(merge_report(net))
    times = np.arange(n_steps) * bm.get_dt()
    bp.visualize.raster_plot(times, spikes, show=False, title=f"E/I network, {args.size} neurons")
    plt.savefig(args.output, dpi=100)
    print(f"raster plot saved to {args.output}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
