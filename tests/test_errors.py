"""Every construction and call error: type, and a message that names the fix."""
import brainpy as bp
import brainpy.math as bm
import numpy as np
import pytest

import brainpy_halfproj as bhp

from ._nets import CLASSES, MERGING

N = 40


def make(cls_name, comm=None, syn=None, out=None, post=None, pre=None):
    """Build ``cls_name`` with valid defaults, replacing the given arguments."""
    post = bp.dyn.LifRef(N) if post is None else post
    merged = cls_name in MERGING
    if syn is None:
        syn = bp.dyn.Expon.desc(N, tau=5.) if merged else bp.dyn.Expon(N, tau=5.)
    if out is None:
        out = bp.dyn.COBA.desc(E=0.) if merged else bp.dyn.COBA(E=0.)
    comm = bp.dnn.EventJitFPHomoLinear(20, N, prob=0.1, weight=0.6) if comm is None else comm
    cls = getattr(bhp, cls_name)
    if cls_name.startswith("Full"):
        pre = bp.dyn.LifRef(20) if pre is None else pre
        return cls(pre, 1., comm, syn, out, post)
    return cls(comm, syn, out, post)


def test_valid_arguments_build(cls_name):
    assert make(cls_name).post.num == N


def test_comm_must_be_a_dynamical_system(cls_name):
    with pytest.raises(TypeError, match=r"`comm` must be a brainpy DynamicalSystem such as "
                                        r"bp\.dnn\.EventJitFPHomoLinear.*but got a function"):
        make(cls_name, comm=lambda x: x)


def test_post_must_be_a_dynamical_system(cls_name):
    with pytest.raises(TypeError, match=r"`post` must be a brainpy DynamicalSystem such as bp\.dyn\.LifRef\(4000\), "
                                        r"but got int 40"):
        make(cls_name, post=40)


@pytest.mark.parametrize("cls_name", ["FullProjAlignPostMg", "FullProjAlignPost"])
def test_pre_must_be_a_dynamical_system(cls_name):
    with pytest.raises(TypeError, match=r"`pre` must be a brainpy DynamicalSystem .* but got a ndarray"):
        make(cls_name, pre=bm.zeros(20).value.__array__())


@pytest.mark.parametrize("cls_name", sorted(MERGING))
def test_merging_syn_must_be_a_descriptor_not_an_instance(cls_name):
    with pytest.raises(TypeError, match=r"`syn` must be a descriptor, but got a Expon; use Expon\.desc\(\.\.\.\) "
                                        r"with the same arguments"):
        make(cls_name, syn=bp.dyn.Expon(N, tau=5.))


@pytest.mark.parametrize("cls_name", sorted(MERGING))
def test_merging_out_must_be_a_descriptor(cls_name):
    with pytest.raises(TypeError, match=r"`out` must be a descriptor, but got a COBA; use COBA\.desc\(\.\.\.\)"):
        make(cls_name, out=bp.dyn.COBA(E=0.))


@pytest.mark.parametrize("cls_name", sorted(MERGING))
def test_merging_syn_must_describe_an_align_post_synapse(cls_name):
    with pytest.raises(TypeError, match=r"`syn` describes COBA, which has no add_current\(\) method"):
        make(cls_name, syn=bp.dyn.COBA.desc(E=0.))


@pytest.mark.parametrize("cls_name", sorted(MERGING))
def test_merging_out_must_describe_an_output(cls_name):
    with pytest.raises(TypeError, match=r"`out` describes Expon, which has no bind_cond\(\) method"):
        make(cls_name, out=bp.dyn.Expon.desc(N))


@pytest.mark.parametrize("cls_name", ["HalfProjAlignPost", "FullProjAlignPost"])
def test_unmerged_syn_must_be_an_instance(cls_name):
    with pytest.raises(TypeError, match=r"`syn` must be an instance, but got a descriptor Expon\.desc\(\.\.\.\); "
                                        rf"build it first .* or use the merging variant {cls_name}Mg"):
        make(cls_name, syn=bp.dyn.Expon.desc(N))


@pytest.mark.parametrize("cls_name", ["HalfProjAlignPost", "FullProjAlignPost"])
def test_unmerged_out_must_have_bind_cond(cls_name):
    with pytest.raises(TypeError, match=r"`out` must be a DynamicalSystem with a bind_cond\(\) method"):
        make(cls_name, out=bp.dyn.Expon(N))


def test_syn_size_must_match_post(cls_name):
    merged = cls_name in MERGING
    syn = bp.dyn.Expon.desc(30, tau=5.) if merged else bp.dyn.Expon(30, tau=5.)
    with pytest.raises(ValueError, match=rf"{cls_name} '.*': the size of `syn` is \(30,\), but `post` has size "
                                         r"\(40,\); set size=40 for Expon"):
        make(cls_name, syn=syn)


def test_failed_merging_construction_leaves_post_untouched():
    post = bp.dyn.LifRef(N)
    with pytest.raises(ValueError):
        bhp.HalfProjAlignPostMg(bp.dnn.Linear(4, N), bp.dyn.Expon.desc(30), bp.dyn.CUBA.desc(), post)
    assert len(post.before_updates) == 0 and len(post.cur_inputs) == 0


def test_comm_output_size_must_match_post(cls_name):
    with pytest.raises(ValueError, match=r"the size of `comm` is \(50,\), but `post` has size \(40,\); make the comm "
                                         r"layer's output size equal to the number of post-synaptic neurons"):
        make(cls_name, comm=bp.dnn.EventJitFPHomoLinear(20, 50, prob=0.1, weight=0.6))


@pytest.mark.parametrize("cls_name", ["FullProjAlignPostMg", "FullProjAlignPost"])
def test_comm_input_size_must_match_pre(cls_name):
    with pytest.raises(ValueError, match=r"the size of `comm` is \(30,\), but `pre` \(input side\) has size \(20,\)"):
        make(cls_name, comm=bp.dnn.EventJitFPHomoLinear(30, N, prob=0.1, weight=0.6))


@pytest.mark.slow
def test_csr_comm_sizes_are_checked_too():
    conn = bp.conn.FixedProb(0.1, seed=1)(20, 50)
    with pytest.raises(ValueError, match=r"the size of `comm` is \(50,\), but `post` has size \(40,\)"):
        make("HalfProjAlignPostMg", comm=bp.dnn.EventCSRLinear(conn, weight=0.6))


@pytest.mark.parametrize("cls_name", ["HalfProjAlignPostMg", "HalfProjAlignPost"])
@pytest.mark.parametrize("jit", [False, True])
def test_spike_input_of_the_wrong_size(cls_name, jit):
    proj = make(cls_name)
    call = bm.jit(proj) if jit else proj
    with pytest.raises(ValueError, match=rf"{cls_name} '{proj.name}': the spike input has shape \(30,\), but `comm` "
                                         r"expects 20 presynaptic neurons"):
        call(bm.zeros(30, dtype=bool))


def test_descriptor_arguments_must_fit_the_class(post):
    with pytest.raises(TypeError, match=r"syn=Expon\.desc\(\.\.\.\) does not fit the signature of Expon: .*tua"):
        bhp.HalfProjAlignPostMg(bp.dnn.Linear(4, N), bp.dyn.Expon.desc(N, tua=5.), bp.dyn.CUBA.desc(), post)


@pytest.mark.parametrize("cls_name", CLASSES)
def test_sizes_given_as_numpy_integers_are_checked(cls_name):
    with pytest.raises(ValueError, match=r"the size of `comm` is \(50,\), but `post` has size \(40,\)"):
        make(cls_name, comm=bp.dnn.EventJitFPHomoLinear(np.int64(20), np.int64(50), prob=0.1, weight=0.6))


@pytest.mark.parametrize("cls_name", ["FullProjAlignPostMg", "FullProjAlignPost"])
def test_input_sizes_given_as_numpy_integers_are_checked(cls_name):
    with pytest.raises(ValueError, match=r"the size of `comm` is \(30,\), but `pre` \(input side\) has size \(20,\)"):
        make(cls_name, comm=bp.dnn.EventJitFPHomoLinear(np.int64(30), np.int64(N), prob=0.1, weight=0.6))


class MyHalf(bhp.HalfProjAlignPost):
    """A user subclass: the suggestion must name the plugin's merging class, not 'MyHalfMg'."""


class MyFull(bhp.FullProjAlignPost):
    pass


@pytest.mark.parametrize("cls, suggested", [(MyHalf, "HalfProjAlignPostMg"), (MyFull, "FullProjAlignPostMg")])
def test_subclasses_are_pointed_to_the_plugins_merging_class(cls, suggested):
    comm = bp.dnn.EventJitFPHomoLinear(20, N, prob=0.1, weight=0.6)
    pre = (bp.dyn.LifRef(20), 1.) if cls is MyFull else ()
    with pytest.raises(TypeError, match=rf"{cls.__name__} '.*': `syn` must be an instance, .* or use the merging "
                                        rf"variant {suggested}, which takes descriptors\."):
        cls(*pre, comm, bp.dyn.Expon.desc(N), bp.dyn.COBA(E=0.), bp.dyn.LifRef(N))
