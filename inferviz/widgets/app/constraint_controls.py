"""The explorer's constraint row: a kind (none, regex, JSON schema, choice, grammar) and its
text. Clicks and runs keep to the constraint it reads (docs/constraints.md)."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

KINDS = {
    "none": "",
    "regex": r"e.g. [0-9]{1,3}",
    "JSON schema": 'e.g. {"type": "object", "properties": {"ok": {"type": "boolean"}}}',
    "choice": "options separated by |, e.g. yes | no | maybe",
    "grammar (lark)": 'e.g. start: "yes" | "no"',
}


def parse_constraint(kind: str, text: str) -> Any:
    """The constraint the row describes, or None; ValueError naming the box otherwise."""
    from ...constraints import Choice, Grammar, JSONSchema, Regex

    if kind not in KINDS:
        raise ValueError(f"constraint kind {kind!r} is unknown; choose one of {list(KINDS)}")
    if kind == "none":
        return None
    if not text.strip():
        raise ValueError(f"constraint: the {kind} box is empty; type a {kind} or choose none")
    try:
        if kind == "regex":
            return Regex(text.strip("\n"))  # leading spaces are part of the text to match
        if kind == "JSON schema":
            return JSONSchema(text)
        if kind == "choice":
            return Choice([o.strip() for o in text.split("|") if o.strip()])
        return Grammar(text)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"constraint ({kind}): {exc}") from None


class ConstraintControls:
    """The row: ``kind`` (Dropdown) and ``text`` (Textarea); ``constraint()`` reads them."""

    def __init__(self) -> None:
        self.kind = widgets.Dropdown(options=list(KINDS), value="none",
                                     description="constraint",
                                     layout=widgets.Layout(width="230px"))
        self.text = widgets.Textarea(value="", placeholder="", continuous_update=False,
                                     layout=widgets.Layout(width="420px", height="32px",
                                                           display="none"))
        self.kind.observe(lambda _c: self._kind_changed(), names="value")
        self.widget = widgets.HBox([self.kind, self.text])
        self.widget.add_class("inferviz-constraint-row")

    def _kind_changed(self) -> None:
        self.text.placeholder = KINDS[self.kind.value]
        self.text.layout.display = "none" if self.kind.value == "none" else None

    def constraint(self) -> Any:
        return parse_constraint(self.kind.value, self.text.value)

    def observe(self, handler: Any) -> None:
        """Call ``handler()`` when the kind or the text changes."""
        for box in (self.kind, self.text):
            box.observe(lambda _c: handler(), names="value")
