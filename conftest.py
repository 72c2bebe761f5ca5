"""Doctest collection across brainpy lines.

The brainpy.state microcircuit (``models/microcircuit_state.py``) is collected on brainpy >= 2.9 only.

The examples of ``partition`` and friends run a model on a device mesh, which the
brainpy 2.5 line (brainpylib kernels, JAX 0.4.25) cannot do: there ``partition`` raises
``PartitionError`` (tested in ``tests/test_partition.py``), so those examples are skipped
with that reason instead of failing.
"""
import pytest

from brainpy_halfproj._compat import BRAINPY_VERSION

# brainpy.state exists on brainpy >= 2.9 only: below, the module that builds on it is not collected
# (its examples would fail, and on 2.5 it cannot be imported at all).
collect_ignore = ["brainpy_halfproj/models/microcircuit_state.py"] if BRAINPY_VERSION < (2, 9) else []

_NEEDS_PARTITION = {
    "brainpy_halfproj._partition.PartitionedCSR",
    "brainpy_halfproj._partition.PartitionedCSR.to_rows",
    "brainpy_halfproj._partition.partition",
    "brainpy_halfproj._partition.partition_report",
    "brainpy_halfproj._partition.step_collectives",
}


def pytest_collection_modifyitems(config, items):
    from brainpy_halfproj._compat import event_kernel_library

    if event_kernel_library() == "brainevent":
        return
    skip = pytest.mark.skip(reason="partition() needs brainpy >= 2.8 (brainevent kernels, jax.shard_map); "
                                   "on this line it raises PartitionError")
    for item in items:
        if isinstance(item, pytest.DoctestItem) and item.name in _NEEDS_PARTITION:
            item.add_marker(skip)
