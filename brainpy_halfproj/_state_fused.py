"""Fused merge groups on ``brainpy.state``: one event-kernel call per post group for its fused projections.

The ``brainpy.state`` sibling of ``_fused.py`` (read its docstring first: the reason, the
timing contract and the counting of events are the same, and so are the helpers used here:
:func:`~brainpy_halfproj._events.event_mask`, :func:`~brainpy_halfproj._events.counts_csrmv`,
:func:`~brainpy_halfproj._connectivity.append_rows`). What differs is where the pieces live:

* A plugin ``AlignPostProj`` built with ``fused=True`` whose ``comm`` is brainstate's
  ``EventFixedProb`` (``EventFixedNumConn``), or a ``SparseLinear`` over a ``CSR`` or a
  homogeneous JIT matrix, joins its post group's :class:`StateFusedCall`,
  stored first in ``post.before_updates`` (ahead of the merge groups it feeds). The member's
  ``update`` runs its modules and delay as upstream's does, then counts the events of the
  spikes into its rows of the call's one event buffer (a state of the call) instead of calling
  ``comm``. One buffer for all members, not one each: a loop-carried state costs XLA two copies
  per step whatever its size (the read, and the zeros written back), so 8 members onto a post
  cost 16 copies with a buffer each and 2 with one; a member's rows are rewritten by
  concatenating slices, which XLA fuses into one loop (an indexed ``.at[].add`` would be a
  scatter).
* When the post group updates, the call makes one ``counts_csrmv`` on the stacked
  connectivity (one row per presynaptic neuron of each member, one column block of the post's
  size per synapse it feeds) and hands each synapse its block with ``add_delta_input``,
  where upstream's projection hands the output of its own layer.
* Which synapses exist (``EventFixedProb``'s ``conn``: ``FixedNumPerPre`` indices, or a
  ``CSR``'s indices and row pointer when ``afferent_ratio < 1``; ``SparseLinear``'s
  ``spar_mat``: a ``CSR``, or the synapses a JIT matrix realises, from brainevent's
  ``tocsr()``) is read once, when the member joins; a layer whose ``conn``/``spar_mat`` was
  replaced afterwards is refused at the next trace, with the fix
  (:meth:`StateFusedCall.rebuild`). What they weigh is read from the layer's ``weight``
  ``ParamState`` every time the step is traced, in the unit of the synapse's first member
  and the weight's own dtype, so weight edits, training and ``x64`` follow as unfused.

Inputs the counting cannot represent (graded events such as brainevent's ``WeightedArray``,
batched spikes with more than one axis, float values handed to a ``SparseLinear``, which
weighs them) take the member's own ``comm`` call in that step,
with a warning: the result is upstream's, only not fused.

Upstream refuses a second call of one projection before its post updates (the synapse's
``add_delta_input`` raises ``Key ... has been defined and used``); a fused member counts every
call, as its layer would add the outputs of every call.
"""
from __future__ import annotations

import dataclasses
import warnings
import weakref
from typing import Any

import brainevent
import brainstate
import brainunit as u
import jax.numpy as jnp
import numpy as np

from ._connectivity import SparseRows, append_rows
from ._events import counts_csrmv, event_mask

__all__ = ["StateFusedCall", "MemberBuffer", "state_fused_call_of", "why_not_state_fused", "join_state_fused"]

_NAME = "halfproj_fused"


#: brainevent's event arrays (a ``BinaryArray`` is counted; any other kind takes the layer's own call).
_EVENT_TYPES = tuple(getattr(brainevent, n) for n in ("EventRepresentation", "WeightedArray", "MaskedFloat")
                     if hasattr(brainevent, n))

#: brainevent's homogeneous just-in-time matrices, which ``SparseLinear`` may hold (one scalar weight).
_JIT_SCALAR = tuple(getattr(brainevent, n) for n in ("JITCScalarR", "JITCScalarC") if hasattr(brainevent, n))


def _structure(comm: Any) -> Any:
    """The object that decides which synapses ``comm`` has (its identity is checked at each trace)."""
    return comm.conn if isinstance(comm, brainstate.nn.EventFixedNumConn) else comm.spar_mat


def _weight(comm: Any) -> Any:
    """``comm``'s weight as the layer uses it now (a scalar, or one value per synapse)."""
    return comm.weight.value if isinstance(comm, brainstate.nn.EventFixedNumConn) else comm.weight.value["weight"]


def _conn_rows(comm: Any) -> tuple[SparseRows, tuple[int, ...]]:
    """The synapses of ``comm`` as rows (presynaptic neurons), weights left out, and its weights' shape.

    ``EventFixedNumConn``: its ``FixedNumPerPre`` indices or its ``CSR``; ``SparseLinear``: its
    ``CSR``, or the synapses its homogeneous JIT matrix realises (brainevent's ``tocsr()``).
    """
    conn = _structure(comm)
    n_pre, n_post = (int(s) for s in conn.shape)
    if isinstance(conn, brainevent.FixedNumPerPre):  # indices (n_pre, conn_num)
        indices = np.asarray(conn.indices)
        layout: tuple[int, ...] = indices.shape
        indptr = np.arange(n_pre + 1, dtype=np.int64) * indices.shape[1]
        indices = indices.reshape(-1)
    else:
        csr = conn if isinstance(conn, brainevent.CSR) else conn.tocsr()
        indptr, indices = np.asarray(csr.indptr, dtype=np.int64), np.asarray(csr.indices)
        layout = (indices.size,) if isinstance(conn, brainevent.CSR) else ()
    return SparseRows(indptr, indices.astype(np.int32), np.zeros(indices.size, np.float32), (n_pre, n_post)), layout


def why_not_state_fused(comm: Any, post: Any, merging: bool) -> str | None:
    """``None`` if a projection with ``comm`` can be fused onto ``post``, else the reason."""
    if not merging:
        return "syn and out are instances (no merge group): fused calls feed merge groups"
    if isinstance(comm, brainstate.nn.EventFixedNumConn):
        if comm.conn_num < 1:
            return "comm has no synapses (conn_num < 1)"
        if not isinstance(getattr(comm, "conn", None), (brainevent.FixedNumPerPre, brainevent.CSR)):
            return f"comm's connectivity is a {type(getattr(comm, 'conn', None)).__name__}, not FixedNumPerPre or CSR"
    elif isinstance(comm, brainstate.nn.SparseLinear):
        if not isinstance(comm.spar_mat, (brainevent.CSR, *_JIT_SCALAR)):
            return (f"comm is a SparseLinear over a {type(comm.spar_mat).__name__}; fused calls take a CSR or a "
                    f"homogeneous JIT matrix (brainevent.JITCScalarR/C)")
        if "bias" in comm.weight.value:
            return "comm is a SparseLinear with a bias, which a fused call does not add"
    else:
        return (f"comm is a {type(comm).__name__}, not an event layer (brainstate.nn.EventFixedProb, also called "
                f"EventFixedNumConn, or a SparseLinear over a CSR or homogeneous JIT matrix)")
    if len(post.varshape) != 1:
        return f"the post group has shape {tuple(post.varshape)}; fused calls need a 1-D group"
    return None


def _unit_of(weight: Any) -> Any:
    return u.get_unit(weight)


def _in_unit(weight: Any, unit: Any, who: str) -> Any:
    """The mantissa of ``weight`` in ``unit`` (its dtype kept)."""
    if isinstance(weight, u.Quantity):
        if not u.get_unit(weight).has_same_dim(unit):
            raise ValueError(f"{who}: its weight is now in {u.get_unit(weight)}, but the fused call adds it into a "
                             f"synapse whose inputs are in {unit}; give the weight in a unit of {unit}'s dimension, "
                             f"or build the projection with fused=False.")
        return weight.to_decimal(unit)
    if not unit.is_unitless:
        raise ValueError(f"{who}: its weight is now a number without unit, but the fused call adds it into a "
                         f"synapse whose inputs are in {unit}; give the weight in {unit}.")
    return jnp.asarray(weight)


@dataclasses.dataclass
class _Member:
    """One fused projection: its rows, its synapses in the stacked data, the synapse it feeds."""

    proj: weakref.ref
    syn: Any
    row: int  # its rows: row:row + n_pre
    n_pre: int
    start: int  # its synapses: start:stop
    stop: int
    conn: Any  # the layer's connectivity as read (identity: a replaced one is refused)
    shape: tuple[int, ...]  # the shape of its weights (FixedNumPerPre: (n_pre, conn_num); a JIT matrix: ())
    any_input: bool  # EventFixedNumConn: any input is events; SparseLinear: events only if handed as such


class StateFusedCall(brainstate.nn.Module):
    """One event-kernel call per step for the fused ``AlignPostProj`` onto one ``brainpy.state`` group.

    Built by the first plugin ``AlignPostProj(..., fused=True)`` onto a post group; reach it
    with ``proj.fused_call`` or :func:`~brainpy_halfproj.merge_report`.

    Attributes
    ----------
    buffer
        A ``brainstate.ShortTermState``: the events each member was handed since the post
        group's last update, counted per presynaptic neuron, one block of rows per member in
        joining order (``buffers[i]`` views member ``i``'s block).

    Examples
    --------
    >>> import brainstate, brainunit as u
    >>> import brainpy_halfproj.state as bst
    >>> post = bst.LIF(40)
    >>> e = bst.AlignPostProj(comm=brainstate.nn.EventFixedProb(30, 40, conn_num=0.1, conn_weight=0.6 * u.nS),
    ...                       syn=bst.Expon.desc(40, tau=5. * u.ms), out=bst.COBA.desc(E=0. * u.mV), post=post,
    ...                       fused=True)
    >>> i = bst.AlignPostProj(comm=brainstate.nn.EventFixedProb(10, 40, conn_num=0.1, conn_weight=6.7 * u.nS),
    ...                       syn=bst.Expon.desc(40, tau=10. * u.ms), out=bst.COBA.desc(E=-80. * u.mV), post=post,
    ...                       fused=True)
    >>> e.fused_call is i.fused_call, len(e.fused_call.groups), e.fused_call.shape
    (True, 2, (40, 80))
    """

    graph_invisible_attrs = ("_members", "_units", "_indptr", "_indices", "post_size", "post_name", "_shape")
    _members: Any = ()

    def __init__(self, post: Any):
        super().__init__()
        self.post_size = int(np.prod(post.varshape))
        self.post_name = post.name or f"{type(post).__name__}({self.post_size})"
        self._members: list[_Member] = []
        self._units: list[Any] = []  # the unit of each synapse's input, in column order
        self._shape = (0, 0)
        # The row pointer is a constant (the kernel plans its work from it when the program is
        # traced); the column indices are a state hidden from the graph (so from checkpoints),
        # which compiled programs take as an argument instead of embedding a copy.
        self._indptr = np.zeros(1, dtype=np.int32)
        self._indices = brainstate.State(jnp.zeros(0, dtype=jnp.int32))
        self.buffer = brainstate.ShortTermState(jnp.zeros(0, dtype=jnp.int32))

    @property
    def buffers(self) -> list[MemberBuffer]:
        """One view per member, in joining order, of its block of ``buffer`` (``.value`` reads and writes it)."""
        return [MemberBuffer(self, m.row, m.n_pre) for m in self._members]

    @property
    def projections(self) -> list:
        """The live member projections, in the order they joined."""
        return [p for p in (m.proj() for m in self._members) if p is not None]

    @property
    def groups(self) -> list:
        """The synapses the call adds into, in column order."""
        groups: list = []
        for m in self._members:
            if not any(g is m.syn for g in groups):
                groups.append(m.syn)
        return groups

    @property
    def shape(self) -> tuple[int, int]:
        """``(presynaptic rows, post columns)`` of the stacked connectivity."""
        return self._shape

    @property
    def connectivity(self) -> SparseRows:
        """The stacked connectivity with the weights as they are now (mantissas, one unit per synapse)."""
        return SparseRows(self._indptr, np.asarray(self._indices.value), np.asarray(self._data()), self._shape)

    def add(self, proj: Any) -> None:
        """Add ``proj`` (a plugin ``AlignPostProj``): its synapses are stacked under the others'."""
        self._append(proj)
        counted = self.buffer.value  # the members before it keep their events
        self.buffer = brainstate.ShortTermState(
            jnp.concatenate([counted, jnp.zeros(self._members[-1].n_pre, dtype=counted.dtype)]))

    def _append(self, proj: Any) -> None:
        comm, syn = proj.comm, proj.syn
        rows, layout = _conn_rows(comm)
        groups = self.groups
        index = next((i for i, g in enumerate(groups) if g is syn), len(groups))
        if index == len(groups):
            self._units.append(_unit_of(_weight(comm)))
        n_post = self.post_size
        shape = (self._shape[0] + rows.shape[0], max(len(groups), index + 1) * n_post)
        start = int(self._indptr[-1])
        self._members.append(_Member(weakref.ref(proj), syn, self._shape[0], rows.shape[0], start,
                                     start + rows.nnz, _structure(comm), layout,
                                     isinstance(comm, brainstate.nn.EventFixedNumConn)))
        indices = np.asarray(self._indices.value)
        top = SparseRows(self._indptr.astype(np.int64), indices, np.zeros(indices.size, np.float32), self._shape)
        stacked = append_rows(top, rows, index * n_post, shape[1])
        index_type = np.int32 if stacked.nnz < 2**31 else np.int64
        self._shape = shape
        self._indptr = stacked.indptr.astype(index_type)
        self._indices = brainstate.State(jnp.asarray(stacked.indices, dtype=index_type))

    def unit_mismatch(self, proj: Any) -> str | None:
        """Why ``proj``'s weight cannot be added into its synapse's column block, or ``None``."""
        index = next((i for i, g in enumerate(self.groups) if g is proj.syn), None)
        unit = _unit_of(_weight(proj.comm))
        if index is None or unit.has_same_dim(self._units[index]):
            return None
        return (f"its weight is in {unit}, but the synapse's other fused inputs are in {self._units[index]} "
                f"(another dimension)")

    def rebuild(self) -> None:
        """Read every member's connectivity again from its layer as it is now, and stack it anew.

        Call it outside jit after replacing a member's ``comm.conn`` or ``comm.spar_mat`` (which a fused call
        refuses to follow inside a step). Weights need no rebuild: they are read every trace.

        Examples
        --------
        >>> import brainstate, brainunit as u
        >>> import brainpy_halfproj.state as bst
        >>> post = bst.LIF(40)
        >>> e = bst.AlignPostProj(comm=brainstate.nn.EventFixedProb(30, 40, conn_num=0.1, conn_weight=0.6 * u.nS),
        ...                       syn=bst.Expon.desc(40, tau=5. * u.ms), out=bst.COBA.desc(E=0. * u.mV), post=post,
        ...                       fused=True)
        >>> e.comm = brainstate.nn.EventFixedProb(30, 40, conn_num=0.2, conn_weight=0.6 * u.nS)
        >>> e.fused_call.rebuild()
        >>> e.fused_call.connectivity.nnz
        240
        """
        live = [(p, b.value) for p, b in zip((m.proj() for m in self._members), self.buffers, strict=True)
                if p is not None]
        for proj, _ in live:
            why = why_not_state_fused(proj.comm, proj.post, True)
            if why is not None:
                raise ValueError(f"{proj.name}: cannot rebuild the fused call onto {self.post_name}: {why}; build "
                                 f"the model again (with fused=False for this projection).")
        self._members, self._units, self._shape = [], [], (0, 0)
        self._indptr, self._indices = np.zeros(1, dtype=np.int32), brainstate.State(jnp.zeros(0, dtype=jnp.int32))
        for proj, _ in live:
            self._append(proj)
        # a live member's events stay counted (the state is the same one: programs traced before see it)
        self.buffer.value = jnp.concatenate([jnp.zeros(0, dtype=jnp.int32), *(counted for _, counted in live)])

    def hand(self, proj: Any, x: Any) -> bool:
        """Count ``proj``'s presynaptic events for the post group's next update.

        Returns ``False`` (nothing counted) for an input that events cannot represent: the
        caller then makes the member's own call.
        """
        index, m = next((i, m) for i, m in enumerate(self._members) if m.proj() is proj)
        events = isinstance(x, brainevent.BinaryArray)  # brainevent 0.3's EventArray too
        if events:
            x = x.value
        if not (events or m.any_input):
            kind = getattr(x, "dtype", type(x).__name__)
            warnings.warn(f"{proj.name}: its SparseLinear multiplies a {kind} input by its values, which event "
                          f"counts cannot represent; this call is not fused (the layer's own call is made). Hand it "
                          f"spikes as brainevent.BinaryArray (e.g. the module brainevent.BinaryArray before comm).",
                          stacklevel=3)
            return False
        graded = not events and isinstance(x, _EVENT_TYPES)  # brainevent's WeightedArray, say: values matter
        if graded or isinstance(x, u.Quantity) or not hasattr(x, "dtype") or np.shape(x) != (m.n_pre,):
            warnings.warn(f"{proj.name}: input {type(x).__name__} of shape {np.shape(x)} is not a spike vector of "
                          f"shape ({m.n_pre},); this call is not fused (the layer's own call is made).",
                          stacklevel=3)
            return False
        counted = self.buffer.value
        block = counted[m.row:m.row + m.n_pre] + event_mask(x).astype(counted.dtype)
        self.buffer.value = jnp.concatenate([counted[:m.row], block, counted[m.row + m.n_pre:]])
        return True

    def _data(self) -> Any:
        """The stacked weights now: each member's ``weight`` read in its synapse's unit."""
        if not self._members:
            return jnp.zeros(0, dtype=brainstate.environ.dftype())
        groups = self.groups
        parts = []
        for m in self._members:
            proj = m.proj()
            if proj is None:  # a projection no longer alive: its synapses stay, its events never come
                parts.append(jnp.zeros(m.stop - m.start, dtype=brainstate.environ.dftype()))
                continue
            if _structure(proj.comm) is not m.conn:
                what = "comm.conn" if m.any_input else "comm.spar_mat"
                raise ValueError(
                    f"{proj.name}: {what} (which synapses exist) changed after the fused call onto "
                    f"{self.post_name} read it, and the call cannot follow that inside a step; call "
                    f"{proj.name}.fused_call.rebuild() outside jit, which reads every member again (or build "
                    f"the model again).")
            unit = self._units[next(i for i, g in enumerate(groups) if g is m.syn)]
            weight = _in_unit(_weight(proj.comm), unit, proj.name)
            try:
                weight = jnp.broadcast_to(jnp.broadcast_to(weight, m.shape).reshape(-1), (m.stop - m.start,))
            except ValueError:
                raise ValueError(f"{proj.name}: comm.weight has shape {np.shape(weight)}, but its layer's "
                                 f"synapses need a scalar or shape {m.shape}; set a weight of that shape.") from None
            parts.append(weight)
        dtype = jnp.result_type(*parts)
        return jnp.concatenate([p.astype(dtype) for p in parts])

    def update(self, *args: Any, **kwargs: Any) -> None:
        counts = self.buffer.value
        self.buffer.value = jnp.zeros_like(counts)
        current = counts_csrmv(self._data(), self._indices.value, self._indptr, counts, self._shape)
        current = current.reshape(-1, self.post_size)  # one row per synapse
        for i, syn in enumerate(self.groups):
            syn.add_delta_input(_NAME, u.maybe_decimal(current[i] * self._units[i]))

    def reset_state(self, *args: Any, **kwargs: Any) -> None:
        self.buffer.value = jnp.zeros_like(self.buffer.value)


class MemberBuffer:
    """One member's block of rows in a :class:`StateFusedCall`'s event buffer, read and written as ``.value``.

    Examples
    --------
    >>> import brainstate, brainunit as u
    >>> import brainpy_halfproj.state as bst
    >>> proj = bst.AlignPostProj(comm=brainstate.nn.EventFixedProb(8, 20, conn_num=0.5, conn_weight=1. * u.pA),
    ...                          syn=bst.Expon.desc(20, tau=2. * u.ms), out=bst.CUBA.desc(), post=bst.LIF(20),
    ...                          fused=True)
    >>> view = proj.fused_call.buffers[0]  # the only member: the whole buffer
    >>> view.value = view.value.at[3].set(2)
    >>> int(proj.fused_call.buffer.value[3]), view.value.shape
    (2, (8,))
    """

    def __init__(self, call: StateFusedCall, row: int, n_pre: int):
        self.call, self.row, self.n_pre = call, row, n_pre

    @property
    def value(self) -> Any:
        return self.call.buffer.value[self.row:self.row + self.n_pre]

    @value.setter
    def value(self, value: Any) -> None:
        counted = self.call.buffer.value
        value = jnp.broadcast_to(jnp.asarray(value, dtype=counted.dtype), (self.n_pre,))
        self.call.buffer.value = jnp.concatenate([counted[:self.row], value, counted[self.row + self.n_pre:]])


def state_fused_call_of(post: Any) -> StateFusedCall | None:
    """The post group's :class:`StateFusedCall`, or ``None``."""
    node = (post.before_updates or {}).get(_NAME)
    return node if isinstance(node, StateFusedCall) else None


def join_state_fused(proj: Any) -> StateFusedCall:
    """Add ``proj`` (built, with its merge group) to its post's fused call; create the call first if needed.

    A new call is placed first among the post's ``before_updates``, ahead of the merge groups
    it adds into, so that the synapses integrate this update's input in this update.
    """
    post = proj.post
    call = state_fused_call_of(post)
    if call is None:
        call = StateFusedCall(post)
        others = list(post.before_updates.items()) if post.before_updates else []
        post.add_before_update(_NAME, call)
        entries = post.before_updates
        entries.clear()
        entries[_NAME] = call
        entries.update(others)
    call.add(proj)
    return call
