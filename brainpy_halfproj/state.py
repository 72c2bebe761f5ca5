"""Drop-in replacement for ``brainpy.state`` (brainpy >= 2.9, Python >= 3.12).

Every public name of ``brainpy.state`` resolves here to the very same object, except
``AlignPostProj`` and ``align_post_projection``, which are this plugin's: they merge
synapses by value (see :class:`~brainpy_halfproj.MergeKey`) instead of by ``str()`` of the
descriptor arguments. Also here: :func:`audit`, which records the descriptors of *stock*
``brainpy.state`` projections while unchanged code builds a network, so that
:func:`~brainpy_halfproj.merge_report` can check upstream's merges::

    import brainpy_halfproj.state as bst   # instead of: import brainpy.state as bst

Names are forwarded lazily with a module ``__getattr__``; importing this module changes
nothing in ``brainpy``.

Examples
--------
>>> import brainpy
>>> import brainpy_halfproj.state as bst
>>> bst.LIF is brainpy.state.LIF
True
>>> bst.AlignPostProj is brainpy.state.AlignPostProj
False
>>> issubclass(bst.AlignPostProj, brainpy.state.AlignPostProj)
True
"""
from __future__ import annotations

import sys
from typing import Any

from ._compat import BRAINPY_VERSION as _BRAINPY_VERSION

if _BRAINPY_VERSION < (2, 9):
    import brainpy as _bp

    raise ImportError(
        f"brainpy_halfproj.state needs brainpy >= 2.9 (its brainpy.state API on brainstate 0.6), which needs "
        f"Python >= 3.12; this is brainpy {_bp.__version__} on Python {sys.version_info.major}."
        f"{sys.version_info.minor}. Install brainpy 2.9 on Python 3.12 or later (pip install 'brainpy-halfproj[cpu]' "
        f"there), or use brainpy_halfproj.dyn with this brainpy."
    )

import brainpy.state as _upstream  # noqa: E402

from ._state_fused import StateFusedCall as StateFusedCall  # noqa: E402
from ._state_projections import AlignPostProj as AlignPostProj  # noqa: E402
from ._state_projections import align_post_projection as align_post_projection  # noqa: E402
from ._state_registry import StateMergeGroup as StateMergeGroup  # noqa: E402
from ._state_report import Audit as Audit  # noqa: E402
from ._state_report import audit as audit  # noqa: E402

_OURS = {"AlignPostProj", "align_post_projection", "audit", "Audit", "StateMergeGroup", "StateFusedCall"}

__all__ = sorted(set(_upstream.__all__) | _OURS)


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    try:
        return getattr(_upstream, name)
    except AttributeError:
        raise AttributeError(
            f"module 'brainpy_halfproj.state' has no attribute {name!r} (nor has brainpy.state)"
        ) from None


def __dir__() -> list[str]:
    return __all__
