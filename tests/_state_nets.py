"""brainpy.state networks for the tests, each buildable from stock ``brainpy.state`` or from
``brainpy_halfproj.state`` (the ``bst`` argument), with matched units.

Units: ``COBA`` gives conductance x voltage; with weights in nS that is pA, so the input is in
pA and ``R`` in GOhm (GOhm x pA = mV). The Hodgkin-Huxley group's conductances are in mS and
its capacitance in uF, so there the weights are in mS and the input in uA.
"""
from __future__ import annotations

import brainstate
import braintools
import brainunit as u
import numpy as np

DT = 0.1 * u.ms


class EIStep(brainstate.nn.Module):
    """One step of an E/I network: ``E`` fed the first ``n_exc`` spikes of ``N``, ``I`` the rest, then ``N``."""

    def update(self, t, inp):
        with brainstate.environ.context(t=t):
            spk = self.N.get_spike() != 0.
            self.E(spk[:self.n_exc])
            self.I(spk[self.n_exc:])
            self.N(inp)
            return self.N.get_spike()


class EINet(EIStep):
    """The E/I network of upstream's COBA/CUBA examples (80 % excitatory), small and with matched units."""

    def __init__(self, bst, n: int = 800, kind: str = "coba", delay=None, order: str = "EI"):
        super().__init__()
        self.n_exc = n * 4 // 5
        self.n_inh = n - self.n_exc
        self.N = bst.LIFRef(n, V_rest=-60. * u.mV, V_th=-50. * u.mV, V_reset=-60. * u.mV, tau=20. * u.ms,
                            tau_ref=5. * u.ms, R=1. * u.Gohm,
                            V_initializer=braintools.init.Normal(-55. * u.mV, 2. * u.mV))
        if kind == "coba":
            outs = bst.COBA.desc(E=0. * u.mV), bst.COBA.desc(E=-80. * u.mV)
            weights = 0.6 * u.nS, 6.7 * u.nS
        else:
            outs = bst.CUBA.desc(scale=u.mV), bst.CUBA.desc(scale=u.mV)
            weights = 1.62 * u.nS, -9. * u.nS

        def proj(i):
            n_pre = (self.n_exc, self.n_inh)[i]
            return bst.AlignPostProj(comm=brainstate.nn.EventFixedProb(n_pre, n, conn_num=0.02, conn_weight=weights[i]),
                                     syn=bst.Expon.desc(n, tau=(5., 10.)[i] * u.ms), out=outs[i], post=self.N,
                                     delay=delay)

        for name in order:  # the construction order: "EI" or "IE"
            setattr(self, name, proj("EI".index(name)))


class HHNet(EIStep):
    """Hodgkin-Huxley E/I network (brainpy.state.HH): conductances in mS, input in uA."""

    def __init__(self, bst, n: int = 400, delay=None):
        super().__init__()
        self.n_exc = n * 4 // 5
        self.N = bst.HH(n)
        self.E = bst.AlignPostProj(comm=brainstate.nn.EventFixedProb(self.n_exc, n, conn_num=0.05,
                                                                     conn_weight=0.05 * u.mS),
                                   syn=bst.Expon.desc(n, tau=5. * u.ms), out=bst.COBA.desc(E=0. * u.mV),
                                   post=self.N, delay=delay)
        self.I = bst.AlignPostProj(comm=brainstate.nn.EventFixedProb(n - self.n_exc, n, conn_num=0.05,
                                                                     conn_weight=0.5 * u.mS),
                                   syn=bst.Expon.desc(n, tau=10. * u.ms), out=bst.COBA.desc(E=-80. * u.mV),
                                   post=self.N, delay=delay)


def build(cls, bst, *, seed: int = 42, dt=DT, **kwargs):
    """``cls(bst, **kwargs)`` built and initialised after seeding brainstate's random state."""
    brainstate.random.seed(seed)
    net = cls(bst, **kwargs)
    with brainstate.environ.context(dt=dt):
        brainstate.nn.init_all_states(net)
    return net


def run(net, n_steps: int, inp, *, dt=DT, start: int = 0, step_by_step: bool = False) -> np.ndarray:
    """The spike raster ``(n_steps, n)`` of ``net.update(t, inp)``: one for_loop, or one jitted step at a time."""
    with brainstate.environ.context(dt=dt):
        times = (start + np.arange(n_steps)) * dt
        if step_by_step:
            step = brainstate.transform.jit(lambda t: net.update(t, inp))
            return np.stack([np.asarray(step(t)) for t in times])
        return np.asarray(brainstate.transform.for_loop(lambda t: net.update(t, inp), times))


def state_values(net) -> dict:
    """``{path: numpy value}`` of every state of ``net`` (units dropped)."""
    return {path: np.asarray(u.get_mantissa(s.value)) for path, s in net.states().items()}
