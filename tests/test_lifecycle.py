"""reset, jit, modes and training (checkpoints: ``test_checkpoint.py``)."""

import brainpy as bp
import brainpy.math as bm
import numpy as np
import pytest

import brainpy_halfproj as bhp

from ._nets import build_net, run


@pytest.mark.parametrize("cls_name", ["HalfProjAlignPostMg", "FullProjAlignPostMg"])
def test_reset_state_resets_merged_state_once(cls_name, monkeypatch):
    net = build_net(bhp.dyn, cls_name)
    run(net, 50)
    shared = net.E.syn if cls_name.startswith("Half") else net.E2E.syn
    assert np.asarray(shared.g.value).any()
    calls = []
    original = type(shared).reset_state

    def counting(self, *args, **kwargs):
        calls.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(shared), "reset_state", counting)
    bp.reset_state(net)
    assert sum(c is shared for c in calls) == 1
    assert not np.asarray(shared.g.value).any()


@pytest.mark.parametrize("cls_name", ["HalfProjAlignPostMg", "FullProjAlignPostMg"])
def test_reset_then_rerun_reproduces_the_raster(cls_name):
    net = build_net(bhp.dyn, cls_name)
    initial = bhp.state_dict(net)
    first = run(net, 100)
    assert first.sum() > 0
    bp.reset_state(net)
    after_reset = bhp.state_dict(net)
    # reset_state redraws the membrane potentials from their random initializer; everything
    # else (merged synapses, delays, spikes, refractory times) is back where it started
    redrawn = {k for k in initial if k.endswith(".V")}
    assert redrawn and all(not np.array_equal(after_reset[k], initial[k]) for k in redrawn)
    for k in initial.keys() - redrawn:
        np.testing.assert_array_equal(after_reset[k], initial[k], err_msg=k)
    # with the initial potentials put back, the rerun is the first run, spike for spike
    bhp.load_state_dict(net, {**after_reset, **{k: initial[k] for k in redrawn}})
    np.testing.assert_array_equal(run(net, 100), first)


def test_jit_compiled_step_matches_for_loop():
    a, b = build_net(bhp.dyn, "HalfProjAlignPostMg"), build_net(bhp.dyn, "HalfProjAlignPostMg")
    step = bm.jit(lambda i: b.step_run(i, 20.))
    np.testing.assert_array_equal(run(a, 40), np.stack([np.asarray(step(i)) for i in range(40)]))


class DenseNet(bp.DynSysGroup):
    """A trainable network: dense comm, surrogate spikes, merged synapse."""

    def __init__(self, dyn, mode):
        super().__init__()
        self.N = bp.dyn.LifRef(10, mode=mode, spk_fun=bm.surrogate.ReluGrad(), V_rest=-60., V_th=-50.,
                               V_reset=-60., tau=20., V_initializer=bp.init.Normal(-55., 2.))
        self.P = dyn.HalfProjAlignPostMg(bp.dnn.Linear(5, 10, W_initializer=bp.init.Normal(0.5, 0.1), mode=mode),
                                         bp.dyn.Expon.desc(10, tau=5.), bp.dyn.CUBA.desc(), self.N, mode=mode)

    def update(self, x):
        self.P(x)
        return self.N(0.)


def test_mode_reaches_the_built_synapse():
    bm.random.seed(0)
    net = DenseNet(bhp.dyn, bm.BatchingMode(3))
    assert net.P.syn.g.shape == (3, 10)
    assert isinstance(net.P.syn.mode, bm.BatchingMode) and net.P.syn.mode.batch_size == 3
    spikes = bm.for_loop(lambda i: net.step_run(i, bm.ones((3, 5)) * 40.), np.arange(20))
    assert spikes.shape == (20, 3, 10)


def test_upstream_builds_the_merged_synapse_without_the_given_mode():
    """Upstream bug (README: differences), the same on every line: bp.dyn's merging projections do
    not pass mode= to the synapse they build, which then has no batch axis (a shape error in the loop).
    If upstream fixes it, this test fails: then update the README's table and this test."""
    bm.random.seed(0)
    net = DenseNet(bp.dyn, bm.TrainingMode(2))
    assert net.P.syn.g.shape == (10,) and isinstance(net.P.syn.mode, bm.NonBatchingMode)
    with pytest.raises(bp.errors.MathError, match=r"The shape of the original data is \(10,\), while we got "
                                                  r"\(2, 10\) with batch_axis=None"):
        bm.for_loop(lambda i: net.step_run(i, bm.ones((2, 5))), np.arange(3))


@pytest.mark.slow
def test_gradients_flow_through_a_dense_comm_in_training_mode():
    bm.random.seed(0)
    net = DenseNet(bhp.dyn, bm.TrainingMode(2))
    x = bm.ones((2, 5)) * 50.

    def loss():
        bp.reset_state(net, 2)
        out = bm.for_loop(lambda i: (net.step_run(i, x), net.N.V.value), np.arange(30))
        return out[0].sum() + 1e-3 * out[1].sum()

    grads = bm.grad(loss, grad_vars=net.train_vars().unique())()
    assert set(grads) == set(net.train_vars().unique())
    for g in grads.values():
        g = np.asarray(g)
        assert np.isfinite(g).all() and np.abs(g).sum() > 0
