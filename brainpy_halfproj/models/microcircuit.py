"""The cortical microcircuit of Potjans & Diesmann (2014), wired from align-post projections.

The model's physics (tables, scaling rules, weights, delays, the corrections for the
JIT kernels) is in :mod:`brainpy_halfproj.models.potjans2014`, which does not import
brainpy; :func:`microcircuit` derives the parameters there and :class:`Microcircuit`
wires them: neurons, spike delays, projections and the Poisson background.
"""
from __future__ import annotations

import itertools
import math
import numbers
import operator
from typing import Any, Literal

import brainpy as bp
import brainpy.math as bm
import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from .._compat import jit_prob_numerator
from .._progress import show_progress
from ._poisson import poisson_counts, poisson_thresholds
from .potjans2014 import (
    C_M,
    CONN_PROBS,
    E_L,
    FULL_SIZES,
    K_EXT,
    POPULATIONS,
    PUBLISHED_RATES,
    T_REF,
    TAU_M,
    TAU_SYN,
    V_RESET,
    V_TH,
    MicrocircuitParams,
    derive,
    psp_to_psc,
)

__all__ = [
    "POPULATIONS",
    "FULL_SIZES",
    "CONN_PROBS",
    "K_EXT",
    "PUBLISHED_RATES",
    "Microcircuit",
    "microcircuit",
    "population_rates",
    "psp_to_psc",
    "simulate",
]


class _PoissonCounts(bp.DynamicalSystem):
    """Independent Poisson spike counts per neuron and time step (see ``_poisson``).

    The counts of step ``i`` (``bp.share`` ``i``) come from a counter-based generator
    keyed by ``seed``: they depend on the step and the neuron only, so there is no
    random state to carry, to checkpoint or to partition.
    """

    def __init__(self, size: int, rate_hz: float, dt: float, seed: int, name: str | None = None):
        super().__init__(name=name)
        self.size = size
        self.thresholds = poisson_thresholds(rate_hz * 1e-3 * dt)
        self.key = (int(seed) & 0xFFFFFFFF, _BACKGROUND_STREAM)

    def update(self):
        return poisson_counts(self.thresholds, self.key, bp.share.load("i"), self.size)


class _SpikeCounters(bp.DynamicalSystem):
    """Spikes per neuron since the last reset, one counter per population.

    A node of its own rather than a ``bm.VarDict`` on the model: brainpy's
    ``vars(method='relative')`` gives every entry of a VarDict held by the root node
    the same name and fails, and checkpoints are built on those names.
    """

    def __init__(self, sizes: dict[str, int]):
        super().__init__()
        self.spikes = bm.VarDict({p: bm.Variable(bm.zeros(n, dtype=bm.int32)) for p, n in sizes.items()})


_MODEL_IDS = itertools.count()
_BACKGROUND_STREAM = 0x5EED8  # the second key word of the background's generator


class Microcircuit(bp.DynSysGroup):
    """The Potjans & Diesmann (2014) microcircuit, wired from its derived parameters.

    Build it with :func:`microcircuit`, or from parameters of your own with
    ``Microcircuit(potjans2014.derive(...))``. This class only wires what it is
    given: one ``LifRef`` group and one spike delay per population, one projection
    per non-zero connection (``HalfProjAlignPostMg`` when ``params.merged``, else
    ``HalfProjAlignPost``) and, with ``params.background == 'poisson'``, one Poisson
    source and projection per population.

    Parameters
    ----------
    params : MicrocircuitParams
        From :func:`brainpy_halfproj.models.potjans2014.derive`, for brainpy's
        current time step (``bm.get_dt()``).
    dyn : module, optional
        Namespace providing ``HalfProjAlignPostMg`` and ``HalfProjAlignPost``;
        defaults to :mod:`brainpy_halfproj.dyn`.
    fused : bool
        Keyword only. Build the merging projections with ``fused=True``: one
        event-kernel call per population and step for its recurrent input (the
        Poisson drive, a ``OneToOne`` layer, keeps its own call). Needs
        ``params.merged``.

    Raises
    ------
    TypeError
        If ``params`` is not a ``MicrocircuitParams``.
    ValueError
        If ``params.dt`` is not brainpy's current time step, or ``fused`` is asked
        of an unmerged model.

    Attributes
    ----------
    params : MicrocircuitParams
        Every derived parameter (weights, probabilities, delays, ...).
    populations : dict of str to brainpy.dyn.LifRef
        The eight neuron groups, keyed by :data:`POPULATIONS`.
    delay_buffers : dict of str to brainpy.VarDelay
        One spike delay buffer per population, long enough for its longest delay (a ring
        buffer: ``method="rotation"``).
    projections : dict of str to Projection
        ``'PRE->POST'`` for recurrent projections, ``'bg->POST'`` for the Poisson drive.
    routes : list of (str, str, Projection)
        ``(pre, post, projection)`` in update order; ``pre`` is ``'bg'`` for the
        Poisson drive.
    sizes, dc : dict of str
        Neurons per population; constant input current per population (pA).
    charge_correction : float
        The factor included in every weight (see ``potjans2014.charge_correction``).
    spike_counts : dict of str to brainpy.math.Variable
        Spikes per neuron since the last :meth:`reset_spike_counts` (held by the
        child node ``counters``).

    Examples
    --------
    >>> from brainpy_halfproj.models import Microcircuit, potjans2014
    >>> net = Microcircuit(potjans2014.derive(0.01, seed=1))
    >>> net.sizes['L4E'], len(net.projections)
    (219, 63)
    """

    def __init__(self, params: MicrocircuitParams, dyn: Any = None, *, fused: bool = False):
        super().__init__()
        if dyn is None:
            from .. import dyn  # lazy: keeps ``import brainpy_halfproj.models`` cycle-free
        if not isinstance(params, MicrocircuitParams):
            raise TypeError(f"params must be a MicrocircuitParams from potjans2014.derive(), "
                            f"got {type(params).__name__}")
        if params.dt != bm.get_dt():
            raise ValueError(f"params were derived for dt = {params.dt} ms, but brainpy's time step is "
                             f"{bm.get_dt()} ms; derive them with dt=bm.get_dt() or call bm.set_dt({params.dt}) first")
        if not isinstance(fused, bool):
            raise TypeError(f"fused must be True or False, got {fused!r}")
        if fused and not params.merged:
            raise ValueError("fused=True needs merged projections; derive the parameters with merged=True")
        self.fused = fused
        # readable, unique node names (brainpy requires unique names): mc0_L23E, mc0_L4E_to_L23E
        tag = f"mc{next(_MODEL_IDS)}"
        self.params = params
        self.sizes = dict(params.sizes)
        self.dc = dict(params.dc)
        self.charge_correction = params.charge_correction
        sizes = self.sizes

        pops = {
            p: bp.dyn.LifRef(
                sizes[p], V_rest=E_L, V_reset=V_RESET, V_th=V_TH, R=TAU_M / C_M,
                tau=TAU_M, tau_ref=T_REF, V_initializer=bm.asarray(params.v0[p]), name=f"{tag}_{p}",
            )
            for p in POPULATIONS
        }
        self.populations = bm.NodeDict(pops)
        # Timing as in NEST: a spike found at the end of step m (time (m+1)*dt)
        # with a delay of d steps reaches the synapse at the start of step
        # m + 1 + d (time: spike time + delay).  The model reads a VarDelay
        # before writing this step's spikes, and brainpy's ``retrieve(s)`` then
        # returns the spikes written s - 1 steps earlier, so the entry is d + 2.
        entry_steps = {p: np.asarray(params.delay_steps[p]) + 2 for p in POPULATIONS}
        # "rotation": each step writes one row of the ring buffer in place ("concat" would
        # copy the whole buffer every step); a population's per-neuron delays are then read
        # with one gather (``delayed_spikes``).
        self.delay_buffers = bm.NodeDict({p: bp.VarDelay(pops[p].spike, method="rotation") for p in POPULATIONS})
        for p in POPULATIONS:  # by step: brainpy would ceil() a time, 1.7/0.1 -> 18
            self.delay_buffers[p].register_entry("out", delay_step=int(np.max(entry_steps[p])))
        if params.delays == "normal":
            self._delay_index = {
                p: (jnp.asarray(entry_steps[p], dtype=jnp.int32), jnp.arange(sizes[p]))
                for p in POPULATIONS
            }
        self.counters = _SpikeCounters(sizes)

        # One synapse descriptor per post population, so that all projections onto it
        # merge into a single Expon state when merged.
        def make(comm, pre, post):
            name = f"{tag}_{pre}_to_{post}"
            if params.merged:
                return dyn.HalfProjAlignPostMg(
                    comm=comm, syn=bp.dyn.Expon.desc(size=sizes[post], tau=TAU_SYN),
                    out=bp.dyn.CUBA.desc(), post=pops[post], name=name, **({"fused": True} if fused else {}),
                )
            return dyn.HalfProjAlignPost(
                comm=comm, syn=bp.dyn.Expon(size=sizes[post], tau=TAU_SYN),
                out=bp.dyn.CUBA(), post=pops[post], name=name,
            )

        routes = []
        for pre, post in params.projections():
            i, j = POPULATIONS.index(post), POPULATIONS.index(pre)
            comm = bp.dnn.EventJitFPNormalLinear(
                sizes[pre], sizes[post], prob=float(params.kernel_prob[i, j]),
                w_mu=float(params.kernel_w_mu[i, j]), w_sigma=float(params.kernel_w_sigma[i, j]),
                seed=int(params.conn_seeds[i, j]),
            )
            routes.append((pre, post, make(comm, pre, post)))
        sources = {}
        if params.background == "poisson":
            for post in POPULATIONS:
                sources[post] = _PoissonCounts(sizes[post], params.bg_rates[post], params.dt,
                                               seed=params.bg_seeds[post])
                routes.append(("bg", post, make(bp.dnn.OneToOne(sizes[post], float(params.w_ext)), "bg", post)))
        self.projections = bm.NodeDict({f"{pre}->{post}": proj for pre, post, proj in routes})
        self.sources = bm.NodeDict(sources)
        self.routes = routes  # a plain list: brainpy reaches the projections through ``projections``

    @property
    def spike_counts(self) -> Any:
        """Spikes per neuron since the last :meth:`reset_spike_counts`, per population (Variables)."""
        return self.counters.spikes

    def delayed_spikes(self) -> dict[str, Any]:
        """The spikes arriving at the current step (``bp.share`` ``i``), per population.

        Entry ``j`` of population ``p`` is the spike that neuron ``j`` emitted
        ``d = params.delay_steps[p][j]`` steps before the current step's
        start, found at the end of step ``i - d - 1`` (spike time + delay = now).
        """
        if self.params.delays == "fixed":
            return {p: self.delay_buffers[p].at("out") for p in POPULATIONS}
        # brainpy's bounds check takes one scalar step (it fails on an array when
        # run eagerly); the steps are within the buffer by construction.
        checking = bp.check.is_checking()
        bp.check.turn_off()
        try:
            return {p: self.delay_buffers[p].retrieve(*self._delay_index[p]) for p in POPULATIONS}
        finally:
            if checking:
                bp.check.turn_on()

    def check_dt(self) -> None:
        """Refuse to run at another time step than the model was built for.

        Its delays (in steps), weights and background rates were derived for ``params.dt``;
        run at another ``bm.get_dt()`` it would give rates several times off, silently.

        Raises
        ------
        ValueError
            If ``bm.get_dt()`` is not ``params.dt``.

        Examples
        --------
        >>> import brainpy.math as bm
        >>> from brainpy_halfproj.models import microcircuit
        >>> bm.set_dt(0.1)
        >>> net = microcircuit(0.01)
        >>> bm.set_dt(0.05)
        >>> net.check_dt()
        Traceback (most recent call last):
        ValueError: this Microcircuit was built for dt = 0.1 ms, but brainpy's time step is now 0.05 ms ...
        >>> bm.set_dt(0.1)
        >>> net.check_dt()
        """
        dt = bm.get_dt()
        if dt != self.params.dt:
            raise ValueError(f"this Microcircuit was built for dt = {self.params.dt} ms, but brainpy's time step is "
                             f"now {dt} ms (its delays, weights and background rates are per step of "
                             f"{self.params.dt} ms); call bm.set_dt({self.params.dt}) before running it, or build "
                             f"a new model at dt = {dt} ms")

    def update(self):
        self.check_dt()  # a Python check: at trace time under jit, nothing in the compiled step
        spikes = self.delayed_spikes()
        for pre, post, proj in self.routes:
            proj(self.sources[post]() if pre == "bg" else spikes[pre])
        out = {}
        for p in POPULATIONS:
            spk = self.populations[p](self.dc[p])
            self.delay_buffers[p](spk)
            self.spike_counts[p].value += spk
            out[p] = spk
        return out

    def reset_spike_counts(self) -> None:
        """Set every population's spike counter to zero."""
        for p in POPULATIONS:
            self.spike_counts[p].value = bm.zeros_like(self.spike_counts[p].value)


def microcircuit(
    scale: float = 1.0,
    *,
    background: Literal["poisson", "dc"] = "poisson",
    merged: bool = True,
    connectivity: Literal["multapse", "matched", "table"] = "multapse",
    seed: int = 0,
    dyn: Any = None,
    delays: Literal["normal", "fixed"] = "normal",
    jit_correction: bool = True,
    fused: bool = False,
    size_multiple: int = 1,
) -> Microcircuit:
    """Build the Potjans & Diesmann (2014) cortical microcircuit.

    Eight populations (L2/3, L4, L5, L6; excitatory and inhibitory) of
    current-based LIF neurons coupled by exponential current synapses, with
    just-in-time connectivity (``bp.dnn.EventJitFPNormalLinear``): synapses and
    weights are regenerated from a seed on every spike, so memory grows with the
    number of neurons, not synapses. Each population has one ``bp.VarDelay``.
    The parameters are derived by :func:`brainpy_halfproj.models.potjans2014.derive`
    for brainpy's time step and this line's JIT kernels; its module docstring says
    what each option does in detail. Measured rates and timings are in
    ``BENCHMARKS.md`` ("Cortical microcircuit").

    Parameters
    ----------
    scale : float
        In ``(0, 1]``, any real number type; with the Poisson background above
        ``potjans2014.min_scale()`` (3.3e-4, one background input per neuron).
        Scales the number of neurons and the in-degrees together;
        below 1 the weights grow by ``1 / sqrt(scale)`` and a DC current replaces
        the lost mean input, as in the reference.
    background : {'poisson', 'dc'}
        ``'poisson'``: independent Poisson input per neuron, fed through the
        same synapse as the recurrent input; ``'dc'``: its mean as a constant current.
    merged : bool
        ``True``: every projection is a ``HalfProjAlignPostMg``, so all
        projections onto one population share one synapse state.  ``False``:
        ``HalfProjAlignPost``, one synapse state per projection.
    connectivity : {'multapse', 'matched', 'table'}
        ``'multapse'`` (default): pairs connected with the reference's mean number
        of synapses per pair, weight spread widened so that a pair's summed
        weight has the reference's mean and second moment; ``'matched'``: the
        same probability, the published 10 % spread; ``'table'``: the table's
        probability as is.
    seed : int
        Non-negative. Seeds connectivity, weights, delays, initial potentials and background.
    dyn : module, optional
        Namespace providing ``HalfProjAlignPostMg`` and ``HalfProjAlignPost``;
        defaults to :mod:`brainpy_halfproj.dyn`.
    delays : {'normal', 'fixed'}
        ``'normal'`` (default): one normally distributed delay per presynaptic
        neuron, read from the population's ``VarDelay`` with a gather;
        ``'fixed'``: the mean delays, rounded to whole steps.
    jit_correction : bool
        Ask each JIT kernel for the attainable probability nearest its target and
        scale its weights by ``target / realised`` (``params.weight_factor``).
    fused : bool
        Fused merge groups (``HalfProjAlignPostMg(..., fused=True)``): one
        event-kernel call per population and step for all its recurrent input, on
        the connectivity read out of the JIT layers. Needs ``merged=True``. The
        synaptic input is the same up to float summation order; memory then grows
        with the number of synapses.
    size_multiple : int
        Round every population size to the nearest multiple of this, e.g. the
        number of devices for :func:`brainpy_halfproj.partition`, which splits
        each population evenly.

    Returns
    -------
    Microcircuit
        A ``bp.DynSysGroup``; ``model.step_run(i)`` advances one step of
        ``bm.get_dt()`` (the reference uses 0.1 ms).

    Raises
    ------
    TypeError, ValueError
        For an argument of the wrong kind or out of range (from ``derive``).

    Examples
    --------
    >>> from brainpy_halfproj.models import microcircuit
    >>> net = microcircuit(scale=0.01, seed=1)
    >>> list(net.populations)
    ['L23E', 'L23I', 'L4E', 'L4I', 'L5E', 'L5I', 'L6E', 'L6I']
    >>> len(net.projections)  # 55 non-zero table entries + 8 background drives
    63
    >>> net.routes[0][:2], net.routes[-1][:2]
    (('L23E', 'L23E'), ('bg', 'L6I'))
    >>> from brainpy_halfproj import merge_report
    >>> len(merge_report(net).groups)  # one synapse state per post population
    8
    >>> microcircuit(scale=0.01, merged=False).charge_correction < 1 < net.charge_correction
    True
    """
    params = derive(
        scale, background=background, merged=merged, connectivity=connectivity, delays=delays,
        jit_numerator=jit_prob_numerator(), jit_correction=jit_correction, seed=seed, dt=bm.get_dt(),
        size_multiple=size_multiple,
    )
    return Microcircuit(params, dyn, fused=fused)


def population_rates(model: Microcircuit, duration: float) -> dict[str, float]:
    """Mean firing rate (spikes/s) per population from the model's spike counters.

    ``duration`` (ms) is the time simulated since the counters were last reset
    (:meth:`Microcircuit.reset_spike_counts`).

    Raises
    ------
    TypeError
        If ``duration`` is not a number.
    ValueError
        If ``duration`` is not positive and finite.

    Examples
    --------
    >>> from brainpy_halfproj.models import microcircuit, population_rates
    >>> rates = population_rates(microcircuit(scale=0.01, seed=1), 100.0)  # nothing simulated yet
    >>> list(rates)[:2], rates['L4E']
    (['L23E', 'L23I'], 0.0)
    """
    if isinstance(duration, bool) or not isinstance(duration, numbers.Real):
        raise TypeError(f"duration must be a number of ms, got {type(duration).__name__}: {duration!r}")
    if not (math.isfinite(duration) and duration > 0):
        raise ValueError(f"duration must be positive and finite (ms, the time since the counters were reset), "
                         f"got {duration!r}")
    return {
        p: float(np.asarray(model.spike_counts[p].value).sum()) / model.sizes[p] / (duration * 1e-3)
        for p in POPULATIONS
    }


def simulate(
    model: Microcircuit,
    duration: float,
    *,
    record: bool | Literal["counts"] = False,
    start_step: int = 0,
    progress: bool | None = None,
) -> dict[str, np.ndarray] | None:
    """Advance ``model`` by ``duration`` ms in jitted loops of up to 1000 steps.

    Parameters
    ----------
    model : Microcircuit
    duration : float
        Biological time in ms; rounded to whole steps of ``bm.get_dt()``, at least one.
    record : {False, True, 'counts'}
        ``True`` returns the spikes as ``{population: bool array (steps,
        neurons)}`` (for small models); ``'counts'`` returns the number of
        spikes per population and step, ``{population: int array (steps,)}``, cheap
        at any scale; ``False`` returns ``None``.
    start_step : int
        The step index (and so the time) of the first step.
    progress : bool or None
        Show a progress bar on standard error, advanced after each loop of up to
        1000 steps. ``None`` (default): when a person is watching (standard error
        is a terminal, or in Jupyter).

    Raises
    ------
    TypeError
        If ``duration`` is not a number or ``progress`` not a bool or None.
    ValueError
        If ``record`` is not one of its choices, or ``duration`` is negative, not
        finite, or shorter than half a step (nothing to simulate), or brainpy's time
        step is not the one the model was built for (:meth:`Microcircuit.check_dt`).

    Examples
    --------
    >>> from brainpy_halfproj.models import microcircuit, simulate
    >>> counts = simulate(microcircuit(scale=0.02, seed=1), 1.0, record='counts')  # 10 steps of 0.1 ms
    >>> counts['L4E'].shape, counts['L4E'].dtype.kind
    ((10,), 'i')
    """
    model.check_dt()
    if record not in (True, False, "counts"):
        raise ValueError(f"record must be True, False or 'counts', got {record!r}")
    if isinstance(duration, bool) or not isinstance(duration, numbers.Real):
        raise TypeError(f"duration must be a number of ms, got {type(duration).__name__}: {duration!r}")
    dt = bm.get_dt()
    if not math.isfinite(duration) or duration < 0:
        raise ValueError(f"duration must be a positive number of ms, got {duration!r}")
    n = int(round(duration / dt))
    if n < 1:
        raise ValueError(f"duration must cover at least one time step: {duration!r} ms is "
                         f"{duration / dt:g} steps of dt = {dt} ms, which rounds to 0 (durations are in ms)")
    start_step = operator.index(start_step)
    show = show_progress(progress)
    chunk = min(n, 1000)
    cache = model.__dict__.setdefault("_runners", {})

    def runner(steps: int):
        key = (record, steps)
        if key not in cache:
            if record == "counts":
                def body(i):
                    out = model.step_run(i)
                    return {p: bm.as_jax(out[p]).sum() for p in POPULATIONS}
            elif record:
                def body(i):
                    return model.step_run(i)
            else:
                def body(i):
                    model.step_run(i)
                    return None

            cache[key] = bm.jit(lambda indices: bm.for_loop(body, indices))
        return cache[key]

    def counters():
        return [v.value for v in model.spike_counts.values()]

    outs = []
    with tqdm(total=n, unit="step", desc=f"simulate {n * dt:g} ms", disable=not show) as bar:
        for s in range(0, n, chunk):
            idx = np.arange(start_step + s, start_step + min(n, s + chunk))
            out = runner(len(idx))(idx)
            if record:
                outs.append({p: np.asarray(out[p]) for p in POPULATIONS})
            if show:
                jax.block_until_ready(counters())  # the bar moves when the steps are done
            bar.update(len(idx))
    jax.block_until_ready(counters())
    if record:
        return {p: np.concatenate([o[p] for o in outs]) for p in POPULATIONS}
    return None
