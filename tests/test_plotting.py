"""``brainpy_halfproj.plotting``: the merge diagram says what the registry did."""
from __future__ import annotations

import brainpy as bp
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import brainpy_halfproj as bhp  # noqa: E402
from brainpy_halfproj.plotting import plot_merge_diagram  # noqa: E402

from ._nets import build_net  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _texts(ax):
    return [t.get_text() for t in ax.texts]


def _state_boxes(ax):
    return [t for t in _texts(ax) if "\nstate: " in t]


def test_einet_title_and_boxes():
    net = bhp.EINet(400)
    ax = plot_merge_diagram(net)
    assert ax.get_title() == "2 projections -> 2 synapse states -> 1 post group"
    texts = _texts(ax)
    assert "E\nHalfProjAlignPostMg" in texts and "I\nHalfProjAlignPostMg" in texts
    assert "N\nLifRef, 400 neurons" in texts
    assert sorted(_state_boxes(ax)) == [
        "Expon(size=400, tau=10.0) -> COBA(E=-80.0)\nstate: 400 elements, 1 projection",
        "Expon(size=400, tau=5.0) -> COBA(E=0.0)\nstate: 400 elements, 1 projection",
    ]


def test_one_arrow_per_projection_and_per_state():
    net = build_net(bhp.dyn, "FullProjAlignPostMg")  # 5 projections, E2E and E2E_slow merged
    ax = plot_merge_diagram(net)
    assert ax.get_title() == "5 projections -> 4 synapse states -> 2 post groups"
    arrows = [c for c in ax.get_children() if isinstance(c, matplotlib.text.Annotation)]
    assert len(arrows) == 5 + 4
    shared = [t for t in _state_boxes(ax) if "shared by" in t]
    assert shared == ["Expon(size=320, tau=5.0) -> COBA(E=0.0)\nstate: 320 elements, shared by 2"]


def test_diagram_matches_merge_report():
    net = build_net(bhp.dyn, "HalfProjAlignPostMg")
    ax = plot_merge_diagram(net)
    report = bhp.merge_report(net)
    assert len(_state_boxes(ax)) == len(report.groups)
    for g in report.groups:
        note = f"shared by {len(g.projections)}" if len(g.projections) > 1 else "1 projection"
        assert f"{g.key_text}\nstate: {g.state_size} elements, {note}" in _texts(ax)


def test_upstream_model_is_drawn_with_its_own_sharing():
    # Upstream keys on str(): tau=5 and tau=5. give two states there, one here.
    def net(dyn):
        post = dyn.LifRef(40)
        group = bp.DynSysGroup()
        group.post = post
        group.a = dyn.HalfProjAlignPostMg(bp.dnn.EventJitFPHomoLinear(8, 40, prob=0.1, weight=0.6),
                                          dyn.Expon.desc(size=40, tau=5), dyn.COBA.desc(E=0.), post)
        group.b = dyn.HalfProjAlignPostMg(bp.dnn.EventJitFPHomoLinear(8, 40, prob=0.1, weight=0.6),
                                          dyn.Expon.desc(size=40, tau=5.), dyn.COBA.desc(E=0.), post)
        return group

    up, ours = net(bp.dyn), net(bhp.dyn)
    ax_up = plot_merge_diagram(up)
    ax_ours = plot_merge_diagram(ours)
    assert ax_up.get_title() == "2 projections -> 2 synapse states -> 1 post group"
    assert ax_ours.get_title() == "2 projections -> 1 synapse state -> 1 post group"
    assert "a\nHalfProjAlignPostMg (bp.dyn)" in _texts(ax_up)
    assert _state_boxes(ax_up) == ["Expon(tau=5) -> COBA(E=0)\nstate: 40 elements, 1 projection"] * 2


def test_unmerged_classes_and_long_arrays():
    post = bp.dyn.LifRef(30)
    tau = np.full(30, 5.)
    group = bp.DynSysGroup()
    group.post = post
    group.p = bhp.HalfProjAlignPost(bp.dnn.EventJitFPHomoLinear(8, 30, prob=0.1, weight=0.6),
                                    bp.dyn.Expon(30, tau=tau), bp.dyn.COBA(E=-80.), post)
    ax = plot_merge_diagram(group)
    assert _state_boxes(ax) == ["Expon(tau=array(30,)) -> COBA(E=-80)\nstate: 30 elements, 1 projection"]


def test_post_group_alone_finds_merging_projections():
    net = build_net(bhp.dyn, "HalfProjAlignPostMg")
    ax = plot_merge_diagram(net.N)
    assert ax.get_title() == "3 projections -> 2 synapse states -> 1 post group"


def test_draws_into_given_axes():
    fig, (left, right) = plt.subplots(1, 2)
    assert plot_merge_diagram(bhp.EINet(100), ax=right) is right
    assert not left.texts


def test_rejects_non_dynamical_system():
    with pytest.raises(TypeError, match=r"`model_or_post` must be a brainpy DynamicalSystem.*got a list"):
        plot_merge_diagram([1, 2])


def test_no_projection_found():
    with pytest.raises(ValueError, match=r"found no align-post projection in LifRef"):
        plot_merge_diagram(bp.dyn.LifRef(10))


def test_long_array_keys_are_abbreviated_and_told_apart():
    post = bp.dyn.LifRef(2000)
    tau_a = np.full(2000, 5.)
    tau_b = tau_a.copy()
    tau_b[1000] = 50.
    group = bp.DynSysGroup()
    group.post = post
    group.a = bhp.HalfProjAlignPostMg(bp.dnn.EventJitFPHomoLinear(8, 2000, prob=0.1, weight=0.6),
                                      bp.dyn.Expon.desc(2000, tau=tau_a), bp.dyn.COBA.desc(E=0.), post)
    group.b = bhp.HalfProjAlignPostMg(bp.dnn.EventJitFPHomoLinear(8, 2000, prob=0.1, weight=0.6),
                                      bp.dyn.Expon.desc(2000, tau=tau_b), bp.dyn.COBA.desc(E=0.), post)
    boxes = _state_boxes(plot_merge_diagram(group))
    hashes = {g.key.syn.arguments[-1][1].sha256[:8] for g in bhp.merge_report(group).groups}
    assert len(boxes) == 2 and len(hashes) == 2
    for box in boxes:
        first, second, state = box.split("\n")
        assert first.startswith("Expon(size=2000, tau=array(2000,) #") and first[-9:-1] in hashes
        assert second == "-> COBA(E=0.0)"
        assert state == "state: 2000 elements, 1 projection"


@pytest.mark.parametrize("figsize", [None, (5, 4)], ids=["own-figure", "narrow-axes"])
def test_columns_do_not_overlap(figsize):
    net = build_net(bhp.dyn, "FullProjAlignPostMg")
    ax = plot_merge_diagram(net, ax=None if figsize is None else plt.subplots(figsize=figsize)[1])
    ax.figure.canvas.draw()
    renderer = ax.figure.canvas.get_renderer()
    columns = {}
    for t in ax.texts:
        if t.get_bbox_patch() is not None:
            columns.setdefault(round(t.get_position()[0], 6), []).append(t.get_bbox_patch().get_window_extent(renderer))
    assert len(columns) == 3
    left, middle, right = (columns[x] for x in sorted(columns))
    assert max(b.x1 for b in left) < min(b.x0 for b in middle)
    assert max(b.x1 for b in middle) < min(b.x0 for b in right)


def test_fused_calls_are_drawn_with_their_memory():
    net = bhp.EINet(400, fused=True)
    texts = _texts(plot_merge_diagram(net))
    assert "E\nHalfProjAlignPostMg, fused" in texts and "I\nHalfProjAlignPostMg, fused" in texts
    (info,) = bhp.merge_report(net).fused
    assert (f"N\nLifRef, 400 neurons\n1 fused kernel call for 2 projections\n{info.synapses} synapses, "
            f"{info.nbytes / 2**20:.1f} MiB") in texts
