"""Checkpoints keyed by the model's structure: attribute paths, and merge groups by what they are.

Why
---
``bp.save_state`` / ``bp.load_state`` key state by auto-generated instance names such as
``LifRef0``; those depend on how many objects were built before, so a freshly built model
in a new process may not match (brainpy 2.8 then silently restores nothing, 2.5 raises
``KeyError``). Here every variable is keyed by its attribute path from the model
(``_paths.py``): ``N.V``, ``E.after_updates.<delay>.data``.

A merged synapse is reached through its post group's registry,
``N.before_updates.halfproj_Expon_COBA_0.syn.g``, and that storage name counts the groups
of the post group in construction order: a model that defines its I projection before its
E projection stores the E synapse under ``..._1``. Keyed by path alone, a checkpoint would
load the E conductances into the I synapse, silently. So a checkpoint also records every
merge group by what it is, and loading matches groups by that, never by the counter.

The checkpoint model
--------------------
One model, whatever the front that built the network: a front describes a model of its
API as a :class:`ModelState` (:data:`FRONTS` lists them, tried in order; ``bp.dyn``'s is
:func:`dyn_model_state`, a ``brainpy.state`` front appends its own),

* ``variables``: every state variable, keyed by its path, and how to assign one;
* ``groups``: one :class:`GroupRecord` per registry node whose storage name follows
  construction order: the post group's path, the merge key's canonical text (``key.canonical_text()``, every
  argument, object identities left out), the member projections' paths, and the group's
  state entries (``syn.g`` -> the variable's path).

A file holds the variables' values under their paths, plus the records. Loading maps each
of the model's groups onto the file's group with the same post path, key text and member
paths, and each remaining path onto the same path. Everything else is refused with a
:class:`CheckpointError` that names what did not fit: a group of the model that is not in
the file, or one the file holds twice (post, key and members), a missing or unexpected
path, a shape or a dtype. Nothing is written into the model unless everything fits.

A fused call (``fused=True``) keeps one spike buffer per member, in the order the members
joined: each buffer is a record of its own (one member), so it is matched by its member.

File format, version 3
----------------------
An uncompressed ``.npz`` (numpy's zip of ``.npy`` arrays, read without pickle) written at
exactly the path given: one array per variable path, ``__format__`` (a 0-d integer, 3) and
``__groups__`` (a 0-d string: the records as JSON, each ``{"post", "key", "members",
"entries", "storage"}``, ``entries`` mapping a group entry to the path of its array in the
file). :func:`state_dict` returns exactly these entries.

Older files
-----------
Version 2 (0.2) keyed variables by the same paths but recorded no groups; version 1 (0.1.0)
had no ``__format__`` and used brainpy's private names (``N._before_updates...``), which
are translated. Their groups are known only by storage name, so they load where that name
identifies a group: on each post group, at most one merge group of each synapse and output
class (``halfproj_Expon_COBA_<i>``, the counter then read from the file), and fused calls
of one member. The seed network has two ``Expon``/``COBA`` groups on one post group: its
version 1 and 2 files are refused, with a :class:`CheckpointError` naming the groups. If
the model builds its projections in the same order as the one that saved the file, load it
with ``trust_order=True`` and save it again to get a version 3 file.

Files
-----
:func:`save_checkpoint` writes a temporary file next to the target and renames it over the
target when complete, so an interrupted save leaves the previous checkpoint intact. It
refuses what ``open(path, 'wb')`` would refuse (a directory, a file without write
permission, also for root), never replaces what is not a regular file (a device, a fifo,
a socket), and writes through a symbolic link: the file the link points to is replaced,
the link stays. Temporary files are named ``.<name>.halfproj-<pid>-<random>.tmp`` and
locked while written; a save removes those of the same target whose writer is gone
(killed mid-save), never another process's file in progress (POSIX; elsewhere none are
removed).
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import re
import stat
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import brainpy as bp
import jax.numpy as jnp
import numpy as np

from . import _paths
from ._compat import assign, is_state_module

__all__ = ["CheckpointError", "FORMAT_VERSION", "GroupRecord", "ModelState", "FRONTS", "model_state", "state_dict",
           "load_state_dict", "save_checkpoint", "load_checkpoint"]

#: Version of the file format that :func:`save_checkpoint` writes (see the module docstring).
FORMAT_VERSION = 3
_FORMAT_KEY = "__format__"
_GROUPS_KEY = "__groups__"
_META = (_FORMAT_KEY, _GROUPS_KEY)


class CheckpointError(ValueError):
    """A checkpoint does not fit the model it is loaded into, or is not a checkpoint of a known format.

    Examples
    --------
    >>> import numpy as np
    >>> import brainpy_halfproj as bhp
    >>> try:
    ...     bhp.load_state_dict(bhp.EINet(100), {'__format__': np.array(7)})
    ... except bhp.CheckpointError as err:
    ...     print(err)  # doctest: +ELLIPSIS
    the state has format 7, but this version of brainpy-halfproj reads formats 1 to 3; ...
    """


# ----------------------------------------------------------------------------- the model


@dataclasses.dataclass(frozen=True)
class GroupRecord:
    """A registry node as a checkpoint identifies it: by what it is, not where it was stored.

    Attributes
    ----------
    post
        Attribute path of the post group that holds the node.
    key
        The merge key's canonical text (every argument, by value), or a description for nodes without a key.
    members
        Attribute paths of the member projections, sorted.
    entries
        ``(entry, path)`` pairs: each state variable of the node, named relative to the node
        (``'syn.g'``), and its path (the key of its array in a state dict or file).
    storage
        The node's storage name on the post group, which may count construction order
        (``'halfproj_Expon_COBA_0'``): for messages and for files of format 1 and 2.
    """

    post: str
    key: str
    members: tuple[str, ...]
    entries: tuple[tuple[str, str], ...]
    storage: str = ""

    @property
    def identity(self) -> tuple[str, str, tuple[str, ...]]:
        """What a group is matched by: post path, key text and member paths."""
        return self.post, self.key, self.members

    def describe(self) -> str:
        """``group on post 'N' with key `Expon(...) -> COBA(...)` and members ['E']`` (for messages)."""
        members = list(self.members) if self.members else "none the model reaches"
        return f"group on post {self.post!r} with key `{self.key}` and members {members}"

    def to_json(self) -> dict[str, Any]:
        return {"post": self.post, "key": self.key, "members": list(self.members),
                "entries": dict(self.entries), "storage": self.storage}

    @classmethod
    def from_json(cls, record: Any) -> GroupRecord:
        """Read a record written by :meth:`to_json`; ``ValueError``/``TypeError``/``KeyError`` if malformed."""
        entries = record["entries"]
        members = record["members"]
        if not (isinstance(record["post"], str) and isinstance(record["key"], str) and isinstance(members, list)
                and isinstance(entries, dict) and all(isinstance(m, str) for m in members)
                and all(isinstance(k, str) and isinstance(v, str) for k, v in entries.items())):
            raise ValueError(f"malformed group record {record!r}")
        return cls(record["post"], record["key"], tuple(sorted(members)), tuple(sorted(entries.items())),
                   str(record.get("storage", "")))


@dataclasses.dataclass
class ModelState:
    """A model as checkpoints see it: its variables by path and its registry nodes.

    A front (``bp.dyn``: :func:`dyn_model_state`; one per API, listed in :data:`FRONTS`)
    builds it; everything else (the file format, matching the groups, the checks) works on
    it alone.
    """

    variables: dict[str, Any]
    """Path -> state variable (anything with a ``value``)."""
    groups: list[GroupRecord]
    """The registry nodes whose storage names may follow construction order."""
    name: str = "the model"
    """How messages name the model."""
    assign: Callable[[Any, Any], None] = assign
    """How to write a value into one of ``variables``."""
    read: Callable[[Any], np.ndarray] = lambda var: np.array(var.value)
    """How to read one of ``variables`` as a NumPy array (a copy)."""
    unversioned: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    """How to read a mapping without ``'__format__'``: ``None`` for this plugin's format 1
    (``bp.dyn``); the ``brainpy.state`` front reads stock brainpy.state's layout there."""


# ----------------------------------------------------------------------------- the bp.dyn front


_ID = re.compile(r" id=0x[0-9a-f]+")


def _key_text(group: Any) -> str:
    """The merge key's canonical text (equal keys, equal text; no object addresses, which differ between processes)."""
    if group.key is None:
        return _ID.sub("", f"private group ({group.unmerged_reason})")
    return group.key.canonical_text()


def dyn_model_state(model: Any) -> ModelState | None:
    """Describe a ``bp.dyn`` model: its variables (``_paths.variables``) and its merge groups and fused calls.

    ``None`` for anything that is not a brainpy ``DynamicalSystem`` (another front's model).

    Examples
    --------
    >>> import brainpy_halfproj as bhp
    >>> from brainpy_halfproj._checkpoint import dyn_model_state
    >>> state = dyn_model_state(bhp.EINet(100))
    >>> [(g.post, g.members, dict(g.entries)) for g in state.groups][0]
    ('N', ('E',), {'syn.g': 'N.before_updates.halfproj_Expon_COBA_0.syn.g'})
    """
    from ._fused import fused_call_of
    from ._registry import groups_of

    if not isinstance(model, bp.DynamicalSystem):
        return None
    variables = _paths.variables(model)
    var_paths = {id(v): p for p, v in variables.items()}
    nodes = _paths.node_paths(model)

    def members_of(projections: Iterable[Any]) -> tuple[str, ...]:
        return tuple(sorted(nodes[id(p)] for p in projections if p is not None and id(p) in nodes))

    groups = []
    seen: set[int] = set()
    for node in model.nodes().unique().values():
        if id(node) in seen or not isinstance(getattr(node, "before_updates", None), Mapping):
            continue
        seen.add(id(node))
        post = nodes[id(node)]
        for group in groups_of(node):
            entries = tuple(sorted((entry, var_paths[id(var)])
                                   for entry, var in group.vars(method="relative").items() if id(var) in var_paths))
            groups.append(GroupRecord(post, _key_text(group), members_of(group.projections), entries,
                                      group.storage_name))
        call = fused_call_of(node)
        if call is not None:
            # one spike buffer per member, in joining order: a record per member
            for i, member in enumerate(call._members):
                buffer, ref = call.buffers[i], member.proj
                if id(buffer) in var_paths:
                    groups.append(GroupRecord(post, "spike buffer of a fused call", members_of([ref()]),
                                              (("buffer", var_paths[id(buffer)]),), f"halfproj_fused.buffers-{i}"))
    return ModelState(variables, groups, f"{type(model).__name__} {getattr(model, 'name', '')!r}")


#: The fronts, tried in order: each returns the :class:`ModelState` of a model of its API, or
#: ``None`` for a model it does not know.
def _state_front(model: Any) -> ModelState | None:
    """The ``brainpy.state`` front (brainpy >= 2.9): see ``_state_checkpoint.py``."""
    if not is_state_module(model):
        return None
    from . import _state_checkpoint

    return _state_checkpoint.model_state(model)


FRONTS: list[Callable[[Any], ModelState | None]] = [dyn_model_state, _state_front]


def model_state(model: Any) -> ModelState:
    """The :class:`ModelState` of ``model``, from the first front that knows it.

    Raises
    ------
    TypeError
        If no front knows ``model``.
    """
    for front in FRONTS:
        state = front(model)
        if state is not None:
            return state
    raise TypeError(f"`model` must be a brainpy DynamicalSystem or a brainpy.state network, but got a "
                    f"{type(model).__name__}.")


# ----------------------------------------------------------------------------- state dicts


def _values(state: ModelState) -> dict[str, Any]:
    records = json.dumps([g.to_json() for g in state.groups], sort_keys=True)
    return {_FORMAT_KEY: np.array(FORMAT_VERSION), _GROUPS_KEY: np.array(records),
            **{path: state.read(var) for path, var in state.variables.items()}}


def state_dict(model: bp.DynamicalSystem) -> dict[str, np.ndarray]:
    """What a checkpoint of ``model`` holds: a copy of every state variable, keyed by path, and the group records.

    The keys are the variables' attribute paths plus ``'__format__'`` (the format version)
    and ``'__groups__'`` (the merge groups' records, JSON): the entries
    :func:`save_checkpoint` writes. :func:`load_state_dict` reads them.

    Raises
    ------
    TypeError
        If ``model`` is neither a brainpy ``DynamicalSystem`` nor a ``brainpy.state`` network.

    Examples
    --------
    >>> import brainpy_halfproj as bhp
    >>> net = bhp.EINet(100)
    >>> sorted(bhp.state_dict(net))[:4]
    ['N.V', 'N.before_updates.halfproj_Expon_COBA_0.syn.g', 'N.before_updates.halfproj_Expon_COBA_1.syn.g', 'N.spike']
    >>> int(bhp.state_dict(net)['__format__'])
    3
    """
    return _values(model_state(model))


def load_state_dict(model: bp.DynamicalSystem, state: Mapping[str, Any], *, trust_order: bool = False) -> None:
    """Write ``state`` (from :func:`state_dict`) into ``model``'s variables.

    Merge groups are matched by post group, key and members (see the module docstring), the
    other variables by path. A mapping without ``'__format__'`` is read as format 1.

    Parameters
    ----------
    model
        A model built by the same code as the one the state comes from.
    state
        What :func:`state_dict` returned (or a checkpoint file's entries).
    trust_order
        Keyword only, default ``False``. Format 1 and 2 only: load merge groups that the
        file can tell apart only by construction order by that order (see the module
        docstring). No effect on format 3.

    Raises
    ------
    CheckpointError
        If a group, a path, a shape or a dtype does not fit, or the format is unknown.
        Nothing is written in that case.

    Examples
    --------
    >>> import brainpy_halfproj as bhp
    >>> a, b = bhp.EINet(100), bhp.EINet(100)
    >>> bhp.load_state_dict(b, bhp.state_dict(a))
    >>> bool((b.N.V.value == a.N.V.value).all())
    True
    """
    _check_bool("load_state_dict", "trust_order", trust_order)
    _restore(model_state(model), state, source="the state", trust_order=trust_order)


def _check_bool(who: str, name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{who}: `{name}` must be True or False, got {value!r}.")


def _restore(model: ModelState, state: Mapping[str, Any], source: str, trust_order: bool) -> None:
    """Check that ``state`` fits ``model`` entirely, then write it (the core of every load)."""
    version, records = _format_of(state, source)
    arrays = {k: v for k, v in state.items() if k not in _META}
    if version == 1:  # brainpy-halfproj 0.1.0: brainpy's private names
        arrays = {_paths.public_path(k): v for k, v in arrays.items()}
    if not records and model.unversioned is not None:  # no groups recorded: the front's stock layout
        arrays, renames = model.unversioned(arrays), {}
    elif records is None:
        renames = _legacy_renames(model, arrays, version, source, trust_order)
    else:
        renames = _matched_renames(model, records, source)
    # renames: the file's key -> the model's path, for group entries
    translated = {renames.get(key, key): value for key, value in arrays.items()}
    if len(translated) != len(arrays):
        clashes = sorted(k for k in arrays if k not in renames and k in renames.values())
        raise CheckpointError(f"{source} does not fit {model.name}: its entries {clashes} collide with merge-group "
                              f"state mapped onto the same paths. Build the model with the same code as the one saved.")
    missing = sorted(set(model.variables) - set(translated))
    unexpected = sorted(set(translated) - set(model.variables))
    if missing or unexpected:
        raise CheckpointError(
            f"{source} does not fit {model.name}: missing keys {missing}, unexpected keys {unexpected}. "
            f"Build the model with the same code (same structure and sizes) as the one saved."
        )
    for path, var in model.variables.items():
        _check_entry(path, translated[path], model.read(var), source)
    for path, var in model.variables.items():
        model.assign(var, jnp.asarray(translated[path]))


def _format_of(state: Mapping[str, Any], source: str) -> tuple[int, list[GroupRecord] | None]:
    """``(version, group records or None)`` of a state dict or file's entries."""
    version = state.get(_FORMAT_KEY)
    if version is None:
        return 1, None
    version = np.asarray(version)
    if version.shape != () or version.dtype.kind not in "iu" or not 1 <= int(version) <= FORMAT_VERSION:
        raise CheckpointError(
            f"{source} has format {version.tolist()!r}, but this version of brainpy-halfproj reads formats 1 to "
            f"{FORMAT_VERSION}; load it with the brainpy-halfproj that wrote it, or a newer one."
        )
    if int(version) < 3:
        return int(version), None
    text = state.get(_GROUPS_KEY)
    try:
        records = [GroupRecord.from_json(r) for r in json.loads(str(np.asarray(text)[()]))]
    except (TypeError, ValueError, KeyError, IndexError):
        raise CheckpointError(f"{source} has format 3 but no readable '{_GROUPS_KEY}' entry (the merge groups' "
                              f"records): it is damaged, or not a brainpy-halfproj checkpoint.") from None
    return 3, records


def _matched_renames(model: ModelState, records: list[GroupRecord], source: str) -> dict[str, str]:
    """Map the file's group entries onto the model's groups with the same post, key and members."""
    by_model: dict[tuple, list[GroupRecord]] = {}
    by_file: dict[tuple, list[GroupRecord]] = {}
    for g in model.groups:
        by_model.setdefault(g.identity, []).append(g)
    for g in records:
        by_file.setdefault(g.identity, []).append(g)
    problems = []
    renames: dict[str, str] = {}
    for identity, ours in by_model.items():
        theirs = by_file.get(identity, [])
        if len(ours) == 1 and len(theirs) == 1:
            mine, saved = ours[0], theirs[0]
            if dict(mine.entries).keys() != dict(saved.entries).keys():
                problems.append(f"the {mine.describe()} has state {sorted(dict(mine.entries))}, the checkpoint's "
                                f"{sorted(dict(saved.entries))}")
                continue
            model_paths = dict(mine.entries)
            renames.update({path: model_paths[entry] for entry, path in saved.entries})
        elif not theirs:
            problems.append(f"the model's {ours[0].describe()} is not in the checkpoint")
        else:
            problems.append(f"the {ours[0].describe()} cannot be matched unambiguously: the model has {len(ours)} "
                            f"such groups and the checkpoint {len(theirs)} (projections the model does not reach "
                            f"as attributes cannot tell them apart)")
    for identity, theirs in by_file.items():
        if identity not in by_model:
            problems.append(f"the checkpoint's {theirs[0].describe()} is not in the model")
    if problems:
        raise CheckpointError(f"{source} does not fit {model.name}: " + "; ".join(problems) +
                              ". Build the model with the same code (same projections, parameters and attribute "
                              "names) as the one saved.")
    return renames


_COUNTED = re.compile(r"^(?P<kind>.+?)(?P<sep>[_-])(?P<index>\d+)$")


def _legacy_renames(model: ModelState, arrays: Mapping[str, Any], version: int, source: str,
                    trust_order: bool) -> dict[str, str]:
    """Format 1/2 (no records): map groups by storage name where it identifies them, else refuse."""
    renames: dict[str, str] = {}
    problems = []
    kinds: dict[tuple[str, str], list[GroupRecord]] = {}
    for g in model.groups:
        m = _COUNTED.match(g.storage)
        if m is not None:
            kinds.setdefault((g.post, m["kind"]), []).append(g)
    for (post, kind), ours in kinds.items():
        prefix = f"{post}.before_updates." if post else "before_updates."
        sep = _COUNTED.match(ours[0].storage)["sep"]  # type: ignore[index]
        pattern = re.compile(re.escape(prefix + kind + sep) + r"\d+(?=\.|$)")
        stored = sorted({m.group(0)[len(prefix):] for k in arrays if (m := pattern.match(k))})
        through_storage = [g for g in ours if any(p == prefix + g.storage or p.startswith(prefix + g.storage + ".")
                                                  for _, p in g.entries)]
        if not through_storage:
            continue  # their paths go through member attributes: no counter involved
        if len(ours) == 1 and len(stored) <= 1:
            if stored and stored[0] != ours[0].storage:
                old, new = prefix + stored[0], prefix + ours[0].storage
                renames.update({k: new + k[len(old):] for k in arrays if k == old or k.startswith(old + ".")})
        elif not trust_order:
            problems.append(f"post {post!r} has {max(len(ours), len(stored))} groups stored as "
                            f"{prefix + kind + sep}<i> ({'; '.join(g.describe() for g in ours)})")
    if problems:
        raise CheckpointError(
            f"{source} has format {version}, which tells merge groups apart only by construction order, and "
            f"{'; '.join(problems)}: loading by that order would swap their state if this model builds its "
            f"projections in another order than the one saved. If it builds them in the same order, load with "
            f"trust_order=True and save again (format {FORMAT_VERSION} records each group by key and members)."
        )
    return renames


def _check_entry(path: str, value: Any, old: np.ndarray, source: str) -> None:
    value = np.asarray(value)
    if value.shape != old.shape:
        raise CheckpointError(
            f"{source}: entry {path!r} has shape {value.shape} and dtype {value.dtype}, but the model's variable has "
            f"shape {old.shape} and dtype {old.dtype}. Build the model with the same sizes."
        )
    if value.dtype != old.dtype:
        hint = ""
        if value.dtype.kind == old.dtype.kind and {value.dtype.itemsize, old.dtype.itemsize} == {4, 8}:
            saved_x64 = value.dtype.itemsize == 8
            hint = (f" The checkpoint was written {'with' if saved_x64 else 'without'} 64-bit precision and the "
                    f"model built {'without' if saved_x64 else 'with'} it: build the model "
                    f"{'after bm.enable_x64()' if saved_x64 else 'without bm.enable_x64()'}, as the saved one was.")
        raise CheckpointError(
            f"{source}: entry {path!r} has dtype {value.dtype}, but the model's variable has dtype {old.dtype}.{hint}"
        )


# ----------------------------------------------------------------------------- files


def save_checkpoint(model: bp.DynamicalSystem, path: str | os.PathLike) -> None:
    """Save ``model``'s state to an ``.npz`` file at exactly ``path`` (format 3, see the module docstring).

    The file is written next to ``path`` under a temporary name and renamed over ``path``
    when complete (atomic on POSIX and Windows), so a failed or interrupted save leaves the
    previous checkpoint as it was; temporary files that earlier, interrupted saves of
    ``path`` left are removed. No ``.npz`` suffix is added. A symbolic link is followed (the
    file it points to is replaced); the new file keeps the old one's permissions.

    Raises
    ------
    TypeError
        If ``model`` is neither a brainpy ``DynamicalSystem`` nor a ``brainpy.state`` network.
    IsADirectoryError
        If ``path`` is a directory.
    PermissionError
        If ``path`` is a file without write permission (also for root), or its folder is not writable.
    ValueError
        If ``path`` exists and is not a regular file (a device, a fifo, a socket).

    Examples
    --------
    >>> import os, tempfile
    >>> import brainpy_halfproj as bhp
    >>> net = bhp.EINet(100)
    >>> path = os.path.join(tempfile.mkdtemp(), 'state.npz')
    >>> bhp.save_checkpoint(net, path)
    >>> bhp.load_checkpoint(bhp.EINet(100), path)
    """
    arrays = state_dict(model)
    shown = os.fspath(path)
    target = os.path.realpath(shown)  # through symbolic links: replace the file, keep the link
    old = _writable_target(shown, target)
    folder, base = os.path.split(target)
    _remove_stale_temporaries(folder, base)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{base}.halfproj-{os.getpid()}-", suffix=".tmp", dir=folder)
    except PermissionError:
        raise PermissionError(errno.EACCES, f"save_checkpoint: the folder {folder!r} is not writable; a save writes "
                                            f"a temporary file there and renames it over the target (so an "
                                            f"interrupted save leaves the old checkpoint intact). Choose a "
                                            f"writable folder", shown) from None
    try:
        with os.fdopen(fd, "wb") as f:
            _lock(f.fileno())  # held until closed: tells cleaners that this file is in progress
            # numpy's stub lets a ** mapping fill savez's allow_pickle (numpy >= 2.1); keys here are paths
            np.savez(f, **arrays)  # type: ignore[arg-type]
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, stat.S_IMODE(old.st_mode) if old is not None else _new_file_mode())
        if old is not None and (old.st_uid, old.st_gid) != (os.getuid(), os.getgid()):
            with contextlib.suppress(OSError):  # keep the owner where we may (root)
                os.chown(tmp, old.st_uid, old.st_gid)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _writable_target(shown: str, target: str) -> os.stat_result | None:
    """The target's ``stat`` (``None`` if it does not exist), after refusing what must not be replaced."""
    try:
        st = os.stat(target)
    except FileNotFoundError:
        return None
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, f"save_checkpoint: `path` is a directory; pass a file path, e.g. "
                                              f"{os.path.join(shown, 'state.npz')!r}", shown)
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in [(stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
                                             (stat.S_ISFIFO, "fifo"), (stat.S_ISSOCK, "socket")]
                     if test(st.st_mode)), "special file")
        raise ValueError(f"save_checkpoint: `path` {shown!r} is a {kind}, not a regular file; a checkpoint "
                         f"replaces the file at `path` and never replaces anything else. Pass the path of a "
                         f"regular file or of a new one.")
    if not st.st_mode & 0o222 or not os.access(target, os.W_OK):
        raise PermissionError(errno.EACCES, f"save_checkpoint: {target!r} is write-protected (mode "
                                            f"{stat.filemode(st.st_mode)}); refused as open(path, 'wb') would "
                                            f"(also for root). Make it writable (chmod u+w) or choose another "
                                            f"path", shown)
    return st


def _new_file_mode() -> int:
    """What ``open()`` would give a new file: ``0o666`` less the umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _lock(fd: int) -> None:
    with contextlib.suppress(ImportError, OSError):
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX)


def _remove_stale_temporaries(folder: str, base: str) -> None:
    """Remove the temporary files of interrupted saves of ``base`` in ``folder`` (POSIX only).

    A temporary file is stale when the process named in it is gone and nobody holds its lock:
    a live writer (here or, through a shared file system, elsewhere) keeps its file.
    """
    try:
        import fcntl
    except ImportError:  # no advisory locks (Windows): keep everything
        return
    pattern = re.compile(re.escape(f".{base}.halfproj-") + r"(\d+)-[A-Za-z0-9_]+\.tmp")
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        m = pattern.fullmatch(name)
        if m is None or _process_exists(int(m.group(1))):
            continue
        candidate = os.path.join(folder, name)
        with contextlib.suppress(OSError):
            fd = os.open(candidate, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while a writer holds it
                if stat.S_ISREG(os.fstat(fd).st_mode):
                    os.unlink(candidate)
            finally:
                os.close(fd)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _read(shown: str) -> dict[str, np.ndarray]:
    """Every entry of a checkpoint file; ``CheckpointError`` if it is not one (open errors propagate)."""
    def refuse(why: str) -> CheckpointError:
        return CheckpointError(f"{shown!r} is not a brainpy-halfproj checkpoint ({why}); pass a file written by "
                               f"brainpy_halfproj.save_checkpoint.")

    with open(shown, "rb") as f:  # FileNotFoundError, IsADirectoryError, PermissionError as they are
        if not zipfile.is_zipfile(f):
            raise refuse("not an .npz (zip) file")
        f.seek(0)
        try:
            with np.load(f, allow_pickle=False) as data:
                entries = {k: data[k] for k in data.files}
        except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, RuntimeError) as err:
            # numpy's own message may suggest unpickling: never pass that on
            raise refuse(f"an entry numpy cannot read as a plain array ({type(err).__name__})") from None
    bad = sorted(k for k, v in entries.items() if not isinstance(v, np.ndarray) or v.dtype.kind in "OV")
    if bad:
        raise refuse(f"entries that are not numeric arrays: {bad}")
    if not entries:
        raise refuse("an empty archive")
    return entries


def load_checkpoint(model: bp.DynamicalSystem, path: str | os.PathLike, *, trust_order: bool = False) -> None:
    """Load a checkpoint written by :func:`save_checkpoint` into a freshly built ``model``.

    Merge groups are matched by post group, key and members, never by construction order;
    every other variable by path (see the module docstring). Nothing is written into
    ``model`` unless the whole checkpoint fits.

    Parameters
    ----------
    model
        A model built by the same code as the saved one.
    path
        The file.
    trust_order
        Keyword only, default ``False``: as in :func:`load_state_dict` (format 1 and 2 files only).

    Raises
    ------
    FileNotFoundError, IsADirectoryError, PermissionError
        If the file cannot be opened.
    CheckpointError
        If the file is not a brainpy-halfproj checkpoint, is of a newer format, or a group,
        path, shape or dtype does not fit ``model``.

    Examples
    --------
    >>> import os, tempfile
    >>> import brainpy_halfproj as bhp
    >>> path = os.path.join(tempfile.mkdtemp(), 'state.npz')
    >>> bhp.save_checkpoint(bhp.EINet(100), path)
    >>> net = bhp.EINet(100)  # in a new process: the model built by the same code
    >>> bhp.load_checkpoint(net, path)
    """
    _check_bool("load_checkpoint", "trust_order", trust_order)
    shown = os.fspath(path)
    entries = _read(shown)
    state = model_state(model)
    if _FORMAT_KEY not in entries:
        # format 1 had no marker; an archive that shares no key with the model is something else
        known = {_paths.public_path(k) for k in entries} & set(state.variables)
        if not known:
            raise CheckpointError(f"{shown!r} is not a brainpy-halfproj checkpoint (no '{_FORMAT_KEY}' entry, and "
                                  f"none of its entries is a variable of {state.name}); pass a file written by "
                                  f"brainpy_halfproj.save_checkpoint.")
    _restore(state, entries, source=f"checkpoint {shown!r}", trust_order=trust_order)
