"""Construction errors of the brainpy.state projections: argument, expected, actual, fix."""
from __future__ import annotations

import pytest

from brainpy_halfproj._compat import BRAINPY_VERSION

if BRAINPY_VERSION < (2, 9):
    pytest.skip("the brainpy.state front needs brainpy >= 2.9 (Python >= 3.12)", allow_module_level=True)

import brainpy as bp  # noqa: E402
import brainpy.state as stock  # noqa: E402
import brainstate  # noqa: E402
import brainunit as u  # noqa: E402

import brainpy_halfproj.state as bst  # noqa: E402

WHO = r"AlignPostProj 'AlignPostProj\d+': "


def _make(post=None, **kw):
    post = post if post is not None else bst.LIF(20)
    args = dict(comm=brainstate.nn.Linear(10, 20), syn=bst.Expon.desc(20, tau=5. * u.ms), out=bst.CUBA.desc(),
                post=post)
    args.update(kw)
    modules = args.pop("modules", ())
    return bst.AlignPostProj(*modules, **args)


TYPE_ERRORS = {
    "comm": (dict(comm=3), r"`comm` must be a callable module such as brainstate\.nn\.EventFixedProb\(3200, 4000, "
                           r"conn_num=0\.02, conn_weight=0\.6 \* u\.nS\), but got int 3\."),
    "module": (dict(modules=(5,)), r"positional argument 0 \(a module applied before comm\) must be callable .* "
                                   r"but got int 5; pass the spike source"),
    "syn class": (dict(syn=bst.AMPA.desc(20)), r"`syn` describes AMPA, which cannot take projection input \(it is "
                                               r"not an AlignPost synapse\); use brainpy\.state\.Expon\.desc"),
    "out class": (dict(out=bst.Expon.desc(20)), r"`out` describes Expon, which is not a synaptic output; use "
                                                r"brainpy\.state\.COBA\.desc"),
    "out instance": (dict(out=bst.COBA(E=0. * u.mV)), r"`syn` is a descriptor but `out` is a COBA; give both as "
                                                      r"descriptors \(merging: COBA\.desc\(\.\.\.\) with the same "
                                                      r"arguments\) or both as instances \(no merging\)\."),
    "syn instance": (dict(syn=bst.Expon(20)), r"`out` is a descriptor but `syn` is a Expon; give both"),
    "syn kind": (dict(syn="x", out=bst.CUBA()), r"`syn` must be a synapse descriptor such as brainpy\.state\.Expon"
                                                r"\.desc\(4000, tau=5\. \* u\.ms\) .* but got str 'x'\."),
    "out kind": (dict(syn=bst.Expon(20), out=1.), r"`out` must be an output descriptor such as .* but got float 1\.0"),
    "post": (dict(post=bp.dyn.LifRef(20)),
             r"`post` must be a brainpy\.state neuron group \(a brainpy\.state\.Dynamics such as "
             r"brainpy\.state\.LIF\(4000\)\), but got a LifRef \(a bp\.dyn group: use brainpy_halfproj\.dyn's "
             r"projections for it\)\."),
    "label": (dict(label=3), r"`label` must be a string or None, but got int 3; use the name of the input group"),
    "merge": (dict(merge=1), r"`merge` must be True or False, but got int 1\."),
    "delay comm": (dict(comm=lambda x: x, delay=1. * u.ms), r"`delay` needs a `comm` that says its input size"),
}


@pytest.mark.parametrize("case", TYPE_ERRORS, ids=list(TYPE_ERRORS))
def test_wrong_kinds_raise_type_error_naming_the_argument(case):
    kwargs, message = TYPE_ERRORS[case]
    with pytest.raises(TypeError, match=WHO + message):
        _make(**kwargs)


VALUE_ERRORS = {
    "comm size": (dict(comm=brainstate.nn.Linear(10, 30)),
                  r"the size of `comm` is \(30,\), but `post` has size \(20,\); make the comm layer's output size "
                  r"equal to the number of post-synaptic neurons\."),
    "syn size": (dict(syn=bst.Expon.desc(30)),
                 r"the size of `syn` is \(30,\), but `post` has size \(20,\); set in_size=\(20,\) for Expon\."),
    "syn instance size": (dict(syn=bst.Expon(30), out=bst.CUBA()),
                          r"the size of `syn` is \(30,\), but `post` has size \(20,\); build Expon with "
                          r"in_size=\(20,\)\."),
    "delay unit": (dict(delay=1.5 * u.mV), r"`delay` must be a time, e.g\. 1\.5 \* u\.ms, but got 1\.5 mV "
                                           r"\(dimension m\^2 kg s\^-3 A\^-1\); give it in a unit of time\."),
}


@pytest.mark.parametrize("case", VALUE_ERRORS, ids=list(VALUE_ERRORS))
def test_wrong_values_raise_value_error_naming_the_argument(case):
    kwargs, message = VALUE_ERRORS[case]
    with pytest.raises(ValueError, match=WHO + message):
        _make(**kwargs)


def test_a_refused_projection_leaves_the_post_group_as_it_was():
    post = bst.LIF(20)
    _make(post)
    before = (dict(post.before_updates), dict(post.current_inputs))
    for kwargs in (dict(syn=bst.Expon.desc(30)), dict(comm=brainstate.nn.Linear(10, 30)), dict(label=3)):
        with pytest.raises((TypeError, ValueError)):
            _make(post, **kwargs)
    assert (dict(post.before_updates), dict(post.current_inputs)) == before


def test_stock_accepts_a_wrong_size_at_construction():
    post = stock.LIF(20)
    proj = stock.AlignPostProj(comm=brainstate.nn.Linear(10, 20), syn=stock.Expon.desc(30), out=stock.CUBA.desc(),
                               post=post)
    assert proj.syn.varshape == (30,)  # it fails later, inside the compiled step


def test_align_post_projection_checks_its_own_arguments():
    with pytest.raises(TypeError, match=r"^align_post_projection: `stp` must be a short-term plasticity module such as "
                                        r"brainpy\.state\.STD\(800\), or None, but got int 3\."):
        bst.align_post_projection(bst.LIF(10), comm=brainstate.nn.Linear(10, 20), syn=bst.Expon.desc(20),
                                  out=bst.CUBA.desc(), post=bst.LIF(20), stp=3)
    with pytest.raises(TypeError, match=r"positional argument 0 \(a spike generator\) must be callable"):
        bst.align_post_projection(3, comm=brainstate.nn.Linear(10, 20), syn=bst.Expon.desc(20),
                                  out=bst.CUBA.desc(), post=bst.LIF(20))
