"""Fused merge groups: one kernel call per post group, the same synaptic input as unfused."""
import re

import brainpy as bp
import brainpy.math as bm
import jax
import numpy as np
import pytest

import brainpy_halfproj as bhp

from ._nets import LIF


def _kernel_calls(fn, *args):
    """Custom calls in the compiled program (the lowered text may share one call between callers)."""
    return len(re.findall(r'custom_call_target="', jax.jit(fn).lower(*args).compile().as_text()))


class Net(bp.DynSysGroup):
    """E (two pathways sharing one synapse state, one with normal weights) and I onto one group."""

    def __init__(self, fused, after_post=False, ne=320, ni=80):
        super().__init__()
        n = ne + ni
        self.ne, self.after_post = ne, after_post
        self.N = bhp.dyn.LifRef(n, **LIF, V_initializer=bp.init.Normal(-55., 2.))
        self.delay = bp.VarDelay(self.N.spike, entries={'I': None})
        mg = bhp.dyn.HalfProjAlignPostMg
        self.E = mg(bp.dnn.EventJitFPHomoLinear(ne, n, prob=0.1, weight=0.6, seed=1),
                    bp.dyn.Expon.desc(n, tau=5.), bp.dyn.COBA.desc(E=0.), self.N, fused=fused)
        self.E2 = mg(bp.dnn.EventJitFPNormalLinear(ne, n, prob=0.05, w_mu=0.3, w_sigma=0.1, seed=2),
                     bp.dyn.Expon.desc(n, tau=5.), bp.dyn.COBA.desc(E=0.), self.N, fused=fused)
        self.I = mg(bp.dnn.EventCSRLinear(bp.conn.FixedProb(0.1, seed=3)(ni, n), weight=6.7),
                    bp.dyn.Expon.desc(n, tau=10.), bp.dyn.COBA.desc(E=-80.), self.N, fused=fused)

    def project(self, spk):
        self.E(spk[:self.ne])
        self.E2(spk[:self.ne])
        self.I(spk[self.ne:])

    def update(self, inp):
        """Spikes, and the conductances as the neurons saw them in this step."""
        spk = self.delay.at('I')
        if not self.after_post:
            self.project(spk)
        out = self.N(inp)
        seen = self.E.syn.g.value, self.I.syn.g.value
        if self.after_post:  # handed after the post's step: reaches the synapse in the next step
            self.project(spk)
        self.delay(out)
        return (out, *seen)


def _run(net, n_steps):
    return [np.asarray(x) for x in bm.for_loop(lambda i: net.step_run(i, 20.), np.arange(n_steps))]


@pytest.mark.slow
@pytest.mark.parametrize("after_post", [False, True], ids=["handed-before-post", "handed-after-post"])
def test_fused_gives_the_unfused_synaptic_input(after_post):
    def simulate(fused):
        bm.random.seed(0)
        return _run(Net(fused, after_post=after_post), 300)

    (s_ref, ge_ref, gi_ref), (s, ge, gi) = simulate(False), simulate(True)
    assert s_ref.sum() > 100 and ge_ref.max() > 0 and gi_ref.max() > 0
    # step by step, up to the order of float32 summation
    np.testing.assert_allclose(ge, ge_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gi, gi_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(s, s_ref)


def test_timing_contract_in_one_step():
    """Handed before the post's step: in the synapse after that step; handed after: only after the next."""
    for after_post in (False, True):
        bm.random.seed(0)
        net = Net(True, after_post=after_post)
        spikes = bm.ones(400, dtype=bool)
        bp.share.save(i=0, t=0.)
        if after_post:
            net.N(0.)
            net.project(spikes)
            assert not np.asarray(net.E.syn.g.value).any()  # not yet
            net.N(0.)
        else:
            net.project(spikes)
            net.N(0.)
        g = np.asarray(net.E.syn.g.value)
        assert g.max() > 0
        expected = np.asarray(net.E.comm(spikes[:320]) + net.E2.comm(spikes[:320])) * np.exp(-0.1 / 5.)
        np.testing.assert_allclose(g, expected, rtol=1e-5)


@pytest.mark.slow
def test_one_kernel_call_per_post_group():
    bm.random.seed(0)
    unfused, fused = Net(False), Net(True)
    assert _kernel_calls(lambda i: unfused.step_run(i, 20.)[0], 0) == 3
    assert _kernel_calls(lambda i: fused.step_run(i, 20.)[0], 0) == 1
    call = fused.E.fused_call
    assert call is fused.E2.fused_call is fused.I.fused_call
    assert call.groups == [fused.E.merge_group, fused.I.merge_group]
    assert call.projections == [fused.E, fused.E2, fused.I]
    assert call.shape == (320 + 320 + 80, 2 * 400)
    assert call.connectivity.nnz == sum(np.count_nonzero(np.asarray(
        jax.vmap(p.comm)(np.eye(p.comm.num_in if hasattr(p.comm, "num_in") else 80, dtype=bool))))
        for p in (fused.E, fused.E2)) + fused.I.comm.indices.size
    assert fused.N.before_updates and next(iter(fused.N.before_updates.values())) is call


@pytest.mark.parametrize("cls_name", ["FullProjAlignPostMg"])
def test_full_projections_fuse_too(cls_name):
    class FullNet(bp.DynSysGroup):
        def __init__(self, fused):
            super().__init__()
            self.E = bhp.dyn.LifRef(320, **LIF, V_initializer=bp.init.Normal(-55., 2.))
            self.I = bhp.dyn.LifRef(80, **LIF, V_initializer=bp.init.Normal(-55., 2.))
            jit = bp.dnn.EventJitFPHomoLinear
            cls = getattr(bhp.dyn, cls_name)
            self.E2E = cls(self.E, 0.1, jit(320, 320, prob=0.1, weight=0.6), bp.dyn.Expon.desc(320, tau=5.),
                           bp.dyn.COBA.desc(E=0.), self.E, fused=fused)
            self.I2E = cls(self.I, 0.1, jit(80, 320, prob=0.1, weight=6.7), bp.dyn.Expon.desc(320, tau=10.),
                           bp.dyn.COBA.desc(E=-80.), self.E, fused=fused)
            self.E2I = cls(self.E, 0.1, jit(320, 80, prob=0.1, weight=0.6), bp.dyn.Expon.desc(80, tau=5.),
                           bp.dyn.COBA.desc(E=0.), self.I, fused=fused)

        def update(self, inp):
            self.E2E()
            self.I2E()
            self.E2I()
            self.E(inp)
            self.I(inp)
            return bm.concatenate([self.E.spike.value, self.I.spike.value])

    def simulate(fused):
        bm.random.seed(1)
        net = FullNet(fused)
        return np.asarray(bm.for_loop(lambda i: net.step_run(i, 20.), np.arange(300))), net

    (ref, _), (got, net) = simulate(False), simulate(True)
    assert ref.sum() > 100
    np.testing.assert_array_equal(got, ref)
    assert net.E2E.fused_call is net.I2E.fused_call is not net.E2I.fused_call


def test_members_that_cannot_fuse_keep_their_call_and_the_report_says_why():
    post = bp.dyn.LifRef(40)
    jit = bhp.HalfProjAlignPostMg(bp.dnn.EventJitFPHomoLinear(30, 40, prob=0.1, weight=0.6),
                                  bp.dyn.Expon.desc(40, tau=5.), bp.dyn.CUBA.desc(), post, fused=True)
    dense = bhp.HalfProjAlignPostMg(bp.dnn.OneToOne(40, 1.), bp.dyn.Expon.desc(40, tau=5.), bp.dyn.CUBA.desc(),
                                    post, fused=True)
    plain = bhp.HalfProjAlignPostMg(bp.dnn.OneToOne(40, 1.), bp.dyn.Expon.desc(40, tau=5.), bp.dyn.CUBA.desc(),
                                    post)
    assert jit.fused_call is not None and jit.unfused_reason is None
    assert dense.fused_call is None and plain.fused_call is None and plain.unfused_reason is None
    assert dense.unfused_reason == ("comm is a OneToOne, not an event layer (bp.dnn.EventCSRLinear, "
                                    "EventJitFPHomoLinear, EventJitFPNormalLinear, EventJitFPUniformLinear)")
    report = bhp.merge_report(post)
    assert [(p, why) for p, why in report.not_fused] == [(dense, dense.unfused_reason)]
    (info,) = report.fused
    assert info.projections == (jit,) and info.synapses == jit.fused_call.connectivity.nnz > 0
    text = str(report)
    assert "1 fused kernel call(s) per step for 1 projection(s)" in text.splitlines()[0]
    assert (f"  fused: 1 kernel call per step for 1 projection(s) into 1 synapse state(s); stacked "
            f"connectivity {info.synapses} synapses") in text
    assert f"  not fused: {dense.name}: comm is a OneToOne, not an event layer" in text
    assert "not fused" in report._repr_html_()
    # the non-fused member still adds its current directly
    np.testing.assert_array_equal(np.asarray(dense(bm.ones(40))), np.ones(40))


def test_batching_mode_is_not_fused():
    post = bp.dyn.LifRef(40, mode=bm.BatchingMode(2))
    proj = bhp.HalfProjAlignPostMg(bp.dnn.EventJitFPHomoLinear(30, 40, prob=0.1, weight=0.6),
                                   bp.dyn.Expon.desc(40, tau=5.), bp.dyn.CUBA.desc(), post,
                                   mode=bm.BatchingMode(2), fused=True)
    assert proj.fused_call is None
    assert proj.unfused_reason == "fused calls run in brainpy's default (non-batching) mode, not in BatchingMode"


def test_fused_must_be_a_bool():
    post = bp.dyn.LifRef(40)
    with pytest.raises(TypeError, match=r"HalfProjAlignPostMg '\w+': `fused` must be True or False, got 1\."):
        bhp.HalfProjAlignPostMg(bp.dnn.EventJitFPHomoLinear(30, 40, prob=0.1, weight=0.6),
                                bp.dyn.Expon.desc(40, tau=5.), bp.dyn.CUBA.desc(), post, fused=1)


def test_wrong_spike_size_is_caught_before_the_buffer():
    bm.random.seed(0)
    net = Net(True)
    with pytest.raises(ValueError, match=r"the spike input has shape \(10,\), but `comm` expects 320"):
        net.E(bm.zeros(10, dtype=bool))


def test_reset_clears_the_spike_buffers():
    bm.random.seed(0)
    net = Net(True)
    net.E(bm.ones(320, dtype=bool))
    assert np.asarray(net.E.fused_call.buffers[0].value).all()
    bp.reset_state(net)
    assert not any(np.asarray(b.value).any() for b in net.E.fused_call.buffers)


def test_checkpoint_round_trip_with_fused_groups(tmp_path):
    bm.random.seed(0)
    a = Net(True)
    _run(a, 50)
    a.E(bm.ones(320, dtype=bool))  # a pending hand-off is state too
    bhp.save_checkpoint(a, tmp_path / "fused.npz")
    bm.random.seed(5)
    b = Net(True)
    bhp.load_checkpoint(b, tmp_path / "fused.npz")
    np.testing.assert_array_equal(_run(a, 50)[0], _run(b, 50)[0])
