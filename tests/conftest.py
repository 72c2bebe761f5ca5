"""Fixtures shared by the test modules; the networks they build are in ``_nets.py``."""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")

import brainpy as bp  # noqa: E402
import brainpy.math as bm  # noqa: E402
import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

from ._nets import CLASSES  # noqa: E402

# No per-example time limit for property tests: they assert behaviour, never speed, and CI
# runs four suites at once on two cores (an example can wait hundreds of ms for a core).
settings.register_profile("halfproj", deadline=None)
settings.load_profile("halfproj")

# The CPU affinity this test session started with, before any test ran: a test that calls
# code which pins the process would otherwise hide the pinning from the tests that follow.
START_AFFINITY = frozenset(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None


@pytest.fixture
def start_affinity():
    """The CPUs this process could run on when the session started (``None``: no affinity API)."""
    return START_AFFINITY


@pytest.fixture(params=CLASSES)
def cls_name(request):
    return request.param


@pytest.fixture
def post():
    return bp.dyn.LifRef(40)


@pytest.fixture(autouse=True)
def _fresh_environment():
    """Every test starts from brainpy's default mode and dt, and leaves native kernels off."""
    from brainpy_halfproj import use_native_kernels

    bm.set_mode(bm.NonBatchingMode())
    yield
    bm.set_mode(bm.NonBatchingMode())
    bm.set_dt(0.1)
    use_native_kernels(False)  # the process-wide switch: a test that sets it must not change the next one


@pytest.fixture
def expon():
    return bp.dyn.Expon.desc(40, tau=5.)


@pytest.fixture
def coba():
    return bp.dyn.COBA.desc(E=0.)


@pytest.fixture
def jit_comm():
    def make(n_in=32, n_out=40, weight=0.6):
        return bp.dnn.EventJitFPHomoLinear(n_in, n_out, prob=0.1, weight=weight)
    return make
