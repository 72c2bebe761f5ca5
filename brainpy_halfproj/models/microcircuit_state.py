"""The cortical microcircuit of Potjans & Diesmann (2014), wired from brainpy.state classes.

The sibling of :mod:`brainpy_halfproj.models.microcircuit` (``bp.dyn``) for the API upstream
recommends since brainpy 2.9: the same physics (:func:`~brainpy_halfproj.models.potjans2014.derive`),
wired with units (brainunit) from ``brainpy.state`` and ``brainstate`` classes:

* one ``LIFRef`` group per population (mV, pA, ms; ``R = tau_m / C_m``);
* per presynaptic neuron delays, from one ``brainstate.nn.Delay`` of its spikes per population,
  read with a gather (``retrieve_at_step(steps, neurons)``), shared by every projection from it;
* one ``AlignPostProj`` per non-zero connection, with ``Expon``/``CUBA`` descriptors shared by
  every projection onto a population, so that they merge into one synapse state per population;
  its comm is ``brainstate.nn.SparseLinear`` over brainevent's ``JITCNormalR``, fed
  ``brainevent.BinaryArray`` spikes: the very kernel, seed and orientation of the ``bp.dyn``
  model's ``EventJitFPNormalLinear``, so both models realise the same synapses and weights;
* the Poisson background of the ``bp.dyn`` model (same counts, from ``models._poisson``) through
  ``brainstate.nn.OneToOne`` into the same synapse.

The projection class comes from a namespace (``state=``): the plugin's
``brainpy_halfproj.state`` where it is importable, else upstream's ``brainpy.state``.

What differs from the ``bp.dyn`` model
--------------------------------------
* **Synapse update order.** brainpy.state's ``Expon`` decays and then adds the input of the
  step, merged or not, as ``bp.dyn``'s *unmerged* synapses do (its merged ones add first), so
  the weights are derived with ``merged=False`` (``charge_correction`` 0.906 instead of
  1.107). The membrane then sees the same current sequence as in the ``bp.dyn`` model.
* **Refractory period.** ``LIFRef`` clamps the potential while ``t - t_spike < tau_ref``,
  ``bp.dyn``'s ``LifRef`` while ``t - t_spike <= tau_ref``; ``tau_ref`` is given as
  ``T_REF + dt / 2`` so that both clamp 20 steps of 0.1 ms, as NEST does. ``spk_reset='hard'``
  sets ``V_reset`` exactly; brainpy.state applies the reset at the start of the next step (the
  potential read right after a spike is the supra-threshold one), which changes no spike.
* **Arithmetic.** Units, brainstate's exponential Euler step and the order of additions differ,
  so rasters agree only until the first rounding difference tips a spike; rates agree
  statistically (``tests/test_microcircuit_state.py``, ``BENCHMARKS.md``).

Upstream's own cortical example (``examples/203_cortical_model.py`` of chaobrain/brainpy.state)
is written in brainpy 1.x's API (``bp.NeuGroup``, ``bp.synapses.TwoEndConn``) and does not run
on brainpy 2.9; the differences from it are listed in ``BENCHMARKS.md``.
"""
from __future__ import annotations

import importlib
import math
import numbers
import operator
from types import ModuleType
from typing import Any, Literal

import brainevent
import brainstate
import braintools
import brainunit as u
import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from .._compat import jit_prob_numerator
from .._progress import show_progress
from ._poisson import poisson_counts, poisson_thresholds
from .microcircuit import _BACKGROUND_STREAM
from .potjans2014 import (
    C_M,
    E_L,
    POPULATIONS,
    T_REF,
    TAU_M,
    TAU_SYN,
    V_RESET,
    V_TH,
    MicrocircuitParams,
    charge_correction,
    derive,
)

__all__ = ["StateMicrocircuit", "state_microcircuit", "simulate_state", "default_state_namespace"]


def default_state_namespace() -> ModuleType:
    """``brainpy_halfproj.state`` where it can be imported, else upstream's ``brainpy.state``.

    Examples
    --------
    >>> ns = default_state_namespace()
    >>> ns.__name__ in ('brainpy_halfproj.state', 'brainpy.state')
    True
    """
    try:
        return importlib.import_module("brainpy_halfproj.state")
    except ImportError:
        return importlib.import_module("brainpy.state")


def _dt_ms() -> float:
    try:
        dt = brainstate.environ.get_dt()
    except KeyError:
        raise ValueError("brainstate's time step is not set; call brainstate.environ.set(dt=0.1 * u.ms) "
                         "(brainunit as u) before building or running the model") from None
    return float(u.maybe_decimal(dt / u.ms)) if isinstance(dt, u.Quantity) else float(dt)


class _PoissonCounts(brainstate.nn.Module):
    """The ``bp.dyn`` model's Poisson background: counts per neuron for step ``environ 'i'``."""

    def __init__(self, size: int, rate_hz: float, dt: float, seed: int):
        super().__init__()
        self.size = size
        self.thresholds = poisson_thresholds(rate_hz * 1e-3 * dt)
        self.key = (int(seed) & 0xFFFFFFFF, _BACKGROUND_STREAM)

    def update(self) -> jax.Array:
        return poisson_counts(self.thresholds, self.key, brainstate.environ.get("i"), self.size)


class StateMicrocircuit(brainstate.nn.Module):
    """The Potjans & Diesmann (2014) microcircuit from brainpy.state classes, wired from its parameters.

    Build it with :func:`state_microcircuit`, or from parameters of your own with
    ``StateMicrocircuit(potjans2014.derive(..., merged=False))``. States are initialised
    (``brainstate.nn.init_all_states``) at construction; run it with :func:`simulate_state`, or
    call ``model.update()`` inside ``brainstate.environ.context(i=step, t=step * dt)``.

    Parameters
    ----------
    params : MicrocircuitParams
        From :func:`~brainpy_halfproj.models.potjans2014.derive` with ``merged=False`` (see the
        module docstring: brainpy.state's synapses add their input after the decay), for
        brainstate's current time step.
    state : module, optional
        The namespace that provides ``AlignPostProj``, ``LIFRef``, ``Expon`` and ``CUBA``:
        ``brainpy_halfproj.state`` or ``brainpy.state``; default: :func:`default_state_namespace`.

    Raises
    ------
    TypeError
        If ``params`` is not a ``MicrocircuitParams``, or ``state`` lacks one of the classes.
    ValueError
        If ``params`` were derived for ``bp.dyn``'s merged synapses or for another time step
        than brainstate's, or brainstate's time step is not set.

    Attributes
    ----------
    params, sizes, dc, charge_correction
        As on :class:`~brainpy_halfproj.models.Microcircuit` (``dc`` in pA).
    state : module
        The namespace the model was built from.
    populations : dict of str to LIFRef
    delays : dict of str to brainstate.nn.Delay
        One buffer of each population's spikes, as deep as its longest delay.
    projections : dict of str to AlignPostProj
        ``'PRE->POST'`` for recurrent projections, ``'bg->POST'`` for the Poisson drive.
    routes : list of (str, str, AlignPostProj)
        ``(pre, post, projection)`` in update order.
    spike_counts : dict of str to brainstate.State
        Spikes per neuron since the last :meth:`reset_spike_counts`.

    Examples
    --------
    >>> import brainstate, brainunit as u
    >>> from brainpy_halfproj.models import StateMicrocircuit, derive
    >>> brainstate.environ.set(dt=0.1 * u.ms)
    >>> net = StateMicrocircuit(derive(0.01, merged=False, jit_numerator=2.0, seed=1))
    >>> len(net.projections), len({id(p.syn) for p in net.projections.values()})
    (63, 8)
    """

    def __init__(self, params: MicrocircuitParams, state: ModuleType | None = None):
        super().__init__()
        if not isinstance(params, MicrocircuitParams):
            raise TypeError(f"params must be a MicrocircuitParams from potjans2014.derive(), "
                            f"got {type(params).__name__}")
        dt = _dt_ms()
        if not math.isclose(params.dt, dt, rel_tol=1e-6):
            raise ValueError(f"params were derived for dt = {params.dt} ms, but brainstate's time step is {dt} ms; "
                             f"derive them with dt={dt} or call brainstate.environ.set(dt={params.dt} * u.ms) first")
        if params.merged or not math.isclose(params.charge_correction, charge_correction(params.dt, merged=False)):
            raise ValueError("params were derived for bp.dyn's merged synapses (merged=True: the input decays once "
                             "before the membrane sees it), but brainpy.state's Expon adds its input after the "
                             "decay; derive them with merged=False")
        if state is None:
            state = default_state_namespace()
        missing = [n for n in ("AlignPostProj", "LIFRef", "Expon", "CUBA") if not hasattr(state, n)]
        if missing:
            raise TypeError(f"state must be a namespace like brainpy.state or brainpy_halfproj.state, but "
                            f"{getattr(state, '__name__', state)!r} lacks {', '.join(missing)}")
        self.state = state
        self.params = params
        self.sizes = dict(params.sizes)
        self.dc = dict(params.dc)
        self.charge_correction = params.charge_correction
        sizes = self.sizes
        ms, mv, pa = u.ms, u.mV, u.pA

        self.populations = {
            p: state.LIFRef(
                sizes[p], R=TAU_M * ms / (C_M * u.pF), tau=TAU_M * ms, tau_ref=(T_REF + dt / 2) * ms,
                V_th=V_TH * mv, V_reset=V_RESET * mv, V_rest=E_L * mv,
                V_initializer=jnp.asarray(params.v0[p]) * mv, spk_reset="hard",
            )
            for p in POPULATIONS
        }
        # A spike found at the end of step m, with a delay of d steps, reaches the synapse at
        # the start of step m + 1 + d (as in NEST). The buffers are read before this step's
        # spikes are written, so ``retrieve_at_step(d)`` then returns the spikes of step m.
        steps = {p: np.asarray(params.delay_steps[p]) for p in POPULATIONS}
        spike = {p: jax.ShapeDtypeStruct((sizes[p],), jnp.bool_) for p in POPULATIONS}
        self.delays = {p: brainstate.nn.Delay(spike[p], time=int(steps[p].max()) * dt * ms) for p in POPULATIONS}
        self._read = {p: ((int(steps[p]),) if params.delays == "fixed" else
                          (jnp.asarray(steps[p], dtype=jnp.int32), jnp.arange(sizes[p])))
                      for p in POPULATIONS}
        self.spike_counts = {p: brainstate.ShortTermState(jnp.zeros(sizes[p], dtype=jnp.int32))
                             for p in POPULATIONS}

        # One descriptor pair per post population: every projection onto it merges into one synapse.
        zero = braintools.init.Constant(jnp.float32(0.) * pa)  # not 0. * pa: weakly typed, it costs a second compile
        syn = {p: state.Expon.desc(sizes[p], tau=TAU_SYN * ms, g_initializer=zero)
               for p in POPULATIONS}
        out = {p: state.CUBA.desc(scale=1.) for p in POPULATIONS}

        routes = []
        for pre, post in params.projections():
            i, j = POPULATIONS.index(post), POPULATIONS.index(pre)
            # bp.dnn.EventJitFPNormalLinear(n_pre, n_post, ...) computes JITCNormalR(shape=(n_post, n_pre),
            # corder=False) @ spikes; the same matrix, transposed, gives the same synapses pre-major.
            matrix = brainevent.JITCNormalR(
                (float(params.kernel_w_mu[i, j]) * pa, float(params.kernel_w_sigma[i, j]) * pa,
                 float(params.kernel_prob[i, j]), int(params.conn_seeds[i, j])),
                shape=(sizes[post], sizes[pre]), corder=False,
            )
            comm = brainstate.nn.SparseLinear(matrix.T)
            routes.append((pre, post, state.AlignPostProj(brainevent.BinaryArray, comm=comm, syn=syn[post],
                                                          out=out[post], post=self.populations[post])))
        self.sources: dict[str, _PoissonCounts] = {}
        if params.background == "poisson":
            for post in POPULATIONS:
                self.sources[post] = _PoissonCounts(sizes[post], params.bg_rates[post], params.dt,
                                                    params.bg_seeds[post])
                comm = brainstate.nn.OneToOne(sizes[post], w_init=float(params.w_ext) * pa)
                routes.append(("bg", post, state.AlignPostProj(comm=comm, syn=syn[post], out=out[post],
                                                               post=self.populations[post])))
        self.projections = {f"{pre}->{post}": proj for pre, post, proj in routes}
        self.routes = routes
        brainstate.nn.init_all_states(self)

    def delayed_spikes(self) -> dict[str, Any]:
        """The spikes arriving at the current step, per population (see :meth:`update`)."""
        return {p: self.delays[p].retrieve_at_step(*self._read[p]) for p in POPULATIONS}

    def update(self) -> dict[str, Any]:
        """Advance one step: ``brainstate.environ`` must hold the step index ``i`` and time ``t``."""
        spikes = self.delayed_spikes()
        for pre, post, proj in self.routes:
            proj(self.sources[post]() if pre == "bg" else spikes[pre])
        out = {}
        for p in POPULATIONS:
            spk = self.populations[p](self.dc[p] * u.pA) != 0
            self.delays[p].update(spk)
            self.spike_counts[p].value += spk
            out[p] = spk
        return out

    def reset_spike_counts(self) -> None:
        """Set every population's spike counter to zero."""
        for p in POPULATIONS:
            self.spike_counts[p].value = jnp.zeros_like(self.spike_counts[p].value)


def state_microcircuit(
    scale: float = 1.0,
    *,
    background: Literal["poisson", "dc"] = "poisson",
    connectivity: Literal["multapse", "matched", "table"] = "multapse",
    seed: int = 0,
    state: ModuleType | None = None,
    delays: Literal["normal", "fixed"] = "normal",
    jit_correction: bool = True,
    size_multiple: int = 1,
) -> StateMicrocircuit:
    """Build the Potjans & Diesmann (2014) cortical microcircuit from brainpy.state classes.

    The arguments are those of :func:`~brainpy_halfproj.models.microcircuit` (the ``bp.dyn``
    model), which this model reproduces with the same seeds: the same synapses and weights,
    delays, initial potentials and background draws (the module docstring says what
    differs). brainstate's time step must be set (``brainstate.environ.set(dt=0.1 * u.ms)``).

    Parameters
    ----------
    scale, background, connectivity, seed, delays, jit_correction, size_multiple
        See :func:`brainpy_halfproj.models.microcircuit`.
    state : module, optional
        ``brainpy_halfproj.state`` or ``brainpy.state``; default: :func:`default_state_namespace`.

    Returns
    -------
    StateMicrocircuit

    Raises
    ------
    TypeError, ValueError
        For an argument of the wrong kind or out of range (from ``derive``).

    Examples
    --------
    >>> import brainstate, brainunit as u
    >>> from brainpy_halfproj.models import state_microcircuit, simulate_state, population_rates
    >>> brainstate.environ.set(dt=0.1 * u.ms)
    >>> net = state_microcircuit(scale=0.01, seed=1)
    >>> list(net.populations)
    ['L23E', 'L23I', 'L4E', 'L4I', 'L5E', 'L5I', 'L6E', 'L6I']
    >>> net.routes[0][:2], net.routes[-1][:2]
    (('L23E', 'L23E'), ('bg', 'L6I'))
    >>> counts = simulate_state(net, 5.0, record='counts')
    >>> counts['L4E'].shape
    (50,)
    """
    params = derive(
        scale, background=background, merged=False, connectivity=connectivity, delays=delays,
        jit_numerator=jit_prob_numerator(), jit_correction=jit_correction, seed=seed, dt=_dt_ms(),
        size_multiple=size_multiple,
    )
    return StateMicrocircuit(params, state)


def simulate_state(
    model: StateMicrocircuit,
    duration: float,
    *,
    record: bool | Literal["counts"] = False,
    start_step: int = 0,
    progress: bool | None = None,
) -> dict[str, np.ndarray] | None:
    """Advance a :class:`StateMicrocircuit` by ``duration`` ms in jitted loops of up to 1000 steps.

    The arguments, checks and results are those of :func:`brainpy_halfproj.models.simulate`;
    the loops are ``brainstate.transform.for_loop`` under ``brainstate.transform.jit``, with
    the step index ``i`` and time ``t`` in ``brainstate.environ``.
    """
    if record not in (True, False, "counts"):
        raise ValueError(f"record must be True, False or 'counts', got {record!r}")
    if isinstance(duration, bool) or not isinstance(duration, numbers.Real):
        raise TypeError(f"duration must be a number of ms, got {type(duration).__name__}: {duration!r}")
    dt = _dt_ms()
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

    def runner(steps: int) -> Any:
        key = (record, steps, dt)
        if key not in cache:
            def body(i):
                with brainstate.environ.context(i=i, t=i * dt * u.ms):
                    out = model.update()
                if record == "counts":
                    return {p: out[p].sum() for p in POPULATIONS}
                return out if record else None

            cache[key] = brainstate.transform.jit(lambda indices: brainstate.transform.for_loop(body, indices))
        return cache[key]

    def counters():
        return [s.value for s in model.spike_counts.values()]

    outs = []
    with tqdm(total=n, unit="step", desc=f"simulate {n * dt:g} ms", disable=not show) as bar:
        for s in range(0, n, chunk):
            idx = np.arange(start_step + s, start_step + min(n, s + chunk))
            out = runner(len(idx))(idx)
            if record:
                outs.append({p: np.asarray(out[p]) for p in POPULATIONS})
            if show:
                jax.block_until_ready(counters())
            bar.update(len(idx))
    jax.block_until_ready(counters())
    if record:
        return {p: np.concatenate([o[p] for o in outs]) for p in POPULATIONS}
    return None
