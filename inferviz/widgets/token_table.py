"""The per-token table of the explorer's Path tab as HTML."""

from __future__ import annotations

from typing import Any

from ..html_text import esc


def token_table_html(df: Any) -> str:
    """The per-token table (``Session.token_table``) as a compact HTML table. Token text is
    escaped with :func:`~inferviz.html_text.esc` (pandas' own escaping leaves quotes and lone
    surrogates alone, and we want one rule for all HTML)."""
    if len(df) == 0:
        return "<i>select a generated token to see its per-token table</i>"
    view = df[["position", "token", "prob", "logprob", "rank", "entropy", "top_tokens"]].copy()
    view["token"] = view["token"].map(lambda t: esc(repr(t)))
    view["top_tokens"] = view["top_tokens"].map(lambda ts: esc(" ".join(repr(t) for t in ts)))
    table = view.to_html(index=False, float_format=lambda x: f"{x:.3f}", border=0,
                         classes="inferviz-token-table", escape=False)
    ppl = df.attrs.get("perplexity")
    return f"<div>perplexity <b>{ppl:.3f}</b></div>{table}" if ppl is not None else table
