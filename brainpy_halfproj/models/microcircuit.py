"""The cortical microcircuit of Potjans & Diesmann (2014) on align-post projections.

The model, its parameters and its scaling rules follow

* T. C. Potjans and M. Diesmann, "The cell-type specific cortical microcircuit:
  relating structure and activity in a full-scale spiking network model",
  Cerebral Cortex 24(3):785-806, 2014, doi:10.1093/cercor/bhs358;
* the PyNEST reference implementation, NEST 3 ``examples/Potjans_2014``
  (``network_params.py``, ``helpers.py``), and its PyNN port
  (PyNN ``examples/Potjans2014``), which document the parameters, the
  down-scaling rule and the full-scale reference rates used here.

Every current is in pA, every potential in mV, every time in ms.  BrainPy's LIF
integrates ``tau * dV/dt = -(V - V_rest) + R * I``; with ``R = tau_m / C_m =
10 ms / 250 pF = 0.04 mV/pA`` this is NEST's ``C_m dV/dt = -(C_m/tau_m)(V - E_L) + I``
with ``I`` in pA.
"""
from __future__ import annotations

import itertools
import math
from typing import Any, Literal, Mapping

import jax
import jax.numpy as jnp
import numpy as np

import brainpy as bp
import brainpy.math as bm

from .._compat import jit_nearest_prob, jit_realised_prob

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

#: Population names, in the order of the paper's tables (E then I per layer).
POPULATIONS: tuple[str, ...] = ("L23E", "L23I", "L4E", "L4I", "L5E", "L5I", "L6E", "L6I")

#: Number of neurons per population at full scale (77,169 in all).
FULL_SIZES: dict[str, int] = dict(
    zip(POPULATIONS, (20683, 5834, 21915, 5479, 4850, 1065, 14395, 2948))
)

#: Connection probabilities, ``CONN_PROBS[target, source]`` (paper, Table 5).
CONN_PROBS: np.ndarray = np.array(
    [
        [0.1009, 0.1689, 0.0437, 0.0818, 0.0323, 0.0, 0.0076, 0.0],
        [0.1346, 0.1371, 0.0316, 0.0515, 0.0755, 0.0, 0.0042, 0.0],
        [0.0077, 0.0059, 0.0497, 0.135, 0.0067, 0.0003, 0.0453, 0.0],
        [0.0691, 0.0029, 0.0794, 0.1597, 0.0033, 0.0, 0.1057, 0.0],
        [0.1004, 0.0622, 0.0505, 0.0057, 0.0831, 0.3726, 0.0204, 0.0],
        [0.0548, 0.0269, 0.0257, 0.0022, 0.06, 0.3158, 0.0086, 0.0],
        [0.0156, 0.0066, 0.0211, 0.0166, 0.0572, 0.0197, 0.0396, 0.2252],
        [0.0364, 0.001, 0.0034, 0.0005, 0.0277, 0.008, 0.0658, 0.1443],
    ]
)
CONN_PROBS.setflags(write=False)

#: In-degree of the Poisson background per population at full scale.
K_EXT: dict[str, int] = dict(zip(POPULATIONS, (1600, 1500, 2100, 1900, 2000, 1900, 2900, 2100)))

#: Full-scale mean rates (spikes/s) of the PyNEST reference implementation
#: (``full_mean_rates`` in NEST 3's ``Potjans_2014/network_params.py``: 12 MPI
#: processes, N and K scaling 1, Poisson background, fixed total number of synapses).
PUBLISHED_RATES: dict[str, float] = dict(
    zip(POPULATIONS, (0.943, 3.026, 4.368, 5.882, 7.733, 8.664, 1.096, 7.851))
)

# Neuron and synapse parameters (paper, Table 5; NEST ``net_dict['neuron_params']``).
TAU_M = 10.0  # ms
C_M = 250.0  # pF
TAU_SYN = 0.5  # ms
T_REF = 2.0  # ms
E_L = -65.0  # mV
V_RESET = -65.0  # mV
V_TH = -50.0  # mV
PSP_EXC = 0.15  # mV, mean amplitude of an excitatory PSP
WEIGHT_REL_STD = 0.1
G = -4.0
DELAY_EXC = 1.5  # ms
DELAY_INH = 0.75  # ms
DELAY_REL_STD = 0.5  # relative spread of the normally distributed delays
BG_RATE = 8.0  # spikes/s per background input
# 'optimized' initial membrane potentials of the NEST implementation (mean, std in mV).
V0_MEAN = dict(zip(POPULATIONS, (-68.28, -63.16, -63.33, -63.45, -63.11, -61.66, -66.72, -61.43)))
V0_STD = dict(zip(POPULATIONS, (5.36, 4.57, 4.74, 4.94, 4.94, 4.55, 5.46, 4.48)))


def psp_to_psc(
    psp: float, *, tau_m: float = TAU_M, tau_syn: float = TAU_SYN, c_m: float = C_M
) -> float:
    """Return the exponential PSC amplitude (pA) whose PSP peaks at ``psp`` (mV).

    Examples
    --------
    >>> round(psp_to_psc(0.15), 2)
    87.81
    """
    t_peak = math.log(tau_m / tau_syn) * tau_m * tau_syn / (tau_m - tau_syn)
    per_pa = (
        tau_m * tau_syn / (tau_m - tau_syn) / c_m
        * (math.exp(-t_peak / tau_m) - math.exp(-t_peak / tau_syn))
    )
    return psp / per_pa


def _pair_probability(p: float, n_pre: int, n_post: int, connectivity: str) -> float:
    """Per-pair connection probability used by the JIT connectivity."""
    if connectivity == "table":
        return p
    # 'matched': the reference draws ln(1-p)/ln(1-1/(n_pre n_post)) synapses with
    # multapses (so that a pair is connected at least once with probability p);
    # this is the mean number of synapses per pair of that rule.
    prod = float(n_pre) * float(n_post)
    return math.log1p(-p) / math.log1p(-1.0 / prod) / prod


class _PoissonCounts(bp.DynamicalSystem):
    """Independent Poisson spike counts per neuron and time step.

    Counts are drawn by inverse transform sampling from one uniform number per
    neuron and step against the tabulated Poisson CDF (truncated where the tail
    is below 1e-12), which is exact for the small means used here (~1-2.5 per
    step) and much cheaper on CPU than rejection sampling.
    """

    def __init__(self, size: int, rate_hz: float, seed: int, name: str | None = None):
        super().__init__(name=name)
        self.size = size
        lam = rate_hz * 1e-3 * bm.get_dt()
        k = np.arange(0, 64)
        logpmf = -lam + k * math.log(lam) - np.array([math.lgamma(i + 1) for i in k])
        cdf = np.cumsum(np.exp(logpmf))
        cdf = cdf[: int(np.searchsorted(cdf, 1.0 - 1e-12)) + 1]
        self.lam = lam
        self.cdf = bm.asarray(cdf.astype(np.float32))
        self.rng = bm.random.RandomState(seed)

    def update(self):
        u = self.rng.uniform(0.0, 1.0, self.size)
        return jnp.searchsorted(bm.as_jax(self.cdf), bm.as_jax(u)).astype(bm.float_)


_MODEL_IDS = itertools.count()


class Microcircuit(bp.DynSysGroup):
    """The Potjans & Diesmann (2014) microcircuit. Build it with :func:`microcircuit`.

    Attributes
    ----------
    populations : dict of str to brainpy.dyn.LifRef
        The eight neuron groups, keyed by :data:`POPULATIONS`.
    delays : dict of str to brainpy.VarDelay
        One spike delay per population, long enough for its longest delay.
    projections : dict of str to Projection
        ``'PRE->POST'`` for recurrent projections, ``'bg->POST'`` for the Poisson drive.
    sizes, dc : dict of str
        Neurons per population; constant input current per population (pA).
    params : dict
        The derived parameters, ``[post, pre]`` matrices in :data:`POPULATIONS`
        order: ``weights`` (the reference's mean weight, pA, scaled and charge
        corrected), ``prob`` (synapses per pair), ``realised_prob`` (what the
        JIT kernel connects), ``weight_factor`` and ``weight_rel_std`` (what the
        kernel's weights are multiplied by, and their relative spread),
        ``indegree``; and ``w_ext``, ``k_ext``, ``delay_steps`` (per population:
        an int, or one int per neuron), ``dt``.
    """

    def __init__(
        self,
        scale: float,
        background: str,
        merged: bool,
        connectivity: str,
        seed: int,
        dyn: Any,
        delays: str = "normal",
        jit_correction: bool = True,
        size_multiple: int = 1,
    ):
        super().__init__()
        dt = bm.get_dt()
        # readable, unique node names (brainpy requires unique names): mc0_L23E, mc0_L4E_to_L23E
        tag = f"mc{next(_MODEL_IDS)}"
        self.scale = scale
        self.background = background
        self.merged = merged
        self.connectivity = connectivity
        self.delay_kind = delays
        self.jit_correction = jit_correction
        m = size_multiple
        sizes = {p: m * max(1, int(round(FULL_SIZES[p] * scale / m))) for p in POPULATIONS}
        self.sizes = sizes
        rng = np.random.default_rng(seed)
        seeds = iter(rng.integers(0, 2**31 - 1, size=256).tolist())

        # weights (pA), scaled as in the reference: w / sqrt(K_scaling).
        # The membrane sees the synaptic current once per step, as a sum of
        # samples w*a^k (a = exp(-dt/tau_syn)), not the exact integral tau_syn*w.
        # A merged (HalfProjAlignPostMg) synapse decays a jump before the membrane
        # first sees it (charge dt*w*a/(1-a): -9.7 % at dt = 0.1 ms); an unmerged
        # one (HalfProjAlignPost) adds it after the decay (dt*w/(1-a): +10.3 %).
        # Weights are multiplied by `charge_correction` so that both deliver the
        # exact charge; then both variants see the same current sequence.
        a = math.exp(-dt / TAU_SYN)
        charge_correction = TAU_SYN * (1.0 - a) / dt / (a if merged else 1.0)
        self.charge_correction = charge_correction
        w_exc = psp_to_psc(PSP_EXC) * charge_correction
        w = np.where(np.arange(8) % 2 == 0, w_exc, G * w_exc)[None, :].repeat(8, 0)
        w[0, 2] *= 2.0  # L4E -> L23E doubled
        w_scaled = w / math.sqrt(scale)
        w_ext = w_exc / math.sqrt(scale)

        # per-pair probabilities and expected in-degrees at full scale
        full_n = np.array([FULL_SIZES[p] for p in POPULATIONS])
        prob = np.zeros((8, 8))
        for i in range(8):
            for j in range(8):
                if CONN_PROBS[i, j] > 0:
                    prob[i, j] = _pair_probability(CONN_PROBS[i, j], full_n[j], full_n[i], connectivity)
        indegree_full = prob * full_n[None, :]
        k_ext = {p: int(round(K_EXT[p] * scale)) for p in POPULATIONS}

        # constant input (pA): background mean if 'dc'; plus the reference's
        # compensation (1 - sqrt(K_scaling)) * mean input for down-scaled in-degrees
        rates = np.array([PUBLISHED_RATES[p] for p in POPULATIONS])
        rec_mean = (w / charge_correction * indegree_full * rates[None, :]).sum(1) * TAU_SYN * 1e-3
        ext_mean = (np.array([K_EXT[p] for p in POPULATIONS]) * BG_RATE * psp_to_psc(PSP_EXC)
                    * TAU_SYN * 1e-3)
        dc = (1.0 - math.sqrt(scale)) * rec_mean
        if background == "dc":
            dc = dc + ext_mean
        else:
            dc = dc + (1.0 - math.sqrt(scale)) * ext_mean
        self.dc = {p: float(dc[i]) for i, p in enumerate(POPULATIONS)}

        delay_ms = {p: (DELAY_EXC if p.endswith("E") else DELAY_INH) for p in POPULATIONS}
        if delays == "fixed":
            delay_steps = {p: int(math.floor(delay_ms[p] / dt + 0.5 + 1e-9)) for p in POPULATIONS}
        else:
            # one axonal delay per presynaptic neuron, normal with 50 % relative
            # spread, redrawn below dt/2 as in the reference, rounded to steps
            delay_steps = {}
            for p in POPULATIONS:
                d = rng.normal(delay_ms[p], DELAY_REL_STD * delay_ms[p], size=sizes[p])
                while (low := d < 0.5 * dt).any():
                    d[low] = rng.normal(delay_ms[p], DELAY_REL_STD * delay_ms[p], size=int(low.sum()))
                delay_steps[p] = np.maximum(1, np.floor(d / dt + 0.5)).astype(np.int32)

        self.params = dict(
            weights=w_scaled, w_ext=w_ext, prob=prob, indegree=prob * np.array(
                [sizes[p] for p in POPULATIONS])[None, :], k_ext=k_ext,
            delay_steps=delay_steps, dt=dt,
        )

        # neurons
        pops = {}
        for p in POPULATIONS:
            v0 = rng.normal(V0_MEAN[p], V0_STD[p], size=sizes[p]).astype(np.float32)
            pops[p] = bp.dyn.LifRef(
                sizes[p], V_rest=E_L, V_reset=V_RESET, V_th=V_TH, R=TAU_M / C_M,
                tau=TAU_M, tau_ref=T_REF, V_initializer=bm.asarray(v0), name=f"{tag}_{p}",
            )
        self.populations = bm.NodeDict(pops)
        # Timing as in NEST: a spike found at the end of step m (time (m+1)*dt)
        # with a delay of d steps reaches the synapse at the start of step
        # m + 1 + d (time: spike time + delay).  The model reads a VarDelay
        # before writing this step's spikes, and brainpy's ``retrieve(s)`` then
        # returns the spikes written s - 1 steps earlier, so the entry is d + 2.
        entry_steps = {p: np.asarray(delay_steps[p]) + 2 for p in POPULATIONS}
        self.delays = bm.NodeDict({p: bp.VarDelay(pops[p].spike) for p in POPULATIONS})
        for p in POPULATIONS:  # by step: brainpy would ceil() a time, 1.7/0.1 -> 18
            self.delays[p].register_entry("out", delay_step=int(np.max(entry_steps[p])))
        if delays == "normal":
            self._delay_index = {
                p: (jnp.asarray(entry_steps[p], dtype=jnp.int32), jnp.arange(sizes[p]))
                for p in POPULATIONS
            }
        # spike counters for rate estimates
        self.spike_counts = bm.VarDict(
            {p: bm.Variable(bm.zeros(sizes[p], dtype=bm.int32)) for p in POPULATIONS}
        )

        # projections; one synapse descriptor per post population, so that all
        # projections onto it merge into a single Expon state when merged=True
        projs = {}

        def make(comm, pre, post):
            name = f"{tag}_{pre}_to_{post}"
            if merged:
                return dyn.HalfProjAlignPostMg(
                    comm=comm,
                    syn=bp.dyn.Expon.desc(size=sizes[post], tau=TAU_SYN),
                    out=bp.dyn.CUBA.desc(),
                    post=pops[post],
                    name=name,
                )
            return dyn.HalfProjAlignPost(
                comm=comm,
                syn=bp.dyn.Expon(size=sizes[post], tau=TAU_SYN),
                out=bp.dyn.CUBA(),
                post=pops[post],
                name=name,
            )

        # The JIT kernels realise only probabilities c/k (see _compat.jit_realised_prob).
        # With jit_correction, ask for the attainable one nearest p and scale the
        # weight by p / realised, so that the mean input per presynaptic spike is kept.
        realised = np.zeros((8, 8))
        weight_factor = np.ones((8, 8))
        weight_rel_std = np.full((8, 8), WEIGHT_REL_STD)
        for i, post in enumerate(POPULATIONS):
            for j, pre in enumerate(POPULATIONS):
                if prob[i, j] == 0.0:
                    continue
                if jit_correction:
                    kernel_p, realised[i, j] = jit_nearest_prob(float(prob[i, j]))
                    weight_factor[i, j] = prob[i, j] / realised[i, j]
                else:
                    kernel_p, realised[i, j] = float(prob[i, j]), jit_realised_prob(float(prob[i, j]))
                if connectivity == "multapse":
                    # The reference puts Poisson(lam) synapses on a pair, each with
                    # weight N(mu, (0.1 mu)^2): the pair's summed weight has second
                    # moment lam mu^2 (1 + 0.1^2 + lam).  One synapse with probability
                    # q and weight N(mu', sd'^2) matches it (and, with q mu' = lam mu,
                    # the mean) when q (mu'^2 + sd'^2) = lam mu^2 (1 + 0.1^2 + lam).
                    lam, q, f = prob[i, j], realised[i, j], weight_factor[i, j]
                    second = lam * (1.0 + WEIGHT_REL_STD**2 + lam) / q
                    weight_rel_std[i, j] = math.sqrt(max(second / f**2 - 1.0, 0.0))
                w_ij = float(w_scaled[i, j] * weight_factor[i, j])
                comm = bp.dnn.EventJitFPNormalLinear(
                    sizes[pre], sizes[post], prob=kernel_p,
                    w_mu=w_ij, w_sigma=abs(w_ij) * float(weight_rel_std[i, j]), seed=next(seeds),
                )
                projs[f"{pre}->{post}"] = make(comm, pre, post)
        sources = {}
        if background == "poisson":
            for post in POPULATIONS:
                sources[post] = _PoissonCounts(sizes[post], k_ext[post] * BG_RATE, seed=next(seeds))
                projs[f"bg->{post}"] = make(bp.dnn.OneToOne(sizes[post], float(w_ext)), "bg", post)
        self.projections = bm.NodeDict(projs)
        self.params.update(realised_prob=realised, weight_factor=weight_factor,
                           weight_rel_std=weight_rel_std)
        self.sources = bm.NodeDict(sources)
        self._routes = [tuple(k.split("->")) for k in projs]

    def delayed_spikes(self) -> dict[str, Any]:
        """The spikes arriving at the current step (``bp.share`` ``i``), per population.

        Entry ``j`` of population ``p`` is the spike that neuron ``j`` emitted
        ``d = params['delay_steps'][p][j]`` steps before the current step's
        start, found at the end of step ``i - d - 1`` (spike time + delay = now).
        """
        if self.delay_kind == "fixed":
            return {p: self.delays[p].at("out") for p in POPULATIONS}
        # brainpy's bounds check takes one scalar step (it fails on an array when
        # run eagerly); the steps are within the buffer by construction.
        checking = bp.check.is_checking()
        bp.check.turn_off()
        try:
            return {p: self.delays[p].retrieve(*self._delay_index[p]) for p in POPULATIONS}
        finally:
            if checking:
                bp.check.turn_on()

    def update(self):
        spikes = self.delayed_spikes()
        for (pre, post) in self._routes:
            x = self.sources[post]() if pre == "bg" else spikes[pre]
            self.projections[f"{pre}->{post}"](x)
        out = {}
        for p in POPULATIONS:
            spk = self.populations[p](self.dc[p])
            self.delays[p](spk)
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
    size_multiple: int = 1,
) -> Microcircuit:
    """Build the Potjans & Diesmann (2014) cortical microcircuit.

    Eight populations (L2/3, L4, L5, L6; excitatory and inhibitory) of
    current-based LIF neurons (``tau_m`` 10 ms, ``C_m`` 250 pF, ``t_ref`` 2 ms,
    ``V_th`` -50 mV, ``V_reset = E_L`` = -65 mV) coupled by exponential
    current synapses (``tau_syn`` 0.5 ms). Weights are normal with mean
    87.81 pA (a 0.15 mV PSP) and 10 % relative spread, ``g = -4``, and the
    L4E -> L2/3E weight doubled. Each population has one ``bp.VarDelay``.
    Delays are normal with mean 1.5 ms for excitatory and 0.75 ms for
    inhibitory sources and 50 % relative spread, redrawn below ``dt / 2`` and
    rounded to whole steps, as in the reference; but where the reference draws
    one delay per synapse, this model draws one per presynaptic neuron (an
    axonal delay), read from the population's ``VarDelay`` with a gather, so
    that it costs no more kernel calls than fixed delays.  ``delays='fixed'``
    uses the means instead (0.75 ms is 7.5 steps of 0.1 ms and is rounded to 8
    steps, 0.8 ms); at full scale that makes the activity synchronous, with
    L2/3E at 11 spikes/s instead of 0.9.

    Connectivity is just-in-time (``bp.dnn.EventJitFPNormalLinear``): synapses
    and weights are regenerated from a seed on every spike, so memory grows
    with the number of neurons, not synapses.  Each pair is connected at most
    once, with a fixed probability.  The reference instead draws a fixed total
    number of synapses with multapses, which puts a Poisson number of synapses
    with mean ``lam = ln(1-p) / ln(1 - 1/(N_pre N_post)) / (N_pre N_post)``
    (about ``-ln(1 - p)``) on each pair.  ``connectivity='multapse'`` (default)
    connects pairs with probability ``lam`` and widens the weight spread so that
    a pair's summed weight has the reference's mean and second moment; the
    mean, the temporal variance and the neuron-to-neuron variance of the input
    then all match the reference (``params['weight_rel_std']``: 0.33 for
    ``lam`` = 0.1, 0.69 for L5I -> L5E; a few inhibitory weights change sign).
    ``'matched'`` connects with probability ``lam`` and keeps the 10 % spread,
    so in-degrees match but input variances are lower; ``'table'`` uses the
    table's ``p`` as is, with up to 20 % fewer synapses (L5I -> L5E).  The JIT kernels realise only
    probabilities ``c / k`` (``c`` = 2 on brainpy 2.8, 1 on 2.5; see
    ``jit_realised_prob`` in ``brainpy_halfproj._compat``): asked for 0.466
    (L5I -> L5E, matched) they connect 40 % of pairs on 2.8 and 33 % on 2.5.
    With ``jit_correction=True`` (default) each projection asks for the
    attainable probability nearest its own and multiplies its weights by
    ``p / realised`` (stored in ``params['weight_factor']``), which keeps the
    mean input per presynaptic spike.  The factors lie in 0.93-1.04 on 2.8
    (50 of the 55 within 2 %) and in 0.93-1.14 on 2.5 (41 within 2 %).

    Parameters
    ----------
    scale : float
        Scales the number of neurons and the in-degrees together
        (``N_scaling = K_scaling`` of the reference).  Below 1 the weights are
        multiplied by ``1 / sqrt(scale)`` and a DC current replaces the lost mean
        input, computed from :data:`PUBLISHED_RATES` as in the reference.
        Connection probabilities do not change with scale.
    background : {'poisson', 'dc'}
        ``'poisson'``: independent Poisson input per neuron at 8 Hz times
        :data:`K_EXT` (scaled) inputs of weight 87.81 pA (scaled), fed through
        the same synapse as the recurrent input.  ``'dc'``: its mean as a constant
        current ``K_ext * 8 Hz * w * tau_syn``.
    merged : bool
        ``True``: every projection is a ``HalfProjAlignPostMg``, so all
        projections onto one population share one synapse state.  ``False``:
        ``HalfProjAlignPost``, one synapse state per projection.
    connectivity : {'multapse', 'matched', 'table'}
        See above.
    jit_correction : bool
        Correct for the JIT kernels' attainable probabilities; see above.
    seed : int
        Seeds connectivity, weights, initial potentials and background.
    dyn : module, optional
        Namespace providing ``HalfProjAlignPostMg`` and ``HalfProjAlignPost``;
        defaults to :mod:`brainpy_halfproj.dyn`.
    delays : {'normal', 'fixed'}
        ``'normal'`` (default): one normally distributed delay per presynaptic
        neuron; ``'fixed'``: the mean delays.  See above.
    size_multiple : int
        Round every population size to the nearest multiple of this (at least
        one multiple), e.g. the number of devices for
        :func:`brainpy_halfproj.partition`, which splits each population evenly.

    Returns
    -------
    Microcircuit
        A ``bp.DynSysGroup``; ``model.step_run(i)`` advances one step of
        ``bm.get_dt()`` (the reference uses 0.1 ms).

    Notes
    -----
    Validation (``benchmarks/microcircuit.py``; numbers in the benchmarks
    report): at full scale, with the defaults, every population's rate is
    within about 5 % of the published one on both brainpy lines, merged or
    not.  Each of the three choices above matters there: with fixed delays
    the network synchronises; with ``connectivity='matched'`` rates are off by
    up to 32 %; without the JIT correction as well, L2/3E falls silent on
    brainpy 2.5.  Merged and unmerged variants give the same spikes up to
    floating-point summation order.

    Examples
    --------
    >>> from brainpy_halfproj.models import microcircuit
    >>> net = microcircuit(scale=0.01, seed=1)
    >>> list(net.populations)
    ['L23E', 'L23I', 'L4E', 'L4I', 'L5E', 'L5I', 'L6E', 'L6I']
    >>> len(net.projections)  # 55 non-zero table entries + 8 background drives
    63
    >>> from brainpy_halfproj import merge_report
    >>> len(merge_report(net).groups)  # one synapse state per post population
    8
    >>> microcircuit(scale=0.01, merged=False).charge_correction < 1 < net.charge_correction
    True
    """
    if not isinstance(scale, (int, float)) or isinstance(scale, bool):
        raise TypeError(f"scale must be a number, got {type(scale).__name__}: {scale!r}")
    if not 0.0 < scale <= 1.0:
        raise ValueError(f"scale must be in (0, 1], got {scale!r}")
    if background not in ("poisson", "dc"):
        raise ValueError(f"background must be 'poisson' or 'dc', got {background!r}")
    if connectivity not in ("multapse", "matched", "table"):
        raise ValueError(
            f"connectivity must be 'multapse', 'matched' or 'table', got {connectivity!r}"
        )
    if delays not in ("normal", "fixed"):
        raise ValueError(f"delays must be 'normal' or 'fixed', got {delays!r}")
    if not isinstance(size_multiple, int) or isinstance(size_multiple, bool) or size_multiple < 1:
        raise ValueError(f"size_multiple must be a positive int (e.g. the number of devices), "
                         f"got {size_multiple!r}")
    if dyn is None:
        from .. import dyn  # lazy: keeps ``import brainpy_halfproj.models`` cycle-free
    return Microcircuit(
        float(scale), background, bool(merged), connectivity, int(seed), dyn, delays, bool(jit_correction),
        size_multiple,
    )


def population_rates(model: Microcircuit, duration: float) -> dict[str, float]:
    """Mean firing rate (spikes/s) per population from the model's spike counters.

    ``duration`` (ms) is the time simulated since the counters were last reset
    (:meth:`Microcircuit.reset_spike_counts`).
    """
    if duration <= 0:
        raise ValueError(f"duration must be positive (ms), got {duration!r}")
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
) -> dict[str, np.ndarray] | None:
    """Advance ``model`` by ``duration`` ms in jitted loops of up to 1000 steps.

    ``record=True`` returns the spikes as ``{population: bool array (steps,
    neurons)}`` (for small models); ``record='counts'`` returns the number of
    spikes per population and step, ``{population: int array (steps,)}``, cheap
    at any scale; ``record=False`` returns ``None``.  ``start_step`` sets the
    step index (and so the time) of the first step.
    """
    if record not in (True, False, "counts"):
        raise ValueError(f"record must be True, False or 'counts', got {record!r}")
    dt = bm.get_dt()
    n = int(round(duration / dt))
    idx = np.arange(start_step, start_step + n)
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

    outs = []
    for s in range(0, n, chunk):
        idx = np.arange(start_step + s, start_step + min(n, s + chunk))
        out = runner(len(idx))(idx)
        if record:
            outs.append({p: np.asarray(out[p]) for p in POPULATIONS})
    jax.block_until_ready([v.value for v in model.spike_counts.values()])
    if record:
        return {p: np.concatenate([o[p] for o in outs]) for p in POPULATIONS}
    return None
