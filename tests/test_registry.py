"""Properties of the merging registry: equal keys share, any difference separates."""
import itertools

import brainpy as bp
import brainpy.math as bm
import numpy as np
import pytest

import brainpy_halfproj as bhp

N = 40


def proj(post, syn, out, out_label=None, n_in=8, mode=None):
    return bhp.HalfProjAlignPostMg(bp.dnn.Linear(n_in, N), syn, out, post, out_label=out_label, mode=mode)


def shares(post, syn_a, syn_b, out_a=None, out_b=None):
    out_a = out_a or bp.dyn.COBA.desc(E=0.)
    out_b = out_b or bp.dyn.COBA.desc(E=0.)
    return proj(post, syn_a, out_a).syn is proj(post, syn_b, out_b).syn


@pytest.mark.parametrize("a, b", [
    (bp.dyn.Expon.desc(N, tau=5.), bp.dyn.Expon.desc(size=N, tau=5.)),            # positional vs keyword
    (bp.dyn.Expon.desc(N, tau=5), bp.dyn.Expon.desc(N, tau=5.)),                   # int vs float
    (bp.dyn.Expon.desc(N, tau=8.), bp.dyn.Expon.desc(N)),                          # default written out
    (bp.dyn.Expon.desc(N, tau=5., method='exp_auto'), bp.dyn.Expon.desc(tau=5., size=N)),  # order, defaults
    (bp.dyn.Expon.desc(N, tau=np.float64(5.)), bp.dyn.Expon.desc(N, tau=5.)),     # numpy scalar
    (bp.dyn.Expon.desc(N, tau=np.full(N, 5.)), bp.dyn.Expon.desc(N, tau=np.full(N, 5.))),  # equal arrays
    (bp.dyn.Expon.desc(N, tau=bm.ones(N) * 5.), bp.dyn.Expon.desc(N, tau=bm.ones(N) * 5.)),  # equal bm.Arrays
], ids=["positional", "int-float", "default", "order", "np-scalar", "np-array", "bm-array"])
def test_equivalent_descriptors_share_one_state(post, a, b):
    assert shares(post, a, b)


def test_long_arrays_differing_in_the_middle_do_not_merge(post):
    """Upstream merges these: numpy abbreviates both arrays to the same string."""
    big = bp.dyn.LifRef(2000)
    tau_a = np.full(2000, 5.)
    tau_b = tau_a.copy()
    tau_b[1000] = 6.
    assert str(tau_a) == str(tau_b)
    a = bhp.HalfProjAlignPostMg(bp.dnn.Linear(8, 2000), bp.dyn.Expon.desc(2000, tau=tau_a), bp.dyn.CUBA.desc(), big)
    b = bhp.HalfProjAlignPostMg(bp.dnn.Linear(8, 2000), bp.dyn.Expon.desc(2000, tau=tau_b), bp.dyn.CUBA.desc(), big)
    assert a.syn is not b.syn
    assert len(bhp.merge_report(big).groups) == 2


def test_upstream_merges_long_arrays_that_differ():
    """Upstream bug (README: differences), the same on every line: bp.dyn keys merging on str() of the
    descriptor arguments, numpy abbreviates long arrays in str(), so two different tau arrays merge and
    the second projection runs with the first one's tau. If upstream fixes it, this test fails: then
    update the README's table and this test."""
    big = bp.dyn.LifRef(2000)
    tau_a = np.full(2000, 5.)
    tau_b = tau_a.copy()
    tau_b[1000] = 6.
    a = bp.dyn.HalfProjAlignPostMg(bp.dnn.Linear(8, 2000), bp.dyn.Expon.desc(2000, tau=tau_a), bp.dyn.CUBA.desc(), big)
    b = bp.dyn.HalfProjAlignPostMg(bp.dnn.Linear(8, 2000), bp.dyn.Expon.desc(2000, tau=tau_b), bp.dyn.CUBA.desc(), big)
    assert a.syn is b.syn
    assert float(np.asarray(b.syn.tau)[1000]) == 5.0  # b asked for 6.0 there


@pytest.mark.parametrize("a, b", [
    (bp.dyn.Expon.desc(N, tau=5.), bp.dyn.Expon.desc(N, tau=5.0000001)),
    (bp.dyn.Expon.desc(N, tau=5.), type("MyExpon", (bp.dyn.Expon,), {}).desc(N, tau=5.)),
    (bp.dyn.Expon.desc(N, tau=5.), bp.dyn.Expon.desc(N, tau=5., method='euler')),
    (bp.dyn.Expon.desc(N, tau=np.full(N, 5.)), bp.dyn.Expon.desc(N, tau=np.full(N, 5., dtype=np.float32))),
    (bp.dyn.Expon.desc(N, tau=np.full(N, 5.)), bp.dyn.Expon.desc(N, tau=5.)),
    (bp.dyn.Expon.desc(N, tau=1.), bp.dyn.Expon.desc(N, tau=True)),
], ids=["value", "class", "method", "dtype", "array-vs-scalar", "bool-vs-int"])
def test_any_differing_syn_value_separates(post, a, b):
    assert not shares(post, a, b)


def test_differing_out_separates(post):
    syn = bp.dyn.Expon.desc(N, tau=5.)
    assert not shares(post, syn, syn, bp.dyn.COBA.desc(E=0.), bp.dyn.COBA.desc(E=-80.))
    assert not shares(post, syn, syn, bp.dyn.COBA.desc(E=0.), bp.dyn.CUBA.desc())


def test_differing_label_separates(post, expon, coba):
    assert proj(post, expon, coba, out_label="a").syn is not proj(post, expon, coba, out_label="b").syn
    assert proj(post, expon, coba, out_label="a").syn is proj(post, expon, coba, out_label="a").syn


def test_differing_post_separates(expon, coba):
    a, b = bp.dyn.LifRef(N), bp.dyn.LifRef(N)
    assert proj(a, expon, coba).syn is not proj(b, expon, coba).syn


def test_variables_compare_by_identity(post, coba):
    tau = bm.TrainVar(bm.ones(N) * 5.)
    other = bm.TrainVar(bm.ones(N) * 5.)
    assert shares(post, bp.dyn.Expon.desc(N, tau=tau), bp.dyn.Expon.desc(N, tau=tau))
    assert not shares(post, bp.dyn.Expon.desc(N, tau=tau), bp.dyn.Expon.desc(N, tau=other))


def test_initializers_compare_by_type_and_parameters():
    a = bhp.describe(bp.dyn.Expon.desc(N, tau=bp.init.Constant(5.)))
    assert a == bhp.describe(bp.dyn.Expon.desc(N, tau=bp.init.Constant(5.)))
    assert a != bhp.describe(bp.dyn.Expon.desc(N, tau=bp.init.Constant(6.)))
    assert a != bhp.describe(bp.dyn.Expon.desc(N, tau=bp.init.ZeroInit()))


def test_functions_compare_by_identity():
    def f(shape):
        return bm.ones(shape) * 5.

    def g(shape):
        return bm.ones(shape) * 5.

    assert bhp.describe(bp.dyn.Expon.desc(N, tau=f)) == bhp.describe(bp.dyn.Expon.desc(N, tau=f))
    assert bhp.describe(bp.dyn.Expon.desc(N, tau=f)) != bhp.describe(bp.dyn.Expon.desc(N, tau=g))


@pytest.mark.slow
@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_construction_order_does_not_matter(order):
    descs = [bp.dyn.Expon.desc(N, tau=5.), bp.dyn.Expon.desc(size=N, tau=5), bp.dyn.Expon.desc(N, tau=10.)]
    post = bp.dyn.LifRef(N)
    projs = {i: proj(post, descs[i], bp.dyn.CUBA.desc()) for i in order}
    assert projs[0].syn is projs[1].syn
    assert projs[0].syn is not projs[2].syn
    assert sorted(len(g.projections) for g in bhp.merge_report(post).groups) == [1, 2]


def test_unkeyable_value_gets_a_private_group_and_a_reason(post, coba):
    class Config:  # an arbitrary user object: no canonical form
        pass

    class TaggedExpon(bp.dyn.Expon):
        def __init__(self, size, tau=8., config=None):
            super().__init__(size, tau=tau)
            self.config = config

    desc = TaggedExpon.desc(N, tau=5., config=Config())
    a, b = proj(post, desc, coba), proj(post, desc, coba)
    assert a.syn is not b.syn
    assert a.merge_group.key is None
    assert "has no canonical form" in a.merge_group.unmerged_reason
    assert "not merged: " in str(bhp.merge_report(post))


def test_unkeyable_error_is_raised_by_merge_key(post, coba):
    with pytest.raises(bhp.UnkeyableError, match=r"syn\.tau has type .*Opaque, which has no canonical form"):
        bhp.merge_key(post, bp.dyn.Expon.desc(N, tau=type("Opaque", (), {})()), coba)


def test_mode_is_part_of_the_key(expon, coba):
    post = bp.dyn.LifRef(N)
    a = bhp.merge_key(post, expon, coba, mode=bm.BatchingMode(2))
    assert a == bhp.merge_key(post, expon, coba, mode=bm.BatchingMode(2))
    assert a != bhp.merge_key(post, expon, coba, mode=bm.BatchingMode(3))
    assert a != bhp.merge_key(post, expon, coba)


def test_storage_names_are_stable_and_readable(post, coba):
    a = proj(post, bp.dyn.Expon.desc(N, tau=5.), coba)
    b = proj(post, bp.dyn.Expon.desc(N, tau=6.), bp.dyn.CUBA.desc())
    names = (a.merge_group.storage_name, b.merge_group.storage_name)
    assert names == ("halfproj_Expon_COBA_0", "halfproj_Expon_CUBA_1")
    assert post.get_bef_update("halfproj_Expon_COBA_0") is a.merge_group


def test_report_counts_saved_elements_and_renders(post, expon, coba):
    projs = [proj(post, expon, coba, n_in=n) for n in (4, 5, 6)]
    report = bhp.merge_report(post)
    (group,) = report.groups
    assert group.projections == tuple(projs)
    assert (group.state_size, group.saved_elements, report.saved_elements) == (N, 2 * N, 2 * N)
    assert group.key_text == "Expon(size=40, tau=5.0) -> COBA(E=0.0)"
    text = str(report)
    assert "3 merging projection(s) onto 1 post group(s) share 1 synapse state(s)" in text
    assert f"shared by 3: {projs[0].name}, {projs[1].name}, {projs[2].name}" in text
    html = report._repr_html_()
    assert html.startswith("<p>") and "<table>" in html and "Expon(size=40, tau=5.0)" in html


def test_report_of_a_whole_model_lists_every_post():
    net = bhp.EINet(200)
    report = bhp.merge_report(net)
    assert [g.post for g in report.groups] == [net.N, net.N]
    assert [g.projections for g in report.groups] == [(net.E,), (net.I,)]


def test_report_rejects_a_non_model():
    with pytest.raises(TypeError, match="merge_report: `model_or_post` must be a brainpy DynamicalSystem"):
        bhp.merge_report("net")


def test_importing_the_plugin_leaves_brainpy_unchanged():
    import importlib

    before = {n: getattr(bp.dyn, n) for n in dir(bp.dyn) if not n.startswith("_")}
    importlib.reload(importlib.import_module("brainpy_halfproj.dyn"))
    after = {n: getattr(bp.dyn, n) for n in dir(bp.dyn) if not n.startswith("_")}
    assert before == after
    assert bp.dyn.HalfProjAlignPostMg is not bhp.HalfProjAlignPostMg
    assert bp.dyn.HalfProjAlignPostMg.__module__.startswith("brainpy")
