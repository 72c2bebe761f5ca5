"""Checkpoints keyed by the model's structure (attribute paths), not instance names.

``bp.save_state`` / ``bp.load_state`` key state by auto-generated instance names
such as ``LifRef0``; those depend on how many objects were built before, so a
freshly built model in a new process may not match (brainpy 2.8 then silently
restores nothing, 2.5 raises ``KeyError``). Here every variable is keyed by its
attribute path from the model (``N.V``, ``N._before_updates.halfproj_Expon_COBA_0.syn.g``),
each variable once, under the first path that reaches it. Loading fails loudly on
any missing or unexpected key and on any shape or dtype mismatch.
"""
from __future__ import annotations

import os
from typing import Mapping, Union

import brainpy as bp
import brainpy.math as bm
import jax.numpy as jnp
import numpy as np

__all__ = ["CheckpointError", "state_dict", "load_state_dict", "save_checkpoint", "load_checkpoint"]


class CheckpointError(ValueError):
    """A checkpoint does not fit the model it is loaded into."""


def _variables(model: bp.DynamicalSystem) -> dict[str, bm.Variable]:
    if not isinstance(model, bp.DynamicalSystem):
        raise TypeError(f"`model` must be a brainpy DynamicalSystem, but got a {type(model).__name__}.")
    seen: set[int] = set()
    out: dict[str, bm.Variable] = {}
    for path, var in model.vars(method="relative").items():
        if id(var) not in seen:
            seen.add(id(var))
            out[path] = var
    return out


def state_dict(model: bp.DynamicalSystem) -> dict[str, np.ndarray]:
    """Copy of every state variable of ``model``, keyed by attribute path.

    Examples
    --------
    >>> import brainpy as bp
    >>> import brainpy_halfproj as bhp
    >>> net = bhp.EINet(100)
    >>> sorted(bhp.state_dict(net))[:3]
    ['N.V', 'N._before_updates.halfproj_Expon_COBA_0.syn.g', 'N._before_updates.halfproj_Expon_COBA_1.syn.g']
    """
    return {path: np.array(var.value) for path, var in _variables(model).items()}


def load_state_dict(model: bp.DynamicalSystem, state: Mapping[str, np.ndarray]) -> None:
    """Write ``state`` (from :func:`state_dict`) into ``model``'s variables.

    Raises
    ------
    CheckpointError
        If a key is missing or unexpected, or a shape or dtype differs. Nothing is
        written in that case.

    Examples
    --------
    >>> import brainpy_halfproj as bhp
    >>> a, b = bhp.EINet(100), bhp.EINet(100)
    >>> bhp.load_state_dict(b, bhp.state_dict(a))
    >>> bool((b.N.V.value == a.N.V.value).all())
    True
    """
    variables = _variables(model)
    missing = sorted(set(variables) - set(state))
    unexpected = sorted(set(state) - set(variables))
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint does not fit {type(model).__name__}: missing keys {missing}, unexpected keys "
            f"{unexpected}. Build the model with the same code (same structure and sizes) as the one saved."
        )
    for path, var in variables.items():
        value = np.asarray(state[path])
        old = np.asarray(var.value)
        if value.shape != old.shape or value.dtype != old.dtype:
            raise CheckpointError(
                f"checkpoint entry {path!r} has shape {value.shape} and dtype {value.dtype}, but the model's "
                f"variable has shape {old.shape} and dtype {old.dtype}. Build the model with the same sizes."
            )
    for path, var in variables.items():
        var.value = jnp.asarray(state[path])


def save_checkpoint(model: bp.DynamicalSystem, path: Union[str, os.PathLike]) -> None:
    """Save ``model``'s state to an ``.npz`` file, keyed by attribute path.

    Examples
    --------
    >>> import os, tempfile
    >>> import brainpy_halfproj as bhp
    >>> net = bhp.EINet(100)
    >>> path = os.path.join(tempfile.mkdtemp(), 'state.npz')
    >>> bhp.save_checkpoint(net, path)
    >>> bhp.load_checkpoint(bhp.EINet(100), path)
    """
    np.savez(path, **state_dict(model))


def load_checkpoint(model: bp.DynamicalSystem, path: Union[str, os.PathLike]) -> None:
    """Load a checkpoint written by :func:`save_checkpoint` into a freshly built ``model``.

    Raises
    ------
    CheckpointError
        If the checkpoint's keys, shapes or dtypes do not fit ``model``.

    Examples
    --------
    See :func:`save_checkpoint`.
    """
    with np.load(path) as data:
        load_state_dict(model, {k: data[k] for k in data.files})
