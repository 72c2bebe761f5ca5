"""The synapses a ``comm`` layer realises, read out once, and what they weigh now.

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

Structure once, weights when the step is traced
-----------------------------------------------
The user may change a layer after it was read out (``proj.comm.weight = 0.8``, or a
``bm.TrainVar`` weight that training updates). Its unfused call would use the new value,
so a read-out must too. :class:`ReadOut` keeps what the stored synapses were read from and
answers, when a step is traced, with the weights as they are now:

* *which* synapses exist (shape, ``prob``, ``seed``, ``transpose``, ``atomic``, a CSR
  layer's indices) is read once. A change is refused (:meth:`ReadOut.check`) with what
  changed and how to read the layer again: a kernel's work plan is built from the row
  pointer when the program is traced, so the structure cannot be swapped inside a step.
* *what they weigh* follows the layer: ``None`` while the weights are those read (the
  stored values are used, no cost per step); otherwise the weights now, computed in the
  step: a homogeneous weight (``weight`` of a JIT layer, a scalar CSR weight) as that
  scalar; a CSR weight array as that array; normal and uniform JIT weights read again with
  the layer's own kernel (exact; compiled into the program until the layer is read again),
  or, when they are held in variables (traced), as ``w_mu + w_sigma * z`` and
  ``w_low + (w_high - w_low) * u`` from the standard draws ``z``, ``u`` that the kernel
  realises (read with ``(0, 1)``). That formula gives the kernel's values up to float
  rounding: brainevent (brainpy 2.8/2.9) rounds ``w_mu + w_sigma * z`` once from double
  precision, a float32 step rounds twice (one unit in the last place at most); brainpylib
  (2.5) computes in float32, as the step does.

A synapse whose weight is exactly 0 when the layer is read is not stored (a read-out cannot
tell it from no synapse). A homogeneous JIT layer is therefore read with unit weight, so
its synapses are all found whatever its weight; for normal and uniform weights, a stored
read-out that misses a synapse which now has a weight is refused (read the layer again).
"""
from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from typing import Any

import brainpy.math as bm
import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["SparseRows", "EVENT_LAYERS", "read_connectivity", "append_rows", "ReadOut", "StaleReadOut"]

#: ``bp.dnn`` layers whose input is a spike vector and whose kernel is event-driven.
EVENT_LAYERS: tuple[str, ...] = ("EventCSRLinear", "EventJitFPHomoLinear", "EventJitFPNormalLinear",
                                 "EventJitFPUniformLinear")

#: The attributes that decide which synapses a layer has (read once).
STRUCTURE: dict[str, tuple[str, ...]] = {
    "EventCSRLinear": ("indices", "indptr", "transpose"),
    "EventJitFPHomoLinear": ("num_in", "num_out", "prob", "seed", "transpose", "atomic"),
    "EventJitFPNormalLinear": ("num_in", "num_out", "prob", "seed", "transpose", "atomic"),
    "EventJitFPUniformLinear": ("num_in", "num_out", "prob", "seed", "transpose", "atomic"),
}

#: The attributes that decide what the synapses weigh (followed when a step is traced).
WEIGHTS: dict[str, tuple[str, ...]] = {
    "EventCSRLinear": ("weight",),
    "EventJitFPHomoLinear": ("weight",),
    "EventJitFPNormalLinear": ("w_mu", "w_sigma"),
    "EventJitFPUniformLinear": ("w_low", "w_high"),
}

#: brainpy's kernel behind each JIT layer (``bm.jitconn.<name>``), called as the layer calls it.
_JIT_KERNELS = {"EventJitFPHomoLinear": "event_mv_prob_homo", "EventJitFPNormalLinear": "event_mv_prob_normal",
                "EventJitFPUniformLinear": "event_mv_prob_uniform"}

_PROBE_CHUNK = 256


@dataclasses.dataclass(frozen=True)
class SparseRows:
    """A CSR matrix with one row per presynaptic neuron: ``current = spikes @ matrix``.

    What ``read_connectivity`` (``brainpy_halfproj._connectivity``) returns, and what
    :attr:`FusedCall.connectivity <brainpy_halfproj.FusedCall.connectivity>` and
    :meth:`PartitionedCSR.to_rows <brainpy_halfproj.PartitionedCSR.to_rows>` give.

    Attributes
    ----------
    indptr, indices, data
        CSR arrays (``int64``, ``int32``, the layer's float type); row ``i`` holds the post
        neurons ``indices[indptr[i]:indptr[i+1]]`` (ascending) and weights ``data[...]`` of
        presynaptic neuron ``i``.
    shape
        ``(n_pre, n_post)``.

    Examples
    --------
    >>> import numpy as np
    >>> import brainpy_halfproj as bhp
    >>> rows = bhp.SparseRows(np.array([0, 2, 3]), np.array([0, 3, 1], np.int32),
    ...                       np.array([1., 2., 4.], np.float32), (2, 4))
    >>> rows.nnz, rows.todense().tolist()
    (3, [[1.0, 0.0, 0.0, 2.0], [0.0, 4.0, 0.0, 0.0]])
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


def _order(rows: np.ndarray, cols: np.ndarray) -> np.ndarray | None:
    """The permutation that sorts coordinates by row and then column; ``None`` if they are sorted."""
    if rows.size < 2 or ((np.diff(rows) > 0) | ((np.diff(rows) == 0) & (np.diff(cols) >= 0))).all():
        return None
    return np.lexsort((cols, rows))


def _csr_coordinates(comm: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(pre, post)`` of every synapse of a CSR layer, in the order of its weight array."""
    indptr, indices = np.asarray(comm.indptr), np.asarray(comm.indices)
    rows = np.repeat(np.arange(indptr.size - 1), np.diff(indptr))
    return (rows, indices) if comm.transpose else (indices, rows)  # transpose: stored rows are presynaptic


def _value(v: Any) -> Any:
    """A parameter's value: a variable's value, a brainpy array's JAX array, else ``v``."""
    return bm.as_jax(v.value) if isinstance(v, bm.Variable) else (bm.as_jax(v) if isinstance(v, bm.Array) else v)


def _csr_layer(comm: Any, n_pre: int, n_post: int, dtype: Any) -> SparseRows:
    pre, post = _csr_coordinates(comm)
    weight = np.asarray(_value(comm.weight), dtype=dtype)
    data = np.broadcast_to(weight, pre.shape)
    order = _order(pre, post)
    if order is not None:
        pre, post, data = pre[order], post[order], data[order]
    indptr = np.zeros(n_pre + 1, dtype=np.int64)
    np.cumsum(np.bincount(pre, minlength=n_pre), out=indptr[1:])
    return SparseRows(indptr, post.astype(np.int32), np.ascontiguousarray(data), (n_pre, n_post))


def _jit_call(comm: Any, weights: tuple) -> Callable[[Any], Any]:
    """``x -> `` the layer's own kernel with ``weights`` in place of its own (called as the layer calls it)."""
    kernel = getattr(bm.jitconn, _JIT_KERNELS[type(comm).__name__])
    return lambda x: kernel(x, *weights, comm.prob, comm.seed, shape=(comm.num_out, comm.num_in),
                            transpose=comm.transpose, outdim_parallel=not comm.atomic)


def _probe(layer: Callable[[Any], Any], n_pre: int, n_post: int, dtype: Any,
           at: SparseRows | None = None) -> SparseRows:
    """Row ``i``: what ``layer`` outputs for a spike of presynaptic neuron ``i`` alone.

    Without ``at``, the nonzero entries (chunks of rows are turned into CSR directly:
    ``np.nonzero`` runs row-major, so each chunk's columns come sorted; memory stays at the
    synapses plus one dense chunk). With ``at``, the values at ``at``'s synapses (zeros
    included), and ``ValueError`` if ``layer`` has a nonzero entry that ``at`` lacks.
    """
    # One compiled program for all chunks, owned by this call: programs that eager
    # ``lax.map`` would compile stay in JAX's global caches (tens of MB per layer).
    chunk = min(_PROBE_CHUNK, n_pre)
    probe = jax.jit(lambda rows: jax.lax.map(lambda i: layer(jnp.arange(n_pre) == i), rows))
    counts, indices, data = [], [], []
    for start in range(0, n_pre, chunk):
        stop = min(start + chunk, n_pre)
        rows = np.minimum(np.arange(start, start + chunk), n_pre - 1)  # the last chunk padded
        block = np.asarray(probe(rows))[:stop - start]
        if at is None:
            r, c = np.nonzero(block)
            counts.append(np.bincount(r, minlength=stop - start))
            indices.append(c.astype(np.int32))
            data.append(block[r, c].astype(dtype))
        else:
            lo, hi = int(at.indptr[start]), int(at.indptr[stop])
            r = np.repeat(np.arange(stop - start), np.diff(at.indptr[start:stop + 1]))
            values = block[r, at.indices[lo:hi]]
            if np.count_nonzero(block) != np.count_nonzero(values):
                raise StaleReadOut("its layer now gives weight to synapses that weighed exactly 0 when it was "
                                   "read, so they were not stored")
            data.append(values.astype(dtype))
        del block
    if at is not None:
        return SparseRows(at.indptr, at.indices, np.concatenate(data), at.shape)
    indptr = np.zeros(n_pre + 1, dtype=np.int64)
    np.cumsum(np.concatenate(counts), out=indptr[1:])
    return SparseRows(indptr, np.concatenate(indices), np.concatenate(data), (n_pre, n_post))


def output_dtype(comm: Any, n_pre: int) -> np.dtype:
    """The float type of ``comm``'s output for a spike vector (the model's float type)."""
    return np.dtype(jax.eval_shape(lambda x: bm.as_jax(comm(x)), jax.ShapeDtypeStruct((n_pre,), jnp.bool_)).dtype)


def read_connectivity(comm: Any, n_pre: int, n_post: int) -> SparseRows:
    """The synapses ``comm`` realises, as :class:`SparseRows` of shape ``(n_pre, n_post)``.

    Values are what one spike adds, in the layer's own float type (``float64`` under
    ``bm.enable_x64()``).

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
    dtype = output_dtype(comm, n_pre)
    if kind == "EventCSRLinear":
        return _csr_layer(comm, n_pre, n_post, dtype)
    if kind == "EventJitFPHomoLinear":
        # read with unit weight: every synapse is found whatever the layer's weight
        found = _probe(_jit_call(comm, (jnp.ones((), dtype),)), n_pre, n_post, dtype)
        data = np.full(found.nnz, _value(comm.weight), dtype=dtype)
        return SparseRows(found.indptr, found.indices, data, found.shape)
    if any(_is_variable(getattr(comm, name)) for name in WEIGHTS[kind]):
        # weights a step may change: find every synapse (unit weights), then read the values there
        unit = (jnp.ones((), dtype), jnp.zeros((), dtype) if kind == "EventJitFPNormalLinear" else jnp.ones((), dtype))
        return _probe(comm, n_pre, n_post, dtype, at=_probe(_jit_call(comm, unit), n_pre, n_post, dtype))
    return _probe(comm, n_pre, n_post, dtype)


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
    data = np.concatenate([top.data, bottom.data.astype(np.result_type(top.data, bottom.data))])
    return SparseRows(indptr, indices, data, (top.shape[0] + bottom.shape[0], n_columns))


# ----------------------------------------------------------------------------- following the layer


def _is_variable(v: Any) -> bool:
    """Whether a parameter's value may change inside a program: a variable, or a traced value."""
    return isinstance(v, (bm.Variable, jax.core.Tracer))


def _token(v: Any) -> Any:
    """A parameter as a comparable value: numbers by value, arrays by shape, dtype and content."""
    v = _value(v)
    if isinstance(v, (bool, int, float, str)) or v is None:
        return v
    if isinstance(v, jax.core.Tracer):
        return ("traced", id(v))
    arr = np.asarray(v)
    if arr.ndim == 0:
        return arr.item()
    return ("array", arr.shape, str(arr.dtype), hashlib.blake2b(np.ascontiguousarray(arr).tobytes()).hexdigest())


class StaleReadOut(ValueError):
    """The stored read-out of a layer cannot give its weights now; the layer must be read again."""


def _change(name: str, then: Any, now: Any) -> str:
    """``"`comm.prob` changed from 0.1 to 0.2"``; arrays by shape."""
    def text(v: Any) -> str:
        return f"an array of shape {v[1]}" if isinstance(v, tuple) and v and v[0] == "array" else repr(v)

    if text(then) == text(now):
        return f"`comm.{name}` changed (now {text(now)} with other values)"
    return f"`comm.{name}` changed from {text(then)} to {text(now)}"


class ReadOut:
    """One layer's synapses as read out, and what they weigh now (see the module docstring).

    Holds the layer and the parameters the read-out was made from, not the synapses (their
    owner stores them: a fused call's stacked matrix, a partitioned layer's blocks).

    Parameters
    ----------
    comm
        An event layer (:data:`EVENT_LAYERS`).
    rows
        Its read-out (:func:`read_connectivity`), from which the stored synapses come.
    """

    def __init__(self, comm: Any, rows: SparseRows):
        self.comm = comm
        self.kind = type(comm).__name__
        self.nnz = rows.nnz
        self.dtype = rows.data.dtype
        self.shape = rows.shape
        self.structure = self._structure()
        self.weights = self._weights()
        # CSR layers: the position of each weight of the layer's array in the read-out
        self._order = _order(*_csr_coordinates(comm)) if self.kind == "EventCSRLinear" else None
        self._cache: dict[Any, np.ndarray] = {}
        self.homogeneous = self.kind == "EventJitFPHomoLinear" or (
            self.kind == "EventCSRLinear" and np.ndim(_value(comm.weight)) == 0)
        """Whether every synapse weighs one scalar (a JIT homo layer, a scalar CSR weight), as read."""

    def _structure(self) -> tuple[tuple[str, Any], ...]:
        return tuple((name, _token(getattr(self.comm, name))) for name in STRUCTURE[self.kind])

    def _weights(self) -> tuple[tuple[str, Any], ...]:
        return tuple((name, _token(getattr(self.comm, name))) for name in WEIGHTS[self.kind])

    def changed(self, comm: Any) -> str | None:
        """What makes the stored synapses wrong for ``comm`` now (``None``: nothing)."""
        if comm is not self.comm:
            return f"`comm` was replaced by another layer ({type(comm).__name__} {comm.name!r})"
        for (name, then), (_, now) in zip(self.structure, self._structure(), strict=True):
            if then != now:
                return _change(name, then, now)
        return None

    def weights_changed(self) -> str | None:
        """Which weight attribute differs from the read-out (``None``: none, and none is a variable)."""
        for (name, then), (_, now) in zip(self.weights, self._weights(), strict=True):
            if _is_variable(getattr(self.comm, name)):
                return f"`comm.{name}` is a variable"
            if then != now:
                return _change(name, then, now)
        return None

    def weights_now(self, stored: Callable[[], SparseRows]) -> Any:
        """``None`` while the weights are those read; else the synapses' weights now, in read-out order.

        A scalar for homogeneous layers, else an array of ``nnz`` values (traced when the
        layer's weights are variables). ``stored()`` gives the stored synapses (host
        arrays), needed to read normal and uniform weights again.
        """
        if self.weights_changed() is None:
            return None
        values = [_value(getattr(self.comm, name)) for name in WEIGHTS[self.kind]]
        if self.kind in ("EventJitFPHomoLinear", "EventCSRLinear"):
            weight = jnp.asarray(values[0], self.dtype)
            if weight.ndim == 0:
                return weight
            if self.kind == "EventJitFPHomoLinear" or weight.shape != (self.nnz,):
                raise StaleReadOut(f"`comm.weight` is now an array of shape {tuple(weight.shape)}; give a scalar"
                                   + ("" if self.kind == "EventJitFPHomoLinear" else
                                      f" or one weight for each of the layer's {self.nnz} synapses"))
            return weight if self._order is None else weight[self._order]
        if not any(_is_variable(getattr(self.comm, name)) for name in WEIGHTS[self.kind]):
            return self._read(values, stored)  # new numbers: the kernel's own values, exactly
        a, b = values
        draws = self._read([0., 1.], stored)  # the standard draws z (normal) or u (uniform) the kernel realises
        b = b - a if self.kind == "EventJitFPUniformLinear" else b
        return (jnp.asarray(a, self.dtype) + jnp.asarray(b, self.dtype) * draws).astype(self.dtype)

    def _read(self, values: list, stored: Callable[[], SparseRows]) -> np.ndarray:
        key = tuple(_token(v) for v in values)
        if key not in self._cache:
            with jax.ensure_compile_time_eval():  # runs now, also while a step is being traced
                layer = _jit_call(self.comm, tuple(jnp.asarray(v, self.dtype) for v in values))
                self._cache[key] = _probe(layer, *self.shape, self.dtype, at=stored()).data
        return self._cache[key]
