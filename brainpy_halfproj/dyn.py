"""Drop-in replacement for ``brainpy.dyn``.

Every public name of ``bp.dyn`` resolves here to the very same object, except the
align-post projection family and its legacy aliases, which are this plugin's::

    import brainpy_halfproj.dyn as dyn   # instead of: from brainpy import dyn

Names are forwarded lazily with a module ``__getattr__``; importing this module
changes nothing in ``brainpy``.

Examples
--------
>>> import brainpy as bp
>>> import brainpy_halfproj as bhp
>>> bhp.dyn.LifRef is bp.dyn.LifRef
True
>>> bhp.dyn.HalfProjAlignPostMg is bhp.HalfProjAlignPostMg
True
>>> bhp.dyn.ProjAlignPostMg1 is bhp.HalfProjAlignPostMg
True
"""
from __future__ import annotations

from typing import Any

import brainpy as _bp

from ._compat import LEGACY_ALIASES as _LEGACY_ALIASES
from ._compat import upstream_dyn_names as _upstream_dyn_names
from ._projections import FullProjAlignPost as FullProjAlignPost
from ._projections import FullProjAlignPostMg as FullProjAlignPostMg
from ._projections import HalfProjAlignPost as HalfProjAlignPost
from ._projections import HalfProjAlignPostMg as HalfProjAlignPostMg

ProjAlignPostMg1 = HalfProjAlignPostMg
ProjAlignPostMg2 = FullProjAlignPostMg
ProjAlignPost1 = HalfProjAlignPost
ProjAlignPost2 = FullProjAlignPost

_OURS = {"HalfProjAlignPostMg", "FullProjAlignPostMg", "HalfProjAlignPost", "FullProjAlignPost", *_LEGACY_ALIASES}

__all__ = sorted(set(_upstream_dyn_names()) | _OURS)


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    try:
        return getattr(_bp.dyn, name)
    except AttributeError:
        raise AttributeError(
            f"module 'brainpy_halfproj.dyn' has no attribute {name!r} (nor has brainpy.dyn)"
        ) from None


def __dir__() -> list[str]:
    return __all__
