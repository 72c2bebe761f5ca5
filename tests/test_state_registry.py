"""The brainpy.state registry: str storage keys, what brainstate's graph and transforms see."""
from __future__ import annotations

import copy

import pytest

from brainpy_halfproj._compat import BRAINPY_VERSION

if BRAINPY_VERSION < (2, 9):
    pytest.skip("the brainpy.state front needs brainpy >= 2.9 (Python >= 3.12)", allow_module_level=True)

import brainpy.state as stock  # noqa: E402
import brainstate  # noqa: E402
import brainunit as u  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import brainpy_halfproj.state as bst  # noqa: E402
from brainpy_halfproj._merge_key import stable_digest  # noqa: E402

from ._state_nets import EINet, build, run, state_values  # noqa: E402

N = 2000
TAU = np.full(N, 5.)
TAU_1 = TAU.copy()
TAU_1[3] = 6.


def _proj(ns, post, tau, label=None, **kw):
    return ns.AlignPostProj(comm=brainstate.nn.Linear(10, N), syn=ns.Expon.desc(N, tau=tau), out=ns.CUBA.desc(),
                            post=post, label=label, **kw)


def test_a_group_stock_would_form_too_is_stored_under_stocks_string():
    post_s, post_p = stock.LIF(N), bst.LIF(N)
    _proj(stock, post_s, TAU * u.ms)
    p = _proj(bst, post_p, TAU * u.ms)
    assert list(post_p.before_updates) == list(post_s.before_updates) == [p.merge_group.storage_name]
    assert p.merge_group.storage_name == p.merge_group.upstream_repr


def test_groups_stock_would_merge_wrongly_get_value_suffixes_independent_of_other_groups():
    post = bst.LIF(N)
    a = _proj(bst, post, TAU * u.ms)
    b = _proj(bst, post, TAU_1 * u.ms)
    upstream = a.merge_group.upstream_repr
    assert b.merge_group.upstream_repr == upstream  # the same string on stock
    assert a.merge_group.storage_name == f"{upstream} #{stable_digest(a.merge_group.key)}"
    assert b.merge_group.storage_name == f"{upstream} #{stable_digest(b.merge_group.key)}"
    # Built after another, unrelated group (a label), the name is the same: no construction counter.
    post2 = bst.LIF(N)
    _proj(bst, post2, TAU * u.ms, label="other")
    _proj(bst, post2, TAU * u.ms)
    b2 = _proj(bst, post2, TAU_1 * u.ms)
    assert b2.merge_group.storage_name == b.merge_group.storage_name


def test_identity_parts_and_private_groups_are_numbered():
    post = bst.LIF(4)
    w1, w2 = brainstate.ParamState(jnp.full(4, 5.) * u.ms), brainstate.ParamState(jnp.full(4, 5.) * u.ms)
    a = bst.AlignPostProj(comm=brainstate.nn.Linear(3, 4), syn=bst.Expon.desc(4, tau=w1), out=bst.CUBA.desc(),
                          post=post)
    b = bst.AlignPostProj(comm=brainstate.nn.Linear(3, 4), syn=bst.Expon.desc(4, tau=w2), out=bst.CUBA.desc(),
                          post=post)
    c = bst.AlignPostProj(comm=brainstate.nn.Linear(3, 4), syn=bst.Expon.desc(4, tau=w2), out=bst.CUBA.desc(),
                          post=post, merge=False)
    d = bst.AlignPostProj(comm=brainstate.nn.Linear(3, 4), syn=bst.Expon.desc(4, tau=w1), out=bst.CUBA.desc(),
                          post=post)
    base = a.merge_group.upstream_repr
    names = [p.merge_group.storage_name for p in (a, b, c)]
    assert names == [f"{base} #1", f"{base} #2", f"{base} #3"]  # construction order: no value text
    assert d.merge_group is a.merge_group  # the same state: identity
    assert all(isinstance(k, str) for k in post.before_updates)


def test_members_are_listed_weakly_and_merge_group_is_invisible_to_the_graph():
    post = bst.LIF(N)
    a, b = _proj(bst, post, 5. * u.ms), _proj(bst, post, 0.005 * u.second)
    assert a.merge_group is b.merge_group and a.merge_group.projections == [a, b]
    assert "merge_group" in bst.AlignPostProj.graph_invisible_attrs
    with brainstate.environ.context(dt=0.1 * u.ms):
        brainstate.nn.init_all_states([post, a, b])
    assert not any("merge_group" in path or "key" in path for path in a.states())
    del b
    import gc

    gc.collect()
    assert a.merge_group.projections == [a]


def test_graph_split_merge_and_deepcopy_keep_states_and_behaviour():
    net = build(EINet, bst)
    graphdef, states = brainstate.graph.treefy_split(net)
    rebuilt = brainstate.graph.treefy_merge(graphdef, states)
    assert list(state_values(rebuilt)) == list(state_values(net))
    twin = copy.deepcopy(net)
    np.testing.assert_array_equal(run(twin, 100, 20. * u.pA), run(net, 100, 20. * u.pA))
    (group,) = [g for g in twin.N.before_updates.values() if isinstance(g, bst.StateMergeGroup)][:1]
    assert group.key is None and group.projections == []  # copies carry states and update, not the metadata


def test_gradients_through_the_shared_synapse_are_stocks():
    # brainstate.transform.grad over a merged synapse: the same gradients with respect to each member's weights.
    def grads(ns):
        net = build(EINet, ns)
        run(net, 200, 20. * u.pA)  # into the active regime: spikes in the window below

        def loss():
            with brainstate.environ.context(dt=0.1 * u.ms):
                for k in range(10):
                    net.update((200 + k) * 0.1 * u.ms, 20. * u.pA)
            return u.get_mantissa(u.math.sum(net.N.V.value))

        weights = {name: getattr(net, name).comm.weight for name in "EI"}
        g = brainstate.transform.grad(loss, grad_states=weights)()
        return {k: np.asarray(u.get_mantissa(v)) for k, v in g.items()}

    got, want = grads(bst), grads(stock)
    assert list(got) == list(want)
    for k in want:
        assert np.abs(want[k]).sum() > 0
        np.testing.assert_array_equal(got[k], want[k])


def test_groups_stock_would_merge_wrongly_have_the_same_names_in_any_construction_order():
    names = []
    for order in ((0, 1), (1, 0)):
        post = bst.LIF(N)
        projs = {i: _proj(bst, post, (TAU, TAU_1)[i] * u.ms) for i in order}
        names.append([projs[i].merge_group.storage_name for i in (0, 1)])
        assert all(" #" in name for name in names[-1])  # neither holds upstream's plain string
    assert names[0] == names[1]


def test_renaming_keeps_the_update_order():
    post = bst.LIF(N)
    a = _proj(bst, post, TAU * u.ms)
    c = _proj(bst, post, 7. * u.ms)
    b = _proj(bst, post, TAU_1 * u.ms)
    assert list(post.before_updates.values()) == [a.merge_group, c.merge_group, b.merge_group]
    assert [g.storage_name for g in post.before_updates.values()] == list(post.before_updates)
    assert a.merge_group.upstream_reprs == [(a, a.merge_group.upstream_repr)]


def test_a_group_stock_splits_is_named_the_same_in_any_construction_order():
    # C and D are equal by value, not by string: one group, named by the smaller string whatever came first.
    names = []
    for taus in ((10. * u.ms, 0.01 * u.second), (0.01 * u.second, 10. * u.ms)):
        post = bst.LIF(N)
        projs = [_proj(bst, post, tau) for tau in taus]
        group = projs[0].merge_group
        assert projs[1].merge_group is group
        names.append(group.storage_name)
        assert group.storage_name == min(text for _, text in group.upstream_reprs)
    assert names[0] == names[1]
