"""The one merge key on brainpy.state descriptors: Quantities, units, states, initialisers (hypothesis)."""
from __future__ import annotations

import fractions
import inspect

import pytest

from brainpy_halfproj._compat import BRAINPY_VERSION

if BRAINPY_VERSION < (2, 9):
    pytest.skip("the brainpy.state front needs brainpy >= 2.9 (Python >= 3.12)", allow_module_level=True)

import brainpy.state as upstream  # noqa: E402
import brainstate  # noqa: E402
import braintools  # noqa: E402
import brainunit as u  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import brainpy_halfproj as bhp  # noqa: E402
from brainpy_halfproj._merge_key import _canonical_text  # noqa: E402

Expon, COBA, CUBA = upstream.Expon, upstream.COBA, upstream.CUBA
TIME_UNITS = [u.second, u.ms, u.us, u.nsecond]
OTHER_UNITS = [u.mV, u.volt, u.nS, u.pA]


def _exact_si(mantissa, unit) -> fractions.Fraction:
    return fractions.Fraction(mantissa) * fractions.Fraction(10) ** int(unit.scale)


# --------------------------------------------------------------------------- properties
mantissas = st.one_of(st.integers(-10**6, 10**6), st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
                      st.sampled_from([5, 5.0, 0.005, 5000, 5e-6, 5.0000001]))


@given(mantissas, st.sampled_from(TIME_UNITS), mantissas, st.sampled_from(TIME_UNITS))
def test_quantities_compare_by_their_correctly_rounded_si_value(m1, u1, m2, u2):
    a = bhp.describe(Expon.desc(4, tau=m1 * u1))
    b = bhp.describe(Expon.desc(4, tau=m2 * u2))
    # The oracle: the exact SI values (Fraction arithmetic), each rounded once to float64.
    expected = float(_exact_si(m1, u1)) == float(_exact_si(m2, u2))
    assert (a == b) is (b == a) is expected
    if a == b:
        assert hash(a) == hash(b)
        assert _canonical_text(a) == _canonical_text(b)  # what checkpoints match groups by


@given(mantissas, st.sampled_from(TIME_UNITS), mantissas, st.sampled_from(OTHER_UNITS))
def test_different_dimensions_never_compare_equal(m1, u1, m2, u2):
    assert bhp.describe(Expon.desc(4, tau=m1 * u1)) != bhp.describe(Expon.desc(4, tau=m2 * u2))


@given(st.floats(0.125, 1024., width=32), st.sampled_from(TIME_UNITS))
def test_neighbouring_float32_values_never_collide_in_si(m, unit):
    nxt = float(np.nextafter(np.float32(m), np.float32(np.inf)))
    assert bhp.describe(Expon.desc(4, tau=m * unit)) != bhp.describe(Expon.desc(4, tau=nxt * unit))


@settings(max_examples=40)
@given(data=st.data(), n=st.integers(1, 2500), delta=st.sampled_from([1e-6, -0.5, 1.0, 1e6]),
       unit=st.sampled_from(TIME_UNITS), wrap=st.sampled_from(["numpy", "jax"]))
def test_any_single_changed_element_of_a_quantity_array_separates(data, n, delta, unit, wrap):
    tau = np.full(n, 5.0, dtype=np.float32)
    i = data.draw(st.integers(0, n - 1), label="index")
    changed = tau.copy()
    changed[i] += np.float32(delta)
    arr = jnp.asarray if wrap == "jax" else np.asarray
    a = bhp.describe(Expon.desc(n, tau=arr(tau) * unit))
    assert a != bhp.describe(Expon.desc(n, tau=arr(changed) * unit))
    assert a == bhp.describe(Expon.desc(n, tau=arr(tau.copy()) * unit))


@given(st.permutations(["in_size", "tau", "name", "g_initializer"]), st.booleans(), st.booleans())
def test_written_out_defaults_order_and_positional_arguments_do_not_matter(order, positional, tuple_size):
    values = {"in_size": (6,) if tuple_size else 6, "tau": 8. * u.ms, "name": None,
              "g_initializer": braintools.init.Constant(0. * u.mS)}
    kwargs = {k: values[k] for k in order}
    args = ()
    if positional:
        args = (kwargs.pop("in_size"),)
    assert bhp.describe(Expon.desc(*args, **kwargs)) == bhp.describe(Expon.desc(6))


# --------------------------------------------------------------------------- cases of the issue
@pytest.mark.parametrize("a, b", [
    (5 * u.ms, 5. * u.ms), (5. * u.ms, 0.005 * u.second), (5. * u.ms, 5000. * u.us), (0. * u.mV, 0 * u.mV)],
    ids=["int-float", "ms-s", "ms-us", "zero"])
def test_equal_values_written_differently_are_equal(a, b):
    assert bhp.describe(COBA.desc(E=a)) == bhp.describe(COBA.desc(b))


@pytest.mark.parametrize("a, b", [
    (5. * u.ms, 5.0000001 * u.ms), (5. * u.ms, 5. * u.mV), (5. * u.ms, 5.), (u.volt, 1. * u.volt), (u.mV, u.volt)],
    ids=["8th-digit", "dimension", "unitless", "unit-vs-quantity", "unit-scale"])
def test_different_values_are_different(a, b):
    assert bhp.describe(CUBA.desc(a)) != bhp.describe(CUBA.desc(b))


def test_units_compare_by_dimension_and_factor():
    assert bhp.describe(CUBA.desc(scale=u.volt)) == bhp.describe(CUBA.desc())  # the default
    assert bhp.describe(CUBA.desc(scale=u.mV)) == bhp.describe(CUBA.desc(u.mV))


def test_states_and_param_states_compare_by_identity():
    w = brainstate.ParamState(jnp.ones(4))
    assert bhp.describe(Expon.desc(4, tau=w)) == bhp.describe(Expon.desc(4, tau=w))
    assert bhp.describe(Expon.desc(4, tau=w)) != bhp.describe(Expon.desc(4, tau=brainstate.ParamState(jnp.ones(4))))
    h = brainstate.HiddenState(jnp.ones(4))
    assert bhp.describe(Expon.desc(4, tau=h)) != bhp.describe(Expon.desc(4, tau=brainstate.HiddenState(jnp.ones(4))))


def test_initialisers_compare_by_value():
    def spec(init):
        return bhp.describe(Expon.desc(4, g_initializer=init))

    assert spec(braintools.init.Constant(0. * u.mS)) == spec(braintools.init.Constant(0 * u.mS))
    assert spec(braintools.init.Constant(0. * u.mS)) != spec(braintools.init.Constant(1. * u.mS))
    assert spec(braintools.init.Normal(0. * u.mS, 1. * u.mS)) == spec(braintools.init.Normal(0. * u.mS, 1. * u.mS))
    assert spec(braintools.init.Normal(0. * u.mS, 1. * u.mS)) != spec(braintools.init.Uniform(0. * u.mS, 1. * u.mS))


def test_label_separates_as_upstream_and_mode_is_none():
    post = upstream.LIF(4)
    a = bhp.merge_key(post, Expon.desc(4), CUBA.desc(), "E")
    assert a != bhp.merge_key(post, Expon.desc(4), CUBA.desc(), "I")
    assert a != bhp.merge_key(post, Expon.desc(4), CUBA.desc())
    assert a == bhp.merge_key(post, Expon.desc(in_size=4), CUBA.desc(scale=u.volt), "E")
    assert a.mode is None
    assert a != bhp.merge_key(upstream.LIF(4), Expon.desc(4), CUBA.desc(), "E")  # another post


def test_key_text_shows_the_values_as_written():
    post = upstream.LIF(40)
    key = bhp.merge_key(post, Expon.desc(40, tau=5. * u.ms), COBA.desc(E=-80 * u.mV), "I")
    assert key.short() == "Expon(in_size=40, tau=5.0 ms) -> COBA(E=-80 mV), label='I'".replace("label", "out_label")
    arr = bhp.describe(Expon.desc(3, tau=np.array([1., 2., 3.]) * u.ms)).short()
    assert arr.startswith("Expon(in_size=3, tau=array(shape=(3,), dtype=float64, sha256=") and arr.endswith(") ms)")


def test_stable_digest_is_value_based_and_none_for_identity_parts():
    from brainpy_halfproj._merge_key import stable_digest

    post, other = upstream.LIF(4), upstream.LIF(4)
    a = stable_digest(bhp.merge_key(post, Expon.desc(4, tau=5 * u.ms), CUBA.desc()))
    assert a == stable_digest(bhp.merge_key(other, Expon.desc(in_size=4, tau=0.005 * u.second), CUBA.desc()))
    assert a != stable_digest(bhp.merge_key(post, Expon.desc(4, tau=6 * u.ms), CUBA.desc()))
    assert len(a) == 12
    w = brainstate.ParamState(jnp.ones(4))
    assert stable_digest(bhp.merge_key(post, Expon.desc(4, tau=w), CUBA.desc())) is None


def test_stable_digest_is_the_same_in_another_process():
    import subprocess
    import sys

    code = ("import brainunit as u, brainpy.state as s, brainpy_halfproj as b\n"
            "from brainpy_halfproj._merge_key import stable_digest\n"
            "print(stable_digest(b.merge_key(s.LIF(4), s.Expon.desc(4, tau=5 * u.ms), s.COBA.desc(E=0. * u.mV))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    from brainpy_halfproj._merge_key import stable_digest

    here = stable_digest(bhp.merge_key(upstream.LIF(4), Expon.desc(4, tau=5 * u.ms), COBA.desc(E=0. * u.mV)))
    assert out.stdout.strip() == here


def test_bound_arguments_are_the_raw_values_with_defaults():
    from brainpy_halfproj._merge_key import bound_arguments

    raw = bound_arguments(Expon.desc(4, tau=5 * u.ms))
    assert list(raw) == [p for p in inspect.signature(Expon.__init__).parameters if p != "self"]
    assert raw["in_size"] == 4 and raw["name"] is None and u.math.allclose(raw["tau"], 5 * u.ms)
