"""Native kernel handlers (``use_native_kernels``): the same numba kernels, the same results.

Every comparison runs the same operation twice in fresh traces, once through brainevent's
Python bridge and once through the native handler, and asserts bit-identical outputs.
"""
import concurrent.futures
import itertools
import re
import subprocess
import sys
import threading

import brainpy as bp
import brainpy.math as bm
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainpy_halfproj as bhp
from brainpy_halfproj import _native
from brainpy_halfproj._compat import event_kernel_library
from brainpy_halfproj._hlo import kernel_targets

brainevent_only = pytest.mark.skipif(event_kernel_library() != "brainevent",
                                     reason="native handlers reroute brainevent's numba kernels (brainpy >= 2.6)")


@pytest.fixture(autouse=True)
def _native_off(monkeypatch):
    """Every test starts and ends with brainevent's own path, and with an empty kernel registry.

    The registry (``_native._TARGETS``, what ``native_kernel_report`` lists) caches one handler
    per kernel: without a fresh one, what a test sees would depend on the tests before it.
    """
    bhp.use_native_kernels(False)
    monkeypatch.setattr(_native, "_TARGETS", {})
    yield
    bhp.use_native_kernels(False)


def _targets(fn, *args):
    """The custom-call targets of ``fn``'s program; fails if there is none (a check on them would be vacuous)."""
    found = kernel_targets(jax.jit(fn).lower(*args).as_text())
    assert found, "no kernel call found in the program: the test would check nothing"
    return found


# ----------------------------------------------------------------- every kernel family

M, N = 60, 50


def _matrices():
    import brainevent as be

    rng = np.random.default_rng(0)
    dense = (rng.random((M, N)) < 0.2) * rng.normal(1.0, 0.3, (M, N))
    rows, cols = np.nonzero(dense)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=M))]).astype(np.int32)

    def csr(data):
        return be.CSR((jnp.asarray(data), jnp.asarray(cols.astype(np.int32)), jnp.asarray(indptr)), shape=(M, N))

    return {
        "csr_homo": lambda: csr(np.full(1, 0.7, np.float32)),
        "csr_float": lambda: csr(dense[rows, cols].astype(np.float32)),
        "jit_scalar": lambda: be.JITCScalarR((0.5, 0.1, 123), shape=(M, N)),
        "jit_scalar_corder": lambda: be.JITCScalarR((0.5, 0.1, 123), shape=(M, N), corder=True),
        "jit_normal": lambda: be.JITCNormalR((0.5, 0.1, 0.1, 7), shape=(M, N)),
        "jit_uniform": lambda: be.JITCUniformR((0.1, 0.9, 0.1, 7), shape=(M, N)),
    }


def _operations():
    import brainevent as be

    rng = np.random.default_rng(1)
    spk_m, spk_n = rng.random(M) < 0.3, rng.random(N) < 0.3
    x_m, x_n = rng.normal(size=M).astype(np.float32), rng.normal(size=N).astype(np.float32)
    spk_nk, spk_km = rng.random((N, 4)) < 0.3, rng.random((4, M)) < 0.3
    return {
        "binary_mv": lambda A: A @ be.BinaryArray(jnp.asarray(spk_n)),
        "binary_mv_transposed": lambda A: be.BinaryArray(jnp.asarray(spk_m)) @ A,
        "float_mv": lambda A: A @ jnp.asarray(x_n),
        "float_mv_transposed": lambda A: jnp.asarray(x_m) @ A,
        "binary_mm": lambda A: A @ be.BinaryArray(jnp.asarray(spk_nk)),
        "binary_mm_transposed": lambda A: be.BinaryArray(jnp.asarray(spk_km)) @ A,
        "float_mm": lambda A: A @ jnp.asarray(spk_nk.astype(np.float32)),
    }


FAMILIES = ["csr_homo", "csr_float", "jit_scalar", "jit_scalar_corder", "jit_normal", "jit_uniform"]
OPERATIONS = ["binary_mv", "binary_mv_transposed", "float_mv", "float_mv_transposed", "binary_mm",
              "binary_mm_transposed", "float_mm"]


# the quick run (``-m "not slow"``) keeps one CSR and one JIT family
QUICK = {("csr_float", "binary_mv"), ("jit_normal", "binary_mv_transposed")}


@brainevent_only
@pytest.mark.parametrize("family, operation", [pytest.param(f, o, marks=() if (f, o) in QUICK else pytest.mark.slow)
                                               for f, o in itertools.product(FAMILIES, OPERATIONS)])
def test_every_kernel_family_gives_the_python_bridges_result(family, operation):
    # a fresh matrix per trace: brainevent's CSR caches trace-time workspaces on the object
    make, op = _matrices()[family], _operations()[operation]
    a, b, c = make(), make(), make()
    reference = np.asarray(jax.jit(lambda: op(a))())
    assert np.count_nonzero(reference) > 0
    with bhp.native_kernels():
        targets = _targets(lambda: op(b))
        native = np.asarray(jax.jit(lambda: op(c))())
    assert targets and all(t.startswith("brainpy_halfproj_native_") for t in targets), targets
    np.testing.assert_array_equal(native, reference)


@brainevent_only
def test_programs_traced_outside_the_switch_use_brainevents_bridge():
    comm = bp.dnn.EventJitFPHomoLinear(20, 30, prob=0.1, weight=0.6)
    spikes = bm.zeros(20, dtype=bool).value
    assert all(t.startswith("brainevent_") for t in _targets(lambda x: comm(x), spikes))
    with bhp.native_kernels():
        assert all(t.startswith("brainpy_halfproj_native_") for t in _targets(lambda x: comm(x), spikes))
    assert all(t.startswith("brainevent_") for t in _targets(lambda x: comm(x), spikes))


@pytest.mark.slow
@brainevent_only
def test_vmap_over_spike_vectors():
    comm = bp.dnn.EventJitFPNormalLinear(40, 30, prob=0.2, w_mu=0.5, w_sigma=0.1, seed=3)
    spikes = jnp.asarray(np.random.default_rng(2).random((5, 40)) < 0.3)
    batched = jax.jit(jax.vmap(lambda s: comm(s)))
    reference = np.asarray(batched(spikes))
    with bhp.native_kernels():
        native = np.asarray(jax.jit(jax.vmap(lambda s: comm(s)))(spikes))
    assert reference.shape == (5, 30) and np.count_nonzero(reference) > 0
    np.testing.assert_array_equal(native, reference)


@pytest.mark.slow
@brainevent_only
def test_concurrent_calls_from_many_threads():
    """The handler holds no lock and no GIL: concurrent executions must not interfere."""
    comm = bp.dnn.EventJitFPNormalLinear(400, 300, prob=0.1, w_mu=0.5, w_sigma=0.1, seed=3)
    inputs = [jnp.asarray(np.random.default_rng(k).random(400) < 0.2) for k in range(16)]
    reference = [np.asarray(jax.jit(lambda s: comm(s))(x)) for x in inputs]
    with bhp.native_kernels():
        f = jax.jit(lambda s: comm(s))
        f(inputs[0]).block_until_ready()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda x: np.asarray(f(x)), inputs * 4))
    for i, got in enumerate(results):
        np.testing.assert_array_equal(got, reference[i % 16])


@brainevent_only
def test_independent_kernels_in_one_program():
    """One program with several independent kernel calls (XLA may run them concurrently)."""
    comms = [bp.dnn.EventJitFPNormalLinear(300, 200, prob=0.1, w_mu=0.5, w_sigma=0.1, seed=s) for s in range(6)]
    spikes = jnp.asarray(np.random.default_rng(4).random(300) < 0.2)

    def many(x):
        return jnp.stack([c(x) for c in comms])

    reference = np.asarray(jax.jit(many)(spikes))
    with bhp.native_kernels():
        native = np.asarray(jax.jit(many)(spikes))
    np.testing.assert_array_equal(native, reference)


# ----------------------------------------------------------------- whole models


@pytest.mark.slow
@brainevent_only
def test_seed_network_raster_is_identical_to_upstream():
    """Upstream bp.dyn through brainevent's bridge, against the plugin with native handlers."""
    def simulate(dyn, native):
        bm.random.seed(42)
        with bhp.native_kernels(native):
            net = bhp.EINet(4000, dyn=dyn)
            return bhp.run_einet(net, 1000), np.asarray(net.N.V.value)

    spikes_up, v_up = simulate(bp.dyn, False)
    spikes_native, v_native = simulate(bhp.dyn, True)
    assert spikes_up.sum() > 1000
    np.testing.assert_array_equal(spikes_native, spikes_up)
    np.testing.assert_array_equal(v_native, v_up)


@pytest.mark.slow
@brainevent_only
def test_microcircuit_raster_is_identical():
    from brainpy_halfproj.models import microcircuit, simulate

    bm.set_dt(0.1)
    reference = simulate(microcircuit(0.05, seed=3), 30.0, record=True)
    with bhp.native_kernels():
        native = simulate(microcircuit(0.05, seed=3), 30.0, record=True)
    assert sum(int(s.sum()) for s in reference.values()) > 0
    for pop in reference:
        np.testing.assert_array_equal(native[pop], reference[pop], err_msg=pop)
    report = bhp.native_kernel_report()
    assert report and all(r.native for r in report)


# ----------------------------------------------------------------- the switch


def _native_target(comm, spikes):
    """Whether this thread traces ``comm`` through a native handler (else brainevent's bridge)."""
    targets = _targets(lambda x: comm(x), spikes)
    assert all(t.startswith("brainpy_halfproj_native_") for t in targets) or \
        all(t.startswith("brainevent_") for t in targets), targets
    return next(iter(targets)).startswith("brainpy_halfproj_native_")


@brainevent_only
def test_switch_and_context_manager_restore_brainevent():
    from brainevent._op import numba_ffi

    original = numba_ffi._register_numba_cpu_ffi_target
    comm = bp.dnn.EventJitFPHomoLinear(20, 30, prob=0.1, weight=0.6)
    spikes = bm.zeros(20, dtype=bool).value
    assert not bhp.native_kernels_enabled()
    with bhp.native_kernels():
        assert bhp.native_kernels_enabled() and _native_target(comm, spikes)
        assert numba_ffi._register_numba_cpu_ffi_target is _native._dispatch
        with bhp.native_kernels(False):
            assert not bhp.native_kernels_enabled() and not _native_target(comm, spikes)
        assert bhp.native_kernels_enabled()
    assert not bhp.native_kernels_enabled()
    assert numba_ffi._register_numba_cpu_ffi_target is original
    bhp.use_native_kernels()
    bhp.use_native_kernels()  # twice is the same as once
    with bhp.native_kernels(False):  # a block decides for its thread
        assert not bhp.native_kernels_enabled() and not _native_target(comm, spikes)
    assert bhp.native_kernels_enabled() and _native_target(comm, spikes)
    bhp.use_native_kernels(False)
    assert numba_ffi._register_numba_cpu_ffi_target is original
    with pytest.raises(TypeError, match=r"native_kernels: `enable` must be True or False, got 1"):
        with bhp.native_kernels(1):
            pass


@brainevent_only
def test_overlapping_blocks_in_two_threads_each_keep_their_own_setting():
    """A enters, B enters, A exits, B exits: each thread's block holds until it exits, none leaks."""
    from brainevent._op import numba_ffi

    original = numba_ffi._register_numba_cpu_ffi_target
    comm = bp.dnn.EventJitFPHomoLinear(20, 30, prob=0.1, weight=0.6)
    spikes = bm.zeros(20, dtype=bool).value
    a_in, b_in, a_out, b_checked = (threading.Event() for _ in range(4))
    seen = {}

    def thread_a():
        with bhp.native_kernels():
            a_in.set()
            b_in.wait(30)
            seen["a inside"] = _native_target(comm, spikes)
        seen["a after"] = (bhp.native_kernels_enabled(), _native_target(comm, spikes))
        a_out.set()
        b_checked.wait(30)

    def thread_b():
        a_in.wait(30)
        with bhp.native_kernels(True):
            b_in.set()
            a_out.wait(30)  # A has left its block: B's must still hold
            seen["b after a left"] = (bhp.native_kernels_enabled(), _native_target(comm, spikes))
            b_checked.set()
        seen["b after"] = bhp.native_kernels_enabled()

    threads = [threading.Thread(target=thread_a), threading.Thread(target=thread_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert seen == {"a inside": True, "a after": (False, False), "b after a left": (True, True), "b after": False}
    assert not bhp.native_kernels_enabled() and not _native_target(comm, spikes)
    assert numba_ffi._register_numba_cpu_ffi_target is original


@brainevent_only
def test_a_block_in_another_thread_does_not_change_this_ones_setting():
    comm = bp.dnn.EventJitFPHomoLinear(20, 30, prob=0.1, weight=0.6)
    spikes = bm.zeros(20, dtype=bool).value
    inside, done = threading.Event(), threading.Event()

    def off_for_a_while():
        with bhp.native_kernels(False):
            inside.set()
            done.wait(30)

    bhp.use_native_kernels()
    worker = threading.Thread(target=off_for_a_while)
    worker.start()
    inside.wait(30)
    try:
        assert bhp.native_kernels_enabled() and _native_target(comm, spikes)
    finally:
        done.set()
        worker.join(60)
    assert bhp.native_kernels_enabled()


@brainevent_only
def test_untested_brainevent_is_refused_and_left_alone(monkeypatch):
    from importlib.metadata import version

    from brainevent._op import numba_ffi

    original = numba_ffi._register_numba_cpu_ffi_target
    monkeypatch.setattr(_native, "TESTED_BRAINEVENT", ("0.0.1",))
    with pytest.raises(bhp.NativeKernelsError,
                       match=rf"use_native_kernels: brainevent {re.escape(version('brainevent'))} is installed, but "
                             r"native kernels were tested with brainevent 0\.0\.1 only"):
        bhp.use_native_kernels()
    assert numba_ffi._register_numba_cpu_ffi_target is original
    assert not bhp.native_kernels_enabled()


@brainevent_only
def test_untested_ffi_api_is_refused(monkeypatch):
    monkeypatch.setattr(_native, "TESTED_FFI_API", ((9, 9),))
    with pytest.raises(bhp.NativeKernelsError, match=r"implements XLA FFI API \d+\.\d+, but native kernels were "
                                                     r"tested with 9\.9 only"):
        bhp.use_native_kernels()


@brainevent_only
def test_missing_brainevent_internals_are_refused(monkeypatch):
    from brainevent._op import numba_ffi

    monkeypatch.delattr(numba_ffi, "XLA_FFI_Buffer")
    with pytest.raises(bhp.NativeKernelsError, match=r"lacks XLA_FFI_Buffer in brainevent\._op\.numba_ffi"):
        bhp.use_native_kernels()


@brainevent_only
def test_a_kernel_that_cannot_be_compiled_natively_keeps_the_python_bridge(monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("no native handler for this one")

    monkeypatch.setattr(_native, "_compile_handler", fail)
    comm = bp.dnn.EventJitFPUniformLinear(37, 23, prob=0.3, w_low=0.1, w_high=0.2, seed=11)
    spikes = jnp.ones(37, dtype=bool)
    reference = np.asarray(jax.jit(lambda x: comm(x))(spikes))
    with bhp.native_kernels():
        targets = _targets(lambda x: comm(x), spikes)
        got = np.asarray(jax.jit(lambda x: comm(x))(spikes))
    assert all(t.startswith("brainevent_") for t in targets), targets
    np.testing.assert_array_equal(got, reference)
    fallbacks = [r for r in bhp.native_kernel_report() if r.target in targets]
    assert fallbacks and not any(r.native for r in fallbacks)
    assert fallbacks[0].reason == "RuntimeError: no native handler for this one"


@brainevent_only
def test_a_users_own_numba_kernel_runs_natively():
    import brainevent as be
    import numba

    @numba.njit
    def scale(x, factor, out):
        for i in range(out.shape[0]):
            out[i] = x[i] * factor[()]

    f = be.numba_kernel(scale, outs=jax.ShapeDtypeStruct((5,), jnp.float32))
    x = jnp.arange(5, dtype=jnp.float32)
    with bhp.native_kernels():
        got = np.asarray(jax.jit(lambda: f(x, jnp.float32(3.0)))())
    np.testing.assert_array_equal(got, np.arange(5) * 3.0)
    record = next(r for r in bhp.native_kernel_report() if r.kernel.endswith(".scale"))
    assert record.native and record.reason is None


def test_enable_must_be_a_bool():
    with pytest.raises(TypeError, match=r"use_native_kernels: `enable` must be True or False, got 'yes'"):
        bhp.use_native_kernels("yes")


@pytest.mark.skipif(event_kernel_library() != "brainpylib", reason="brainpy 2.5 line only")
def test_on_the_brainpylib_line_the_switch_does_nothing():
    bhp.use_native_kernels()
    assert not bhp.native_kernels_enabled()
    assert bhp.native_kernel_report() == []


@pytest.mark.slow
@brainevent_only
def test_importing_the_plugin_leaves_brainevent_alone():
    code = ("import brainpy_halfproj\n"
            "from brainevent._op import numba_ffi\n"
            "assert numba_ffi._register_numba_cpu_ffi_target.__module__ == 'brainevent._op.numba_ffi'\n"
            "print('checked')\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip().endswith("checked")
