"""The microcircuit built from brainpy.state classes, against the ``bp.dyn`` model.

Both models are wired from the same derived parameters and seeds: the same synapses and
weights (the same JIT kernel), delays, initial potentials and background draws, so their
rasters are identical until a rounding difference tips a spike; the one systematic
difference is in the first step (see ``test_the_first_step``).
"""
import dataclasses
import math

import numpy as np
import pytest

from brainpy_halfproj._compat import BRAINPY_VERSION

needs_state = pytest.mark.skipif(BRAINPY_VERSION < (2, 9), reason="brainpy.state needs brainpy >= 2.9")

RUN_SCALE = 0.1  # below ~0.1, L2/3E (the sparsest population) is nearly silent
SCALE = 0.02


@pytest.fixture(scope="module", autouse=True)
def _dt():
    if BRAINPY_VERSION < (2, 9):
        yield
        return
    import brainpy.math as bm
    import brainstate
    import brainunit as u

    brainstate.environ.set(dt=0.1 * u.ms)
    bm.set_dt(0.1)
    yield


def _models():
    from brainpy_halfproj import models

    return models


def _derive(scale, seed, merged, below_threshold=False):
    from brainpy_halfproj._compat import jit_prob_numerator
    from brainpy_halfproj.models.potjans2014 import V_TH

    prm = _models().derive(scale, seed=seed, merged=merged, jit_numerator=jit_prob_numerator())
    if below_threshold:  # no neuron starts at or above threshold (see test_the_first_step)
        prm = dataclasses.replace(prm, v0={p: np.minimum(v, V_TH - 0.5).astype(np.float32) for p, v in prm.v0.items()})
    return prm


@pytest.fixture(scope="module")
def default_runs():
    """Both models as their builders make them, 200 ms at scale 0.1."""
    m = _models()
    state, dyn = m.state_microcircuit(RUN_SCALE, seed=3), m.microcircuit(RUN_SCALE, seed=3)
    return state, m.simulate_state(state, 200.0, record=True), dyn, m.simulate(dyn, 200.0, record=True)


@pytest.fixture(scope="module")
def small():
    return _models().state_microcircuit(SCALE, seed=0)


# ----------------------------------------------------------------- structure


@needs_state
def test_populations_projections_and_merging(small):
    m = _models()
    dyn = m.microcircuit(SCALE, seed=0)
    assert list(small.populations) == list(m.POPULATIONS)
    assert {p: pop.varshape[0] for p, pop in small.populations.items()} == small.sizes == dyn.sizes
    assert list(small.projections) == list(dyn.projections)  # the same routes, in the same order
    assert [f"{pre}->{post}" for pre, post, _ in small.routes] == list(small.projections)
    syn = {id(p.syn) for p in small.projections.values()}
    assert len(syn) == 8  # one synapse state per post population
    for post in small.populations:
        assert len({id(p.syn) for k, p in small.projections.items() if k.endswith("->" + post)}) == 1
    ns = m.default_state_namespace()
    assert all(type(p) is ns.AlignPostProj for p in small.projections.values())


@needs_state
def test_the_namespace_provides_the_projection_class():
    import brainpy.state

    net = _models().state_microcircuit(SCALE, seed=0, state=brainpy.state)
    assert net.state is brainpy.state
    assert all(type(p) is brainpy.state.AlignPostProj for p in net.projections.values())


@pytest.mark.slow
@needs_state
def test_the_synapses_are_the_bp_dyn_models(small):
    """Each comm realises the bp.dyn layer's synapses and weights: the same outputs, bit for bit.

    (Against the unmerged bp.dyn model, whose weights carry the same charge correction.)
    """
    import brainevent
    import brainunit as u

    dyn = _models().microcircuit(SCALE, seed=0, merged=False)
    rng = np.random.default_rng(0)
    for key in ("L23E->L23E", "L4E->L23E", "L23I->L4E", "L5I->L5E", "L6E->L6I"):
        pre = key.split("->")[0]
        spikes = rng.random(small.sizes[pre]) < 0.2
        ours = small.projections[key].comm(brainevent.BinaryArray(spikes))
        assert u.get_unit(ours) == u.pA
        theirs = np.asarray(dyn.projections[key].comm(spikes))
        assert np.count_nonzero(theirs) > 0
        np.testing.assert_array_equal(np.asarray(u.get_mantissa(ours)), theirs, err_msg=key)


@needs_state
def test_the_background_draws_are_the_bp_dyn_models(small):
    import brainpy as bp
    import brainstate

    dyn = _models().microcircuit(SCALE, seed=0)
    for i in (0, 1, 517):
        with brainstate.environ.context(i=i):
            ours = np.asarray(small.sources["L4E"]())
        bp.share.save(i=i, t=i * 0.1)
        np.testing.assert_array_equal(ours, np.asarray(dyn.sources["L4E"]()))


@needs_state
def test_the_model_wires_the_derived_parameters():
    import brainunit as u

    m = _models()
    prm = _derive(SCALE, seed=5, merged=False)
    net = m.StateMicrocircuit(prm)
    assert net.params is prm and net.sizes == prm.sizes and net.dc == prm.dc
    np.testing.assert_array_equal(np.asarray(u.get_mantissa(net.populations["L4E"].V.value)), prm.v0["L4E"])
    for p in m.POPULATIONS:
        assert net.delays[p].max_length == int(np.max(prm.delay_steps[p])) + 1
    assert math.isclose(net.charge_correction, 0.9063, abs_tol=1e-4)  # brainpy.state: input after the decay


@pytest.mark.slow
@needs_state
@pytest.mark.parametrize("kind", ["normal", "fixed"])
def test_spikes_arrive_after_their_delay(kind):
    """A spike found at the end of step m arrives at the start of step m + 1 + d (as in NEST)."""
    import brainstate
    import brainunit as u

    m = _models()
    net = m.state_microcircuit(0.05, seed=3, delays=kind)
    n = 400

    def step(i):
        with brainstate.environ.context(i=i, t=i * 0.1 * u.ms):
            arriving = net.delayed_spikes()  # what update() is about to feed the projections
            return arriving, net.update()

    arriving, emitted = brainstate.transform.jit(lambda idx: brainstate.transform.for_loop(step, idx))(np.arange(n))
    compared = 0
    for p in m.POPULATIONS:
        d = np.broadcast_to(np.asarray(net.params.delay_steps[p]), (net.sizes[p],))
        got, spikes = np.asarray(arriving[p]), np.asarray(emitted[p])
        k = np.arange(n)[:, None] - d[None, :] - 1  # emission step of what arrives at step i
        expected = np.where(k >= 0, spikes[np.clip(k, 0, None), np.arange(net.sizes[p])], False)
        np.testing.assert_array_equal(got, expected, err_msg=p)
        compared += int(expected.sum())
    assert compared > 100  # the comparison saw many spikes


# ----------------------------------------------------------------- activity against the bp.dyn model


@pytest.mark.slow
@needs_state
def test_rasters_are_identical_to_the_bp_dyn_models_until_rounding():
    """From potentials below threshold, both models give the same spikes for 30 ms at scale 0.1.

    brainpy.state's synapses add their input after the decay (bp.dyn's unmerged order), so
    its parameters are derived with merged=False; bp.dyn's merged model gets merged=True.
    The arithmetic differs (units, brainstate's exponential Euler), so a rounding difference
    tips a spike sooner or later: at this seed the first one falls at 34.6 ms.
    """
    m = _models()
    ours = m.simulate_state(m.StateMicrocircuit(_derive(RUN_SCALE, 3, merged=False, below_threshold=True)), 30.0,
                            record=True)
    theirs = m.simulate(m.Microcircuit(_derive(RUN_SCALE, 3, merged=True, below_threshold=True)), 30.0, record=True)
    assert sum(int(s.sum()) for s in ours.values()) > 400
    for p in m.POPULATIONS:
        np.testing.assert_array_equal(ours[p], theirs[p], err_msg=p)


@pytest.mark.slow
@needs_state
def test_the_first_step(default_runs):
    """A neuron that starts at or above threshold spikes in bp.dyn's first step (as in NEST);
    brainpy.state's LIFRef reads it as last step's spike and resets it without a spike."""
    from brainpy_halfproj.models.potjans2014 import V_TH

    state, ours, _, theirs = default_runs
    above = 0
    for p in _models().POPULATIONS:
        start_above = state.params.v0[p] >= V_TH
        np.testing.assert_array_equal(ours[p][0], theirs[p][0] & ~start_above, err_msg=p)
        above += int(start_above.sum())
    assert above > 0  # the case occurs at this scale and seed


@pytest.mark.slow
@needs_state
def test_rates_agree_with_the_bp_dyn_model(default_runs):
    state, ours, dyn, theirs = default_runs
    m = _models()
    ours_rates, theirs_rates = m.population_rates(state, 200.0), m.population_rates(dyn, 200.0)
    for p in m.POPULATIONS:
        a, b = int(ours[p].sum()), int(theirs[p].sum())
        assert a > 0, f"{p} is silent"
        assert math.isclose(ours_rates[p], a / state.sizes[p] / 0.2, rel_tol=1e-6)
        assert abs(a - b) < 4 * math.sqrt(a + b), (p, a, b)  # two realisations of the same statistics
        assert abs(ours_rates[p] - theirs_rates[p]) < 4 * math.sqrt(a + b) / state.sizes[p] / 0.2 + 1e-9


@pytest.mark.slow
@needs_state
def test_native_kernels_give_the_same_raster():
    import brainpy_halfproj as bhp

    m = _models()
    reference = m.simulate_state(m.state_microcircuit(SCALE, seed=3), 30.0, record=True)
    with bhp.native_kernels():
        native = m.simulate_state(m.state_microcircuit(SCALE, seed=3), 30.0, record=True)
    assert sum(int(s.sum()) for s in reference.values()) > 0
    for p in reference:
        np.testing.assert_array_equal(native[p], reference[p], err_msg=p)
    assert all(r.native for r in bhp.native_kernel_report())


@needs_state
def test_spike_counters_reset(small):
    m = _models()
    m.simulate_state(small, 20.0)
    assert sum(int(np.asarray(s.value).sum()) for s in small.spike_counts.values()) > 0
    small.reset_spike_counts()
    assert all(int(np.asarray(s.value).sum()) == 0 for s in small.spike_counts.values())


# ----------------------------------------------------------------- errors


@needs_state
def test_params_must_suit_brainpy_state_and_brainstates_time_step():
    m = _models()
    with pytest.raises(TypeError, match="params must be a MicrocircuitParams from potjans2014.derive"):
        m.StateMicrocircuit({"scale": SCALE})
    with pytest.raises(ValueError, match=r"params were derived for dt = 0.05 ms, but brainstate's time step is 0.1 ms; "
                                         r"derive them with dt=0.1 or call brainstate.environ.set\(dt=0.05 \* u.ms\)"):
        m.StateMicrocircuit(m.derive(SCALE, dt=0.05, merged=False))
    with pytest.raises(ValueError, match=r"params were derived for bp.dyn's merged synapses \(merged=True: the "
                                         r"input decays once before the membrane sees it\), but brainpy.state's Expon "
                                         r"adds its input after the decay; derive them with merged=False"):
        m.StateMicrocircuit(m.derive(SCALE))


@needs_state
def test_the_namespace_must_provide_the_classes():
    import brainpy.dyn

    with pytest.raises(TypeError, match=r"state must be a namespace like brainpy.state or brainpy_halfproj.state, "
                                        r"but 'brainpy.dyn' lacks AlignPostProj, LIFRef"):
        _models().state_microcircuit(SCALE, state=brainpy.dyn)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(duration=1.0, record="raster"), ValueError, "record must be True, False or 'counts', got 'raster'"),
    (dict(duration=0.04), ValueError, r"duration must cover at least one time step: 0.04 ms is 0.4 steps of "
                                      r"dt = 0.1 ms, which rounds to 0 \(durations are in ms\)"),
    (dict(duration=-5.0), ValueError, "duration must be a positive number of ms, got -5.0"),
    (dict(duration="10"), TypeError, "duration must be a number of ms, got str: '10'"),
])
@needs_state
def test_simulate_state_rejects_bad_arguments(small, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        _models().simulate_state(small, **kwargs)


@pytest.mark.skipif(BRAINPY_VERSION >= (2, 9), reason="brainpy < 2.9 only")
def test_below_brainpy_2_9_the_names_say_what_they_need():
    from brainpy_halfproj import models

    with pytest.raises(ImportError, match=r"brainpy_halfproj.models.state_microcircuit builds the microcircuit from "
                                          r"brainpy.state, which needs brainpy >= 2.9 \(Python >= 3.12\); this is "
                                          r"brainpy 2\.\d"):
        models.state_microcircuit(0.01)
    assert models.microcircuit is not None  # the bp.dyn model is unaffected
