"""Native kernel handlers on the kernels that brainpy.state networks reach (brainevent 0.3).

brainpy.state models connect through brainstate's layers (``EventFixedProb``, ``SparseLinear``,
``EventLinear``), which call brainevent's matrix classes: ``FixedNumPerPre`` (formerly
``FixedPostNumConn``: the ``ell_binary_matvec`` kernels), ``FixedNumPerPost``, ``CSR``/``CSC``,
``Dense`` and the JIT connectivity classes. On brainevent 0.2.1 and 0.3.0 every numba CPU
kernel of these registers with XLA through ``_register_numba_cpu_ffi_target`` (the guard test
below checks that no other CPU path exists), so ``use_native_kernels()`` covers them without
a handler of its own. Each test runs the same operation through brainevent's Python bridge and
through the native handler, in fresh traces, and asserts bit-identical outputs
(``tests/test_native.py`` does the same for CSR and the JIT classes).
"""
import itertools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainpy_halfproj as bhp
from brainpy_halfproj._compat import BRAINPY_VERSION, event_kernel_library

pytestmark = pytest.mark.skipif(event_kernel_library() != "brainevent",
                                reason="native handlers reroute brainevent's numba kernels (brainpy >= 2.6)")
needs_state = pytest.mark.skipif(BRAINPY_VERSION < (2, 9), reason="brainpy.state needs brainpy >= 2.9")


@pytest.fixture(autouse=True)
def _native_off():
    bhp.use_native_kernels(False)
    yield
    bhp.use_native_kernels(False)


def _targets(fn, *args):
    text = jax.jit(fn).lower(*args).as_text()
    return set(re.findall(r"custom_call @(\w+)", text)) | set(re.findall(r'call_target_name = "(\w+)"', text))


def _bridge_and_native(make, op):
    """``op`` of a fresh ``make()`` through the bridge and natively; the targets of the native trace.

    Fresh objects and functions per trace: JAX caches a trace by function, and brainevent's
    sparse classes cache trace-time workspaces on the object.
    """
    a, b, c = make(), make(), make()
    reference = np.asarray(jax.jit(lambda: op(a))())
    with bhp.native_kernels():
        targets = _targets(lambda: op(b))
        native = np.asarray(jax.jit(lambda: op(c))())
    return reference, native, targets


def _assert_native(targets):
    assert targets and all(t.startswith("brainpy_halfproj_native_") for t in targets), targets


# ----------------------------------------------------------------- no other registration path


def test_every_cpu_event_kernel_is_numba_or_plain_xla():
    """The CPU default of every brainevent primitive is a numba kernel (registered through
    ``_register_numba_cpu_ffi_target``) or plain XLA (no custom call): nothing else to reroute."""
    import brainevent

    defaults = {name: prim.get_default("cpu") for name, prim in brainevent.get_registry().items()}
    assert len(defaults) > 40
    assert set(defaults.values()) <= {"numba", "jax", "jax_raw"}, defaults
    assert "numba" in defaults.values()
    assert brainevent.config.get_backend("cpu") is None  # no global override of the defaults


# ----------------------------------------------------------------- the matrix classes brainstate uses

M, N, K = 60, 50, 6


def _families():
    import brainevent as be

    rng = np.random.default_rng(0)
    pre_idx = jnp.asarray(rng.integers(0, N, (M, K)).astype(np.int32))  # each pre: K targets
    post_idx = jnp.asarray(rng.integers(0, M, (N, K)).astype(np.int32))  # each post: K sources
    w_pre = jnp.asarray(rng.normal(1.0, 0.3, (M, K)).astype(np.float32))
    w_post = jnp.asarray(rng.normal(1.0, 0.3, (N, K)).astype(np.float32))
    dense = ((rng.random((M, N)) < 0.2) * rng.normal(1.0, 0.3, (M, N))).astype(np.float32)
    cols, rows = np.nonzero(dense.T)  # CSC of the (M, N) matrix: column-major nonzeros
    col_ptr = np.concatenate([[0], np.cumsum(np.bincount(cols, minlength=N))]).astype(np.int32)
    return {
        "fixed_num_per_pre_homo": lambda: be.FixedNumPerPre((jnp.float32(0.7), pre_idx), shape=(M, N)),
        "fixed_num_per_pre": lambda: be.FixedNumPerPre((w_pre, pre_idx), shape=(M, N)),
        "fixed_num_per_post": lambda: be.FixedNumPerPost((w_post, post_idx), shape=(M, N)),
        "csc": lambda: be.CSC((jnp.asarray(dense.T[cols, rows]), jnp.asarray(rows.astype(np.int32)),
                               jnp.asarray(col_ptr)), shape=(M, N)),
        "dense": lambda: be.Dense(jnp.asarray(dense)),
    }


def _operations():
    import brainevent as be

    rng = np.random.default_rng(1)  # operands drawn here, once: every trace sees the same ones
    spk_m, spk_n = jnp.asarray(rng.random(M) < 0.3), jnp.asarray(rng.random(N) < 0.3)
    spk_nk, spk_km = jnp.asarray(rng.random((N, 4)) < 0.3), jnp.asarray(rng.random((4, M)) < 0.3)
    x_m, x_n = jnp.asarray(rng.normal(size=M), jnp.float32), jnp.asarray(rng.normal(size=N), jnp.float32)
    x_nk = jnp.asarray(rng.normal(size=(N, 4)), jnp.float32)
    return {
        "binary_mv": lambda A: A @ be.BinaryArray(spk_n),
        "binary_mv_transposed": lambda A: be.BinaryArray(spk_m) @ A,
        "binary_mm": lambda A: A @ be.BinaryArray(spk_nk),
        "binary_mm_transposed": lambda A: be.BinaryArray(spk_km) @ A,
        "float_mv": lambda A: A @ x_n,
        "float_mv_transposed": lambda A: x_m @ A,
        "float_mm": lambda A: A @ x_nk,
    }


FAMILIES = ["fixed_num_per_pre_homo", "fixed_num_per_pre", "fixed_num_per_post", "csc", "dense"]
OPERATIONS = ["binary_mv", "binary_mv_transposed", "binary_mm", "binary_mm_transposed", "float_mv",
              "float_mv_transposed", "float_mm"]


# the quick run (``-m "not slow"``) keeps one family, matrix-vector
QUICK = {("fixed_num_per_pre", "binary_mv")}


@pytest.mark.parametrize("family, operation", [pytest.param(f, o, marks=() if (f, o) in QUICK else pytest.mark.slow)
                                               for o, f in itertools.product(OPERATIONS, FAMILIES)])
def test_every_kernel_family_gives_the_python_bridges_result(family, operation):
    reference, native, targets = _bridge_and_native(_families()[family], _operations()[operation])
    assert np.count_nonzero(reference) > 0
    np.testing.assert_array_equal(native, reference)
    if targets:
        _assert_native(targets)
    else:  # the float products of the fixed-number and dense classes are plain XLA: nothing to reroute
        assert operation.startswith("float") and family != "csc", (family, operation)


@pytest.mark.parametrize("family", ["fixed_num_per_pre", "dense"])
def test_weighted_events(family):
    import brainevent as be

    if not hasattr(be, "WeightedArray"):
        pytest.skip(f"brainevent {be.__version__} has no WeightedArray (0.3 has)")
    x = jnp.asarray(np.where(np.random.default_rng(2).random(N) < 0.3, 1.5, 0.0).astype(np.float32))
    reference, native, targets = _bridge_and_native(_families()[family], lambda A: A @ be.WeightedArray(x))
    assert np.count_nonzero(reference) > 0
    _assert_native(targets)
    np.testing.assert_array_equal(native, reference)


def test_plasticity_kernels_write_their_aliased_output():
    """The STDP-style updates return the weights they were given, updated in place (aliased buffers)."""
    import brainevent as be

    rng = np.random.default_rng(3)
    pre = jnp.asarray(rng.random(M) < 0.3)
    trace = jnp.asarray(rng.random(N).astype(np.float32))
    w = jnp.asarray(rng.normal(size=(M, K)).astype(np.float32))
    idx = jnp.asarray(rng.integers(0, N, (M, K)).astype(np.int32))
    dense = jnp.asarray(rng.normal(size=(M, N)).astype(np.float32))
    for update in (lambda _: be.update_fixed_post_conn_on_binary_pre(w, idx, pre, trace, shape=(M, N)),
                   lambda _: be.update_dense_on_binary_pre(dense, pre, trace)):
        reference, native, targets = _bridge_and_native(lambda: None, update)
        _assert_native(targets)
        np.testing.assert_array_equal(native, reference)
        assert not np.array_equal(reference, np.asarray(w if reference.shape == w.shape else dense))


def test_numba_parallel_kernels():
    import brainevent as be

    spikes = jnp.asarray(np.random.default_rng(4).random(M) < 0.3)
    make = _families()["fixed_num_per_pre"]
    before = be.config.get_numba_parallel()
    be.config.set_numba_parallel(True)
    try:
        reference, native, targets = _bridge_and_native(make, lambda A: be.BinaryArray(spikes) @ A)
    finally:
        be.config.set_numba_parallel(before)
    _assert_native(targets)
    np.testing.assert_array_equal(native, reference)


# ----------------------------------------------------------------- brainstate's layers


def _layers():
    import brainevent as be
    import brainstate

    def fixed_prob(ratio):
        return lambda: brainstate.nn.EventFixedProb(200, 150, conn_num=0.1, conn_weight=0.6, seed=5,
                                                    afferent_ratio=ratio)

    def jit_normal():  # the microcircuit's comm: the bp.dyn layer's connectivity, pre-major
        return brainstate.nn.SparseLinear(be.JITCNormalR((0.5, 0.1, 0.1, 7), shape=(150, 200)).T)

    return {
        "EventFixedProb": (fixed_prob(1.0), False),  # FixedNumPerPre: ell_binary_matvec
        "EventFixedProb_afferent_ratio": (fixed_prob(0.5), False),  # CSR
        "SparseLinear_JITCNormal": (jit_normal, True),
        "EventLinear": (lambda: brainstate.nn.EventLinear(200, 150, weight=np.full((200, 150), 0.1, np.float32)),
                        False),
    }


@needs_state
@pytest.mark.parametrize("layer", ["EventFixedProb", "EventFixedProb_afferent_ratio", "SparseLinear_JITCNormal",
                                   "EventLinear"])
@pytest.mark.parametrize("batch", [None, 3])
def test_brainstate_layers(layer, batch):
    import brainevent as be

    make, wrap = _layers()[layer]
    rng = np.random.default_rng(5)
    spikes = jnp.asarray(rng.random((200,) if batch is None else (batch, 200)) < 0.2)
    reference, native, targets = _bridge_and_native(
        make, lambda comm: comm(be.BinaryArray(spikes) if wrap else spikes))
    assert np.count_nonzero(reference) > 0
    _assert_native(targets)
    np.testing.assert_array_equal(native, reference)


# ----------------------------------------------------------------- a whole brainpy.state network


def _state_einet(n=1000, seed=11):
    """Upstream's COBA E/I example on brainpy.state, with matched units (nS, pA, GOhm)."""
    import brainpy.state as bst
    import brainstate
    import braintools
    import brainunit as u

    brainstate.random.seed(seed)
    ne = int(n * 0.8)

    class EINet(brainstate.nn.Module):
        def __init__(self):
            super().__init__()
            self.N = bst.LIFRef(n, R=1. * u.Gohm, V_rest=-60. * u.mV, V_th=-50. * u.mV, V_reset=-60. * u.mV,
                                tau=20. * u.ms, tau_ref=5. * u.ms,
                                V_initializer=braintools.init.Normal(-55., 2., unit=u.mV))
            prob = 80 / n
            self.E = bst.AlignPostProj(
                comm=brainstate.nn.EventFixedProb(ne, n, conn_num=prob, conn_weight=0.6 * u.nS, seed=seed),
                syn=bst.Expon.desc(n, tau=5. * u.ms, g_initializer=braintools.init.Constant(0. * u.nS)),
                out=bst.COBA.desc(E=0. * u.mV), post=self.N)
            self.I = bst.AlignPostProj(
                comm=brainstate.nn.EventFixedProb(n - ne, n, conn_num=prob, conn_weight=6.7 * u.nS, seed=seed + 1),
                syn=bst.Expon.desc(n, tau=10. * u.ms, g_initializer=braintools.init.Constant(0. * u.nS)),
                out=bst.COBA.desc(E=-80. * u.mV), post=self.N)

        def update(self, i):
            with brainstate.environ.context(i=i, t=i * brainstate.environ.get_dt()):
                spk = self.N.get_spike() != 0.
                self.E(spk[:ne])
                self.I(spk[ne:])
                return self.N(20. * u.pA)

    net = EINet()
    brainstate.nn.init_all_states(net)
    return net


@needs_state
def test_state_einet_raster_is_identical_and_every_kernel_native():
    import brainstate
    import brainunit as u

    def simulate(native):
        with brainstate.environ.context(dt=0.1 * u.ms), bhp.native_kernels(native):
            net = _state_einet()
            step = brainstate.transform.jit(lambda i: net.update(i))
            targets = re.findall(r'custom_call_target="(\w+)"', step.lower(0).compile().as_text())
            spikes = brainstate.transform.jit(lambda idx: brainstate.transform.for_loop(net.update, idx))(
                np.arange(2000))
            return np.asarray(spikes), np.asarray(u.get_mantissa(net.N.V.value)), targets

    spikes_bridge, v_bridge, bridge_targets = simulate(False)
    spikes_native, v_native, native_targets = simulate(True)
    assert spikes_bridge.sum() > 1000
    np.testing.assert_array_equal(spikes_native, spikes_bridge)
    np.testing.assert_array_equal(v_native, v_bridge)
    # one call per projection and step, each to brainevent's ell kernel; all native when switched on
    assert len(bridge_targets) == len(native_targets) == 2
    assert all(t.startswith("brainevent_numba_ffi_") for t in bridge_targets), bridge_targets
    _assert_native(set(native_targets))
    records = [r for r in bhp.native_kernel_report() if r.target in native_targets]
    assert records and all(r.native and "_ell_binary_matvec_numba_kernel" in r.kernel for r in records)
