"""Small networks built from either namespace: ours (``bhp.dyn``) or upstream's (``bp.dyn``).

Shared by the test modules (``from ._nets import build_net, run``); fixtures live in ``conftest.py``.
"""
from __future__ import annotations

import brainpy as bp
import brainpy.math as bm
import numpy as np

__all__ = ["CLASSES", "MERGING", "LIF", "HalfNet", "FullNet", "build_net", "run"]

CLASSES = ["HalfProjAlignPostMg", "HalfProjAlignPost", "FullProjAlignPostMg", "FullProjAlignPost"]
MERGING = {"HalfProjAlignPostMg", "FullProjAlignPostMg"}

LIF = dict(V_rest=-60., V_th=-50., V_reset=-60., tau=20., tau_ref=5.)


def _syn_out(dyn, cls_name, n, tau, E):
    """Descriptors for the merging classes, fresh instances for the others."""
    if cls_name in MERGING:
        return dyn.Expon.desc(size=n, tau=tau), dyn.COBA.desc(E=E)
    return dyn.Expon(n, tau=tau), dyn.COBA(E=E)


class HalfNet(bp.DynSysGroup):
    """Upstream's E/I example for the half classes, plus a second excitatory pathway
    (same descriptors as the first, so the merging class shares its synapse)."""

    def __init__(self, dyn, cls_name, ne=320, ni=80, prob=0.1):
        super().__init__()
        n = ne + ni
        self.ne = ne
        cls = getattr(dyn, cls_name)
        self.N = dyn.LifRef(n, **LIF, V_initializer=bp.init.Normal(-55., 2.))
        self.delay = bp.VarDelay(self.N.spike, entries={'I': None})
        jit = bp.dnn.EventJitFPHomoLinear
        self.E = cls(jit(ne, n, prob=prob, weight=0.6), *_syn_out(dyn, cls_name, n, 5., 0.), self.N)
        self.E2 = cls(jit(ne, n, prob=prob, weight=0.3), *_syn_out(dyn, cls_name, n, 5., 0.), self.N)
        self.I = cls(jit(ni, n, prob=prob, weight=6.7), *_syn_out(dyn, cls_name, n, 10., -80.), self.N)

    def update(self, inp):
        spk = self.delay.at('I')
        self.E(spk[:self.ne])
        self.E2(spk[:self.ne])
        self.I(spk[self.ne:])
        self.delay(self.N(inp))
        return self.N.spike.value


class FullNet(bp.DynSysGroup):
    """Upstream's E/I example for the full classes (two populations, four projections),
    plus a slower E->E pathway with the same descriptors as E->E."""

    def __init__(self, dyn, cls_name, ne=320, ni=80, prob=0.1):
        super().__init__()
        cls = getattr(dyn, cls_name)
        self.E = dyn.LifRef(ne, **LIF, V_initializer=bp.init.Normal(-55., 2.))
        self.I = dyn.LifRef(ni, **LIF, V_initializer=bp.init.Normal(-55., 2.))
        jit = bp.dnn.EventJitFPHomoLinear
        self.E2E = cls(self.E, 0.1, jit(ne, ne, prob=prob, weight=0.6), *_syn_out(dyn, cls_name, ne, 5., 0.), self.E)
        self.E2E_slow = cls(self.E, 1.0, jit(ne, ne, prob=prob, weight=0.3), *_syn_out(dyn, cls_name, ne, 5., 0.),
                            self.E)
        self.E2I = cls(self.E, 0.1, jit(ne, ni, prob=prob, weight=0.6), *_syn_out(dyn, cls_name, ni, 5., 0.), self.I)
        self.I2E = cls(self.I, 0.1, jit(ni, ne, prob=prob, weight=6.7), *_syn_out(dyn, cls_name, ne, 10., -80.), self.E)
        self.I2I = cls(self.I, 0.1, jit(ni, ni, prob=prob, weight=6.7), *_syn_out(dyn, cls_name, ni, 10., -80.), self.I)

    def update(self, inp):
        self.E2E()
        self.E2E_slow()
        self.E2I()
        self.I2E()
        self.I2I()
        self.E(inp)
        self.I(inp)
        return bm.concatenate([self.E.spike.value, self.I.spike.value])


def build_net(dyn, cls_name, seed=0, **kwargs):
    bm.random.seed(seed)
    net_cls = HalfNet if cls_name.startswith("Half") else FullNet
    return net_cls(dyn, cls_name, **kwargs)


def run(net, n_steps, current=20., jit=True):
    if jit:
        return np.asarray(bm.for_loop(lambda i: net.step_run(i, current), np.arange(n_steps)))
    return np.stack([np.asarray(net.step_run(i, current)) for i in range(n_steps)])
