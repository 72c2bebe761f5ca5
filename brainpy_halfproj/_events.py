"""What the event kernels count as an event, and one kernel call that honours event counts.

An event layer (``bp.dnn.EventCSRLinear``, ``bp.dnn.EventJitFP*Linear``) treats its input as
events, never as values: a spike vector of ``True``/``False``, or numbers of which it counts
some as events and ignores the value. Which numbers depends on the kernel library:

* brainevent 0.2 (brainpy 2.8): a positive number;
* brainevent 0.3 (brainpy 2.9) and brainpylib (brainpy 2.5): any nonzero number.

(:func:`event_mask`; the tests check it against every event layer on each line.) A layer
called twice adds twice. A fused call (one kernel call for many projections, maybe called
several times before their post group's step) therefore counts events per presynaptic
neuron and makes the one call with the counts (:func:`counts_csrmv`):

* brainevent 0.3 (brainpy 2.9): one call of brainevent's value-weighted event kernel
  (``brainevent.WeightedArray(counts) @ brainevent.CSR(...)``): a neuron without events is
  skipped, one with ``c`` events adds ``c`` times its weights. For counts of 0 and 1 (every
  step in which each projection is called at most once) it adds exactly what the binary kernel
  adds, bit for bit.
* brainevent 0.2 and brainpylib, which have no such kernel: brainpy's event CSR kernel for the
  neurons with at least one event and, only in steps where some neuron has more, brainpy's
  float CSR kernel for the remaining counts, in a ``lax.cond`` branch. The branch costs a few
  microseconds a step even when not taken (XLA's conditional), which the one call avoids.

No kernel is written here.
"""
from __future__ import annotations

from typing import Any

import brainpy.math as bm
import jax
import jax.numpy as jnp

from ._compat import event_kernel_library

__all__ = ["event_mask", "counts_csrmv"]


def _positive_only() -> bool:
    if event_kernel_library() != "brainevent":
        return False
    import brainevent

    return tuple(int(p) for p in brainevent.__version__.split(".")[:2]) < (0, 3)


_POSITIVE_ONLY = _positive_only()


def _weighted_kernel() -> bool:
    """Whether the kernel library has a value-weighted event CSR kernel (brainevent >= 0.3)."""
    if event_kernel_library() != "brainevent":
        return False
    import brainevent

    return not _POSITIVE_ONLY and hasattr(brainevent, "WeightedArray")


_WEIGHTED = _weighted_kernel()


def event_mask(x: Any) -> jax.Array:
    """The events in ``x`` as this line's event layers count them: ``True``, or a positive/nonzero number.

    Examples
    --------
    >>> import numpy as np
    >>> from brainpy_halfproj._events import event_mask
    >>> event_mask(np.array([True, False])).tolist(), event_mask(np.array([0., 0.5, 2.])).tolist()
    ([True, False], [False, True, True])
    """
    x = bm.as_jax(x)
    if x.dtype == jnp.bool_:
        return x
    return x > 0 if _POSITIVE_ONLY else x != 0


def counts_csrmv(data: Any, indices: Any, indptr: Any, counts: Any, shape: tuple[int, int]) -> jax.Array:
    """``counts @ matrix`` for a CSR matrix with one row per presynaptic neuron and integer event counts.

    On brainevent 0.3, one call of its value-weighted event kernel. Elsewhere, one call of
    brainpy's event kernel (``bm.event.csrmv``) for the rows with a count; the counts above
    one, in the steps that have any, through brainpy's float kernel (``bm.sparse.csrmv``) in a
    ``lax.cond`` branch. Each is differentiable in ``data``.

    Examples
    --------
    >>> import numpy as np
    >>> from brainpy_halfproj._events import counts_csrmv
    >>> indptr, indices = np.array([0, 2, 3], np.int32), np.array([0, 2, 1], np.int32)
    >>> data = np.array([1., 2., 4.], np.float32)
    >>> np.asarray(counts_csrmv(data, indices, indptr, np.array([1, 3]), (2, 3))).tolist()
    [1.0, 12.0, 2.0]
    """
    counts = bm.as_jax(counts)
    if _WEIGHTED:
        import brainevent

        data, indices = bm.as_jax(data), bm.as_jax(indices)
        csr = brainevent.CSR((data, indices, indptr), shape=shape)  # indptr stays a host array: planned at trace
        return bm.as_jax(brainevent.WeightedArray(counts.astype(data.dtype)) @ csr)
    once = bm.as_jax(bm.event.csrmv(data, indices, indptr, counts > 0, shape=shape, transpose=True))
    more = jnp.maximum(counts - 1, 0)

    def again() -> jax.Array:
        return bm.as_jax(bm.sparse.csrmv(data, indices, indptr, more.astype(once.dtype), shape=shape,
                                         transpose=True))

    return once + jax.lax.cond(jnp.any(more > 0), again, lambda: jnp.zeros_like(once))
