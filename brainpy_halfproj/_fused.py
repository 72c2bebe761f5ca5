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
  :class:`FusedCall` node. Its ``update(x)`` only counts the events in ``x`` (as its layer
  would count them, :func:`~brainpy_halfproj._events.event_mask`) into its slice of the
  node's buffer: called twice, it counts twice, as its own layer would add twice.
* The node runs first among the post's ``before_updates``, before the merge groups
  integrate: it makes one event CSR kernel call on the *stacked* connectivity with the counts
  (:func:`~brainpy_halfproj._events.counts_csrmv`: brainevent 0.3's value-weighted kernel;
  elsewhere brainpy's ``bm.event.csrmv``, and, in the steps that have counts above one,
  brainpy's float CSR kernel in a branch), adds each merge group's
  slice of the result to that group's synapse, and clears the buffer. The stacked matrix
  has one row per presynaptic neuron of each member (members one after the other) and one
  column per post neuron for each merge group (groups one after the other), so several
  merge groups (E and I synapses, say) still take one call.
* Timing, the contract: spikes handed to a projection before its post group's step reach
  the synapse in that step; spikes handed after it reach it in the next step; spikes handed
  in steps where the post group does not update reach it at its next update. That is when
  the additions of the unfused merging classes take effect too, so fused and unfused give
  the same synaptic input up to the order of floating-point summation.
* The stacked matrix is built from each member's own connectivity
  (:func:`~brainpy_halfproj._connectivity.read_connectivity`: the synapses a JIT layer's
  kernel realises, read out) when the member joins, at construction: JAX stages every array
  operation made while a program is traced, so the read-out cannot wait for the first step.
  Its memory grows with the number of synapses, where a JIT layer's grows with the neurons
  only: that is the price of the single call.
* The members' layers stay live: when a step is traced, each member's weights are taken as
  they are now (:class:`~brainpy_halfproj._connectivity.ReadOut`: the stored values while
  unchanged, else the new ones written over the member's slice in the step; weights held in
  variables, e.g. ``bm.TrainVar``, every step, so gradients reach them). Which synapses
  exist is read once; a change of it is refused at the next trace, with the fix
  (:meth:`FusedCall.rebuild`).
* Split over devices (:func:`brainpy_halfproj.partition`), the call goes through
  :attr:`FusedCall.kernel`, a ``PartitionedCSR`` with one column block per merge group:
  each device makes one call for its own post neurons.
"""
from __future__ import annotations

import dataclasses
import functools
import weakref
from typing import Any

import brainpy as bp
import brainpy.math as bm
import jax.numpy as jnp
import numpy as np

from ._checks import comm_sizes, who
from ._compat import argument_state
from ._connectivity import EVENT_LAYERS, ReadOut, SparseRows, StaleReadOut, append_rows, read_connectivity
from ._events import counts_csrmv, event_mask

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


@dataclasses.dataclass
class _Member:
    """One fused projection: where its rows and synapses sit in the stacked matrix."""

    proj: weakref.ref
    group: Any
    readout: ReadOut
    n_pre: int  # its rows: row:row + n_pre
    row: int
    start: int  # its synapses: start:stop
    stop: int
    column: int  # its merge group's first column


class FusedCall(bp.DynamicalSystem):
    """One event-kernel call per step for the fused projections onto one post group.

    Built by the first projection with ``fused=True`` onto a post group; reach it with
    ``proj.fused_call`` or :func:`~brainpy_halfproj.merge_report`.

    Attributes
    ----------
    buffers
        One buffer per member projection: the events it was handed since the post group's
        last step, counted per presynaptic neuron.

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
        self.post_name = str(post.name)
        self._members: list[_Member] = []
        self.buffers = bm.VarList()
        # The stacked connectivity: the row pointer as a constant (the kernel builds its work
        # plan from it when the program is traced), indices and weights as arguments of the
        # compiled program (see ``_compat.argument_state``: closed over, they would be copied
        # into it). ``_host`` holds the same two arrays, concrete also while a step is traced.
        self._shape = (0, 0)
        self._indptr = np.zeros(1, dtype=np.int64)
        self._indices: Any = None
        self._data: Any = None
        self._host: tuple[Any, Any] | None = None
        self.kernel: Any = None
        """``None``: one call on the stacked connectivity. Split over devices
        (:func:`brainpy_halfproj.partition`): a ``PartitionedCSR`` with one column block per
        merge group, so that each device makes one call for its own post neurons."""

    @property
    def projections(self) -> list:
        """The live member projections, in the order they joined."""
        return [p for p in (m.proj() for m in self._members) if p is not None]

    @property
    def groups(self) -> list:
        """The merge groups the call adds into, in column order."""
        groups: list = []
        for m in self._members:
            if not any(g is m.group for g in groups):
                groups.append(m.group)
        return groups

    @property
    def shape(self) -> tuple[int, int]:
        """``(presynaptic rows, post columns)`` of the stacked connectivity."""
        return self._shape

    @property
    def connectivity(self) -> SparseRows:
        """The stacked connectivity, with the weights as read (:class:`~brainpy_halfproj.SparseRows`).

        Views of the stored arrays, no copy; split over devices, gathered from the blocks.
        """
        if self.kernel is not None:
            return self.kernel.to_rows()
        if self._host is None:
            empty = np.zeros(0, np.int32)
            return SparseRows(self._indptr, empty, np.zeros(0, np.float32), self._shape)
        indices, data = self._host
        return SparseRows(self._indptr, np.asarray(indices), np.asarray(data), self._shape)

    def add(self, proj: Any, group: Any, rows: SparseRows) -> None:
        """Add a member with its read-out ``rows`` (its synapses are stacked under the others')."""
        self.buffers.append(bm.Variable(bm.zeros(rows.shape[0], dtype=jnp.int32)))
        self._append(proj, group, rows)

    def _append(self, proj: Any, group: Any, rows: SparseRows) -> None:
        n_post = self.post_size
        groups = self.groups
        index = next((i for i, g in enumerate(groups) if g is group), len(groups))
        shape = (self._shape[0] + rows.shape[0], max(len(groups), index + 1) * n_post)
        start = int(self._indptr[-1])
        self._members.append(_Member(weakref.ref(proj), group, ReadOut(proj.comm, rows), rows.shape[0],
                                     self._shape[0], start, start + rows.nnz, index * n_post))
        stacked = append_rows(self.connectivity, rows, index * n_post, shape[1])
        del rows
        index_type = np.int32 if stacked.nnz < 2**31 else np.int64
        self._shape, self._indptr = shape, stacked.indptr.astype(index_type)
        # New arrays, not new values of the old ones (brainpy would set a variable attribute's
        # value). The old arrays go first and each new one replaces its NumPy source at once,
        # so that the stacked connectivity exists at most twice at any moment.
        self.__dict__.pop("_indices", None)
        self.__dict__.pop("_data", None)
        self._host = None
        indices, data = stacked.indices, stacked.data
        del stacked
        indices = jnp.asarray(indices, dtype=index_type)
        self._indices = argument_state(indices)
        data = jnp.asarray(data)
        self._data = argument_state(data)
        self._host = (indices, data)

    def rebuild(self) -> None:
        """Read every member's synapses again from its layer as it is now, and stack them anew.

        Call it outside jit after changing which synapses a member has (its ``comm``'s
        ``prob``, ``seed``, ``conn``, ...), which a fused call refuses to follow inside a
        step. Weights need no rebuild; a rebuild stores them again, so that steps no longer
        write the changed ones over the stored ones. Split over devices, the call is
        unsplit: call :func:`brainpy_halfproj.partition` again (which rebuilds what changed).

        Examples
        --------
        >>> import brainpy as bp
        >>> import brainpy_halfproj as bhp
        >>> post = bp.dyn.LifRef(40)
        >>> e = bhp.HalfProjAlignPostMg(bp.dnn.EventJitFPHomoLinear(30, 40, prob=0.1, weight=0.6, seed=1),
        ...                             bp.dyn.Expon.desc(40, tau=5.), bp.dyn.COBA.desc(E=0.), post, fused=True)
        >>> before = e.fused_call.connectivity.nnz
        >>> e.comm.prob = 0.3
        >>> e.fused_call.rebuild()
        >>> e.fused_call.connectivity.nnz > before
        True
        """
        live = [(m, m.proj()) for m in self._members]
        for m, proj in live:
            n_in, _ = comm_sizes(getattr(proj, "comm", None))
            if proj is not None and (type(proj.comm).__name__ not in EVENT_LAYERS or n_in != m.n_pre):
                raise ValueError(f"{who(proj)}: `comm` is now a {type(proj.comm).__name__} with {n_in} inputs, but "
                                 f"the projection was built fused for an event layer with {m.n_pre}; build the "
                                 f"model again.")
        # read every member first: a read-out that fails leaves the call as it was
        rows = [None if proj is None else read_connectivity(proj.comm, m.n_pre, self.post_size) for m, proj in live]
        for i in reversed(range(len(live))):
            if live[i][1] is None:  # a projection no longer alive: its events never come
                self.buffers.pop(i)
        self._members, self._shape, self._indptr = [], (0, 0), np.zeros(1, dtype=np.int64)
        self.use_kernel(None)
        for i, (m, proj) in enumerate(live):
            read, rows[i] = rows[i], None  # each read-out goes as it is stacked
            if proj is not None and read is not None:
                self._append(proj, m.group, read)
            del read

    def hand(self, proj: Any, x: Any) -> None:
        """Count ``proj``'s presynaptic events for the post group's next step."""
        index = next(i for i, m in enumerate(self._members) if m.proj() is proj)
        buffer = self.buffers[index]
        buffer.value = buffer.value + event_mask(x).astype(buffer.value.dtype)

    def update(self, *args: Any, **kwargs: Any) -> None:
        n = self.post_size
        counts = jnp.concatenate([buffer.value for buffer in self.buffers])
        for buffer in self.buffers:
            buffer.value = jnp.zeros_like(buffer.value)
        updates = self._weights_now()
        groups = self.groups
        if self.kernel is None:
            data = self._data.value
            for start, stop, weights in updates:
                data = data.at[start:stop].set(jnp.broadcast_to(jnp.asarray(weights, data.dtype), (stop - start,)))
            current = counts_csrmv(data, self._indices.value, self._indptr, counts, self._shape)
        else:
            current = self.kernel(counts, counts=True)
        current = current.reshape(len(groups), n)  # one row per merge group
        for i, group in enumerate(groups):
            group.syn.add_current(current[i])

    def _weights_now(self) -> list[tuple[int, int, Any]]:
        """``(start, stop, weights)`` for each member whose weights are not those stored."""
        updates = []
        for m in self._members:
            proj = m.proj()
            if proj is None:
                continue
            why = m.readout.changed(proj.comm)
            if why is not None:
                raise self._refusal(proj, why)
            if self.kernel is not None:  # the blocks on the devices hold the weights as read
                why = m.readout.weights_changed()
                if why is not None:
                    raise self._refusal(proj, why)
                continue
            try:
                weights = m.readout.weights_now(functools.partial(self._rows_of, m))
            except StaleReadOut as err:
                raise self._refusal(proj, str(err)) from None
            if weights is not None:
                updates.append((m.start, m.stop, weights))
        return updates

    def _rows_of(self, m: _Member) -> SparseRows:
        """A member's stored synapses (host arrays, its own columns)."""
        assert self._host is not None
        indices, data = (np.asarray(a) for a in self._host)
        indptr = self._indptr[m.row:m.row + m.n_pre + 1].astype(np.int64)
        return SparseRows(indptr - indptr[0], (indices[m.start:m.stop] - m.column).astype(np.int32),
                          data[m.start:m.stop], (m.n_pre, self.post_size))

    def _refusal(self, proj: Any, why: str) -> ValueError:
        if self.kernel is None:
            fix = (f"call {proj.name}.fused_call.rebuild() outside jit, which reads every member again "
                   f"(or build the model again)")
        else:
            fix = ("call brainpy_halfproj.partition(model, devices) again, which reads changed layers again "
                   "(the weights are stored split over the devices)")
        return ValueError(f"{who(proj)}: {why} after the fused call onto {self.post_name!r} read its synapses, "
                          f"and the call cannot follow that inside a step; {fix}.")

    def stale(self) -> str | None:
        """Why the stored connectivity no longer matches a member's layer, or ``None``."""
        for m in self._members:
            proj = m.proj()
            if proj is None:
                continue
            why = m.readout.changed(proj.comm) or m.readout.weights_changed()
            if why is not None:
                return f"{who(proj)}: {why}"
        return None

    def use_kernel(self, kernel: Any) -> None:
        """Make the call through ``kernel`` (a ``PartitionedCSR``); drop the one-device arrays."""
        self.kernel = kernel
        self.__dict__.pop("_indices", None)
        self.__dict__.pop("_data", None)
        self._indices = self._data = self._host = None

    def reset_state(self, *args: Any, **kwargs: Any) -> None:
        for buffer in self.buffers:
            buffer.value = jnp.zeros_like(buffer.value)


def fused_call_of(post: Any) -> FusedCall | None:
    """The post group's :class:`FusedCall`, or ``None``."""
    node = post.before_updates.get(_NAME) if hasattr(post, "before_updates") else None
    return node if isinstance(node, FusedCall) else None


def join_fused(proj: Any, post: Any, group: Any, rows: SparseRows) -> FusedCall:
    """Add ``proj`` (whose merge group is ``group``, whose read-out is ``rows``) to the post's fused call.

    Creates the call first if needed, placed first among the post's ``before_updates``,
    ahead of the merge groups it adds into, so that the synapses integrate this step's
    input in this step.
    """
    call = fused_call_of(post)
    if call is None:
        call = FusedCall(post)
        others = list(post.before_updates.items())
        post.before_updates.clear()
        post.before_updates[_NAME] = call
        for key, node in others:
            post.before_updates[key] = node
    call.add(proj, group, rows)
    return call
