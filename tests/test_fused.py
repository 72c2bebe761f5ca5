"""Fused merge groups: one kernel call per post group, the same synaptic input as unfused."""
import itertools

import brainpy as bp
import brainpy.math as bm
import jax
import numpy as np
import pytest

import brainpy_halfproj as bhp
from brainpy_halfproj._hlo import compiled_text, count_kernel_calls

from ._nets import LIF


def _kernel_calls(net):
    """``(always, in branches)``: kernel calls in one compiled step of ``net``, its state as arguments."""
    return count_kernel_calls(compiled_text(net, lambda: net.step_run(0, 20.)))


class Net(bp.DynSysGroup):
    """E (two pathways sharing one synapse state, one with normal weights) and I onto one group."""

    def __init__(self, fused, after_post=False, ne=320, ni=80):
        super().__init__()
        n = ne + ni
        self.ne, self.after_post = ne, after_post
        self.N = bhp.dyn.LifRef(n, **LIF, V_initializer=bp.init.Normal(-55., 2.))
        self.delay = bp.VarDelay(self.N.spike, entries={'I': None})
        mg = bhp.dyn.HalfProjAlignPostMg
        self.E = mg(bp.dnn.EventJitFPHomoLinear(ne, n, prob=0.1, weight=0.6, seed=1),
                    bp.dyn.Expon.desc(n, tau=5.), bp.dyn.COBA.desc(E=0.), self.N, fused=fused)
        self.E2 = mg(bp.dnn.EventJitFPNormalLinear(ne, n, prob=0.05, w_mu=0.3, w_sigma=0.1, seed=2),
                     bp.dyn.Expon.desc(n, tau=5.), bp.dyn.COBA.desc(E=0.), self.N, fused=fused)
        self.I = mg(bp.dnn.EventCSRLinear(bp.conn.FixedProb(0.1, seed=3)(ni, n), weight=6.7),
                    bp.dyn.Expon.desc(n, tau=10.), bp.dyn.COBA.desc(E=-80.), self.N, fused=fused)

    def project(self, spk):
        self.E(spk[:self.ne])
        self.E2(spk[:self.ne])
        self.I(spk[self.ne:])

    def update(self, inp):
        """Spikes, and the conductances as the neurons saw them in this step."""
        spk = self.delay.at('I')
        if not self.after_post:
            self.project(spk)
        out = self.N(inp)
        seen = self.E.syn.g.value, self.I.syn.g.value
        if self.after_post:  # handed after the post's step: reaches the synapse in the next step
            self.project(spk)
        self.delay(out)
        return (out, *seen)


def _run(net, n_steps):
    return [np.asarray(x) for x in bm.for_loop(lambda i: net.step_run(i, 20.), np.arange(n_steps))]


@pytest.mark.slow
@pytest.mark.parametrize("after_post", [False, True], ids=["handed-before-post", "handed-after-post"])
def test_fused_gives_the_unfused_synaptic_input(after_post):
    def simulate(fused):
        bm.random.seed(0)
        return _run(Net(fused, after_post=after_post), 300)

    (s_ref, ge_ref, gi_ref), (s, ge, gi) = simulate(False), simulate(True)
    assert s_ref.sum() > 100 and ge_ref.max() > 0 and gi_ref.max() > 0
    # step by step, up to the order of float32 summation
    np.testing.assert_allclose(ge, ge_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gi, gi_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(s, s_ref)


@pytest.mark.slow
def test_timing_contract_in_one_step():
    """Handed before the post's step: in the synapse after that step; handed after: only after the next."""
    for after_post in (False, True):
        bm.random.seed(0)
        net = Net(True, after_post=after_post)
        spikes = bm.ones(400, dtype=bool)
        bp.share.save(i=0, t=0.)
        if after_post:
            net.N(0.)
            net.project(spikes)
            assert not np.asarray(net.E.syn.g.value).any()  # not yet
            net.N(0.)
        else:
            net.project(spikes)
            net.N(0.)
        g = np.asarray(net.E.syn.g.value)
        assert g.max() > 0
        expected = np.asarray(net.E.comm(spikes[:320]) + net.E2.comm(spikes[:320])) * np.exp(-0.1 / 5.)
        np.testing.assert_allclose(g, expected, rtol=1e-5)


@pytest.mark.slow
def test_one_kernel_call_per_post_group():
    bm.random.seed(0)
    unfused, fused = Net(False), Net(True)
    assert _kernel_calls(unfused) == (3, 0)
    always, in_branches = _kernel_calls(fused)
    # brainevent 0.3: one value-weighted call takes the counts, no branch; brainevent 0.2: the float kernel for
    # counts above one, in a branch; brainpylib's float kernel is not a custom call
    library = bhp._compat.event_kernel_library()
    weighted = library == "brainevent" and not bp.__version__.startswith("2.8")  # brainpy 2.9 brings brainevent 0.3
    assert always == 1 and in_branches == (1 if library == "brainevent" and not weighted else 0)
    assert weighted == bhp._events._WEIGHTED
    call = fused.E.fused_call
    assert call is fused.E2.fused_call is fused.I.fused_call
    assert call.groups == [fused.E.merge_group, fused.I.merge_group]
    assert call.projections == [fused.E, fused.E2, fused.I]
    assert call.shape == (320 + 320 + 80, 2 * 400)
    assert call.connectivity.nnz == sum(np.count_nonzero(np.asarray(
        jax.vmap(p.comm)(np.eye(p.comm.num_in if hasattr(p.comm, "num_in") else 80, dtype=bool))))
        for p in (fused.E, fused.E2)) + fused.I.comm.indices.size
    assert fused.N.before_updates and next(iter(fused.N.before_updates.values())) is call


@pytest.mark.parametrize("cls_name", ["FullProjAlignPostMg"])
def test_full_projections_fuse_too(cls_name):
    class FullNet(bp.DynSysGroup):
        def __init__(self, fused):
            super().__init__()
            self.E = bhp.dyn.LifRef(320, **LIF, V_initializer=bp.init.Normal(-55., 2.))
            self.I = bhp.dyn.LifRef(80, **LIF, V_initializer=bp.init.Normal(-55., 2.))
            jit = bp.dnn.EventJitFPHomoLinear
            cls = getattr(bhp.dyn, cls_name)
            self.E2E = cls(self.E, 0.1, jit(320, 320, prob=0.1, weight=0.6), bp.dyn.Expon.desc(320, tau=5.),
                           bp.dyn.COBA.desc(E=0.), self.E, fused=fused)
            self.I2E = cls(self.I, 0.1, jit(80, 320, prob=0.1, weight=6.7), bp.dyn.Expon.desc(320, tau=10.),
                           bp.dyn.COBA.desc(E=-80.), self.E, fused=fused)
            self.E2I = cls(self.E, 0.1, jit(320, 80, prob=0.1, weight=0.6), bp.dyn.Expon.desc(80, tau=5.),
                           bp.dyn.COBA.desc(E=0.), self.I, fused=fused)

        def update(self, inp):
            self.E2E()
            self.I2E()
            self.E2I()
            self.E(inp)
            self.I(inp)
            return bm.concatenate([self.E.spike.value, self.I.spike.value])

    def simulate(fused):
        bm.random.seed(1)
        net = FullNet(fused)
        return np.asarray(bm.for_loop(lambda i: net.step_run(i, 20.), np.arange(300))), net

    (ref, _), (got, net) = simulate(False), simulate(True)
    assert ref.sum() > 100
    np.testing.assert_array_equal(got, ref)
    assert net.E2E.fused_call is net.I2E.fused_call is not net.E2I.fused_call


def test_members_that_cannot_fuse_keep_their_call_and_the_report_says_why():
    post = bp.dyn.LifRef(40)
    jit = bhp.HalfProjAlignPostMg(bp.dnn.EventJitFPHomoLinear(30, 40, prob=0.1, weight=0.6),
                                  bp.dyn.Expon.desc(40, tau=5.), bp.dyn.CUBA.desc(), post, fused=True)
    dense = bhp.HalfProjAlignPostMg(bp.dnn.OneToOne(40, 1.), bp.dyn.Expon.desc(40, tau=5.), bp.dyn.CUBA.desc(),
                                    post, fused=True)
    plain = bhp.HalfProjAlignPostMg(bp.dnn.OneToOne(40, 1.), bp.dyn.Expon.desc(40, tau=5.), bp.dyn.CUBA.desc(),
                                    post)
    assert jit.fused_call is not None and jit.unfused_reason is None
    assert dense.fused_call is None and plain.fused_call is None and plain.unfused_reason is None
    assert dense.unfused_reason == ("comm is a OneToOne, not an event layer (bp.dnn.EventCSRLinear, "
                                    "EventJitFPHomoLinear, EventJitFPNormalLinear, EventJitFPUniformLinear)")
    report = bhp.merge_report(post)
    assert [(p, why) for p, why in report.not_fused] == [(dense, dense.unfused_reason)]
    (info,) = report.fused
    assert info.projections == (jit,) and info.synapses == jit.fused_call.connectivity.nnz > 0
    text = str(report)
    assert "1 fused kernel call(s) per step for 1 projection(s)" in text.splitlines()[0]
    assert (f"  fused: 1 kernel call per step for 1 projection(s) into 1 synapse state(s); stacked "
            f"connectivity {info.synapses} synapses") in text
    assert f"  not fused: {dense.name}: comm is a OneToOne, not an event layer" in text
    assert "not fused" in report._repr_html_()
    # the non-fused member still adds its current directly
    np.testing.assert_array_equal(np.asarray(dense(bm.ones(40))), np.ones(40))


def test_batching_mode_is_not_fused():
    post = bp.dyn.LifRef(40, mode=bm.BatchingMode(2))
    proj = bhp.HalfProjAlignPostMg(bp.dnn.EventJitFPHomoLinear(30, 40, prob=0.1, weight=0.6),
                                   bp.dyn.Expon.desc(40, tau=5.), bp.dyn.CUBA.desc(), post,
                                   mode=bm.BatchingMode(2), fused=True)
    assert proj.fused_call is None
    assert proj.unfused_reason == "fused calls run in brainpy's default (non-batching) mode, not in BatchingMode"


def test_fused_must_be_a_bool():
    post = bp.dyn.LifRef(40)
    with pytest.raises(TypeError, match=r"HalfProjAlignPostMg '\w+': `fused` must be True or False, got 1\."):
        bhp.HalfProjAlignPostMg(bp.dnn.EventJitFPHomoLinear(30, 40, prob=0.1, weight=0.6),
                                bp.dyn.Expon.desc(40, tau=5.), bp.dyn.CUBA.desc(), post, fused=1)


def test_wrong_spike_size_is_caught_before_the_buffer():
    bm.random.seed(0)
    net = Net(True)
    with pytest.raises(ValueError, match=r"the spike input has shape \(10,\), but `comm` expects 320"):
        net.E(bm.zeros(10, dtype=bool))


def test_reset_clears_the_spike_buffers():
    bm.random.seed(0)
    net = Net(True)
    net.E(bm.ones(320, dtype=bool))
    assert np.asarray(net.E.fused_call.buffers[0].value).all()
    bp.reset_state(net)
    assert not any(np.asarray(b.value).any() for b in net.E.fused_call.buffers)


@pytest.mark.slow
def test_checkpoint_round_trip_with_fused_groups(tmp_path):
    bm.random.seed(0)
    a = Net(True)
    _run(a, 50)
    a.E(bm.ones(320, dtype=bool))  # a pending hand-off is state too
    bhp.save_checkpoint(a, tmp_path / "fused.npz")
    bm.random.seed(5)
    b = Net(True)
    bhp.load_checkpoint(b, tmp_path / "fused.npz")
    np.testing.assert_array_equal(_run(a, 50)[0], _run(b, 50)[0])


# ----------------------------------------------------------------------------- following the members' layers

N_POST, N_A, N_B = 200, 160, 40


def _layer(kind):
    """A fresh event layer of each kind, ``N_A`` inputs onto ``N_POST`` neurons."""
    if kind == "jit_homo":
        return bp.dnn.EventJitFPHomoLinear(N_A, N_POST, prob=0.1, weight=0.6, seed=1)
    if kind == "jit_normal":
        return bp.dnn.EventJitFPNormalLinear(N_A, N_POST, prob=0.1, w_mu=0.5, w_sigma=0.2, seed=2)
    if kind == "jit_uniform":
        return bp.dnn.EventJitFPUniformLinear(N_A, N_POST, prob=0.1, w_low=0.2, w_high=0.8, seed=3)
    if kind == "csr_scalar":
        return bp.dnn.EventCSRLinear(bp.conn.FixedProb(0.1, seed=4)(N_A, N_POST), weight=0.6)
    if kind == "csr_array":
        return bp.dnn.EventCSRLinear(bp.conn.FixedProb(0.1, seed=5)(N_A, N_POST), weight=bp.init.Uniform(0.2, 0.8))
    assert kind == "csr_array_untransposed"  # stored rows are post neurons: the read-out reorders the weights
    return bp.dnn.EventCSRLinear(bp.conn.FixedProb(0.1, seed=6)(N_POST, N_A), weight=bp.init.Uniform(0.2, 0.8),
                                 transpose=False)


KINDS = ["jit_homo", "jit_normal", "jit_uniform", "csr_scalar", "csr_array", "csr_array_untransposed"]

#: A change of each layer's weights after building: attribute -> new value (or a function of the layer).
WEIGHT_CHANGES = {
    "jit_homo": {"weight": 1.1},
    "jit_normal": {"w_mu": 0.8, "w_sigma": 0.05},
    "jit_uniform": {"w_low": 0.5, "w_high": 1.2},
    "csr_scalar": {"weight": 1.1},
    "csr_array": {"weight": lambda comm: np.asarray(bm.as_jax(comm.weight)) * 1.7},
    "csr_array_untransposed": {"weight": lambda comm: np.asarray(bm.as_jax(comm.weight))[::-1].copy()},
}


class Pair(bp.DynSysGroup):
    """A (the layer kind under test) and B (JIT homo, another synapse state) onto one group, fused or not."""

    def __init__(self, fused, kind, ops="pN", comm=None):
        super().__init__()
        self.ops = ops
        self.N = bhp.dyn.LifRef(N_POST, **LIF, V_initializer=bp.init.Normal(-55., 2.))
        mg = bhp.dyn.HalfProjAlignPostMg
        self.A = mg(comm or _layer(kind), bp.dyn.Expon.desc(N_POST, tau=5.), bp.dyn.COBA.desc(E=0.), self.N,
                    fused=fused)
        self.B = mg(bp.dnn.EventJitFPHomoLinear(N_B, N_POST, prob=0.1, weight=4., seed=7),
                    bp.dyn.Expon.desc(N_POST, tau=10.), bp.dyn.COBA.desc(E=-80.), self.N, fused=fused)

    def update(self, inp):
        """``ops``: ``p`` hands the post group's spikes to both projections, ``N`` updates the group.

        Returns the spikes, and the conductances as the neurons saw them in the step's last
        update (zeros in a step without one: spikes handed after the update reach the
        synapse at the next one, fused or not).
        """
        spk = self.N.spike.value
        seen = bm.zeros(N_POST), bm.zeros(N_POST)
        for op in self.ops:
            if op == "p":
                self.A(spk[:N_A])
                self.B(spk[N_A:])
            else:
                self.N(inp)
                seen = self.A.syn.g.value, self.B.syn.g.value
        return (self.N.spike.value, *seen)


def _steps(net, start, stop):
    return [np.asarray(x) for x in bm.for_loop(lambda i: net.step_run(i, 20.), np.arange(start, stop))]


def _assert_same_run(fused, unfused, what=""):
    (s, ga, gb), (s_ref, ga_ref, gb_ref) = fused, unfused
    assert s_ref.sum() > 50 and ga_ref.max() > 0, what
    np.testing.assert_allclose(ga, ga_ref, rtol=1e-5, atol=1e-6, err_msg=what)
    np.testing.assert_allclose(gb, gb_ref, rtol=1e-5, atol=1e-6, err_msg=what)
    np.testing.assert_array_equal(s, s_ref, err_msg=what)


def _change(comm, changes):
    for name, value in changes.items():
        setattr(comm, name, value(comm) if callable(value) else value)


@pytest.mark.parametrize("kind", [pytest.param(k, marks=() if k == "csr_array" else pytest.mark.slow) for k in KINDS])
def test_weights_changed_after_building_are_followed(kind):
    """Set between runs: each run's program reads the weights as they are when it is traced."""
    runs = {}
    for fused in (False, True):
        bm.random.seed(0)
        net = Pair(fused, kind)
        before = _steps(net, 0, 60)
        _change(net.A.comm, WEIGHT_CHANGES[kind])
        runs[fused] = before, _steps(net, 60, 160)
    for part in (0, 1):
        _assert_same_run(runs[True][part], runs[False][part], f"{kind}, {'after' if part else 'before'} the change")


@pytest.mark.parametrize("kind", ["jit_normal", "jit_uniform"])
def test_new_normal_and_uniform_weights_are_the_kernels_own(kind):
    """Concrete new parameters: the fused call reads the layer again with its own kernel, value for value."""
    from brainpy_halfproj._connectivity import read_connectivity

    bm.random.seed(0)
    net = Pair(True, kind)
    _change(net.A.comm, WEIGHT_CHANGES[kind])
    call = net.A.fused_call
    (start, stop, weights), = call._weights_now()
    np.testing.assert_array_equal(np.asarray(weights), read_connectivity(net.A.comm, N_A, N_POST).data)
    assert (start, stop) == (0, read_connectivity(net.A.comm, N_A, N_POST).nnz)


@pytest.mark.parametrize("kind", ["jit_normal", "jit_uniform"])
def test_normal_and_uniform_weights_in_variables_follow_to_float_rounding(kind):
    """Variables: ``w_mu + w_sigma * z`` (``w_low + (w_high - w_low) * u``) computed in the step."""
    from brainpy_halfproj._connectivity import read_connectivity

    names = ("w_mu", "w_sigma") if kind == "jit_normal" else ("w_low", "w_high")
    bm.random.seed(0)
    net = Pair(True, kind)
    for name in names:
        setattr(net.A.comm, name, bm.Variable(bm.asarray(getattr(net.A.comm, name))))
    step = bm.jit(lambda i: net.step_run(i, 20.))
    step(0)
    for name, value in zip(names, WEIGHT_CHANGES[kind].values(), strict=True):
        getattr(net.A.comm, name).value = bm.asarray(value)  # the compiled step follows the variables
    weights = bm.jit(lambda: net.A.fused_call._weights_now()[0][2])()  # traced: the formula
    exact = read_connectivity(net.A.comm, N_A, N_POST).data
    np.testing.assert_allclose(np.asarray(weights), exact, rtol=0, atol=2 * np.spacing(np.abs(exact).max()))
    step(1)  # and runs


def test_weights_in_trainable_variables_follow_without_a_new_trace():
    runs = {}
    for fused in (False, True):
        bm.random.seed(0)
        w = bm.TrainVar(bm.asarray(0.6))
        net = Pair(fused, "jit_homo")
        net.A.comm.weight = w
        step = bm.jit(lambda i, net=net: net.step_run(i, 20.))
        out = []
        for i in range(120):
            if i == 50:
                w.value = bm.asarray(1.3)
            out.append([np.asarray(x) for x in step(i)])
        runs[fused] = [np.stack(x) for x in zip(*out, strict=True)]
    _assert_same_run(runs[True], runs[False])


@pytest.mark.skipif(bhp._compat.event_kernel_library() != "brainevent",
                    reason="brainpy 2.5: upstream's JIT kernel has no gradient for its weight (AssertionError)")
@pytest.mark.parametrize("kind", ["jit_homo", pytest.param("csr_array", marks=pytest.mark.slow)])
def test_gradient_through_a_fused_model_equals_the_unfused_one(kind):
    grads = []
    for fused in (False, True):
        bm.random.seed(0)
        comm = _layer(kind)
        w = bm.TrainVar(bm.as_jax(comm.weight) if kind == "csr_array" else bm.asarray(0.6))
        comm.weight = w
        net = Pair(fused, kind, comm=comm)

        def loss(net=net):
            out = bm.for_loop(lambda i: net.step_run(i, 20.), np.arange(30))
            return out[1].sum()

        grads.append(np.asarray(bm.grad(loss, grad_vars={"w": w})()["w"]))
    assert np.abs(grads[0]).max() > 0
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-4, atol=1e-4 * np.abs(grads[0]).max())


STRUCTURE_CHANGES = {"jit_homo": ("prob", 0.2, "0.1"), "jit_normal": ("seed", 11, "2"),
                     "csr_scalar": ("indices", None, None)}


@pytest.mark.parametrize("kind", list(STRUCTURE_CHANGES))
def test_a_changed_structure_is_refused_at_the_next_run_and_rebuild_follows_it(kind):
    name, value, old = STRUCTURE_CHANGES[kind]
    runs = {}
    for fused in (False, True):
        bm.random.seed(0)
        net = Pair(fused, kind)
        comm = net.A.comm
        if kind == "csr_scalar":  # the same synapses onto other post neurons
            comm.indices = (bm.as_jax(comm.indices) + 1) % N_POST
        else:
            setattr(comm, name, value)
        if fused:
            what = (fr"`comm\.{name}` changed from {old} to {value}" if old else
                    fr"`comm\.{name}` changed \(now an array of shape \(\d+,\) with other values\)")
            with pytest.raises(ValueError, match=fr"HalfProjAlignPostMg '{net.A.name}': {what} after the fused call "
                                                 fr"onto '{net.N.name}' read its synapses, and the call cannot follow "
                                                 fr"that inside a step; call {net.A.name}\.fused_call\.rebuild\(\) "
                                                 fr"outside jit, which reads every member again"):
                _steps(net, 0, 5)
            net.A.fused_call.rebuild()
        runs[fused] = _steps(net, 0, 100)
    _assert_same_run(runs[True], runs[False], kind)


def test_a_replaced_comm_is_refused():
    bm.random.seed(0)
    net = Pair(True, "jit_homo")
    net.A.comm = bp.dnn.EventJitFPHomoLinear(N_A, N_POST, prob=0.1, weight=0.6, seed=1)
    with pytest.raises(ValueError, match=r"`comm` was replaced by another layer \(EventJitFPHomoLinear '\w+'\) after "
                                         r"the fused call"):
        _steps(net, 0, 2)
    net.A.fused_call.rebuild()
    assert len(_steps(net, 0, 2)[0]) == 2


# ----------------------------------------------------------------------------- every call pattern

#: Per step (cycled): ``p`` hands spikes to every projection, ``N`` updates the post group.
PATTERNS = {
    "once-before-post": ["pN"],
    "twice-before-post": ["ppN"],
    "after-post": ["Np"],
    "before-and-after-post": ["pNp"],
    "every-second-step": ["pN", "N"],
    "post-every-second-step": ["p", "pN"],
    "three-times-then-none": ["pppN", "N", "N"],
}


def _run_pattern(net, steps):
    """Each distinct step compiled once; the state and spikes after every step."""
    compiled = {}
    out = []
    for i, ops in zip(range(steps), itertools.cycle(net.pattern), strict=False):
        if ops not in compiled:
            def step(i, ops=ops):
                bp.share.save(i=i, t=i * bm.get_dt())
                net.ops = ops
                result = net.update(20.)
                net.ops = "pN"
                return result
            compiled[ops] = bm.jit(step)
        out.append([np.asarray(x) for x in compiled[ops](i)])
    return [np.stack(x) for x in zip(*out, strict=True)]


@pytest.mark.parametrize("pattern", list(PATTERNS))
def test_fused_input_equals_unfused_input_for_every_call_pattern(pattern):
    runs = {}
    for fused in (False, True):
        bm.random.seed(0)
        net = Pair(fused, "jit_normal")
        net.pattern = PATTERNS[pattern]
        runs[fused] = _run_pattern(net, 120)
    _assert_same_run(runs[True], runs[False], pattern)


def test_float_input_counts_what_the_layers_count():
    """Numbers, not spikes: an event is what this line's event layers count (positive or nonzero), once per call."""
    class Floats(Pair):
        def update(self, inp):
            spk = self.N.spike.value
            x = bm.where(spk, 1.5, 0.) - 0.5 * (bm.arange(N_POST) % 50 == 3)  # a few negative numbers
            self.A(x[:N_A])
            self.A(x[:N_A] * 2.)
            self.B(x[N_A:])
            self.N(inp)
            return self.N.spike.value, self.A.syn.g.value, self.B.syn.g.value

    runs = {}
    for fused in (False, True):
        bm.random.seed(0)
        runs[fused] = _steps(Floats(fused, "csr_array"), 0, 120)
    _assert_same_run(runs[True], runs[False])


@pytest.mark.slow
def test_x64_keeps_the_models_float_type():
    bm.enable_x64()
    try:
        inputs = {}
        for fused in (False, True):
            bm.random.seed(0)
            net = Pair(fused, "jit_normal")
            assert net.A.syn.g.value.dtype == np.float64
            net.N.spike.value = bm.asarray(np.random.default_rng(1).random(N_POST) < 0.5)
            bp.share.save(i=0, t=0.)
            net.update(20.)
            inputs[fused] = np.asarray(net.A.syn.g.value), np.asarray(net.B.syn.g.value)
        assert net.A.fused_call.connectivity.data.dtype == np.float64
        for got, ref in zip(inputs[True], inputs[False], strict=True):
            assert got.dtype == np.float64 and ref.max() > 0
            np.testing.assert_allclose(got, ref, rtol=1e-12)
    finally:
        bm.disable_x64()


@pytest.mark.parametrize("max_count", [1, 3])
def test_counts_csrmv_adds_each_event_as_the_event_kernel_does(max_count):
    """One call with event counts equals the event kernel called once per event (bit for bit with counts 0 and 1)."""
    from brainpy_halfproj._events import counts_csrmv

    rng = np.random.default_rng(max_count)
    n_pre, n_post = 300, 200
    indptr = np.concatenate([[0], np.cumsum(rng.poisson(10, n_pre))]).astype(np.int32)
    indices = rng.integers(0, n_post, indptr[-1]).astype(np.int32)
    data = rng.normal(size=indptr[-1]).astype(np.float32)
    counts = (rng.integers(1, max_count + 1, n_pre) * (rng.random(n_pre) < 0.3)).astype(np.int32)
    assert counts.max() == max_count
    got = np.asarray(jax.jit(lambda d, c: counts_csrmv(d, indices, indptr, c, (n_pre, n_post)))(data, counts))
    expected = sum(np.asarray(bm.event.csrmv(data, indices, indptr, counts >= k, shape=(n_pre, n_post), transpose=True))
                   for k in range(1, max_count + 1))
    if max_count == 1:
        np.testing.assert_array_equal(got, expected)
    else:  # the same sums, in another order
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
