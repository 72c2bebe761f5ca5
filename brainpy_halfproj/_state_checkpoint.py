"""Checkpoints of ``brainpy.state`` networks: the ``brainpy.state`` front of ``_checkpoint.py``.

``_checkpoint.py`` holds the one checkpoint model (variables by path, merge groups recorded
by post, key and members, the file format and its checks); :func:`model_state` here describes
a brainpy.state network in its terms, as ``dyn_model_state`` does for ``bp.dyn``.

Paths
-----
A state is keyed by its path in ``net.states()`` (brainstate's own paths, the ones
``braintools.file.msgpack_save(path, net.states())`` uses too), joined with ``.`` and with
brainstate's private ``_before_updates`` under its public name ``before_updates``, as on
``bp.dyn``: ``E.post.before_updates.<storage key>.syn.g``. Values are saved without units
(the mantissas) and get the unit of the network's state back when loaded. The storage key of
a merge group is its value (``_state_registry.py``: upstream's string, or that string and a
hash of the group's key), never a construction counter, except for groups whose key holds
a state or a function (numbered in construction order); the file's group records (key and
members) match groups by what they are in any case.

A state whose value is a pytree of several arrays (brainstate's ``Linear`` keeps
``{'weight': w, 'bias': b}`` in one ``ParamState``) is saved as one entry per array, its keys
appended to the path (``E.comm.weight.weight``, ``E.comm.weight.bias``), so that the file holds
plain arrays only.

Stock checkpoints
-----------------
A mapping without ``'__format__'`` is read as stock brainpy.state's layout (``state_dict``
of a stock network, or a dict of ``net.states()`` values). Loaded into the plugin's network,
its paths are mapped group by group: each of the network's merge groups whose members stock
groups the same way (they all have one upstream string, and no member of another group has
it) takes the state stored under that string, renamed to the group's own key where that
differs (exact: the same synapse). Any other group is refused with a
:class:`~brainpy_halfproj.CheckpointError` naming it: one whose members stock kept in several
synapses (a merge stock missed: build those projections with ``merge=False`` to load the file
as saved), or one whose string stock shared with another group (a merge stock made wrongly:
its state mixes synapses with different parameters). Nothing is written unless everything fits.
"""
from __future__ import annotations

from typing import Any

import brainstate
import brainunit as u
import jax
import jax.numpy as jnp
import numpy as np

from ._checkpoint import CheckpointError, GroupRecord, ModelState, _key_text
from ._state_fused import StateFusedCall
from ._state_registry import StateMergeGroup
from ._state_report import _names

__all__ = ["model_state"]

_REGISTRY = "_before_updates"
_PUBLIC = {_REGISTRY: "before_updates", "_after_updates": "after_updates"}


def path_text(path: tuple) -> str:
    """``('E', 'post', '_before_updates', key, 'syn', 'g')`` -> ``'E.post.before_updates.<key>.syn.g'``."""
    return ".".join(_PUBLIC.get(p, str(p)) if isinstance(p, str) else str(p) for p in path)


def _variables(net: Any) -> dict[tuple, brainstate.State]:
    return dict(net.states().items())


def _groups(net: Any) -> list[StateMergeGroup]:
    return [node for node in net.nodes().values() if isinstance(node, StateMergeGroup)]


def _is_quantity(x: Any) -> bool:
    return isinstance(x, u.Quantity)


class _Leaf:
    """One array of a state whose value is a pytree of several: its ``value`` gets and sets that array only.

    Examples
    --------
    >>> import brainstate, jax.numpy as jnp
    >>> w = brainstate.ParamState({'weight': jnp.ones(2), 'bias': jnp.zeros(2)})
    >>> leaf = _Leaf(w, 0)  # the leaves in jax's order: 'bias', then 'weight'
    >>> leaf.value = jnp.array([3., 4.])
    >>> w.value['bias'].tolist(), w.value['weight'].tolist()
    ([3.0, 4.0], [1.0, 1.0])
    """

    def __init__(self, state: brainstate.State, index: int):
        self.state, self.index = state, index

    @property
    def value(self) -> Any:
        return jax.tree.leaves(self.state.value, is_leaf=_is_quantity)[self.index]

    @value.setter
    def value(self, new: Any) -> None:
        leaves, tree = jax.tree.flatten(self.state.value, is_leaf=_is_quantity)
        leaves[self.index] = new
        self.state.value = jax.tree.unflatten(tree, leaves)


def _key_part(key: Any) -> str:
    """A jax key-path entry as a path part: a dict key, a sequence index or an attribute name."""
    for attr in ("key", "idx", "name"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def _leaves(path: tuple, state: Any) -> list[tuple[tuple, Any]]:
    """``[(path, variable)]``: ``state`` itself, or a :class:`_Leaf` per array of a pytree-valued state."""
    found = jax.tree_util.tree_flatten_with_path(state.value, is_leaf=_is_quantity)[0]
    if len(found) == 1 and not found[0][0]:
        return [(path, state)]
    return [(path + tuple(_key_part(k) for k in keys), _Leaf(state, i)) for i, (keys, _) in enumerate(found)]


def _flat(state: dict) -> dict:
    """A mapping of saved values with each pytree value (a dict of arrays) spread over one path per array."""
    out = {}
    for text, value in state.items():
        found = jax.tree_util.tree_flatten_with_path(value, is_leaf=_is_quantity)[0]
        if isinstance(value, (dict, list, tuple)) and found:
            out.update({".".join([text, *(_key_part(k) for k in keys)]): leaf for keys, leaf in found})
        else:
            out[text] = value
    return out


def _in_units_of(variables: dict, state: dict) -> dict:
    """``state`` with each Quantity (a value from ``net.states()``) as a number in the unit of the network's state."""
    out = dict(state)
    for text, (_, var) in variables.items():
        value = out.get(text)
        if isinstance(value, u.Quantity):
            unit = u.get_unit(var.value)
            try:
                out[text] = value.to_decimal(unit)
            except u.UnitMismatchError:
                raise CheckpointError(f"entry {text!r} is in {u.get_unit(value)}, which does not convert to the "
                                      f"network's {unit}: load a checkpoint of a network with the same units") from None
    return out


def _read(state: brainstate.State) -> np.ndarray:
    return np.array(u.get_mantissa(state.value))


def _assign(state: brainstate.State, value: Any) -> None:
    unit = u.get_unit(state.value)
    value = jnp.asarray(value)
    plain = unit.is_unitless and not isinstance(state.value, u.Quantity)
    state.value = value if plain else u.Quantity(value, unit=unit)


def model_state(net: Any) -> ModelState:
    """Describe a brainpy.state network for ``_checkpoint.py``: its states by path and its merge groups.

    Examples
    --------
    >>> import brainstate, brainunit as u
    >>> import brainpy_halfproj.state as bst
    >>> from brainpy_halfproj._state_checkpoint import model_state
    >>> class Net(brainstate.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.N = bst.LIF(10, tau=20. * u.ms)
    ...         self.E = bst.AlignPostProj(comm=brainstate.nn.Linear(10, 10), syn=bst.Expon.desc(10, tau=5. * u.ms),
    ...                                    out=bst.CUBA.desc(), post=self.N)
    >>> net = Net(); brainstate.nn.init_all_states(net)  # doctest: +ELLIPSIS
    Net(...)
    >>> [(g.post, g.members, sorted(dict(g.entries))) for g in model_state(net).groups]
    [('E.post', ('E',), ['syn.g'])]
    """
    variables = {path_text(leaf_path): (leaf_path, var) for path, s in _variables(net).items()
                 for leaf_path, var in _leaves(path, s)}
    names = _names(net)
    records = []
    for group in _groups(net):
        entries, post = [], None
        for text, (path, _) in variables.items():
            if _REGISTRY in path:
                i = path.index(_REGISTRY)
                here = path[i + 1] == group.storage_name
                if here and _resolve(net, path[:i]).before_updates.get(path[i + 1]) is group:
                    post = path_text(path[:i])
                    entries.append((".".join(str(p) for p in path[i + 2:]), text))
        members = tuple(sorted(names.get(id(p), p.name) for p in group.projections))
        records.append(GroupRecord(post if post is not None else "?", _key_text(group), members, tuple(sorted(entries)),
                                   str(group.storage_name)))
    # A fused call keeps one event buffer, a block of rows per member in joining order: saved as one
    # array per member (a view of its block, at the path of the buffer-per-member layout before it) and
    # recorded by that member, as on bp.dyn, so a model whose members joined in another order loads it.
    paths = {id(s): (path, text) for text, (path, s) in variables.items()}
    for call in (node for node in net.nodes().values() if isinstance(node, StateFusedCall)):
        if id(call.buffer) not in paths:
            continue
        path, text = paths[id(call.buffer)]
        del variables[text]
        post = path_text(path[:path.index(_REGISTRY)])
        for i, (member, view) in enumerate(zip(call._members, call.buffers, strict=True)):
            proj = member.proj()
            if proj is None:
                continue
            view_path = path[:-1] + ("buffers", i)
            variables[path_text(view_path)] = (view_path, view)
            records.append(GroupRecord(post, "spike buffer of a fused call", (names.get(id(proj), proj.name),),
                                       (("buffer", path_text(view_path)),), f"halfproj_fused.buffers-{i}"))
    return ModelState({text: s for text, (_, s) in variables.items()}, records, f"{type(net).__name__}",
                      assign=_assign, read=_read, unversioned=lambda state: _from_stock(net, variables, state))


def _resolve(net: Any, path: tuple) -> Any:
    node = net
    for part in path:
        node = node[part] if isinstance(node, (dict, list, tuple)) else getattr(node, part)
    return node


def _from_stock(net: Any, variables: dict, state: dict) -> dict:
    """``state`` in stock brainpy.state's layout, mapped onto the plugin's groups of ``net`` where exact."""
    state = _in_units_of(variables, _flat(state))
    groups = {id(g): g for g in _groups(net)}
    if not groups:
        return state
    names = _names(net)
    mapped = dict(state)
    refused: dict[int, str] = {}
    for text, (path, _) in variables.items():
        if _REGISTRY not in path:
            continue
        i = path.index(_REGISTRY)
        post = _resolve(net, path[:i])
        group = post.before_updates.get(path[i + 1])
        if id(group) not in groups:
            continue  # a stock group: stock's path
        strings = {s for _, s in group.upstream_reprs}
        sharing = [g for g in post.before_updates.values() if isinstance(g, StateMergeGroup) and g is not group
                   and strings & {s for _, s in g.upstream_reprs}]
        if len(strings) != 1 or sharing:
            refused.setdefault(id(group), _refusal(group, strings, sharing, path_text(path[:i]), names))
            continue
        (stock_name,) = strings
        stock_text = path_text(path[:i + 1] + (stock_name,) + path[i + 2:])
        if stock_text != text and stock_text in state:
            mapped[text] = mapped.pop(stock_text)
    if refused:
        raise CheckpointError(
            f"the checkpoint has stock brainpy.state's layout (it is not marked as this plugin's), which cannot be "
            f"loaded into {len(refused)} of this network's merge group(s); nothing was loaded. "
            + " ".join(refused.values()))
    return mapped


def _refusal(group: StateMergeGroup, strings: set, sharing: list, post: str, names: dict) -> str:
    def members(g: StateMergeGroup) -> list[str]:
        return [names.get(id(p), p.name) for p in g.projections]

    where = f"Group [{group.storage_name}] on post {post!r} (members {members(group)})"
    if len(strings) > 1:
        return (f"{where}: stock kept {len(strings)} synapses for these members (a merge it missed: their "
                f"strings differ, {sorted(strings)}), this network one; build these projections with merge=False "
                f"to load the checkpoint as saved, or start these synapses afresh.")
    others = [m for g in sharing for m in members(g)]
    return (f"{where}: stock merged these members with {others} into one synapse under {sorted(strings)[0]!r} "
            f"although their parameters differ by value, so the saved state is not this group's; load the "
            f"checkpoint into the stock network, or start these synapses afresh.")
