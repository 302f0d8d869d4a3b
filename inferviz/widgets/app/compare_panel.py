"""The explorer's "Compare" tab: run several strategies from the same node into the current tree
and see, side by side, their texts, perplexities and where each parts from the first
(``Session.compare``, docs/compare.md). The tree marks the divergence nodes.

The strategies are chosen with checkboxes (greedy, nucleus sampling, min-p, beam search, SMC
and, for a local model, contrastive decoding against an early layer), run from the root or the
selected node with the explorer's ``max_new_tokens``, seed and constraint. The run holds the
explorer's run lock (a click meanwhile is refused, as during a run); errors show in the tab's
status line, escaped.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import ipywidgets as widgets

from ..export.compare_view import table_html
from .panel_actions import PanelActions


def strategy_choices(session: Any) -> list[tuple[str, dict[str, Any]]]:
    """``(label, entry)`` for each strategy the tab offers, in order; an entry is what
    :func:`inferviz.compare.compare` takes. Contrastive only with a local model (it reads an
    early layer)."""
    choices: list[tuple[str, dict[str, Any]]] = [
        ("greedy", {"strategy": "greedy"}),
        ("top-p 0.9", {"strategy": "top_p", "top_p": 0.9}),
        ("min-p 0.1", {"strategy": "min_p", "min_p": 0.1}),
        ("beam 4", {"strategy": "beam", "num_beams": 4}),
        ("SMC 16 particles", {"strategy": "smc", "particles": 16, "top_k": 20}),
    ]
    if getattr(session, "adapter", None) is not None:
        layer = max(0, session.adapter.num_layers // 4)
        choices.append((f"contrastive (amateur: layer {layer})",
                        {"strategy": "contrastive", "amateur_layer": layer}))
    return [(label, {**entry, "label": label}) for label, entry in choices]


class ComparePanel(PanelActions, widgets.VBox):
    """``ComparePanel(session, lock, context, on_done)``: ``context()`` gives ``(tree,
    start_id, max_new_tokens, seed, constraint)`` from the explorer; ``compare()`` (the button)
    runs the checked strategies and returns the :class:`~inferviz.compare.Comparison`, then
    calls ``on_done(comparison)``."""

    def __init__(self, session: Any, lock: threading.RLock, context: Callable[[], tuple],
                 on_done: Callable[[Any], None] | None = None,
                 wait_idle: Callable[[], None] | None = None) -> None:
        self.session = session
        self._lock = lock
        self._context = context
        self._on_done = on_done
        self._wait_idle = wait_idle or (lambda: None)
        self.comparison: Any = None
        self.choices = strategy_choices(session)
        default = {"greedy", "top-p 0.9", "beam 4"}
        self.boxes = {label: widgets.Checkbox(value=label in default, description=label,
                                              indent=False,
                                              layout=widgets.Layout(width="auto",
                                                                    margin="0 14px 0 0"))
                      for label, _ in self.choices}
        self.button = widgets.Button(description="Compare", button_style="primary")
        self.button.add_class("inferviz-compare-run")
        self.status = widgets.HTML("")
        self.table = widgets.HTML("<i>check two or more strategies and press <b>Compare</b>: "
                                  "they run from the selected node (or the root) into this "
                                  "tree, and the table shows where each parts from the "
                                  "first</i>")
        self.button.on_click(lambda _b: self._guard(self.compare))
        super().__init__([
            widgets.HBox(list(self.boxes.values()), layout=widgets.Layout(flex_flow="row wrap")),
            widgets.HBox([self.button]), self.status, self.table])
        self.add_class("inferviz-compare-panel")

    def entries(self) -> list[dict[str, Any]]:
        """The checked strategies, as ``compare`` takes them (ValueError if fewer than 2)."""
        chosen = [dict(entry) for label, entry in self.choices if self.boxes[label].value]
        if len(chosen) < 2:
            raise ValueError("check at least two strategies to compare")
        return chosen

    def compare(self) -> Any:
        """Run the checked strategies (the *Compare* button); returns the comparison."""
        entries = self.entries()
        tree, start_id, max_new_tokens, seed, constraint = self._context()
        if tree is None:
            raise ValueError("there is no tree yet: give a prompt and press New tree")
        with self._holding():
            self._say(f"running {len(entries)} strategies from node {start_id}…")
            cmp = self.session.compare(tree, entries, max_new_tokens=max_new_tokens,
                                       seed=seed, start_id=start_id, constraint=constraint)
        self.comparison = cmp
        self.table.value = table_html(cmp)
        where = ("the same text" if all(d.identical for d in cmp.divergence.values())
                 else "the ◆ marks where each parts from the first")
        self._say(f"compared {len(entries)} strategies from node {start_id}: {where}")
        if self._on_done is not None:
            self._on_done(cmp)
        return cmp
