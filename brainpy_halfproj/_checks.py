"""Argument validation for the projections: clear errors at construction time.

Upstream accepts wrong kinds and sizes and fails later, inside the compiled loop,
with ``TypeError: add got incompatible shapes`` or ``NotImplementedError``. Every
check here raises at construction (or at the first call, for the spike input),
with a message that names the projection, the argument, what was expected, what
was given and how to fix it.
"""
from __future__ import annotations

import numbers
from typing import Any, Protocol, runtime_checkable

import brainpy as bp

from ._compat import ParamDescriber

__all__ = ["AlignPostSynapse", "ConductanceBinder"]


@runtime_checkable
class AlignPostSynapse(Protocol):
    """What an align-post projection calls on its synapse: ``add_current``."""

    def add_current(self, x: Any) -> None: ...


@runtime_checkable
class ConductanceBinder(Protocol):
    """What an align-post projection calls on its output: ``bind_cond``."""

    def bind_cond(self, conductance: Any) -> None: ...


def who(proj: Any) -> str:
    return f"{type(proj).__name__} {proj.name!r}"


def _kind(value: Any) -> str:
    if isinstance(value, ParamDescriber):
        return f"a descriptor {value.cls.__name__}.desc(...)"
    return f"{type(value).__name__} {value!r}" if isinstance(value, (int, float, str)) else f"a {type(value).__name__}"


def dynamical_system(proj: Any, arg: str, value: Any, example: str) -> None:
    if not isinstance(value, bp.DynamicalSystem):
        raise TypeError(
            f"{who(proj)}: `{arg}` must be a brainpy DynamicalSystem such as {example}, "
            f"but got {_kind(value)}."
        )


def post_group(proj: Any, post: Any) -> None:
    dynamical_system(proj, "post", post, "bp.dyn.LifRef(4000)")
    if not hasattr(post, "add_inp_fun"):
        raise TypeError(
            f"{who(proj)}: `post` must accept input functions (brainpy's SupportInputProj, "
            f"e.g. a neuron group like bp.dyn.LifRef), but {type(post).__name__} has no add_inp_fun()."
        )


def descriptor(proj: Any, arg: str, value: Any, method: str) -> None:
    """``value`` must be ``SomeClass.desc(...)`` of a class that has ``method``."""
    example = "bp.dyn.Expon.desc(size=..., tau=...)" if arg == "syn" else "bp.dyn.COBA.desc(E=...)"
    if not isinstance(value, ParamDescriber):
        if isinstance(value, bp.DynamicalSystem):
            fix = (f"use {type(value).__name__}.desc(...) with the same arguments "
                   f"(the merging projection builds the shared instance itself)")
        else:
            fix = f"use a descriptor such as {example}"
        raise TypeError(f"{who(proj)}: `{arg}` must be a descriptor, but got {_kind(value)}; {fix}.")
    cls = value.cls
    if not (isinstance(cls, type) and issubclass(cls, bp.DynamicalSystem) and callable(getattr(cls, method, None))):
        raise TypeError(
            f"{who(proj)}: `{arg}` describes {getattr(cls, '__name__', cls)!s}, which has no {method}() "
            f"method; align-post projections need one, e.g. {example}."
        )


def instance(proj: Any, arg: str, value: Any, protocol: type, method: str, merging_variant: str) -> None:
    """``value`` must be a built DynamicalSystem that has ``method``.

    ``merging_variant`` names the plugin's merging class to suggest for a descriptor
    (``HalfProjAlignPostMg`` for ``HalfProjAlignPost`` and its subclasses).
    """
    example = "bp.dyn.Expon(size, tau=...)" if arg == "syn" else "bp.dyn.COBA(E=...)"
    if isinstance(value, ParamDescriber):
        raise TypeError(
            f"{who(proj)}: `{arg}` must be an instance, but got {_kind(value)}; build it first "
            f"({value.cls.__name__}(...)), or use the merging variant {merging_variant}, which takes descriptors."
        )
    if not (isinstance(value, bp.DynamicalSystem) and isinstance(value, protocol)):
        raise TypeError(
            f"{who(proj)}: `{arg}` must be a DynamicalSystem with a {method}() method such as "
            f"{example}, but got {_kind(value)}."
        )


def comm_sizes(comm: Any) -> tuple[int | None, int | None]:
    """``(num_in, num_out)`` of a comm layer, ``None`` where the layer does not say."""
    n_in, n_out = getattr(comm, "num_in", None), getattr(comm, "num_out", None)
    conn = getattr(comm, "conn", None)
    if n_in is None and conn is not None:  # CSR layers: transpose=True (the default) maps pre -> post
        n_in, n_out = getattr(conn, "pre_num", None), getattr(conn, "post_num", None)
        if not getattr(comm, "transpose", True):
            n_in, n_out = n_out, n_in
    return _as_int(n_in), _as_int(n_out)


def _as_int(n: Any) -> int | None:
    """``n`` as an int if it is an integer of any kind (``int``, ``numpy.int64``, ...), else ``None``."""
    return int(n) if isinstance(n, numbers.Integral) and not isinstance(n, bool) else None


def same_size(proj: Any, arg: str, actual: Any, expected: Any, against: str, fix: str) -> None:
    if tuple(actual) != tuple(expected):
        raise ValueError(
            f"{who(proj)}: the size of `{arg}` is {tuple(actual)}, but {against} has size "
            f"{tuple(expected)}; {fix}."
        )


def spikes(proj: Any, x: Any, n_in: int | None) -> None:
    shape = getattr(x, "shape", None)
    if n_in is not None and shape is not None and (len(shape) == 0 or shape[-1] != n_in):
        raise ValueError(
            f"{who(proj)}: the spike input has shape {tuple(shape)}, but `comm` expects {n_in} "
            f"presynaptic neurons (last axis); pass the slice of spikes that belongs to this "
            f"projection's presynaptic population."
        )
