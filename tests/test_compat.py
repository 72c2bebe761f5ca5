"""Which brainpy line is installed, and which kernel library serves the event operations."""

import brainpy as bp
import brainpy.math as bm
import jax

import brainpy_halfproj as bhp
from brainpy_halfproj import _compat
from brainpy_halfproj._hlo import kernel_targets


def _custom_call_targets(fn, *args):
    return kernel_targets(jax.jit(fn).lower(*args).as_text())


def _declared_brainpy_range():
    """The brainpy specifier that pyproject.toml declares for this interpreter (no extras)."""
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    reqs = [Requirement(r) for r in requires("brainpy-halfproj")]
    active = [r for r in reqs if r.name == "brainpy" and (r.marker is None or r.marker.evaluate({"extra": ""}))]
    assert len(active) == 1, [str(r) for r in active]
    return active[0].specifier


def test_installed_brainpy_is_in_the_declared_range():
    """Fails when the installed brainpy is one we do not declare (and so do not test)."""
    from importlib.metadata import version

    installed = version("brainpy")  # brainpy 2.5.0.post20240308 says "2.5.0" in bp.__version__
    spec = _declared_brainpy_range()
    assert spec.contains(installed, prereleases=True), (installed, str(spec))


def test_declared_range_is_the_tested_lines():
    import sys

    from packaging.version import Version

    spec = _declared_brainpy_range()
    if sys.version_info >= (3, 12):
        tested, untested = ["2.9.0"], ["2.8.2", "2.5.0.post20240308", "2.10.0"]
    else:
        tested, untested = ["2.5.0.post20240308", "2.8.2"], ["2.6.1", "2.7.8", "2.8.1", "2.9.0", "2.5.0"]
    assert [v for v in tested if Version(v) not in spec] == []
    assert [v for v in untested if Version(v) in spec] == []


def test_event_kernels_come_from_the_lines_kernel_library():
    post = bp.dyn.LifRef(30)
    proj = bhp.HalfProjAlignPostMg(bp.dnn.EventJitFPHomoLinear(20, 30, prob=0.1, weight=0.6),
                                   bp.dyn.Expon.desc(30, tau=5.), bp.dyn.COBA.desc(E=0.), post)
    targets = _custom_call_targets(lambda x: proj.comm(x), bm.zeros(20, dtype=bool).value)
    assert targets, "the event operation must be an external kernel, not plain XLA"
    if _compat.event_kernel_library() == "brainevent":
        assert _compat.BRAINPY_VERSION >= (2, 6)
        assert all(t.startswith("brainevent_") for t in targets), targets
    else:
        from brainpylib import cpu_ops

        assert _compat.BRAINPY_VERSION < (2, 6)
        assert targets <= set(cpu_ops.registrations()), targets
