"""Which brainpy line is installed, and which kernel library serves the event operations."""
import re

import brainpy as bp
import brainpy.math as bm
import jax

import brainpy_halfproj as bhp
from brainpy_halfproj import _compat


def _custom_call_targets(fn, *args):
    text = jax.jit(fn).lower(*args).as_text()
    return set(re.findall(r"custom_call @(\w+)", text)) | set(re.findall(r'call_target_name = "(\w+)"', text))


def test_version_is_in_the_supported_range():
    assert (2, 5) <= _compat.BRAINPY_VERSION < (2, 9)


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
