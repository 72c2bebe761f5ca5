"""Checkpoints of brainpy.state networks: the plugin's functions, braintools' msgpack, stock checkpoints."""
from __future__ import annotations

import json
import re

import pytest

from brainpy_halfproj._compat import BRAINPY_VERSION

if BRAINPY_VERSION < (2, 9):
    pytest.skip("the brainpy.state front needs brainpy >= 2.9 (Python >= 3.12)", allow_module_level=True)

import brainpy.state as stock  # noqa: E402
import brainstate  # noqa: E402
import braintools  # noqa: E402
import brainunit as u  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import brainpy_halfproj as bhp  # noqa: E402
import brainpy_halfproj.state as bst  # noqa: E402

from ._state_nets import EINet, build, run, state_values  # noqa: E402

INP = 20. * u.pA


def _continues_like(saved_from, loaded, steps=100, start=100):
    """``loaded`` continues exactly as ``saved_from`` does (raster and every state)."""
    np.testing.assert_array_equal(run(loaded, steps, INP, start=start), run(saved_from, steps, INP, start=start))
    want, got = state_values(saved_from), state_values(loaded)
    assert list(got) == list(want)
    for path in want:
        np.testing.assert_array_equal(got[path], want[path], err_msg=str(path))


def _ran(ns, steps=100, **kwargs):
    net = build(EINet, ns, **kwargs)
    run(net, steps, INP)
    return net


def test_save_and_load_into_a_fresh_network(tmp_path):
    net = _ran(bst)
    bhp.save_checkpoint(net, tmp_path / "ei.npz")
    fresh = build(EINet, bst)
    bhp.load_checkpoint(fresh, tmp_path / "ei.npz")
    assert fresh.N.V.value.unit == u.mV  # the units come back
    _continues_like(net, fresh)


def test_state_dict_keys_are_brainstate_paths_and_groups_are_recorded():
    net = build(EINet, bst, n=400)
    state = bhp.state_dict(net)
    assert int(state.pop("__format__")) == bhp.FORMAT_VERSION
    records = json.loads(str(state.pop("__groups__")))  # the merge groups, by post, key and members
    assert sorted((r["post"], r["members"]) for r in records) == [("E.post", ["E"]), ("E.post", ["I"])]
    assert f"E.post.before_updates.{net.E.merge_group.storage_name}.syn.g" in state
    assert set(state) == {".".join(p).replace("_before_updates", "before_updates") for p in net.states()}


def test_another_construction_order_loads_group_by_group():
    net = _ran(bst)
    other = build(EINet, bst, order="IE")
    bhp.load_state_dict(other, bhp.state_dict(net))
    for name in "EI":  # each synapse got its own state back, whatever the order
        np.testing.assert_array_equal(np.asarray(getattr(other, name).syn.g.value.mantissa),
                                      np.asarray(getattr(net, name).syn.g.value.mantissa))


def test_braintools_msgpack_round_trips(tmp_path):
    net = _ran(bst)
    path = str(tmp_path / "ei.msgpack")
    braintools.file.msgpack_save(path, net.states())
    fresh = build(EINet, bst)
    braintools.file.msgpack_load(path, target=fresh.states())
    _continues_like(net, fresh)


@pytest.mark.parametrize("how", ["state_dict", "file", "msgpack"])
def test_a_stock_checkpoint_loads_where_the_groups_are_stocks(how, tmp_path):
    saved = _ran(stock)
    fresh = build(EINet, bst)
    if how == "state_dict":
        bhp.load_state_dict(fresh, bhp.state_dict(saved))
    elif how == "file":
        bhp.save_checkpoint(saved, tmp_path / "stock.npz")  # the plugin's save works on stock networks too
        bhp.load_checkpoint(fresh, tmp_path / "stock.npz")
    else:
        braintools.file.msgpack_save(str(tmp_path / "stock.msgpack"), saved.states())
        braintools.file.msgpack_load(str(tmp_path / "stock.msgpack"), target=fresh.states())
    _continues_like(saved, fresh)


TAU = np.full(400, 5.)
TAU_1 = TAU.copy()
TAU_1[17] = 9.


class Four(brainstate.nn.Module):
    """A, B: equal by string, not by value (stock merges them); C, D: equal by value, not by string."""

    def __init__(self, ns, order="ABCD", merge_d=True):
        super().__init__()
        self.N = ns.LIF(400, R=1. * u.Gohm, tau=10. * u.ms, V_th=10. * u.mV)
        syns = {"A": ns.Expon.desc(400, tau=TAU * u.ms), "B": ns.Expon.desc(400, tau=TAU_1 * u.ms),
                "C": ns.Expon.desc(400, tau=10. * u.ms), "D": ns.Expon.desc(in_size=400, tau=0.01 * u.second)}
        for name in order:
            extra = {"merge": merge_d} if name == "D" and ns is not stock else {}
            comm = brainstate.nn.EventFixedProb(100, 400, conn_num=0.05, conn_weight=1. * u.nS, seed="ABCD".index(name))
            setattr(self, name, ns.AlignPostProj(comm=comm, syn=syns[name], out=ns.CUBA.desc(scale=u.mV), post=self.N,
                                                 **extra))

    def update(self, t, inp):
        with brainstate.environ.context(t=t):
            spk = self.N.get_spike() != 0.
            for i, name in enumerate("ABCD"):
                getattr(self, name)(spk[100 * i:100 * (i + 1)])
            self.N(inp)
            return self.N.get_spike()


def test_a_stock_checkpoint_is_refused_naming_the_group_stock_merged_wrongly():
    state = bhp.state_dict(build(Four, stock))
    net = build(Four, bst)
    before = state_values(net)
    with pytest.raises(bhp.CheckpointError) as refusal:
        bhp.load_state_dict(net, state)
    message = str(refusal.value)
    assert message.startswith("the checkpoint has stock brainpy.state's layout (it is not marked as this plugin's), "
                              "which cannot be loaded into 3 of this network's merge group(s); nothing was loaded.")
    for wrong, other in (("A", "B"), ("B", "A")):
        assert re.search(rf"Group \[.*? #[0-9a-f]{{12}}\] on post 'A.post' \(members \['{wrong}'\]\): stock merged "
                         rf"these members with \['{other}'\] into one synapse under", message)
    assert "(members ['C', 'D']): stock kept 2 synapses for these members" in message
    after = state_values(net)
    assert all(np.array_equal(after[k], before[k]) for k in before)  # nothing written


def test_a_missed_merge_is_refused_with_the_fix_and_merge_false_loads_stocks_checkpoint():
    global TAU_1
    saved_tau, TAU_1 = TAU_1, TAU * 1.4  # A and B now differ by string too: only C/D is off
    try:
        saved = build(Four, stock)
        run(saved, 100, 30. * u.pA)
        state = bhp.state_dict(saved)
        with pytest.raises(bhp.CheckpointError, match=r"\(members \['C', 'D'\]\): stock kept 2 synapses for these "
                                                      r"members \(a merge it missed.*build these projections with "
                                                      r"merge=False"):
            bhp.load_state_dict(build(Four, bst), state)
        fresh = build(Four, bst, merge_d=False)
        bhp.load_state_dict(fresh, state)
        np.testing.assert_array_equal(run(fresh, 100, 30. * u.pA, start=100), run(saved, 100, 30. * u.pA, start=100))
    finally:
        TAU_1 = saved_tau


def test_plugin_checkpoints_of_networks_stock_gets_wrong_load_in_any_construction_order():
    net = build(Four, bst)
    run(net, 100, 30. * u.pA)
    other = build(Four, bst, order="DCBA")
    assert sorted(state_values(other)) == sorted(state_values(net))
    bhp.load_state_dict(other, bhp.state_dict(net))
    for name in "ABCD":
        np.testing.assert_array_equal(np.asarray(getattr(other, name).syn.g.value.mantissa),
                                      np.asarray(getattr(net, name).syn.g.value.mantissa))


def test_mismatches_are_refused():
    net = build(EINet, bst, n=400)
    state = bhp.state_dict(net)
    bad = dict(state)
    key = next(k for k in bad if k.endswith("N.V") or k.endswith("post.V"))
    bad[key] = bad[key][:10]
    with pytest.raises(bhp.CheckpointError, match=rf"entry '{key}' has shape \(10,\) .* same sizes"):
        bhp.load_state_dict(net, bad)
    with pytest.raises(bhp.CheckpointError, match=r"missing keys \['E.comm.weight'\]"):
        bhp.load_state_dict(net, {k: v for k, v in state.items() if k != "E.comm.weight"})
    with pytest.raises(bhp.CheckpointError, match=r"has format 99, but this version of brainpy-halfproj reads"):
        bhp.load_state_dict(net, {**state, "__format__": np.array(99)})


class LinearNet(brainstate.nn.Module):
    """A projection whose layer keeps its parameters in one dict-valued state: brainstate's ``Linear``
    (``ParamState({'weight': w, 'bias': b})``)."""

    def __init__(self, ns):
        super().__init__()
        self.N = ns.LIF(10, tau=20. * u.ms)
        self.E = ns.AlignPostProj(comm=brainstate.nn.Linear(10, 10), syn=ns.Expon.desc(10, tau=5. * u.ms),
                                  out=ns.CUBA.desc(), post=self.N)


def _distinct_parameters(net):
    net.E.comm.weight.value = {"weight": jnp.arange(100.).reshape(10, 10) / 7., "bias": jnp.arange(10.) - 4.5}
    return {k: np.asarray(v) for k, v in net.E.comm.weight.value.items()}


def test_a_dict_valued_state_is_saved_as_plain_arrays_and_loads_back(tmp_path):
    """Saved before as one pickled object, which ``load_checkpoint`` then refused as not a checkpoint."""
    net = build(LinearNet, bst)
    want = _distinct_parameters(net)
    bhp.save_checkpoint(net, tmp_path / "linear.npz")
    with np.load(tmp_path / "linear.npz", allow_pickle=False) as saved:  # plain arrays only
        np.testing.assert_array_equal(saved["E.comm.weight.weight"], want["weight"])
        np.testing.assert_array_equal(saved["E.comm.weight.bias"], want["bias"])
        assert "E.comm.weight" not in saved
    fresh = build(LinearNet, bst)
    bhp.load_checkpoint(fresh, tmp_path / "linear.npz")
    got = fresh.E.comm.weight.value
    assert sorted(got) == ["bias", "weight"]
    for name in want:
        np.testing.assert_array_equal(np.asarray(got[name]), want[name])


def _values_of(net):
    return {".".join(map(str, p)).replace("_before_updates", "before_updates"): s.value
            for p, s in net.states().items()}


def test_a_mapping_of_stock_state_values_loads_dicts_and_quantities():
    """Stock layout (no ``'__format__'``): ``{path: state.value}``, the layer's dict as one value, the
    potentials as a Quantity in volts (the network's are in mV)."""
    saved = build(LinearNet, stock)
    want = _distinct_parameters(saved)
    mapping = _values_of(saved)
    assert isinstance(mapping["E.comm.weight"], dict)
    mapping["E.post.V"] = (np.arange(10., dtype=np.float32) - 60.) / 1000. * u.volt
    fresh = build(LinearNet, bst)
    bhp.load_state_dict(fresh, mapping)
    for name in want:
        np.testing.assert_array_equal(np.asarray(fresh.E.comm.weight.value[name]), want[name])
    np.testing.assert_allclose(fresh.N.V.value.to_decimal(u.mV), np.arange(10.) - 60., rtol=1e-6)


def test_a_stock_value_in_another_dimension_is_refused_naming_both_units():
    mapping = _values_of(build(LinearNet, stock))
    mapping["E.post.V"] = np.zeros(10) * u.nS
    with pytest.raises(bhp.CheckpointError,
                       match=r"entry .E.post.V. is in nS, which does not convert to the network's mV"):
        bhp.load_state_dict(build(LinearNet, bst), mapping)
