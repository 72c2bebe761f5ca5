"""The microcircuit's physics (``models/potjans2014.py``): fast, no kernels, no brainpy.

The module is loaded from its file, as the NEST worker loads it, so these tests exercise it
without the package (and so without brainpy).
"""
from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

PATH = Path(__file__).resolve().parent.parent / "brainpy_halfproj" / "models" / "potjans2014.py"


def _load():
    spec = importlib.util.spec_from_file_location("potjans2014_under_test", PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


pj = _load()
POPS = pj.POPULATIONS
NZ = pj.CONN_PROBS > 0
scales = st.floats(min_value=1e-3, max_value=1.0, exclude_min=False)
probs = st.floats(min_value=1e-6, max_value=0.5)
numerators = st.sampled_from([1.0, 2.0])
FAST = settings(max_examples=40, deadline=None)


def test_the_module_imports_and_derives_without_brainpy_or_jax():
    code = (f"import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('p', {str(PATH)!r})\n"
            f"m = importlib.util.module_from_spec(spec); sys.modules['p'] = m; spec.loader.exec_module(m)\n"
            f"m.derive(0.05, jit_numerator=2.0)\n"
            f"heavy = ('brainpy', 'jax', 'jaxlib', 'brainpy_halfproj')\n"
            f"print(sorted(n for n in sys.modules if n.split('.')[0] in heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --------------------------------------------------------------------------- tables and PSP -> PSC
def test_tables():
    assert sum(pj.FULL_SIZES.values()) == 77169
    assert int(NZ.sum()) == 55
    assert list(pj.FULL_SIZES) == list(pj.K_EXT) == list(pj.PUBLISHED_RATES) == list(POPS)
    assert not pj.CONN_PROBS.flags.writeable


def _psp_peak(psc, tau_m=pj.TAU_M, tau_syn=pj.TAU_SYN, c_m=pj.C_M):
    """Peak of the PSP of an exponential current ``psc * exp(-t / tau_syn)``, by brute force."""
    t = np.linspace(0.0, 10 * tau_m, 200_001)
    v = psc / c_m * tau_m * tau_syn / (tau_m - tau_syn) * (np.exp(-t / tau_m) - np.exp(-t / tau_syn))
    return v.max()


def test_psp_to_psc_gives_the_published_weight():
    assert math.isclose(pj.psp_to_psc(0.15), 87.81, abs_tol=0.005)
    assert math.isclose(_psp_peak(pj.psp_to_psc(0.15)), 0.15, rel_tol=1e-6)


@FAST
@given(psp=st.floats(0.01, 5.0), tau_syn=st.floats(0.1, 5.0))
def test_psp_to_psc_inverts_the_psp_peak(psp, tau_syn):
    assert math.isclose(_psp_peak(pj.psp_to_psc(psp, tau_syn=tau_syn), tau_syn=tau_syn), psp, rel_tol=1e-5)


# --------------------------------------------------------------------------- JIT probabilities
@given(p=probs, c=numerators)
def test_realised_probability_is_the_largest_attainable_up_to_the_target(p, c):
    q = pj.jit_realised_prob(p, c)
    k = round(c / q)
    assert math.isclose(c / k, q) and k >= c
    assert q <= p * (1 + 1e-12)
    assert k - 1 < c or c / (k - 1) > p * (1 - 1e-12)  # the next attainable one is above the target


@given(p=probs, c=numerators)
def test_nearest_probability_is_the_nearest_attainable_and_the_kernel_realises_it(p, c):
    kernel_prob, realised = pj.jit_nearest_prob(p, c)
    assert pj.jit_realised_prob(kernel_prob, c) == realised
    k = round(c / realised)
    assert math.isclose(c / k, realised)
    # no attainable c / k' is nearer (in ratio): the neighbours of k and every k' within 5 of it
    for k2 in range(max(math.ceil(c), k - 5), k + 6):
        assert abs(math.log(realised / p)) <= abs(math.log(c / k2 / p)) + 1e-12


@pytest.mark.parametrize("p, c, realised", [(0.466, 2.0, 0.4), (0.466, 1.0, 1 / 3), (0.02, 2.0, 0.02),
                                            (0.02, 1.0, 0.02)])
def test_realised_probability_examples(p, c, realised):
    assert math.isclose(pj.jit_realised_prob(p, c), realised)


# --------------------------------------------------------------------------- multapses
@given(lam=probs, c=numerators)
def test_multapse_moments_with_the_jit_correction(lam, c):
    """q mu' = lam mu and q (mu'^2 + sd'^2) = lam mu^2 (1 + 0.1^2 + lam), per pair (mu = 1)."""
    _, q = pj.jit_nearest_prob(lam, c)
    f = lam / q
    rel = pj.multapse_spread(lam, q, f)
    mu2, sd2 = f, abs(f) * rel
    assert math.isclose(q * mu2, lam, rel_tol=1e-12)
    second = q * (mu2**2 + sd2**2)
    target = lam * (1 + 0.1**2 + lam)
    if rel > 0:
        assert math.isclose(second, target, rel_tol=1e-9)
    else:  # even a fixed weight gives more: the smallest second moment possible
        assert q * mu2**2 >= target * (1 - 1e-12)


@given(lam=probs, c=numerators)
def test_multapse_second_moment_without_the_jit_correction(lam, c):
    q = pj.jit_realised_prob(lam, c)
    rel = pj.multapse_spread(lam, q)
    assert math.isclose(q * (1 + rel**2), lam * (1 + 0.01 + lam), rel_tol=1e-9) or rel == 0


def test_multapse_mean_is_about_minus_log_one_minus_p():
    for p in (0.001, 0.1, 0.3726):
        assert math.isclose(pj.multapse_mean(p, 20683, 21915), -math.log1p(-p), rel_tol=1e-6)


@pytest.mark.parametrize("jit_correction", [True, False])
@pytest.mark.parametrize("numerator", [None, 1.0, 2.0])
def test_derived_multapse_weights_match_the_reference_moments(jit_correction, numerator):
    prm = pj.derive(0.05, jit_numerator=numerator, jit_correction=jit_correction)
    lam, q = prm.prob[NZ], prm.realised_prob[NZ]
    mu, mu2, sd2 = prm.weights[NZ], prm.kernel_w_mu[NZ], prm.kernel_w_sigma[NZ]
    if jit_correction or numerator is None:
        np.testing.assert_allclose(q * mu2, lam * mu, rtol=1e-12)
    np.testing.assert_allclose(q * (mu2**2 + sd2**2), lam * mu**2 * (1 + 0.1**2 + lam), rtol=1e-12)
    np.testing.assert_array_equal(sd2, np.abs(mu2) * prm.weight_rel_std[NZ])


@pytest.mark.parametrize("connectivity", ["matched", "table"])
def test_pairwise_connectivity_keeps_the_published_spread(connectivity):
    prm = pj.derive(0.05, connectivity=connectivity, jit_numerator=2.0)
    assert (prm.weight_rel_std == 0.1).all()
    expected = pj.CONN_PROBS if connectivity == "table" else prm.prob
    np.testing.assert_array_equal(prm.prob, expected)
    assert (prm.prob[NZ] > pj.CONN_PROBS[NZ]).all() if connectivity == "matched" else True


def test_jit_correction_needs_a_kernel_rule():
    ideal = pj.derive(0.05, jit_numerator=None)
    np.testing.assert_array_equal(ideal.realised_prob, ideal.prob)
    np.testing.assert_array_equal(ideal.kernel_prob, ideal.prob)
    assert (ideal.weight_factor == 1.0).all()
    raw = pj.derive(0.05, jit_numerator=2.0, jit_correction=False)
    assert (raw.weight_factor == 1.0).all() and (raw.realised_prob[NZ] <= raw.prob[NZ]).all()
    corrected = pj.derive(0.05, jit_numerator=2.0)
    np.testing.assert_allclose(corrected.realised_prob * corrected.weight_factor, corrected.prob, rtol=1e-12)


# --------------------------------------------------------------------------- scaling
@FAST
@given(scale=scales)
def test_weights_scale_with_one_over_sqrt_scale_and_sizes_with_scale(scale):
    full, prm = pj.derive(1.0, delays="fixed"), pj.derive(scale, delays="fixed")
    np.testing.assert_allclose(prm.weights * math.sqrt(scale), full.weights, rtol=1e-12)
    assert math.isclose(prm.w_ext * math.sqrt(scale), full.w_ext, rel_tol=1e-12)
    np.testing.assert_array_equal(prm.prob, full.prob)  # probabilities do not change with scale
    assert prm.sizes == {p: max(1, round(pj.FULL_SIZES[p] * scale)) for p in POPS}
    assert prm.k_ext == {p: round(pj.K_EXT[p] * scale) for p in POPS}
    np.testing.assert_allclose(prm.indegree, prm.prob * np.array([prm.sizes[p] for p in POPS])[None, :])


@FAST
@given(scale=scales, background=st.sampled_from(["poisson", "dc"]))
def test_dc_compensates_the_mean_input_lost_by_scaling(scale, background):
    prm = pj.derive(scale, background=background, delays="fixed")
    rec, ext = prm.recurrent_input, prm.external_input
    k = 1 - math.sqrt(scale)
    expected = k * rec + (ext if background == "dc" else k * ext)
    np.testing.assert_allclose([prm.dc[p] for p in POPS], expected, rtol=1e-12, atol=1e-9)


def test_mean_inputs_follow_the_published_rates():
    prm = pj.derive(1.0, delays="fixed")
    w = prm.weights / prm.charge_correction  # the reference's weights (scale 1)
    n_full = np.array([pj.FULL_SIZES[p] for p in POPS])
    rates = np.array([pj.PUBLISHED_RATES[p] for p in POPS])
    np.testing.assert_allclose(prm.recurrent_input, (w * prm.prob * n_full * rates).sum(1) * 0.5e-3, rtol=1e-12)
    k_ext = np.array([pj.K_EXT[p] for p in POPS])
    np.testing.assert_allclose(prm.external_input, k_ext * 8.0 * pj.psp_to_psc(0.15) * 0.5e-3, rtol=1e-12)
    assert all(v == 0.0 for v in prm.dc.values())  # full scale, Poisson input: nothing to compensate


def test_weights_signs_and_the_doubled_l4e_to_l23e():
    prm = pj.derive(1.0, merged=False, delays="fixed")
    w = prm.weights / prm.charge_correction
    assert math.isclose(w[0, 0], 87.81, abs_tol=0.01)
    assert math.isclose(w[0, 2], 2 * w[0, 0]) and math.isclose(w[3, 1], -4 * w[0, 0])
    assert (w[:, 0::2] > 0).all() and (w[:, 1::2] < 0).all()


@FAST
@given(dt=st.floats(0.01, 1.0), merged=st.booleans())
def test_charge_correction_delivers_the_exact_charge(dt, merged):
    a = math.exp(-dt / pj.TAU_SYN)
    w = pj.charge_correction(dt, merged)
    sampled = dt * w * (a if merged else 1.0) / (1 - a)  # sum of dt * w * a**k, from k = 1 or 0
    assert math.isclose(sampled, pj.TAU_SYN, rel_tol=1e-12)


# --------------------------------------------------------------------------- delays, draws, options
def test_fixed_delays_are_the_rounded_means():
    prm = pj.derive(0.05, delays="fixed")
    assert prm.delay_steps == {p: 15 if p.endswith("E") else 8 for p in POPS}  # 0.75 ms -> 8 steps


def test_normal_delays_per_presynaptic_neuron():
    prm = pj.derive(0.2, seed=4)
    for p in POPS:
        d = prm.delay_steps[p]
        mean = 15.0 if p.endswith("E") else 7.5
        assert d.dtype == np.int32 and d.shape == (prm.sizes[p],) and d.min() >= 1
        assert abs(d.mean() - mean) < 5 * 0.5 * mean / math.sqrt(d.size) + 0.5
        assert not d.flags.writeable


def test_random_draws_follow_the_documented_order():
    """Kernel seeds, then per-neuron delays, then initial potentials, from default_rng(seed)."""
    prm = pj.derive(0.05, seed=11)
    rng = np.random.default_rng(11)
    seeds = rng.integers(0, 2**31 - 1, size=256)
    np.testing.assert_array_equal(prm.conn_seeds[NZ], seeds[:55])  # post by post, pre by pre
    assert list(prm.bg_seeds.values()) == seeds[55:63].tolist()
    assert (prm.conn_seeds[~NZ] == -1).all()
    for p in POPS:
        mean = 1.5 if p.endswith("E") else 0.75
        d = rng.normal(mean, 0.5 * mean, size=prm.sizes[p])
        while (low := d < 0.05).any():
            d[low] = rng.normal(mean, 0.5 * mean, size=int(low.sum()))
        np.testing.assert_array_equal(prm.delay_steps[p], np.maximum(1, np.floor(d / 0.1 + 0.5)))
    for p in POPS:
        v0 = rng.normal(pj.V0_MEAN[p], pj.V0_STD[p], prm.sizes[p]).astype(np.float32)
        np.testing.assert_array_equal(prm.v0[p], v0)


def test_derive_is_pure():
    a, b = pj.derive(0.05, seed=2), pj.derive(0.05, seed=2)
    for p in POPS:
        np.testing.assert_array_equal(a.v0[p], b.v0[p])
        np.testing.assert_array_equal(a.delay_steps[p], b.delay_steps[p])
    np.testing.assert_array_equal(a.conn_seeds, b.conn_seeds)
    assert not np.array_equal(pj.derive(0.05, seed=3).v0["L4E"], a.v0["L4E"])


def test_projections_in_wiring_order():
    routes = pj.derive(0.05).projections()
    assert len(routes) == 55 and routes[0] == ("L23E", "L23E") and routes[-1] == ("L6I", "L6I")
    assert [POPS.index(post) for _, post in routes] == sorted(POPS.index(post) for _, post in routes)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(scale=0.0), ValueError, r"scale must be in \(0, 1\], got 0.0"),
    (dict(scale=1.5), ValueError, r"scale must be in \(0, 1\], got 1.5"),
    (dict(scale="big"), TypeError, "scale must be a number, got str: 'big'"),
    (dict(scale=True), TypeError, "scale must be a number, got bool"),
    (dict(background="noise"), ValueError, "background must be 'poisson' or 'dc', got 'noise'"),
    (dict(connectivity="fixed"), ValueError, "connectivity must be 'multapse', 'matched' or 'table', got 'fixed'"),
    (dict(delays="uniform"), ValueError, "delays must be 'normal' or 'fixed', got 'uniform'"),
    (dict(jit_numerator=0), ValueError, r"jit_numerator must be a positive number or None .*got 0"),
    (dict(dt=-0.1), ValueError, "dt must be a positive time step in ms, got -0.1"),
])
def test_bad_options(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        pj.derive(**{"scale": 0.1, **kwargs})


def test_parameters_are_frozen():
    prm = pj.derive(0.05)
    with pytest.raises(AttributeError):
        prm.scale = 0.5
    with pytest.raises(ValueError, match="read-only"):
        prm.weights[0, 0] = 0.0
