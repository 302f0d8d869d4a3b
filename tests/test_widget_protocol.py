"""The widget protocol: every message from the (untrusted) browser is validated in Python."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from inferviz.tree import TokenTree
from inferviz.widgets import LensWidget, TreeWidget
from inferviz.widgets.views.protocol import READ_ONLY_MESSAGE, RESPONSE_KIND


class FakeSession:
    """Implements Session.expand's contract: adds k children (keyed by token id) and returns them."""

    def __init__(self, during_expand=None, error: Exception | None = None):
        self.calls: list[tuple[int, dict]] = []
        self.during_expand = during_expand
        self.error = error

    def expand(self, tree, node_id, *, k, temperature, top_k, top_p, min_p):
        self.calls.append(
            (
                node_id,
                {
                    "k": k,
                    "temperature": temperature,
                    "top_k": top_k,
                    "top_p": top_p,
                    "min_p": min_p,
                },
            )
        )
        if self.error is not None:
            raise self.error
        if self.during_expand is not None:
            self.during_expand()
        return [
            tree.add_child(node_id, 100 + i, f" t{i}".encode(), -1.0 - i, 0.5 / (i + 1), i, 1.5)
            for i in range(k)
        ]


def make_tree() -> TokenTree:
    tree = TokenTree("Hi", [1, 2])
    tree.add_child(0, 11, b" there", -0.3, 0.7, 0, 1.2)
    tree.add_child(0, 12, b"!", -1.5, 0.2, 1, 1.2)
    return tree


def make_widget(session=None, **kwargs):
    tree = make_tree()
    widget = TreeWidget(tree, session=session, **kwargs)
    widget.sent = []
    widget.send = lambda content, buffers=None: widget.sent.append(content)
    return tree, widget


def request(node_id=1, rid="r1", **fields):
    return {"kind": "inferviz:request", "id": rid, "action": "expand", "node_id": node_id, **fields}


def browser_sends(widget, msg):
    """Deliver a custom message the way ipywidgets does."""
    widget._handle_custom_msg(msg, [])
    return widget.sent[-1]


# ------------------------------------------------------------------ success
def test_expand_request_calls_session_expand_with_the_settings_and_answers_child_ids():
    session = FakeSession()
    tree, widget = make_widget(session, k=3, temperature=0.7, top_p=0.9)
    answer = browser_sends(widget, request(node_id=1))
    assert session.calls == [
        (1, {"k": 3, "temperature": 0.7, "top_k": None, "top_p": 0.9, "min_p": None})
    ]
    assert answer["kind"] == RESPONSE_KIND and answer["id"] == "r1" and answer["ok"] is True
    assert answer["child_ids"] == [c.node_id for c in tree.children(1)]
    assert len(answer["child_ids"]) == 3
    assert widget.error == ""


def test_params_in_the_request_override_the_traits():
    session = FakeSession()
    _, widget = make_widget(session)
    browser_sends(widget, request(params={"k": 2, "min_p": 0.1}))
    assert session.calls[0][1] == {
        "k": 2,
        "temperature": 1.0,
        "top_k": None,
        "top_p": None,
        "min_p": 0.1,
    }


def test_successful_expand_clears_a_previous_error():
    _, widget = make_widget(FakeSession())
    browser_sends(widget, request(node_id=999))
    assert widget.error
    browser_sends(widget, request(node_id=1))
    assert widget.error == ""


# ------------------------------------------------------------------ bad messages
BAD_MESSAGES = {
    "not an object": ["expand", 1],
    "a string": "expand",
    "no kind": {"id": "r1", "action": "expand", "node_id": 1},
    "wrong kind": request(kind="anywidget-command"),
    "no id": {"kind": "inferviz:request", "action": "expand", "node_id": 1},
    "id too long": request(rid="x" * 1000),
    "unknown action": request(action="exec"),
    "python action": request(action="__class__"),
    "unknown node id": request(node_id=999),
    "negative node id": request(node_id=-1),
    "node id as text": request(node_id="1"),
    "node id as bool": request(node_id=True),
    "node id missing": {"kind": "inferviz:request", "id": "r1", "action": "expand"},
    "k zero": request(params={"k": 0}),
    "k too big": request(params={"k": 51}),
    "k fractional": request(params={"k": 2.5}),
    "k as text": request(params={"k": "5"}),
    "k as bool": request(params={"k": True}),
    "k null": request(params={"k": None}),
    "temperature zero": request(params={"temperature": 0}),
    "temperature negative": request(params={"temperature": -1.0}),
    "temperature nan": request(params={"temperature": math.nan}),
    "temperature infinite": request(params={"temperature": math.inf}),
    "temperature as text": request(params={"temperature": "hot"}),
    "top_p zero": request(params={"top_p": 0.0}),
    "top_p above one": request(params={"top_p": 1.5}),
    "min_p negative": request(params={"min_p": -0.1}),
    "min_p above one": request(params={"min_p": 1.1}),
    "top_k zero": request(params={"top_k": 0}),
    "top_k fractional": request(params={"top_k": 1.5}),
    "params not an object": request(params=[5]),
    "unknown param": request(params={"k": 2, "callback": "os.system"}),
}


@pytest.mark.parametrize("msg", list(BAD_MESSAGES.values()), ids=list(BAD_MESSAGES))
def test_bad_message_gets_an_error_response_and_changes_nothing(msg):
    session = FakeSession()
    tree, widget = make_widget(session)
    before = tree.to_json()
    nodes_before = widget.nodes
    answer = browser_sends(widget, msg)
    assert answer["kind"] == RESPONSE_KIND
    assert answer["ok"] is False
    assert answer["error"]
    assert widget.error == answer["error"]
    assert session.calls == []
    assert tree.to_json() == before
    assert widget.nodes == nodes_before
    assert widget.pending == []


@pytest.mark.parametrize(
    "params, words",
    [
        ({"k": 0}, "k must be an integer in 1..50"),
        ({"temperature": 0}, "temperature must be a finite number > 0"),
        ({"top_p": 2}, "top_p must be None or a number in (0, 1]"),
        ({"min_p": 2}, "min_p must be None or a number in [0, 1]"),
        ({"top_k": 0}, "top_k must be None or an integer >= 1"),
    ],
)
def test_error_messages_name_the_argument_and_the_allowed_range(params, words):
    _, widget = make_widget(FakeSession())
    assert words in browser_sends(widget, request(params=params))["error"]


def test_unknown_node_error_names_the_node():
    _, widget = make_widget(FakeSession())
    assert "999" in browser_sends(widget, request(node_id=999))["error"]


def test_unknown_action_error_lists_the_allowed_actions():
    _, widget = make_widget(FakeSession())
    error = browser_sends(widget, request(action="delete"))["error"]
    assert "'delete'" in error and "expand" in error


def test_a_response_echoes_a_usable_request_id_and_drops_a_bad_one():
    _, widget = make_widget(FakeSession())
    assert browser_sends(widget, request(rid=7, node_id=999))["id"] == 7
    assert browser_sends(widget, request(rid={"x": 1}))["id"] is None


def test_valid_limits_are_accepted():
    session = FakeSession()
    _, widget = make_widget(session)
    for params in ({"k": 1}, {"k": 50}, {"top_p": 1.0}, {"min_p": 0.0}, {"min_p": 1}, {"top_k": 1}):
        assert browser_sends(widget, request(params=params))["ok"] is True, params


# ------------------------------------------------------------------ session errors
def test_session_value_error_is_shown_and_the_kernel_keeps_going():
    session = FakeSession(error=ValueError("top_k must be <= vocab size 49152"))
    tree, widget = make_widget(session)
    answer = browser_sends(widget, request())
    assert answer["ok"] is False and answer["error"] == "top_k must be <= vocab size 49152"
    assert widget.pending == []
    assert len(tree) == 3


def test_unexpected_session_failure_is_reported_with_its_type():
    _, widget = make_widget(FakeSession(error=RuntimeError("CUDA out of memory")))
    answer = browser_sends(widget, request())
    assert answer["ok"] is False and answer["error"] == "RuntimeError: CUDA out of memory"


def test_read_only_tree_answers_with_an_error():
    tree, widget = make_widget(session=None)
    answer = browser_sends(widget, request())
    assert answer["ok"] is False
    assert "this tree is read-only: pass session=" in answer["error"]
    assert answer["error"] == READ_ONLY_MESSAGE
    assert widget.read_only is True
    assert len(tree) == 3


def test_python_expand_on_a_read_only_tree_raises():
    _, widget = make_widget(session=None)
    with pytest.raises(ValueError, match="read-only"):
        widget.expand(1)


# ------------------------------------------------------------------ double clicks
def test_a_second_request_for_a_node_being_expanded_is_refused():
    inner: list[dict] = []

    def click_again():
        inner.append(browser_sends(widget, request(rid="r2", node_id=1)))

    session = FakeSession(during_expand=click_again)
    tree, widget = make_widget(session, k=3)
    answer = browser_sends(widget, request(rid="r1", node_id=1))
    assert inner[0]["ok"] is False and "already being expanded" in inner[0]["error"]
    assert answer["ok"] is True
    assert len(session.calls) == 1
    assert len(tree.children(1)) == 3


def test_rapid_repeated_clicks_never_duplicate_children():
    session = FakeSession()
    tree, widget = make_widget(session, k=4)
    for rid in ("a", "b", "c"):
        browser_sends(widget, request(rid=rid, node_id=2))
    assert len(tree.children(2)) == 4
    assert len({c.token_id for c in tree.children(2)}) == 4


def test_other_nodes_can_expand_while_one_is_in_flight():
    inner: list[dict] = []

    def click_other_node_once():
        if session.calls[-1][0] == 1:
            inner.append(browser_sends(widget, request(rid="r2", node_id=2)))

    session = FakeSession(during_expand=click_other_node_once)
    tree, widget = make_widget(session, k=2)
    browser_sends(widget, request(rid="r1", node_id=1))
    assert inner[0]["ok"] is True
    assert len(tree.children(1)) == 2 and len(tree.children(2)) == 2


# ------------------------------------------------------------------ browser state
def test_browser_cannot_set_an_invalid_setting():
    _, widget = make_widget(FakeSession())
    widget.set_state({"k": 500})
    assert widget.k == 5
    assert "k must be an integer in 1..50" in widget.error
    widget.set_state({"temperature": -1})
    assert widget.temperature == 1.0


def test_browser_can_set_valid_settings_and_selection():
    _, widget = make_widget(FakeSession())
    widget.set_state({"k": 7, "top_p": 0.8, "selected": 1})
    assert (widget.k, widget.top_p, widget.selected) == (7, 0.8, 1)
    assert widget.selected_text == "Hi there"


def test_browser_cannot_select_an_unknown_node():
    _, widget = make_widget(FakeSession())
    widget.set_state({"selected": 42})
    assert widget.selected is None
    assert "42" in widget.error


def test_browser_cannot_overwrite_the_tree_or_the_bundle():
    _tree, widget = make_widget(FakeSession())
    nodes, esm = widget.nodes, widget._esm
    widget.set_state({"nodes": {"n": 0}, "_esm": "alert(1)", "read_only": False, "error": "x"})
    assert widget.nodes == nodes and widget._esm == esm
    assert widget.error == ""


def test_python_setting_is_validated_too():
    _, widget = make_widget(FakeSession())
    with pytest.raises(ValueError, match="top_p"):
        widget.top_p = 0.0
    with pytest.raises(ValueError, match="selected node 99"):
        widget.selected = 99


# ------------------------------------------------------------------ constructor
@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"k": 0}, "k must be"),
        ({"temperature": 0.0}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"min_p": -1}, "min_p"),
        ({"top_k": 0}, "top_k"),
    ],
)
def test_constructor_rejects_bad_settings(kwargs, words):
    with pytest.raises(ValueError, match=words):
        TreeWidget(make_tree(), **kwargs)


def test_constructor_rejects_unknown_keywords_and_non_trees():
    with pytest.raises(TypeError, match="topp"):
        TreeWidget(make_tree(), topp=0.9)
    with pytest.raises(TypeError, match="TokenTree"):
        TreeWidget({"nodes": []})
    with pytest.raises(TypeError, match="expand"):
        TreeWidget(make_tree(), session=object())


# ------------------------------------------------------------------ lens
def small_lens_result():
    """A LensResult-shaped object: 3 layers x 4 positions x top-2."""
    rng = np.random.default_rng(0)
    shape = (3, 4)
    return SimpleNamespace(
        token_ids=rng.integers(0, 100, size=(*shape, 2)),
        probs=rng.random((*shape, 2)),
        entropy=rng.random(shape),
        kl_to_final=rng.random(shape),
        final_top_rank=rng.integers(0, 5, size=shape),
        top_tokens=[[["a", "b"] for _ in range(4)] for _ in range(3)],
        input_tokens=["The", " cat", " sat", "."],
        layer_names=["embed", "1", "final"],
    )


def test_lens_browser_state_is_validated():
    widget = LensWidget(small_lens_result())
    widget.set_state({"color_by": "rainbow"})
    assert widget.color_by == "prob" and "color_by" in widget.error
    widget.set_state({"pinned": [99, 0]})
    assert widget.pinned is None
    widget.set_state({"pinned": [1, 2], "lens": {}})
    assert widget.pinned == [1, 2] and widget.lens["n_layers"] == 3
