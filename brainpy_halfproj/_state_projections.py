"""The ``brainpy.state`` projections: ``AlignPostProj`` and ``align_post_projection``, merging by value.

Subclasses of upstream's classes (``brainpy/state/projection.py``) with upstream's signatures,
attributes, names and update: only *how a synapse is shared* differs. Upstream looks the
shared synapse up by a string built from ``str()`` of the descriptor arguments; here it is
looked up by :class:`~brainpy_halfproj.MergeKey` (``_merge_key.py``, the key ``bp.dyn``
uses too) and stored by ``_state_registry.py``. Arguments are checked at construction, with
errors that name the argument, the value seen and the fix.
"""
from __future__ import annotations

from typing import Any

import brainevent
import brainstate
import brainunit as u
from brainpy.state import projection as _upstream
from brainpy.state._base import Dynamics
from brainpy.state._mixin import AlignPost, BindCondData
from brainpy.state.delay import InputDelay
from brainstate.mixin import ParamDescriber
from brainstate.util import get_unique_name

from . import _checks
from ._merge_key import UnkeyableError, merge_key
from ._state_fused import StateFusedCall, join_state_fused, state_fused_call_of, why_not_state_fused
from ._state_registry import StateMergeGroup, join, upstream_repr

__all__ = ["AlignPostProj", "align_post_projection"]

_COMM_EXAMPLE = "brainstate.nn.EventFixedProb(3200, 4000, conn_num=0.02, conn_weight=0.6 * u.nS)"
_SYN_EXAMPLE = "brainpy.state.Expon.desc(4000, tau=5. * u.ms)"
_OUT_EXAMPLE = "brainpy.state.COBA.desc(E=0. * u.mV)"

# brainevent 0.2 calls a graded event array ``MaskedFloat``, brainevent 0.3 ``WeightedArray``;
# upstream's ``align_post_projection(stp=...)`` names the first and fails on 0.3.
_GRADED_EVENTS = getattr(brainevent, "MaskedFloat", None) or brainevent.WeightedArray


def _who(proj: Any) -> str:
    return f"{type(proj).__name__} {proj.name!r}" if proj.name else type(proj).__name__


def _kind(value: Any) -> str:
    if isinstance(value, ParamDescriber):
        return f"a descriptor {value.cls.__name__}.desc(...)"
    return _checks._kind(value)


def _check_modules(proj: Any, modules: tuple, what: str) -> tuple:
    for i, module in enumerate(modules):
        if not callable(module) and not isinstance(module, brainstate.State):
            raise TypeError(
                f"{_who(proj)}: positional argument {i} ({what}) must be callable (a module or a "
                f"function) or a brainstate.State, but got {_kind(module)}; pass the spike source, e.g. "
                f"the pre-synaptic neuron group's prefetch: pre.prefetch('V').")
    return tuple(modules)


def _check_comm(proj: Any, comm: Any) -> None:
    if not callable(comm):
        raise TypeError(f"{_who(proj)}: `comm` must be a callable module such as {_COMM_EXAMPLE}, "
                        f"but got {_kind(comm)}.")


def _check_post(proj: Any, post: Any) -> None:
    if not isinstance(post, Dynamics):
        fix = (" (a bp.dyn group: use brainpy_halfproj.dyn's projections for it)"
               if type(post).__module__.startswith("brainpy.") and hasattr(post, "add_inp_fun") else "")
        raise TypeError(f"{_who(proj)}: `post` must be a brainpy.state neuron group (a brainpy.state."
                        f"Dynamics such as brainpy.state.LIF(4000)), but got {_kind(post)}{fix}.")


def _check_syn_out(proj: Any, syn: Any, out: Any) -> bool:
    """Whether ``syn`` and ``out`` are descriptors (merging) or instances (not merging), as upstream."""
    syn_desc, out_desc = isinstance(syn, ParamDescriber), isinstance(out, ParamDescriber)
    who = _who(proj)
    if syn_desc and not issubclass(syn.cls, AlignPost):
        raise TypeError(f"{who}: `syn` describes {syn.cls.__name__}, which cannot take projection input "
                        f"(it is not an AlignPost synapse); use {_SYN_EXAMPLE} or brainpy.state.DualExpon.desc(...).")
    if out_desc and not issubclass(out.cls, BindCondData):
        raise TypeError(f"{who}: `out` describes {out.cls.__name__}, which is not a synaptic output; use "
                        f"{_OUT_EXAMPLE}, brainpy.state.CUBA.desc() or brainpy.state.MgBlock.desc(...).")
    if syn_desc != out_desc:
        given, other = ("syn", "out") if syn_desc else ("out", "syn")
        value = out if syn_desc else syn
        raise TypeError(
            f"{who}: `{given}` is a descriptor but `{other}` is {_kind(value)}; give both as descriptors "
            f"(merging: {type(value).__name__}.desc(...) with the same arguments) or both as instances "
            f"(no merging).")
    if not syn_desc:
        if not isinstance(syn, AlignPost):
            raise TypeError(f"{who}: `syn` must be a synapse descriptor such as {_SYN_EXAMPLE} (or an AlignPost "
                            f"synapse instance), but got {_kind(syn)}.")
        if not isinstance(out, BindCondData):
            raise TypeError(f"{who}: `out` must be an output descriptor such as {_OUT_EXAMPLE} (or an output "
                            f"instance), but got {_kind(out)}.")
    return syn_desc


def _check_label(proj: Any, label: Any) -> None:
    if label is not None and not isinstance(label, str):
        raise TypeError(f"{_who(proj)}: `label` must be a string or None, but got {_kind(label)}; "
                        f"use the name of the input group, e.g. label='E'.")


def _check_delay(proj: Any, comm: Any, delay: Any) -> None:
    if delay is None:
        return
    who = _who(proj)
    if getattr(comm, "in_size", None) is None:
        raise TypeError(f"{who}: `delay` needs a `comm` that says its input size (comm.in_size, as brainstate's "
                        f"layers do), but {type(comm).__name__} has none; use a brainstate.nn layer or delay=None.")
    if isinstance(delay, u.Quantity) and not delay.dim == u.ms.dim:
        raise ValueError(f"{who}: `delay` must be a time, e.g. 1.5 * u.ms, but got {delay} (dimension "
                         f"{delay.dim}); give it in a unit of time.")


def _same_size(proj: Any, arg: str, actual: Any, post: Any, fix: str) -> None:
    if actual is not None and tuple(actual) != tuple(post.varshape):
        raise ValueError(f"{_who(proj)}: the size of `{arg}` is {tuple(actual)}, but `post` has size "
                         f"{tuple(post.varshape)}; {fix}.")


class AlignPostProj(_upstream.AlignPostProj):
    """Post-synaptic alignment projection that merges synapses by value: ``comm -> syn -> out -> post``.

    A drop-in for ``brainpy.state.AlignPostProj`` (same signature, attributes, names, update
    and results). With ``syn`` and ``out`` given as descriptors, projections onto the same
    ``post`` whose descriptors are equal *by value* under the same ``label`` share one synapse
    state (see :class:`~brainpy_halfproj.MergeKey`); upstream compares ``str()`` of the
    arguments, which merges different arrays and Quantities that print alike and keeps apart
    equal ones written differently. With instances, nothing is shared, as upstream.

    Parameters
    ----------
    *modules
        Optional modules applied in turn to the input before ``comm``.
    comm
        The connectivity, e.g. ``brainstate.nn.EventFixedProb(3200, 4000, conn_num=0.02,
        conn_weight=0.6 * u.nS)``.
    syn
        Descriptor of the synapse, e.g. ``brainpy.state.Expon.desc(4000, tau=5. * u.ms)`` (or an
        instance: no merging).
    out
        Descriptor of the output, e.g. ``brainpy.state.COBA.desc(E=0. * u.mV)`` (or an instance).
    post
        The post-synaptic group, a ``brainpy.state`` neuron group.
    label
        Label of the current input registered on ``post``; part of the merge key, as upstream.
    delay
        Conduction delay of the input to ``comm`` (``None``, a time such as ``1.5 * u.ms``, or
        one per pre-synaptic neuron), as upstream.
    merge
        Keyword only, default ``True``. ``False``: never share the synapse built from the
        descriptors (upstream has no such switch: descriptors always merge there). The
        projection then gets a group of its own, updated in the same order as a shared one,
        so its results are those of the merged model wherever merging was correct.
    fused
        Keyword only, default ``False``. ``True``: the projection hands its spikes to its post
        group's fused call (:class:`~brainpy_halfproj.state.StateFusedCall`), which makes one
        event-kernel call per post update for all fused projections onto the post, on their
        stacked connectivity, and adds each synapse its share. The synaptic input equals the
        unfused one up to the order of floating-point summation, for a projection called 0, 1
        or several times per post update, before or after it. Weights are read from
        ``comm.weight`` when the step is traced (edits and training follow); a replaced
        ``comm.conn`` is refused until ``fused_call.rebuild()``. Needs brainstate's
        ``EventFixedProb`` as ``comm`` (or a ``SparseLinear`` over a CSR or homogeneous JIT
        matrix, handed ``brainevent.BinaryArray`` spikes), descriptors for ``syn`` and ``out``
        and a 1-D post; otherwise the projection keeps its own call and ``unfused_reason``
        says why.

    Attributes
    ----------
    merge_group : StateMergeGroup or None
        The group whose synapse this projection shares (``None`` for instances).
    fused_call : StateFusedCall or None
        The post group's fused call this projection hands its spikes to (``None`` unless fused).
    unfused_reason : str or None
        Why a projection built with ``fused=True`` makes its own call (``None`` otherwise).

    Raises
    ------
    TypeError
        If ``comm`` is not callable, ``post`` is not a brainpy.state neuron group, ``syn`` or
        ``out`` is of the wrong kind, one of them is a descriptor and the other is not, or
        ``label`` is not a string, or ``merge`` or ``fused`` is not a bool.
    ValueError
        If the sizes of ``syn`` or ``comm`` do not match ``post``, or ``delay`` is not a time.

    Notes
    -----
    Units must match: ``COBA`` turns a conductance into a current (nS x mV = pA) that the
    neuron adds to its input current, and ``R`` turns the sum into a voltage. With weights in
    nS give the input in pA and ``R`` in GOhm (GOhm x pA = mV). Upstream's own COBA example
    gives weights in mS (synaptic currents in uA) and the input in mA with ``R`` = 1 ohm, so
    its synapses are 1000 times weaker, next to the input, than its numbers suggest.

    Examples
    --------
    >>> import brainstate, brainunit as u
    >>> import brainpy_halfproj.state as bst
    >>> post = bst.LIFRef(40, V_rest=-60. * u.mV, V_th=-50. * u.mV, V_reset=-60. * u.mV, tau=20. * u.ms,
    ...                   R=1. * u.Gohm)
    >>> e = bst.AlignPostProj(comm=brainstate.nn.EventFixedProb(32, 40, conn_num=0.1, conn_weight=0.6 * u.nS),
    ...                       syn=bst.Expon.desc(40, tau=5. * u.ms), out=bst.COBA.desc(E=0. * u.mV), post=post)
    >>> e2 = bst.AlignPostProj(comm=brainstate.nn.EventFixedProb(8, 40, conn_num=0.1, conn_weight=0.6 * u.nS),
    ...                        syn=bst.Expon.desc(in_size=40, tau=0.005 * u.second),
    ...                        out=bst.COBA.desc(0 * u.mV), post=post)
    >>> e.syn is e2.syn
    True
    """

    graph_invisible_attrs = (*_upstream.AlignPostProj.graph_invisible_attrs, "merge_group", "fused_call",
                             "unfused_reason")
    merge_group: StateMergeGroup | None = None
    fused_call: StateFusedCall | None = None
    unfused_reason: str | None = None

    def __init__(self, *modules: Any, comm: Any, syn: Any, out: Any, post: Dynamics, label: str | None = None,
                 delay: Any = None, merge: bool = True, fused: bool = False):
        # Upstream's base initialisation and name (its counter, shared with stock AlignPostProj).
        super(_upstream.AlignPostProj, self).__init__(name=get_unique_name(self.__class__.__name__))
        self.modules = _check_modules(self, modules, "a module applied before comm")
        _check_comm(self, comm)
        merging = _check_syn_out(self, syn, out)
        self.merging = merging
        _check_post(self, post)
        _check_label(self, label)
        _check_delay(self, comm, delay)
        if not isinstance(merge, bool):
            raise TypeError(f"{_who(self)}: `merge` must be True or False, but got {_kind(merge)}.")
        if not isinstance(fused, bool):
            raise TypeError(f"{_who(self)}: `fused` must be True or False, but got {_kind(fused)}; pass fused=True "
                            f"for one kernel call per post update for all fused projections onto `post`.")
        _same_size(self, "comm", getattr(comm, "out_size", None), post,
                   "make the comm layer's output size equal to the number of post-synaptic neurons")
        if merging:
            try:
                key, reason = (merge_key(post, syn, out, label), None) if merge else (None, "merge=False")
            except UnkeyableError as err:
                key, reason = None, str(err)
            self.merge_group = join(
                self, post, key, lambda: (syn(), out()), label, upstream_repr(label, syn, out), reason,
                check=lambda s, o: _same_size(self, "syn", s.varshape, post,
                                              f"set in_size={tuple(post.varshape)} for {type(s).__name__}"))
            syn, out = self.merge_group.syn, self.merge_group.out
        else:
            _same_size(self, "syn", syn.varshape, post, f"build {type(syn).__name__} with in_size={post.varshape}")
            post.add_current_input(self.name, out)
        # Upstream's attributes.
        self.comm = comm
        self.syn = syn
        self.out = out
        self.post = post
        self.delay = delay
        self.delay_seam = InputDelay(comm.in_size, delay) if delay is not None else None
        if fused:
            self.unfused_reason = why_not_state_fused(comm, post, merging)
            call = state_fused_call_of(post)
            if self.unfused_reason is None and call is not None:
                self.unfused_reason = call.unit_mismatch(self)
            if self.unfused_reason is None:
                self.fused_call = join_state_fused(self)

    def update(self, *args):
        if self.fused_call is None:
            return super().update(*args)
        # Upstream's update up to ``comm``; the spikes then go to the fused call.
        for module in self.modules:
            args = (_upstream.call_module(module, *args),)
        if self.delay_seam is not None:
            args = (self.delay_seam.update(args[0]),)
        if not self.fused_call.hand(self, args[0]):
            self.syn.add_delta_input(self.name, self.comm(*args))


class align_post_projection(_upstream.align_post_projection):
    """Spike generation, optional short-term plasticity and a merging :class:`AlignPostProj`.

    A drop-in for ``brainpy.state.align_post_projection`` (same signature); its projection is
    this plugin's :class:`AlignPostProj`, so it merges by value. ``stp=`` works on brainevent
    0.3 too, where upstream fails (``module 'brainevent' has no attribute 'MaskedFloat'``, and
    before that brainpy.state's ``STP``/``STD`` cannot multiply the ``BinaryArray`` it hands
    them): the plasticity gets the spikes as they are, and its output is passed on as
    brainevent's graded event array (``WeightedArray`` on 0.3, ``MaskedFloat`` where it exists).

    Parameters
    ----------
    *spike_generator
        Modules that produce the spikes from the input (e.g. the pre-synaptic group).
    comm, syn, out, post
        As in :class:`AlignPostProj`.
    stp
        Optional short-term plasticity applied to the spikes, e.g. ``brainpy.state.STD(800)``.

    Examples
    --------
    >>> import brainstate, brainunit as u
    >>> import brainpy_halfproj.state as bst
    >>> pre, post = bst.LIF(20), bst.LIF(40)
    >>> p = bst.align_post_projection(pre, comm=brainstate.nn.Linear(20, 40), syn=bst.Expon.desc(40),
    ...                               out=bst.CUBA.desc(), post=post)
    >>> isinstance(p.projection, bst.AlignPostProj), p.projection.merge_group.projections == [p.projection]
    (True, True)
    """

    def __init__(self, *spike_generator: Any, comm: Any, syn: Any, out: Any, post: Dynamics,
                 stp: Dynamics | None = None):
        super(_upstream.align_post_projection, self).__init__()
        self.spike_generator = _check_modules(self, spike_generator, "a spike generator")
        if stp is not None and not callable(stp):
            raise TypeError(f"{_who(self)}: `stp` must be a short-term plasticity module such as "
                            f"brainpy.state.STD(800), or None, but got {_kind(stp)}.")
        self.projection = AlignPostProj(comm=comm, syn=syn, out=out, post=post)
        self.stp = stp

    def update(self, *x):
        # Upstream's update, with brainevent's graded event array of this release for ``stp``.
        for fun in self.spike_generator:
            x = fun(*x)
            x = tuple(x) if isinstance(x, (tuple, list)) else (x,)
        assert len(x) == 1, "Spike generator must return a single value or a tuple/list of values"
        if self.stp is None:
            return self.projection(brainevent.BinaryArray(x[0]))
        # The plasticity gets the spikes as they are (brainevent 0.3's BinaryArray has no
        # arithmetic, which brainpy.state's STP/STD use) and its output goes on as graded events.
        return self.projection(_GRADED_EVENTS(self.stp(x[0])))
