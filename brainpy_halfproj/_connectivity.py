"""The synapses a ``comm`` layer realises, read out as an explicit sparse matrix.

Fused merge groups (one kernel call for many projections) and partitioned models (each
device holds the columns of its post neurons) both need each projection's connectivity as
data. A just-in-time layer (``bp.dnn.EventJitFP*Linear``) has none: it regenerates its
synapses from a seed on every call. This module reads out exactly the synapses the layer's
own kernel realises, as a CSR matrix whose rows are presynaptic neurons:

* CSR layers (``bp.dnn.EventCSRLinear``): their indices, index pointers and weights;
* JIT layers (``bp.dnn.EventJitFP*Linear``): the layer's own kernel applied to one-hot
  spike vectors, one presynaptic neuron at a time (``jax.lax.map``); row ``i`` of the
  result is what one spike of neuron ``i`` adds to each post neuron, value for value.
  (brainevent's ``tocsr()`` gives the same matrix on brainpy 2.8/2.9 - the tests check it -
  but compiles two more kernels for every shape, which costs more than it saves.)

No kernel is written here: every path calls the layer's own kernel library. Reading out a
JIT layer costs one kernel call per presynaptic neuron, plus numba's compilation of the
layer's kernel for its shape (seconds) when nothing else has compiled it yet.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

__all__ = ["SparseRows", "EVENT_LAYERS", "read_connectivity", "append_rows", "stack_blocks"]

#: ``bp.dnn`` layers whose input is a spike vector and whose kernel is event-driven.
EVENT_LAYERS: tuple[str, ...] = ("EventCSRLinear", "EventJitFPHomoLinear", "EventJitFPNormalLinear",
                                 "EventJitFPUniformLinear")

_PROBE_CHUNK = 256


@dataclasses.dataclass(frozen=True)
class SparseRows:
    """A CSR matrix with one row per presynaptic neuron: ``current = spikes @ matrix``.

    Attributes
    ----------
    indptr, indices, data
        CSR arrays (``int64``, ``int32``, ``float32``); row ``i`` holds the post neurons
        ``indices[indptr[i]:indptr[i+1]]`` and weights ``data[...]`` of presynaptic neuron ``i``.
    shape
        ``(n_pre, n_post)``.
    """

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    shape: tuple[int, int]

    @property
    def nnz(self) -> int:
        """Number of stored synapses."""
        return int(self.indices.size)

    @property
    def nbytes(self) -> int:
        """Memory the three arrays take."""
        return int(self.indptr.nbytes + self.indices.nbytes + self.data.nbytes)

    def todense(self) -> np.ndarray:
        """The ``(n_pre, n_post)`` dense matrix (for tests and small models)."""
        out = np.zeros(self.shape, dtype=self.data.dtype)
        rows = np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))
        np.add.at(out, (rows, self.indices), self.data)
        return out

    def columns(self, start: int, stop: int) -> SparseRows:
        """The block of post neurons ``start:stop`` (indices renumbered from 0)."""
        keep = (self.indices >= start) & (self.indices < stop)
        rows = np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))[keep]
        indptr = np.zeros(self.shape[0] + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=self.shape[0]), out=indptr[1:])
        return SparseRows(indptr, (self.indices[keep] - start).astype(np.int32), self.data[keep],
                          (self.shape[0], stop - start))


def _from_coo(rows: np.ndarray, cols: np.ndarray, data: np.ndarray, shape: tuple[int, int]) -> SparseRows:
    """CSR from coordinates, ordered by row and then by column."""
    order = np.lexsort((cols, rows))
    indptr = np.zeros(shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=shape[0]), out=indptr[1:])
    return SparseRows(indptr, cols[order].astype(np.int32), np.asarray(data, dtype=np.float32)[order], shape)


def _csr_layer(comm: Any, n_pre: int, n_post: int) -> SparseRows:
    indptr, indices = np.asarray(comm.indptr), np.asarray(comm.indices)
    weight = np.asarray(getattr(comm.weight, "value", comm.weight), dtype=np.float32)
    data = np.broadcast_to(weight, indices.shape)
    rows = np.repeat(np.arange(indptr.size - 1), np.diff(indptr))
    if comm.transpose:  # rows of the stored matrix are presynaptic
        return _from_coo(rows, indices, data, (n_pre, n_post))
    return _from_coo(indices, rows, data, (n_pre, n_post))


def _probe(comm: Any, n_pre: int, n_post: int) -> SparseRows:
    """Row ``i``: the layer's output for a spike of presynaptic neuron ``i`` alone.

    Chunks of rows are turned into CSR directly (``np.nonzero`` runs row-major, so each
    chunk's columns come sorted): memory stays at the synapses plus one dense chunk.
    """
    import jax
    import jax.numpy as jnp

    # One compiled program for all chunks, owned by this call: programs that eager
    # ``lax.map`` would compile stay in JAX's global caches (tens of MB per layer).
    chunk = min(_PROBE_CHUNK, n_pre)
    probe = jax.jit(lambda rows: jax.lax.map(lambda i: comm(jnp.arange(n_pre) == i), rows))
    counts, indices, data = [], [], []
    for start in range(0, n_pre, chunk):
        stop = min(start + chunk, n_pre)
        rows = np.minimum(np.arange(start, start + chunk), n_pre - 1)  # the last chunk padded
        block = np.asarray(probe(rows))[:stop - start]
        r, c = np.nonzero(block)
        counts.append(np.bincount(r, minlength=stop - start))
        indices.append(c.astype(np.int32))
        data.append(block[r, c].astype(np.float32))
        del block, r, c
    indptr = np.zeros(n_pre + 1, dtype=np.int64)
    np.cumsum(np.concatenate(counts), out=indptr[1:])
    return SparseRows(indptr, np.concatenate(indices), np.concatenate(data), (n_pre, n_post))


def read_connectivity(comm: Any, n_pre: int, n_post: int) -> SparseRows:
    """The synapses ``comm`` realises, as :class:`SparseRows` of shape ``(n_pre, n_post)``.

    Parameters
    ----------
    comm
        An event layer, one of :data:`EVENT_LAYERS`.
    n_pre, n_post
        Its input and output sizes.

    Raises
    ------
    TypeError
        If ``comm`` is not one of :data:`EVENT_LAYERS`.

    Examples
    --------
    >>> import brainpy as bp
    >>> from brainpy_halfproj._connectivity import read_connectivity
    >>> comm = bp.dnn.EventJitFPHomoLinear(30, 40, prob=0.1, weight=0.5, seed=1)
    >>> rows = read_connectivity(comm, 30, 40)
    >>> rows.shape, bool((rows.data == 0.5).all())
    ((30, 40), True)
    """
    kind = type(comm).__name__
    if kind not in EVENT_LAYERS:
        raise TypeError(f"read_connectivity: `comm` must be one of bp.dnn.{', '.join(EVENT_LAYERS)}, "
                        f"but got a {kind}.")
    if kind == "EventCSRLinear":
        return _csr_layer(comm, n_pre, n_post)
    return _probe(comm, n_pre, n_post)


def append_rows(top: SparseRows, bottom: SparseRows, column: int, n_columns: int) -> SparseRows:
    """``top`` with ``bottom``'s rows below it, their columns shifted by ``column``.

    No sorting: rows keep their order and each row its sorted columns (``column`` is the
    same for all of ``bottom``), so this is one concatenation of each array.

    Examples
    --------
    >>> import numpy as np
    >>> from brainpy_halfproj._connectivity import SparseRows, append_rows
    >>> eye = SparseRows(np.array([0, 1, 2]), np.array([0, 1], np.int32), np.ones(2, np.float32), (2, 2))
    >>> append_rows(eye, eye, 2, 4).todense().astype(int).tolist()
    [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    """
    if column + bottom.shape[1] > n_columns or top.shape[1] > n_columns:
        raise ValueError(f"append_rows: blocks of {top.shape[1]} and {column}+{bottom.shape[1]} columns "
                         f"do not fit in {n_columns}")
    indptr = np.concatenate([top.indptr, bottom.indptr[1:] + top.indptr[-1]])
    indices = np.concatenate([top.indices, (bottom.indices + column).astype(top.indices.dtype)])
    return SparseRows(indptr, indices, np.concatenate([top.data, bottom.data]),
                      (top.shape[0] + bottom.shape[0], n_columns))


def stack_blocks(blocks: list[tuple[SparseRows, int, int]], shape: tuple[int, int]) -> SparseRows:
    """One matrix from blocks placed at ``(row_offset, col_offset)`` in a matrix of ``shape``.

    Examples
    --------
    >>> import numpy as np
    >>> from brainpy_halfproj._connectivity import SparseRows, stack_blocks
    >>> eye = SparseRows(np.array([0, 1, 2]), np.array([0, 1], np.int32), np.ones(2, np.float32), (2, 2))
    >>> stack_blocks([(eye, 0, 0), (eye, 2, 2)], (4, 4)).todense().astype(int).tolist()
    [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    """
    rows, cols, data = [], [], []
    for block, r0, c0 in blocks:
        r = np.repeat(np.arange(block.shape[0]), np.diff(block.indptr))
        rows.append(r + r0)
        cols.append(block.indices.astype(np.int64) + c0)
        data.append(block.data)
    if not rows:
        return SparseRows(np.zeros(shape[0] + 1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32), shape)
    return _from_coo(np.concatenate(rows), np.concatenate(cols), np.concatenate(data), shape)
