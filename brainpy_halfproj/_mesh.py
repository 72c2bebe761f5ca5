"""The device mesh a partitioned model lives on, and placing values on it.

JAX's own machinery only (``Mesh``, ``NamedSharding``, ``jax.make_array_from_callback``):
the mesh has one axis, :data:`AXIS`, along which post groups' neurons are split. Values
are global arrays, so the same code serves one process and several (``jax.distributed``).
"""
from __future__ import annotations

from typing import Any

import brainpy.math as bm
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = ["AXIS", "as_mesh", "sharding", "put", "gather"]

#: Name of the mesh axis the neurons are split along.
AXIS = "neurons"


def as_mesh(devices: Any) -> Mesh:
    """A one-axis mesh from what :func:`brainpy_halfproj.partition` accepts as ``devices``."""
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


def sharding(mesh: Mesh, ndim: int, split: bool) -> NamedSharding:
    """Split along the last axis (the neurons), or replicated."""
    spec = PartitionSpec(*([None] * (ndim - 1) + [AXIS])) if split and ndim else PartitionSpec()
    return NamedSharding(mesh, spec)


def put(value: Any, where: NamedSharding) -> Any:
    """``value`` as a global array with sharding ``where`` (works across processes)."""
    if isinstance(value, jax.Array) and jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key):
        # typed random keys: place their integer data (one trailing axis more)
        data_sharding = NamedSharding(where.mesh, PartitionSpec(*where.spec, *([None] * (
            jax.random.key_data(value).ndim - len(where.spec)))))
        data = put(jax.random.key_data(value), data_sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(value))
    if isinstance(value, jax.Array) and value.sharding == where:
        return value
    if isinstance(value, jax.Array) and not value.is_fully_addressable:
        return jax.jit(lambda x: x, out_shardings=where)(value)
    host = np.asarray(value)
    return jax.make_array_from_callback(host.shape, where, lambda index: host[index])


def gather(x: Any) -> np.ndarray:
    """``x`` (e.g. a raster returned by ``bm.for_loop``) as one NumPy array in every process.

    In one process this is ``np.asarray``; across processes (``jax.distributed``) it
    all-gathers the pieces with ``jax.experimental.multihost_utils.process_allgather``.

    Examples
    --------
    >>> import brainpy.math as bm
    >>> import brainpy_halfproj as bhp
    >>> bhp.gather(bm.arange(3)).tolist()
    [0, 1, 2]
    """
    x = bm.as_jax(x)
    if not isinstance(x, jax.Array) or x.is_fully_addressable:
        return np.asarray(x)
    from jax.experimental import multihost_utils  # only across processes

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
