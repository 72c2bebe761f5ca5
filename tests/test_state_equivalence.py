"""Where stock brainpy.state merges correctly, the plugin's network is the same network, bit for bit.

Each network is built twice after the same seed, once from ``brainpy.state`` and once from
``brainpy_halfproj.state``, and run the same way: spike rasters, every state (by path) and
the registry's storage keys must be identical.
"""
from __future__ import annotations

import pytest

from brainpy_halfproj._compat import BRAINPY_VERSION

if BRAINPY_VERSION < (2, 9):
    pytest.skip("the brainpy.state front needs brainpy >= 2.9 (Python >= 3.12)", allow_module_level=True)

import brainpy.state as stock  # noqa: E402
import brainstate  # noqa: E402
import braintools  # noqa: E402
import brainunit as u  # noqa: E402
import numpy as np  # noqa: E402

import brainpy_halfproj as bhp  # noqa: E402
import brainpy_halfproj.state as plugin  # noqa: E402

from ._state_nets import EINet, EIStep, HHNet, build, run, state_values  # noqa: E402

CASES = {  # name: (network class, build kwargs, input, dt, steps, step by step)
    "coba": (EINet, {}, 20. * u.pA, 0.1 * u.ms, 400, False),
    "coba-delay": (EINet, {"delay": 1.5 * u.ms}, 20. * u.pA, 0.1 * u.ms, 400, False),
    "coba-step-by-step": (EINet, {}, 20. * u.pA, 0.1 * u.ms, 60, True),
    "cuba": (EINet, {"kind": "cuba"}, 20. * u.pA, 0.1 * u.ms, 400, False),
    "cuba-delay-step-by-step": (EINet, {"kind": "cuba", "delay": 1. * u.ms}, 20. * u.pA, 0.1 * u.ms, 60, True),
    "hh": (HHNet, {}, 10. * u.uA, 0.05 * u.ms, 400, False),
    "hh-delay": (HHNet, {"delay": 0.5 * u.ms}, 10. * u.uA, 0.05 * u.ms, 400, False),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_identical_rasters_and_states(case):
    cls, kwargs, inp, dt, steps, step_by_step = CASES[case]
    nets, rasters = [], []
    for bst in (stock, plugin):
        net = build(cls, bst, dt=dt, **kwargs)
        rasters.append(run(net, steps, inp, dt=dt, step_by_step=step_by_step))
        nets.append(net)
    assert 0 < rasters[0].sum() < rasters[0].size / 2  # the network is alive, not saturated
    np.testing.assert_array_equal(rasters[1], rasters[0])
    states = [state_values(net) for net in nets]
    assert list(states[1]) == list(states[0])  # the same paths, registry keys included
    for path, value in states[0].items():
        np.testing.assert_array_equal(states[1][path], value, err_msg=str(path))
    # Every group is stored under upstream's own string; the report agrees with stock's registry.
    stock_keys = list(nets[0].N.before_updates)
    assert list(nets[1].N.before_updates) == stock_keys
    assert [g.storage_name for g in bhp.merge_report(nets[1]).groups] == stock_keys


def test_built_in_another_order_the_same_groups_hold_the_same_states():
    # Construction order changes names and update order in both, identically.
    a, b = (build(EINet, bst, order="IE") for bst in (stock, plugin))
    np.testing.assert_array_equal(run(a, 200, 20. * u.pA), run(b, 200, 20. * u.pA))
    assert list(a.N.before_updates) == list(b.N.before_updates)


class UpstreamCOBA(EIStep):
    """Upstream's ``examples_state/103_COBA_2005.py`` as published (its units: weights in mS, input in mA)."""

    def __init__(self, bst):
        super().__init__()
        self.n_exc, self.n_inh = 3200, 800
        self.num = self.n_exc + self.n_inh
        self.N = bst.LIFRef(self.num, V_rest=-60. * u.mV, V_th=-50. * u.mV, V_reset=-60. * u.mV,
                            tau=20. * u.ms, tau_ref=5. * u.ms,
                            V_initializer=braintools.init.Normal(-55. * u.mV, 2. * u.mV))
        self.E = bst.AlignPostProj(
            comm=brainstate.nn.EventFixedProb(self.n_exc, self.num, conn_num=0.02, conn_weight=0.6 * u.mS),
            syn=bst.Expon.desc(self.num, tau=5. * u.ms), out=bst.COBA.desc(E=0. * u.mV), post=self.N)
        self.I = bst.AlignPostProj(
            comm=brainstate.nn.EventFixedProb(self.n_inh, self.num, conn_num=0.02, conn_weight=6.7 * u.mS),
            syn=bst.Expon.desc(self.num, tau=10. * u.ms), out=bst.COBA.desc(E=-80. * u.mV), post=self.N)


def test_upstream_example_changed_only_in_its_import():
    rasters = [run(build(UpstreamCOBA, bst), 200, 20. * u.mA) for bst in (stock, plugin)]
    assert rasters[0].sum() > 0
    np.testing.assert_array_equal(rasters[1], rasters[0])
    report = bhp.merge_report(build(UpstreamCOBA, plugin))
    assert [(g.key_text, len(g.projections)) for g in report.groups] == [
        ("Expon(in_size=4000, tau=5.0 ms) -> COBA(E=0.0 mV)", 1),
        ("Expon(in_size=4000, tau=10.0 ms) -> COBA(E=-80.0 mV)", 1)]
    assert report.findings == ()


class TwoExcitatory(brainstate.nn.Module):
    """Two excitatory projections whose descriptors are equal by value but written differently."""

    def __init__(self, bst):
        super().__init__()
        self.N = bst.LIFRef(400, V_rest=-60. * u.mV, V_th=-50. * u.mV, V_reset=-60. * u.mV, tau=20. * u.ms,
                            tau_ref=5. * u.ms, R=1. * u.Gohm,
                            V_initializer=braintools.init.Normal(-55. * u.mV, 2. * u.mV))

        def comm():
            return brainstate.nn.EventFixedProb(200, 400, conn_num=0.05, conn_weight=0.6 * u.nS)

        self.A = bst.AlignPostProj(comm=comm(), syn=bst.Expon.desc(400, tau=5. * u.ms),
                                   out=bst.COBA.desc(E=0. * u.mV), post=self.N)
        self.B = bst.AlignPostProj(comm=comm(), syn=bst.Expon.desc(in_size=400, tau=0.005 * u.second),
                                   out=bst.COBA.desc(0 * u.mV), post=self.N)

    def update(self, t, inp):
        with brainstate.environ.context(t=t):
            spk = self.N.get_spike() != 0.
            self.A(spk[:200])
            self.B(spk[200:])
            self.N(inp)
            return self.N.get_spike()


def test_a_merge_stock_missed_gives_the_same_network_up_to_rounding():
    # Stock keeps two synapses, the plugin one: the synapse is linear, so the input is the same up to
    # the order of float summation.
    a, b = build(TwoExcitatory, stock), build(TwoExcitatory, plugin)
    assert len(a.N.before_updates) == 2 and len(b.N.before_updates) == 1
    ra, rb = run(a, 300, 20. * u.pA), run(b, 300, 20. * u.pA)
    assert ra.sum() > 100
    assert (ra != rb).mean() < 1e-3  # rounding may flip a rare threshold crossing; nothing more
