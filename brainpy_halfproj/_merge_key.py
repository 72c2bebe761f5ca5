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
a size (``size``, ``in_size``)              its shape: ``N``, ``(N,)`` and ``[N]`` alike
``tuple``, ``list``, ``dict``               type and canonical items
numpy / jax arrays, ``bm.Array``            shape, dtype and SHA-256 of the bytes
``bm.Variable`` (``bm.TrainVar``, ...)      identity: trainable state is never shared
brainstate ``State``, ``ParamState``        identity (the same rule, on brainpy.state)
brainunit ``Quantity``                      dimension and value in SI units: ``5 ms``
                                            equals ``0.005 s`` and ``5. ms``, never ``5 mV``;
                                            a Quantity array by dimension, shape, dtype
                                            and SHA-256 of its SI values (float64)
brainunit ``Unit`` (``u.volt``)             dimension and SI factor
``bp.init.Initializer``, braintools and     type and canonical attributes
brainstate initialisers
``bm.Mode``, ``bm.Scaling``                 type and canonical attributes
a nested descriptor                         its own canonical spec
functions, classes, other callables         identity
==========================================  =====================================

The same key serves both fronts: ``brainpy_halfproj.dyn`` (``bp.dyn`` descriptors) and
``brainpy_halfproj.state`` (``brainpy.state`` descriptors, brainpy >= 2.9). The brainstate,
brainunit and braintools types are looked up lazily and only where installed, so this module
imports on every brainpy line.

A Quantity's SI value is its mantissa times the unit's power of ten, rounded once (a division
for negative powers): exactly equal values written in different units give the same float64.
Two float64 values so close that they round to the same SI float64 (a relative difference
below about 1e-16) compare equal; float32 and integer values never collide this way.

Anything else cannot be put into canonical form; :func:`merge_key` then raises
:class:`UnkeyableError` and the projection gets a private synapse state (it
merges with nothing) and the merge report says why. A false merge must never
happen; a missed merge is only a missed saving.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import numbers
from typing import Any, NamedTuple

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
class _QuantityValue:
    """A brainunit Quantity (or Unit) compared by dimension and SI value.

    ``value`` is the SI value (a float, or an :class:`_ArrayValue` whose hash is over the
    float64 SI values and whose dtype is the original one); ``text`` is how the first one
    seen was written, for display only.
    """

    kind: str  # "quantity" or "unit": a Unit is not a Quantity of one unit
    dim: Any
    value: Any
    text: str = dataclasses.field(compare=False)

    def __repr__(self) -> str:
        return self.text


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

    def canonical_text(self) -> str:
        """A text that equal keys share, whoever wrote their arguments how: what checkpoints record.

        Numbers are written by value (``5`` and ``5.0`` alike), Quantities by SI value and
        dimension (``5 ms`` and ``0.005 s`` alike), every argument is written out, and parts
        compared by identity (trainable variables, functions) by their names only (the post
        group is left out: a checkpoint records its path).

        Examples
        --------
        >>> import brainpy as bp
        >>> from brainpy_halfproj import merge_key
        >>> post = bp.dyn.LifRef(10)
        >>> a = merge_key(post, bp.dyn.Expon.desc(10, tau=5), bp.dyn.CUBA.desc())
        >>> b = merge_key(post, bp.dyn.Expon.desc(size=10, tau=5.0), bp.dyn.CUBA.desc())
        >>> a.canonical_text() == b.canonical_text(), str(a) == str(b)
        (True, False)
        >>> 'tau=5)' in a.canonical_text()
        True
        """
        return f"{_canonical_text(self.syn)} -> {_canonical_text(self.out)}{self._label()}"

    def _label(self) -> str:
        return "" if self.out_label is None else f", out_label={self.out_label!r}"


def _canonical_text(value: Any) -> str:
    """Text of a canonical value (see :meth:`MergeKey.canonical_text`): equal values, equal text."""
    if isinstance(value, DescriptorSpec):
        inner = ", ".join(f"{k}={_canonical_text(v)}" for k, v in value.arguments)
        return f"{value.cls.__name__}({inner})"
    if isinstance(value, tuple) and value and value[0] in ("tuple", "list"):
        items = ", ".join(_canonical_text(v) for v in value[1])
        return f"({items}{',' if len(value[1]) == 1 else ''})" if value[0] == "tuple" else f"[{items}]"
    if isinstance(value, tuple) and value and value[0] == "dict":
        return "{" + ", ".join(f"{k!r}: {_canonical_text(v)}" for k, v in value[1]) + "}"
    if isinstance(value, tuple) and value and value[0] == "bool":
        return repr(value[1])
    if isinstance(value, complex) and value.imag == 0:
        value = value.real
    if isinstance(value, (int, float)):
        number = float(value)
        return str(int(number)) if number.is_integer() and abs(number) < 2**63 else repr(number)
    if isinstance(value, _QuantityValue):
        return f"{value.kind}({_canonical_text(value.value)}, dim={value.dim!s})"
    if isinstance(value, _ObjectValue):
        inner = ", ".join(f"{k}={_canonical_text(v)}" for k, v in value.attrs)
        return f"{value.type.__name__}({inner})"
    if isinstance(value, _ById):
        return repr(value).split(" id=0x")[0] + ">"
    return repr(value)


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
    host = _host_types()
    if isinstance(value, (bm.Variable, *host.state)):  # before bm.Array: Variable subclasses it
        return _ById(value)
    if host.quantity and isinstance(value, host.quantity):
        return _quantity_value(value, path)
    if host.unit and isinstance(value, host.unit):
        unit: Any = value
        return _QuantityValue("unit", unit.dim, _si(1.0, unit), str(unit))
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
    if isinstance(value, (bp.init.Initializer, bm.Mode, bm.Scaling, *host.initializer)):
        return _object_value(value, path)
    if callable(value):  # functions, classes, surrogate objects, ...
        return _ById(value)
    raise UnkeyableError(
        f"{path} has type {type(value).__module__}.{type(value).__qualname__}, which has no canonical "
        "form (supported: numbers, strings, None, arrays, Quantities and units, bm.Variable and "
        "brainstate states, initializers, modes, tuples/lists/dicts of these, descriptors and callables)"
    )


def _is_jax_array(value: Any) -> bool:
    import jax

    return isinstance(value, jax.Array)


class _HostTypes(NamedTuple):
    """Types of brainunit, brainstate and braintools that the key knows; empty where not installed."""

    quantity: tuple[type, ...]
    unit: tuple[type, ...]
    state: tuple[type, ...]
    initializer: tuple[type, ...]


@functools.cache
def _host_types() -> _HostTypes:
    # Looked up on first use, not at import: brainpy 2.5 has none of these packages, 2.8 older ones.
    def find(module: str, *names: str) -> tuple[type, ...]:
        try:
            mod = __import__(module, fromlist=["_"])
        except ImportError:
            return ()
        found = (getattr(mod, name, None) for name in names)
        return tuple(t for t in found if isinstance(t, type))

    return _HostTypes(
        quantity=find("brainunit", "Quantity"),
        unit=find("brainunit", "Unit"),
        state=find("brainstate", "State"),
        initializer=find("braintools.init", "Initialization", "Initializer") + find("brainstate.nn", "Initializer"),
    )


def _si(mantissa: Any, unit: Any) -> Any:
    """``mantissa`` (a number or a float64/complex128 array) in SI units, rounded once where possible."""
    scale, base, factor = int(unit.scale), float(unit.base), float(unit.factor)
    if base == 10.0 and abs(scale) <= 22:  # 10**k is exact in float64 up to k = 22
        power = 10.0 ** abs(scale)
        value = mantissa / power if scale < 0 else mantissa * power
    else:
        value = mantissa * base ** scale
    return value if factor == 1.0 else value * factor


def _quantity_value(q: Any, path: str) -> _QuantityValue:
    mantissa, unit = q.mantissa, q.unit
    if isinstance(mantissa, numbers.Number) and not isinstance(mantissa, (bool, np.bool_)):
        number = mantissa.item() if isinstance(mantissa, np.generic) else mantissa
        if isinstance(number, numbers.Integral):
            number = float(number)
        return _QuantityValue("quantity", q.dim, _si(number, unit), f"{mantissa!r} {unit}")
    try:
        arr = np.asarray(mantissa)
    except Exception as err:  # e.g. a jax tracer while building inside jit
        raise UnkeyableError(
            f"{path} is a Quantity whose values are not known here ({type(mantissa).__name__}: {err})"
        ) from None
    wide = np.complex128 if arr.dtype.kind == "c" else np.float64
    si = np.ascontiguousarray(_si(arr.astype(wide), unit))
    value = _ArrayValue(tuple(int(s) for s in arr.shape), str(arr.dtype), hashlib.sha256(si.tobytes()).hexdigest())
    return _QuantityValue("quantity", q.dim, value, f"{value!r} {unit}")


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
    raw = bound_arguments(desc, path)
    arguments = tuple((name, _canonical_argument(name, value, f"{path}.{name}")) for name, value in raw.items())
    at_default = frozenset(name for name, value in arguments
                           if _equals_default(signature.parameters[name].default, value, name))
    return DescriptorSpec(cls, arguments, at_default)


#: Parameters that both brainpy fronts turn into a shape (``N`` -> ``(N,)``) before using them.
_SIZE_PARAMETERS = ("size", "in_size")


def _canonical_argument(name: str, value: Any, path: str) -> Any:
    if name in _SIZE_PARAMETERS and isinstance(value, (tuple, list)) and value and all(
            isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)) for v in value):
        shape = tuple(int(v) for v in value)
        return shape[0] if len(shape) == 1 else ("tuple", shape)
    return _canonical(value, path)


def bound_arguments(desc: Any, path: str = "desc") -> dict[str, Any]:
    """``{name: value}`` of a descriptor's arguments bound to its class signature, defaults filled in.

    The raw values (not their canonical forms), in signature order, without ``self``.
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
    return {name: bound.arguments[name] for name in list(bound.arguments)[1:]}  # drop ``self``


def _equals_default(default: Any, value: Any, name: str) -> bool:
    """Whether the canonical ``value`` is the parameter's ``default`` (``False`` if it has none)."""
    if default is inspect.Parameter.empty:
        return False
    try:
        return bool(_canonical_argument(name, default, name) == value)
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
        The computing mode the synapse is built in (``None``: brainpy's default mode for a
        ``bp.dyn`` post group; a ``brainpy.state`` post group has no mode, and the key's mode
        stays ``None``).

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
    if mode is None and isinstance(post, bp.DynamicalSystem):
        mode = bm.get_mode()
    return MergeKey(
        post=_ById(post),
        out_label=out_label,
        syn=describe(syn, "syn"),
        out=describe(out, "out"),
        mode=_canonical(mode, "mode"),
    )


def stable_digest(key: MergeKey) -> str | None:
    """A short hash of ``key``'s value that is the same in every process, or ``None``.

    It covers the label, both descriptors and the mode, not the post group (the digest
    names a group *on* its post). ``None`` when a part is compared by identity (a state, a
    function): such a part has no text that another process would reproduce.
    """
    parts = [_stable_text(key.out_label), _stable_text(key.syn), _stable_text(key.out), _stable_text(key.mode)]
    if any(p is None for p in parts):
        return None
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:12]  # type: ignore[arg-type]


def _stable_text(value: Any) -> str | None:
    """Text of a canonical value that is equal exactly when the values are, or ``None`` (identity parts)."""
    if isinstance(value, _ById):
        return None
    if isinstance(value, DescriptorSpec):
        inner = [_stable_text(v) for _, v in value.arguments]
        if any(t is None for t in inner):
            return None
        names = (n for n, _ in value.arguments)
        return f"{value.cls.__module__}.{value.cls.__qualname__}(" + ",".join(
            f"{n}={t}" for n, t in zip(names, inner, strict=True)) + ")"
    if isinstance(value, _ObjectValue):
        inner = [_stable_text(v) for _, v in value.attrs]
        if any(t is None for t in inner):
            return None
        names = (n for n, _ in value.attrs)
        return f"{value.type.__module__}.{value.type.__qualname__}(" + ",".join(
            f"{n}={t}" for n, t in zip(names, inner, strict=True)) + ")"
    if isinstance(value, _QuantityValue):
        inner_value = _stable_text(value.value)
        return None if inner_value is None else f"{value.kind}[{value.dim}]({inner_value})"
    if isinstance(value, _ArrayValue):
        return f"array({value.shape},{value.dtype},{value.sha256})"
    if isinstance(value, tuple):
        inner = [_stable_text(v) for v in value]
        return None if any(t is None for t in inner) else "(" + ",".join(inner) + ")"  # type: ignore[arg-type]
    return repr(value)  # None, str, bool, int, float, complex
