"""``merge_report`` and the merge diagram on brainpy.state networks; the audit of stock networks."""
from __future__ import annotations

import pytest

from brainpy_halfproj._compat import BRAINPY_VERSION

if BRAINPY_VERSION < (2, 9):
    pytest.skip("the brainpy.state front needs brainpy >= 2.9 (Python >= 3.12)", allow_module_level=True)

import brainpy.state as stock  # noqa: E402
import brainpy.state.projection as upstream_projection  # noqa: E402
import brainstate  # noqa: E402
import brainunit as u  # noqa: E402
import numpy as np  # noqa: E402

import brainpy_halfproj as bhp  # noqa: E402
import brainpy_halfproj.state as bst  # noqa: E402
from brainpy_halfproj.plotting import plot_merge_diagram  # noqa: E402

from ._state_nets import EINet  # noqa: E402

N = 2000
TAU = np.full(N, 5.)
TAU_1 = TAU.copy()
TAU_1[1234] = 6.
E_0 = np.zeros(N)
E_1 = E_0.copy()
E_1[7] = -80.


class Pair(brainstate.nn.Module):
    """Post ``N`` with projections ``A``, ``B`` (and more) from ``(syn, out)`` descriptor makers."""

    def __init__(self, ns, *descs):
        super().__init__()
        self.N = ns.LIF(N)
        for name, (syn, out) in zip("ABCD", descs, strict=False):
            setattr(self, name, ns.AlignPostProj(comm=brainstate.nn.Linear(10, N), syn=syn(ns), out=out(ns),
                                                 post=self.N))


def expon(**kw):
    return lambda ns: ns.Expon.desc(N, **kw)


def cuba(ns):
    return ns.CUBA.desc()


def coba(*args, **kw):
    return lambda ns: ns.COBA.desc(*args, **kw)


# --------------------------------------------------------------------------- the plugin's networks
def test_report_of_a_plugin_network_text_html_and_diagram():
    net = EINet(bst, n=400)
    report = bhp.merge_report(net)
    assert [(report.name_of(g.post), [report.name_of(p) for p in g.projections], g.key_text, g.stock)
            for g in report.groups] == [
        ("N", ["E"], "Expon(in_size=400, tau=5.0 ms) -> COBA(E=0.0 mV)", False),
        ("N", ["I"], "Expon(in_size=400, tau=10.0 ms) -> COBA(E=-80.0 mV)", False)]
    assert report.findings == ()
    text = str(report)
    assert text.splitlines()[:2] == [
        "2 merging projection(s) onto 1 post group(s) share 2 synapse state(s): not initialised yet (sizes after "
        "brainstate.nn.init_all_states)",
        "post N (LIFRef, 400 neurons)"]
    assert f"[{net.E.merge_group.storage_name}] Expon(in_size=400, tau=5.0 ms)" in text
    html = report._repr_html_()
    assert "<table>" in html and "Expon(in_size=400, tau=10.0 ms) -&gt; COBA(E=-80.0 mV)" in html
    ax = plot_merge_diagram(net)
    assert ax.get_title() == "2 projections -> 2 synapse states -> 1 post group"


def test_state_sizes_after_init_and_elements_saved():
    net = Pair(bst, (expon(tau=5. * u.ms), cuba), (expon(tau=0.005 * u.second), cuba), (expon(tau=6. * u.ms), cuba))
    with brainstate.environ.context(dt=0.1 * u.ms):
        brainstate.nn.init_all_states(net)
    report = bhp.merge_report(net)
    assert [(len(g.projections), g.state_size, g.saved_elements) for g in report.groups] == [(2, N, N), (1, N, 0)]
    assert report.saved_elements == N
    assert str(report).splitlines()[0].endswith(f"{2 * N} state elements, {N} saved by merging")


def test_a_stock_projection_that_joins_a_plugin_group_is_flagged():
    net = Pair(bst, (expon(tau=5. * u.ms), cuba))
    net.S = stock.AlignPostProj(comm=brainstate.nn.Linear(10, N), syn=stock.Expon.desc(N, tau=5. * u.ms),
                                out=stock.CUBA.desc(), post=net.N)
    assert net.S.syn is net.A.syn  # upstream's lookup by string found the plugin's group
    (finding,) = bhp.merge_report(net).findings
    assert finding.kind == "stock member" and finding.projections == (net.S,)
    assert "S (stock brainpy.state) joined group" in finding.text


# --------------------------------------------------------------------------- stock networks, after the fact
def test_after_the_fact_missed_merges_are_found_and_merged_groups_are_unchecked():
    net = Pair(stock, (expon(tau=5. * u.ms), cuba), (expon(tau=0.005 * u.second), cuba),
               (expon(tau=TAU * u.ms), cuba), (expon(tau=TAU_1 * u.ms), cuba))
    report = bhp.merge_report(net)
    assert all(g.stock for g in report.groups) and len(report.groups) == 3
    kinds = {f.kind: f for f in report.findings}
    assert set(kinds) == {"missed merge", "unchecked"}
    missed = kinds["missed merge"]
    assert missed.projections == (net.A, net.B)
    assert missed.storage_names == (net.N.before_updates and tuple(list(net.N.before_updates)[:2]))
    unchecked = kinds["unchecked"]
    assert unchecked.projections == (net.C, net.D)
    assert "cannot be checked after the fact" in unchecked.text and "audit()" in unchecked.text
    assert "UNCHECKED: " in str(report) and "MISSED MERGE: " in str(report)


def test_after_the_fact_missed_merges_are_found_after_init_too():
    net = Pair(stock, (expon(tau=5. * u.ms), cuba), (expon(tau=0.005 * u.second), cuba))
    with brainstate.environ.context(dt=0.1 * u.ms):
        brainstate.nn.init_all_states(net)
    assert [f.kind for f in bhp.merge_report(net).findings] == ["missed merge"]


def test_after_the_fact_a_correct_stock_network_has_no_findings():
    report = bhp.merge_report(EINet(stock, n=400))
    assert report.findings == () and [len(g.projections) for g in report.groups] == [1, 1]
    assert report.groups[0].key_text.startswith("Expon(")  # from the built instance


def test_diagram_of_a_stock_network():
    net = Pair(stock, (expon(tau=5. * u.ms), cuba), (expon(tau=5. * u.ms), cuba))
    ax = plot_merge_diagram(net)
    assert ax.get_title() == "2 projections -> 1 synapse state -> 1 post group"
    texts = [t.get_text() for t in ax.texts]
    assert any("AlignPostProj (stock brainpy.state)" in t for t in texts)


# --------------------------------------------------------------------------- stock networks, audited
WRONG = {  # descriptors of A and B, the argument and the elements the audit must name
    "array": ((expon(tau=TAU * u.ms), cuba), (expon(tau=TAU_1 * u.ms), cuba), "syn.tau", (1234,)),
    "plain array": ((expon(tau=TAU), cuba), (expon(tau=TAU_1), cuba), "syn.tau", (1234,)),
    "8 digits": ((expon(tau=5. * u.ms), cuba), (expon(tau=5.0000001 * u.ms), cuba), "syn.tau", None),
    "COBA E positional": ((expon(), coba(E_0 * u.mV)), (expon(), coba(E_1 * u.mV)), "out.E", (7,)),
}


@pytest.mark.parametrize("case", WRONG, ids=list(WRONG))
def test_the_audit_names_the_argument_and_elements_of_a_wrong_merge(case):
    a, b, argument, elements = WRONG[case]
    with bst.audit() as audit:
        net = Pair(stock, a, b)
    assert net.A.syn is net.B.syn
    (finding,) = audit.report(net).findings
    assert (finding.kind, finding.argument, finding.elements) == ("wrong merge", argument, elements)
    assert finding.projections == (net.A, net.B)
    assert finding.text.startswith(f"B was merged into [{list(net.N.before_updates)[0]}] with A, but its {argument}")


def test_the_audit_says_the_values():
    with bst.audit() as audit:
        net = Pair(stock, *WRONG["8 digits"][:2])
    assert "5.0000001 ms instead of 5.0 ms" in audit.report(net).findings[0].text
    with bst.audit() as audit:
        net = Pair(stock, *WRONG["array"][:2])
    assert "1 of 2000 elements: [1234] 6.0 instead of 5.0 ms" in audit.report(net).findings[0].text


def test_the_audit_judges_missed_merges_by_the_descriptors_and_finds_nothing_in_a_correct_network():
    with bst.audit() as audit:
        net = Pair(stock, (expon(tau=5 * u.ms), coba(E=0 * u.mV)), (expon(tau=0.005 * u.second), coba(0. * u.mV)))
    report = audit.report(net)
    assert [f.kind for f in report.findings] == ["missed merge"]
    assert report.groups[0].key is not None and report.groups[0].key == report.groups[1].key
    with bst.audit() as audit:
        net = EINet(stock, n=400)
    assert audit.report(net).findings == ()
    assert [len(r.syn.args) for r in audit.records] == [1, 1]


def test_the_audit_restores_upstream_on_exit_on_error_and_when_nested():
    original = upstream_projection.align_post_add_bef_update
    with bst.audit() as outer:
        with bst.audit() as inner:
            Pair(stock, (expon(), cuba))
        assert upstream_projection.align_post_add_bef_update is not original
        Pair(stock, (expon(), cuba))
    assert upstream_projection.align_post_add_bef_update is original
    assert (len(outer.records), len(inner.records)) == (2, 1)
    with pytest.raises(RuntimeError, match="boom"), bst.audit():
        raise RuntimeError("boom")
    assert upstream_projection.align_post_add_bef_update is original


def test_the_audit_does_not_change_what_stock_builds():
    with bst.audit():
        audited = Pair(stock, *WRONG["array"][:2])
    plain = Pair(stock, *WRONG["array"][:2])
    assert list(audited.N.before_updates) == list(plain.N.before_updates)
    assert audited.A.syn is audited.B.syn and plain.A.syn is plain.B.syn


def test_merge_report_refuses_other_objects():
    with pytest.raises(TypeError, match=r"`model_or_post` must be a brainpy DynamicalSystem or a brainpy.state "
                                        r"network .* but got a dict"):
        bhp.merge_report({})
