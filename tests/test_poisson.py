"""The microcircuit's background sampler: Threefry bits, Poisson counts, independence."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from brainpy_halfproj.models._poisson import BACKGROUND_ROUNDS, poisson_counts, poisson_thresholds, threefry2x32


@pytest.mark.parametrize("rounds, key, counter, expected", [
    (20, (0, 0), (0, 0), (0x6B200159, 0x99BA4EFE)),
    (20, (0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    (20, (0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
    (13, (0, 0), (0, 0), (0x9D1C5EC6, 0x8BD50731)),
    (13, (0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0xFD36D048, 0x2D17272C)),
    (13, (0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xBA3E4725, 0xF27D669E)),
    (32, (0, 0), (0, 0), (0xCEE3D47E, 0xA23DFD5C)),
])
def test_threefry_known_answers(rounds, key, counter, expected):
    """Random123's known-answer vectors (``kat_vectors``) for Threefry-2x32-R; R = 20 are also JAX's."""
    a, b = threefry2x32(key, jnp.uint32(counter[0]), jnp.uint32(counter[1]), rounds=rounds)
    assert (int(a), int(b)) == expected


def test_threefry_rejects_bad_round_counts():
    with pytest.raises(ValueError, match=r"`rounds` must be an int in \[1, 32\], got 0"):
        threefry2x32((0, 0), jnp.uint32(0), jnp.uint32(0), rounds=0)


def test_counts_use_the_background_rounds():
    """The counts are the inverse CDF of the first/second word of Threefry-2x32-13 at (step, neuron)."""
    assert BACKGROUND_ROUNDS == 13
    t, n, step = poisson_thresholds(1.6), 11, 5
    half = (n + 1) // 2
    a, b = threefry2x32((3, 5), jnp.full(half, step, jnp.uint32), jnp.arange(half, dtype=jnp.uint32), rounds=13)
    bits = np.concatenate([np.asarray(a), np.asarray(b)[:n - half]])
    expected = (bits[:, None] >= t[None, :]).sum(1)
    np.testing.assert_array_equal(np.asarray(poisson_counts(t, (3, 5), jnp.uint32(step), n)), expected)


@pytest.mark.parametrize("lam", [0.05, 0.4, 1.28, 2.32])
def test_thresholds_are_the_poisson_cdf(lam):
    t = poisson_thresholds(lam).astype(np.float64) / 2**32
    cdf = np.cumsum([math.exp(-lam) * lam**k / math.factorial(k) for k in range(len(t) + 1)])
    np.testing.assert_allclose(t, cdf[:-1], atol=2**-32, rtol=0)
    # the largest count drawn, len(t), takes the whole tail; beyond it less than 2**-32 is left
    assert 1 - cdf[-1] <= 2**-32


def test_thresholds_reject_bad_rates():
    with pytest.raises(ValueError, match=r"`lam` must be a number in \(0, 100\), got -1"):
        poisson_thresholds(-1)


def _draws(lam, n, steps, key=(3, 5)):
    t = poisson_thresholds(lam)
    draw = jax.jit(lambda s: poisson_counts(t, key, s, n))
    return np.stack([np.asarray(draw(jnp.uint32(s))) for s in range(steps)])  # (steps, n)


# The full-scale microcircuit draws lam = K_ext * 8 Hz * 0.1 ms = 1.2 ... 2.32 per neuron and step.
@pytest.mark.parametrize("lam", [0.2, 1.28, 2.32])
def test_counts_have_the_poisson_mean_variance_and_distribution(lam):
    c = _draws(lam, 20_001, 50)  # odd n: the second half of the words is one shorter
    n = c.size
    assert abs(c.mean() - lam) < 5 * math.sqrt(lam / n)
    # variance of the sample variance of a Poisson: (lam + 2 lam^2) / n
    assert abs(c.var() - lam) < 5 * math.sqrt((lam + 2 * lam**2) / n)
    # chi-square against the pmf over the classes with expected count >= 20
    k_max = int(c.max())
    observed = np.bincount(c.astype(int).ravel(), minlength=k_max + 1)
    pmf = np.array([math.exp(-lam) * lam**k / math.factorial(k) for k in range(k_max + 1)])
    expected = pmf * n
    keep = expected >= 20
    chi2 = float((((observed - expected)[keep]) ** 2 / expected[keep]).sum())
    dof = int(keep.sum()) - 1
    assert chi2 < dof + 6 * math.sqrt(2 * dof), (chi2, dof)  # far in the tail of chi2(dof)


def test_counts_are_independent_across_neurons_and_steps():
    c = _draws(1.6, 4001, 200)
    z = (c - c.mean()) / c.std()
    bound = 5 / math.sqrt(z.size)
    assert abs((z[:, 1:] * z[:, :-1]).mean()) < bound  # neighbouring neurons
    assert abs((z[1:] * z[:-1]).mean()) < bound  # consecutive steps
    half = (4001 + 1) // 2
    assert abs((z[:, :half - 1] * z[:, half:]).mean()) < bound  # the two words of one counter


def test_counts_depend_on_key_and_step_only():
    t = poisson_thresholds(1.0)
    a = np.asarray(poisson_counts(t, (1, 2), jnp.uint32(7), 1000))
    np.testing.assert_array_equal(a, np.asarray(poisson_counts(t, (1, 2), jnp.uint32(7), 1000)))
    assert not np.array_equal(a, np.asarray(poisson_counts(t, (1, 3), jnp.uint32(7), 1000)))
    assert not np.array_equal(a, np.asarray(poisson_counts(t, (1, 2), jnp.uint32(8), 1000)))
    # a prefix of the neurons does not change with n when n grows by two (same counters)
    b = np.asarray(poisson_counts(t, (1, 2), jnp.uint32(7), 1002))
    np.testing.assert_array_equal(a[:500], b[:500])
