"""The view of an :class:`~inferviz.attribution.AttributionResult`: the context tokens shaded by
score on a diverging scale symmetric around 0 (blue: against the token, white: 0, red: for
it; ColorBrewer RdBu), with a legend, the value on hover and the attributed token boxed at the
end. Plain HTML (no JS), so the same markup serves the notebook, Voila and static exports;
every text in it goes through :func:`inferviz.html_text.esc`.
"""

from __future__ import annotations

import math
from typing import Any

import ipywidgets

from ...html_text import esc
from .text_view import visible

# ColorBrewer RdBu (11 classes), reversed: -1 -> dark blue, 0 -> near white, +1 -> dark red.
DIVERGING_STOPS = ((5, 48, 97), (33, 102, 172), (67, 147, 195), (146, 197, 222),
                   (209, 229, 240), (247, 247, 247), (253, 219, 199), (244, 165, 130),
                   (214, 96, 77), (178, 24, 43), (103, 0, 31))
METHOD_NAMES = {"input_x_gradient": "input × gradient",
                "integrated_gradients": "integrated gradients",
                "attention": "attention (last layer, mean over heads)",
                "attention_rollout": "attention rollout"}


def diverging_color(x: float | None) -> str:
    """CSS colour of ``x`` in [-1, 1] on the diverging scale (grey if unknown)."""
    if x is None or not math.isfinite(x):
        return "rgb(220,220,220)"
    t = (min(1.0, max(-1.0, x)) + 1) / 2 * (len(DIVERGING_STOPS) - 1)
    i = min(len(DIVERGING_STOPS) - 2, int(t))
    f = t - i
    r, g, b = (round(DIVERGING_STOPS[i][c] + f * (DIVERGING_STOPS[i + 1][c]
                                                   - DIVERGING_STOPS[i][c])) for c in range(3))
    return f"rgb({r},{g},{b})"


def _scale(scores: Any) -> float:
    finite = [abs(float(s)) for s in scores if math.isfinite(float(s))]
    top = max(finite, default=0.0)
    return top if top > 0 else 1.0


def legend_html(scale: float, label: str) -> str:
    stops = ", ".join(diverging_color(-1 + i / 5) for i in range(11))
    return (f"<div class='inferviz-attribution-legend' style='display:flex;align-items:center;"
            f"gap:6px;font:12px sans-serif;color:#374151;margin:4px 0'>"
            f"<span>{esc(label)}</span><span>against {esc(f'{-scale:.3g}')}</span>"
            f"<span style='display:inline-block;width:160px;height:10px;border:1px solid #ccc;"
            f"background:linear-gradient(to right, {stops})'></span>"
            f"<span>{esc(f'{scale:+.3g}')} for</span></div>")


def _header(result: Any) -> str:
    what = f"why <b>{esc(visible(result.token))}</b>"
    if result.contrast_token_id is not None:
        what += f" and not <b>{esc(visible(result.contrast_token or ''))}</b>"
        target = f"log p − log p(contrast) = {result.target:.3f}"
    else:
        target = f"log p = {result.target:.3f}"
    method = METHOD_NAMES.get(result.method, result.method)
    if result.steps is not None:
        method += f", {result.steps} steps, {result.baseline} baseline"
        method += " (first token kept)" if result.keep_first else ""
        error = result.completeness_error
        if error is not None:
            method += f", completeness error {100 * error:.2g}%"
    return (f"<div style='font:13px sans-serif;color:#111;margin:2px 0'>{what} — "
            f"{esc(method)} · {esc(target)} · node {esc(result.node_id)}</div>")


def attribution_html(result: Any, full_page: bool = False) -> str:
    """The shaded context of ``result`` (see the module doc); ``full_page`` wraps it in an
    HTML document."""
    scale = _scale(result.scores)
    total = sum(abs(float(s)) for s in result.scores if math.isfinite(float(s))) or 1.0
    spans = []
    for position, (token, token_id, node_id, score, l2) in enumerate(zip(
            result.input_tokens, result.input_ids, result.context_node_ids, result.scores,
            result.scores_l2)):
        score = float(score)
        x = score / scale
        where = "prompt" if node_id is None else f"node {node_id}"
        title = (f"position {position} · {where}\ntoken {visible(token)} (id {token_id})\n"
                 f"score {score:+.4g} ({abs(score) / total:.1%} of Σ|score|)")
        if math.isfinite(float(l2)):
            title += f"\nL2 norm {float(l2):.4g}"
        color = "#fff" if abs(x) > 0.55 else "#111"
        underline = "" if node_id is None else "text-decoration:underline dotted #6b7280;"
        text = esc(token.replace("\n", "↵\n")) if token else "∅"
        spans.append(f"<span class='inferviz-attribution-token' data-position='{position}' "
                     f"data-score='{esc(f'{score:.6g}')}' title='{esc(title)}' style='background:"
                     f"{diverging_color(x)};color:{color};border-radius:3px;padding:1px 0;"
                     f"{underline}'>{text}</span>")
    spans.append(f"<span class='inferviz-attribution-target' title='the attributed token "
                 f"(node {esc(result.node_id)})' style='outline:2px solid #111;border-radius:3px;"
                 f"padding:1px 2px;margin-left:1px'>{esc(visible(result.token))}</span>")
    label = ("attention weight" if result.method.startswith("attention")
             else "attribution (sum over the embedding)")
    body = (f"<div class='inferviz-attribution'>{_header(result)}{legend_html(scale, label)}"
            f"<div style='font:14px/1.9 ui-monospace,monospace;white-space:pre-wrap'>"
            f"{''.join(spans)}</div><div style='font:11px sans-serif;color:#6b7280'>"
            f"dotted underline: tokens generated on the path; hover a token for its score"
            f"</div></div>")
    if not full_page:
        return body
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>inferviz attribution"
            f"</title></head><body style='margin:16px'>{body}</body></html>")


class AttributionView(ipywidgets.HTML):
    """``AttributionView(result)``: :func:`attribution_html` as a notebook widget."""

    def __init__(self, result: Any, **kwargs: Any) -> None:
        unknown = sorted(set(kwargs) - {"layout"})
        if unknown:
            raise TypeError(f"AttributionView got unexpected keyword argument(s) {unknown}; it "
                            f"takes result")
        super().__init__(value=attribution_html(result), **kwargs)
        self.result = result
