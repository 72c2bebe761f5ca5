"""One model on a mesh of devices: every post group split along its neurons.

Why this works for align-post projections
-----------------------------------------
An align-post projection keeps its synapse state with the post group, in the post
group's shape. So the neuron axis of a post group is the natural cut: a device that
holds post neurons ``a:b`` also holds their synapse state, and it needs, of each
projection onto the group, only the columns ``a:b`` of the connectivity. What it lacks
is the presynaptic spike vector, which it gets from the other devices once per step.

How it is built (JAX's own machinery, no communication layer of ours)
---------------------------------------------------------------------
* **Neurons: GSPMD.** Every variable of a post group whose last axis runs over its
  neurons (membrane potential, refractory state, the merged synapse state
  ``MergeGroup.syn`` / ``.out``, an unmerged projection's ``syn``) is placed with
  ``NamedSharding(mesh, P(..., 'neurons'))``. The group's spike variable (what it hands
  to delays, ``return_info()``), delay buffers, counters and random keys are replicated.
  The model's own ``update`` runs unchanged under ``bm.for_loop`` / ``bm.jit``; XLA
  partitions the element-wise neuron updates without communication and all-gathers each
  group's new spikes once (or the membrane potential they are computed from: XLA's
  choice): one collective per group and step, and no other.
  A node added to the model (:class:`_KeepLayout`) pins every state to this layout at
  the end of each step, so compiled loops return it as they received it.
* **Kernels: shard_map.** Each event ``comm`` layer is replaced by a
  :class:`PartitionedCSR`, whose update is a ``jax.shard_map`` over the mesh: every
  device runs brainpy's own event kernel (``bm.event.csrmv``, i.e. brainevent's CSR
  kernel, or the native handler under ``use_native_kernels``) on its block of the
  connectivity and its share of the post neurons. XLA has no partitioning rule for the
  kernel's custom call; without the ``shard_map`` it would all-gather the operands and run
  the whole kernel on every device.
* **Connectivity as data.** The blocks come from
  :func:`~brainpy_halfproj._connectivity.read_connectivity`: exactly the synapses the
  layer realises. A just-in-time layer regenerates its synapses from a seed and the whole
  matrix shape, so it cannot be split by re-seeding blocks without changing which synapses
  exist; reading it out keeps them, at the price of storing them (memory grows with the
  synapses, split over the devices).

Exactness
---------
Every device gets the *same* CSR row pointer: row ``i`` of every block is padded to the
longest row ``i`` of all blocks, and the padding points to one extra, discarded output
column. So the kernel sees concrete, identical structure on every device (brainevent
builds its workspace from the row pointer at trace time), padding never touches a real
output, and each post neuron sums its inputs in presynaptic order whatever the number
of devices. One device runs the same program with one block: the exactness contract is
that ``partition(model, [one device])`` and ``partition(model, D devices)`` give identical
rasters and state.

Fused groups
------------
A post group's fused call (``fused=True``: one kernel call for all fused members, on their
stacked connectivity) stays one call: its kernel becomes a :class:`PartitionedCSR` with
one column block per merge group, and each device makes one call for its own neurons'
columns of every block (:meth:`FusedCall.use_kernel <brainpy_halfproj._fused.FusedCall.use_kernel>`).
"""
from __future__ import annotations

import dataclasses
import re
import weakref
from collections.abc import Sequence
from typing import Any

import brainpy as bp
import brainpy.math as bm
import numpy as np

from ._checks import comm_sizes
from ._compat import BRAINPY_VERSION, event_kernel_library
from ._connectivity import EVENT_LAYERS, SparseRows, read_connectivity
from ._fused import FusedCall, fused_call_of

__all__ = [
    "AXIS",
    "PartitionError",
    "PartitionedCSR",
    "Partition",
    "VariableInfo",
    "ProjectionInfo",
    "CallInfo",
    "partition",
    "partition_report",
    "count_collectives",
    "step_collectives",
    "gather",
]

#: Name of the mesh axis the neurons are split along.
AXIS = "neurons"

#: HLO collective operations counted by :func:`count_collectives`.
COLLECTIVES: tuple[str, ...] = ("all-gather", "all-reduce", "reduce-scatter", "collective-permute",
                                "all-to-all", "collective-broadcast")

#: The mesh each partitioned model lives on (the model holds no extra attribute).
_MESHES: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


class PartitionError(RuntimeError):
    """A model cannot be partitioned on this brainpy line."""


# ----------------------------------------------------------------------------- the mesh


def _as_mesh(devices: Any) -> Any:
    import jax
    from jax.sharding import Mesh

    if isinstance(devices, Mesh):
        if len(devices.axis_names) != 1:
            raise ValueError(f"partition: `devices` must be a one-axis Mesh (the neuron axis), but the "
                             f"mesh has axes {devices.axis_names}; build it as Mesh(devices, ('{AXIS}',)).")
        if devices.axis_names[0] != AXIS:
            devices = Mesh(devices.devices, (AXIS,))
        return devices
    if devices is None:
        devices = jax.devices()
    elif isinstance(devices, int) and not isinstance(devices, bool):
        available = jax.devices()
        if not 1 <= devices <= len(available):
            raise ValueError(f"partition: `devices` asks for {devices} devices, but JAX sees "
                             f"{len(available)} ({available[0].platform}); pass a number from 1 to "
                             f"{len(available)}, or on CPU set XLA_FLAGS=--xla_force_host_platform_device_count="
                             f"{devices} before importing jax.")
        devices = available[:devices]
    try:
        devices = [devices] if isinstance(devices, str) else list(devices)
    except TypeError:
        devices = [devices]
    if not devices or not all(isinstance(d, jax.Device) for d in devices):
        raise TypeError(f"partition: `devices` must be None, a number of devices, a sequence of jax "
                        f"devices or a jax.sharding.Mesh, but got {devices!r}.")
    return Mesh(np.array(devices), (AXIS,))


def _sharding(mesh: Any, ndim: int, split: bool) -> Any:
    from jax.sharding import NamedSharding, PartitionSpec

    spec = PartitionSpec(*([None] * (ndim - 1) + [AXIS])) if split and ndim else PartitionSpec()
    return NamedSharding(mesh, spec)


def _put(value: Any, sharding: Any) -> Any:
    """``value`` as a global array with ``sharding`` (works across processes)."""
    import jax
    from jax.sharding import NamedSharding, PartitionSpec

    if isinstance(value, jax.Array) and jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key):
        # typed random keys: place their integer data (one trailing axis more)
        data_sharding = NamedSharding(sharding.mesh, PartitionSpec(*sharding.spec, *([None] * (
            jax.random.key_data(value).ndim - len(sharding.spec)))))
        data = _put(jax.random.key_data(value), data_sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(value))
    if isinstance(value, jax.Array) and value.sharding == sharding:
        return value
    if isinstance(value, jax.Array) and not value.is_fully_addressable:
        return jax.jit(lambda x: x, out_shardings=sharding)(value)
    host = np.asarray(value)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


# ----------------------------------------------------------------------------- the kernel


class PartitionedCSR(bp.DynamicalSystem):
    """A connectivity split by post neuron over a mesh: one event-kernel call per device.

    ``update(spikes)`` takes the whole presynaptic spike vector and returns the current
    onto every post neuron, as an array split along the mesh's neuron axis. Each device
    holds the columns of its post neurons, as CSR rows padded to one row pointer shared
    by all devices (the padding points to an extra output column that is discarded), and
    runs ``bm.event.csrmv`` on them inside ``jax.shard_map``.

    With ``groups=G`` the columns are ``G`` blocks of ``n`` post neurons (a fused merge
    group's stacked connectivity: one block per synapse state); each device takes its
    neurons of every block, makes one call for all of them, and the result has shape
    ``(G, n)``.

    You rarely build one yourself: :func:`partition` replaces every event ``comm`` layer
    (and every fused call's kernel) by one. The blocks are stored as ``brainstate``
    states, which JAX receives as arguments (not as constants in the program) and which
    checkpoints do not include.

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

    Attributes
    ----------
    synapses
        Number of synapses.
    slots_per_device
        Stored entries per device, padding included.
    homogeneous
        Whether all weights are equal (then one weight is stored, not one per synapse).

    Examples
    --------
    >>> import jax, numpy as np
    >>> from jax.sharding import Mesh
    >>> from brainpy_halfproj._connectivity import SparseRows
    >>> rows = SparseRows(np.array([0, 2, 3]), np.array([0, 3, 1], np.int32),
    ...                   np.array([1., 2., 4.], np.float32), (2, 4))
    >>> mesh = Mesh(np.array(jax.devices()[:1]), ('neurons',))
    >>> layer = PartitionedCSR(rows, mesh)
    >>> np.asarray(layer(np.array([True, True]))).tolist()
    [1.0, 4.0, 0.0, 2.0]
    >>> layer.synapses, layer.slots_per_device, layer.homogeneous
    (3, 3, False)
    >>> np.asarray(PartitionedCSR(rows, mesh, groups=2)(np.array([True, True]))).tolist()
    [[1.0, 4.0], [0.0, 2.0]]
    """

    def __init__(self, rows: SparseRows, mesh: Any, source_layer: str = "SparseRows", groups: int = 1,
                 name: str | None = None):
        super().__init__(name=name)
        import brainstate
        from jax.sharding import NamedSharding
        from jax.sharding import PartitionSpec as P

        n_pre, n_cols = rows.shape
        n_dev = int(mesh.devices.size)
        if n_cols % groups or (n_cols // groups) % n_dev:
            raise ValueError(f"PartitionedCSR: {n_cols} columns ({groups} block(s)) cannot be split evenly over "
                             f"{n_dev} devices; use a device count that divides {n_cols // max(groups, 1)}.")
        self.mesh = mesh
        self.source_layer = source_layer
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
        self.homogeneous = bool(rows.nnz) and bool((rows.data == rows.data[0]).all())
        padding = groups * self.n_local  # the extra, discarded column
        indices = np.full((n_dev, slots), padding, dtype=np.int32)
        data = np.zeros((n_dev, slots), dtype=np.float32)
        # each synapse keeps its order within its row on its device (rows are column-sorted)
        order = np.lexsort((np.arange(row.size), row, device))
        d, r = device[order], row[order]
        first = np.ones(order.size, dtype=bool)
        first[1:] = (d[1:] != d[:-1]) | (r[1:] != r[:-1])
        start = np.maximum.accumulate(np.where(first, np.arange(order.size), 0))
        slot = indptr[r] + np.arange(order.size) - start
        indices[d, slot] = local[order]
        data[d, slot] = rows.data[order]
        self.weight = np.asarray(rows.data[:1] if self.homogeneous else np.zeros(1), dtype=np.float32)
        split = NamedSharding(mesh, P(AXIS))  # one row of blocks per device
        self.indices = brainstate.State(_put(indices, split))
        self.data = None if self.homogeneous else brainstate.State(_put(data, split))
        self._blocks = [self.indices] if self.data is None else [self.data, self.indices]
        self._kernel = self._build_kernel()

    def _build_kernel(self):
        import jax
        from jax.sharding import PartitionSpec as P

        n_pre, width, indptr, weight, groups = self.num_in, self.groups * self.n_local, self.indptr, \
            self.weight, self.groups
        shape = (n_pre, width + 1)

        def csrmv(data, indices, spikes):
            out = bm.event.csrmv(data, indices, indptr, spikes, shape=shape, transpose=True)[:width]
            return out if groups == 1 else out.reshape(groups, width // groups)

        homogeneous = self.homogeneous

        def body(*args):  # (indices, spikes) or (data, indices, spikes); blocks: one row per device
            *blocks, spikes = args
            return csrmv(weight if homogeneous else blocks[0][0], blocks[-1][0], spikes)

        specs = (P(AXIS),) * len(self._blocks) + (P(),)
        out = P(AXIS) if groups == 1 else P(None, AXIS)
        return jax.shard_map(body, mesh=self.mesh, in_specs=specs, out_specs=out)

    def to_rows(self) -> SparseRows:
        """The whole connectivity again, from the blocks (to re-partition onto another mesh).

        Examples
        --------
        >>> import jax, numpy as np
        >>> from jax.sharding import Mesh
        >>> from brainpy_halfproj._connectivity import SparseRows
        >>> rows = SparseRows(np.array([0, 2, 3]), np.array([0, 3, 1], np.int32),
        ...                   np.array([1., 2., 4.], np.float32), (2, 4))
        >>> back = PartitionedCSR(rows, Mesh(np.array(jax.devices()[:1]), ('neurons',))).to_rows()
        >>> back.indptr.tolist(), back.indices.tolist(), back.data.tolist()
        ([0, 2, 3], [0, 3, 1], [1.0, 2.0, 4.0])
        """
        from ._connectivity import _from_coo

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
        return _from_coo(np.concatenate(rows), np.concatenate(cols), np.concatenate(values),
                         (self.num_in, self.groups * self.num_out))

    @property
    def nbytes_per_device(self) -> int:
        """Bytes of connectivity each device holds (padding included)."""
        per_slot = 4 if self.homogeneous else 8
        return max(self.slots_per_device, 1) * per_slot

    def update(self, x):
        x = bm.as_jax(x)
        if x.shape != (self.num_in,):
            raise ValueError(f"{type(self).__name__} {self.name!r}: the spike input has shape {tuple(x.shape)}, "
                             f"but the layer expects ({self.num_in},): one spike vector (batching modes are "
                             f"not partitioned).")
        return self._kernel(*(block.value for block in self._blocks), x)


# ----------------------------------------------------------------------------- the report


@dataclasses.dataclass(frozen=True)
class VariableInfo:
    """One state variable of a partitioned model.

    Attributes
    ----------
    path
        Attribute path from the model (as in checkpoints).
    shape
        Global shape.
    split
        Whether the layout splits it along the neuron axis (else every device holds it whole).
    placed
        Whether its current value has that layout. ``False`` after ``bp.reset_state``
        (new, unplaced values) until you call :func:`partition` again.
    bytes_per_device
        Bytes of the value each device holds in that layout.
    """

    path: str
    shape: tuple
    split: bool
    placed: bool
    bytes_per_device: int


@dataclasses.dataclass(frozen=True)
class ProjectionInfo:
    """One align-post projection of a partitioned model.

    Attributes
    ----------
    name
        The projection's name.
    post
        The name of its post group.
    layer
        The class name of its ``comm`` layer as built.
    kernel
        How its input is computed: ``'partitioned'`` (its own :class:`PartitionedCSR`, one
        call per device), ``'fused'`` (through its post group's fused call, one call per
        device for all fused members) or ``'XLA'`` (a layer XLA partitions itself, such as
        ``bp.dnn.OneToOne``).
    """

    name: str
    post: str
    layer: str
    kernel: str


@dataclasses.dataclass(frozen=True)
class CallInfo:
    """One per-device kernel call (a :class:`PartitionedCSR`) of a partitioned model.

    Attributes
    ----------
    owner
        The projection whose layer it is, or ``'<post> fused call'``.
    post
        The name of the post group it adds into.
    synapses
        Number of synapses.
    slots_per_device
        Stored entries per device, padding included.
    bytes_per_device
        Connectivity bytes per device.
    """

    owner: str
    post: str
    synapses: int
    slots_per_device: int
    bytes_per_device: int


@dataclasses.dataclass(frozen=True)
class Partition:
    """How a model is laid out on a mesh: returned by :func:`partition` and :func:`partition_report`.

    ``str(report)`` is a plain-text summary.

    Attributes
    ----------
    mesh
        The ``jax.sharding.Mesh`` (one axis, ``'neurons'``).
    variables
        One :class:`VariableInfo` per state variable (the live placement of its value).
    projections
        One :class:`ProjectionInfo` per align-post projection.
    calls
        One :class:`CallInfo` per kernel call each device makes per step.
    posts
        ``(name, number of neurons, neurons per device)`` of every post group.
    """

    mesh: Any
    variables: tuple[VariableInfo, ...]
    projections: tuple[ProjectionInfo, ...]
    calls: tuple[CallInfo, ...]
    posts: tuple[tuple[str, int, int], ...]

    @property
    def n_devices(self) -> int:
        """Number of devices in the mesh."""
        return int(self.mesh.devices.size)

    @property
    def split(self) -> tuple[str, ...]:
        """Paths of the variables split along the neuron axis."""
        return tuple(v.path for v in self.variables if v.split)

    @property
    def replicated(self) -> tuple[str, ...]:
        """Paths of the variables every device holds whole."""
        return tuple(v.path for v in self.variables if not v.split)

    @property
    def misplaced(self) -> tuple[str, ...]:
        """Paths of the variables whose current value does not have the layout's placement."""
        return tuple(v.path for v in self.variables if not v.placed)

    @property
    def synapses(self) -> int:
        """Synapses of all per-device kernel calls."""
        return sum(c.synapses for c in self.calls)

    @property
    def state_bytes_per_device(self) -> int:
        """Bytes of state variables each device holds."""
        return sum(v.bytes_per_device for v in self.variables)

    @property
    def connectivity_bytes_per_device(self) -> int:
        """Bytes of connectivity each device holds."""
        return sum(c.bytes_per_device for c in self.calls)

    @property
    def bytes_per_device(self) -> int:
        """State plus connectivity bytes each device holds."""
        return self.state_bytes_per_device + self.connectivity_bytes_per_device

    def __str__(self) -> str:
        slots = sum(c.slots_per_device for c in self.calls)
        kinds = [p.kernel for p in self.projections]
        xla = sorted({p.layer for p in self.projections if p.kernel == "XLA"})
        lines = [f"Partition over {self.n_devices} device(s) along '{AXIS}': "
                 f"{', '.join(str(d) for d in self.mesh.devices.flat)}",
                 "  post groups: " + ", ".join(f"{n} ({size} = {self.n_devices} x {local})"
                                               for n, size, local in self.posts),
                 f"  variables: {len(self.split)} split, {len(self.replicated)} replicated"
                 + (f", {len(self.misplaced)} not placed (partition again)" if self.misplaced else ""),
                 f"  projections: {kinds.count('partitioned')} partitioned, {kinds.count('fused')} fused, "
                 f"{kinds.count('XLA')} left to XLA ({', '.join(xla) or 'none'}); "
                 f"kernel calls per device and step: {len(self.calls)}",
                 f"  synapses: {self.synapses:,}; stored per device: {slots:,} "
                 f"(padding {slots * self.n_devices / max(self.synapses, 1) - 1:.0%})",
                 f"  memory per device: {self.state_bytes_per_device / 2**20:.2f} MiB state + "
                 f"{self.connectivity_bytes_per_device / 2**20:.2f} MiB connectivity"]
        return "\n".join(lines)


# ----------------------------------------------------------------------------- the model


def _projections(model: Any) -> list:
    from ._projections import _AlignPostProjection

    return [n for n in model.nodes().unique().values() if isinstance(n, _AlignPostProjection)]


def _unique(objs) -> list:
    seen, out = set(), []
    for obj in objs:
        if id(obj) not in seen:
            seen.add(id(obj))
            out.append(obj)
    return out


def _neuron_axis_vars(post: Any, projections: list) -> list:
    """Variables of ``post`` (and of the synapses of projections onto it) with ``post.num`` as last axis."""
    from ._compat import Delay

    nodes = [post] + [n for n in post.nodes().unique().values()]
    nodes += [n for p in projections for n in p.nodes().unique().values()
              if n is not p.comm and n is not post]
    presynaptic = (Delay, FusedCall)  # delay buffers, fused calls' spike buffers
    skip = {id(v) for n in nodes if isinstance(n, presynaptic) for v in n.vars().unique().values()}
    skip |= {id(v) for v in [_output_variable(post)] if v is not None}
    out = []
    for node in _unique(nodes):
        if isinstance(node, presynaptic):
            continue
        for var in node.vars(level=0, include_self=True).unique().values():
            shape = np.shape(var.value)
            if id(var) not in skip and shape and shape[-1] == post.num:
                out.append(var)
    return _unique(out)


def _output_variable(group: Any) -> Any:
    """The variable a group hands to delays (``return_info()``, its spikes), or ``None``."""
    info = getattr(group, "return_info", None)
    try:
        out = info() if callable(info) else None
    except Exception:  # a group that cannot say: nothing to keep whole
        return None
    return out if isinstance(out, bm.Variable) else None


def _states(model: Any) -> list:
    """Every ``brainstate.State`` reachable from the model's nodes (variables, random keys, ...)."""
    import brainstate

    out = list(model.vars().unique().values())
    for node in model.nodes().unique().values():
        out += [v for v in vars(node).values() if isinstance(v, brainstate.State)]
    return _unique(out)


def _paths(model: Any) -> dict[int, str]:
    """``id(state) -> attribute path`` (``N.V``, ``spike_counts.L23E``), first path wins."""
    import brainstate

    paths: dict[int, str] = {}
    for path, node in model.nodes(method="relative").items():
        for k, v in vars(node).items():
            name = f"{path}.{k}" if path else k
            if isinstance(v, brainstate.State):
                paths.setdefault(id(v), name)
            elif isinstance(v, dict):  # bm.VarDict
                for kk, vv in v.items():
                    if isinstance(vv, brainstate.State):
                        paths.setdefault(id(vv), f"{name}.{kk}")
            elif isinstance(v, (list, tuple)):  # bm.VarList
                for i, vv in enumerate(v):
                    if isinstance(vv, brainstate.State):
                        paths.setdefault(id(vv), f"{name}-{i}")
    return paths


def _check_line() -> None:
    if event_kernel_library() != "brainevent":
        raise PartitionError(
            f"partition: brainpy {'.'.join(map(str, BRAINPY_VERSION))} runs its event kernels through "
            f"brainpylib (taichi), whose kernels crash or hang when several devices run them at once, "
            f"and its JAX ({_jax_version()}) has no jax.shard_map; a model cannot be split over devices "
            f"on this line. Use brainpy 2.8 or later (pip install 'brainpy-halfproj[cpu]'), or run on "
            f"one device without partition().")


def _jax_version() -> str:
    import jax

    return jax.__version__


def partition(model: bp.DynamicalSystem, devices: None | int | Sequence[Any] | Any = None) -> Partition:
    """Split ``model`` over a mesh of devices along the neurons of its post groups.

    The model is changed in place and runs exactly as before (``bm.for_loop``,
    ``bm.jit``, ``step_run``), now on every device of the mesh: each device holds a
    contiguous block of each post group's neurons, their synapse state and the columns
    of every projection's connectivity that feed them; the presynaptic spikes are
    all-gathered once per group and step.

    Parameters
    ----------
    model
        A brainpy ``DynamicalSystem`` built from this package's align-post projections.
    devices
        ``None`` (all devices JAX sees, across processes under ``jax.distributed``), a
        number ``n`` (the first ``n``), a sequence of devices, or a one-axis
        ``jax.sharding.Mesh``.

    Returns
    -------
    Partition
        The layout (the same as :func:`partition_report` gives later).

    Raises
    ------
    PartitionError
        On brainpy 2.5 (brainpylib kernels): its kernels cannot run on several devices.
    TypeError
        If ``model`` is not a DynamicalSystem or ``devices`` is of the wrong kind.
    ValueError
        If the model has no align-post projection of this package, runs in a batching
        mode, or a post group's size is not a multiple of the number of devices.

    Notes
    -----
    * **Exactness.** ``partition(model, 1)`` runs the same program on one device; for the
      same model (same seeds), any number of devices gives the identical raster and state.
      Against the unpartitioned model, the connectivity is the same synapses; the sums
      onto a neuron run in presynaptic order, which just-in-time kernels with random
      weights may not (results then agree to float rounding, not bit for bit).
    * **Memory.** Just-in-time layers are read out into stored synapses (their realisation
      depends on the whole matrix shape, so blocks cannot be re-seeded): connectivity
      memory grows with the synapses, divided by the number of devices.
    * **Fused merge groups** (``fused=True``) keep one call per post group and step, made
      by every device for its own neurons.
    * **Partition before compiling**: a function jitted earlier keeps the layers it traced.
      After ``bp.reset_state(model)`` (which builds new variables) call ``partition``
      again with the same devices; it only re-places the state. Calling it with other
      devices re-splits the stored connectivity without reading it out again.
    * Neuron groups that are not the post group of any projection, delay buffers and
      other variables are replicated: every device holds and updates them whole.

    Examples
    --------
    >>> import brainpy_halfproj as bhp
    >>> net = bhp.EINet(400)
    >>> layout = bhp.partition(net, 1)
    >>> layout.n_devices, len(layout.projections), 'N.V' in layout.split
    (1, 2, True)
    >>> bhp.run_einet(net, 10).shape
    (10, 400)
    """
    _check_line()
    if not isinstance(model, bp.DynamicalSystem):
        raise TypeError(f"partition: `model` must be a brainpy DynamicalSystem, but got a {type(model).__name__}.")
    mesh = _as_mesh(devices)
    n_dev = int(mesh.devices.size)
    projections = _projections(model)
    if not projections:
        raise ValueError(f"partition: {type(model).__name__} has no align-post projection of brainpy_halfproj "
                         f"(HalfProjAlignPostMg, FullProjAlignPostMg, HalfProjAlignPost, FullProjAlignPost); "
                         f"build it with brainpy_halfproj.dyn.")
    posts = _unique(p.post for p in projections)
    batching = [p.name for p in projections + posts if not isinstance(p.mode, bm.NonBatchingMode)]
    if batching:
        raise ValueError(f"partition: {', '.join(batching)} run(s) in a batching or training mode; "
                         f"partitioning splits neurons, not batches: build the model in "
                         f"bm.NonBatchingMode() (the default).")
    bad = [f"{post.name} ({post.num})" for post in posts if post.num % n_dev]
    flat = [post.name for post in posts if len(post.varshape) != 1]
    if flat:
        raise ValueError(f"partition: post group(s) {', '.join(flat)} have multi-dimensional sizes; "
                         f"partition splits one neuron axis: build them with a number, e.g. LifRef(4000).")
    if bad:
        raise ValueError(f"partition: post group sizes must be multiples of the number of devices "
                         f"({n_dev}), but {', '.join(bad)} are not; choose sizes divisible by {n_dev} "
                         f"(microcircuit(..., size_multiple={n_dev})) or a device count that divides them.")

    for proj in projections:
        comm = proj.comm
        if getattr(proj, "fused_call", None) is not None:
            continue  # its post group's fused call computes its input
        if isinstance(comm, PartitionedCSR):
            if comm.mesh == mesh:
                continue
            layer = PartitionedCSR(comm.to_rows(), mesh, comm.source_layer)  # no second read-out
        elif type(comm).__name__ in EVENT_LAYERS:
            n_in, n_out = comm_sizes(comm)
            assert n_in is not None and n_out is not None  # event layers say their sizes
            layer = PartitionedCSR(read_connectivity(comm, n_in, n_out), mesh, type(comm).__name__)
        else:
            continue  # element-wise (OneToOne) and dense layers: XLA partitions them itself
        proj.comm = layer
        proj.refs["comm"] = layer
    for call in _unique(c for c in (fused_call_of(post) for post in posts) if c is not None):
        if call.kernel is not None and call.kernel.mesh == mesh:
            continue
        rows = call.connectivity if call.kernel is None else call.kernel.to_rows()
        call.use_kernel(PartitionedCSR(rows, mesh, "fused call", groups=len(call.groups)))

    for state, _, sharding in _layout(model, mesh):
        state.value = _put(state.value, sharding)
    _place_global_random(mesh)
    _MESHES[model] = mesh
    if model.has_aft_update(_HOOK):
        model.after_updates.pop(_HOOK)
    model.add_aft_update(_HOOK, _KeepLayout(model, mesh))
    return partition_report(model)


_HOOK = "halfproj_partition"


class _KeepLayout(bp.DynamicalSystem):
    """Pins every state of a partitioned model to its layout at the end of each step.

    Without it XLA chooses the shardings of the values a compiled step or loop returns,
    and a variable meant to be replicated (the spikes) may come back split, which moves
    the exchange elsewhere and changes from call to call. brainpy ends every
    ``step_run`` (and every step of its runners) with ``clear_input`` on all nodes: that
    is where the states are pinned (``jax.lax.with_sharding_constraint``); calling the
    model directly runs its after-updates, which pin them too. The node holds no
    variables, so checkpoints do not see it.
    """

    _not_receive_update_output = True

    def __init__(self, model: Any, mesh: Any):
        super().__init__()
        self._model = weakref.ref(model)
        self._mesh = mesh

    def _pin(self) -> None:
        import jax

        model = self._model()
        if model is None:
            return
        for state, _, sharding in _layout(model, self._mesh):
            state.value = jax.lax.with_sharding_constraint(state.value, sharding)

    def update(self):
        self._pin()

    def clear_input(self, *args, **kwargs):
        self._pin()


def _layers(model: Any) -> list[PartitionedCSR]:
    """Every per-device kernel of the model: projections' layers and fused calls' kernels."""
    return [n for n in model.nodes().unique().values() if isinstance(n, PartitionedCSR)]


def _layout(model: Any, mesh: Any) -> list[tuple[Any, bool, Any]]:
    """``(state, split, sharding)`` for every state of the model but the connectivity blocks."""
    projections = _projections(model)
    posts = _unique(p.post for p in projections)
    split = {id(v) for post in posts
             for v in _neuron_axis_vars(post, [p for p in projections if p.post is post])}
    blocks = {id(s) for layer in _layers(model) for s in layer._blocks}
    return [(state, id(state) in split, _sharding(mesh, np.ndim(state.value), id(state) in split))
            for state in _states(model) if id(state) not in blocks]


def _place_global_random(mesh: Any) -> None:
    """Across processes, brainpy's global random key must be a global array too."""
    import jax

    if jax.process_count() > 1:
        import brainstate

        rng = brainstate.random.DEFAULT  # a State whose value is the key
        rng.value = _put(rng.value, _sharding(mesh, 0, False))


def partition_report(model: bp.DynamicalSystem) -> Partition:
    """The live layout of a partitioned model: which variables are split, synapses and memory per device.

    Read from the model's current values, so it also shows whether the state is still
    split after runs (and that it is not after ``bp.reset_state``, until you partition
    again).

    Raises
    ------
    ValueError
        If ``model`` was not partitioned.

    Examples
    --------
    >>> import brainpy_halfproj as bhp
    >>> net = bhp.EINet(400)
    >>> _ = bhp.partition(net, 1)
    >>> report = bhp.partition_report(net)
    >>> report.split
    ('N.V', 'N._before_updates.halfproj_Expon_COBA_0.syn.g',
     'N._before_updates.halfproj_Expon_COBA_1.syn.g', 'N.t_last_spike')
    >>> report.replicated  # the spikes: every device reads all of them
    ('N.spike',)
    >>> [(p.layer, p.kernel) for p in report.projections]
    [('EventJitFPHomoLinear', 'partitioned'), ('EventJitFPHomoLinear', 'partitioned')]
    """
    mesh = _MESHES.get(model)
    if mesh is None:
        raise ValueError(f"partition_report: {type(model).__name__} {getattr(model, 'name', '')!r} is not "
                         f"partitioned; call brainpy_halfproj.partition(model, devices) first.")
    n_dev = int(mesh.devices.size)
    projections = _projections(model)
    paths = _paths(model)
    variables = []
    for state, split, sharding in _layout(model, mesh):
        value = state.value
        shape = tuple(np.shape(value))
        live = getattr(value, "sharding", None)
        placed = live is not None and live.is_equivalent_to(sharding, len(shape))
        nbytes = int(np.prod(sharding.shard_shape(shape))) * value.dtype.itemsize
        variables.append(VariableInfo(paths.get(id(state), "?"), shape, split, placed, nbytes))
    variables.sort(key=lambda v: v.path)
    infos = []
    for p in projections:
        if getattr(p, "fused_call", None) is not None:
            infos.append(ProjectionInfo(p.name, p.post.name, type(p.comm).__name__, "fused"))
        elif isinstance(p.comm, PartitionedCSR):
            infos.append(ProjectionInfo(p.name, p.post.name, p.comm.source_layer, "partitioned"))
        else:
            infos.append(ProjectionInfo(p.name, p.post.name, type(p.comm).__name__, "XLA"))
    calls = []
    for p in projections:
        if isinstance(p.comm, PartitionedCSR) and getattr(p, "fused_call", None) is None:
            calls.append(CallInfo(p.name, p.post.name, p.comm.synapses, p.comm.slots_per_device,
                                  p.comm.nbytes_per_device))
    for post in _unique(p.post for p in projections):
        call = fused_call_of(post)
        if call is not None and isinstance(call.kernel, PartitionedCSR):
            k = call.kernel
            calls.append(CallInfo(f"{post.name} fused call", post.name, k.synapses, k.slots_per_device,
                                  k.nbytes_per_device))
    posts = tuple((post.name, post.num, post.num // n_dev) for post in _unique(p.post for p in projections))
    return Partition(mesh, tuple(variables), tuple(infos), tuple(calls), posts)


# ----------------------------------------------------------------------------- checks


def count_collectives(hlo: str) -> dict[str, int]:
    """Number of each collective operation in an HLO module's text.

    Pass the text of a compiled program (``jax.jit(f).lower(...).compile().as_text()``, or
    ``bm.jit(f).lower(...).compile().as_text()`` for brainpy functions). Operations inside
    a loop body count once: for a compiled ``for_loop`` of steps it is the count per step.

    Examples
    --------
    >>> count_collectives("%ag = f32[8] all-gather(f32[4] %x), dimensions={0}")
    {'all-gather': 1, 'all-reduce': 0, 'reduce-scatter': 0, 'collective-permute': 0, 'all-to-all': 0,
     'collective-broadcast': 0}
    """
    counts = {}
    for op in COLLECTIVES:
        # an instruction: `= type op(` or `op-start(` (asynchronous pairs count once)
        counts[op] = len(re.findall(rf"\s{re.escape(op)}(?:-start)?\(", hlo))
    return counts


def step_collectives(model: bp.DynamicalSystem, *args: Any) -> dict[str, int]:
    """Collectives in one compiled step of ``model`` (``model.step_run(0, *args)``).

    Compiles the step without running it.

    Examples
    --------
    >>> import brainpy_halfproj as bhp
    >>> net = bhp.EINet(400)
    >>> _ = bhp.partition(net, 1)
    >>> sum(step_collectives(net, 20.).values())  # one device: nothing to exchange
    0
    """
    step = bm.jit(lambda: model.step_run(0, *args))
    return count_collectives(step.lower().compile().as_text())


def gather(x: Any) -> np.ndarray:
    """``x`` (e.g. a raster returned by ``bm.for_loop``) as one NumPy array in every process.

    In one process this is ``np.asarray``; across processes (``jax.distributed``) it
    all-gathers the pieces with ``jax.experimental.multihost_utils.process_allgather``.

    Examples
    --------
    >>> gather(bm.arange(3)).tolist()
    [0, 1, 2]
    """
    import jax

    x = bm.as_jax(x)
    if not isinstance(x, jax.Array) or x.is_fully_addressable:
        return np.asarray(x)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
