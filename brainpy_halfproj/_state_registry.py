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
(``('E', 'post', '_before_updates', <key>, 'syn', 'g')``), so of every checkpoint. The choice:

* **upstream's own string** (``get_post_repr(label, syn, out)`` of the group's first member,
  ``f'{label}{syn.identifier} // {out.identifier}'``) when no other group of the post has
  that string. Where stock brainpy.state forms the same group (its members all have this
  string, and no member of another group has it), the state paths are stock's, so a
  checkpoint saved from a stock network loads as it is.
* ``f'{upstream string} #{digest}'`` for *every* group of a set that shares one upstream
  string but differs by value (a merge stock would have made wrongly): ``digest`` is 12 hex
  digits of a hash of the group's key (:func:`~brainpy_halfproj._merge_key.stable_digest`),
  the same in every process. When a second such group arrives, the first one is renamed
  (its entry keeps its place, so the update order is unchanged). So the name depends on the
  group's value only, never on construction order: a network built with its projections in
  another order has the same state paths.
* ``f'{upstream string} #{i}'``, ``i`` the smallest free number, only where the key holds a
  part compared by identity (a state, a function) and so has no process-independent text,
  or where there is no key (a private group: ``merge=False``, or a key that could not be
  built). These names follow construction order.

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
    >>> a.merge_group.storage_name == a.merge_group.upstream_repr
    True
    """

    graph_invisible_attrs = ("key", "unmerged_reason", "storage_name", "upstream_repr", "_members")
    key: MergeKey | None = None
    unmerged_reason: str | None = None
    storage_name: str | None = None
    upstream_repr: str | None = None
    _members: Any = ()  # a copy made by brainstate's graph operations has no members

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


def _storage_name(post: Any, upstream: str, key: MergeKey | None) -> str:
    """The name of a new group (see the module docstring); renames a plugin group that holds ``upstream``."""
    same_string = [g for g in groups_of(post) if g.upstream_repr == upstream]
    if not same_string and not post.has_before_update(upstream):
        return upstream
    for group in same_string:  # equal by string, not by value: every such group gets its value's name
        if group.storage_name == upstream:
            _rename(post, group, _suffixed(post, upstream, group.key))
    return _suffixed(post, upstream, key)


def _suffixed(post: Any, upstream: str, key: MergeKey | None) -> str:
    digest = None if key is None else stable_digest(key)
    if digest is not None and not post.has_before_update(f"{upstream} #{digest}"):
        return f"{upstream} #{digest}"
    i = 1
    while post.has_before_update(f"{upstream} #{i}"):
        i += 1
    return f"{upstream} #{i}"


def _rename(post: Any, group: StateMergeGroup, name: str) -> None:
    """Store ``group`` under ``name`` instead, in the same place of ``post.before_updates`` (same update order)."""
    entries = post.before_updates
    items = [(name if node is group else k, node) for k, node in entries.items()]
    entries.clear()
    entries.update(items)
    group.storage_name = name


def join(proj: Any, post: Any, key: MergeKey | None, build: Callable[[], tuple[Any, Any]], label: str | None,
         upstream: str, unmerged_reason: str | None = None,
         check: Callable[[Any, Any], None] = lambda syn, out: None) -> StateMergeGroup:
    """Add ``proj`` to the group of ``post`` whose key equals ``key``; create it if none.

    ``build()`` makes the synapse and output of a new group; ``check(syn, out)`` may reject
    them before anything is registered on ``post``. A ``key`` of ``None`` always creates a
    private group. ``upstream`` is the member's string in stock brainpy.state.
    """
    group = None
    if key is not None:
        group = next((g for g in groups_of(post) if g.key is not None and g.key == key), None)
    if group is None:
        syn, out = build()
        check(syn, out)
        name = _storage_name(post, upstream, key)
        group = StateMergeGroup(key, syn, out, name, upstream, unmerged_reason)
        # Upstream's registrations, in upstream's order: identical update order and state paths.
        post.add_current_input(proj.name, out, label=label)
        post.add_before_update(name, group)
    group._members.append((weakref.ref(proj), upstream))
    return group
