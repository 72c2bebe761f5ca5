"""The merging registry of the ``brainpy.state`` front: where shared synapse states live.

Design
------
As on ``bp.dyn`` (``_registry.py``), the registry keeps no table of its own. Each shared
synapse-and-output pair is a :class:`StateMergeGroup` node stored on the post group, in
``post._before_updates``, through brainstate's public ``add_before_update`` /
``get_before_update``, exactly where upstream's ``AlignPostProj`` stores its ``_AlignPost``
node. The post group calls it before its own update (upstream's order, kept for
bit-identical results), and ``states()``, ``init_all_states``, brainstate's transforms and
graph traversal reach the shared state once, as they reach upstream's. Groups are found by
*equal* :class:`~brainpy_halfproj.MergeKey` (by value, ``_merge_key.py``), never by a string.

The storage key
---------------
The node must be stored under a ``str`` (brainstate sorts the keys of a state's path; other
types make ``states()`` fail), and that string is part of every state path
(``('E', 'post', '_before_updates', <key>, 'syn', 'g')``), so of every checkpoint. A group's
name is a function of its value and its members' strings, never of construction order:

* **upstream's own string** (``get_post_repr(label, syn, out)``,
  ``f'{label}{syn.identifier} // {out.identifier}'``) when the group is one stock
  brainpy.state forms too: its members all have this string and no member of another group
  has it. Then the state paths are stock's, and a checkpoint saved from a stock network
  loads as it is. (Where members have several strings, a merge stock misses, the smallest
  of them is the base of the name.)
* ``f'{base} #{digest}'`` for every group that shares a string with another group of the
  post although they differ by value (a merge stock would have made wrongly): ``digest``
  is 12 hex digits of a hash of the group's key
  (:func:`~brainpy_halfproj._merge_key.stable_digest`), the same in every process.
* ``f'{base} #{i}'``, ``i`` a number given once in construction order, only where such a
  group's key holds a part compared by identity (a state, a function), which has no
  process-independent text, or where there is no key (a private group: ``merge=False``, or
  a key that could not be built).

A new member can change names (a second group with the same string turns the first one's
name into its suffixed form): after each join, every group is stored under its name again,
each entry in its place, so the update order stays upstream's.

Caveat: a *stock* ``AlignPostProj`` onto the same post whose string equals a group's storage
key joins that group, by upstream's own logic. Migrate all projections onto a post together;
:func:`~brainpy_halfproj.merge_report` flags a stock projection found in a plugin group.

The group's own data (key, members, storage key) are plain attributes listed in
``graph_invisible_attrs``: brainstate's graph operations see only ``syn`` and ``out``, as on
upstream's node. A copy made by brainstate's graph operations (``treefy_merge``,
``copy.deepcopy``) keeps the states and the update, and falls back to the class defaults
for these attributes (no key, no members).
"""
from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from typing import Any

import brainstate
import numpy as np
from brainpy.state.projection import get_post_repr

from ._merge_key import MergeKey, stable_digest

__all__ = ["StateMergeGroup", "groups_of", "join", "state_size", "upstream_repr"]


class StateMergeGroup(brainstate.nn.Module):
    """One synapse-and-output pair shared by the merging ``AlignPostProj`` onto one post group.

    The ``brainpy.state`` sibling of :class:`~brainpy_halfproj.MergeGroup`: a merging
    projection finds or creates it; reach it with ``proj.merge_group`` or list every group
    with :func:`~brainpy_halfproj.merge_report`.

    Attributes
    ----------
    syn, out
        The shared synapse and output instances.
    key
        The :class:`~brainpy_halfproj.MergeKey` the members share, or ``None`` for a
        private group whose key could not be built.
    unmerged_reason
        Why a private group could not be merged (``None`` for a shared group).
    storage_name
        The key of this node in ``post.before_updates`` (see the module docstring).
    upstream_repr
        The string stock brainpy.state would store the first member's synapse under.

    Examples
    --------
    >>> import brainstate, brainunit as u
    >>> import brainpy_halfproj.state as bst
    >>> post = bst.LIF(8)
    >>> a = bst.AlignPostProj(comm=brainstate.nn.Linear(4, 8), syn=bst.Expon.desc(8, tau=5. * u.ms),
    ...                       out=bst.CUBA.desc(), post=post)
    >>> b = bst.AlignPostProj(comm=brainstate.nn.Linear(2, 8), syn=bst.Expon.desc(in_size=8, tau=5 * u.ms),
    ...                       out=bst.CUBA.desc(), post=post)
    >>> a.merge_group is b.merge_group, len(a.merge_group.projections)
    (True, 2)
    >>> post.get_before_update(a.merge_group.storage_name) is a.merge_group
    True
    """

    graph_invisible_attrs = ("key", "unmerged_reason", "storage_name", "upstream_repr", "_members", "_number")
    key: MergeKey | None = None
    unmerged_reason: str | None = None
    storage_name: str | None = None
    upstream_repr: str | None = None
    _members: Any = ()  # a copy made by brainstate's graph operations has no members
    _number: int | None = None

    def __init__(self, key: MergeKey | None, syn: Any, out: Any, storage_name: str, upstream: str,
                 unmerged_reason: str | None = None):
        super().__init__()
        self.syn = syn
        self.out = out
        self.key = key
        self.unmerged_reason = unmerged_reason
        self.storage_name = storage_name
        self.upstream_repr = upstream
        self._members: list[tuple[weakref.ref, str]] = []

    @property
    def projections(self) -> list:
        """The live projections that share this group, in construction order (held weakly)."""
        return [proj for proj, _ in self.upstream_reprs]

    @property
    def upstream_reprs(self) -> list[tuple[Any, str]]:
        """``(projection, string)`` for each live member: the string stock brainpy.state would key it by."""
        return [(p, text) for p, text in ((ref(), text) for ref, text in self._members) if p is not None]

    @property
    def state_size(self) -> int:
        """Number of state elements of the shared synapse (0 before ``init_all_states``)."""
        return state_size(self.syn)

    def update(self, *args, **kwargs):
        # Upstream's ``_AlignPost.update``: integrate the synapse, bind it to the output.
        self.out.bind_cond(self.syn(*args, **kwargs))


def state_size(syn: Any) -> int:
    """Number of state elements of a brainstate module (its states that exist so far)."""
    import brainunit as u

    return int(sum(np.size(u.get_mantissa(s.value)) for s in syn.states().values()))


def groups_of(post: Any) -> Iterator[StateMergeGroup]:
    """The plugin's merge groups stored on ``post``, in construction order."""
    for node in (post.before_updates or {}).values():
        if isinstance(node, StateMergeGroup):
            yield node


def upstream_repr(label: str | None, syn: Any, out: Any) -> str:
    """The string stock brainpy.state stores a group under (upstream's ``get_post_repr``)."""
    return get_post_repr(label, syn, out)


def _strings(group: StateMergeGroup) -> set[str]:
    """The upstream strings of all members the group ever had (dead ones too: names must not change)."""
    return {text for _, text in group._members} or {group.upstream_repr or ""}


def _names(post: Any) -> dict[int, str]:
    """``{id(group): storage name}`` for every plugin group of ``post`` (the rules of the module docstring)."""
    groups = list(groups_of(post))
    foreign = {k for k, node in (post.before_updates or {}).items() if not isinstance(node, StateMergeGroup)}
    names: dict[int, str] = {}
    for group in groups:
        strings = _strings(group)
        base = min(strings)
        shared = any(other is not group and strings & _strings(other) for other in groups)
        if not shared and base not in foreign:
            names[id(group)] = base
            continue
        digest = None if group.key is None else stable_digest(group.key)
        if digest is not None:
            names[id(group)] = f"{base} #{digest}"
            continue
        if group._number is None:  # identity parts or no key: numbered once, in construction order
            taken = {g._number for g in groups if g._number is not None and min(_strings(g)) == base}
            group._number = next(i for i in range(1, len(groups) + 2) if i not in taken)
        names[id(group)] = f"{base} #{group._number}"
    return names


def _rename_all(post: Any) -> None:
    """Store every plugin group of ``post`` under its name, each in its place (the update order stays)."""
    names = _names(post)
    entries = post.before_updates
    items = [(names.get(id(node), k), node) for k, node in entries.items()]
    if [k for k, _ in items] == list(entries):
        return
    if len({k for k, _ in items}) != len(items):  # pragma: no cover - digests of different keys collide
        raise RuntimeError(f"brainpy_halfproj: two merge groups of one post group got the same name: {names}")
    entries.clear()
    entries.update(items)
    for node in entries.values():
        if isinstance(node, StateMergeGroup):
            node.storage_name = names[id(node)]


def join(proj: Any, post: Any, key: MergeKey | None, build: Callable[[], tuple[Any, Any]], label: str | None,
         upstream: str, unmerged_reason: str | None = None,
         check: Callable[[Any, Any], None] = lambda syn, out: None) -> StateMergeGroup:
    """Add ``proj`` to the group of ``post`` whose key equals ``key``; create it if none.

    ``build()`` makes the synapse and output of a new group; ``check(syn, out)`` may reject
    them before anything is registered on ``post``. A ``key`` of ``None`` always creates a
    private group. ``upstream`` is the member's string in stock brainpy.state. Afterwards
    every group of ``post`` is stored under its name (a new member may change names).
    """
    group = None
    if key is not None:
        group = next((g for g in groups_of(post) if g.key is not None and g.key == key), None)
    if group is None:
        syn, out = build()
        check(syn, out)
        provisional = upstream
        while post.has_before_update(provisional):
            provisional += " #new"
        group = StateMergeGroup(key, syn, out, provisional, upstream, unmerged_reason)
        # Upstream's registrations, in upstream's order: identical update order and state paths.
        post.add_current_input(proj.name, out, label=label)
        post.add_before_update(provisional, group)
    group._members.append((weakref.ref(proj), upstream))
    _rename_all(post)
    return group
