"""A connectivity split by post neuron over a mesh: one event-kernel call per device.

XLA has no partitioning rule for an event kernel's custom call: left to GSPMD it would
all-gather the operands and run the whole kernel on every device. So each device runs
brainpy's own kernel (``bm.event.csrmv``, i.e. brainevent's, or the native handler under
``use_native_kernels``) on its block of the connectivity inside ``jax.shard_map``.

Every device gets the *same* CSR row pointer: row ``i`` of every block is padded to the
longest row ``i`` of all blocks, and the padding points to one extra, discarded output
column. So the kernel sees concrete, identical structure on every device (brainevent builds
its workspace from the row pointer at trace time), padding never touches a real output,
and each post neuron sums its inputs in presynaptic order whatever the number of devices.
"""
from __future__ import annotations

from typing import Any

import brainpy as bp
import brainpy.math as bm
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from ._checks import who
from ._compat import State
from ._connectivity import ReadOut, SparseRows, StaleReadOut
from ._events import counts_csrmv, event_mask
from ._mesh import AXIS, gather, put

__all__ = ["PartitionedCSR"]


class PartitionedCSR(bp.DynamicalSystem):
    """A connectivity split by post neuron over a mesh: one event-kernel call per device.

    ``update(x)`` takes the whole presynaptic spike vector (``True``, or a number the event
    layers count as an event) and returns the current onto every post neuron, as an array
    split along the mesh's neuron axis; ``update(c, counts=True)`` takes event counts per
    presynaptic neuron instead. Each device holds the columns of its post neurons, as CSR rows padded
    to one row pointer shared by all devices (the padding points to an extra output column
    that is discarded), and runs ``bm.event.csrmv`` on them inside ``jax.shard_map``.

    With ``groups=G`` the columns are ``G`` blocks of ``n`` post neurons (a fused merge
    group's stacked connectivity: one block per synapse state); each device takes its
    neurons of every block, makes one call for all of them, and the result has shape
    ``(G, n)``.

    You rarely build one yourself: :func:`~brainpy_halfproj.partition` gives every event
    ``comm`` layer one (``proj.use_kernel(kernel)``) and every fused call's kernel. The
    blocks are stored as ``brainstate`` states, which JAX receives as arguments (not as
    constants in the program) and which checkpoints do not include.

    Parameters
    ----------
    rows
        The connectivity, rows = presynaptic neurons (from ``read_connectivity``).
    mesh
        A one-axis ``jax.sharding.Mesh`` whose size divides the number of post neurons.
    source_layer
        What the connectivity was read from (for reports).
    groups
        Number of column blocks.
    name
        The node's name.
    source
        Keyword only: the ``brainpy_halfproj._connectivity.ReadOut`` of the layer
        ``rows`` came from. The kernel then follows the layer: a homogeneous weight is read
        when a step is traced; a change of which synapses exist, or of per-synapse weights,
        is refused with the fix (call ``partition`` again).

    Attributes
    ----------
    synapses
        Number of synapses.
    slots_per_device
        Stored entries per device, padding included.
    homogeneous
        Whether one weight is stored, not one per synapse (a layer whose weight is one
        scalar; without ``source``, rows whose weights are all equal).

    Examples
    --------
    >>> import jax, numpy as np
    >>> from jax.sharding import Mesh
    >>> import brainpy_halfproj as bhp
    >>> rows = bhp.SparseRows(np.array([0, 2, 3]), np.array([0, 3, 1], np.int32),
    ...                       np.array([1., 2., 4.], np.float32), (2, 4))
    >>> mesh = Mesh(np.array(jax.devices()[:1]), ('neurons',))
    >>> layer = bhp.PartitionedCSR(rows, mesh)
    >>> np.asarray(layer(np.array([True, True]))).tolist()
    [1.0, 4.0, 0.0, 2.0]
    >>> np.asarray(layer(np.array([0, 3]), counts=True)).tolist()
    [0.0, 12.0, 0.0, 0.0]
    >>> layer.synapses, layer.slots_per_device, layer.homogeneous
    (3, 3, False)
    >>> np.asarray(bhp.PartitionedCSR(rows, mesh, groups=2)(np.array([True, True]))).tolist()
    [[1.0, 4.0], [0.0, 2.0]]
    """

    def __init__(self, rows: SparseRows, mesh: Any, source_layer: str = "SparseRows", groups: int = 1,
                 name: str | None = None, *, source: ReadOut | None = None):
        super().__init__(name=name)
        n_pre, n_cols = rows.shape
        n_dev = int(mesh.devices.size)
        if n_cols % groups or (n_cols // groups) % n_dev:
            raise ValueError(f"PartitionedCSR: {n_cols} columns ({groups} block(s)) cannot be split evenly over "
                             f"{n_dev} devices; use a device count that divides {n_cols // max(groups, 1)}.")
        self.mesh = mesh
        self.source_layer = source_layer
        self.source = source
        self.groups = groups
        self.num_in, self.num_out = n_pre, n_cols // groups
        self.n_local = self.num_out // n_dev
        self.synapses = rows.nnz
        # device of each synapse and its column there: block g, neuron j -> g * n_local + j - d * n_local
        row = np.repeat(np.arange(n_pre), np.diff(rows.indptr))
        block, neuron = np.divmod(rows.indices.astype(np.int64), self.num_out)
        device, local = np.divmod(neuron, self.n_local)
        local = block * self.n_local + local
        lengths = np.zeros((n_dev, n_pre), dtype=np.int64)
        np.add.at(lengths, (device, row), 1)
        indptr = np.zeros(n_pre + 1, dtype=np.int64)
        np.cumsum(lengths.max(0), out=indptr[1:])
        if indptr[-1] >= 2 ** 31:
            raise ValueError(f"PartitionedCSR: {int(indptr[-1])} synapses per device do not fit int32 "
                             f"indices; use more devices.")
        self.indptr = indptr.astype(np.int32)
        self.slots_per_device = int(indptr[-1])
        slots = max(self.slots_per_device, 1)  # the kernel wants at least one entry
        if source is not None:
            self.homogeneous = source.homogeneous
        else:
            self.homogeneous = bool(rows.nnz) and bool((rows.data == rows.data[0]).all())
        padding = groups * self.n_local  # the extra, discarded column
        indices = np.full((n_dev, slots), padding, dtype=np.int32)
        data = np.zeros((n_dev, slots), dtype=rows.data.dtype)
        # each synapse keeps its order within its row on its device (rows are column-sorted)
        order = np.lexsort((np.arange(row.size), row, device))
        d, r = device[order], row[order]
        first = np.ones(order.size, dtype=bool)
        first[1:] = (d[1:] != d[:-1]) | (r[1:] != r[:-1])
        start = np.maximum.accumulate(np.where(first, np.arange(order.size), 0))
        slot = indptr[r] + np.arange(order.size) - start
        indices[d, slot] = local[order]
        data[d, slot] = rows.data[order]
        self.weight = np.asarray(rows.data[:1] if self.homogeneous and rows.nnz else np.zeros(1, rows.data.dtype))
        """The one weight of a homogeneous layer, as read (the source layer's weight is used when it differs)."""
        split = NamedSharding(mesh, P(AXIS))  # one row of blocks per device
        self.indices = State(put(indices, split))
        self.data = None if self.homogeneous else State(put(data, split))
        self._blocks = [self.indices] if self.data is None else [self.data, self.indices]

    def to_rows(self) -> SparseRows:
        """The whole connectivity again, from the blocks (to re-partition onto another mesh).

        Examples
        --------
        >>> import jax, numpy as np
        >>> from jax.sharding import Mesh
        >>> import brainpy_halfproj as bhp
        >>> rows = bhp.SparseRows(np.array([0, 2, 3]), np.array([0, 3, 1], np.int32),
        ...                       np.array([1., 2., 4.], np.float32), (2, 4))
        >>> back = bhp.PartitionedCSR(rows, Mesh(np.array(jax.devices()[:1]), ('neurons',))).to_rows()
        >>> back.indptr.tolist(), back.indices.tolist(), back.data.tolist()
        ([0, 2, 3], [0, 3, 1], [1.0, 2.0, 4.0])
        """
        indices = gather(self.indices.value)
        data = np.broadcast_to(self.weight, indices.shape) if self.data is None else gather(self.data.value)
        slot_row = np.repeat(np.arange(self.num_in), np.diff(self.indptr))
        rows, cols, values = [], [], []
        for d in range(indices.shape[0]):
            local = indices[d, :slot_row.size].astype(np.int64)
            real = local != self.groups * self.n_local
            block, j = np.divmod(local[real], self.n_local)
            rows.append(slot_row[real])
            cols.append(block * self.num_out + d * self.n_local + j)
            values.append(data[d, :slot_row.size][real])
        row, col, value = np.concatenate(rows), np.concatenate(cols), np.concatenate(values)
        order = np.lexsort((col, row))
        indptr = np.zeros(self.num_in + 1, dtype=np.int64)
        np.cumsum(np.bincount(row, minlength=self.num_in), out=indptr[1:])
        return SparseRows(indptr, col[order].astype(np.int32), value[order],
                          (self.num_in, self.groups * self.num_out))

    @property
    def nbytes_per_device(self) -> int:
        """Bytes of connectivity each device holds (padding included)."""
        per_slot = 4 if self.homogeneous else 4 + np.dtype(self.weight.dtype).itemsize
        return max(self.slots_per_device, 1) * per_slot

    def stale(self, comm: Any = None) -> str | None:
        """Why the blocks no longer match the source layer (``comm``: the projection's layer now), or ``None``."""
        if self.source is None:
            return None
        why = self.source.changed(self.source.comm if comm is None else comm)
        if why is None and not self.homogeneous:
            why = self.source.weights_changed()
        return why

    def update(self, x: Any, owner: Any = None, counts: bool = False) -> jax.Array:
        x = bm.as_jax(x)
        if x.shape != (self.num_in,):
            raise ValueError(f"{type(self).__name__} {self.name!r}: the spike input has shape {tuple(x.shape)}, "
                             f"but the layer expects ({self.num_in},): one spike vector (batching modes are "
                             f"not partitioned).")
        weight: Any = self.weight
        if self.source is not None:
            why = self.stale(getattr(owner, "comm", None))
            try:
                now = None if why is not None or not self.homogeneous else self.source.weights_now(self.to_rows)
            except StaleReadOut as err:
                why = str(err)
            if why is not None:
                raise ValueError(f"{who(owner) if owner is not None else repr(self.name)}: {why} after partition() "
                                 f"read its synapses, which each device stores its block of; call "
                                 f"brainpy_halfproj.partition(model, devices) again, which reads changed layers "
                                 f"again.")
            if now is not None:
                weight = jnp.reshape(now, (1,))
        return self._call(weight, x if counts else event_mask(x), counts)

    def _call(self, weight: Any, x: jax.Array, counts: bool) -> jax.Array:
        width, groups, indptr = self.groups * self.n_local, self.groups, self.indptr
        shape = (self.num_in, width + 1)
        homogeneous = self.homogeneous

        def body(weight, *args):  # blocks (one row per device), then the input, whole
            *blocks, x = args
            data, indices = (weight if homogeneous else blocks[0][0]), blocks[-1][0]
            if counts:
                out = counts_csrmv(data, indices, indptr, x, shape)[:width]
            else:
                out = bm.as_jax(bm.event.csrmv(data, indices, indptr, x, shape=shape, transpose=True))[:width]
            return out if groups == 1 else out.reshape(groups, width // groups)

        specs = (P(),) + (P(AXIS),) * len(self._blocks) + (P(),)
        out = P(AXIS) if groups == 1 else P(None, AXIS)
        call = jax.shard_map(body, mesh=self.mesh, in_specs=specs, out_specs=out)
        return call(jnp.asarray(weight), *(block.value for block in self._blocks), x)
