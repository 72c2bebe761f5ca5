"""The Potjans & Diesmann (2014) cortical microcircuit as data: tables and derived parameters.

This module holds the model's physics and nothing of its wiring: the published tables,
the PSP-to-PSC conversion, the down-scaling rules and one pure function, :func:`derive`,
that turns a scale and a few options into every number the network needs. It imports
only ``math``, ``dataclasses`` and ``numpy``, so that a reference simulator without
brainpy (the NEST worker in ``benchmarks/microcircuit.py``) can load it from its file.
:mod:`brainpy_halfproj.models.microcircuit` wires what :func:`derive` returns.

Sources
-------
* T. C. Potjans and M. Diesmann, "The cell-type specific cortical microcircuit:
  relating structure and activity in a full-scale spiking network model",
  Cerebral Cortex 24(3):785-806, 2014, doi:10.1093/cercor/bhs358;
* the PyNEST reference implementation, NEST 3 ``examples/Potjans_2014``
  (``network_params.py``, ``helpers.py``), and its PyNN port
  (PyNN ``examples/Potjans2014``), which document the parameters, the
  down-scaling rule and the full-scale reference rates used here.

Units: every current is in pA, every potential in mV, every time in ms. BrainPy's LIF
integrates ``tau * dV/dt = -(V - V_rest) + R * I``; with ``R = tau_m / C_m = 10 ms /
250 pF = 0.04 mV/pA`` this is NEST's ``C_m dV/dt = -(C_m/tau_m)(V - E_L) + I``.

What the options do
-------------------
``scale``
    Scales the number of neurons and the in-degrees together (``N_scaling =
    K_scaling`` of the reference). Below 1 the weights are multiplied by
    ``1 / sqrt(scale)`` and a DC current replaces the lost mean input,
    ``(1 - sqrt(scale))`` times the full-scale mean input computed from
    :data:`PUBLISHED_RATES`, as in the reference. Connection probabilities do not
    change with scale.
``background``
    ``'poisson'``: independent Poisson input per neuron, :data:`K_EXT` (scaled)
    inputs at :data:`BG_RATE` each, of the excitatory weight (scaled).
    ``'dc'``: the mean of that input as a constant current,
    ``K_ext * BG_RATE * w * tau_syn``.
``connectivity``
    The reference draws a fixed total number of synapses with multapses, which puts
    a Poisson number of synapses with mean ``lam = ln(1 - p) / ln(1 - 1/(N_pre
    N_post)) / (N_pre N_post)`` (about ``-ln(1 - p)``) on each pair
    (:func:`multapse_mean`). A just-in-time connectivity kernel connects each pair
    at most once. ``'multapse'`` connects pairs with probability ``lam`` and widens
    the weight spread (:func:`multapse_spread`) so that a pair's summed weight has
    the reference's mean and second moment; the mean, the temporal variance and the
    neuron-to-neuron variance of the input then all match. ``'matched'`` connects
    with probability ``lam`` and keeps the published 10 % spread: in-degrees match,
    input variances are lower. ``'table'`` uses the table's ``p`` as the pair
    probability, which gives fewer synapses than the reference.
``delays``
    ``'normal'``: one delay per presynaptic neuron (an axonal delay), normal with
    mean :data:`DELAY_EXC` or :data:`DELAY_INH` and :data:`DELAY_REL_STD` relative
    spread, redrawn below ``dt / 2`` and rounded to whole steps, as the reference
    draws per synapse. ``'fixed'``: the means, rounded to whole steps.
``jit_numerator``, ``jit_correction``
    A JIT connectivity kernel may realise only the probabilities ``c / k`` for whole
    ``k`` (:func:`jit_realised_prob`); ``jit_numerator`` is that ``c`` for the
    kernel library in use (``None``: a kernel that realises any probability).
    With ``jit_correction`` each projection asks for the attainable probability
    nearest its own (:func:`jit_nearest_prob`) and multiplies its weights by
    ``p / realised``, which keeps the mean input per presynaptic spike.
``merged``
    Which align-post variant the weights are for. The membrane sees the exponential
    synaptic current once per step of ``dt``, as the samples ``w * a**k`` (``a =
    exp(-dt / tau_syn)``), not as the exact integral ``tau_syn * w``. A merged
    synapse decays a jump before the membrane first sees it, an unmerged one adds it
    after the decay; :func:`charge_correction` scales the weights so that both
    deliver the exact charge (and then both see the same current sequence). brainpy.state's
    ``Expon`` adds its input after the decay, merged or not: its microcircuit
    (:mod:`brainpy_halfproj.models.microcircuit_state`) takes the weights for ``merged=False``.

Examples
--------
>>> from brainpy_halfproj.models import potjans2014
>>> potjans2014.derive(0.1).sizes == {p: round(0.1 * n) for p, n in potjans2014.FULL_SIZES.items()}
True
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Literal

import numpy as np

__all__ = [
    "POPULATIONS",
    "FULL_SIZES",
    "CONN_PROBS",
    "K_EXT",
    "PUBLISHED_RATES",
    "MicrocircuitParams",
    "charge_correction",
    "derive",
    "jit_nearest_prob",
    "jit_realised_prob",
    "min_scale",
    "multapse_mean",
    "multapse_spread",
    "psp_to_psc",
]

#: Population names, in the order of the paper's tables (E then I per layer).
POPULATIONS: tuple[str, ...] = ("L23E", "L23I", "L4E", "L4I", "L5E", "L5I", "L6E", "L6I")

#: Number of neurons per population at full scale (77,169 in all).
FULL_SIZES: dict[str, int] = dict(
    zip(POPULATIONS, (20683, 5834, 21915, 5479, 4850, 1065, 14395, 2948), strict=True)
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
K_EXT: dict[str, int] = dict(zip(POPULATIONS, (1600, 1500, 2100, 1900, 2000, 1900, 2900, 2100), strict=True))

#: Full-scale mean rates (spikes/s) of the PyNEST reference implementation
#: (``full_mean_rates`` in NEST 3's ``Potjans_2014/network_params.py``: 12 MPI
#: processes, N and K scaling 1, Poisson background, fixed total number of synapses).
PUBLISHED_RATES: dict[str, float] = dict(
    zip(POPULATIONS, (0.943, 3.026, 4.368, 5.882, 7.733, 8.664, 1.096, 7.851), strict=True)
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
WEIGHT_REL_STD = 0.1  # relative spread of the normally distributed weights
G = -4.0  # inhibitory weight relative to the excitatory one
DELAY_EXC = 1.5  # ms, mean delay from excitatory sources
DELAY_INH = 0.75  # ms, mean delay from inhibitory sources
DELAY_REL_STD = 0.5  # relative spread of the normally distributed delays
BG_RATE = 8.0  # spikes/s per background input
#: 'optimized' initial membrane potentials of the NEST implementation (mean, std in mV).
V0_MEAN: dict[str, float] = dict(
    zip(POPULATIONS, (-68.28, -63.16, -63.33, -63.45, -63.11, -61.66, -66.72, -61.43), strict=True)
)
V0_STD: dict[str, float] = dict(zip(POPULATIONS, (5.36, 4.57, 4.74, 4.94, 4.94, 4.55, 5.46, 4.48), strict=True))

_BACKGROUNDS = ("poisson", "dc")
_CONNECTIVITIES = ("multapse", "matched", "table")
_DELAYS = ("normal", "fixed")


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


def multapse_mean(p: float, n_pre: int, n_post: int) -> float:
    """Mean number of synapses per pair when the reference connects with probability ``p``.

    The reference draws ``ln(1 - p) / ln(1 - 1/(n_pre n_post))`` synapses at random
    among the ``n_pre * n_post`` pairs, multapses allowed, so that a pair is
    connected at least once with probability ``p``; per pair that is a Poisson
    number of synapses with this mean, about ``-ln(1 - p)``.

    Examples
    --------
    >>> round(multapse_mean(0.1, 1000, 1000), 4), round(-math.log(1 - 0.1), 4)
    (0.1054, 0.1054)
    """
    prod = float(n_pre) * float(n_post)
    return math.log1p(-p) / math.log1p(-1.0 / prod) / prod


def multapse_spread(lam: float, q: float, factor: float = 1.0, rel_std: float = WEIGHT_REL_STD) -> float:
    """Relative weight spread with which single synapses match the reference's multapses.

    The reference puts Poisson(``lam``) synapses on a pair, each with weight
    ``N(mu, (rel_std mu)^2)``: the pair's summed weight has mean ``lam mu`` and second
    moment ``lam mu^2 (1 + rel_std^2 + lam)``. One synapse with probability ``q`` and
    weight ``N(mu', sd'^2)``, ``mu' = factor * mu``, has mean ``q mu'`` and second
    moment ``q (mu'^2 + sd'^2)``; this returns ``sd' / |mu'|`` for which the second
    moments agree (0 where even ``sd' = 0`` gives too much). The means agree when
    ``q factor = lam`` (the JIT correction).

    Examples
    --------
    >>> round(multapse_spread(0.1, 0.1), 4)
    0.3317
    """
    second = lam * (1.0 + rel_std**2 + lam) / q
    return math.sqrt(max(second / factor**2 - 1.0, 0.0))


def jit_realised_prob(prob: float, numerator: float) -> float:
    """The connection probability a JIT kernel realises when asked for ``prob``.

    The kernels walk each row in skips drawn uniformly, so only probabilities
    ``c / k`` for whole ``k`` come out, ``c / ceil(c / prob)``; ``c`` is
    ``numerator`` (2 for brainevent's kernels, 1 for brainpylib's; see
    ``brainpy_halfproj._compat.jit_prob_numerator``).

    Examples
    --------
    >>> jit_realised_prob(0.466, 2.0), round(jit_realised_prob(0.466, 1.0), 4)
    (0.4, 0.3333)
    """
    return numerator / math.ceil(numerator / prob)


def jit_nearest_prob(prob: float, numerator: float) -> tuple[float, float]:
    """``(kernel_prob, realised)``: what to ask a JIT kernel for so that it realises nearly ``prob``.

    ``realised`` is the attainable ``c / k`` nearest ``prob`` (in ratio), and
    ``kernel_prob`` a value just above it that the kernel maps to the same ``k``.

    Examples
    --------
    >>> kernel_prob, realised = jit_nearest_prob(0.466, 2.0)
    >>> realised, jit_realised_prob(kernel_prob, 2.0)
    (0.5, 0.5)
    """
    c = numerator
    k = c / prob
    candidates = [kk for kk in {math.floor(k), math.ceil(k)} if kk >= c]
    best = min(candidates, key=lambda kk: abs(math.log(c / kk / prob)))
    kernel_prob = c / best * (1.0 + 1e-4)
    if math.ceil(c / kernel_prob) != best:  # k above ~10^4: that margin spans more than one k
        kernel_prob = c / (best - 0.5)
    return kernel_prob, c / best


def charge_correction(dt: float, merged: bool, tau_syn: float = TAU_SYN) -> float:
    """Factor on the weights that makes a sampled exponential current deliver the exact charge.

    The membrane sees the current ``w * a**k`` (``a = exp(-dt / tau_syn)``) once per
    step, so a jump delivers ``dt * w * a / (1 - a)`` when merged (the shared synapse
    decays before the membrane reads it) and ``dt * w / (1 - a)`` when not, instead
    of ``tau_syn * w``; this returns the ratio.

    Examples
    --------
    >>> round(charge_correction(0.1, merged=True), 4), round(charge_correction(0.1, merged=False), 4)
    (1.107, 0.9063)
    """
    a = math.exp(-dt / tau_syn)
    return tau_syn * (1.0 - a) / dt / (a if merged else 1.0)


@dataclasses.dataclass(frozen=True, eq=False)
class MicrocircuitParams:
    """Everything derived for one microcircuit: built by :func:`derive`, wired by ``Microcircuit``.

    Matrices are ``[post, pre]`` in :data:`POPULATIONS` order; per-population values
    are dicts keyed by population. Arrays are read-only.

    Attributes
    ----------
    scale, background, merged, connectivity, delays, jit_numerator, jit_correction, seed, dt
        The options given to :func:`derive`.
    sizes : dict of str to int
        Neurons per population.
    v0 : dict of str to numpy.ndarray
        Initial membrane potential of every neuron (mV, float32).
    dc : dict of str to float
        Constant input current per population (pA).
    recurrent_input, external_input : numpy.ndarray
        The full-scale mean recurrent and background input per population (pA) that
        the DC compensation is computed from.
    prob : numpy.ndarray
        Connection probability per pair of neurons (for ``'multapse'`` and
        ``'matched'``: the reference's mean number of synapses per pair).
    indegree : numpy.ndarray
        Expected number of inputs per post neuron, ``prob * sizes[pre]``.
    kernel_prob, realised_prob : numpy.ndarray
        What to ask the JIT kernel for, and what it then connects.
    charge_correction : float
        See :func:`charge_correction`; included in every weight below.
    weights : numpy.ndarray
        The reference's mean weight (pA), scaled by ``1 / sqrt(scale)``.
    weight_factor, weight_rel_std : numpy.ndarray
        What the kernel's weights are multiplied by (the JIT correction), and their
        relative spread.
    kernel_w_mu, kernel_w_sigma : numpy.ndarray
        Mean and standard deviation of the kernel's weights (pA).
    conn_seeds : numpy.ndarray
        Seed of each projection's kernel (-1 where there is no projection).
    k_ext : dict of str to int
        Background inputs per neuron.
    w_ext : float
        Weight of a background input (pA, scaled).
    bg_rates : dict of str to float
        Total background rate per neuron, ``k_ext * BG_RATE`` (spikes/s).
    bg_seeds : dict of str to int
        Seed of each population's Poisson background.
    delay_ms : dict of str to float
        Mean delay of the spikes of each (presynaptic) population.
    delay_steps : dict of str to int or numpy.ndarray
        The delay in steps of ``dt``: one int per population (``'fixed'``), or one
        per presynaptic neuron (``'normal'``, int32).

    Examples
    --------
    >>> from brainpy_halfproj.models.potjans2014 import derive
    >>> prm = derive(0.1, seed=1)
    >>> prm.scale, prm.sizes['L23E'], prm.weights.shape
    (0.1, 2068, (8, 8))
    """

    scale: float
    background: str
    merged: bool
    connectivity: str
    delays: str
    jit_numerator: float | None
    jit_correction: bool
    seed: int
    dt: float
    sizes: dict[str, int]
    v0: dict[str, np.ndarray]
    dc: dict[str, float]
    recurrent_input: np.ndarray
    external_input: np.ndarray
    prob: np.ndarray
    indegree: np.ndarray
    kernel_prob: np.ndarray
    realised_prob: np.ndarray
    charge_correction: float
    weights: np.ndarray
    weight_factor: np.ndarray
    weight_rel_std: np.ndarray
    kernel_w_mu: np.ndarray
    kernel_w_sigma: np.ndarray
    conn_seeds: np.ndarray
    k_ext: dict[str, int]
    w_ext: float
    bg_rates: dict[str, float]
    bg_seeds: dict[str, int]
    delay_ms: dict[str, float]
    delay_steps: dict[str, int | np.ndarray]

    def projections(self) -> list[tuple[str, str]]:
        """``(pre, post)`` of every recurrent projection, post by post, in :data:`POPULATIONS` order.

        Examples
        --------
        >>> prm = derive(0.01)
        >>> len(prm.projections()), prm.projections()[0]
        (55, ('L23E', 'L23E'))
        """
        return [(pre, post) for i, post in enumerate(POPULATIONS) for j, pre in enumerate(POPULATIONS)
                if self.prob[i, j] > 0.0]


def _is_real(value: object) -> bool:
    """A real number of any type (``int``, ``float``, numpy scalars), but not a ``bool``."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def min_scale(background: str = "poisson") -> float:
    """The ``scale`` below which the model cannot be built (exclusive): ``0`` for ``background='dc'``.

    With the Poisson background every population needs at least one background input,
    ``round(K_EXT[p] * scale) >= 1``, so ``scale`` must exceed ``0.5 / min(K_EXT)``.

    Examples
    --------
    >>> round(min_scale(), 7), min_scale('dc')
    (0.0003333, 0.0)
    """
    return 0.5 / min(K_EXT.values()) if background == "poisson" else 0.0


def _check_options(scale: object, background: object, connectivity: object, delays: object,
                   jit_numerator: object, dt: object, seed: object = 0) -> None:
    if not _is_real(scale):
        raise TypeError(f"scale must be a number, got {type(scale).__name__}: {scale!r}")
    if not 0.0 < scale <= 1.0:  # type: ignore[operator]
        raise ValueError(f"scale must be in (0, 1], got {scale!r}")
    if not isinstance(seed, numbers.Integral) or isinstance(seed, (bool, np.bool_)):
        raise TypeError(f"seed must be an int (0 <= seed), got {type(seed).__name__}: {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be an int with 0 <= seed (numpy.random.default_rng's range), got {seed!r}")
    if background not in _BACKGROUNDS:
        raise ValueError(f"background must be 'poisson' or 'dc', got {background!r}")
    if connectivity not in _CONNECTIVITIES:
        raise ValueError(f"connectivity must be 'multapse', 'matched' or 'table', got {connectivity!r}")
    if delays not in _DELAYS:
        raise ValueError(f"delays must be 'normal' or 'fixed', got {delays!r}")
    if jit_numerator is not None and not (isinstance(jit_numerator, (int, float)) and jit_numerator > 0):
        raise ValueError(f"jit_numerator must be a positive number or None (a kernel that realises any "
                         f"probability), got {jit_numerator!r}")
    if not (_is_real(dt) and math.isfinite(dt) and dt > 0):  # type: ignore[arg-type,operator]
        raise ValueError(f"dt must be a positive time step in ms, got {dt!r}")
    if background == "poisson" and not scale > min_scale():  # type: ignore[operator]
        raise ValueError(f"scale {scale!r} is too small for background='poisson': every population needs at least "
                         f"one background input (K_EXT * scale rounded >= 1), so scale must be above "
                         f"{min_scale():.6g} (0.5 / {min(K_EXT.values())}); use a larger scale or background='dc'")


def _frozen(arr: np.ndarray) -> np.ndarray:
    arr.setflags(write=False)
    return arr


def derive(
    scale: float = 1.0,
    *,
    background: Literal["poisson", "dc"] = "poisson",
    merged: bool = True,
    connectivity: Literal["multapse", "matched", "table"] = "multapse",
    delays: Literal["normal", "fixed"] = "normal",
    jit_numerator: float | None = None,
    jit_correction: bool = True,
    seed: int = 0,
    dt: float = 0.1,
    size_multiple: int = 1,
) -> MicrocircuitParams:
    """Derive every parameter of the microcircuit for a scale and options.

    Pure: the same arguments give the same numbers. The random draws (kernel
    seeds, then per-neuron delays, then initial potentials) come from
    ``numpy.random.default_rng(seed)``, in that order. The options are described in
    the module docstring.

    Parameters
    ----------
    scale : float
        In ``(0, 1]``; 1 is the full model (77,169 neurons). Any real number type (not
        ``bool``); with the Poisson background, above :func:`min_scale` (``3.3e-4``).
    background : {'poisson', 'dc'}
    merged : bool
        Weights for merged (``True``) or unmerged align-post synapses.
    connectivity : {'multapse', 'matched', 'table'}
    delays : {'normal', 'fixed'}
    jit_numerator : float or None
        ``c`` of the probabilities ``c / k`` the JIT kernels realise; ``None`` for
        a kernel (or simulator) that realises any probability.
    jit_correction : bool
        Ask the kernel for the attainable probability nearest the target and scale
        the weights by ``target / realised`` (no effect when ``jit_numerator`` is
        ``None``).
    seed : int
        Non-negative; seeds ``numpy.random.default_rng``.
    dt : float
        Time step (ms).
    size_multiple : int
        Round every population size to the nearest multiple of this (at least one
        multiple), e.g. the number of devices ``brainpy_halfproj.partition`` splits
        each population over.

    Returns
    -------
    MicrocircuitParams

    Raises
    ------
    TypeError
        If ``scale`` is not a real number or ``seed`` not an int (``bool`` is neither).
    ValueError
        If an option is out of range or not one of its choices; ``scale`` at or below
        :func:`min_scale` with the Poisson background.

    Examples
    --------
    >>> prm = derive(0.1, seed=1)
    >>> prm.sizes['L23E'], prm.k_ext['L23E']
    (2068, 160)
    >>> round(float(prm.weights[0, 0]) * 0.1**0.5 / prm.charge_correction, 2)  # the published weight
    87.81
    >>> derive(1.0, background='poisson').dc['L4E']  # no compensation at full scale
    0.0
    >>> derive(0.1, size_multiple=4).sizes['L23E']  # 2068.3 rounded to a multiple of 4
    2068
    """
    _check_options(scale, background, connectivity, delays, jit_numerator, dt, seed)
    if not isinstance(size_multiple, int) or isinstance(size_multiple, bool) or size_multiple < 1:
        raise ValueError(f"size_multiple must be a positive int (e.g. the number of devices), "
                         f"got {size_multiple!r}")
    scale, dt, seed = float(scale), float(dt), int(seed)
    numerator = None if jit_numerator is None else float(jit_numerator)
    m = size_multiple
    sizes = {p: m * max(1, int(round(FULL_SIZES[p] * scale / m))) for p in POPULATIONS}
    rng = np.random.default_rng(seed)
    seeds = iter(rng.integers(0, 2**31 - 1, size=256).tolist())

    # Weights (pA), scaled as in the reference, w / sqrt(K_scaling), and charge corrected.
    cc = charge_correction(dt, merged)
    w_exc = psp_to_psc(PSP_EXC) * cc
    w = np.where(np.arange(8) % 2 == 0, w_exc, G * w_exc)[None, :].repeat(8, 0)
    w[0, 2] *= 2.0  # L4E -> L23E doubled
    weights = w / math.sqrt(scale)
    w_ext = w_exc / math.sqrt(scale)

    # Per-pair probabilities and the expected in-degrees at full scale.
    full_n = np.array([FULL_SIZES[p] for p in POPULATIONS])
    prob = np.zeros((8, 8))
    for i in range(8):
        for j in range(8):
            if CONN_PROBS[i, j] > 0:
                table_p = float(CONN_PROBS[i, j])
                prob[i, j] = table_p if connectivity == "table" else multapse_mean(table_p, full_n[j], full_n[i])
    indegree_full = prob * full_n[None, :]
    k_ext = {p: int(round(K_EXT[p] * scale)) for p in POPULATIONS}

    # Constant input (pA): the reference's compensation (1 - sqrt(K_scaling)) * mean input
    # for the down-scaled in-degrees; all of the background's mean if background='dc'.
    rates = np.array([PUBLISHED_RATES[p] for p in POPULATIONS])
    rec_mean = (w / cc * indegree_full * rates[None, :]).sum(1) * TAU_SYN * 1e-3
    ext_mean = (np.array([K_EXT[p] for p in POPULATIONS]) * BG_RATE * psp_to_psc(PSP_EXC)
                * TAU_SYN * 1e-3)
    dc = (1.0 - math.sqrt(scale)) * rec_mean
    if background == "dc":
        dc = dc + ext_mean
    else:
        dc = dc + (1.0 - math.sqrt(scale)) * ext_mean

    delay_ms = {p: (DELAY_EXC if p.endswith("E") else DELAY_INH) for p in POPULATIONS}
    delay_steps: dict[str, int | np.ndarray] = {}
    for p in POPULATIONS:
        mean, std = delay_ms[p], DELAY_REL_STD * delay_ms[p]
        if delays == "fixed":
            delay_steps[p] = int(math.floor(mean / dt + 0.5 + 1e-9))
            continue
        d = rng.normal(mean, std, size=sizes[p])
        while (low := d < 0.5 * dt).any():
            d[low] = rng.normal(mean, std, size=int(low.sum()))
        delay_steps[p] = _frozen(np.maximum(1, np.floor(d / dt + 0.5)).astype(np.int32))
    v0 = {p: _frozen(rng.normal(V0_MEAN[p], V0_STD[p], size=sizes[p]).astype(np.float32))
          for p in POPULATIONS}

    # What the JIT kernels are asked for and realise, and the weights they get.
    kernel_prob = np.zeros((8, 8))
    realised = np.zeros((8, 8))
    weight_factor = np.ones((8, 8))
    weight_rel_std = np.full((8, 8), WEIGHT_REL_STD)
    conn_seeds = np.full((8, 8), -1, dtype=np.int64)
    for i in range(8):
        for j in range(8):
            if prob[i, j] == 0.0:
                continue
            target = float(prob[i, j])
            if numerator is None:
                kernel_prob[i, j], realised[i, j] = target, target
            elif jit_correction:
                kernel_prob[i, j], realised[i, j] = jit_nearest_prob(target, numerator)
                weight_factor[i, j] = prob[i, j] / realised[i, j]
            else:
                kernel_prob[i, j], realised[i, j] = target, jit_realised_prob(target, numerator)
            if connectivity == "multapse":
                weight_rel_std[i, j] = multapse_spread(prob[i, j], realised[i, j], weight_factor[i, j])
            conn_seeds[i, j] = next(seeds)
    kernel_w_mu = weights * weight_factor
    kernel_w_sigma = np.abs(kernel_w_mu) * weight_rel_std
    bg_seeds = {p: next(seeds) for p in POPULATIONS}

    size_row = np.array([sizes[p] for p in POPULATIONS])[None, :]
    return MicrocircuitParams(
        scale=scale, background=background, merged=bool(merged), connectivity=connectivity,
        delays=delays, jit_numerator=numerator,
        jit_correction=bool(jit_correction), seed=seed, dt=dt,
        sizes=sizes, v0=v0, dc={p: float(dc[i]) for i, p in enumerate(POPULATIONS)},
        recurrent_input=_frozen(rec_mean), external_input=_frozen(ext_mean),
        prob=_frozen(prob), indegree=_frozen(prob * size_row), kernel_prob=_frozen(kernel_prob),
        realised_prob=_frozen(realised), charge_correction=cc, weights=_frozen(weights),
        weight_factor=_frozen(weight_factor), weight_rel_std=_frozen(weight_rel_std),
        kernel_w_mu=_frozen(kernel_w_mu), kernel_w_sigma=_frozen(kernel_w_sigma),
        conn_seeds=_frozen(conn_seeds), k_ext=k_ext, w_ext=w_ext,
        bg_rates={p: k_ext[p] * BG_RATE for p in POPULATIONS}, bg_seeds=bg_seeds,
        delay_ms=delay_ms, delay_steps=delay_steps,
    )
