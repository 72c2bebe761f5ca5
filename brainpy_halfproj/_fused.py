"""Fused merge groups: one event-kernel call per post group for all its fused projections.

Why
---
On brainpy 2.8/2.9 the time of a step goes to the *calls* of the event kernels (a fixed
cost each), not to the work they do. The registry already knows which projections add
into the same synapse states of a post group; with ``fused=True`` they add through one
kernel call per step instead of one each.

How
---
* A merging projection built with ``fused=True`` whose ``comm`` is an event layer
  (:data:`~brainpy_halfproj._connectivity.EVENT_LAYERS`) joins its post group's
  :class:`FusedCall` node. Its ``update(x)`` only writes ``x`` into its slice of the node's
  spike buffer.
* The node runs first among the post's ``before_updates``, before the merge groups
  integrate: it makes one call of brainpy's event CSR kernel (``bm.event.csrmv``, served by
  brainevent or brainpylib) on the *stacked* connectivity, adds each merge group's slice of
  the result to that group's synapse, and clears the buffer. The stacked matrix has one row
  per presynaptic neuron of each member (members one after the other) and one column per
  post neuron for each merge group (groups one after the other), so several merge groups
  (E and I synapses, say) still take one call.
* Timing, the contract: spikes handed to a projection before its post group's step reach
  the synapse in that step; spikes handed after it reach it in the next step. That is when
  the additions of the unfused merging classes take effect too, so fused and unfused give
  the same synaptic input up to the order of floating-point summation.
* The stacked matrix is built from each member's own connectivity
  (:func:`~brainpy_halfproj._connectivity.read_connectivity`: the synapses a JIT layer's
  kernel realises, read out) when the member joins, at construction: JAX stages every array
  operation made while a program is traced, so the read-out cannot wait for the first step.
  Its memory grows with the number of synapses, where a JIT layer's grows with the neurons
  only: that is the price of the single call.
* Split over devices (:func:`brainpy_halfproj.partition`), the call goes through
  :attr:`FusedCall.kernel`, a ``PartitionedCSR`` with one column block per merge group:
  each device makes one call for its own post neurons.
"""
from __future__ import annotations

import weakref
from typing import Any

import brainpy as bp
import brainpy.math as bm
import jax.numpy as jnp
import numpy as np

from ._compat import argument_state
from ._connectivity import EVENT_LAYERS, SparseRows, append_rows, read_connectivity, stack_blocks

__all__ = ["FusedCall", "why_not_fused", "fused_call_of", "join_fused"]

_NAME = "halfproj_fused"


def why_not_fused(comm: Any, mode: bm.Mode | None, post: Any) -> str | None:
    """``None`` if a projection with this ``comm`` can be fused onto ``post``, else the reason."""
    effective = bm.get_mode() if mode is None else mode
    if type(comm).__name__ not in EVENT_LAYERS:
        return (f"comm is a {type(comm).__name__}, not an event layer "
                f"(bp.dnn.{', '.join(EVENT_LAYERS)})")
    if isinstance(effective, bm.BatchingMode) or isinstance(getattr(comm, "mode", None), bm.BatchingMode):
        return f"fused calls run in brainpy's default (non-batching) mode, not in {type(effective).__name__}"
    if len(post.varshape) != 1:
        return f"the post group has shape {tuple(post.varshape)}; fused calls need a 1-D group"
    return None


class FusedCall(bp.DynamicalSystem):
    """One event-kernel call per step for the fused projections onto one post group.

    Built by the first projection with ``fused=True`` onto a post group; reach it with
    ``proj.fused_call`` or :func:`~brainpy_halfproj.merge_report`.

    Attributes
    ----------
    buffers
        One spike buffer per member projection: the spikes it was handed since the last step.

    Examples
    --------
    >>> import brainpy as bp
    >>> import brainpy_halfproj as bhp
    >>> post = bp.dyn.LifRef(40)
    >>> e = bhp.HalfProjAlignPostMg(bp.dnn.EventJitFPHomoLinear(30, 40, prob=0.1, weight=0.6),
    ...                             bp.dyn.Expon.desc(40, tau=5.), bp.dyn.COBA.desc(E=0.), post, fused=True)
    >>> i = bhp.HalfProjAlignPostMg(bp.dnn.EventJitFPHomoLinear(10, 40, prob=0.1, weight=6.7),
    ...                             bp.dyn.Expon.desc(40, tau=10.), bp.dyn.COBA.desc(E=-80.), post, fused=True)
    >>> e.fused_call is i.fused_call, len(e.fused_call.groups), e.fused_call.shape
    (True, 2, (40, 80))
    """

    def __init__(self, post: Any):
        super().__init__()
        self.post_size = int(post.num)
        """Number of post neurons; each merge group takes this many columns."""
        self._members: list[tuple[weakref.ref, Any]] = []  # (projection, its merge group)
        self.buffers = bm.VarList()
        # The stacked connectivity: the row pointer as a constant (the kernel builds its work
        # plan from it when the program is traced), indices and weights as arguments of the
        # compiled program (see ``_compat.argument_state``: closed over, they would be copied
        # into it).
        self._shape = (0, 0)
        self._indptr = np.zeros(1, dtype=np.int64)
        self._indices: Any = None
        self._data: Any = None
        self.kernel: Any = None
        """``None``: one call on the stacked connectivity. Split over devices
        (:func:`brainpy_halfproj.partition`): a ``PartitionedCSR`` with one column block per
        merge group, so that each device makes one call for its own post neurons."""

    @property
    def projections(self) -> list:
        """The live member projections, in the order they joined."""
        return [p for p in (ref() for ref, *_ in self._members) if p is not None]

    @property
    def groups(self) -> list:
        """The merge groups the call adds into, in column order."""
        groups: list = []
        for _, group in self._members:
            if not any(g is group for g in groups):
                groups.append(group)
        return groups

    @property
    def shape(self) -> tuple[int, int]:
        """``(presynaptic rows, post columns)`` of the stacked connectivity."""
        return self._shape

    @property
    def connectivity(self) -> SparseRows:
        """The stacked connectivity (:class:`~brainpy_halfproj._connectivity.SparseRows`, views, no copy)."""
        if self._indices is None:
            return stack_blocks([], self._shape)
        return SparseRows(self._indptr, np.asarray(self._indices.value), np.asarray(self._data.value), self._shape)

    def add(self, proj: Any, group: Any, n_pre: int) -> None:
        """Add a member: read out its synapses and stack them under the others' (its rows come last)."""
        n_post = self.post_size
        rows = read_connectivity(proj.comm, n_pre, n_post)
        self._members.append((weakref.ref(proj), group))
        self.buffers.append(bm.Variable(bm.zeros(n_pre, dtype=bool)))
        groups = self.groups
        column = next(i for i, g in enumerate(groups) if g is group) * n_post
        shape = (self._shape[0] + n_pre, len(groups) * n_post)
        stacked = append_rows(self.connectivity, rows, column, shape[1])
        del rows
        index_type = np.int32 if stacked.nnz < 2**31 else np.int64
        self._shape, self._indptr = shape, stacked.indptr.astype(index_type)
        # New arrays, not new values of the old ones (brainpy would set a variable attribute's
        # value). The old arrays go first and each new one replaces its NumPy source at once,
        # so that the stacked connectivity exists at most twice at any moment.
        self.__dict__.pop("_indices", None)
        self.__dict__.pop("_data", None)
        indices, data = stacked.indices, stacked.data
        del stacked
        self._indices = argument_state(jnp.asarray(indices, dtype=index_type))
        del indices
        self._data = argument_state(jnp.asarray(data))

    def hand(self, proj: Any, x: Any) -> None:
        """Keep ``proj``'s presynaptic spikes for the post group's next step."""
        index = next(i for i, (ref, _) in enumerate(self._members) if ref() is proj)
        x = bm.as_jax(x)
        # what an event layer counts as an event: True, or a positive value
        self.buffers[index].value = x if x.dtype == jnp.bool_ else x > 0

    def update(self, *args: Any, **kwargs: Any) -> None:
        n = self.post_size
        spikes = jnp.concatenate([buffer.value for buffer in self.buffers])
        for buffer in self.buffers:
            buffer.value = jnp.zeros_like(buffer.value)
        groups = self.groups
        if self.kernel is None:
            current = bm.event.csrmv(self._data.value, self._indices.value, self._indptr, spikes,
                                     shape=self._shape, transpose=True)
        else:
            current = self.kernel(spikes)
        current = current.reshape(len(groups), n)  # one row per merge group
        for i, group in enumerate(groups):
            group.syn.add_current(current[i])

    def use_kernel(self, kernel: Any) -> None:
        """Make the call through ``kernel`` (a ``PartitionedCSR``); drop the one-device arrays."""
        self.kernel = kernel
        self._indices = self._data = None

    def reset_state(self, *args: Any, **kwargs: Any) -> None:
        for buffer in self.buffers:
            buffer.value = jnp.zeros_like(buffer.value)


def fused_call_of(post: Any) -> FusedCall | None:
    """The post group's :class:`FusedCall`, or ``None``."""
    node = post.before_updates.get(_NAME) if hasattr(post, "before_updates") else None
    return node if isinstance(node, FusedCall) else None


def join_fused(proj: Any, post: Any, group: Any, n_pre: int) -> FusedCall:
    """Add ``proj`` (whose merge group is ``group``) to the post's fused call; create it first if needed.

    The call is placed first among the post's ``before_updates``, ahead of the merge groups
    it adds into, so that the synapses integrate this step's input in this step.
    """
    call = fused_call_of(post)
    if call is None:
        call = FusedCall(post)
        others = list(post.before_updates.items())
        post.before_updates.clear()
        post.before_updates[_NAME] = call
        for key, node in others:
            post.before_updates[key] = node
    call.add(proj, group, n_pre)
    return call
