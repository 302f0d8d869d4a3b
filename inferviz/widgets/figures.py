"""Plotly figures of a token tree and of strategy results (pure functions: data in, figure out).

- :func:`path_figure`  probability and entropy of each token along the path to a node
- :func:`ess_figure`   SMC effective sample size per step (``result.ess``)
- :func:`beam_figure`  running beam score of every beam candidate by step (meta ``beam_score``)

Each returns a ``plotly.graph_objects.Figure``; the explorer wraps them in ``FigureWidget`` and
updates their data in place. plotly is imported here, never by the core.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..html_text import esc
from ..tree import TokenTree
from .views.visible_text import display_token

HEIGHT = 260
MARGIN = {"l": 50, "r": 50, "t": 40, "b": 40}
PROB_COLOR = "#2563eb"
RAW_COLOR = "#93c5fd"
ENTROPY_COLOR = "#ea580c"
MAX_TICKS = 30
TICK_CHARS = 10


def hover_text(text: str) -> str:
    """``text`` for a plotly hover label. Plotly draws a subset of HTML there (``<b>``,
    ``<a href>``, ...), so token text goes through :func:`~inferviz.html_text.esc`; plotly
    decodes ``&lt; &gt; &amp;`` and numeric entities but shows ``&quot;`` as it is, so that one
    is written ``&#34;``."""
    return esc(text).replace("&quot;", "&#34;")


def path_series(tree: TokenTree, node_id: int) -> dict[str, list]:
    """Per generated token on the path to ``node_id``: ``step`` (1-based), ``token``,
    ``prob`` (processed), ``raw_prob`` (exp raw_logprob) and ``entropy`` (nats)."""
    nodes = tree.path(node_id)[1:]
    return {
        "step": list(range(1, len(nodes) + 1)),
        "token": [n.token for n in nodes],
        "prob": [float(n.prob) for n in nodes],
        "raw_prob": [math.exp(n.raw_logprob) for n in nodes],
        "entropy": [float("nan") if n.entropy is None else float(n.entropy) for n in nodes],
    }


def axis_tokens(tokens: Sequence[str]) -> list[str]:
    """Tick labels for the tokens of a path: each as the tree shows it (whitespace visible),
    shortened to TICK_CHARS characters."""
    shown = [display_token(t) for t in tokens]
    return [t if len(t) <= TICK_CHARS else t[: TICK_CHARS - 1] + "…" for t in shown]


def path_figure(tree: TokenTree | None = None, node_id: int | None = None) -> go.Figure:
    """Probability (left axis, 0..1) and entropy (right axis, nats) of each token on the path
    from the root to ``node_id``; an empty figure when there is no path yet."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    series = path_series(tree, node_id) if tree is not None and node_id is not None else {
        "step": [], "token": [], "prob": [], "raw_prob": [], "entropy": []}
    hover = [hover_text(repr(t)) for t in series["token"]]
    fig.add_trace(go.Scatter(x=series["step"], y=series["prob"], name="prob (processed)",
                             mode="lines+markers", line={"color": PROB_COLOR}, text=hover,
                             hovertemplate="%{text}<br>prob %{y:.3f}<extra></extra>"))
    fig.add_trace(go.Scatter(x=series["step"], y=series["raw_prob"], name="raw prob",
                             mode="lines+markers", line={"color": RAW_COLOR, "dash": "dot"},
                             text=hover, hovertemplate="%{text}<br>raw %{y:.3f}<extra></extra>"))
    fig.add_trace(go.Scatter(x=series["step"], y=series["entropy"], name="entropy (nats)",
                             mode="lines+markers", line={"color": ENTROPY_COLOR}, text=hover,
                             hovertemplate="%{text}<br>entropy %{y:.2f}<extra></extra>"),
                  secondary_y=True)
    fig.update_yaxes(title_text="probability", range=[0, 1.05], secondary_y=False)
    fig.update_yaxes(title_text="entropy (nats)", rangemode="tozero", secondary_y=True)
    # The x axis names each step by its token (as the tree shows it: '·' for a space); past
    # MAX_TICKS tokens only every n-th is named.
    every = max(1, math.ceil(len(series["step"]) / MAX_TICKS))
    fig.update_xaxes(title_text="token on the selected path", tickmode="array",
                     tickvals=series["step"][::every],
                     ticktext=[hover_text(t) for t in axis_tokens(series["token"])][::every],
                     tickangle=-45 if len(series["step"]) > 8 else 0)
    # The legend sits between the title and the plot: below, it met the token labels.
    fig.update_layout(title="Probability and entropy along the selected path",
                      height=HEIGHT + 60, margin={**MARGIN, "t": 75, "b": 80},
                      legend={"orientation": "h", "x": 0, "xanchor": "left", "y": 1.03,
                              "yanchor": "bottom"})
    return fig


def ess_figure(ess: Sequence[float] | None = None, particles: int | None = None) -> go.Figure:
    """SMC effective sample size after each step; a dashed line marks ``particles`` (N)."""
    values = [float(v) for v in (ess or [])]
    fig = go.Figure(go.Scatter(x=list(range(1, len(values) + 1)), y=values, mode="lines+markers",
                               name="ESS", line={"color": PROB_COLOR}))
    if particles:
        fig.add_hline(y=particles, line_dash="dash", line_color="#9ca3af",
                      annotation_text=f"N = {particles}")
    fig.update_layout(title="SMC effective sample size per step", height=HEIGHT, margin=MARGIN,
                      xaxis_title="step", yaxis_title="ESS", yaxis_rangemode="tozero")
    return fig


def beam_points(tree: TokenTree) -> dict[str, list]:
    """Every node with a ``beam_score`` meta: ``step``, ``score``, ``kept`` and ``token``."""
    out: dict[str, list] = {"step": [], "score": [], "kept": [], "token": [], "node_id": []}
    for node in tree.nodes.values():
        score = node.meta.get("beam_score")
        if score is None:
            continue
        out["step"].append(int(node.meta.get("beam_step", node.depth)))
        out["score"].append(float(score))
        out["kept"].append(bool(node.meta.get("beam_kept", False)))
        out["token"].append(node.token)
        out["node_id"].append(node.node_id)
    return out


def beam_figure(tree: TokenTree | None = None) -> go.Figure:
    """Running beam score (sum of raw log-probabilities) of each candidate, by step; candidates
    that became live beams are filled, the others hollow."""
    points = beam_points(tree) if tree is not None else beam_points_empty()
    fig = go.Figure()
    for kept, name, symbol in ((True, "kept beam", "circle"), (False, "dropped", "circle-open")):
        idx = [i for i, k in enumerate(points["kept"]) if k == kept]
        fig.add_trace(go.Scatter(
            x=[points["step"][i] for i in idx], y=[points["score"][i] for i in idx],
            text=[hover_text(f"{points['token'][i]!r} (node {points['node_id'][i]})")
                  for i in idx],
            mode="markers", name=name, marker={"symbol": symbol, "size": 8, "color": PROB_COLOR},
            hovertemplate="%{text}<br>score %{y:.3f}<extra></extra>"))
    fig.update_layout(title="Beam candidates: running score by step", height=HEIGHT,
                      margin=MARGIN, xaxis_title="step", yaxis_title="sum of log-probs")
    return fig


def beam_points_empty() -> dict[str, list]:
    return {"step": [], "score": [], "kept": [], "token": [], "node_id": []}


def update_figure(widget: Any, fig: go.Figure) -> None:
    """Replace an existing ``FigureWidget``'s traces and layout with ``fig``'s (keeping the
    widget, so the front end updates the plot in place instead of re-creating it)."""
    widget.data = []
    widget.layout = fig.layout
    widget.add_traces(list(fig.data))
