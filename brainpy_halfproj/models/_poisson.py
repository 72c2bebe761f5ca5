"""Poisson spike counts per neuron and step, from a counter-based random number generator.

The generator is Threefry-2x32 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
SC 2011), the algorithm behind JAX's default PRNG, written out here with its rounds unrolled.
JAX and Random123 use 20 rounds by default; the background uses 13 (``BACKGROUND_ROUNDS``),
the shortest variant for which Random123 publishes known answers (the tests check 13, 20
and 32 rounds against them), and its counts pass the same statistical tests as with 20
(``tests/test_poisson.py``). A Threefry round is most of a draw's cost, and the draws are
most of the background's (measured in ``BENCHMARKS.md``). Why not
``jax.random``: on CPU its threefry is lowered to rolled loops and a key must be split and
carried every step, which made the microcircuit's background cost several milliseconds per
step; a counter-based generator needs no state at all. The counter of a draw is
``(step, neuron)`` and the key comes from the population's seed, so every draw has its own
counter: draws are independent across neurons and steps, and a step's counts do not depend
on how many steps ran before (nor on the device that computes them).

A count is drawn by inverse transform from one 32-bit word ``u`` per neuron and step:
``k = #{j : u >= T_j}`` with the table ``T_j = ceil(2**32 P(X <= j))``, so ``P(k = j)`` is
the Poisson probability to within ``2**-32``; the largest count drawn, ``J``, stands for
``X >= J``, and ``P(X > J) <= 2**-32``.
"""
from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

__all__ = ["BACKGROUND_ROUNDS", "threefry2x32", "poisson_thresholds", "poisson_counts"]

_ROTATIONS = (13, 15, 26, 6, 17, 29, 16, 24)
_PARITY = 0x1BD11BDA

#: Threefry rounds per draw of the microcircuit's background (Random123's default is 20).
BACKGROUND_ROUNDS = 13


def _rotl(x: jnp.ndarray, r: int) -> jnp.ndarray:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def threefry2x32(
    key: tuple[int, int], x0: jnp.ndarray, x1: jnp.ndarray, rounds: int = 20
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Threefry-2x32 of the counters ``(x0, x1)`` (``uint32`` arrays) under ``key``, ``rounds`` rounds.

    As Random123's ``threefry2x32_R``: the key is injected before the first round and after
    every fourth.

    Examples
    --------
    Known-answer tests of the Random123 suite, 20 and 13 rounds:

    >>> import jax.numpy as jnp
    >>> a, b = threefry2x32((0x13198a2e, 0x03707344), jnp.uint32(0x243f6a88), jnp.uint32(0x85a308d3))
    >>> hex(int(a)), hex(int(b))
    ('0xc4923a9c', '0x483df7a0')
    >>> a, b = threefry2x32((0x13198a2e, 0x03707344), jnp.uint32(0x243f6a88), jnp.uint32(0x85a308d3), rounds=13)
    >>> hex(int(a)), hex(int(b))
    ('0xba3e4725', '0xf27d669e')
    """
    if not (isinstance(rounds, int) and 1 <= rounds <= 32):
        raise ValueError(f"threefry2x32: `rounds` must be an int in [1, 32], got {rounds!r}.")
    ks = (np.uint32(key[0]), np.uint32(key[1]), np.uint32(key[0] ^ key[1] ^ _PARITY))
    x0, x1 = x0 + ks[0], x1 + ks[1]
    for r in range(rounds):
        x0 = x0 + x1
        x1 = _rotl(x1, _ROTATIONS[r % 8]) ^ x0
        if r % 4 == 3:  # key injection s = (r + 1) / 4
            s = (r + 1) // 4
            x0 = x0 + ks[s % 3]
            x1 = x1 + ks[(s + 1) % 3] + np.uint32(s)
    return x0, x1


def poisson_thresholds(lam: float) -> np.ndarray:
    """``T_j = ceil(2**32 P(X <= j))`` for ``X ~ Poisson(lam)``, for every ``j`` with ``T_j < 2**32``.

    Examples
    --------
    >>> t = poisson_thresholds(1.0)
    >>> int(t[0]) == round(2**32 * math.exp(-1.0)), len(t) < 20
    (True, True)
    """
    if not (isinstance(lam, (int, float)) and 0 < lam < 100):
        raise ValueError(f"poisson_thresholds: `lam` must be a number in (0, 100), got {lam!r}.")
    thresholds, cdf, pmf, j = [], 0.0, math.exp(-lam), 0
    while True:
        cdf += pmf
        t = math.ceil(cdf * 2.0**32)
        if t >= 2**32:
            break
        thresholds.append(t)
        j += 1
        pmf *= lam / j
    return np.asarray(thresholds, dtype=np.uint32)


def poisson_counts(
    thresholds: np.ndarray, key: tuple[int, int], step: jnp.ndarray, n: int, rounds: int = BACKGROUND_ROUNDS
) -> jnp.ndarray:
    """Counts of ``n`` neurons at ``step``: float32, ``Poisson(lam)`` of ``thresholds``.

    One Threefry call gives two 32-bit words: neuron ``i`` and neuron ``i + ceil(n/2)``
    share the counter ``(step, i)``. Each neuron evaluates its own counter's call and keeps
    its word (twice the arithmetic of sharing it, the same values), so that a neuron's
    count needs nothing but its index: split over devices
    (:func:`brainpy_halfproj.partition`), each device draws its own neurons' counts
    without communication.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> c = poisson_counts(poisson_thresholds(2.0), (7, 11), jnp.uint32(0), 100_000)
    >>> c.shape, abs(float(c.mean()) - 2.0) < 0.02
    ((100000,), True)
    """
    half = (n + 1) // 2
    neuron = jnp.arange(n, dtype=jnp.uint32)
    first = neuron < half
    a, b = threefry2x32(key, jnp.full(n, step, dtype=jnp.uint32), jnp.where(first, neuron, neuron - half), rounds)
    bits = jnp.where(first, a, b)
    return (bits[:, None] >= jnp.asarray(thresholds)[None, :]).sum(-1).astype(jnp.float32)
