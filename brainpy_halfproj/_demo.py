"""The seed E/I network (upstream's ``HalfProjAlignPostMg`` example) and a runner for it."""
from __future__ import annotations

from types import ModuleType

import brainpy as bp
import brainpy.math as bm
import numpy as np

from ._progress import show_progress

__all__ = ["EINet", "run_einet"]


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
