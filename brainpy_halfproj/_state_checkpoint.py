"""Checkpoints of ``brainpy.state`` networks: the front-specific part of ``_checkpoint.py``.

``state_dict``, ``load_state_dict``, ``save_checkpoint`` and ``load_checkpoint`` (in
``_checkpoint.py``) hand a brainpy.state network to :func:`state_dict` and
:func:`load_state_dict` here; the file format, its version and the atomic save stay theirs.

Paths
-----
A state is keyed by its path in ``net.states()`` (brainstate's own paths, the ones
``braintools.file.msgpack_save(path, net.states())`` uses too), joined with ``.`` and with
brainstate's private ``_before_updates`` under its public name ``before_updates``, as on
``bp.dyn``: ``E.post.before_updates.<storage key>.syn.g``. Values are saved without units
(the mantissas) and get the unit of the network's state back when loaded. The storage key of
a merge group is its value (``_state_registry.py``: upstream's string, or that string and a
hash of the group's key), never a construction counter, except for groups whose key holds
a state or a function (numbered in construction order): a network built with its
projections in another order has the same paths, and matching by path matches groups by
what they are.

Stock checkpoints
-----------------
A state dict of a network built with this plugin is marked (``__layout__``); one without
the mark has stock brainpy.state's layout (``state_dict`` of a stock network, or a dict of
``net.states()`` values). Loaded into the plugin's network, its paths are mapped group by
group: each of the network's merge groups whose members stock groups the same way (they all
have one upstream string, and no member of another group has it) takes the state stored
under that string, renamed to the group's own key where that differs (exact: the same
synapse). Any other group is refused with a :class:`~brainpy_halfproj.CheckpointError`
naming it: one whose members stock kept in several synapses (a merge stock missed: build
those projections with ``merge=False`` to load the file as saved), or one whose string
stock shared with another group (a merge stock made wrongly: its state mixes synapses with
different parameters). Nothing is written unless everything fits.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import brainstate
import brainunit as u
import jax.numpy as jnp
import numpy as np

from ._checkpoint import CheckpointError
from ._state_registry import StateMergeGroup
from ._state_report import _names

__all__ = ["LAYOUT_KEY", "PLUGIN_LAYOUT", "state_dict", "load_state_dict"]

#: The entry of a state dict that marks a network built with this plugin (its value: ``PLUGIN_LAYOUT``).
LAYOUT_KEY = "__layout__"
PLUGIN_LAYOUT = "brainpy_halfproj.state"
_REGISTRY = "_before_updates"
_PUBLIC = {_REGISTRY: "before_updates", "_after_updates": "after_updates"}


def path_text(path: tuple) -> str:
    """``('E', 'post', '_before_updates', key, 'syn', 'g')`` -> ``'E.post.before_updates.<key>.syn.g'``."""
    return ".".join(_PUBLIC.get(p, str(p)) if isinstance(p, str) else str(p) for p in path)


def _variables(net: Any) -> dict[tuple, brainstate.State]:
    return dict(net.states().items())


def _groups(net: Any) -> list[StateMergeGroup]:
    return [node for node in net.nodes().values() if isinstance(node, StateMergeGroup)]


def state_dict(net: Any) -> dict[str, np.ndarray]:
    """Copy of every state of a brainpy.state network, keyed by path; marked if the plugin built it."""
    out = {path_text(path): np.array(u.get_mantissa(s.value)) for path, s in _variables(net).items()}
    if _groups(net):
        out[LAYOUT_KEY] = np.array(PLUGIN_LAYOUT)
    return out


def load_state_dict(net: Any, state: Mapping[str, Any]) -> None:
    """Write ``state`` into ``net``'s states; translate a stock layout where exact (see the module docstring)."""
    state = dict(state)
    layout = state.pop(LAYOUT_KEY, None)
    variables = {path_text(path): (path, s) for path, s in _variables(net).items()}
    if layout is not None and str(np.asarray(layout)) != PLUGIN_LAYOUT:
        raise CheckpointError(f"checkpoint has layout {np.asarray(layout).tolist()!r}, but this version of "
                              f"brainpy-halfproj reads {PLUGIN_LAYOUT!r} (and stock brainpy.state's, unmarked).")
    if layout is None:
        state = _from_stock(net, variables, state)
    missing = sorted(set(variables) - set(state))
    unexpected = sorted(set(state) - set(variables))
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint does not fit {type(net).__name__}: missing keys {missing}, unexpected keys {unexpected}. "
            f"Build the network with the same code (same structure and sizes) as the one saved.")
    values = {}
    for text, (_, s) in variables.items():
        value, old = np.asarray(state[text]), np.asarray(u.get_mantissa(s.value))
        if value.shape != old.shape or value.dtype != old.dtype:
            raise CheckpointError(
                f"checkpoint entry {text!r} has shape {value.shape} and dtype {value.dtype}, but the network's "
                f"state has shape {old.shape} and dtype {old.dtype}. Build the network with the same sizes (and "
                f"the same jax_enable_x64 setting) as the one saved.")
        values[text] = value
    for text, (_, s) in variables.items():
        unit = u.get_unit(s.value)
        value = jnp.asarray(values[text])
        s.value = value if unit.is_unitless and not isinstance(s.value, u.Quantity) else u.Quantity(value, unit=unit)


def _resolve(net: Any, path: tuple) -> Any:
    node = net
    for part in path:
        node = node[part] if isinstance(node, (dict, list, tuple)) else getattr(node, part)
    return node


def _from_stock(net: Any, variables: dict, state: dict) -> dict:
    """``state`` in stock brainpy.state's layout, mapped onto the plugin's groups of ``net`` where exact."""
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
