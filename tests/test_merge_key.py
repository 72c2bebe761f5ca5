"""The merge key as a value: its properties (hypothesis) and its readable text."""
from __future__ import annotations

import inspect

import brainpy as bp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import brainpy_halfproj as bhp


class MyExpon(bp.dyn.Expon):
    """A user subclass: a different class, so never the same key as Expon."""


# --------------------------------------------------------------------------- strategies
scalars = st.sampled_from([5, 5.0, np.float64(5.0), np.float32(5.0), 6, 6.5, np.int64(6), True, 1, 1.0])
arrays = st.builds(
    lambda values, dtype: np.array(values, dtype=dtype),
    st.lists(st.sampled_from([1.0, 2.0, 5.0]), min_size=1, max_size=4),
    st.sampled_from([np.float64, np.float32]),
)
taus = st.one_of(scalars, arrays)
methods = st.sampled_from([None, "exp_auto", "euler"])  # None: not given (the default, 'exp_auto')


@st.composite
def descriptors(draw):
    """``(desc, cls, args, kwargs)``: an Expon-like descriptor written in one of many ways."""
    cls = draw(st.sampled_from([bp.dyn.Expon, MyExpon]))
    size, tau, method = draw(st.sampled_from([4, 5])), draw(taus), draw(methods)
    positional = draw(st.booleans())
    args = (size,) if positional else ()
    kwargs = {} if positional else {"size": size}
    kwargs["tau"] = tau
    if method is not None:
        kwargs["method"] = method
    if draw(st.booleans()):
        kwargs = dict(reversed(list(kwargs.items())))
    return cls.desc(*args, **kwargs), cls, args, kwargs


def _same_value(a, b) -> bool:
    """The oracle's notion of "the same argument": arrays by dtype, shape and values; bools
    only equal bools; numbers by numeric value; anything else by ``==``."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and a.shape == b.shape and bool((a == b).all()))
    if isinstance(a, (bool, np.bool_)) or isinstance(b, (bool, np.bool_)):
        return isinstance(a, (bool, np.bool_)) and isinstance(b, (bool, np.bool_)) and bool(a) == bool(b)
    return bool(a == b)


def _oracle(a, b) -> bool:
    """Equal exactly when the same class gets the same arguments once bound to its signature."""
    (_, cls_a, args_a, kwargs_a), (_, cls_b, args_b, kwargs_b) = a, b
    if cls_a is not cls_b:
        return False
    sig = inspect.signature(cls_a.__init__)
    bound_a, bound_b = sig.bind(None, *args_a, **kwargs_a), sig.bind(None, *args_b, **kwargs_b)
    bound_a.apply_defaults()
    bound_b.apply_defaults()
    return all(_same_value(bound_a.arguments[n], bound_b.arguments[n]) for n in list(sig.parameters)[1:])


# --------------------------------------------------------------------------- properties
@given(descriptors())
def test_equality_is_reflexive_and_hash_consistent(d):
    a, b = bhp.describe(d[0]), bhp.describe(d[0])
    assert a == a and a == b and hash(a) == hash(b)


@given(descriptors(), descriptors())
def test_equality_agrees_with_the_bound_arguments_oracle_and_is_symmetric(x, y):
    a, b = bhp.describe(x[0]), bhp.describe(y[0])
    assert (a == b) is (b == a) is _oracle(x, y)
    if a == b:
        assert hash(a) == hash(b)


@given(descriptors(), descriptors())
def test_merge_keys_agree_with_their_descriptor_specs(x, y):
    post = bp.dyn.LifRef(5)
    out = bp.dyn.CUBA.desc()
    a, b = bhp.merge_key(post, x[0], out), bhp.merge_key(post, y[0], out)
    assert (a == b) is (b == a) is (bhp.describe(x[0]) == bhp.describe(y[0]))
    if a == b:
        assert hash(a) == hash(b)
        assert a.canonical_text() == b.canonical_text()  # what checkpoints match groups by


@settings(max_examples=50, deadline=None)
@given(data=st.data(), n=st.integers(1, 2500), delta=st.sampled_from([1e-9, -0.5, 1.0, 1e6]))
def test_any_single_changed_array_element_separates(data, n, delta):
    tau = np.full(n, 5.0)
    i = data.draw(st.integers(0, n - 1), label="index")
    changed = tau.copy()
    changed[i] += delta
    assert bhp.describe(bp.dyn.Expon.desc(n, tau=tau)) != bhp.describe(bp.dyn.Expon.desc(n, tau=changed))
    assert bhp.describe(bp.dyn.Expon.desc(n, tau=tau)) == bhp.describe(bp.dyn.Expon.desc(n, tau=tau.copy()))


# --------------------------------------------------------------------------- text
def test_short_text_leaves_out_arguments_at_their_defaults():
    spec = bhp.describe(bp.dyn.Expon.desc(40, tau=8., method="exp_auto"))  # both written-out defaults
    assert spec.at_default >= {"tau", "method", "sharding", "name", "mode"}
    assert "size" not in spec.at_default
    assert spec.short() == "Expon(size=40)"
    assert str(spec).startswith("Expon(size=40, ") and "tau=8.0" in str(spec) and "method='exp_auto'" in str(spec)


def test_at_default_is_not_part_of_the_identity():
    a = bhp.describe(bp.dyn.Expon.desc(40, tau=8.))
    b = bhp.describe(bp.dyn.Expon.desc(40))
    assert a == b and hash(a) == hash(b) and a.at_default == b.at_default


def test_key_text_full_and_short():
    post = bp.dyn.LifRef(40)
    key = bhp.merge_key(post, bp.dyn.Expon.desc(40, tau=5.), bp.dyn.COBA.desc(E=0.), out_label="E")
    assert key.short() == "Expon(size=40, tau=5.0) -> COBA(E=0.0), out_label='E'"
    assert str(key) == f"{key.syn} -> {key.out}, out_label='E'"
    assert str(key.out) == "COBA(E=0.0, sharding=None, name=None, scaling=None)"


def test_report_shows_the_keys_short_text(post, coba):
    proj = bhp.HalfProjAlignPostMg(bp.dnn.Linear(4, 40), bp.dyn.Expon.desc(40, tau=5.), coba, post,
                                   out_label="exc")
    (info,) = bhp.merge_report(post).groups
    assert info.key_text == proj.merge_group.key.short() == "Expon(size=40, tau=5.0) -> COBA(E=0.0), out_label='exc'"


def test_an_unkeyable_default_does_not_hide_the_argument():
    class Opaque:
        pass

    opaque = Opaque()

    class WithOpaqueDefault(bp.dyn.Expon):
        def __init__(self, size, tau=8., extra=opaque):
            super().__init__(size, tau=tau)

    spec = bhp.describe(WithOpaqueDefault.desc(4, extra=(1, 2)))
    assert spec.short() == "WithOpaqueDefault(size=4, extra=(1, 2))"


def _proj(post, tau):
    return bhp.HalfProjAlignPostMg(bp.dnn.Linear(3, post.num), bp.dyn.Expon.desc(post.num, tau=tau),
                                   bp.dyn.CUBA.desc(), post)


class TwoPosts(bp.DynSysGroup):
    def __init__(self):
        super().__init__()
        self.a, self.b = bp.dyn.LifRef(10), bp.dyn.LifRef(20)
        self.p1, self.p2, self.p3 = _proj(self.a, 5.), _proj(self.b, 5.), _proj(self.a, 6.)


def test_report_groups_by_post_in_model_order():
    net = TwoPosts()
    report = bhp.merge_report(net)
    assert report.posts == [net.a, net.b]
    assert [(post, [g.projections for g in groups]) for post, groups in report.by_post()] == [
        (net.a, [(net.p1,), (net.p3,)]), (net.b, [(net.p2,)])]


def test_a_size_is_its_shape_on_every_line():
    # bp.dyn (and brainpy.state) turn a size N into the shape (N,): N, (N,) and [N] build the same synapse.
    one = bhp.describe(bp.dyn.Expon.desc(40, tau=5.))
    assert one == bhp.describe(bp.dyn.Expon.desc((40,), tau=5.)) == bhp.describe(bp.dyn.Expon.desc(size=[40], tau=5.))
    assert one.short() == bhp.describe(bp.dyn.Expon.desc((40,), tau=5.)).short() == "Expon(size=40, tau=5.0)"
    assert bhp.describe(bp.dyn.Expon.desc((4, 10), tau=5.)) != one
    assert bhp.describe(bp.dyn.Expon.desc((4, 10), tau=5.)).short() == "Expon(size=(4, 10), tau=5.0)"
