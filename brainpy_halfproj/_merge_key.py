"""The merge key: when two projections may share one synapse state.

Why the key is built this way
-----------------------------
Upstream brainpy stores a merged synapse under a *string* built from
``ParamDescriber.identifier``, i.e. from ``str()`` of the descriptor arguments.
That string is both too coarse and too fine:

* too coarse: numpy abbreviates long arrays in ``str``, so two different
  2000-element ``tau`` arrays print alike and are merged -- a silently wrong
  simulation;
* too fine: ``Expon.desc(4000, tau=5.)`` and ``Expon.desc(size=4000, tau=5.)``,
  or ``tau=5`` and ``tau=5.``, print differently and are not merged -- a missed
  saving.

Here the key is a frozen value object. For each descriptor, the arguments are
bound to the class signature with defaults filled in (so positional/keyword,
keyword order and written-out defaults do not matter) and every value is put
into a canonical form:

==========================================  =====================================
value                                       compared by
==========================================  =====================================
``bool``                                    value (``True`` is not ``1``)
``int``, ``float``, numpy scalars           numeric value (``5 == 5.0``)
``str``, ``None``                           value
``tuple``, ``list``, ``dict``               type and canonical items
numpy / jax arrays, ``bm.Array``            shape, dtype and SHA-256 of the bytes
``bm.Variable`` (``bm.TrainVar``, ...)      identity: trainable state is never shared
``bp.init.Initializer``                     type and canonical attributes
``bm.Mode``, ``bm.Scaling``                 type and canonical attributes
a nested descriptor                         its own canonical spec
functions, classes, other callables         identity
==========================================  =====================================

Anything else cannot be put into canonical form; :func:`merge_key` then raises
:class:`UnkeyableError` and the projection gets a private synapse state (it
merges with nothing) and the merge report says why. A false merge must never
happen; a missed merge is only a missed saving.
"""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
import numbers
from typing import Any

import brainpy as bp
import brainpy.math as bm
import numpy as np

from ._compat import ParamDescriber

__all__ = ["MergeKey", "DescriptorSpec", "UnkeyableError", "merge_key", "describe"]


class UnkeyableError(ValueError):
    """A descriptor argument has no canonical form, so it cannot be merged safely.

    A merging projection with such an argument gets a private synapse state;
    :func:`merge_report` says why.

    Examples
    --------
    >>> import brainpy as bp
    >>> import brainpy_halfproj as bhp
    >>> try:
    ...     bhp.merge_key(bp.dyn.LifRef(4), bp.dyn.Expon.desc(4, tau=object()), bp.dyn.CUBA.desc())
    ... except bhp.UnkeyableError as err:
    ...     print(err)
    syn.tau has type builtins.object, which has no canonical form (supported: ...)
    """


class _ById:
    """Wraps an object so that it compares (and hashes) by identity only."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any):
        self.obj = obj

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ById) and other.obj is self.obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __repr__(self) -> str:
        obj = self.obj
        name = getattr(obj, "__qualname__", None) or getattr(obj, "name", None) or type(obj).__name__
        return f"<{name} id=0x{id(obj):x}>"


@dataclasses.dataclass(frozen=True)
class _ArrayValue:
    shape: tuple[int, ...]
    dtype: str
    sha256: str

    def __repr__(self) -> str:
        return f"array(shape={self.shape}, dtype={self.dtype}, sha256={self.sha256[:12]})"


@dataclasses.dataclass(frozen=True)
class _ObjectValue:
    """An object compared by its type and canonical attributes."""

    type: type
    attrs: tuple[tuple[str, Any], ...]

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={_fmt(v)}" for k, v in self.attrs)
        return f"{self.type.__name__}({inner})"


@dataclasses.dataclass(frozen=True)
class DescriptorSpec:
    """Canonical form of one descriptor: its class and bound arguments.

    Attributes
    ----------
    cls
        The class the descriptor builds.
    arguments
        ``(name, canonical value)`` pairs for every parameter of ``cls.__init__``,
        defaults filled in, in signature order.
    at_default
        Names of the arguments whose value equals the class default (left out or
        written out); :meth:`short` leaves them out. Not part of equality: it follows
        from ``cls`` and ``arguments``.

    Examples
    --------
    >>> import brainpy as bp
    >>> import brainpy_halfproj as bhp
    >>> spec = bhp.describe(bp.dyn.Expon.desc(4000, tau=5.))
    >>> spec.short(), spec == bhp.describe(bp.dyn.Expon.desc(size=4000, tau=5))
    ('Expon(size=4000, tau=5.0)', True)
    """

    cls: type
    arguments: tuple[tuple[str, Any], ...]
    at_default: frozenset[str] = dataclasses.field(default=frozenset(), compare=False)

    def __str__(self) -> str:
        """Every argument: ``Expon(size=4000, tau=5.0, sharding=None, ...)``."""
        return self._text(self.arguments)

    def short(self) -> str:
        """The arguments that differ from the class defaults: ``Expon(size=4000, tau=5.0)``."""
        return self._text(tuple((k, v) for k, v in self.arguments if k not in self.at_default))

    def _text(self, arguments: tuple[tuple[str, Any], ...]) -> str:
        inner = ", ".join(f"{k}={_fmt(v)}" for k, v in arguments)
        return f"{self.cls.__name__}({inner})"


@dataclasses.dataclass(frozen=True)
class MergeKey:
    """Identity of a shared synapse state: equal keys share one synapse and output.

    Build it with :func:`merge_key`. The post group is compared by identity, every
    other part by value (see the module docstring for the rules).

    Examples
    --------
    >>> import brainpy as bp
    >>> from brainpy_halfproj import merge_key
    >>> post = bp.dyn.LifRef(10)
    >>> a = merge_key(post, bp.dyn.Expon.desc(10, tau=5), bp.dyn.COBA.desc(E=0.))
    >>> b = merge_key(post, bp.dyn.Expon.desc(size=10, tau=5.0, method='exp_auto'),
    ...               bp.dyn.COBA.desc(0.))
    >>> a == b
    True
    >>> a == merge_key(post, bp.dyn.Expon.desc(10, tau=6.), bp.dyn.COBA.desc(E=0.))
    False
    """

    post: _ById
    out_label: str | None
    syn: DescriptorSpec
    out: DescriptorSpec
    mode: Any

    def __str__(self) -> str:
        """Every argument of both descriptors, and the label."""
        return f"{self.syn} -> {self.out}{self._label()}"

    def short(self) -> str:
        """``Expon(size=4000, tau=5.0) -> COBA(E=0.0)``: arguments at their defaults left out.

        The text :func:`~brainpy_halfproj.merge_report` shows for the key.
        """
        return f"{self.syn.short()} -> {self.out.short()}{self._label()}"

    def _label(self) -> str:
        return "" if self.out_label is None else f", out_label={self.out_label!r}"


def _fmt(value: Any) -> str:
    if isinstance(value, tuple) and value and value[0] in ("tuple", "list"):
        items = ", ".join(_fmt(v) for v in value[1])
        return f"({items}{',' if len(value[1]) == 1 else ''})" if value[0] == "tuple" else f"[{items}]"
    if isinstance(value, tuple) and value and value[0] == "dict":
        return "{" + ", ".join(f"{k!r}: {_fmt(v)}" for k, v in value[1]) + "}"
    if isinstance(value, tuple) and value and value[0] == "bool":
        return repr(value[1])
    return repr(value)


def _array_value(arr: np.ndarray) -> _ArrayValue:
    arr = np.ascontiguousarray(arr)
    digest = hashlib.sha256(arr.tobytes()).hexdigest()
    return _ArrayValue(tuple(int(s) for s in arr.shape), str(arr.dtype), digest)


def _object_value(obj: Any, path: str) -> _ObjectValue:
    attrs = tuple(sorted((k, _canonical(v, f"{path}.{k}")) for k, v in vars(obj).items()))
    return _ObjectValue(type(obj), attrs)


def _canonical(value: Any, path: str) -> Any:
    """Return a hashable value that is equal exactly when the inputs are equivalent."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return ("bool", bool(value))
    if isinstance(value, numbers.Number) and not isinstance(value, np.ndarray):
        if isinstance(value, numbers.Integral):
            return int(value)
        if isinstance(value, numbers.Real):
            return float(value)
        if isinstance(value, numbers.Complex):
            return complex(value)
    if isinstance(value, bm.Variable):  # before bm.Array: Variable subclasses it
        return _ById(value)
    if isinstance(value, (bm.Array, np.ndarray)) or _is_jax_array(value):
        try:
            return _array_value(np.asarray(value))
        except Exception as err:  # e.g. a jax tracer while building inside jit
            raise UnkeyableError(
                f"{path} is an array whose values are not known here ({type(value).__name__}: {err})"
            ) from None
    if isinstance(value, (tuple, list)):
        return (type(value).__name__, tuple(_canonical(v, f"{path}[{i}]") for i, v in enumerate(value)))
    if isinstance(value, dict):
        try:
            items = sorted(value.items())
        except TypeError:
            raise UnkeyableError(f"{path} is a dict whose keys cannot be sorted") from None
        return ("dict", tuple((k, _canonical(v, f"{path}[{k!r}]")) for k, v in items))
    if isinstance(value, ParamDescriber):
        return describe(value, path)
    if isinstance(value, (bp.init.Initializer, bm.Mode, bm.Scaling)):
        return _object_value(value, path)
    if callable(value):  # functions, classes, surrogate objects, ...
        return _ById(value)
    raise UnkeyableError(
        f"{path} has type {type(value).__module__}.{type(value).__qualname__}, which has no canonical "
        "form (supported: numbers, strings, None, arrays, bm.Variable, initializers, modes, "
        "tuples/lists/dicts of these, descriptors and callables)"
    )


def _is_jax_array(value: Any) -> bool:
    import jax

    return isinstance(value, jax.Array)


def describe(desc: Any, path: str = "desc") -> DescriptorSpec:
    """Canonical spec of a descriptor such as ``bp.dyn.Expon.desc(4000, tau=5.)``.

    Raises
    ------
    TypeError
        If the descriptor's arguments do not fit its class signature.
    UnkeyableError
        If an argument has no canonical form.

    Examples
    --------
    >>> import brainpy as bp
    >>> from brainpy_halfproj import describe
    >>> spec = describe(bp.dyn.COBA.desc(E=0))
    >>> str(spec)
    'COBA(E=0, sharding=None, name=None, scaling=None)'
    >>> spec.short()
    'COBA(E=0)'
    """
    cls = desc.cls
    signature = inspect.signature(cls.__init__)
    try:
        bound = signature.bind(None, *desc.args, **desc.kwargs)
    except TypeError as err:
        raise TypeError(
            f"{path}={cls.__name__}.desc(...) does not fit the signature of {cls.__name__}: {err}. "
            f"Check the arguments against {cls.__name__}{signature}."
        ) from None
    bound.apply_defaults()
    names = list(bound.arguments)[1:]  # drop ``self``
    arguments = tuple((name, _canonical(bound.arguments[name], f"{path}.{name}")) for name in names)
    at_default = frozenset(name for name, value in arguments
                           if _equals_default(signature.parameters[name].default, value, name))
    return DescriptorSpec(cls, arguments, at_default)


def _equals_default(default: Any, value: Any, name: str) -> bool:
    """Whether the canonical ``value`` is the parameter's ``default`` (``False`` if it has none)."""
    if default is inspect.Parameter.empty:
        return False
    try:
        return bool(_canonical(default, name) == value)
    except UnkeyableError:  # a default with no canonical form: show the argument
        return False


def merge_key(post: Any, syn: Any, out: Any, out_label: str | None = None, mode: Any = None) -> MergeKey:
    """Build the :class:`MergeKey` of a projection onto ``post``.

    Parameters
    ----------
    post
        The post-synaptic group (compared by identity).
    syn, out
        Descriptors, e.g. ``bp.dyn.Expon.desc(...)`` and ``bp.dyn.COBA.desc(...)``.
    out_label
        The projection's ``out_label``.
    mode
        The computing mode the synapse is built in (``None``: brainpy's default mode).

    Returns
    -------
    MergeKey

    Raises
    ------
    UnkeyableError
        If an argument has no canonical form; such a projection must not merge.

    Examples
    --------
    >>> import brainpy as bp
    >>> from brainpy_halfproj import merge_key
    >>> post = bp.dyn.LifRef(4)
    >>> key = merge_key(post, bp.dyn.Expon.desc(4, tau=5.), bp.dyn.CUBA.desc(), out_label='E')
    >>> key.syn.cls.__name__, dict(key.syn.arguments)['tau'], key.out_label
    ('Expon', 5.0, 'E')
    >>> key == merge_key(post, bp.dyn.Expon.desc(4, tau=5.), bp.dyn.CUBA.desc(), out_label='I')
    False
    """
    effective_mode = bm.get_mode() if mode is None else mode
    return MergeKey(
        post=_ById(post),
        out_label=out_label,
        syn=describe(syn, "syn"),
        out=describe(out, "out"),
        mode=_canonical(effective_mode, "mode"),
    )
