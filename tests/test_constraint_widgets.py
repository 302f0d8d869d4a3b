"""Constraints in the views: the explorer's constraint row drives clicks and runs, a click
through the request batcher keeps to the constraint, and the text view shades by the raw or
the constrained probability."""

from __future__ import annotations

import math
import re

import pytest

pytest.importorskip("ipywidgets")

import inferviz as iv
from inferviz.widgets.app.constraint_controls import parse_constraint
from inferviz.widgets.views.text_view import TextView
from inferviz.widgets.views.tree_widget import TreeWidget


def _click(widget, node_id):
    """A click from the browser: the expand request, answered through the request batcher."""
    replies = []
    widget.send = lambda content, buffers=None: replies.append(content)
    widget._handle_message({"kind": "inferviz:request", "id": 1, "action": "expand",
                            "node_id": node_id, "params": {}}, [])
    deadline = 200
    while not replies and deadline:
        import time

        time.sleep(0.02)
        deadline -= 1
    return replies


def test_a_click_through_the_batcher_keeps_to_the_widget_constraint(tiny_session):
    tree = tiny_session.tree("Hello")
    widget = TreeWidget(tree, session=tiny_session, k=3)
    widget.constraint = iv.Regex("[0-9]+")
    assert widget.constraint_label == "regex /[0-9]+/"
    replies = _click(widget, tree.root_id)
    assert replies and replies[-1].get("ok") is True, replies
    kids = tree.children(tree.root_id)
    assert len(kids) == 3
    assert all(re.fullmatch("[0-9]+", k.token) and "log_legal_mass" in k.meta for k in kids)
    assert iv.Regex("[0-9]+").key in tree.meta["constraints"]
    widget.constraint = None
    assert widget.constraint_label == ""
    with pytest.raises(TypeError, match="constraint must be iv.Regex"):
        widget.constraint = "[0-9]+"


def test_a_click_after_a_complete_constrained_text_says_why_nothing_was_added(tiny_session):
    tree = tiny_session.tree("Hello")
    res = tiny_session.generate(tree, "greedy", max_new_tokens=4, constraint=iv.Choice(["ok"]))
    widget = TreeWidget(tree, session=tiny_session, k=3)
    widget.constraint = iv.Choice(["ok"])
    count = len(tree.nodes)
    replies = _click(widget, res.node_id)
    assert replies and replies[-1].get("ok") is False
    assert "allows no token after node" in replies[-1]["error"]
    assert len(tree.nodes) == count


def test_the_explorer_constraint_row_drives_clicks_and_runs(tiny_session):
    ex = tiny_session.explore("Hello", max_new_tokens=4)
    ex.constraint_controls.kind.value = "regex"
    ex.constraint_controls.text.value = "[a-z]{1,6}"
    assert ex.tree_widget.constraint == iv.Regex("[a-z]{1,6}")
    result = ex.run(wait=True)
    assert result is not None and re.fullmatch("[a-z]{0,6}", result.text)
    assert all("constraint_key" in ex.tree.node(i).meta for i in result.path_ids()[1:])
    ex.new_tree("Hi")  # a new tree keeps the row's constraint for its clicks
    assert ex.tree_widget.constraint == iv.Regex("[a-z]{1,6}")


def test_a_bad_constraint_in_the_explorer_is_named_and_clears_when_fixed(tiny_session):
    ex = tiny_session.explore("Hello", max_new_tokens=3)
    ex.constraint_controls.kind.value = "regex"
    ex.constraint_controls.text.value = "(["
    assert "constraint (regex)" in ex.status.value and "does not compile" in ex.status.value
    assert ex.tree_widget.constraint is None  # clicks keep to nothing half-typed
    with pytest.raises(ValueError, match=r"constraint \(regex\)"):  # nothing runs
        ex.run(wait=True)
    assert ex.result is None
    ex.constraint_controls.text.value = "[0-9]"
    assert "inferviz-error" not in ex.status.value


def test_a_run_the_constraint_ends_early_says_so_in_the_status(tiny_session):
    ex = tiny_session.explore("Hello", max_new_tokens=3)
    ex.constraint_controls.kind.value = "regex"
    ex.constraint_controls.text.value = r"[^\s\S]"
    result = ex.run(wait=True)
    assert result.finish_reason == "constraint"
    assert "allows no token" in ex.status.value


def test_parse_constraint_reads_each_kind_and_names_the_box():
    assert parse_constraint("none", "anything") is None
    assert parse_constraint("choice", " yes | no ") == iv.Choice(["yes", "no"])
    assert parse_constraint("JSON schema", '{"type": "boolean"}') == iv.JSONSchema(
        {"type": "boolean"})
    assert isinstance(parse_constraint("grammar (lark)", 'start: "a"'), iv.Grammar)
    with pytest.raises(ValueError, match="the choice box is empty"):
        parse_constraint("choice", "  ")
    with pytest.raises(ValueError, match=r"constraint \(JSON schema\).*not valid JSON"):
        parse_constraint("JSON schema", "{")


def test_text_view_rows_carry_the_constrained_probability(tiny_session):
    res = tiny_session.generate("Hello", "greedy", max_new_tokens=3,
                                constraint=iv.Regex("[a-z]+"))
    view = TextView(res.tree, res.node_id)
    for row, node_id in zip(view.tokens, res.path_ids()[1:]):
        node = res.tree.node(node_id)
        expected = math.exp(node.raw_logprob - node.meta["log_legal_mass"])
        assert row["constrained_prob"] == pytest.approx(expected)
        assert row["constraint"] == "regex /[a-z]+/"
    view.set_state({"shade_by": "constrained"})
    assert view.shade_by == "constrained"
    view.set_state({"shade_by": "<script>"})  # refused, the old value stays
    assert view.shade_by == "constrained"
