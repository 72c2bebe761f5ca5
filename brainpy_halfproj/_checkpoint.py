"""Checkpoints keyed by the model's structure (attribute paths), not instance names.

``bp.save_state`` / ``bp.load_state`` key state by auto-generated instance names
such as ``LifRef0``; those depend on how many objects were built before, so a
freshly built model in a new process may not match (brainpy 2.8 then silently
restores nothing, 2.5 raises ``KeyError``). Here every variable is keyed by its
attribute path from the model, each variable once, under the first path that
reaches it. Loading fails loudly on any missing or unexpected key and on any
shape or dtype mismatch.

Key format, version 2
---------------------
A key is the ``.``-separated attribute path from the model to the variable, with
brainpy's hook containers under the names of their public accessors instead of
brainpy's private attributes: ``N.V``, ``N.before_updates.halfproj_Expon_COBA_0.syn.g``
(a merged synapse, ``post.before_updates[...]``), ``E.after_updates.<delay>.data`` (a
delay registered on ``pre``). Version 1 (brainpy-halfproj 0.1.0) used brainpy's
private names, ``N._before_updates...``; those change with brainpy, these do not.

File format
-----------
:func:`save_checkpoint` writes an uncompressed ``.npz`` (numpy's zip of ``.npy``
arrays) at exactly the path given, one array per key plus ``__format__``, the key
format version (a 0-d integer array, now 2). :func:`load_checkpoint` reads version 2
and version 1 files (those have no ``__format__`` entry; their keys are translated)
and refuses newer ones with a :class:`CheckpointError`. The file is first written to
a temporary file in the same folder and then renamed over the target, so a save that
fails or is interrupted leaves the previous checkpoint intact.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping

import brainpy as bp
import brainpy.math as bm
import jax.numpy as jnp
import numpy as np

from ._compat import assign, is_argument_state, is_state_module

__all__ = ["CheckpointError", "FORMAT_VERSION", "state_dict", "load_state_dict", "save_checkpoint",
           "load_checkpoint"]

#: Version of the key format that :func:`save_checkpoint` writes (see the module docstring).
FORMAT_VERSION = 2
_FORMAT_KEY = "__format__"
# brainpy's private attribute -> the public accessor that returns the same container.
_PUBLIC_NAMES = {"_before_updates": "before_updates", "_after_updates": "after_updates"}


class CheckpointError(ValueError):
    """A checkpoint does not fit the model it is loaded into, or is of an unknown format."""


def _public_path(path: str) -> str:
    return ".".join(_PUBLIC_NAMES.get(part, part) for part in path.split("."))


def _variables(model: bp.DynamicalSystem) -> dict[str, bm.Variable]:
    if not isinstance(model, bp.DynamicalSystem):
        raise TypeError(f"`model` must be a brainpy DynamicalSystem or a brainpy.state network, but got a "
                        f"{type(model).__name__}.")
    seen: set[int] = set()
    out: dict[str, bm.Variable] = {}
    for path, var in model.vars(method="relative").items():
        if is_argument_state(var):  # a constant of the model (brainpy 2.5), not its state
            continue
        if id(var) not in seen:
            seen.add(id(var))
            out[_public_path(path)] = var
    return out


def state_dict(model: bp.DynamicalSystem) -> dict[str, np.ndarray]:
    """Copy of every state variable of ``model``, keyed by attribute path (key format 2).

    ``model`` may be a ``brainpy.state`` network (brainpy >= 2.9); its paths are brainstate's
    (``_state_checkpoint.py``).

    Examples
    --------
    >>> import brainpy as bp
    >>> import brainpy_halfproj as bhp
    >>> net = bhp.EINet(100)
    >>> sorted(bhp.state_dict(net))[:3]
    ['N.V', 'N.before_updates.halfproj_Expon_COBA_0.syn.g', 'N.before_updates.halfproj_Expon_COBA_1.syn.g']
    """
    if is_state_module(model):
        from . import _state_checkpoint

        return _state_checkpoint.state_dict(model)
    return {path: np.array(var.value) for path, var in _variables(model).items()}


def load_state_dict(model: bp.DynamicalSystem, state: Mapping[str, np.ndarray]) -> None:
    """Write ``state`` (from :func:`state_dict`) into ``model``'s variables.

    A ``brainpy.state`` network also takes the state dict of a stock brainpy.state network
    of the same code, where the plugin's merge groups are stock's (see ``_state_checkpoint.py``).

    Raises
    ------
    CheckpointError
        If a key is missing or unexpected, or a shape or dtype differs, or (brainpy.state) a
        stock checkpoint's group is not one of this network's. Nothing is written in that case.

    Examples
    --------
    >>> import brainpy_halfproj as bhp
    >>> a, b = bhp.EINet(100), bhp.EINet(100)
    >>> bhp.load_state_dict(b, bhp.state_dict(a))
    >>> bool((b.N.V.value == a.N.V.value).all())
    True
    """
    if is_state_module(model):
        from . import _state_checkpoint

        return _state_checkpoint.load_state_dict(model, state)
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
        assign(var, jnp.asarray(state[path]))


def _file_mode(path: str) -> int:
    """Permission bits for the new file: the old file's, else what ``open()`` would give."""
    try:
        return os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def save_checkpoint(model: bp.DynamicalSystem, path: str | os.PathLike) -> None:
    """Save ``model``'s state to an ``.npz`` file at exactly ``path``, keyed by attribute path.

    The file is written next to ``path`` under a temporary name and renamed over
    ``path`` when complete (atomic on POSIX and Windows), so a failed or interrupted
    save leaves the previous checkpoint as it was. No ``.npz`` suffix is added.

    Examples
    --------
    >>> import os, tempfile
    >>> import brainpy_halfproj as bhp
    >>> net = bhp.EINet(100)
    >>> path = os.path.join(tempfile.mkdtemp(), 'state.npz')
    >>> bhp.save_checkpoint(net, path)
    >>> bhp.load_checkpoint(bhp.EINet(100), path)
    """
    path = os.fspath(path)
    state = state_dict(model)
    folder = os.path.dirname(os.path.abspath(path))
    mode = _file_mode(path)
    arrays = {_FORMAT_KEY: np.array(FORMAT_VERSION), **state}
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            # numpy's stub lets a ** mapping fill savez's allow_pickle (numpy >= 2.1); keys here are paths
            np.savez(f, **arrays)  # type: ignore[arg-type]
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def load_checkpoint(model: bp.DynamicalSystem, path: str | os.PathLike) -> None:
    """Load a checkpoint written by :func:`save_checkpoint` into a freshly built ``model``.

    Raises
    ------
    CheckpointError
        If the checkpoint's keys, shapes or dtypes do not fit ``model``, or it was
        written in a newer key format than this version reads.

    Examples
    --------
    See :func:`save_checkpoint`.
    """
    with np.load(os.fspath(path)) as data:
        state = {k: data[k] for k in data.files}
    version = state.pop(_FORMAT_KEY, None)
    if version is not None and (version.shape != () or version.dtype.kind not in "iu"
                                or not 1 <= int(version) <= FORMAT_VERSION):
        raise CheckpointError(
            f"checkpoint {os.fspath(path)!r} has key format {version.tolist()!r}, but this version of "
            f"brainpy-halfproj reads formats 1 to {FORMAT_VERSION}; load it with the brainpy-halfproj "
            f"that wrote it, or a newer one."
        )
    if version is None or int(version) == 1:  # brainpy-halfproj 0.1.0: brainpy's private names
        state = {_public_path(k): v for k, v in state.items()}
    load_state_dict(model, state)
