"""The merge report of a ``brainpy.state`` network, and the audit of stock brainpy.state's merges.

:func:`collect` fills the one :class:`~brainpy_halfproj.MergeReport` (``_report.py``) from a
``brainpy.state`` network: this plugin's groups (:class:`StateMergeGroup`, which know their
key and members) and stock ``AlignPostProj`` groups (upstream's ``_AlignPost`` nodes), which
it audits.

What an audit can see
---------------------
Stock brainpy.state keeps, per group, the *first* member's built synapse and output and the
string it stored them under; every member keeps references to those shared instances. The
descriptors are not kept, so nothing of a second member's own parameters survives the
construction. Hence two forms:

* **after the fact** (``merge_report(net)`` on any network): *missed merges* are found by
  comparing the stock groups' built synapses and outputs by value (class, every parameter,
  label); groups with several members are reported as *unchecked*: whether their members
  were equal cannot be known any more.
* **recorded** (build under :func:`audit`, then ``audit.report(net)``): while the block runs,
  upstream's ``align_post_add_bef_update`` is wrapped to record each stock projection's
  descriptors (and restored on exit); *wrong merges* are then found too, with the argument
  and the array elements that differ, and missed merges are judged by the descriptors'
  merge keys, as this plugin would group them.
"""
from __future__ import annotations

import contextlib
import dataclasses
import inspect
import threading
import weakref
from collections.abc import Iterator
from typing import Any

import brainstate
import brainunit as u
import numpy as np
from brainpy.state import projection as _upstream

from ._merge_key import (
    MergeKey,
    UnkeyableError,
    _canonical,
    _canonical_argument,
    _equals_default,
    _fmt,
    _si,
    bound_arguments,
    merge_key,
)
from ._report import Finding, FusedInfo, GroupInfo, MergeReport, group_by_post
from ._state_fused import state_fused_call_of
from ._state_registry import StateMergeGroup, state_size

__all__ = ["Audit", "audit", "collect"]

# Attributes of a built module that are wiring or bookkeeping, not parameters.
_NOT_PARAMETERS = {"_before_updates", "_after_updates", "_current_inputs", "_delta_inputs", "_conductance",
                   "_out_size"}


@dataclasses.dataclass(frozen=True)
class _Record:
    """One stock ``AlignPostProj`` seen by :func:`audit`: its descriptors, label and post."""

    post: weakref.ref
    proj_name: str
    label: str | None
    syn: Any
    out: Any


class Audit:
    """The stock ``brainpy.state`` projections recorded by :func:`audit`.

    Attributes
    ----------
    records
        One entry per stock ``AlignPostProj`` built with descriptors inside the block, in
        construction order.
    """

    def __init__(self) -> None:
        self.records: list[_Record] = []

    def report(self, net: Any) -> Any:
        """The :class:`~brainpy_halfproj.MergeReport` of ``net``, with wrong merges found from the records."""
        return collect(net, self)

    def _record_of(self, proj: Any) -> _Record | None:
        for record in self.records:
            if record.proj_name == proj.name and record.post() is proj.post:
                return record
        return None


_PATCH_LOCK = threading.Lock()


@contextlib.contextmanager
def audit() -> Iterator[Audit]:
    """Record the descriptors of stock ``brainpy.state.AlignPostProj`` built inside the block.

    Stock brainpy.state forgets a projection's ``syn``/``out`` descriptors once it has looked
    up its shared synapse, so a merge report made afterwards cannot tell whether the members
    of a group were really equal. Build the network inside this block with your code as it is
    (``import brainpy.state``, nothing changed) and ``audit.report(net)`` finds the wrong
    merges too: members whose parameters differ by value, with the argument and the elements.

    It works by wrapping upstream's ``brainpy.state.projection.align_post_add_bef_update`` for
    the duration of the block (the wrapper records, then calls the original unchanged) and
    restoring it on exit, also on an error. Nothing is changed outside the block; importing
    the plugin changes nothing. Blocks may nest; do not run one while another thread builds
    brainpy.state projections it should not see.

    Yields
    ------
    Audit
        Its ``records`` fill while the block runs; ``report(net)`` gives the audited report
        (pass the network: from a post group alone, stock projections cannot be found).

    Examples
    --------
    >>> import brainstate, brainunit as u, numpy as np
    >>> import brainpy.state
    >>> import brainpy_halfproj.state as bhs
    >>> class Net(brainstate.nn.Module):                # stock code, unchanged
    ...     def __init__(self, tau_a, tau_b):
    ...         super().__init__()
    ...         self.N = brainpy.state.LIF(2000)
    ...         self.A = brainpy.state.AlignPostProj(comm=brainstate.nn.Linear(10, 2000), post=self.N,
    ...             syn=brainpy.state.Expon.desc(2000, tau=tau_a * u.ms), out=brainpy.state.CUBA.desc())
    ...         self.B = brainpy.state.AlignPostProj(comm=brainstate.nn.Linear(10, 2000), post=self.N,
    ...             syn=brainpy.state.Expon.desc(2000, tau=tau_b * u.ms), out=brainpy.state.CUBA.desc())
    >>> tau = np.full(2000, 5.)
    >>> other = tau.copy(); other[1234] = 50.
    >>> with bhs.audit() as audit:
    ...     net = Net(tau, other)
    >>> net.A.syn is net.B.syn                          # upstream merged them
    True
    >>> (finding,) = audit.report(net).findings
    >>> finding.kind, finding.argument, finding.elements
    ('wrong merge', 'syn.tau', (1234,))

    Without the audit, the report can only say that the group is unchecked:

    >>> import brainpy_halfproj as bhp
    >>> [f.kind for f in bhp.merge_report(Net(tau, other)).findings]
    ['unchecked']
    """
    record = Audit()
    with _PATCH_LOCK:
        original = _upstream.align_post_add_bef_update

        def recording(syn_desc, out_desc, post, proj_name, label):
            record.records.append(_Record(weakref.ref(post), proj_name, label, syn_desc, out_desc))
            return original(syn_desc=syn_desc, out_desc=out_desc, post=post, proj_name=proj_name, label=label)

        _upstream.align_post_add_bef_update = recording
    try:
        yield record
    finally:
        with _PATCH_LOCK:
            _upstream.align_post_add_bef_update = original


# --------------------------------------------------------------------------- collecting
def _names(root: Any) -> dict[int, str]:
    """Display names: a node's attribute on the root, else its first path in the graph."""
    names: dict[int, str] = {}
    for attr, value in vars(root).items():
        if isinstance(value, brainstate.nn.Module) and not attr.startswith("_"):
            names.setdefault(id(value), attr)
    for path, node in root.nodes().items():
        if path:
            names.setdefault(id(node), ".".join(str(p) for p in path))
    return names


def _is_stock_group(entry: Any) -> bool:
    return isinstance(entry, brainstate.nn.Module) and hasattr(entry, "syn") and hasattr(entry, "out") \
        and not isinstance(entry, StateMergeGroup)


def collect(net: Any, record: Audit | None = None) -> MergeReport:
    """The merge report of a brainpy.state network (or post group), with the audit of stock groups."""
    nodes = [node for _, node in net.nodes().items()]
    names = _names(net)
    projections = [n for n in nodes if isinstance(n, _upstream.AlignPostProj) and getattr(n, "merging", False)]
    posts = [n for n in nodes if isinstance(n, brainstate.nn.Dynamics) and n.before_updates]
    infos: list[GroupInfo] = []
    findings: list[Finding] = []
    fused: list[FusedInfo] = []
    not_fused: list[tuple[Any, str]] = []
    for post in posts:
        call = state_fused_call_of(post)
        if call is not None:
            rows = call.connectivity
            fused.append(FusedInfo(post, call, tuple(call.projections), rows.nnz, rows.nbytes))
        stock: list[tuple[str, Any, tuple]] = []
        for storage, entry in post.before_updates.items():
            if isinstance(entry, StateMergeGroup):
                members = tuple(entry.projections)
                not_fused.extend((p, p.unfused_reason) for p in members if getattr(p, "unfused_reason", None))
                foreign = tuple(p for p in projections if p.syn is entry.syn and all(p is not m for m in members))
                if foreign:
                    findings.append(Finding(
                        "stock member", post, (storage,), foreign,
                        f"{', '.join(names.get(id(p), p.name) for p in foreign)} (stock brainpy.state) joined "
                        f"group [{storage}] by upstream's string key, unchecked; build it with "
                        f"brainpy_halfproj.state.AlignPostProj"))
                members += foreign
                key_text = entry.key.short() if entry.key is not None else \
                    f"{type(entry.syn).__name__} -> {type(entry.out).__name__} (private)"
                size = entry.state_size
                infos.append(GroupInfo(post, entry, entry.key, key_text, members, size,
                                       size * max(len(members) - 1, 0), entry.unmerged_reason, storage))
            elif _is_stock_group(entry):
                members = _stock_members(post, entry, projections, record)
                stock.append((storage, entry, members))
        findings.extend(_audit_post(post, stock, record, names))
        for storage, entry, members in stock:
            key = _first_key(post, members, record)
            key_text = key.short() if key is not None else _instance_text(entry, _label_of(post, entry, members))
            size = state_size(entry.syn)
            infos.append(GroupInfo(post, entry, key, key_text, members, size, size * max(len(members) - 1, 0),
                                   None, storage, stock=True))
    order = [p for p, _ in group_by_post(infos, lambda g: g.post)]
    infos.sort(key=lambda g: next(i for i, p in enumerate(order) if p is g.post))
    return MergeReport(tuple(infos), tuple(fused), tuple(not_fused), findings=tuple(findings), names=names)


def _stock_members(post: Any, entry: Any, projections: list, record: Audit | None) -> tuple:
    """The projections sharing a stock group, the one that created it first, then in construction order."""
    members = [p for p in projections if p.syn is entry.syn and p.post is post]
    if record is not None:
        order = {r.proj_name: i for i, r in enumerate(record.records)}
        members.sort(key=lambda p: order.get(p.name, len(order)))
    first = _first_member_name(post, entry)
    members.sort(key=lambda p: p.name != first)  # stable: the creator first
    return tuple(members)


def _first_member_name(post: Any, entry: Any) -> str | None:
    """The name the group's output was registered under (upstream registers the first member's)."""
    for key, value in (post.current_inputs or {}).items():
        if value is entry.out:
            return key.rsplit(" // ", 1)[-1]
    return None


def _label_of(post: Any, entry: Any, members: tuple) -> str | None:
    for key, value in (post.current_inputs or {}).items():
        if value is entry.out and " // " in key:
            return key.rsplit(" // ", 1)[0]
    return None


def _first_key(post: Any, members: tuple, record: Audit | None) -> MergeKey | None:
    if record is None or not members:
        return None
    rec = record._record_of(members[0])
    if rec is None:
        return None
    try:
        return merge_key(post, rec.syn, rec.out, rec.label)
    except UnkeyableError:
        return None


# --------------------------------------------------------------------------- auditing
def _instance_spec(obj: Any) -> tuple:
    """A built module's class and parameters in canonical form (raises UnkeyableError)."""
    items = []
    for name, value in sorted(vars(obj).items()):
        if name in _NOT_PARAMETERS or name in getattr(obj, "graph_invisible_attrs", ()):
            continue
        if isinstance(value, brainstate.State) and not isinstance(value, brainstate.ParamState):
            continue  # the dynamics' own state (g, x, ...), made by init_state: not a parameter
        if isinstance(value, brainstate.nn.Module):
            items.append((name, _instance_spec(value)))
        else:
            items.append((name, _canonical(value, f"{type(obj).__name__}.{name}")))
    return (type(obj), tuple(items))


def _instance_text(entry: Any, label: str | None) -> str:
    """``Expon(in_size=4000, tau=5.0 ms) -> COBA(E=0.0 mV)``: a stock group's built parameters, defaults left out."""
    def text(obj: Any) -> str:
        parameters = inspect.signature(type(obj).__init__).parameters
        shown = []
        for attr, value in sorted(vars(obj).items()):
            name = attr.lstrip("_")
            if attr in _NOT_PARAMETERS or value is None or isinstance(value, (brainstate.nn.Module, brainstate.State)):
                continue
            try:
                canonical = _canonical_argument(name, value, name)
            except UnkeyableError:
                shown.append(f"{name}=<{type(value).__name__}>")
                continue
            if name in parameters and _equals_default(parameters[name].default, canonical, name):
                continue
            shown.append(f"{name}={_fmt(canonical)}")
        return f"{type(obj).__name__}({', '.join(shown)})"

    return f"{text(entry.syn)} -> {text(entry.out)}" + ("" if label is None else f", label={label!r}")


def _audit_post(post: Any, stock: list, record: Audit | None, names: dict[int, str]) -> list[Finding]:
    findings: list[Finding] = []

    def name(p: Any) -> str:
        return names.get(id(p), p.name)

    # Wrong merges (recorded) or unchecked groups (after the fact).
    for storage, _, members in stock:
        if len(members) < 2:
            continue
        found = [record._record_of(p) if record is not None else None for p in members]
        recs = [r for r in found if r is not None]
        if len(recs) < len(members):
            findings.append(Finding(
                "unchecked", post, (storage,), members,
                f"[{storage}] is shared by {len(members)} stock projections ({', '.join(name(p) for p in members)}); "
                f"stock brainpy.state keeps only the first one's synapse, so whether the others had the same "
                f"parameters cannot be checked after the fact: build the network under "
                f"brainpy_halfproj.state.audit(), or with brainpy_halfproj.state, which merges by value"))
            continue
        first = recs[0]
        for proj, rec in zip(members[1:], recs[1:], strict=True):
            diff = _difference(first, rec)
            if diff is not None:
                argument, elements, detail = diff
                findings.append(Finding(
                    "wrong merge", post, (storage,), (members[0], proj),
                    f"{name(proj)} was merged into [{storage}] with {name(members[0])}, but its {argument} "
                    f"differs: {detail}; it runs with {name(members[0])}'s value. brainpy_halfproj.state gives "
                    f"it its own synapse", argument, elements))
    # Missed merges: stock groups equal by value (by the recorded keys, else by the built instances).
    seen: list[tuple[Any, str, tuple]] = []
    for storage, entry, members in stock:
        value = _group_value(post, entry, members, record)
        if value is None:
            continue
        twin = next((s for s in seen if s[0] == value), None)
        if twin is None:
            seen.append((value, storage, members))
            continue
        size = state_size(entry.syn)
        findings.append(Finding(
            "missed merge", post, (twin[1], storage), twin[2] + members,
            f"[{twin[1]}] and [{storage}] are equal by value but stock brainpy.state keeps them apart "
            f"(their strings differ){f': {size} state elements more than needed' if size else ''}; "
            f"brainpy_halfproj.state merges them"))
    return findings


def _group_value(post: Any, entry: Any, members: tuple, record: Audit | None) -> Any:
    key = _first_key(post, members, record)
    if key is not None:
        return key
    try:
        return (_label_of(post, entry, members), _instance_spec(entry.syn), _instance_spec(entry.out))
    except UnkeyableError:
        return None


def _difference(a: _Record, b: _Record) -> tuple[str, tuple[int, ...] | None, str] | None:
    """``(argument, differing elements or None, detail)`` of the first argument that differs, else None."""
    if a.label != b.label:
        return "label", None, f"{b.label!r} instead of {a.label!r}"
    for part in ("syn", "out"):
        da, db = getattr(a, part), getattr(b, part)
        if da.cls is not db.cls:
            return part, None, f"{db.cls.__name__} instead of {da.cls.__name__}"
        try:
            raw_a, raw_b = bound_arguments(da, part), bound_arguments(db, part)
        except TypeError:
            return part, None, "its arguments do not fit the class signature"
        for arg in raw_a:
            try:
                same = _canonical(raw_a[arg], arg) == _canonical(raw_b[arg], arg)
            except UnkeyableError as err:
                return f"{part}.{arg}", None, f"it cannot be compared ({err})"
            if not same:
                elements, detail = _element_difference(raw_a[arg], raw_b[arg])
                return f"{part}.{arg}", elements, detail
    return None


def _element_difference(a: Any, b: Any) -> tuple[tuple[int, ...] | None, str]:
    """Which elements of two array values differ, and how to say it."""
    va, vb = _comparable(a), _comparable(b)
    if va is None or vb is None or va.shape != vb.shape or va.ndim == 0:
        return None, f"{_show(b)} instead of {_show(a)}"
    idx = np.flatnonzero(va.reshape(-1) != vb.reshape(-1))
    if idx.size == 0:  # equal values, different dtype (or dimension)
        return None, f"{_show(b)} instead of {_show(a)} (same values, different dtype or unit)"
    unit = f" {a.unit}" if isinstance(a, u.Quantity) else ""
    shown = ", ".join(f"[{i}] {_item(b, i)} instead of {_item(a, i)}{unit}" for i in idx[:3])
    more = f", ... ({idx.size} in all)" if idx.size > 3 else ""
    return tuple(int(i) for i in idx), f"{idx.size} of {va.size} elements: {shown}{more}"


def _comparable(value: Any) -> np.ndarray | None:
    try:
        if isinstance(value, u.Quantity):
            return np.asarray(_si(np.asarray(value.mantissa, dtype=np.float64), value.unit))
        return np.asarray(value)
    except Exception:  # not array-like
        return None


def _item(value: Any, i: int) -> str:
    mantissa = value.mantissa if isinstance(value, u.Quantity) else value
    return repr(np.asarray(mantissa).reshape(-1)[i].item())


def _show(value: Any) -> str:
    try:
        return _fmt(_canonical(value, "value"))
    except UnkeyableError:
        return type(value).__name__
