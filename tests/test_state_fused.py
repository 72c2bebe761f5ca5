"""Fused merge groups on brainpy.state: ``AlignPostProj(..., fused=True)`` against the unfused model."""
from __future__ import annotations

import warnings

import pytest

from brainpy_halfproj._compat import BRAINPY_VERSION

if BRAINPY_VERSION < (2, 9):
    pytest.skip("the brainpy.state front needs brainpy >= 2.9 (Python >= 3.12)", allow_module_level=True)

import brainevent  # noqa: E402
import brainstate  # noqa: E402
import braintools  # noqa: E402
import brainunit as u  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import brainpy_halfproj as bhp  # noqa: E402
import brainpy_halfproj.state as bst  # noqa: E402
from brainpy_halfproj._hlo import count_kernel_calls  # noqa: E402

from ._state_nets import DT, EINet, EIStep, build, run  # noqa: E402

N_POST, N_E, N_I = 60, 40, 20


class Fused:
    """``brainpy_halfproj.state`` with ``fused=`` set on every ``AlignPostProj`` (for the shared nets)."""

    def __init__(self, fused: bool):
        self.fused = fused

    def AlignPostProj(self, *args, **kwargs):  # noqa: N802 - the namespace's class name
        return bst.AlignPostProj(*args, fused=self.fused, **kwargs)

    def __getattr__(self, name):
        return getattr(bst, name)


class Pair(brainstate.nn.Module):
    """A post group fed by an E and an I projection from given spikes (no feedback), to drive call patterns."""

    def __init__(self, fused: bool, afferent_ratio: float = 1., e_weight=0.6 * u.nS, order: str = "EI"):
        super().__init__()
        self.N = bst.LIFRef(N_POST, V_rest=-60. * u.mV, V_th=-50. * u.mV, V_reset=-60. * u.mV, tau=20. * u.ms,
                            tau_ref=5. * u.ms, R=1. * u.Gohm,
                            V_initializer=braintools.init.Normal(-55. * u.mV, 2. * u.mV))
        for name in order:  # the order in which the projections join the fused call
            if name == "E":
                self.E = bst.AlignPostProj(
                    comm=brainstate.nn.EventFixedProb(N_E, N_POST, conn_num=0.1, conn_weight=e_weight, seed=1,
                                                      afferent_ratio=afferent_ratio),
                    syn=bst.Expon.desc(N_POST, tau=5. * u.ms), out=bst.COBA.desc(E=0. * u.mV), post=self.N,
                    fused=fused)
            else:
                self.I = bst.AlignPostProj(
                    comm=brainstate.nn.EventFixedProb(N_I, N_POST, conn_num=0.1, conn_weight=6.7 * u.nS, seed=2),
                    syn=bst.Expon.desc(N_POST, tau=10. * u.ms), out=bst.COBA.desc(E=-80. * u.mV), post=self.N,
                    fused=fused)


def _pair(fused: bool, **kwargs) -> Pair:
    brainstate.random.seed(7)
    net = Pair(fused, **kwargs)
    with brainstate.environ.context(dt=DT):
        brainstate.nn.init_all_states(net)
    return net


def _spikes(n_steps: int, n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((n_steps, n)) < 0.2


# Per step, what happens in order: "p" = each projection gets that step's spikes, "N" = the post updates.
PATTERNS = {
    "once before the post": ["pN"] * 8,
    "once after the post": ["Np"] * 8,
    "zero or one (projections every 2nd step)": ["pN", "N"] * 4,
    "several (post every 2nd step)": ["p", "pN"] * 4,
    "several, before and after the post": ["pNp", "p", "pN", "Np"] * 2,
}


def _drive(net: Pair, pattern: list[str], reference: bool) -> list[np.ndarray]:
    """Run ``pattern`` eagerly; the synapse conductances after each post update.

    ``reference``: the unfused input as upstream defines it, the sum of each call's layer
    output, taken by the synapse at its next update (upstream itself refuses a second
    ``add_delta_input`` before the update, so the sum is formed here).
    """
    e_spk, i_spk = _spikes(len(pattern) * 3, N_E, 1), _spikes(len(pattern) * 3, N_I, 2)
    pending: dict[str, object] = {}
    out, call = [], 0
    with brainstate.environ.context(dt=DT):
        for step, actions in enumerate(pattern):
            with brainstate.environ.context(t=step * DT):
                for action in actions:
                    if action == "N":
                        for proj in pending:
                            getattr(net, proj).syn.add_delta_input(getattr(net, proj).name, pending[proj])
                        pending = {}
                        net.N(200. * u.pA)
                        out.append(np.concatenate([np.asarray(u.get_mantissa(p.syn.g.value)) for p in (net.E, net.I)]))
                        continue
                    for proj, spk in (("E", e_spk[call]), ("I", i_spk[call])):
                        if reference:
                            x = getattr(net, proj).comm(jnp.asarray(spk))
                            pending[proj] = pending[proj] + x if proj in pending else x
                        else:
                            getattr(net, proj)(jnp.asarray(spk))
                    call += 1
    return out


@pytest.mark.parametrize("pattern", list(PATTERNS), ids=list(PATTERNS))
def test_fused_input_equals_unfused_for_each_call_pattern(pattern):
    fused, unfused = _pair(True), _pair(False)
    assert fused.E.fused_call is not None and fused.E.fused_call is fused.I.fused_call
    got, want = _drive(fused, PATTERNS[pattern], False), _drive(unfused, PATTERNS[pattern], True)
    assert len(got) == len(want) > 0
    assert any(np.any(w > 0) for w in want)  # the input reached the synapses
    np.testing.assert_allclose(np.stack(got), np.stack(want), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("pattern", ["once before the post", "zero or one (projections every 2nd step)"])
def test_unfused_reference_is_upstreams_own_call(pattern):
    """Where upstream accepts the pattern, the test's reference is what its own projections give."""
    direct, reference = _pair(False), _pair(False)
    np.testing.assert_array_equal(np.stack(_drive(direct, PATTERNS[pattern], False)),
                                  np.stack(_drive(reference, PATTERNS[pattern], True)))


def test_csr_connectivity_is_fused_too():
    """``afferent_ratio < 1`` gives the layer a CSR matrix instead of FixedNumPerPre."""
    fused, unfused = _pair(True, afferent_ratio=0.5), _pair(False, afferent_ratio=0.5)
    pattern = PATTERNS["several, before and after the post"]
    np.testing.assert_allclose(np.stack(_drive(fused, pattern, False)), np.stack(_drive(unfused, pattern, True)),
                               rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("kind", ["coba", "cuba"])
def test_rasters_of_the_ei_net_are_identical(kind):
    fused, unfused = (build(EINet, Fused(f), n=400, kind=kind) for f in (True, False))
    assert fused.E.fused_call is fused.I.fused_call is not None
    got, want = run(fused, 400, 20. * u.pA), run(unfused, 400, 20. * u.pA)
    assert want.sum() > 100
    np.testing.assert_array_equal(got, want)


class SparseNet(EIStep):
    """E/I network whose projections are ``SparseLinear`` layers fed ``BinaryArray`` spikes (as the benchmarks')."""

    def __init__(self, fused: bool, matrix: str, n: int = 400):
        super().__init__()
        self.n_exc = n * 4 // 5
        self.N = bst.LIFRef(n, V_rest=-60. * u.mV, V_th=-50. * u.mV, V_reset=-60. * u.mV, tau=20. * u.ms,
                            tau_ref=5. * u.ms, R=1. * u.Gohm,
                            V_initializer=braintools.init.Normal(-55. * u.mV, 2. * u.mV))
        for name, n_pre, w, tau, e in (("E", self.n_exc, 0.6, 5., 0.), ("I", n - self.n_exc, 6.7, 10., -80.)):
            if matrix == "jit":
                mat = brainevent.JITCScalarR((w * u.nS, 0.02, len(name)), shape=(n, n_pre), corder=False).T
            else:
                rng = np.random.default_rng(len(name))
                pre, post = np.nonzero(rng.random((n_pre, n)) < 0.02)
                indptr = np.searchsorted(pre, np.arange(n_pre + 1))
                mat = brainevent.CSR((jnp.asarray(rng.uniform(0.5, 1.5, pre.size) * w) * u.nS, jnp.asarray(post),
                                      jnp.asarray(indptr)), shape=(n_pre, n))
            setattr(self, name, bst.AlignPostProj(brainevent.BinaryArray, comm=brainstate.nn.SparseLinear(mat),
                                                  syn=bst.Expon.desc(n, tau=tau * u.ms),
                                                  out=bst.COBA.desc(E=e * u.mV), post=self.N, fused=fused))


@pytest.mark.parametrize("matrix", ["jit", "csr"])
def test_sparse_linear_layers_fuse_with_identical_rasters(matrix):
    fused, unfused = (build(SparseNet, f, matrix=matrix) for f in (True, False))
    assert fused.E.unfused_reason is None and fused.E.fused_call is fused.I.fused_call is not None
    got, want = run(fused, 400, 20. * u.pA), run(unfused, 400, 20. * u.pA)
    assert want.sum() > 100
    np.testing.assert_array_equal(got, want)


def test_sparse_linear_with_float_input_takes_its_own_call_with_a_warning():
    def proj(fused):
        post = bst.LIF(N_POST)
        mat = brainevent.JITCScalarR((0.6 * u.nS, 0.1, 1), shape=(N_POST, N_E), corder=False).T
        p = bst.AlignPostProj(comm=brainstate.nn.SparseLinear(mat), syn=bst.Expon.desc(N_POST, tau=5. * u.ms),
                              out=bst.COBA.desc(E=0. * u.mV), post=post, fused=fused)
        brainstate.nn.init_all_states(post)
        return p

    fused, unfused = proj(True), proj(False)
    assert fused.fused_call is not None
    x = jnp.linspace(0., 2., N_E)  # values, not events: SparseLinear weighs them
    with pytest.warns(UserWarning, match=r"multiplies a float32 input by its values, .* not fused"):
        fused(x)
    unfused(x)
    np.testing.assert_array_equal(np.asarray(u.get_mantissa(fused.syn._delta_inputs[fused.name])),
                                  np.asarray(u.get_mantissa(unfused.syn._delta_inputs[unfused.name])))


def test_one_event_kernel_call_per_step():
    def calls(net):
        def step(i):
            return net.update(i * DT, 20. * u.pA)

        with brainstate.environ.context(dt=DT):
            return count_kernel_calls(brainstate.transform.jit(step).lower(0).compile().as_text())

    fused, unfused = (build(EINet, Fused(f), n=200) for f in (True, False))
    assert calls(unfused) == (2, 0)
    # brainevent 0.3: one value-weighted kernel call takes the counts, no branch (a conditional costs a few µs a step)
    assert calls(fused) == (1, 0)


def _hand(net: Pair, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Hand E and I one step's spikes (no post update); the spikes, as counts."""
    e, i = _spikes(1, N_E, seed)[0], _spikes(1, N_I, seed + 1)[0]
    with brainstate.environ.context(dt=DT, t=0. * u.ms):
        net.E(jnp.asarray(e))
        net.I(jnp.asarray(i))
    return e.astype(np.int32), i.astype(np.int32)


def test_the_members_count_into_one_event_buffer_a_block_each():
    # One loop-carried state for the call, not one per member (each costs XLA two copies a step).
    net = _pair(True)
    call = net.E.fused_call
    assert list(call.states(brainstate.ShortTermState).values()) == [call.buffer]
    assert call.buffer.value.shape == (N_E + N_I,) and call.buffer.value.dtype == jnp.int32
    e, i = _hand(net, 11)
    e2, i2 = _hand(net, 13)  # a second call before the post's update counts again
    np.testing.assert_array_equal(np.asarray(call.buffer.value), np.concatenate([e + e2, i + i2]))
    np.testing.assert_array_equal(np.asarray(call.buffers[1].value), i + i2)
    assert (e + e2).max() == 2  # some neuron spiked in both calls
    with brainstate.environ.context(dt=DT, t=0. * u.ms):
        net.N(200. * u.pA)
    assert not np.asarray(call.buffer.value).any()


def test_rebuild_keeps_the_counted_events_of_each_member():
    net = _pair(True)
    e, i = _hand(net, 21)
    net.E.comm = brainstate.nn.EventFixedProb(N_E, N_POST, conn_num=0.2, conn_weight=0.6 * u.nS, seed=5)
    net.E.fused_call.rebuild()
    np.testing.assert_array_equal(np.asarray(net.E.fused_call.buffers[0].value), e)
    np.testing.assert_array_equal(np.asarray(net.E.fused_call.buffers[1].value), i)


def test_counted_events_in_a_checkpoint_load_into_members_that_joined_in_the_other_order(tmp_path):
    saved = _pair(True)
    e, i = _hand(saved, 31)
    bhp.save_checkpoint(saved, tmp_path / "pair.npz")
    loaded = _pair(True, order="IE")
    assert [p.name for p in loaded.E.fused_call.projections] == [loaded.I.name, loaded.E.name]
    bhp.load_checkpoint(loaded, tmp_path / "pair.npz")
    np.testing.assert_array_equal(np.asarray(loaded.E.fused_call.buffer.value), np.concatenate([i, e]))
    with brainstate.environ.context(dt=DT, t=0. * u.ms):
        saved.N(200. * u.pA)
        loaded.N(200. * u.pA)
    for proj in ("E", "I"):
        np.testing.assert_array_equal(np.asarray(u.get_mantissa(getattr(loaded, proj).syn.g.value)),
                                      np.asarray(u.get_mantissa(getattr(saved, proj).syn.g.value)))


def test_a_weight_edit_after_construction_is_followed():
    fused, unfused = (build(EINet, Fused(f), n=400) for f in (True, False))
    plain = run(build(EINet, Fused(True), n=400), 300, 20. * u.pA)
    for net in (fused, unfused):
        net.E.comm.weight.value = 1.1 * u.nS
        net.I.comm.weight.value = 5. * u.nS
    got, want = run(fused, 300, 20. * u.pA), run(unfused, 300, 20. * u.pA)
    np.testing.assert_array_equal(got, want)
    assert not np.array_equal(got, plain)  # the edit changed the run


def test_an_edit_of_per_synapse_weights_is_followed():
    weights = braintools.init.Uniform(0.3 * u.nS, 0.9 * u.nS)
    fused, unfused = _pair(True, e_weight=weights), _pair(False, e_weight=weights)
    assert fused.E.comm.weight.value.shape == (N_E, 6)
    for net in (fused, unfused):
        net.E.comm.weight.value = net.E.comm.weight.value * np.linspace(0.5, 3., N_E)[:, None]
    pattern = PATTERNS["several, before and after the post"]
    np.testing.assert_allclose(np.stack(_drive(fused, pattern, False)), np.stack(_drive(unfused, pattern, True)),
                               rtol=1e-6, atol=1e-9)


def test_weights_are_trainable_through_the_fused_call():
    def loss_grad(net):
        weights = {"E": net.E.comm.weight, "I": net.I.comm.weight}

        def loss():
            _drive_once(net)
            return u.get_mantissa(net.E.syn.g.value).sum() + u.get_mantissa(net.I.syn.g.value).sum()

        grads = brainstate.transform.grad(loss, grad_states=weights)()
        return {k: np.asarray(u.get_mantissa(v)) for k, v in grads.items()}

    def _drive_once(net):
        with brainstate.environ.context(dt=DT, t=0. * u.ms):
            net.E(jnp.asarray(_spikes(1, N_E, 1)[0]))
            net.I(jnp.asarray(_spikes(1, N_I, 2)[0]))
            net.N(200. * u.pA)

    got, want = loss_grad(_pair(True)), loss_grad(_pair(False))
    assert np.any(got["E"] != 0) and np.any(got["I"] != 0)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-6)


def test_x64_keeps_float64():
    with brainstate.environ.context(precision=64):
        fused, unfused = _pair(True), _pair(False)
        assert fused.E.fused_call.connectivity.data.dtype == np.float64
        pattern = PATTERNS["several, before and after the post"]
        got, want = np.stack(_drive(fused, pattern, False)), np.stack(_drive(unfused, pattern, True))
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)


def test_the_report_lists_the_fused_call_and_who_is_not_fused():
    net = _pair(True)
    linear = bst.AlignPostProj(comm=brainstate.nn.Linear(5, N_POST, w_init=braintools.init.Constant(0.1 * u.nS)),
                               syn=bst.Expon.desc(N_POST, tau=5. * u.ms), out=bst.COBA.desc(E=0. * u.mV), post=net.N,
                               fused=True)
    assert linear.fused_call is None and "not an event layer" in linear.unfused_reason
    report = bhp.merge_report(net)
    (info,) = report.fused
    assert info.post is net.N and info.projections == (net.E, net.I) and info.call is net.E.fused_call
    assert info.synapses == N_E * 6 + N_I * 6
    assert report.not_fused == ((linear, linear.unfused_reason),)
    text = str(report)
    assert "fused: 1 kernel call per step for 2 projection(s) into 2 synapse state(s)" in text
    assert f"not fused: {linear.name}: comm is a Linear" in text


@pytest.mark.parametrize("value", [1, "yes", None])
def test_a_bad_fused_value_is_refused_before_post_is_touched(value):
    post = bst.LIF(N_POST)
    with pytest.raises(TypeError, match=r"`fused` must be True or False, but got .*; pass fused=True"):
        bst.AlignPostProj(comm=brainstate.nn.EventFixedProb(N_E, N_POST, conn_num=0.1, conn_weight=0.6 * u.nS),
                          syn=bst.Expon.desc(N_POST, tau=5. * u.ms), out=bst.COBA.desc(E=0. * u.mV), post=post,
                          fused=value)
    assert not post.before_updates and not post.current_inputs


def test_a_replaced_connectivity_is_refused_until_rebuilt():
    fused, unfused = _pair(True), _pair(False)
    for net in (fused, unfused):
        brainstate.random.seed(3)
        net.E.comm = brainstate.nn.EventFixedProb(N_E, N_POST, conn_num=0.2, conn_weight=0.6 * u.nS, seed=5)
    pattern = PATTERNS["once before the post"]
    refused = (r"comm.conn \(which synapses exist\) changed after the fused call onto LIFRef\(60\) "
               r".*\.fused_call\.rebuild\(\)")
    with pytest.raises(ValueError, match=refused):
        _drive(fused, pattern, False)
    fused.E.fused_call.rebuild()
    fused.N.reset_state()
    unfused.N.reset_state()
    for net in (fused, unfused):
        with brainstate.environ.context(dt=DT):
            brainstate.nn.reset_all_states(net)
    np.testing.assert_allclose(np.stack(_drive(fused, pattern, False)), np.stack(_drive(unfused, pattern, True)),
                               rtol=1e-6, atol=1e-9)


def test_a_batched_input_takes_the_layers_own_call_with_a_warning():
    fused, unfused = _pair(True), _pair(False)
    spk = jnp.asarray(_spikes(2, N_E, 1))
    with pytest.warns(UserWarning, match=r"is not a spike vector of shape \(40,\); this call is not fused"):
        fused.E(spk)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        unfused.E(spk)
    assert not [w for w in seen if issubclass(w.category, UserWarning)]
    np.testing.assert_array_equal(np.asarray(u.get_mantissa(fused.E.syn._delta_inputs[fused.E.name])),
                                  np.asarray(u.get_mantissa(unfused.E.syn._delta_inputs[unfused.E.name])))


def test_a_checkpoint_of_a_fused_net_restores_a_fused_net_and_is_refused_by_an_unfused_one(tmp_path):
    saved = build(EINet, Fused(True), n=200)
    run(saved, 50, 20. * u.pA)
    bhp.save_checkpoint(saved, tmp_path / "fused.npz")
    loaded = build(EINet, Fused(True), n=200)
    bhp.load_checkpoint(loaded, tmp_path / "fused.npz")
    np.testing.assert_array_equal(run(loaded, 100, 20. * u.pA, start=50), run(saved, 100, 20. * u.pA, start=50))
    with pytest.raises(bhp.CheckpointError, match=r"group on post 'E.post' with key `spike buffer of a fused call` "
                                                  r"and members \['E'\] is not in the model"):
        bhp.load_checkpoint(build(EINet, Fused(False), n=200), tmp_path / "fused.npz")


def test_graded_events_take_the_layers_own_call_with_a_warning():
    fused, unfused = _pair(True), _pair(False)
    x = brainevent.WeightedArray(jnp.linspace(0., 2., N_E))  # brainevent 0.3 (brainpy 2.9)
    with pytest.warns(UserWarning, match=r"input WeightedArray of shape .* this call is not fused"):
        fused.E(x)
    unfused.E(x)
    np.testing.assert_array_equal(np.asarray(u.get_mantissa(fused.E.syn._delta_inputs[fused.E.name])),
                                  np.asarray(u.get_mantissa(unfused.E.syn._delta_inputs[unfused.E.name])))
