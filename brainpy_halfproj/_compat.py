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

import re
from typing import Any

import brainpy as bp
import brainpy.math as bm

__all__ = [
    "BRAINPY_VERSION",
    "ParamDescriber",
    "register_delay_by_return",
    "assign",
    "delay_identifier",
    "Delay",
    "LEGACY_ALIASES",
    "upstream_dyn_names",
    "event_kernel_library",
    "jit_prob_numerator",
    "argument_state",
    "is_argument_state",
    "State",
    "is_state_module",
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


def assign(var: Any, value: Any) -> None:
    """Set the value of a state variable found by ``model.vars()``.

    On brainpy 2.5 a ``bm.random.RandomState`` is such a variable, but its ``value``
    property has no setter; its public ``seed(key)`` sets the key. (On 2.8 a
    RandomState is a brainstate state, which ``vars()`` does not list.)
    """
    if BRAINPY_VERSION < (2, 6) and isinstance(var, bm.random.RandomState):
        var.seed(value)
    else:
        var.value = value


def upstream_dyn_names() -> list[str]:
    """The public names of ``bp.dyn`` (those ``dir`` shows, without underscores)."""
    return sorted(n for n in dir(bp.dyn) if not n.startswith("_"))


def event_kernel_library() -> str:
    """Name of the kernel library that serves brainpy's event operators on this line.

    Returns ``"brainevent"`` on brainpy >= 2.6 and ``"brainpylib"`` on 2.5.
    """
    return "brainevent" if BRAINPY_VERSION >= (2, 6) else "brainpylib"


def jit_prob_numerator() -> float:
    """``c`` of the connection probabilities ``c / k`` that this line's JIT kernels realise.

    The kernels (``bp.dnn.EventJitFP*Linear``) walk each row in skips drawn
    uniformly, so only probabilities ``c / k`` for whole ``k`` come out:
    brainevent (2.6+) draws skips in ``[1, ceil(2/p))``, which realises
    ``2 / ceil(2/p)``; brainpylib (2.5) in ``[1, 2 ceil(1/p) - 1]``, which
    realises ``1 / ceil(1/p)``. Pass it to
    :func:`brainpy_halfproj.models.potjans2014.derive` (``jit_numerator``).

    Returns ``2.0`` on brainpy >= 2.6 (brainevent) and ``1.0`` on 2.5 (brainpylib).
    """
    return 2.0 if event_kernel_library() == "brainevent" else 1.0


try:  # brainpy >= 2.6: every state (variables, random keys, kernel blocks) is a brainstate.State
    from brainstate import State
except ImportError:  # brainpy 2.5: variables are all there is
    State = bm.Variable


def argument_state(value: Any) -> Any:
    """Hold a large constant array so that compiled programs take it as an argument.

    Closed over as a plain array, XLA embeds it in every compiled program as a constant: a
    second copy in memory (several on brainpy 2.5). Held as state, ``bm.jit``/``bm.for_loop``
    pass it in instead. On brainpy >= 2.6 it is a ``brainstate.State``: programs that only
    read it take it as an input and return nothing, and brainpy's ``vars()`` (so checkpoints)
    does not list it. On 2.5 it is a ``bm.Variable`` (that line has no other kind of state);
    checkpoints skip it (see ``is_argument_state``).
    """
    if event_kernel_library() == "brainevent":
        import brainstate

        return brainstate.State(value)
    return _ArgumentVariable(value)


def is_argument_state(var: Any) -> bool:
    """Whether ``var`` was made by :func:`argument_state` (not model state to checkpoint)."""
    return isinstance(var, _ArgumentVariable)


class _ArgumentVariable(bm.Variable):
    """brainpy 2.5: a variable that holds a constant of the model, not its state."""


def is_state_module(obj: Any) -> bool:
    """Whether ``obj`` is a brainstate module (a ``brainpy.state`` network or group), without importing brainstate.

    ``bp.dyn`` objects are not brainstate modules on any line (brainpy's ``DynamicalSystem``
    only mixes in brainstate's ``Mixin`` on 2.8/2.9).
    """
    return any(c.__name__ == "Module" and c.__module__.startswith("brainstate.") for c in type(obj).__mro__)
