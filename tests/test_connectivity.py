"""Reading out the synapses a comm layer realises: exactly what its own kernel computes."""
import brainpy as bp
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from brainpy_halfproj._compat import event_kernel_library
from brainpy_halfproj._connectivity import append_rows, read_connectivity

N_PRE, N_POST = 300, 200

LAYERS = {
    "jit_homo": lambda: bp.dnn.EventJitFPHomoLinear(N_PRE, N_POST, prob=0.1, weight=0.5, seed=1),
    "jit_homo_outdim_parallel": lambda: bp.dnn.EventJitFPHomoLinear(N_PRE, N_POST, prob=0.1, weight=0.5, seed=1,
                                                                    atomic=False),
    "jit_normal": lambda: bp.dnn.EventJitFPNormalLinear(N_PRE, N_POST, prob=0.1, w_mu=0.5, w_sigma=0.2, seed=2),
    "jit_uniform": lambda: bp.dnn.EventJitFPUniformLinear(N_PRE, N_POST, prob=0.1, w_low=0.1, w_high=0.6, seed=3),
    "csr_multapses": lambda: bp.dnn.EventCSRLinear(bp.conn.FixedProb(0.1, seed=4, allow_multi_conn=True)(N_PRE, N_POST),
                                                   weight=0.7),
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(LAYERS))
def test_read_out_matrix_gives_the_layers_current(kind):
    comm = LAYERS[kind]()
    rows = read_connectivity(comm, N_PRE, N_POST)
    assert rows.shape == (N_PRE, N_POST) and rows.nnz > 0.05 * N_PRE * N_POST
    dense = rows.todense()
    for seed in range(3):
        spikes = np.random.default_rng(seed).random(N_PRE) < 0.2
        expected = np.asarray(jax.jit(lambda s: comm(s))(jnp.asarray(spikes)))
        np.testing.assert_allclose(spikes.astype(np.float32) @ dense, expected, rtol=1e-5, atol=1e-5)
    # one spike of neuron i adds row i, value for value
    for i in (0, 17, N_PRE - 1):
        one = np.asarray(jax.jit(lambda s: comm(s))(jnp.arange(N_PRE) == i))
        np.testing.assert_array_equal(dense[i], one)


@pytest.mark.slow
@pytest.mark.skipif(event_kernel_library() != "brainevent", reason="brainevent's tocsr (brainpy >= 2.6)")
@pytest.mark.parametrize("kind", ["jit_homo", "jit_homo_outdim_parallel", "jit_normal", "jit_uniform"])
def test_read_out_equals_brainevents_own_csr(kind):
    """An independent read-out: brainevent's tocsr() of the matrix brainpy's layer builds on each call."""
    import brainevent

    comm = LAYERS[kind]()
    cls, params = {"EventJitFPHomoLinear": (brainevent.JITCScalarR, ("weight",)),
                   "EventJitFPNormalLinear": (brainevent.JITCNormalR, ("w_mu", "w_sigma")),
                   "EventJitFPUniformLinear": (brainevent.JITCUniformR, ("w_low", "w_high"))}[type(comm).__name__]
    values = tuple(np.asarray(getattr(getattr(comm, p), "value", getattr(comm, p))) for p in params)
    csr = cls((*values, comm.prob, comm.seed), shape=(N_POST, N_PRE), corder=not comm.atomic).tocsr()
    expected = np.zeros((N_POST, N_PRE), np.float32)
    rows = np.repeat(np.arange(N_POST), np.diff(np.asarray(csr.indptr)))
    expected[rows, np.asarray(csr.indices)] = np.broadcast_to(np.asarray(csr.data), rows.shape)
    np.testing.assert_array_equal(read_connectivity(comm, N_PRE, N_POST).todense(), expected.T)


def test_appending_rows_places_the_blocks():
    a = read_connectivity(LAYERS["jit_normal"](), N_PRE, N_POST)
    b = read_connectivity(LAYERS["csr_multapses"](), N_PRE, N_POST)
    appended = append_rows(a, b, N_POST, 2 * N_POST)
    assert appended.shape == (2 * N_PRE, 2 * N_POST) and appended.nnz == a.nnz + b.nnz
    dense = appended.todense()
    np.testing.assert_array_equal(dense[:N_PRE, :N_POST], a.todense())
    np.testing.assert_array_equal(dense[N_PRE:, N_POST:], b.todense())
    assert not dense[:N_PRE, N_POST:].any() and not dense[N_PRE:, :N_POST].any()
    with pytest.raises(ValueError, match=r"append_rows: blocks of 200 and 200\+200 columns do not fit in 300"):
        append_rows(a, b, N_POST, 300)


def test_rows_are_sorted_and_typed():
    rows = read_connectivity(LAYERS["csr_multapses"](), N_PRE, N_POST)
    assert rows.indptr.dtype == np.int64 and rows.indices.dtype == np.int32 and rows.data.dtype == np.float32
    for i in range(0, N_PRE, 37):
        cols = rows.indices[rows.indptr[i]:rows.indptr[i + 1]]
        assert (np.diff(cols) >= 0).all()
    assert rows.nbytes == rows.indptr.nbytes + rows.indices.nbytes + rows.data.nbytes


def test_only_event_layers_are_read():
    with pytest.raises(TypeError, match=r"read_connectivity: `comm` must be one of bp\.dnn\.EventCSRLinear, "
                                        r".*but got a Dense"):
        read_connectivity(bp.dnn.Linear(3, 4), 3, 4)
