"""The align-post projection family: ``comm -> syn -> out -> post``.

One abstract base, :class:`_AlignPostProjection`, holds the validation and the
wiring shared by all four classes; each public class adds only what differs
(half or full, merging or not). Signatures, attributes, update order and return
values are upstream's (``brainpy.dyn.projections.align_post``).
"""
from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

import brainpy as bp
import brainpy.math as bm

from . import _checks, _fused
from ._compat import register_delay_by_return
from ._connectivity import SparseRows, read_connectivity
from ._merge_key import MergeKey, UnkeyableError, merge_key
from ._registry import MergeGroup, find_group, join

__all__ = ["HalfProjAlignPostMg", "FullProjAlignPostMg", "HalfProjAlignPost", "FullProjAlignPost"]

class _AlignPostProjection(bp.Projection):
    """Shared validation and wiring of the align-post family (not public)."""

    def _check_common(self, comm: Any, post: Any, pre: Any = None, full: bool = False) -> None:
        if full:
            _checks.dynamical_system(self, "pre", pre, "bp.dyn.LifRef(3200)")
            if not hasattr(pre, "return_info"):
                raise TypeError(f"{_checks.who(self)}: `pre` must support automatic delays "
                                f"(brainpy's SupportAutoDelay, e.g. a neuron group), but "
                                f"{type(pre).__name__} has no return_info().")
        _checks.dynamical_system(self, "comm", comm, "bp.dnn.EventJitFPHomoLinear(3200, 4000, prob=0.02, weight=0.6)")
        _checks.post_group(self, post)
        n_in, n_out = _checks.comm_sizes(comm)
        self._n_in = n_in
        if n_out is not None:
            _checks.same_size(self, "comm", (n_out,), (post.num,), "`post`",
                              "make the comm layer's output size equal to the number of post-synaptic neurons")
        if full and n_in is not None:
            _checks.same_size(self, "comm", (n_in,), (pre.num,), "`pre` (input side)",
                              "make the comm layer's input size equal to the number of pre-synaptic neurons")

    def _check_syn_size(self, syn: Any, post: Any) -> None:
        _checks.same_size(self, "syn", syn.varshape, post.varshape, "`post`",
                          f"set size={tuple(post.varshape) if len(post.varshape) > 1 else post.num} "
                          f"for {type(syn).__name__}")

    def _register_delay(self, pre: Any, delay: None | int | float) -> Any:
        # brainpy's own delay registration: projections from one `pre` share its delay.
        delay_cls = register_delay_by_return(pre)
        delay_cls.register_entry(self.name, delay)
        return delay_cls

    kernel: Any = None
    """``None``: the input is ``comm(x)``. Split over devices (:func:`brainpy_halfproj.partition`): the
    ``PartitionedCSR`` holding ``comm``'s synapses, which computes it instead, one call per device."""

    def use_kernel(self, kernel: Any) -> None:
        """Compute the input through ``kernel`` (a ``PartitionedCSR`` read from ``comm``), or ``comm`` again (``None``).

        ``comm`` stays the layer you built: its weights are read when a step is traced.

        Examples
        --------
        >>> import brainpy as bp
        >>> import brainpy_halfproj as bhp
        >>> post = bp.dyn.LifRef(40)
        >>> p = bhp.HalfProjAlignPostMg(bp.dnn.EventJitFPHomoLinear(32, 40, prob=0.1, weight=0.6),
        ...                             bp.dyn.Expon.desc(40, tau=5.), bp.dyn.COBA.desc(E=0.), post)
        >>> p.use_kernel(None)
        >>> p.kernel is None
        True
        """
        self.kernel = kernel

    def _comm_current(self, x: Any) -> Any:
        _checks.spikes(self, x, self._n_in)
        if self.kernel is not None:
            return self.kernel(x, owner=self)
        return self.comm(x)

    def _project(self, x: Any) -> tuple[Any, Any]:
        """Unmerged step: ``comm`` current, then the synapse integrates it -> ``(current, g)``."""
        current = self._comm_current(x)
        g = self.syn(current)
        self.refs["out"].bind_cond(g)
        return current, g


@dataclasses.dataclass(frozen=True)
class _Plan:
    """What a merging projection joins with, made before anything is registered."""

    key: MergeKey | None
    unkeyable_reason: str | None
    instances: tuple[Any, Any] | None  # the new group's synapse and output; None: the group exists
    rows: SparseRows | None  # a fused member's read-out


class _MergingProjection(_AlignPostProjection):
    """Merging variants: ``syn`` and ``out`` are descriptors built once per merge group."""

    merge_group: MergeGroup
    """The :class:`~brainpy_halfproj.MergeGroup` whose synapse state this projection shares."""
    fused_call: _fused.FusedCall | None = None
    """The post group's :class:`~brainpy_halfproj.FusedCall` this projection adds through, or ``None``."""
    unfused_reason: str | None = None
    """Why a projection built with ``fused=True`` makes its own kernel call (``None`` otherwise)."""

    def _prepare(self, syn: Any, out: Any, post: Any, out_label: str | None, mode: bm.Mode | None,
                 fused: bool) -> _Plan:
        """Check the merging arguments and make what joining needs, registering nothing.

        With the common checks, everything that can fail happens here, before anything is
        registered on ``pre`` or ``post``: a construction that fails leaves them as they were.
        """
        if not isinstance(fused, bool):
            raise TypeError(f"{_checks.who(self)}: `fused` must be True or False, got {fused!r}.")
        _checks.descriptor(self, "syn", syn, "add_current")
        _checks.descriptor(self, "out", out, "bind_cond")
        try:
            key, reason = merge_key(post, syn, out, out_label, mode), None
        except UnkeyableError as err:
            key, reason = None, str(err)
        instances = None
        if find_group(post, key) is None:  # a new group: its synapse and output, checked
            # `mode=` reaches the synapse and output (upstream drops it).
            with bm.environment(mode=mode) if mode is not None else contextlib.nullcontext():
                instances = syn(), out()
            self._check_syn_size(instances[0], post)
        rows = None
        if fused:
            self.unfused_reason = _fused.why_not_fused(self.comm, mode, post)
            if self.unfused_reason is None:
                assert self._n_in is not None  # event layers say their sizes
                rows = read_connectivity(self.comm, self._n_in, post.num)
        return _Plan(key, reason, instances, rows)

    def _join(self, post: Any, out_label: str | None, plan: _Plan) -> None:
        """Join (or create) the merge group on ``post``, and the post's fused call if the plan has a read-out."""
        def build() -> tuple[Any, Any]:
            assert plan.instances is not None  # no group had the key when the plan was made
            return plan.instances

        self.merge_group = join(self, post, plan.key, build, out_label, plan.unkeyable_reason)
        self.refs: dict = dict(post=post, syn=self.merge_group.syn, out=self.merge_group.out)
        if plan.rows is not None:
            self.fused_call = _fused.join_fused(self, post, self.merge_group, plan.rows)

    def _add_to_shared(self, x: Any) -> Any:
        """Merged step: add the ``comm`` current to the shared synapse; the post integrates it.

        A fused projection hands its spikes to the post's fused call instead, and returns ``None``.
        """
        if self.fused_call is not None:
            _checks.spikes(self, x, self._n_in)
            self.fused_call.hand(self, x)
            return None
        current = self._comm_current(x)
        self.refs["syn"].add_current(current)
        return current

    syn = property(lambda self: self.refs["syn"], doc="The shared synapse instance.")
    out = property(lambda self: self.refs["out"], doc="The shared output instance.")
    post = property(lambda self: self.refs["post"], doc="The post-synaptic group.")


class HalfProjAlignPostMg(_MergingProjection):
    """Half align-post projection with automatic synapse merging: ``comm -> syn -> out -> post``.

    A drop-in for ``bp.dyn.HalfProjAlignPostMg`` (same signature, attributes and
    results). *Half*: you feed the presynaptic spikes yourself, usually read from a
    ``bp.VarDelay``. *Align-post*: the synapse state has the post group's shape, so
    event-driven ``comm`` layers add straight into it. *Merging*: projections onto
    the same ``post`` whose ``syn`` and ``out`` descriptors are equal by value, under
    the same ``out_label`` and mode, share one synapse state (see :class:`MergeKey`).

    Parameters
    ----------
    comm
        The connectivity, ideally event-driven, e.g. ``bp.dnn.EventJitFPHomoLinear``.
    syn
        Descriptor of the synapse, e.g. ``bp.dyn.Expon.desc(size=4000, tau=5.)``.
    out
        Descriptor of the output, e.g. ``bp.dyn.COBA.desc(E=0.)``.
    post
        The post-synaptic group.
    out_label
        Label of the input function registered on ``post``.
    name
        The projection's name.
    mode
        Computing mode; also used to build the synapse and output.
    fused
        Keyword only, default ``False``. ``True``: instead of calling its own kernel, the
        projection hands its spikes to its post group, which makes one event-kernel call per
        step for all its fused projections (:class:`FusedCall`). The synaptic input is the same
        up to the order of floating-point summation, however often the projection is called
        per step; the connectivity is then held as data (memory grows with the synapses).
        ``comm``'s weights are followed (read when a step is traced); a change of which
        synapses it has is refused at the next run until ``fused_call.rebuild()``. Needs an
        event ``comm`` (``bp.dnn.EventCSRLinear``, ``bp.dnn.EventJitFP*Linear``) and the
        default mode; otherwise the projection keeps its own call and ``unfused_reason``
        says why. ``update`` then returns ``None``.

    Raises
    ------
    TypeError
        If ``comm`` or ``post`` is not a DynamicalSystem, ``syn``/``out`` is not a
        descriptor of a class with ``add_current``/``bind_cond``, or ``fused`` not a bool.
    ValueError
        If the sizes of ``syn`` or ``comm`` do not match ``post``. Every argument is
        checked before anything is registered on ``post``: a construction that fails
        leaves it as it was.

    Notes
    -----
    The input is added to the shared synapse *before* the post group's step (the
    post group then integrates the synapse, so a spike's contribution decays once
    before the neuron sees it). The unmerged variants add the input after the
    decay. This is upstream's order, kept for bit-identical results.

    Examples
    --------
    >>> import brainpy as bp
    >>> import brainpy_halfproj as bhp
    >>> post = bp.dyn.LifRef(40)
    >>> e = bhp.HalfProjAlignPostMg(bp.dnn.EventJitFPHomoLinear(32, 40, prob=0.1, weight=0.6),
    ...                             bp.dyn.Expon.desc(40, tau=5.), bp.dyn.COBA.desc(E=0.), post)
    >>> e2 = bhp.HalfProjAlignPostMg(bp.dnn.EventJitFPHomoLinear(8, 40, prob=0.1, weight=0.6),
    ...                              bp.dyn.Expon.desc(size=40, tau=5), bp.dyn.COBA.desc(0.), post)
    >>> e.syn is e2.syn
    True
    >>> e(bp.math.zeros(32, dtype=bool)).shape
    (40,)
    """

    def __init__(self, comm: bp.DynamicalSystem, syn: Any, out: Any, post: bp.DynamicalSystem,
                 out_label: str | None = None, name: str | None = None,
                 mode: bm.Mode | None = None, *, fused: bool = False):
        super().__init__(name=name, mode=mode)
        self._check_common(comm, post)
        self.comm = comm
        self._join(post, out_label, self._prepare(syn, out, post, out_label, mode, fused))
        self.refs["comm"] = comm

    def update(self, x):
        return self._add_to_shared(x)


class FullProjAlignPostMg(_MergingProjection):
    """Full align-post projection with automatic synapse merging: ``pre -> delay -> comm -> syn -> out -> post``.

    A drop-in for ``bp.dyn.FullProjAlignPostMg``. Like :class:`HalfProjAlignPostMg`,
    but the projection reads its presynaptic spikes itself, from the delay that
    brainpy registers on ``pre`` (projections from one ``pre`` share that delay).

    Parameters
    ----------
    pre
        The presynaptic group.
    delay
        Delay in ms (``None``: no delay).
    comm, syn, out, post, out_label, name, mode, fused
        As in :class:`HalfProjAlignPostMg`.

    Raises
    ------
    TypeError, ValueError
        As in :class:`HalfProjAlignPostMg`; also for a ``pre`` that is not a
        DynamicalSystem or whose size does not match the comm input.

    Notes
    -----
    The input is added to the shared synapse *before* the post group's step (the
    post group then integrates the synapse, so a spike's contribution decays once
    before the neuron sees it). The unmerged variants add the input after the
    decay. This is upstream's order, kept for bit-identical results.

    Examples
    --------
    >>> import brainpy as bp
    >>> import brainpy_halfproj as bhp
    >>> pre, post = bp.dyn.LifRef(20), bp.dyn.LifRef(40)
    >>> a = bhp.FullProjAlignPostMg(pre, 1., bp.dnn.EventJitFPHomoLinear(20, 40, prob=0.1, weight=0.6),
    ...                             bp.dyn.Expon.desc(40, tau=5.), bp.dyn.COBA.desc(E=0.), post)
    >>> b = bhp.FullProjAlignPostMg(pre, 2., bp.dnn.EventJitFPHomoLinear(20, 40, prob=0.1, weight=0.6),
    ...                             bp.dyn.Expon.desc(40, tau=5.), bp.dyn.COBA.desc(E=0.), post)
    >>> a.syn is b.syn, a.delay is b.delay
    (True, True)
    """

    def __init__(self, pre: bp.DynamicalSystem, delay: None | int | float, comm: bp.DynamicalSystem,
                 syn: Any, out: Any, post: bp.DynamicalSystem, out_label: str | None = None,
                 name: str | None = None, mode: bm.Mode | None = None, *, fused: bool = False):
        super().__init__(name=name, mode=mode)
        self._check_common(comm, post, pre, full=True)
        self.comm = comm
        plan = self._prepare(syn, out, post, out_label, mode, fused)
        delay_cls = self._register_delay(pre, delay)
        self._join(post, out_label, plan)
        self.refs.update(pre=pre, comm=comm, delay=delay_cls)

    def update(self):
        return self._add_to_shared(self.refs["delay"].at(self.name))

    delay = property(lambda self: self.refs["delay"], doc="The delay shared by projections from ``pre``.")
    pre = property(lambda self: self.refs["pre"], doc="The presynaptic group.")


class HalfProjAlignPost(_AlignPostProjection):
    """Half align-post projection without merging: ``comm -> syn -> out -> post``.

    A drop-in for ``bp.dyn.HalfProjAlignPost``. Each projection owns the ``syn`` and
    ``out`` instances you give it.

    Parameters
    ----------
    comm
        The connectivity, e.g. ``bp.dnn.EventJitFPHomoLinear``.
    syn
        A synapse instance with ``add_current``, e.g. ``bp.dyn.Expon(4000, tau=5.)``.
    out
        An output instance with ``bind_cond``, e.g. ``bp.dyn.COBA(E=0.)``.
    post
        The post-synaptic group.
    out_label, name, mode
        As in :class:`HalfProjAlignPostMg`.

    Notes
    -----
    The input is added after the synapse's decay step (the merging variants add it
    before). This is upstream's order, kept for bit-identical results.

    Examples
    --------
    >>> import brainpy as bp
    >>> import brainpy_halfproj as bhp
    >>> post = bp.dyn.LifRef(40)
    >>> p = bhp.HalfProjAlignPost(bp.dnn.EventJitFPHomoLinear(32, 40, prob=0.1, weight=0.6),
    ...                           bp.dyn.Expon(40, tau=5.), bp.dyn.COBA(E=0.), post)
    >>> p(bp.math.zeros(32, dtype=bool)).shape
    (40,)
    """

    def __init__(self, comm: bp.DynamicalSystem, syn: bp.DynamicalSystem, out: bp.DynamicalSystem,
                 post: bp.DynamicalSystem, out_label: str | None = None, name: str | None = None,
                 mode: bm.Mode | None = None):
        super().__init__(name=name, mode=mode)
        self._check_common(comm, post)
        _checks.instance(self, "syn", syn, _checks.AlignPostSynapse, "add_current", "HalfProjAlignPostMg")
        _checks.instance(self, "out", out, _checks.ConductanceBinder, "bind_cond", "HalfProjAlignPostMg")
        self._check_syn_size(syn, post)
        self.comm = comm
        self.syn = syn
        self.out = out
        post.add_inp_fun(self.name, out, label=out_label)
        self.refs: dict = dict(post=post, syn=syn, out=out, comm=comm)

    def update(self, x):
        current, _ = self._project(x)
        return current

    post = property(lambda self: self.refs["post"], doc="The post-synaptic group.")


class FullProjAlignPost(_AlignPostProjection):
    """Full align-post projection without merging: ``pre -> delay -> comm -> syn -> out -> post``.

    A drop-in for ``bp.dyn.FullProjAlignPost``. ``update()`` returns the synapse
    value ``g`` (as upstream does), not the comm current.

    Parameters
    ----------
    pre, delay
        As in :class:`FullProjAlignPostMg`.
    comm, syn, out, post, out_label, name, mode
        As in :class:`HalfProjAlignPost`.

    Notes
    -----
    The input is added after the synapse's decay step, as in upstream.

    Examples
    --------
    >>> import brainpy as bp
    >>> import brainpy_halfproj as bhp
    >>> pre, post = bp.dyn.LifRef(20), bp.dyn.LifRef(40)
    >>> p = bhp.FullProjAlignPost(pre, 1., bp.dnn.EventJitFPHomoLinear(20, 40, prob=0.1, weight=0.6),
    ...                           bp.dyn.Expon(40, tau=5.), bp.dyn.COBA(E=0.), post)
    >>> p.delay is pre.get_aft_update(bhp._compat.delay_identifier)
    True
    """

    def __init__(self, pre: bp.DynamicalSystem, delay: None | int | float, comm: bp.DynamicalSystem,
                 syn: bp.DynamicalSystem, out: bp.DynamicalSystem, post: bp.DynamicalSystem,
                 out_label: str | None = None, name: str | None = None,
                 mode: bm.Mode | None = None):
        super().__init__(name=name, mode=mode)
        self._check_common(comm, post, pre, full=True)
        _checks.instance(self, "syn", syn, _checks.AlignPostSynapse, "add_current", "FullProjAlignPostMg")
        _checks.instance(self, "out", out, _checks.ConductanceBinder, "bind_cond", "FullProjAlignPostMg")
        self._check_syn_size(syn, post)
        self.comm = comm
        self.syn = syn
        delay_cls = self._register_delay(pre, delay)
        post.add_inp_fun(self.name, out, label=out_label)
        self.refs: dict = dict(pre=pre, post=post, out=out, delay=delay_cls, comm=comm, syn=syn)

    def update(self):
        _, g = self._project(self.refs["delay"].at(self.name))
        return g

    delay = property(lambda self: self.refs["delay"], doc="The delay shared by projections from ``pre``.")
    pre = property(lambda self: self.refs["pre"], doc="The presynaptic group.")
    post = property(lambda self: self.refs["post"], doc="The post-synaptic group.")
    out = property(lambda self: self.refs["out"], doc="The output instance.")
