"""Plotting helpers that ``bp.visualize`` lacks: the merge diagram.

For rasters and traces use ``bp.visualize.raster_plot`` and ``bp.visualize.line_plot``;
this module only adds what brainpy has no picture for.

Examples
--------
>>> import matplotlib
>>> matplotlib.use("Agg")
>>> import brainpy_halfproj as bhp
>>> ax = bhp.plotting.plot_merge_diagram(bhp.EINet(400))
>>> type(ax.figure).__name__
'Figure'
"""
from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any

import brainpy as bp
import numpy as np

from . import _projections
from ._compat import is_state_module
from ._registry import state_size
from ._report import _num, group_by_post, merge_report

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["plot_merge_diagram"]

# Our four classes derive from this base; upstream's four are listed by name so that
# upstream models can be drawn too (the legacy aliases are the same classes).
_UPSTREAM_NAMES = ("HalfProjAlignPostMg", "FullProjAlignPostMg", "HalfProjAlignPost", "FullProjAlignPost")

_COLORS = {"projection": "#dce9f5", "shared": "#f9d9a6", "single": "#eeeeee", "post": "#cfe8cf"}


def _align_post_classes() -> tuple[type, ...]:
    upstream = tuple(getattr(bp.dyn, n) for n in _UPSTREAM_NAMES if isinstance(getattr(bp.dyn, n, None), type))
    return (_projections._AlignPostProjection,) + upstream


@dataclasses.dataclass
class _State:
    """One synapse state in the diagram and the projections that write into it."""

    syn: Any
    post: Any
    label: str
    size: int
    projections: list = dataclasses.field(default_factory=list)


def _collect_state(model: Any) -> tuple[list, list, dict]:
    """``_collect`` for a brainpy.state network: its report's groups (plugin and stock) and unmerged projections."""
    from brainpy.state import AlignPostProj

    from ._state_registry import state_size as state_size_of

    report = merge_report(model)
    states = [_State(g.group.syn, g.post, g.key_text, g.state_size, list(g.projections)) for g in report.groups]
    for node in model.nodes().values():  # projections with syn/out instances: a synapse of their own
        if isinstance(node, AlignPostProj) and not node.merging:
            states.append(_State(node.syn, node.post, f"{_instance_text(node.syn)} -> {_instance_text(node.out)}",
                                 state_size_of(node.syn), [node]))
    grouped = group_by_post(states, lambda state: state.post)
    posts = [post for post, _ in grouped]
    labels = dict(report.names)
    for state in states:
        for node in [state.post, *state.projections]:
            labels.setdefault(id(node), report.name_of(node))
    return posts, [state for _, by_post in grouped for state in by_post], labels


def _collect(model_or_post: Any) -> tuple[list, list, dict]:
    """``(posts, states, labels)`` in model order; ``labels`` maps node ids to display names."""
    if is_state_module(model_or_post) and not isinstance(model_or_post, bp.DynamicalSystem):
        return _collect_state(model_or_post)
    classes = _align_post_classes()
    labels: dict[int, str] = {}  # node id -> attribute path from the model (first one found)
    found: list = []
    for path, node in model_or_post.nodes(method="relative").items():
        if path and id(node) not in labels:
            labels[id(node)] = path
        if isinstance(node, classes) and all(p is not node for p in found):
            found.append(node)
    # Members of our merge groups (this also finds them from a post group alone); the report
    # gives their text and size.
    reported: dict[int, tuple[str, int]] = {}
    for info in merge_report(model_or_post).groups:
        reported[id(info.group.syn)] = (info.key_text, info.state_size)
        for proj in info.projections:
            if all(p is not proj for p in found):
                found.append(proj)

    states: dict[int, _State] = {}
    for proj in found:
        syn, post = proj.refs["syn"], proj.refs["post"]
        if id(syn) not in states:
            if id(syn) in reported:
                text, size = reported[id(syn)]
            else:  # unmerged, or upstream's: no key
                out = proj.refs.get("out")
                text = _instance_text(syn) + ("" if out is None else f" -> {_instance_text(out)}")
                size = state_size(syn)
            states[id(syn)] = _State(syn, post, text, size)
        states[id(syn)].projections.append(proj)

    grouped = group_by_post(states.values(), lambda state: state.post)
    posts = [post for post, _ in grouped]
    ordered = [state for _, by_post in grouped for state in by_post]
    for node in found + posts:
        labels.setdefault(id(node), node.name)
    return posts, ordered, labels


# Parameters shown for synapses and outputs that carry no merge key (instances, upstream's).
_SHOWN_PARAMS = ("tau", "tau_rise", "tau_decay", "E")


def _instance_text(obj: Any) -> str:
    """``Expon(tau=5)``, ``COBA(E=-80)``, ``Expon(tau=array(2000,))``: class and common parameters."""
    shown = []
    for name in _SHOWN_PARAMS:
        value = getattr(obj, name, None)
        if value is None or callable(value):
            continue
        try:
            arr = np.asarray(value)
        except Exception:  # not array-like: leave it out
            continue
        if arr.dtype.kind not in "iuf":
            continue
        shown.append(f"{name}={float(arr.reshape(-1)[0]):g}" if arr.size == 1 else f"{name}=array{tuple(arr.shape)}")
    return f"{type(obj).__name__}({', '.join(shown)})"


def _proj_text(proj: Any) -> str:
    if is_state_module(proj):  # brainpy.state: ours subclass upstream's AlignPostProj
        ours = type(proj).__module__.startswith("brainpy_halfproj")
        return f"{type(proj).__name__}{'' if ours else ' (stock brainpy.state)'}"
    where = "" if isinstance(proj, _projections._AlignPostProjection) else " (bp.dyn)"
    fused = ", fused" if getattr(proj, "fused_call", None) is not None else ""
    return f"{type(proj).__name__}{where}{fused}"


_ARRAY = re.compile(r"array\(shape=\(([^)]*)\), dtype=(\w+), sha256=(\w+)\)")
_WIDTH = 48  # characters per line in a synapse box


def _wrap(key_text: str) -> str:
    """A synapse label in lines of about ``_WIDTH`` characters, arrays as ``array(2000,) #1a2b3c4d``."""
    text = _ARRAY.sub(lambda m: f"array({m[1]}) #{m[3][:8]}", key_text)
    if len(text) <= _WIDTH:
        return text
    lines = []
    for i, part in enumerate(text.split(" -> ")):
        words = part.split(", ")
        line = ("-> " if i else "") + words[0]
        for word in words[1:]:
            if len(line) + 2 + len(word) > _WIDTH:
                lines.append(line + ",")
                line = "  " + word
            else:
                line += ", " + word
        lines.append(line)
    return "\n".join(lines)


def _place_columns(ax: Axes, columns: tuple[list, list, list]) -> list[float]:
    """Put the three columns of boxes side by side with equal gaps; shrink the font if they do not fit."""
    fig = ax.figure
    for _ in range(4):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        widths = [max(t.get_bbox_patch().get_window_extent(renderer).width for t in col) / ax.bbox.width
                  for col in columns]
        total = sum(widths)
        if total <= 0.85:
            break
        size = columns[0][0].get_fontsize() * 0.85 / total
        for col in columns:
            for t in col:
                t.set_fontsize(max(size, 5.0))
        if size <= 5.0:
            break
    gap = max((1.0 - total) / 2, 0.02)
    centers = [widths[0] / 2, widths[0] + gap + widths[1] / 2, 1.0 - widths[2] / 2]
    for x, col in zip(centers, columns, strict=True):
        for t in col:
            t.set_x(x)
    return centers


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def plot_merge_diagram(model_or_post: Any, ax: Axes | None = None) -> Axes:
    """Draw which projections share which synapse state, on which post group.

    Three columns: the align-post projections (left) point at the synapse states
    they write into (middle), which feed the post groups (right). A synapse state
    shared by several projections is drawn in orange, one used by a single
    projection in grey. Works for models built with ``brainpy_halfproj.dyn`` and
    with upstream's ``bp.dyn`` (upstream merges by its own string key, so the
    picture shows what upstream really shares), and for ``brainpy.state`` networks
    built with ``brainpy_halfproj.state`` or with stock ``brainpy.state``.

    Parameters
    ----------
    model_or_post
        A network holding align-post projections (drawn with their attribute names),
        or a single post group (then only this plugin's merging projections onto it,
        which its merge groups know, are drawn, under their instance names).
    ax
        A matplotlib ``Axes`` to draw into; a new figure is made if ``None``.

    Returns
    -------
    matplotlib.axes.Axes
        The axes, titled ``"<n> projections -> <m> synapse states -> <k> post groups"``.

    Raises
    ------
    TypeError
        If ``model_or_post`` is not a brainpy ``DynamicalSystem``.
    ValueError
        If no align-post projection is found.

    Examples
    --------
    >>> import brainpy_halfproj as bhp
    >>> from brainpy_halfproj.plotting import plot_merge_diagram
    >>> ax = plot_merge_diagram(bhp.EINet(400))
    >>> print(ax.get_title())
    2 projections -> 2 synapse states -> 1 post group
    """
    if not isinstance(model_or_post, bp.DynamicalSystem) and not is_state_module(model_or_post):
        raise TypeError(f"plot_merge_diagram: `model_or_post` must be a brainpy DynamicalSystem or a brainpy.state "
                        f"network (a network or a post group), but got a {type(model_or_post).__name__}.")
    posts, states, labels = _collect(model_or_post)
    if not states:
        raise ValueError(
            f"plot_merge_diagram: found no align-post projection in {type(model_or_post).__name__} "
            f"{model_or_post.name!r}; pass the network that holds the projections (from a post group alone, "
            f"only brainpy_halfproj's merging projections onto it can be found)."
        )
    import matplotlib.pyplot as plt

    projections = [p for s in states for p in s.projections]
    n_rows = len(projections)
    if ax is None:
        _, ax = plt.subplots(figsize=(10, max(2.4, 0.8 * n_rows + 1.0)))

    # Rows: projections top to bottom; each state at the mean of its projections,
    # each post at the mean of its states. Columns are placed after measuring the boxes.
    y_proj = {id(p): n_rows - 1 - i for i, p in enumerate(projections)}
    y_state = {id(s.syn): float(np.mean([y_proj[id(p)] for p in s.projections])) for s in states}
    y_post = {id(p): float(np.mean([y_state[id(s.syn)] for s in states if s.post is p])) for p in posts}

    def box(y, text, color):
        return ax.text(0.5, y, text, ha="center", va="center", fontsize=9, zorder=3,
                       bbox=dict(boxstyle="round,pad=0.4", fc=color, ec="0.3"))

    def arrow(source, target):
        # From the right edge of one box to the left edge of the next (artist-relative coordinates).
        ax.annotate("", xy=(0.0, 0.5), xycoords=target, xytext=(1.0, 0.5), textcoords=source, zorder=1,
                    arrowprops=dict(arrowstyle="->", color="0.35", lw=1.2, shrinkA=6, shrinkB=6))

    fused = {id(f.post): f for f in merge_report(model_or_post).fused}
    columns: tuple[list, list, list] = ([], [], [])
    post_boxes = {}
    for p in posts:
        text = f"{labels[id(p)]}\n{type(p).__name__}, {_num(p)} neurons"
        if id(p) in fused:
            f = fused[id(p)]
            text += (f"\n1 fused kernel call for {_plural(len(f.projections), 'projection')}"
                     f"\n{f.synapses} synapses, {f.nbytes / 2**20:.1f} MiB")
        post_boxes[id(p)] = box(y_post[id(p)], text, _COLORS["post"])
        columns[2].append(post_boxes[id(p)])
    for s in states:
        shared = len(s.projections) > 1
        note = f"shared by {len(s.projections)}" if shared else "1 projection"
        size = f"state: {s.size} elements" if s.size else "state not initialised"
        state_box = box(y_state[id(s.syn)], f"{_wrap(s.label)}\n{size}, {note}",
                        _COLORS["shared" if shared else "single"])
        columns[1].append(state_box)
        arrow(state_box, post_boxes[id(s.post)])
        for p in s.projections:
            proj_box = box(y_proj[id(p)], f"{labels[id(p)]}\n{_proj_text(p)}", _COLORS["projection"])
            columns[0].append(proj_box)
            arrow(proj_box, state_box)
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.6, n_rows - 0.05)
    ax.axis("off")
    centers = _place_columns(ax, columns)
    for x, head in zip(centers, ("projections", "synapse states", "post groups"), strict=True):
        ax.text(x, n_rows - 0.35, head, ha="center", va="bottom", fontsize=10, fontweight="bold")
    ax.set_title(f"{_plural(len(projections), 'projection')} -> {_plural(len(states), 'synapse state')} -> "
                 f"{_plural(len(posts), 'post group')}")
    return ax
