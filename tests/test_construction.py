"""A construction that fails leaves the post group as it was: every argument is checked first."""
import brainpy as bp
import pytest

import brainpy_halfproj as bhp

N, N_IN = 40, 30


def _comm(n_out=N):
    return bp.dnn.EventJitFPHomoLinear(N_IN, n_out, prob=0.2, weight=0.6, seed=1)


#: (argument error, the arguments that differ from a valid call, the error, its message)
MERGING = {
    "fused-int": (dict(fused=1), TypeError, r"`fused` must be True or False, got 1\."),
    "fused-str": (dict(fused="yes"), TypeError, r"`fused` must be True or False, got 'yes'\."),
    "syn-instance": (dict(syn=bp.dyn.Expon(N, tau=5.)), TypeError, r"`syn` must be a descriptor, but got a Expon"),
    "out-instance": (dict(out=bp.dyn.COBA(E=0.)), TypeError, r"`out` must be a descriptor, but got a COBA"),
    "syn-no-add-current": (dict(syn=bp.dyn.COBA.desc(E=0.)), TypeError, r"`syn` describes COBA, which has no "
                                                                          r"add_current\(\) method"),
    "out-no-bind-cond": (dict(out=bp.dyn.Expon.desc(N)), TypeError, r"`out` describes Expon, which has no "
                                                                    r"bind_cond\(\) method"),
    "syn-size": (dict(syn=bp.dyn.Expon.desc(N + 1, tau=5.)), ValueError, r"the size of `syn` is \(41,\), but "
                                                                         r"`post` has size \(40,\)"),
    "comm-size": (dict(comm=_comm(N + 2)), ValueError, r"the size of `comm` is \(42,\), but `post` has size"),
    "syn-arguments": (dict(syn=bp.dyn.Expon.desc(N, tua=5.)), TypeError, r"^syn=Expon\.desc\(\.\.\.\) does not "
                                                                          r"fit the signature of Expon"),
    "comm-kind": (dict(comm="EventJitFPHomoLinear"), TypeError, r"`comm` must be a brainpy DynamicalSystem"),
}


def _snapshot(post, pre):
    """Everything a projection registers: post's before-updates and inputs, the merge report, pre's after-updates."""
    call = bhp._fused.fused_call_of(post)
    return (list(post.before_updates.keys()), list(post.current_inputs.keys()), str(bhp.merge_report(post)),
            None if call is None else (call.shape, len(call.buffers), call.connectivity.nnz),
            list(pre.after_updates.keys()))


def _who(cls_name, message):
    """The message regex, after the projection's name unless it is anchored (``^``: raised by ``describe``)."""
    return message if message.startswith("^") else fr"{cls_name} '\w+': {message}"


@pytest.mark.parametrize("error", list(MERGING))
@pytest.mark.parametrize("cls_name", ["HalfProjAlignPostMg", "FullProjAlignPostMg"])
@pytest.mark.parametrize("first", [None, False, True], ids=["alone", "existing-group", "existing-fused-call"])
def test_a_failed_merging_construction_leaves_post_untouched(cls_name, error, first):
    pre, post = bp.dyn.LifRef(N_IN), bp.dyn.LifRef(N)
    cls = getattr(bhp, cls_name)
    head = (pre, 1.) if cls_name.startswith("Full") else ()

    def build(**changes):
        kwargs = dict(comm=_comm(), syn=bp.dyn.Expon.desc(N, tau=5.), out=bp.dyn.COBA.desc(E=0.), post=post,
                      fused=bool(first))
        kwargs.update(changes)
        return cls(*head, **kwargs)

    existing = None if first is None else build()  # a group (and fused call) the failing projection would join
    before = _snapshot(post, pre)
    changes, kind, message = MERGING[error]
    with pytest.raises(kind, match=_who(cls_name, message)):
        build(**changes)
    assert _snapshot(post, pre) == before
    if existing is not None:
        assert existing.merge_group.projections == [existing]
        assert len(existing.merge_group._members) == 1


#: Errors of the non-merging classes (instances instead of descriptors).
UNMERGED = {
    "syn-descriptor": (dict(syn=bp.dyn.Expon.desc(N, tau=5.)), TypeError, r"`syn` must be an instance"),
    "out-no-bind-cond": (dict(out=bp.dyn.Expon(N, tau=5.)), TypeError, r"`out` must be a DynamicalSystem with a "
                                                                       r"bind_cond\(\) method"),
    "syn-size": (dict(syn=bp.dyn.Expon(N + 1, tau=5.)), ValueError, r"the size of `syn` is \(41,\)"),
    "comm-size": (dict(comm=_comm(N + 2)), ValueError, r"the size of `comm` is \(42,\)"),
}


@pytest.mark.parametrize("error", list(UNMERGED))
@pytest.mark.parametrize("cls_name", ["HalfProjAlignPost", "FullProjAlignPost"])
def test_a_failed_construction_leaves_post_untouched(cls_name, error):
    pre, post = bp.dyn.LifRef(N_IN), bp.dyn.LifRef(N)
    cls = getattr(bhp, cls_name)
    head = (pre, 1.) if cls_name.startswith("Full") else ()
    before = _snapshot(post, pre)
    changes, kind, message = UNMERGED[error]
    kwargs = dict(comm=_comm(), syn=bp.dyn.Expon(N, tau=5.), out=bp.dyn.COBA(E=0.), post=post)
    kwargs.update(changes)
    with pytest.raises(kind, match=_who(cls_name, message)):
        cls(*head, **kwargs)
    assert _snapshot(post, pre) == before
