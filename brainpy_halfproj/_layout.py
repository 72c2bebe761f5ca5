"""Which states of a model are split over the devices, which replicated, and where they are.

A post group's neurons are the cut: every variable of a post group whose last axis runs
over its neurons (membrane potential, refractory state, the merged synapse state
``MergeGroup.syn`` / ``.out``, an unmerged projection's ``syn``) is split along the mesh
axis. The group's spike variable (what it hands to delays, ``return_info()``), delay
buffers, fused calls' event buffers, counters and random keys are replicated. The
connectivity blocks of the per-device kernels are placed by the kernels themselves.
"""
from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any

import brainpy as bp
import brainpy.math as bm
import jax
import numpy as np

from ._compat import Delay, State
from ._fused import FusedCall
from ._mesh import sharding
from ._partitioned_csr import PartitionedCSR
from ._projections import _AlignPostProjection

__all__ = ["projections_of", "unique", "layout", "kernels_of", "KeepLayout"]


def projections_of(model: Any) -> list:
    """The model's align-post projections of this package, in node order."""
    return [n for n in model.nodes().unique().values() if isinstance(n, _AlignPostProjection)]


def unique(objs: Iterable[Any]) -> list:
    """``objs`` without repeats (by identity), in order."""
    seen, out = set(), []
    for obj in objs:
        if id(obj) not in seen:
            seen.add(id(obj))
            out.append(obj)
    return out


def _neuron_axis_vars(post: Any, projections: list) -> list:
    """Variables of ``post`` (and of the synapses of projections onto it) with ``post.num`` as last axis."""
    nodes = [post] + [n for n in post.nodes().unique().values()]
    nodes += [n for p in projections for n in p.nodes().unique().values()
              if n is not p.comm and n is not post]
    presynaptic = (Delay, FusedCall)  # delay buffers, fused calls' event buffers
    skip = {id(v) for n in nodes if isinstance(n, presynaptic) for v in n.vars().unique().values()}
    skip |= {id(v) for v in [_output_variable(post)] if v is not None}
    out = []
    for node in unique(nodes):
        if isinstance(node, presynaptic):
            continue
        for var in node.vars(level=0, include_self=True).unique().values():
            shape = np.shape(var.value)
            if id(var) not in skip and shape and shape[-1] == post.num:
                out.append(var)
    return unique(out)


def _output_variable(group: Any) -> Any:
    """The variable a group hands to delays (``return_info()``, its spikes), or ``None``."""
    info = getattr(group, "return_info", None)
    try:
        out = info() if callable(info) else None
    except Exception:  # a group that cannot say: nothing to keep whole
        return None
    return out if isinstance(out, bm.Variable) else None


def states_of(model: Any) -> list:
    """Every state reachable from the model's nodes (variables, random keys, kernel blocks, ...)."""
    out = list(model.vars().unique().values())
    for node in model.nodes().unique().values():
        out += [v for v in vars(node).values() if isinstance(v, State)]
    return unique(out)


def kernels_of(model: Any) -> list[PartitionedCSR]:
    """Every per-device kernel of the model: projections' kernels and fused calls' kernels."""
    return [n for n in model.nodes().unique().values() if isinstance(n, PartitionedCSR)]


def layout(model: Any, mesh: Any) -> list[tuple[Any, bool, Any]]:
    """``(state, split, sharding)`` for every state of the model but the connectivity blocks."""
    projections = projections_of(model)
    posts = unique(p.post for p in projections)
    split = {id(v) for post in posts
             for v in _neuron_axis_vars(post, [p for p in projections if p.post is post])}
    blocks = {id(s) for kernel in kernels_of(model) for s in kernel._blocks}
    return [(state, id(state) in split, sharding(mesh, np.ndim(state.value), id(state) in split))
            for state in states_of(model) if id(state) not in blocks]


class KeepLayout(bp.DynamicalSystem):
    """Pins every state of a partitioned model to its layout at the end of each step.

    Without it XLA chooses the shardings of the values a compiled step or loop returns,
    and a variable meant to be replicated (the spikes) may come back split, which moves
    the exchange elsewhere and changes from call to call. brainpy ends every
    ``step_run`` (and every step of its runners) with ``clear_input`` on all nodes: that
    is where the states are pinned (``jax.lax.with_sharding_constraint``); calling the
    model directly runs its after-updates, which pin them too. The node holds no
    variables, so checkpoints do not see it.
    """

    _not_receive_update_output = True

    def __init__(self, model: Any, mesh: Any):
        super().__init__()
        self._model = weakref.ref(model)
        self._mesh = mesh

    def _pin(self) -> None:
        model = self._model()
        if model is None:
            return
        for state, _, where in layout(model, self._mesh):
            state.value = jax.lax.with_sharding_constraint(state.value, where)

    def update(self):
        self._pin()

    def clear_input(self, *args, **kwargs):
        self._pin()
