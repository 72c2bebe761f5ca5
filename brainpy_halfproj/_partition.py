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
* **Neurons: GSPMD** (``_layout.py``). Every variable of a post group whose last axis runs
  over its neurons is placed with ``NamedSharding(mesh, P(..., 'neurons'))``; spikes,
  delay buffers, counters and random keys are replicated. The model's own ``update`` runs
  unchanged under ``bm.for_loop`` / ``bm.jit``; XLA partitions the element-wise neuron
  updates without communication and all-gathers each group's new spikes once (or the
  membrane potential they are computed from: XLA's choice): one collective per group and
  step, and no other. A node added to the model (``KeepLayout``) pins every state to this
  layout at the end of each step, so compiled loops return it as they received it.
* **Kernels: shard_map** (``_partitioned_csr.py``). Each projection with an event ``comm``
  layer computes its input through a :class:`~brainpy_halfproj.PartitionedCSR` read from
  that layer (``proj.use_kernel``; ``proj.comm`` stays the layer you built): every device
  runs brainpy's own event kernel on its block of the connectivity and its share of the
  post neurons.
* **Connectivity as data** (``_connectivity.py``). The blocks come from
  :func:`~brainpy_halfproj._connectivity.read_connectivity`: exactly the synapses the
  layer realises. A just-in-time layer regenerates its synapses from a seed and the whole
  matrix shape, so it cannot be split by re-seeding blocks without changing which synapses
  exist; reading it out keeps them, at the price of storing them (memory grows with the
  synapses, split over the devices). The layer stays live: a homogeneous weight is read
  when a step is traced; a change of which synapses exist, or of per-synapse weights (which
  each device stores its block of), is refused at the next trace: partitioning again reads
  the changed layers again.

Exactness
---------
Each post neuron sums its inputs in presynaptic order whatever the number of devices (the
blocks share one padded row pointer, see ``_partitioned_csr.py``). One device runs the same
program with one block: the exactness contract is that ``partition(model, [one device])``
and ``partition(model, D devices)`` give identical rasters and state.

Fused groups
------------
A post group's fused call (``fused=True``: one kernel call for all fused members, on their
stacked connectivity) stays one call: its kernel becomes a ``PartitionedCSR`` with one
column block per merge group, and each device makes one call for its own neurons' columns
of every block (:meth:`FusedCall.use_kernel <brainpy_halfproj.FusedCall.use_kernel>`).
"""
from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Sequence
from typing import Any

import brainpy as bp
import brainpy.math as bm
import jax
import numpy as np

from ._checks import comm_sizes
from ._compat import BRAINPY_VERSION, event_kernel_library
from ._connectivity import EVENT_LAYERS, ReadOut, read_connectivity
from ._fused import fused_call_of
from ._layout import KeepLayout, layout, projections_of, unique
from ._mesh import AXIS, as_mesh, put, sharding
from ._partitioned_csr import PartitionedCSR
from ._paths import variable_paths

__all__ = ["PartitionError", "Partition", "VariableInfo", "ProjectionInfo", "CallInfo", "partition",
           "partition_report"]

#: The mesh each partitioned model lives on (the model holds no extra attribute).
_MESHES: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()

_HOOK = "halfproj_partition"


class PartitionError(RuntimeError):
    """A model cannot be partitioned on this brainpy line.

    Examples
    --------
    >>> import brainpy_halfproj as bhp
    >>> issubclass(bhp.PartitionError, RuntimeError)
    True
    """


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

    Examples
    --------
    >>> import brainpy_halfproj as bhp
    >>> net = bhp.EINet(400)
    >>> v = next(v for v in bhp.partition(net, 1).variables if v.path == 'N.V')
    >>> v.shape, v.split, v.placed, v.bytes_per_device
    ((400,), True, True, 1600)
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

    Examples
    --------
    >>> import brainpy_halfproj as bhp
    >>> net = bhp.EINet(400)
    >>> info = bhp.partition(net, 1).projections[0]
    >>> info.name == net.E.name, info.layer, info.kernel
    (True, 'EventJitFPHomoLinear', 'partitioned')
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

    Examples
    --------
    >>> import brainpy_halfproj as bhp
    >>> net = bhp.EINet(400, fused=True)
    >>> call = bhp.partition(net, 1).calls[0]  # one call for both fused projections
    >>> call.owner == f'{net.N.name} fused call', call.synapses == call.slots_per_device > 0
    (True, True)
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

    Examples
    --------
    >>> import brainpy_halfproj as bhp
    >>> net = bhp.EINet(400)
    >>> layout = bhp.partition(net, 1)
    >>> layout.n_devices, layout.posts == ((net.N.name, 400, 400),), layout.misplaced
    (1, True, ())
    >>> print(str(layout).splitlines()[3])
      projections: 2 partitioned, 0 fused, 0 left to XLA (none); kernel calls per device and step: 2
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


def _check_line() -> None:
    if event_kernel_library() != "brainevent":
        raise PartitionError(
            f"partition: brainpy {'.'.join(map(str, BRAINPY_VERSION))} runs its event kernels through "
            f"brainpylib (taichi), whose kernels crash or hang when several devices run them at once, "
            f"and its JAX ({jax.__version__}) has no jax.shard_map; a model cannot be split over devices "
            f"on this line. Use brainpy 2.8 or later (pip install 'brainpy-halfproj[cpu]'), or run on "
            f"one device without partition().")


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
    * **The layers stay live.** ``proj.comm`` stays the layer you built; the projection
      computes through ``proj.kernel``. A homogeneous weight changed later is used; a
      changed structure or per-synapse weights are refused at the next run, and calling
      ``partition`` again reads those layers again.
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
    mesh = as_mesh(devices)
    n_dev = int(mesh.devices.size)
    projections = projections_of(model)
    if not projections:
        raise ValueError(f"partition: {type(model).__name__} has no align-post projection of brainpy_halfproj "
                         f"(HalfProjAlignPostMg, FullProjAlignPostMg, HalfProjAlignPost, FullProjAlignPost); "
                         f"build it with brainpy_halfproj.dyn.")
    posts = unique(p.post for p in projections)
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
        if getattr(proj, "fused_call", None) is not None:
            continue  # its post group's fused call computes its input
        proj.use_kernel(_kernel_for(proj.comm, proj.kernel, mesh))
    for call in unique(c for c in (fused_call_of(post) for post in posts) if c is not None):
        if call.kernel is not None and call.stale() is None:
            if call.kernel.mesh == mesh:
                continue
            rows = call.kernel.to_rows()  # no second read-out
        else:
            if call.stale() is not None:
                call.rebuild()  # read the changed members again
            rows = call.connectivity
        call.use_kernel(PartitionedCSR(rows, mesh, "fused call", groups=len(call.groups)))

    for state, _, where in layout(model, mesh):
        state.value = put(state.value, where)
    _place_global_random(mesh)
    _MESHES[model] = mesh
    if model.has_aft_update(_HOOK):
        model.after_updates.pop(_HOOK)
    model.add_aft_update(_HOOK, KeepLayout(model, mesh))
    return partition_report(model)


def _kernel_for(comm: Any, kernel: PartitionedCSR | None, mesh: Any) -> PartitionedCSR | None:
    """The per-device kernel for a projection's ``comm`` on ``mesh`` (``kernel``: the one it has)."""
    if type(comm).__name__ not in EVENT_LAYERS:
        return None  # element-wise (OneToOne) and dense layers: XLA partitions them itself
    if kernel is not None and kernel.stale(comm) is None:
        if kernel.mesh == mesh:
            return kernel
        return PartitionedCSR(kernel.to_rows(), mesh, kernel.source_layer, source=kernel.source)  # no read-out
    n_in, n_out = comm_sizes(comm)
    assert n_in is not None and n_out is not None  # event layers say their sizes
    rows = read_connectivity(comm, n_in, n_out)
    return PartitionedCSR(rows, mesh, type(comm).__name__, source=ReadOut(comm, rows))


def _place_global_random(mesh: Any) -> None:
    """Across processes, brainpy's global random key must be a global array too."""
    if jax.process_count() > 1:
        import brainstate  # brainpy >= 2.6, as partition() is

        rng = brainstate.random.DEFAULT  # a State whose value is the key
        rng.value = put(rng.value, sharding(mesh, 0, False))


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
    ('N.V', 'N.before_updates.halfproj_Expon_COBA_0.syn.g',
     'N.before_updates.halfproj_Expon_COBA_1.syn.g', 'N.t_last_spike')
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
    projections = projections_of(model)
    paths = variable_paths(model, every_state=True)
    variables = []
    for state, split, where in layout(model, mesh):
        value = state.value
        shape = tuple(np.shape(value))
        live = getattr(value, "sharding", None)
        placed = live is not None and live.is_equivalent_to(where, len(shape))
        nbytes = int(np.prod(where.shard_shape(shape))) * value.dtype.itemsize
        variables.append(VariableInfo(paths.get(id(state), "?"), shape, split, placed, nbytes))
    variables.sort(key=lambda v: v.path)
    infos = []
    for p in projections:
        kind = ("fused" if getattr(p, "fused_call", None) is not None else
                "partitioned" if p.kernel is not None else "XLA")
        infos.append(ProjectionInfo(p.name, p.post.name, type(p.comm).__name__, kind))
    calls = []
    for p in projections:
        if p.kernel is not None and getattr(p, "fused_call", None) is None:
            calls.append(CallInfo(p.name, p.post.name, p.kernel.synapses, p.kernel.slots_per_device,
                                  p.kernel.nbytes_per_device))
    for post in unique(p.post for p in projections):
        call = fused_call_of(post)
        if call is not None and isinstance(call.kernel, PartitionedCSR):
            k = call.kernel
            calls.append(CallInfo(f"{post.name} fused call", post.name, k.synapses, k.slots_per_device,
                                  k.nbytes_per_device))
    posts = tuple((post.name, post.num, post.num // n_dev) for post in unique(p.post for p in projections))
    return Partition(mesh, tuple(variables), tuple(infos), tuple(calls), posts)
