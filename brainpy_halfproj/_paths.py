"""Attribute paths in a ``bp.dyn`` model: the names checkpoints and reports give variables and nodes.

A path is the ``.``-separated chain of attributes from the model to the object, as brainpy's
``vars(method='relative')`` / ``nodes(method='relative')`` spell it (``N.V``,
``counters.spikes-L23E`` for an entry of a ``bm.VarDict``, ``buffers-0`` for one of a
``bm.VarList``), except that brainpy's private hook containers appear under the names of
their public accessors: ``N.before_updates...`` (not ``N._before_updates...``),
``E.after_updates...``, ``N.cur_inputs...``. Those accessors are brainpy's API; the private
names are not. An object reachable along several paths gets the first one brainpy lists,
which depends only on the model's code (the order its attributes are set), never on names
brainpy generates for instances.
"""
from __future__ import annotations

from typing import Any

import brainpy as bp
import brainpy.math as bm

from ._compat import is_argument_state

__all__ = ["public_path", "variables", "variable_paths", "node_paths", "path_of"]

# brainpy's private attribute -> the public accessor that returns the same container.
_PUBLIC_NAMES = {"_before_updates": "before_updates", "_after_updates": "after_updates",
                 "_current_inputs": "cur_inputs"}


def public_path(path: str) -> str:
    """``path`` with brainpy's private hook containers under their public accessors' names.

    Examples
    --------
    >>> from brainpy_halfproj._paths import public_path
    >>> public_path('N._before_updates.halfproj_Expon_COBA_0.syn.g')
    'N.before_updates.halfproj_Expon_COBA_0.syn.g'
    """
    return ".".join(_PUBLIC_NAMES.get(part, part) for part in path.split("."))


def _check_model(model: Any) -> None:
    if not isinstance(model, bp.DynamicalSystem):
        raise TypeError(f"`model` must be a brainpy DynamicalSystem, but got a {type(model).__name__}.")


def variables(model: bp.DynamicalSystem, *, every_state: bool = False) -> dict[str, Any]:
    """Every state variable of ``model``, each once, keyed by its attribute path.

    Parameters
    ----------
    model
        A brainpy ``DynamicalSystem``.
    every_state
        Keyword only. ``False`` (default): what brainpy's ``vars()`` lists, without the
        constants the plugin holds as state (:func:`~brainpy_halfproj._compat.argument_state`):
        the model's state, as checkpoints save it. ``True`` (brainpy >= 2.6): also every
        ``brainstate.State`` a node holds that ``vars()`` does not list (random keys, the
        fused connectivity), as the partitioner places them.

    Raises
    ------
    TypeError
        If ``model`` is not a brainpy ``DynamicalSystem``.

    Examples
    --------
    >>> import brainpy_halfproj as bhp
    >>> from brainpy_halfproj._paths import variables
    >>> net = bhp.EINet(100)
    >>> sorted(variables(net))  # the delay's target is N.spike, listed once
    ['N.V', 'N.before_updates.halfproj_Expon_COBA_0.syn.g', 'N.before_updates.halfproj_Expon_COBA_1.syn.g',
     'N.spike', 'N.t_last_spike']
    >>> variables(net)['N.V'] is net.N.V
    True
    """
    _check_model(model)
    seen: set[int] = set()
    out: dict[str, Any] = {}
    for path, var in model.vars(method="relative").items():
        if is_argument_state(var) and not every_state:  # a constant of the model (brainpy 2.5)
            continue
        if id(var) not in seen:
            seen.add(id(var))
            out[public_path(path)] = var
    if every_state:
        for path, var in _other_states(model):
            if id(var) not in seen:
                seen.add(id(var))
                out[public_path(path)] = var
    return out


def _other_states(model: Any) -> list[tuple[str, Any]]:
    """``(path, state)`` of the ``brainstate.State`` attributes of every node (brainpy >= 2.6)."""
    try:
        import brainstate
    except ImportError:  # brainpy 2.5: vars() lists every variable
        return []
    found = []
    for path, node in model.nodes(method="relative").items():
        for name, value in vars(node).items():
            full = f"{path}.{name}" if path else name
            if isinstance(value, brainstate.State):
                found.append((full, value))
            elif isinstance(value, (dict, bm.VarDict)):
                found += [(f"{full}-{k}", v) for k, v in value.items() if isinstance(v, brainstate.State)]
            elif isinstance(value, (list, tuple)):
                found += [(f"{full}-{i}", v) for i, v in enumerate(value) if isinstance(v, brainstate.State)]
    return found


def variable_paths(model: bp.DynamicalSystem, *, every_state: bool = False) -> dict[int, str]:
    """``id(variable) -> path`` for :func:`variables` (the same paths, looked up by object).

    Examples
    --------
    >>> import brainpy_halfproj as bhp
    >>> from brainpy_halfproj._paths import variable_paths
    >>> net = bhp.EINet(100)
    >>> variable_paths(net)[id(net.E.syn.g)]
    'N.before_updates.halfproj_Expon_COBA_0.syn.g'
    """
    return {id(var): path for path, var in variables(model, every_state=every_state).items()}


def node_paths(model: bp.DynamicalSystem) -> dict[int, str]:
    """``id(node) -> path`` for every node of ``model`` (the model itself: ``''``).

    Examples
    --------
    >>> import brainpy_halfproj as bhp
    >>> from brainpy_halfproj._paths import node_paths
    >>> net = bhp.EINet(100)
    >>> paths = node_paths(net)
    >>> paths[id(net.E)], paths[id(net.E.merge_group)]
    ('E', 'N.before_updates.halfproj_Expon_COBA_0')
    """
    _check_model(model)
    out: dict[int, str] = {}
    for path, node in model.nodes(method="relative").items():
        out.setdefault(id(node), public_path(path))
    return out


def path_of(model: bp.DynamicalSystem, var: Any) -> str:
    """The attribute path of the state variable ``var`` in ``model``.

    Raises
    ------
    TypeError
        If ``model`` is not a brainpy ``DynamicalSystem``.
    ValueError
        If ``var`` is not a state variable of ``model``.

    Examples
    --------
    >>> import brainpy_halfproj as bhp
    >>> from brainpy_halfproj._paths import path_of
    >>> net = bhp.EINet(100)
    >>> path_of(net, net.I.syn.g)
    'N.before_updates.halfproj_Expon_COBA_1.syn.g'
    """
    path = variable_paths(model, every_state=True).get(id(var))
    if path is None:
        raise ValueError(f"path_of: the {type(var).__name__} (shape {getattr(var, 'shape', '?')}) is not a state "
                         f"variable of {type(model).__name__} {getattr(model, 'name', '')!r}; pass the model "
                         f"that holds it.")
    return path
