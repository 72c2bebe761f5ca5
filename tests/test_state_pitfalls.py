"""Every pitfall of stock brainpy.state's merging (issue 19), on stock and through the plugin."""
from __future__ import annotations

import pytest

from brainpy_halfproj._compat import BRAINPY_VERSION

if BRAINPY_VERSION < (2, 9):
    pytest.skip("the brainpy.state front needs brainpy >= 2.9 (Python >= 3.12)", allow_module_level=True)

import brainpy.state as stock  # noqa: E402
import brainstate  # noqa: E402
import brainunit as u  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import brainpy_halfproj.state as plugin  # noqa: E402

N = 2000
TAU = np.full(N, 5.)
TAU_1 = TAU.copy()
TAU_1[1234] = 6.
E_ARR = np.zeros(N)
E_ARR_1 = E_ARR.copy()
E_ARR_1[7] = -80.


def _pair(bst, a, b):
    """Two AlignPostProj onto one LIF(2000): ``a``/``b`` are ``(syn_desc_fn, out_desc_fn)`` of the namespace."""
    post = bst.LIF(N)
    projs = [bst.AlignPostProj(comm=brainstate.nn.Linear(10, N), syn=syn(bst), out=out(bst), post=post)
             for syn, out in (a, b)]
    return post, projs[0], projs[1]


def _expon(**kw):
    return lambda bst: bst.Expon.desc(N, **kw)


def _coba(*args, **kw):
    return lambda bst: bst.COBA.desc(*args, **kw)


def _cuba():
    return lambda bst: bst.CUBA.desc()


# Stock merges these although their parameters differ: the second projection runs with the first one's.
WRONG = {  # (first, second, the attribute that differs)
    "numpy tau arrays": ((_expon(tau=TAU), _cuba()), (_expon(tau=TAU_1), _cuba()), ("syn", "tau")),
    "Quantity arrays": ((_expon(tau=TAU * u.ms), _cuba()), (_expon(tau=TAU_1 * u.ms), _cuba()), ("syn", "tau")),
    "jax arrays": ((_expon(tau=jnp.asarray(TAU) * u.ms), _cuba()), (_expon(tau=jnp.asarray(TAU_1) * u.ms), _cuba()),
                   ("syn", "tau")),
    "COBA E keyword": ((_expon(), _coba(E=E_ARR * u.mV)), (_expon(), _coba(E=E_ARR_1 * u.mV)), ("out", "E")),
    "COBA E positional": ((_expon(), _coba(E_ARR * u.mV)), (_expon(), _coba(E_ARR_1 * u.mV)), ("out", "E")),
    "Quantity 8 digits": ((_expon(tau=5. * u.ms), _cuba()), (_expon(tau=5.0000001 * u.ms), _cuba()), ("syn", "tau")),
}


@pytest.mark.parametrize("case", WRONG, ids=list(WRONG))
def test_wrong_merges_stock_merges_the_plugin_does_not(case):
    a, b, (part, attr) = WRONG[case]
    _, sa, sb = _pair(stock, a, b)
    assert sa.syn is sb.syn and sa.out is sb.out  # stock: one synapse for both
    post, pa, pb = _pair(plugin, a, b)
    assert pa.syn is not pb.syn and pa.merge_group is not pb.merge_group
    assert len(post.before_updates) == 2
    # The second projection's own value: the plugin's second synapse/output has it, stock's has the first's.
    own = getattr(b[0 if part == "syn" else 1](stock)(), attr)
    first = getattr(getattr(sa, part), attr)
    assert not bool(u.math.all(own == first))
    assert bool(u.math.all(getattr(getattr(sb, part), attr) == first))
    assert bool(u.math.all(getattr(getattr(pb, part), attr) == own))


# Stock keeps these apart although they are equal by value: a missed saving.
MISSED = {
    "5 vs 5.": ((_expon(tau=5), _cuba()), (_expon(tau=5.), _cuba())),
    "5 ms vs 5. ms": ((_expon(tau=5 * u.ms), _cuba()), (_expon(tau=5. * u.ms), _cuba())),
    "5 ms vs 0.005 s": ((_expon(tau=5. * u.ms), _cuba()), (_expon(tau=0.005 * u.second), _cuba())),
    "E 0. mV vs 0 mV": ((_expon(), _coba(E=0. * u.mV)), (_expon(), _coba(E=0 * u.mV))),
    "size positional vs keyword": ((lambda bst: bst.Expon.desc(N), _cuba()),
                                   (lambda bst: bst.Expon.desc(in_size=N), _cuba())),
    "N vs (N,)": ((lambda bst: bst.Expon.desc(N), _cuba()), (lambda bst: bst.Expon.desc((N,)), _cuba())),
    "keyword order": ((lambda bst: bst.Expon.desc(in_size=N, tau=5. * u.ms), _cuba()),
                      (lambda bst: bst.Expon.desc(tau=5. * u.ms, in_size=N), _cuba())),
    "default left out vs passed": ((lambda bst: bst.Expon.desc(N), _cuba()),
                                   (lambda bst: bst.Expon.desc(N, tau=8. * u.ms), _cuba())),
}


@pytest.mark.parametrize("case", MISSED, ids=list(MISSED))
def test_missed_merges_stock_keeps_apart_the_plugin_merges(case):
    a, b = MISSED[case]
    post_s, sa, sb = _pair(stock, a, b)
    assert sa.syn is not sb.syn and len(post_s.before_updates) == 2
    post_p, pa, pb = _pair(plugin, a, b)
    assert pa.syn is pb.syn and pa.merge_group is pb.merge_group
    assert len(post_p.before_updates) == 1 and pa.merge_group.projections == [pa, pb]


def test_there_is_no_switch_in_stock_the_plugin_has_merge_false():
    a = b = (_expon(tau=5. * u.ms), _cuba())
    _, sa, sb = _pair(stock, a, b)
    assert sa.syn is sb.syn  # descriptors always merge on stock
    post = plugin.LIF(N)
    pa = plugin.AlignPostProj(comm=brainstate.nn.Linear(10, N), syn=a[0](plugin), out=a[1](plugin), post=post)
    pb = plugin.AlignPostProj(comm=brainstate.nn.Linear(10, N), syn=a[0](plugin), out=a[1](plugin), post=post,
                              merge=False)
    assert pa.syn is not pb.syn and pb.merge_group.key is None and pb.merge_group.unmerged_reason == "merge=False"
    assert all(isinstance(k, str) for k in post.before_updates)


def test_non_str_registry_keys_break_states_so_the_plugin_uses_str():
    post = stock.LIF(4)
    stock.AlignPostProj(comm=brainstate.nn.Linear(3, 4), syn=stock.Expon.desc(4), out=stock.CUBA.desc(), post=post)
    post.add_before_update(("a", "tuple"), stock.Expon(4))
    with brainstate.environ.context(dt=0.1 * u.ms), pytest.raises(ValueError, match="sorting pytree dictionary keys"):
        brainstate.nn.init_all_states(post)
    # The plugin: several groups, one with a suffixed name; every key a str, states() and init work.
    post, a, b = _pair(plugin, *WRONG["numpy tau arrays"][:2])
    c = plugin.AlignPostProj(comm=brainstate.nn.Linear(3, N), syn=plugin.Expon.desc(N, tau=7. * u.ms),
                             out=plugin.CUBA.desc(), post=post, label="x")
    assert all(isinstance(k, str) for k in post.before_updates) and len(post.before_updates) == 3
    with brainstate.environ.context(dt=0.1 * u.ms):
        brainstate.nn.init_all_states(post)
    paths = {p[1] for p in post.states() if p[0] == "_before_updates"}
    assert paths == {a.merge_group.storage_name, b.merge_group.storage_name, c.merge_group.storage_name}


W = jnp.linspace(0.1, 1., 200).reshape(20, 10) * u.nS
SPIKES = (np.random.default_rng(0).random((20, 20)) < 0.3).astype(np.float32)


def _comm():
    # float_as_event=False: the layer weighs each event by its value (brainstate's layers count events by default)
    return brainstate.nn.EventLinear(20, 10, weight=W, float_as_event=False)


def _stp_run(bst, stp=True):
    """Spikes -> STD -> comm -> Expon through ``bst.align_post_projection``: the conductance at the end."""
    post = bst.LIF(10)
    proj = bst.align_post_projection(lambda spikes: spikes, comm=_comm(), syn=bst.Expon.desc(10, tau=5. * u.ms),
                                     out=bst.CUBA.desc(), post=post,
                                     stp=bst.STD(20, tau=200. * u.ms, U=0.2) if stp else None)
    with brainstate.environ.context(dt=0.1 * u.ms):
        brainstate.nn.init_all_states([post, proj])
        for k, spikes in enumerate(SPIKES):
            with brainstate.environ.context(t=k * 0.1 * u.ms):
                proj(jnp.asarray(spikes))
                post(0. * u.pA)
    return np.asarray(u.get_mantissa(proj.projection.syn.g.value))


def _by_hand():
    """The same chain without event types: STD's output, as floats, into the plugin's AlignPostProj."""
    post, std = plugin.LIF(10), plugin.STD(20, tau=200. * u.ms, U=0.2)
    proj = plugin.AlignPostProj(comm=_comm(), syn=plugin.Expon.desc(10, tau=5. * u.ms), out=plugin.CUBA.desc(),
                                post=post)
    with brainstate.environ.context(dt=0.1 * u.ms):
        brainstate.nn.init_all_states([post, std, proj])
        for k, spikes in enumerate(SPIKES):
            with brainstate.environ.context(t=k * 0.1 * u.ms):
                proj(std(jnp.asarray(spikes)))
                post(0. * u.pA)
    return np.asarray(u.get_mantissa(proj.syn.g.value))


def test_align_post_projection_with_stp_fails_on_stock_and_runs_through_the_plugin():
    import brainevent

    if hasattr(brainevent, "MaskedFloat"):  # pragma: no cover - brainevent < 0.3
        pytest.skip("this brainevent has MaskedFloat: stock's stp path works here")
    with pytest.raises(AttributeError, match="has no attribute 'MaskedFloat'"):
        _stp_run(stock)
    # ... and past that line, brainpy.state's STD could not take the BinaryArray stock hands it:
    std = stock.STD(4)
    with brainstate.environ.context(dt=0.1 * u.ms):
        brainstate.nn.init_all_states(std)
        with pytest.raises(TypeError, match="unsupported operand type.*'BinaryArray'"):
            std(brainevent.BinaryArray(jnp.ones(4)))
    g = _stp_run(plugin)
    np.testing.assert_allclose(g, _by_hand(), rtol=1e-6)
    assert (g < 0.9 * _stp_run(plugin, stp=False)).all()  # depression is at work


def test_stp_output_reaches_the_synapse_as_graded_events():
    # The plugin's stp path gives what the same chain gives with plain float arrays (no event types).
    import brainevent

    from brainpy_halfproj._state_projections import _GRADED_EVENTS

    assert _GRADED_EVENTS is getattr(brainevent, "MaskedFloat", brainevent.WeightedArray)
    std = stock.STD(4, tau=200. * u.ms, U=0.2)
    with brainstate.environ.context(dt=0.1 * u.ms):
        brainstate.nn.init_all_states(std)
        x = std(jnp.asarray([1., 0., 1., 1.]))
    w = jnp.arange(12.).reshape(4, 3)
    assert np.allclose(np.asarray(_GRADED_EVENTS(x) @ w), np.asarray(jnp.asarray(x) @ w))
