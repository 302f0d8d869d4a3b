"""The per-token table of the explorer's Path tab as HTML: one row per token of the selected
path, with what the raw model thought of it (teacher-forced, no sampler settings): its
probability (a bar in the probability colours), its rank, the entropy of the distribution it
was drawn from, and the model's top alternatives."""

from __future__ import annotations

import math
from typing import Any

from ...html_text import esc
from ..views.text_view import prob_color
from ..views.visible_text import display_token

BAR_PX = 80
STYLE = """<style>
.inferviz-token-table { border-collapse: collapse; font-size: 12px; }
.inferviz-token-table th { text-align: left; font-weight: 600; color: #444; padding: 3px 10px 3px 0;
  border-bottom: 1px solid #ccc; white-space: nowrap; }
.inferviz-token-table td { padding: 2px 10px 2px 0; border-bottom: 1px solid #eee; white-space: nowrap; }
.inferviz-token-table td.num { text-align: right; font-variant-numeric: tabular-nums; }
.inferviz-token-table .tok { font-family: var(--jp-code-font-family, monospace); background: #eef2f8;
  border-radius: 3px; padding: 0 3px; }
.inferviz-token-table .bar { display: inline-block; height: 9px; border-radius: 2px; vertical-align: middle;
  margin-right: 6px; border: 1px solid #ccc; }
.inferviz-token-table td.alts { white-space: normal; }
.inferviz-token-table .alt { color: #555; margin-right: 8px; white-space: nowrap; display: inline-block; }
.inferviz-token-table-note { color: #666; font-size: 11px; margin: 4px 0; line-height: 1.4; }
</style>"""


def percent(p: float) -> str:
    """``77.3%``, ``4.1%``, ``0.12%``, ``<0.01%``."""
    if p >= 0.1:
        return f"{p * 100:.1f}%"
    if p >= 0.0001:
        return f"{p * 100:.2g}%"
    return "<0.01%" if p > 0 else "0%"


def _prob_cell(p: float) -> str:
    width = max(1, round(BAR_PX * p))
    return (f"<span class='bar' style='width:{width}px;background:{prob_color(p)}'></span>"
            f"{percent(p)}")


def _alternatives(row: Any) -> str:
    tokens = row.get("top_tokens") or []
    probs = row.get("top_probs")
    probs = list(probs) if probs is not None else [None] * len(tokens)
    return "".join(
        f"<span class='alt'><span class='tok'>{esc(display_token(t))}</span>"
        f"{'' if p is None else ' ' + percent(float(p))}</span>"
        for t, p in zip(tokens, probs))


def token_table_html(df: Any) -> str:
    """The per-token table (``Session.token_table``) as a readable HTML table. Token text is
    escaped with :func:`~inferviz.html_text.esc` (one rule for all HTML)."""
    if len(df) == 0:
        return "<i>select a generated token to see its per-token table</i>"
    approx = "approx" in df.columns and bool(df["approx"].any())
    rows = []
    for record in df.to_dict("records"):
        entropy = record.get("entropy")
        entropy_text = "—" if entropy is None or not math.isfinite(entropy) else f"{entropy:.2f}"
        rows.append(
            f"<tr><td class='num'>{int(record['position'])}</td>"
            f"<td><span class='tok'>{esc(display_token(record['token']))}</span></td>"
            f"<td>{_prob_cell(float(record['prob']))}</td>"
            f"<td class='num'>{int(record['rank'])}</td>"
            f"<td class='num'>{entropy_text}</td>"
            f"<td class='alts'>{_alternatives(record)}</td></tr>")  # wraps when narrow
    head = ("<tr><th title='position of the token in the whole text (prompt included)'>pos</th>"
            "<th>token</th><th>probability</th><th title='0 = the model's most likely token'>"
            "rank (0 = top)</th><th>entropy (nats)</th><th>model's top 5</th></tr>")
    ppl = df.attrs.get("perplexity")
    note = ("The raw model's view of each token on the selected path (scored teacher-forced, "
            "without the sampler settings that picked it).")
    if ppl is not None:
        note += f" Perplexity <b>{ppl:.3f}</b> (exp of the mean negative log-likelihood)."
    if approx:
        note += " ≈ the server gave only its top tokens: entropy and alternatives cover those."
    return (f"{STYLE}<div class='inferviz-token-table-note'>{note}</div>"
            f"<table class='inferviz-token-table'><thead>{head}</thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")
