"""``merge_report``: what the merging registry did, in text and in HTML.

One report for both fronts: :func:`merge_report` collects the groups of a ``bp.dyn`` model
here, and those of a ``brainpy.state`` network in ``_state_report.py`` (which also audits
stock brainpy.state's own merges); both fill the same :class:`MergeReport`.
"""
from __future__ import annotations

import dataclasses
import html
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import brainpy as bp
import numpy as np

from ._compat import is_state_module
from ._fused import FusedCall, fused_call_of
from ._merge_key import MergeKey
from ._registry import groups_of

__all__ = ["merge_report", "MergeReport", "GroupInfo", "FusedInfo", "Finding"]

T = TypeVar("T")


def group_by_post(items: Iterable[T], post_of: Callable[[T], Any]) -> list[tuple[Any, list[T]]]:
    """``[(post, items onto it)]``: posts compared by identity, in order of first appearance."""
    grouped: list[tuple[Any, list[T]]] = []
    for item in items:
        post = post_of(item)
        entry = next((e for e in grouped if e[0] is post), None)
        if entry is None:
            grouped.append((post, [item]))
        else:
            entry[1].append(item)
    return grouped


@dataclasses.dataclass(frozen=True)
class GroupInfo:
    """One shared synapse state in a :class:`MergeReport`.

    Attributes
    ----------
    post
        The post-synaptic group.
    group
        The :class:`MergeGroup` node.
    key
        Its :class:`MergeKey` (``None`` for a private group that could not be keyed).
    key_text
        The key in short readable form (:meth:`MergeKey.short`: arguments at their
        defaults left out).
    projections
        The member projections, in construction order.
    state_size
        Number of synapse state elements the group holds.
    saved_elements
        State elements merging saved: ``state_size * (len(projections) - 1)``.
    unmerged_reason
        Why the group is private, or ``None``.
    storage_name
        The group's key in ``post.before_updates``.
    stock
        ``True`` for a group made by stock ``brainpy.state`` (not by this plugin): its members
        were merged by upstream's string key, and the report's ``findings`` say what the
        audit found about it.

    Examples
    --------
    >>> import brainpy as bp
    >>> import brainpy_halfproj as bhp
    >>> post = bp.dyn.LifRef(100)
    >>> projs = [bhp.HalfProjAlignPostMg(bp.dnn.Linear(n_pre, 100), bp.dyn.Expon.desc(100, tau=5.),
    ...                                  bp.dyn.CUBA.desc(), post) for n_pre in (10, 20)]
    >>> info = bhp.merge_report(post).groups[0]
    >>> info.key_text, info.projections == tuple(projs), info.state_size, info.saved_elements
    ('Expon(size=100, tau=5.0) -> CUBA()', True, 100, 100)
    """

    post: Any
    group: Any
    key: MergeKey | None
    key_text: str
    projections: tuple
    state_size: int
    saved_elements: int
    unmerged_reason: str | None
    storage_name: str = ""
    stock: bool = False


@dataclasses.dataclass(frozen=True)
class FusedInfo:
    """The fused kernel call of one post group in a :class:`MergeReport`.

    Attributes
    ----------
    post
        The post-synaptic group.
    call
        The :class:`~brainpy_halfproj.FusedCall` node.
    projections
        The projections whose spikes it takes, in row order.
    synapses
        Synapses in the stacked connectivity.
    nbytes
        Memory the stacked connectivity takes.

    Examples
    --------
    >>> import brainpy as bp
    >>> import brainpy_halfproj as bhp
    >>> post = bp.dyn.LifRef(40)
    >>> e = bhp.HalfProjAlignPostMg(bp.dnn.EventJitFPHomoLinear(30, 40, prob=0.1, weight=0.6),
    ...                             bp.dyn.Expon.desc(40, tau=5.), bp.dyn.COBA.desc(E=0.), post, fused=True)
    >>> info = bhp.merge_report(post).fused[0]
    >>> info.call is e.fused_call, info.projections == (e,), info.synapses == e.fused_call.connectivity.nnz
    (True, True, True)
    """

    post: Any
    call: FusedCall
    projections: tuple
    synapses: int
    nbytes: int

    @property
    def text(self) -> str:
        groups = len(self.call.groups)
        return (f"fused: 1 kernel call per step for {len(self.projections)} projection(s) into {groups} synapse "
                f"state(s); stacked connectivity {self.synapses} synapses, {self.nbytes / 2**20:.2f} MiB")


@dataclasses.dataclass(frozen=True)
class Finding:
    """Something the audit of a ``brainpy.state`` network found, in a :class:`MergeReport`.

    Attributes
    ----------
    kind
        ``"wrong merge"``: members of one stock group whose parameters differ by value (the
        later ones run with the first one's); ``"missed merge"``: stock groups on one post that
        are equal by value (one state would do); ``"unchecked"``: a stock group with several
        members whose parameters cannot be checked after the fact (see
        :func:`brainpy_halfproj.state.audit`); ``"stock member"``: a stock projection that
        joined one of this plugin's groups by upstream's string key.
    post
        The post group.
    storage_names
        The groups concerned (their keys in ``post.before_updates``).
    projections
        The projections concerned.
    text
        One line that says what was found and what to do.
    argument
        For a wrong merge: the first argument whose value differs (``'syn.tau'``), else ``None``.
    elements
        For a wrong merge in an array argument: the flat indices of the elements that differ.

    Examples
    --------
    An audit of stock brainpy.state code (brainpy >= 2.9) that merges two synapses whose
    ``tau`` differs in one element of 2000:

    >>> import brainstate, brainunit as u, numpy as np
    >>> import brainpy.state
    >>> import brainpy_halfproj.state as bhs
    >>> tau = np.full(2000, 5.)
    >>> other = tau.copy(); other[7] = 50.
    >>> class Net(brainstate.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.N = brainpy.state.LIF(2000)
    ...         self.A, self.B = (brainpy.state.AlignPostProj(comm=brainstate.nn.Linear(10, 2000), post=self.N,
    ...             syn=brainpy.state.Expon.desc(2000, tau=t * u.ms), out=brainpy.state.CUBA.desc())
    ...             for t in (tau, other))
    >>> with bhs.audit() as audit:
    ...     net = Net()
    >>> (finding,) = audit.report(net).findings
    >>> finding.kind, finding.argument, finding.elements
    ('wrong merge', 'syn.tau', (7,))
    """

    kind: str
    post: Any
    storage_names: tuple[str, ...]
    projections: tuple
    text: str
    argument: str | None = None
    elements: tuple[int, ...] | None = None


@dataclasses.dataclass(frozen=True)
class MergeReport:
    """The shared synapse states of a model, per post group.

    Returned by :func:`merge_report`. ``str(report)`` is a plain-text table;
    in Jupyter the report renders as an HTML table.

    Attributes
    ----------
    groups
        One :class:`GroupInfo` per synapse state, grouped by post in model order.
    fused
        One :class:`FusedInfo` per post group with a fused kernel call.
    not_fused
        ``(projection, reason)`` for each projection built with ``fused=True`` that makes its
        own kernel call.
    findings
        For a ``brainpy.state`` network: what the audit of stock brainpy.state's merges
        found (:class:`Finding`); empty for ``bp.dyn`` models.
    names
        Display names of posts and projections by ``id`` (their attribute paths in a
        ``brainpy.state`` network, whose modules are often unnamed); others show ``.name``.

    Examples
    --------
    >>> import brainpy as bp
    >>> import brainpy_halfproj as bhp
    >>> report = bhp.merge_report(bhp.EINet(400))
    >>> len(report.groups), report.state_size, report.saved_elements
    (2, 800, 0)
    >>> print(str(report).splitlines()[0])
    2 merging projection(s) onto 1 post group(s) share 2 synapse state(s): 800 state elements, 0 saved by merging
    """

    groups: tuple[GroupInfo, ...]
    fused: tuple[FusedInfo, ...] = ()
    not_fused: tuple[tuple[Any, str], ...] = ()
    findings: tuple[Finding, ...] = ()
    names: dict[int, str] = dataclasses.field(default_factory=dict, compare=False)

    def name_of(self, node: Any) -> str:
        """The display name of a post group or projection: its path in the network, else its name."""
        return self.names.get(id(node)) or str(getattr(node, "name", None) or type(node).__name__)

    @property
    def saved_elements(self) -> int:
        """Synapse state elements saved by merging, over all groups."""
        return sum(g.saved_elements for g in self.groups)

    @property
    def state_size(self) -> int:
        """Synapse state elements held by all groups."""
        return sum(g.state_size for g in self.groups)

    def by_post(self) -> list[tuple[Any, list[GroupInfo]]]:
        """``[(post, its groups)]``, posts in model order."""
        return group_by_post(self.groups, lambda g: g.post)

    @property
    def posts(self) -> list:
        """The post groups, in model order."""
        return [post for post, _ in self.by_post()]

    def _headline(self) -> str:
        n_proj = sum(len(g.projections) for g in self.groups)
        fused = (f"; {len(self.fused)} fused kernel call(s) per step for "
                 f"{sum(len(f.projections) for f in self.fused)} projection(s)") if self.fused else ""
        sizes = (f"{self.state_size} state elements, {self.saved_elements} saved by merging" if self.state_size
                 or not self.groups else "not initialised yet (sizes after brainstate.nn.init_all_states)")
        return (f"{n_proj} merging projection(s) onto {len(self.posts)} post group(s) share "
                f"{len(self.groups)} synapse state(s): {sizes}{fused}")

    def __str__(self) -> str:
        lines = [self._headline()]
        for post, groups in self.by_post():
            lines.append(f"post {self.name_of(post)} ({type(post).__name__}, {_num(post)} neurons)")
            for g in groups:
                members = ", ".join(self.name_of(p) for p in g.projections)
                stock = " (stock brainpy.state)" if g.stock else ""
                lines.append(f"  [{g.storage_name}]{stock} {g.key_text}")
                size = f"state {g.state_size}, saved {g.saved_elements}" if g.state_size else "state not initialised"
                lines.append(f"      shared by {len(g.projections)}: {members}; {size}")
                if g.unmerged_reason:
                    lines.append(f"      not merged: {g.unmerged_reason}")
            lines.extend(f"  {f.text}" for f in self.fused if f.post is post)
            lines.extend(f"  not fused: {p.name}: {why}" for p, why in self.not_fused if p.post is post)
            lines.extend(f"  {f.kind.upper()}: {f.text}" for f in self.findings if f.post is post)
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        esc = html.escape
        rows = []
        for g in self.groups:
            members = ", ".join(esc(self.name_of(p)) for p in g.projections)
            note = f"<br><i>not merged: {esc(g.unmerged_reason)}</i>" if g.unmerged_reason else ""
            note += "<br><i>stock brainpy.state</i>" if g.stock else ""
            rows.append(
                f"<tr><td>{esc(self.name_of(g.post))}</td><td><code>{esc(g.key_text)}</code>{note}</td>"
                f"<td>{len(g.projections)}: {members}</td><td>{g.state_size}</td><td>{g.saved_elements}</td></tr>"
            )
        notes = [f"<li>{esc(self.name_of(f.post))}: {esc(f.text)}</li>" for f in self.fused]
        notes += [f"<li>{esc(p.name)} not fused: {esc(why)}</li>" for p, why in self.not_fused]
        notes += [f"<li><b>{esc(f.kind)}</b>: {esc(f.text)}</li>" for f in self.findings]
        return (f"<p>{esc(self._headline())}</p><table><thead><tr><th>post</th><th>synapse -&gt; output"
                f"</th><th>projections</th><th>state elements</th><th>saved</th></tr></thead><tbody>"
                + "".join(rows) + "</tbody></table>" + (f"<ul>{''.join(notes)}</ul>" if notes else ""))


def _num(post: Any) -> int:
    num = getattr(post, "num", None)
    return int(num) if num is not None else int(np.prod(post.varshape))


def merge_report(model_or_post: Any) -> MergeReport:
    """List every shared synapse state in a model (or on one post group).

    Works on ``bp.dyn`` models and on ``brainpy.state`` networks (brainpy >= 2.9), built
    with this plugin or with stock brainpy.state. On a ``brainpy.state`` network it also
    audits stock brainpy.state's own merges (``MergeReport.findings``): missed merges
    (stock groups equal by value) always; wrong merges only for networks built under
    :func:`brainpy_halfproj.state.audit`, because stock keeps no trace of a second member's
    parameters (its groups with several members are reported as unchecked otherwise).

    Parameters
    ----------
    model_or_post
        A network (any ``DynamicalSystem`` or brainstate module that contains the post
        groups) or a single post group.

    Returns
    -------
    MergeReport
        Per post group: each synapse state's key in readable form, the projections
        that share it, and how many state elements merging saved.

    Examples
    --------
    >>> import brainpy as bp
    >>> import brainpy_halfproj as bhp
    >>> post = bp.dyn.LifRef(100)
    >>> projs = [bhp.HalfProjAlignPostMg(bp.dnn.Linear(n_pre, 100), bp.dyn.Expon.desc(100, tau=5.),
    ...                                  bp.dyn.CUBA.desc(), post) for n_pre in (10, 20, 30)]
    >>> report = bhp.merge_report(post)
    >>> len(report.groups), report.saved_elements
    (1, 200)
    >>> print(report.groups[0].key_text)
    Expon(size=100, tau=5.0) -> CUBA()
    """
    if not isinstance(model_or_post, bp.DynamicalSystem) and is_state_module(model_or_post):
        from ._state_report import collect

        return collect(model_or_post)
    if not isinstance(model_or_post, bp.DynamicalSystem):
        raise TypeError(f"merge_report: `model_or_post` must be a brainpy DynamicalSystem or a brainpy.state "
                        f"network (a network or a post group), but got a {type(model_or_post).__name__}.")
    infos: list[GroupInfo] = []
    fused: list[FusedInfo] = []
    not_fused: list[tuple[Any, str]] = []
    for node in model_or_post.nodes().subset(bp.DynamicalSystem).unique().values():
        if not hasattr(node, "before_updates"):
            continue
        call = fused_call_of(node)
        if call is not None:
            fused.append(FusedInfo(node, call, tuple(call.projections), call.connectivity.nnz,
                                   call.connectivity.nbytes))
        for group in groups_of(node):
            members = tuple(group.projections)
            not_fused.extend((p, p.unfused_reason) for p in members if p.unfused_reason)
            if group.key is None:
                key_text = f"{type(group.syn).__name__} -> {type(group.out).__name__} (private)"
            else:
                key_text = group.key.short()
            size = group.state_size
            infos.append(GroupInfo(node, group, group.key, key_text, members, size,
                                   size * max(len(members) - 1, 0), group.unmerged_reason, group.storage_name))
    return MergeReport(tuple(infos), tuple(fused), tuple(not_fused))
