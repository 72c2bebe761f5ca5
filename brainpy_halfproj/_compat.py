"""Everything that differs between the brainpy lines we support, in one place.

Supported lines
---------------
* brainpy 2.9.x (current, Python 3.12+) and 2.8.x (Python 3.11); event kernels from
  ``brainevent``,
* brainpy 2.5.0.post20240308 (legacy; event kernels from ``brainpylib``).

Only public brainpy names are used elsewhere in the package; the few things that
are private or moved between lines are resolved here.
"""
from __future__ import annotations

import math
import re

import brainpy as bp

__all__ = [
    "BRAINPY_VERSION",
    "ParamDescriber",
    "register_delay_by_return",
    "delay_identifier",
    "Delay",
    "LEGACY_ALIASES",
    "upstream_dyn_names",
    "event_kernel_library",
    "jit_realised_prob",
    "jit_nearest_prob",
]


def _parse_version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


#: ``(major, minor, patch)`` of the installed brainpy.
BRAINPY_VERSION: tuple[int, ...] = _parse_version(bp.__version__)

#: The descriptor class returned by ``bp.dyn.Expon.desc(...)`` (brainstate's on 2.8,
#: brainpy's own on 2.5). Both expose ``.cls``, ``.args`` and ``.kwargs``.
ParamDescriber = bp.mixin.ParamDescriber

# ``bp.delay`` is public on 2.8 but not on 2.5. ``Delay``: the base class of brainpy's delays.
try:  # brainpy >= 2.6
    from brainpy.delay import Delay, delay_identifier, register_delay_by_return
except ImportError:  # brainpy 2.5
    from brainpy._src.delay import Delay, delay_identifier, register_delay_by_return

#: Legacy names that upstream still serves from ``bp.dyn``: alias -> current name.
#: On 2.5 they come from a module ``__getattr__`` and are not in ``dir(bp.dyn)``.
LEGACY_ALIASES: dict[str, str] = {
    "ProjAlignPostMg1": "HalfProjAlignPostMg",
    "ProjAlignPostMg2": "FullProjAlignPostMg",
    "ProjAlignPost1": "HalfProjAlignPost",
    "ProjAlignPost2": "FullProjAlignPost",
}


def upstream_dyn_names() -> list[str]:
    """The public names of ``bp.dyn`` (those ``dir`` shows, without underscores)."""
    return sorted(n for n in dir(bp.dyn) if not n.startswith("_"))


def event_kernel_library() -> str:
    """Name of the kernel library that serves brainpy's event operators on this line.

    Returns ``"brainevent"`` on brainpy >= 2.6 and ``"brainpylib"`` on 2.5.
    """
    return "brainevent" if BRAINPY_VERSION >= (2, 6) else "brainpylib"


def _jit_prob_numerator() -> float:
    """``c`` of the attainable JIT probabilities ``c / k`` on this line."""
    return 2.0 if event_kernel_library() == "brainevent" else 1.0


def jit_realised_prob(prob: float) -> float:
    """Connection probability that this line's JIT-connectivity kernels realise.

    The kernels (``bp.dnn.EventJitFP*Linear``) walk each row in skips drawn
    uniformly, so only probabilities ``c / k`` for whole ``k`` come out:
    brainevent (2.6+) draws skips in ``[1, ceil(2/p))``, which realises
    ``2 / ceil(2/p)``; brainpylib (2.5) in ``[1, 2 ceil(1/p) - 1]``, which
    realises ``1 / ceil(1/p)``.  Both are exact for ``p = 0.02``; for large
    ``p`` they fall short (0.466 -> 0.40 on 2.8, 0.333 on 2.5).
    """
    c = _jit_prob_numerator()
    return c / math.ceil(c / prob)


def jit_nearest_prob(prob: float) -> tuple[float, float]:
    """``(kernel_prob, realised)``: what to pass so the realised probability is nearest ``prob``.

    ``realised`` is the attainable ``c / k`` nearest ``prob`` (in ratio), and
    ``kernel_prob`` a value just above it that the kernel maps to the same
    ``k``.
    """
    c = _jit_prob_numerator()
    k = c / prob
    candidates = [kk for kk in {math.floor(k), math.ceil(k)} if kk >= c]
    best = min(candidates, key=lambda kk: abs(math.log(c / kk / prob)))
    return c / best * (1.0 + 1e-4), c / best
