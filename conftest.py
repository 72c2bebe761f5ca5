"""Doctest collection across brainpy lines.

The brainpy.state microcircuit (``models/microcircuit_state.py``) is collected on brainpy >= 2.9 only.

The examples of ``partition`` and friends run a model on a device mesh, which the
brainpy 2.5 line (brainpylib kernels, JAX 0.4.25) cannot do: there ``partition`` raises
``PartitionError`` (tested in ``tests/test_partition.py``), so those examples are skipped
with that reason instead of failing.

The ``brainpy.state`` front (``brainpy_halfproj/state.py`` and ``_state_*.py``) needs
brainpy >= 2.9: on older lines its modules raise ImportError when imported (tested in
``tests/test_state_dropin.py``), so they are not collected for doctests there.
"""
import pytest

from brainpy_halfproj._compat import BRAINPY_VERSION

collect_ignore_glob = [] if BRAINPY_VERSION >= (2, 9) else ["brainpy_halfproj/state.py", "brainpy_halfproj/_state_*.py",
                                                           "tests/_state_nets.py",
                                                           "brainpy_halfproj/models/microcircuit_state.py"]

_NEEDS_PARTITION = {
    "brainpy_halfproj._partitioned_csr.PartitionedCSR",
    "brainpy_halfproj._partitioned_csr.PartitionedCSR.to_rows",
    "brainpy_halfproj._partition.CallInfo",
    "brainpy_halfproj._partition.Partition",
    "brainpy_halfproj._partition.ProjectionInfo",
    "brainpy_halfproj._partition.VariableInfo",
    "brainpy_halfproj._partition.partition",
    "brainpy_halfproj._partition.partition_report",
    "brainpy_halfproj._hlo.step_collectives",
}


#: Doctests outside the brainpy.state modules whose examples use brainpy.state.
_NEEDS_STATE = {"brainpy_halfproj._report.Finding"}


def pytest_collection_modifyitems(config, items):
    from brainpy_halfproj._compat import event_kernel_library

    if BRAINPY_VERSION < (2, 9):
        skip_state = pytest.mark.skip(reason="the example uses brainpy.state, which needs brainpy >= 2.9")
        for item in items:
            if isinstance(item, pytest.DoctestItem) and item.name in _NEEDS_STATE:
                item.add_marker(skip_state)
    if event_kernel_library() == "brainevent":
        return
    skip = pytest.mark.skip(reason="partition() needs brainpy >= 2.8 (brainevent kernels, jax.shard_map); "
                                   "on this line it raises PartitionError")
    for item in items:
        if isinstance(item, pytest.DoctestItem) and item.name in _NEEDS_PARTITION:
            item.add_marker(skip)


def pytest_report_header(config):
    """Say which brainpy_halfproj the tests import: the source tree, or an installed wheel (CI's wheel job)."""
    import os

    import brainpy_halfproj

    return f"brainpy_halfproj {brainpy_halfproj.__version__}: {os.path.realpath(brainpy_halfproj.__file__)}"
