"""TextView: the generated text on one path, each token shaded by its probability (as ecco and
inseq show it), with a legend; hover shows the token's alternatives, a click selects its node.

Synced state:

- ``prompt``    the tree's prompt (shown in grey before the tokens)
- ``tokens``    one dict per generated token on the path: ``node_id``, ``token``, ``prob``
                (raw model probability, exp of ``raw_logprob``), ``processed_prob``, ``rank``,
                ``entropy``, ``labels`` (compare labels, or ""), ``alternatives`` (the top ``k``
                children of its parent in the tree, most probable first, then the token itself
                if it is not among them: ``node_id``, ``token``, ``prob``, ``chosen``)
- ``node_id``   the last node of the path shown
- ``selected``  the node id of the clicked token, or None (the explorer links it to the tree)

The browser may write only ``selected``. ``text_view_html`` renders the same view offline.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import traitlets

from ... import files
from ...html_text import esc
from ...tree import TokenTree
from ...validate import check_int
from . import protocol
from .base import STATIC, ViewWidget
from .columns import json_safe

SHADES = ("raw", "constrained")

# The probability ramp of js/src/shared/color.js, viridis (the same quantity has the same colour
# everywhere; tests/test_text_view.py checks the two tables agree).
PROB_STOPS = ((68, 1, 84), (71, 44, 122), (59, 81, 139), (44, 113, 142), (33, 144, 141),
              (39, 173, 129), (92, 200, 99), (170, 220, 50), (253, 231, 37))
VISIBLE = {" ": "·", "\n": "↵", "\t": "→", "\r": "␍"}


def prob_color(p: float | None) -> str:
    """CSS colour of probability ``p`` in [0, 1] on the probability ramp (grey if unknown)."""
    if p is None or not math.isfinite(p):
        return "rgb(220,220,220)"
    x = min(1.0, max(0.0, p)) * (len(PROB_STOPS) - 1)
    i = min(len(PROB_STOPS) - 2, int(x))
    f = x - i
    r, g, b = (round(PROB_STOPS[i][c] + f * (PROB_STOPS[i + 1][c] - PROB_STOPS[i][c]))
               for c in range(3))
    return f"rgb({r},{g},{b})"


def _raw_prob(logprob: float) -> float:
    return math.exp(logprob) if math.isfinite(logprob) else 0.0


def _constrained_prob(node: Any) -> float | None:
    mass = node.meta.get("log_legal_mass")
    if not isinstance(mass, float) or not math.isfinite(mass):
        return None
    return min(1.0, _raw_prob(node.raw_logprob - mass))


def path_tokens(tree: TokenTree, node_id: int, k: int = 5) -> list[dict[str, Any]]:
    """The ``tokens`` trait for the path from the root to ``node_id`` (see the module doc)."""
    rows = []
    for node in tree.path(node_id)[1:]:
        siblings = sorted(tree.children(node.parent_id), key=lambda n: -n.raw_logprob)[:k]
        if node not in siblings:  # the chosen token is always listed, last if not in the top k
            siblings.append(node)
        alternatives = [{"node_id": s.node_id, "token": s.token, "prob": _raw_prob(s.raw_logprob),
                         "chosen": s.node_id == node.node_id} for s in siblings]
        rows.append({
            "node_id": node.node_id,
            "token": node.token,
            "prob": _raw_prob(node.raw_logprob),
            "processed_prob": node.prob,
            "rank": node.rank,
            "entropy": node.entropy,
            "labels": str(node.meta.get("compare_labels", "")),
            "alternatives": alternatives,
            # under a constraint: p(token | legal) = raw prob / legal mass at the parent
            "constrained_prob": _constrained_prob(node),
            "constraint": node.meta.get("constraint"),
        })
    return json_safe(rows)


class TextView(ViewWidget):
    """``TextView(tree, node_id=None, k=5)``: the path to ``node_id`` (default: the deepest,
    most probable leaf) as shaded text. Follows the tree as it grows; ``show(node_id)`` moves
    to another path; ``selected`` is the clicked token's node id."""

    _esm = STATIC / "text_view.js"
    _css = STATIC / "text_view.css"
    # From the browser only ``selected`` (a node of this tree) and ``shade_by`` (one of
    # SHADES), each valid value taken on its own.
    browser_writable = ("selected", "shade_by")
    browser_rejects_whole = False

    prompt = traitlets.Unicode("").tag(sync=True)
    tokens = traitlets.List().tag(sync=True)
    node_id = traitlets.Int(0).tag(sync=True)
    selected = traitlets.Int(None, allow_none=True).tag(sync=True)
    k = traitlets.Int(5).tag(sync=True)
    # "raw": shade by the model's probability; "constrained": by the probability under the
    # constraint the path was grown with (tokens without one keep their raw shade)
    shade_by = traitlets.Unicode("raw").tag(sync=True)

    def __init__(self, tree: TokenTree, node_id: int | None = None, k: int = 5,
                 **kwargs: Any) -> None:
        if not isinstance(tree, TokenTree):
            raise TypeError(f"tree must be an inferviz TokenTree, got {type(tree).__name__}")
        unknown = sorted(set(kwargs) - {"layout"})
        if unknown:
            raise TypeError(f"TextView got unexpected keyword argument(s) {unknown}; it takes "
                            f"tree, node_id, k")
        check_int("k", k, 1)
        node_id = _default_leaf(tree) if node_id is None else node_id
        tree.node(node_id)  # KeyError naming the id
        self._tree = tree
        super().__init__(prompt=tree.prompt, node_id=node_id, k=k,
                         tokens=path_tokens(tree, node_id, k), **kwargs)
        self.follow_tree(tree)

    @property
    def tree(self) -> TokenTree:
        return self._tree

    @traitlets.validate("node_id")
    def _check_node_id(self, proposal: dict) -> int:
        value = proposal["value"]
        if value not in self._tree:
            raise traitlets.TraitError(f"node_id {value} is not in this tree")
        return value

    @traitlets.validate("selected")
    def _check_selected(self, proposal: dict) -> int | None:
        value = proposal["value"]
        if value is not None and value not in self._tree:
            raise traitlets.TraitError(f"selected node {value} is not in this tree")
        return value

    @traitlets.observe("node_id", "k")
    def _path_changed(self, _change: dict) -> None:
        self.refresh()

    def show(self, node_id: int, selected: int | None = None) -> None:
        """Show the path to ``node_id`` and highlight ``selected`` (a node on it, or None)."""
        self._tree.node(node_id)
        with self.hold_trait_notifications():
            self.node_id = node_id
            self.selected = selected
        self.refresh()

    def path_ids(self) -> list[int]:
        return [n.node_id for n in self._tree.path(self.node_id)[1:]]

    def refresh(self) -> None:
        """Re-read the path from the tree (normally automatic via ``tree.on_change``). A shown
        node that a failed run's rollback removed gives way to the root."""
        if self.node_id not in self._tree or (self.selected is not None
                                              and self.selected not in self._tree):
            with self.hold_trait_notifications():
                self.selected = None
                self.node_id = self._tree.root_id
        self.tokens = path_tokens(self._tree, self.node_id, self.k)

    @traitlets.validate("shade_by")
    def _check_shade_by(self, proposal: dict) -> str:
        if proposal["value"] not in SHADES:
            raise traitlets.TraitError(f"shade_by must be one of {SHADES}; got "
                                       f"{proposal['value']!r}")
        return proposal["value"]

    def check_browser_value(self, name: str, value: Any) -> None:
        if name == "selected":
            protocol.check_selected(value, self._tree)
        elif value not in SHADES:
            raise protocol.ProtocolError(f"shade_by must be one of {SHADES}; got {value!r}")

    def to_html(self, path: str | Path | None = None) -> str | Path:
        """The view as standalone offline HTML; written to ``path`` when given."""
        page = text_view_html(self._tree, self.node_id, self.k, full_page=path is not None)
        if path is None:
            return page
        path = Path(path)
        files.write_text(path, page)  # atomic: a failed write keeps the old file
        return path


def _default_leaf(tree: TokenTree) -> int:
    """The deepest leaf, the most probable among equals (the root for an empty tree)."""
    return max(tree.leaves(), key=lambda n: (n.depth, n.cum_logprob)).node_id


def visible(token: str) -> str:
    return "".join(VISIBLE.get(ch, ch) for ch in token) if token else "∅"


def legend_html() -> str:
    stops = ", ".join(prob_color(i / 4) for i in range(5))
    return (f"<div class='inferviz-text-legend' style='display:flex;align-items:center;"
            f"gap:6px;font:12px sans-serif;color:#374151;margin:4px 0'>"
            f"<span>token probability (raw model)</span><span>0%</span>"
            f"<span style='display:inline-block;width:140px;height:10px;border:1px solid #ccc;"
            f"background:linear-gradient(to right, {stops})'></span><span>100%</span></div>")


def text_view_html(tree: TokenTree, node_id: int, k: int = 5, full_page: bool = False,
                   marks: dict[int, str] | None = None) -> str:
    """Offline rendering of :class:`TextView` (no JS): shaded token spans whose ``title``
    lists the alternatives, and the legend. ``full_page`` wraps it in an HTML document;
    ``marks`` puts a red ◆ (with the given hover text) before the tokens of those node ids."""
    spans = []
    marks = marks or {}
    for row in path_tokens(tree, node_id, k):
        if row["node_id"] in marks:
            spans.append(f"<span style='color:#b91c1c' title='"
                         f"{esc(marks[row['node_id']])}'>◆</span>")
        p = row["prob"]
        color = "#fff" if p < 0.44 else "#111"  # the higher contrast on viridis (color.js)
        alts = "\n".join(f"{'▸' if a['chosen'] else ' '} {visible(a['token'])}  "
                         f"{100 * a['prob']:.1f}%" for a in row["alternatives"])
        title = f"p = {100 * p:.2f}%  rank {row['rank']}\n{alts}"
        text = esc(row["token"].replace("\n", "↵\n"))
        spans.append(f"<span class='inferviz-text-token' data-node-id='{row['node_id']}' "
                     f"title='{esc(title)}' style='background:"
                     f"{prob_color(p)};color:{color};border-radius:3px;padding:1px 0'>"
                     f"{text}</span>")
    body = (f"{legend_html()}<div class='inferviz-text-view' style='font:14px/1.9 ui-monospace,monospace;"
            f"white-space:pre-wrap'><span style='color:#6b7280'>{esc(tree.prompt)}"
            f"</span>{''.join(spans)}</div>")
    if not full_page:
        return body
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>inferviz text view"
            f"</title></head><body style='margin:16px'>{body}</body></html>")
