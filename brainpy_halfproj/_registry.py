"""The merging registry: where shared synapse states live and how projections find them.

Design
------
The registry keeps no global table. Each shared synapse-and-output pair is a
:class:`MergeGroup` node that lives *on the post group*, in
``post.before_updates``, exactly where upstream keeps its ``_AlignPost`` node.
That placement is what makes everything else work without extra machinery:

* the post group calls the group before its own update, so the merged synapse
  decays once before the neuron reads it (upstream's update order, kept for
  bit-identical results);
* ``model.nodes()`` and ``model.vars()`` reach the shared state once, so
  ``bp.reset_state``, ``bm.jit`` and ``bm.for_loop`` see it once;
* the node's storage name (``halfproj_<Syn>_<Out>_<i>``, ``i`` counting the
  groups on that post in construction order) is readable and deterministic for
  the same code, but it counts: checkpoints therefore identify a group by its
  key and its members' attribute paths, never by this name (``_checkpoint.py``).

Finding a group means scanning the post's ``before_updates`` for a
:class:`MergeGroup` whose :class:`~brainpy_halfproj.MergeKey` is *equal* to the
new projection's key. Keys compare by value (see ``_merge_key.py``), never by a
string. A projection whose key cannot be built gets a private group with
``key=None`` and the reason in :attr:`MergeGroup.unmerged_reason`.
"""
from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from typing import Any

import brainpy as bp
import numpy as np

from ._merge_key import MergeKey

__all__ = ["MergeGroup", "groups_of", "find_group", "join", "state_size"]

_PREFIX = "halfproj_"


class MergeGroup(bp.DynamicalSystem):
    """One synapse-and-output pair shared by the merging projections onto one post group.

    You do not build it yourself: a merging projection finds or creates it. Reach it
    with ``proj.merge_group``, or list every group with
    :func:`~brainpy_halfproj.merge_report`.

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
        The key of this node in ``post.before_updates``.

    Examples
    --------
    >>> import brainpy as bp
    >>> import brainpy_halfproj as bhp
    >>> post = bp.dyn.LifRef(8)
    >>> a = bhp.HalfProjAlignPostMg(bp.dnn.Linear(4, 8), bp.dyn.Expon.desc(8, tau=5.),
    ...                             bp.dyn.CUBA.desc(), post)
    >>> b = bhp.HalfProjAlignPostMg(bp.dnn.Linear(2, 8), bp.dyn.Expon.desc(size=8, tau=5),
    ...                             bp.dyn.CUBA.desc(), post)
    >>> a.merge_group is b.merge_group, len(a.merge_group.projections)
    (True, 2)
    >>> a.merge_group.storage_name
    'halfproj_Expon_CUBA_0'
    """

    def __init__(self, key: MergeKey | None, syn: Any, out: Any, storage_name: str,
                 unmerged_reason: str | None = None):
        super().__init__()
        self.syn = syn
        self.out = out
        self.key = key
        self.unmerged_reason = unmerged_reason
        self.storage_name = storage_name
        self._members: list[weakref.ref] = []

    @property
    def projections(self) -> list:
        """The live projections that share this group, in construction order.

        Members are held by weak reference: the model owns its projections, the group
        only lists them.
        """
        return [p for p in (ref() for ref in self._members) if p is not None]

    @property
    def state_size(self) -> int:
        """Number of state elements (all synapse variables) held by this group."""
        return state_size(self.syn)

    def update(self, *args, **kwargs):
        # Upstream's ``_AlignPost.update``: integrate the synapse, bind it to the output.
        self.out.bind_cond(self.syn(*args, **kwargs))

    def reset_state(self, *args, **kwargs):
        # ``syn`` and ``out`` are child nodes: ``bp.reset_state`` resets them once itself.
        pass


def state_size(syn: Any) -> int:
    """Number of state elements (all variables) of a synapse, shared or not."""
    return int(sum(np.size(v.value) for v in syn.vars().unique().values()))


def groups_of(post: Any) -> Iterator[MergeGroup]:
    """The merge groups stored on ``post``, in construction order."""
    for node in post.before_updates.values():
        if isinstance(node, MergeGroup):
            yield node


def find_group(post: Any, key: MergeKey | None) -> MergeGroup | None:
    """The group of ``post`` whose key equals ``key`` (``None``: none, or ``key`` is ``None``)."""
    if key is None:
        return None
    return next((g for g in groups_of(post) if g.key is not None and g.key == key), None)


def join(proj: Any, post: Any, key: MergeKey | None, build: Callable[[], tuple[Any, Any]],
         out_label: str | None, unmerged_reason: str | None = None,
         check: Callable[[Any, Any], None] = lambda syn, out: None) -> MergeGroup:
    """Add ``proj`` to the group of ``post`` whose key equals ``key``; create it if none.

    ``build()`` makes the synapse and output of a new group; ``check(syn, out)`` may
    reject them before anything is registered on ``post``. A ``key`` of ``None``
    always creates a private group.
    """
    group = find_group(post, key)
    if group is None:
        syn, out = build()
        check(syn, out)
        index = sum(1 for _ in groups_of(post))
        name = f"{_PREFIX}{type(syn).__name__}_{type(out).__name__}_{index}"
        group = MergeGroup(key, syn, out, name, unmerged_reason)
        # Same registrations, in the same order, as upstream: identical update order.
        post.add_inp_fun(proj.name, out, label=out_label)
        post.add_bef_update(name, group)
    group._members.append(weakref.ref(proj))
    return group
