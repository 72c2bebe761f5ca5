"""The Potjans & Diesmann microcircuit at small scale: structure, merging, activity.

Compiling the 63 JIT-connectivity kernels dominates the run time of this file
(about half a minute per model on a 2-core machine), so the activity tests
share one run.
"""
import math

import numpy as np
import pytest

import brainpy as bp
import brainpy.math as bm

from brainpy_halfproj.models import (
    CONN_PROBS,
    FULL_SIZES,
    POPULATIONS,
    PUBLISHED_RATES,
    microcircuit,
    population_rates,
    psp_to_psc,
    simulate,
)

SCALE = 0.02  # structure tests: building is cheap at any scale
RUN_SCALE = 0.1  # activity tests: below ~0.1, L2/3E (the sparsest population) is nearly silent
RUN_MS = 200.0
N_NONZERO = int((CONN_PROBS > 0).sum())


def _dyn():
    """Our namespace once the core has landed; upstream's until then."""
    try:
        from brainpy_halfproj import dyn
    except ImportError:
        return bp.dyn
    return dyn


@pytest.fixture(scope="module", autouse=True)
def _dt():
    bm.set_dt(0.1)
    yield


@pytest.fixture(scope="module")
def merged_run():
    net = microcircuit(RUN_SCALE, seed=3, dyn=_dyn())
    spikes = simulate(net, RUN_MS, record=True)
    return net, spikes


def _synapse_states(net):
    return {id(proj.syn) for proj in net.projections.values()}


def test_populations_and_sizes():
    net = microcircuit(SCALE, seed=0, dyn=_dyn())
    assert list(net.populations) == list(POPULATIONS)
    for p in POPULATIONS:
        assert net.populations[p].num == round(FULL_SIZES[p] * SCALE)
    assert sum(FULL_SIZES.values()) == 77169


def test_projection_count_poisson_and_dc():
    assert N_NONZERO == 55
    poisson = microcircuit(SCALE, seed=0, dyn=_dyn())
    dc = microcircuit(SCALE, background="dc", seed=0, dyn=_dyn())
    assert len(poisson.projections) == N_NONZERO + 8
    assert len(dc.projections) == N_NONZERO
    assert not any(k.startswith("bg->") for k in dc.projections)


def test_merged_has_one_synapse_state_per_post_population():
    net = microcircuit(SCALE, seed=0, dyn=_dyn())
    assert len(_synapse_states(net)) == 8
    for post in POPULATIONS:
        into = [p for k, p in net.projections.items() if k.endswith("->" + post)]
        assert len({id(p.syn) for p in into}) == 1
        assert into[0].syn.g.shape == (net.sizes[post],)


def test_unmerged_has_one_synapse_state_per_projection():
    net = microcircuit(SCALE, merged=False, seed=0, dyn=_dyn())
    assert len(_synapse_states(net)) == len(net.projections) == N_NONZERO + 8


def test_merge_report_groups():
    import brainpy_halfproj

    if not hasattr(brainpy_halfproj, "merge_report"):
        pytest.skip("brainpy_halfproj.merge_report is not in this checkout yet")
    net = microcircuit(SCALE, seed=0)
    groups = brainpy_halfproj.merge_report(net).groups
    assert len(groups) == 8
    sizes = sorted(len(g.projections) for g in groups)
    expected = sorted(int((CONN_PROBS[i] > 0).sum()) + 1 for i in range(8))
    assert sizes == expected


def test_psp_amplitude_matches_published_weight():
    assert math.isclose(psp_to_psc(0.15), 87.81, abs_tol=0.01)
    net = microcircuit(SCALE, seed=0, dyn=_dyn())
    w = net.params["weights"] * math.sqrt(SCALE) / net.charge_correction
    assert math.isclose(w[0, 0], 87.81, abs_tol=0.01)
    assert math.isclose(w[0, 2], 2 * 87.81, abs_tol=0.02)  # L4E -> L2/3E doubled
    assert math.isclose(w[0, 1], -4 * 87.81, abs_tol=0.04)  # g = -4


def test_every_population_fires(merged_run):
    net, spikes = merged_run
    for p in POPULATIONS:
        assert spikes[p].shape == (int(RUN_MS / 0.1), net.sizes[p])
        assert spikes[p].sum() > 0, f"{p} is silent"


def test_rates_helper_counts_the_recorded_spikes(merged_run):
    net, spikes = merged_run
    rates = population_rates(net, RUN_MS)
    assert set(rates) == set(PUBLISHED_RATES)
    for p in POPULATIONS:
        expected = spikes[p].sum() / net.sizes[p] / (RUN_MS * 1e-3)
        assert math.isclose(rates[p], expected, rel_tol=1e-6)
        assert 0.0 < rates[p] < 100.0


def test_merged_and_unmerged_give_the_same_spikes(merged_run):
    _, merged = merged_run
    net = microcircuit(RUN_SCALE, seed=3, merged=False, dyn=_dyn())
    unmerged = simulate(net, 50.0, record=True)
    assert sum(int(s.sum()) for s in unmerged.values()) > 0
    for p in POPULATIONS:
        np.testing.assert_array_equal(unmerged[p], merged[p][:500], err_msg=p)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(scale=0.0), ValueError, r"scale must be in \(0, 1\], got 0.0"),
        (dict(scale="big"), TypeError, "scale must be a number, got str"),
        (dict(scale=0.1, background="noise"), ValueError, "background must be 'poisson' or 'dc', got 'noise'"),
        (dict(scale=0.1, connectivity="fixed"), ValueError, "connectivity must be 'matched' or 'table'"),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        microcircuit(**kwargs, dyn=bp.dyn)


def test_population_rates_rejects_non_positive_duration():
    net = microcircuit(SCALE, background="dc", seed=0, dyn=_dyn())
    with pytest.raises(ValueError, match="duration must be positive"):
        population_rates(net, 0.0)


def test_simulate_rejects_unknown_record_mode():
    net = microcircuit(SCALE, background="dc", seed=0, dyn=_dyn())
    with pytest.raises(ValueError, match="record must be True, False or 'counts', got 'raster'"):
        simulate(net, 1.0, record="raster")
