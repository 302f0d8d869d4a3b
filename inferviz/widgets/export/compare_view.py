"""Views of a :class:`~inferviz.compare.Comparison`: the side-by-side table with each text split
at its divergence from the reference, every strategy's text shaded by token probability, and the
shared tree with the divergence nodes marked.

``comparison_html`` is plain HTML (``Comparison._repr_html_``; the tree is the offline tree page
in an iframe); ``comparison_widget`` is an ipywidgets box with a live :class:`TreeWidget` and a
:class:`TextView` that follows the strategy chosen in a dropdown.
"""

from __future__ import annotations

from typing import Any

from ...html_text import esc
from ..views.text_view import legend_html, text_view_html

DIVERGE_MARK = "◆"


def _text(raw: bytes) -> str:
    return esc(raw.decode("utf-8", "replace").replace("\n", "↵"))


def _split_text(cmp: Any, label: str) -> str:
    """The label's completion as HTML: the part shared with the reference in grey, a marker,
    then the part after the split in bold."""
    tree = cmp.tree
    ids = cmp.path_ids(label)
    div = cmp.vs_reference(label)
    if div is None or div.identical:
        return _text(tree.completion(cmp.results[label].node_id).encode("utf-8"))
    shared = b"".join(tree.node(i).token_bytes for i in ids[:div.position])
    rest = b"".join(tree.node(i).token_bytes for i in ids[div.position:])
    return (f"<span style='color:#6b7280'>{_text(shared)}"
            f"</span><span title='parts from {esc(cmp.reference)} here' "
            f"style='color:#b91c1c'>{DIVERGE_MARK}</span>"
            f"<b>{_text(rest)}</b>")


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return esc(value)


def table_html(cmp: Any) -> str:
    """The :meth:`Comparison.summary` rows as an HTML table (text split at the divergence)."""
    rows_data = cmp.summary()
    with_kl = any(row["mean_kl"] is not None for row in rows_data)
    head = ("label", "strategy", "text", "tokens", "sum logprob", "mean logprob", "perplexity",
            "finish", f"diverges at (vs {cmp.reference})") + (("mean KL vs plain",)
                                                             if with_kl else ())
    cells = "".join(f"<th style='text-align:left;padding:2px 8px'>{esc(h)}</th>"
                    for h in head)
    rows = []
    for row in rows_data:
        where = row["diverges_at"]
        if row["label"] == cmp.reference:
            where_text = "reference"
        elif where is None:
            where_text = "same"
        else:
            where_text = f"token {where} (after node {row['diverges_after_node']})"
        values = [f"<b>{esc(row['label'])}</b>", esc(row["strategy"]),
                  _split_text(cmp, row["label"]),
                  _fmt(row["tokens"]), _fmt(row["sum_logprob"]), _fmt(row["mean_logprob"]),
                  _fmt(row["perplexity"]), _fmt(row["finish_reason"]), esc(where_text)]
        if with_kl:
            values.append("plain" if row["mean_kl"] is None else _fmt(row["mean_kl"]))
        rows.append("<tr>" + "".join(f"<td style='padding:2px 8px;vertical-align:top'>{v}</td>"
                                     for v in values) + "</tr>")
    return (f"<table class='inferviz-compare-table' style='border-collapse:collapse;"
            f"font:13px sans-serif'><thead><tr>{cells}</tr></thead><tbody>{''.join(rows)}"
            f"</tbody></table><div style='font:12px sans-serif;color:#6b7280'>"
            f"{DIVERGE_MARK} where a strategy's text parts from {esc(cmp.reference)}; "
            f"log-probabilities are the raw model's (nats)</div>")


def texts_html(cmp: Any) -> str:
    """Each strategy's text shaded by token probability (hover a token for its alternatives)."""
    blocks = []
    for label, result in cmp.results.items():
        div = cmp.vs_reference(label)
        marks = {} if div is None or div.b_node_id is None else {
            div.b_node_id: f"{label} parts from {cmp.reference} here"}
        view = text_view_html(cmp.tree, result.node_id, marks=marks)
        view = view[view.index("<div class='inferviz-text-view'"):]  # one legend for all
        blocks.append(f"<div style='margin:4px 0'><b style='font:13px sans-serif'>"
                      f"{esc(label)}</b>{view}</div>")
    return legend_html() + "".join(blocks)


def comparison_html(cmp: Any, tree: bool = True) -> str:
    """Table, shaded texts and (``tree=True``) the offline tree page with the divergence nodes
    badged, as one HTML fragment."""
    parts = [f"<div class='inferviz-compare'>{table_html(cmp)}", texts_html(cmp)]
    if tree:
        from .tree_page import tree_html

        page = tree_html(cmp.tree, selected=cmp.results[cmp.reference].node_id,
                         title=f"comparison: {', '.join(cmp.labels)}")
        parts.append(f"<iframe srcdoc=\"{esc(page)}\" style='width:100%;"
                     f"height:480px;border:1px solid #ddd'></iframe>")
    parts.append("</div>")
    return "".join(parts)


def comparison_widget(cmp: Any) -> Any:
    """An ipywidgets box: the table, a dropdown of labels, that strategy's :class:`TextView`
    and the shared :class:`TreeWidget` (read-only) with the divergence nodes marked; clicking a
    token selects its node in the tree."""
    import ipywidgets as widgets

    from ..views.text_view import TextView
    from ..views.tree_widget import TreeWidget

    tree_widget = TreeWidget(cmp.tree)
    mark = getattr(tree_widget, "mark", None)
    if callable(mark):  # the tree view's badge API, where this version of it has one
        for label in cmp.labels[1:]:
            div = cmp.vs_reference(label)
            if div is not None and not div.identical and div.b_node_id is not None:
                mark([div.b_node_id], f"{label} splits")
    text_view = TextView(cmp.tree, cmp.results[cmp.reference].node_id)
    choose = widgets.Dropdown(options=cmp.labels, value=cmp.reference, description="text of")

    def on_choose(change: dict) -> None:
        text_view.show(cmp.results[change["new"]].node_id)

    def on_token(change: dict) -> None:
        if change["new"] is not None:
            tree_widget.selected = change["new"]

    choose.observe(on_choose, names="value")
    text_view.observe(on_token, names="selected")
    box = widgets.VBox([widgets.HTML(table_html(cmp)), choose, text_view, tree_widget])
    box.add_class("inferviz-compare")
    box.text_view, box.tree_widget = text_view, tree_widget
    return box
