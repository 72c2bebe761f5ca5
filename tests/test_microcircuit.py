"""The Potjans & Diesmann microcircuit at small scale: structure, merging, activity.

Compiling the 63 JIT-connectivity kernels dominates the run time of this file
(about half a minute per model on a 2-core machine), so the activity tests
share one run.
"""
import math

import brainpy as bp
import brainpy.math as bm
import numpy as np
import pytest

import brainpy_halfproj as bhp
from brainpy_halfproj._compat import jit_prob_numerator
from brainpy_halfproj._hlo import compiled_text, count_kernel_calls
from brainpy_halfproj.models import (
    CONN_PROBS,
    FULL_SIZES,
    POPULATIONS,
    PUBLISHED_RATES,
    Microcircuit,
    derive,
    microcircuit,
    population_rates,
    potjans2014,
    psp_to_psc,
    simulate,
)
from brainpy_halfproj.models.potjans2014 import jit_nearest_prob, jit_realised_prob

SCALE = 0.02  # structure tests: building is cheap at any scale
RUN_SCALE = 0.1  # activity tests: below ~0.1, L2/3E (the sparsest population) is nearly silent
RUN_MS = 200.0
N_NONZERO = int((CONN_PROBS > 0).sum())


@pytest.fixture(scope="module", autouse=True)
def _dt():
    bm.set_dt(0.1)
    yield


@pytest.fixture(scope="module")
def merged_run():
    net = microcircuit(RUN_SCALE, seed=3)
    spikes = simulate(net, RUN_MS, record=True)
    return net, spikes


def _synapse_states(net):
    return {id(proj.syn) for proj in net.projections.values()}


def test_populations_and_sizes():
    net = microcircuit(SCALE, seed=0)
    assert list(net.populations) == list(POPULATIONS)
    for p in POPULATIONS:
        assert net.populations[p].num == round(FULL_SIZES[p] * SCALE)
    assert sum(FULL_SIZES.values()) == 77169


def test_projection_count_poisson_and_dc():
    assert N_NONZERO == 55
    poisson = microcircuit(SCALE, seed=0)
    dc = microcircuit(SCALE, background="dc", seed=0)
    assert len(poisson.projections) == N_NONZERO + 8
    assert len(dc.projections) == N_NONZERO
    assert not any(k.startswith("bg->") for k in dc.projections)


def test_merged_has_one_synapse_state_per_post_population():
    net = microcircuit(SCALE, seed=0)
    assert len(_synapse_states(net)) == 8
    for post in POPULATIONS:
        into = [p for k, p in net.projections.items() if k.endswith("->" + post)]
        assert len({id(p.syn) for p in into}) == 1
        assert into[0].syn.g.shape == (net.sizes[post],)


def test_unmerged_has_one_synapse_state_per_projection():
    net = microcircuit(SCALE, merged=False, seed=0)
    assert len(_synapse_states(net)) == len(net.projections) == N_NONZERO + 8


def test_projections_are_the_plugins_by_default():
    merged, unmerged = microcircuit(SCALE, seed=0), microcircuit(SCALE, seed=0, merged=False)
    assert all(type(p) is bhp.HalfProjAlignPostMg for p in merged.projections.values())
    assert all(type(p) is bhp.HalfProjAlignPost for p in unmerged.projections.values())


def test_routes_are_the_projections_in_update_order():
    net = microcircuit(SCALE, seed=0)
    assert [f"{pre}->{post}" for pre, post, _ in net.routes] == list(net.projections)
    assert all(proj is net.projections[f"{pre}->{post}"] for pre, post, proj in net.routes)
    assert [post for pre, post, _ in net.routes if pre == "bg"] == list(POPULATIONS)


def test_merge_report_groups():
    net = microcircuit(SCALE, seed=0)
    groups = bhp.merge_report(net).groups
    assert len(groups) == 8
    sizes = sorted(len(g.projections) for g in groups)
    expected = sorted(int((CONN_PROBS[i] > 0).sum()) + 1 for i in range(8))
    assert sizes == expected


def test_psp_amplitude_matches_published_weight():
    assert math.isclose(psp_to_psc(0.15), 87.81, abs_tol=0.01)
    net = microcircuit(SCALE, seed=0)
    w = net.params.weights * math.sqrt(SCALE) / net.charge_correction
    assert math.isclose(w[0, 0], 87.81, abs_tol=0.01)
    assert math.isclose(w[0, 2], 2 * 87.81, abs_tol=0.02)  # L4E -> L2/3E doubled
    assert math.isclose(w[0, 1], -4 * 87.81, abs_tol=0.04)  # g = -4


@pytest.mark.slow
def test_every_population_fires(merged_run):
    net, spikes = merged_run
    for p in POPULATIONS:
        assert spikes[p].shape == (int(RUN_MS / 0.1), net.sizes[p])
        assert spikes[p].sum() > 0, f"{p} is silent"


@pytest.mark.slow
def test_rates_helper_counts_the_recorded_spikes(merged_run):
    net, spikes = merged_run
    rates = population_rates(net, RUN_MS)
    assert set(rates) == set(PUBLISHED_RATES)
    for p in POPULATIONS:
        expected = spikes[p].sum() / net.sizes[p] / (RUN_MS * 1e-3)
        assert math.isclose(rates[p], expected, rel_tol=1e-6)
        assert 0.0 < rates[p] < 100.0


@pytest.mark.slow
def test_merged_and_unmerged_give_the_same_spikes(merged_run):
    _, merged = merged_run
    net = microcircuit(RUN_SCALE, seed=3, merged=False)
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
        (dict(scale=0.1, connectivity="fixed"), ValueError,
         "connectivity must be 'multapse', 'matched' or 'table', got 'fixed'"),
        (dict(scale=0.1, delays="uniform"), ValueError, "delays must be 'normal' or 'fixed', got 'uniform'"),
        (dict(scale=True), TypeError, "scale must be a number, got bool: True"),
        (dict(scale=3e-4), ValueError, r"scale 0.0003 is too small for background='poisson': every population needs "
                                       r"at least one background input .* so scale must be above 0.000333333 "
                                       r"\(0.5 / 1500\); use a larger scale or background='dc'"),
        (dict(scale=1 / 3000), ValueError, r"scale must be above 0.000333333"),
        (dict(scale=0.1, seed=1.9), TypeError, r"seed must be an int \(0 <= seed\), got float: 1.9"),
        (dict(scale=0.1, seed="3"), TypeError, r"seed must be an int \(0 <= seed\), got str: '3'"),
        (dict(scale=0.1, seed=None), TypeError, r"seed must be an int \(0 <= seed\), got NoneType: None"),
        (dict(scale=0.1, seed=True), TypeError, r"seed must be an int \(0 <= seed\), got bool: True"),
        (dict(scale=0.1, seed=-1), ValueError, r"seed must be an int with 0 <= seed .*, got -1"),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        microcircuit(**kwargs)


@pytest.mark.parametrize("scale, seed", [(np.float32(0.02), np.int64(3)), (0.02, 3)])
def test_any_real_scale_and_integer_seed_type_is_accepted(scale, seed):
    net = microcircuit(scale, seed=seed)
    assert net.params.scale == float(scale) and type(net.params.scale) is float
    assert net.params.seed == 3 and type(net.params.seed) is int
    assert net.sizes == derive(0.02).sizes


def test_the_smallest_scales_build():
    assert potjans2014.min_scale() == 0.5 / 1500
    assert min(microcircuit(3.34e-4).params.k_ext.values()) == 1  # failed in the Poisson sampler before
    assert sum(microcircuit(1e-5, background="dc").sizes.values()) == 8  # one neuron per population


@pytest.mark.parametrize("duration, exc, match", [
    (0.0, ValueError, r"duration must be positive and finite \(ms, .*\), got 0.0"),
    (-1.0, ValueError, r"duration must be positive and finite .*, got -1.0"),
    (float("nan"), ValueError, r"duration must be positive and finite .*, got nan"),
    (float("inf"), ValueError, r"duration must be positive and finite .*, got inf"),
    ("10", TypeError, r"duration must be a number of ms, got str: '10'"),
])
def test_population_rates_rejects_durations_without_a_rate(small_net, duration, exc, match):
    with pytest.raises(exc, match=match):
        population_rates(small_net, duration)


def test_a_model_refuses_to_run_at_another_time_step():
    """Built at 0.1 ms, run at 0.05 ms: its delays and background are per step; rates would be 3-20x off."""
    bm.set_dt(0.1)
    net = microcircuit(SCALE, seed=0)
    bm.set_dt(0.05)
    message = (r"this Microcircuit was built for dt = 0.1 ms, but brainpy's time step is now 0.05 ms \(its delays, "
               r"weights and background rates are per step of 0.1 ms\); call bm.set_dt\(0.1\) before running it, "
               r"or build a new model at dt = 0.05 ms")
    with pytest.raises(ValueError, match=message):
        simulate(net, 1.0)
    with pytest.raises(ValueError, match=message):
        net.step_run(0)
    with pytest.raises(ValueError, match=message):
        bm.for_loop(lambda i: net.step_run(i), np.arange(3))
    bm.set_dt(0.1)
    net.check_dt()  # at the model's own dt it runs (every other test here)


@pytest.fixture(scope="module")
def small_net():
    return microcircuit(SCALE, background="dc", seed=0)


def test_simulate_rejects_unknown_record_mode(small_net):
    with pytest.raises(ValueError, match="record must be True, False or 'counts', got 'raster'"):
        simulate(small_net, 1.0, record="raster")


@pytest.mark.parametrize("duration, exc, match", [
    (0.04, ValueError, r"duration must cover at least one time step: 0.04 ms is 0.4 steps of dt = 0.1 ms, "
                       r"which rounds to 0 \(durations are in ms\)"),
    (0.0, ValueError, r"duration must cover at least one time step: 0.0 ms is 0 steps"),
    (-5.0, ValueError, "duration must be a positive number of ms, got -5.0"),
    (float("inf"), ValueError, "duration must be a positive number of ms, got inf"),
    ("10", TypeError, "duration must be a number of ms, got str: '10'"),
])
def test_simulate_rejects_durations_with_nothing_to_simulate(small_net, duration, exc, match):
    with pytest.raises(exc, match=match):
        simulate(small_net, duration)


@pytest.mark.slow
def test_simulate_shows_progress_when_asked_or_watched(small_net, capsys):
    simulate(small_net, 0.2)  # progress=None: pytest captures stderr, which is no terminal
    assert capsys.readouterr().err == ""
    counts = simulate(small_net, 0.2, record="counts", progress=True)
    err = capsys.readouterr().err
    assert "simulate 0.2 ms" in err and "2/2" in err
    assert counts["L4E"].shape == (2,)
    simulate(small_net, 0.2, progress=False)
    assert capsys.readouterr().err == ""
    with pytest.raises(TypeError, match="progress must be True, False or None .*got str: 'yes'"):
        simulate(small_net, 0.2, progress="yes")


@pytest.mark.parametrize("kind", ["normal", "fixed"])
def test_delay_steps(kind):
    net = microcircuit(SCALE, seed=0, delays=kind)
    steps = net.params.delay_steps
    for p in POPULATIONS:
        mean = 15.0 if p.endswith("E") else 7.5
        if kind == "fixed":
            assert steps[p] == (15 if p.endswith("E") else 8)
            continue
        d = np.asarray(steps[p])
        assert d.shape == (net.sizes[p],) and d.min() >= 1
        # normal with 50 % spread, truncated below dt/2: mean within 5 standard errors
        assert abs(d.mean() - mean) < 5 * 0.5 * mean / math.sqrt(d.size) + 0.5
        assert 0.35 * mean < d.std() < 0.55 * mean
        assert net.delay_buffers[p].max_length >= d.max()


def test_delay_buffers_are_rings_written_in_place():
    """``rotation`` writes one row per step; ``concat`` (brainpy's default in training mode) copies the buffer."""
    net = microcircuit(SCALE, seed=0)
    assert {d.method for d in net.delay_buffers.values()} == {"rotation"}


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["normal", "fixed"])
def test_spikes_arrive_after_their_delay(kind):
    """A spike found at the end of step m arrives at the start of step m + 1 + d (as in NEST)."""
    net = microcircuit(RUN_SCALE, seed=3, delays=kind)
    n = 300

    def step(i):
        bp.share.save(i=i, t=i * 0.1)  # step_run(i) saves the same before update()
        arriving = net.delayed_spikes()  # what update() is about to feed the projections
        return arriving, net.step_run(i)

    arriving, emitted = bm.for_loop(step, np.arange(n))
    compared = 0
    for p in POPULATIONS:
        d = np.broadcast_to(np.asarray(net.params.delay_steps[p]), (net.sizes[p],))
        got, spikes = np.asarray(arriving[p]), np.asarray(emitted[p])
        k = np.arange(n)[:, None] - d[None, :] - 1  # emission step of what arrives at step i
        expected = np.where(k >= 0, spikes[np.clip(k, 0, None), np.arange(net.sizes[p])], False)
        np.testing.assert_array_equal(got, expected, err_msg=p)
        compared += int(expected.sum())
    assert compared > 100  # the comparison saw many spikes


@pytest.mark.slow
@pytest.mark.parametrize("p", [0.466, 0.38, 0.185, 0.1064, 0.02])
def test_jit_kernels_realise_the_documented_probability(p):
    """The rule behind ``jit_correction``, checked against this line's kernel."""
    c = jit_prob_numerator()
    n_pre, n_post = 400, 2000
    comm = bp.dnn.EventJitFPNormalLinear(n_pre, n_post, prob=p, w_mu=1.0, w_sigma=0.0, seed=7)
    f = bm.jit(lambda x: comm(x))
    eye = np.eye(n_pre, dtype=bool)
    realised = np.mean([np.count_nonzero(np.asarray(f(bm.asarray(eye[i])))) for i in range(n_pre)]) / n_post
    expected = jit_realised_prob(p, c)
    assert abs(realised - expected) < 5 * math.sqrt(expected / (n_pre * n_post)) + 1e-3
    kernel_p, attainable = jit_nearest_prob(p, c)
    assert math.isclose(jit_realised_prob(kernel_p, c), attainable)
    assert abs(math.log(attainable / p)) <= abs(math.log(expected / p)) + 1e-12


def test_jit_correction_keeps_the_mean_input():
    net = microcircuit(SCALE, seed=0)
    raw = microcircuit(SCALE, seed=0, jit_correction=False)
    nz = net.params.prob > 0
    mean_in = net.params.realised_prob * net.params.weight_factor
    np.testing.assert_allclose(mean_in[nz], net.params.prob[nz], rtol=1e-12)
    assert (raw.params.weight_factor == 1.0).all()
    assert (raw.params.realised_prob[nz] <= raw.params.prob[nz]).all()


@pytest.mark.parametrize("jit_correction", [True, False])
def test_multapse_connectivity_matches_the_reference_moments(jit_correction):
    """Per pair: mean and second moment of the summed weight of Poisson(lam) synapses."""
    net = microcircuit(SCALE, seed=0, jit_correction=jit_correction)
    prm = net.params
    nz = prm.prob > 0
    lam, q = prm.prob[nz], prm.realised_prob[nz]
    mu = prm.weights[nz]  # the reference's mean weight
    mu_ours = mu * prm.weight_factor[nz]  # the kernels' mean weight
    sd_ours = np.abs(mu_ours) * prm.weight_rel_std[nz]
    if jit_correction:
        np.testing.assert_allclose(q * mu_ours, lam * mu, rtol=1e-12)
    np.testing.assert_allclose(q * (mu_ours**2 + sd_ours**2), lam * mu**2 * (1 + 0.1**2 + lam), rtol=1e-12)
    # and the weights the kernels were built with are these
    proj = net.projections["L5I->L5E"].comm
    i, j = POPULATIONS.index("L5E"), POPULATIONS.index("L5I")
    w_kernel = prm.weights[i, j] * prm.weight_factor[i, j]
    assert math.isclose(float(proj.w_mu), w_kernel, rel_tol=1e-6)
    assert math.isclose(float(proj.w_sigma), abs(w_kernel) * prm.weight_rel_std[i, j], rel_tol=1e-6)


@pytest.mark.parametrize("connectivity", ["matched", "table"])
def test_pairwise_connectivity_keeps_the_published_weight_spread(connectivity):
    net = microcircuit(SCALE, seed=0, connectivity=connectivity)
    assert (net.params.weight_rel_std == 0.1).all()


def test_the_model_wires_the_derived_parameters():
    prm = derive(SCALE, seed=5, jit_numerator=jit_prob_numerator())
    net = Microcircuit(prm)
    assert net.params is prm and net.sizes == prm.sizes and net.dc == prm.dc
    i, j = POPULATIONS.index("L4E"), POPULATIONS.index("L23E")
    comm = net.projections["L23E->L4E"].comm
    assert (float(comm.prob), float(comm.w_mu), int(comm.seed)) == (
        prm.kernel_prob[i, j], prm.kernel_w_mu[i, j], prm.conn_seeds[i, j])
    np.testing.assert_array_equal(np.asarray(net.populations["L4E"].V.value), prm.v0["L4E"])


def test_params_must_be_derived_for_brainpys_time_step():
    with pytest.raises(ValueError, match=r"params were derived for dt = 0.05 ms, but brainpy's time step is "
                                         r"0.1 ms; derive them with dt=bm.get_dt\(\) or call bm.set_dt\(0.05\)"):
        Microcircuit(derive(SCALE, dt=0.05))
    with pytest.raises(TypeError, match="params must be a MicrocircuitParams from potjans2014.derive"):
        Microcircuit({"scale": SCALE})


@pytest.mark.slow
def test_the_model_checkpoints_and_continues_exactly(tmp_path):
    """brainpy's vars() fails on a VarDict held by the root node; the counters are a node of their own.

    The Poisson background has no random state (its draws depend on the step and the neuron), so a
    model restored from a checkpoint continues with exactly the spikes of the uninterrupted run.
    """
    net = microcircuit(SCALE, seed=0)
    assert {f"counters.spikes-{p}" for p in POPULATIONS} <= set(bhp.state_dict(net))
    assert net.spike_counts["L4E"] is net.counters.spikes["L4E"]
    simulate(net, 20.0)
    bhp.save_checkpoint(net, tmp_path / "mc.npz")
    rest = simulate(net, 20.0, record=True, start_step=200)
    fresh = microcircuit(SCALE, seed=0)
    bhp.load_checkpoint(fresh, tmp_path / "mc.npz")
    saved, loaded = bhp.state_dict(net), bhp.state_dict(fresh)
    assert set(saved) == set(loaded) and not [k for k in saved if k.endswith(".rng")]
    again = simulate(fresh, 20.0, record=True, start_step=200)
    assert sum(int(v.sum()) for v in rest.values()) > 0
    for p in POPULATIONS:
        np.testing.assert_array_equal(again[p], rest[p], err_msg=p)


@pytest.mark.slow
def test_background_counts_depend_on_the_step_only():
    net = microcircuit(SCALE, seed=0)
    source = net.sources["L4E"]
    lam = net.params.bg_rates["L4E"] * 1e-3 * 0.1

    def counts(i):
        bp.share.save(i=i, t=i * 0.1)
        return np.asarray(source())

    first = np.stack([counts(i) for i in range(200)])
    np.testing.assert_array_equal(counts(123), first[123])  # no state advanced by drawing
    assert abs(first.mean() - lam) < 5 * math.sqrt(lam / first.size)
    other = microcircuit(SCALE, seed=1).sources["L4E"]
    bp.share.save(i=0, t=0.)
    assert not np.array_equal(np.asarray(other()), first[0])  # the seed keys the draws


@pytest.mark.slow
def test_fused_gives_the_merged_spikes_with_one_call_per_population():
    merged = microcircuit(0.02, seed=3)
    fused = microcircuit(0.02, seed=3, fused=True)
    report = bhp.merge_report(fused)
    assert len(report.fused) == 8
    assert all(len(f.projections) == int((CONN_PROBS[POPULATIONS.index(f.post.name.split("_")[1])] > 0).sum())
               for f in report.fused)
    assert sorted(p.name.split("_", 1)[1] for p, _ in report.not_fused) == sorted(f"bg_to_{p}" for p in POPULATIONS)

    def calls(net):  # kernel calls outside conditional branches, in one compiled step
        return count_kernel_calls(compiled_text(net, lambda: net.step_run(0)))[0]

    assert (calls(merged), calls(fused)) == (N_NONZERO, 8)
    a, b = simulate(merged, 30.0, record=True), simulate(fused, 30.0, record=True)
    assert sum(int(v.sum()) for v in a.values()) > 0
    for p in POPULATIONS:
        np.testing.assert_array_equal(b[p], a[p], err_msg=p)


def test_fused_needs_merged_projections():
    with pytest.raises(ValueError, match="fused=True needs merged projections; derive the parameters with merged=True"):
        microcircuit(SCALE, merged=False, fused=True)
    with pytest.raises(TypeError, match="fused must be True or False, got 'yes'"):
        microcircuit(SCALE, fused="yes")
