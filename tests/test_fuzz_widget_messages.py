"""Fuzz: random messages and state updates from the (untrusted) browser never change the tree
unless they are valid. The oracle below is the protocol of inferviz/widgets/views/protocol.py written
out as a predicate; a valid request expands the node it names with a tiny real model."""

from __future__ import annotations

import functools
import json
import math

from fuzz_stats import STATS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inferviz.tree import TokenTree
from inferviz.widgets import TreeWidget
from inferviz.widgets.views.protocol import K_MAX, REQUEST_KIND

FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PARAMS = ("k", "temperature", "top_k", "top_p", "min_p")
WRITABLE = (*PARAMS, "selected")

garbage = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6),
    st.lists(st.integers(0, 3), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(),
                                                             max_size=2))
numbers = st.one_of(st.integers(-3, 60), st.floats(-1, 3, allow_nan=False), st.none(), garbage)


@functools.cache
def tiny():
    from tiny_models import tiny_session

    return tiny_session("llama", kv_budget_tokens=4096)


class SyncSession:
    """The tiny session without a request batcher: the widget expands in the caller's thread."""

    def expand(self, tree, node_id, **settings):
        return tiny().expand(tree, node_id, **settings)


@functools.cache
def base_tree_json() -> str:
    session = tiny()
    tree = session.tree("t5 t6")
    session.expand(tree, tree.root_id, k=3)
    return tree.to_json()


def make_widget():
    tree = TokenTree.from_json(base_tree_json())  # a fresh copy, no forward pass
    widget = TreeWidget(tree, session=SyncSession())
    widget.sent = []
    widget.send = lambda content, buffers=None: widget.sent.append(content)
    return tree, widget


# ------------------------------------------------------------------ the protocol as a predicate
def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def is_real(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


VALID = {
    "k": lambda v: is_int(v) and 1 <= v <= K_MAX,
    "temperature": lambda v: is_real(v) and v > 0,
    "top_k": lambda v: v is None or (is_int(v) and v >= 1),
    "top_p": lambda v: v is None or (is_real(v) and 0 < v <= 1),
    "min_p": lambda v: v is None or (is_real(v) and 0 <= v <= 1),
}


def request_is_valid(msg, tree) -> bool:
    if not isinstance(msg, dict) or msg.get("kind") != REQUEST_KIND:
        return False
    rid = msg.get("id")
    if not ((isinstance(rid, str) and len(rid) <= 64) or is_int(rid)):
        return False
    if msg.get("action") != "expand" or not is_int(msg.get("node_id")):
        return False
    if msg["node_id"] not in tree:
        return False
    params = msg.get("params")
    if params is None:
        return True
    return isinstance(params, dict) and all(k in VALID and VALID[k](v) for k, v in params.items())


@st.composite
def messages(draw, node_ids):
    if draw(st.integers(0, 9)) == 0:
        return draw(garbage)
    msg = {}
    for key, good in (("kind", st.just(REQUEST_KIND)),
                      ("id", st.one_of(st.text(max_size=70), st.integers(-5, 5))),
                      ("action", st.just("expand")),
                      ("node_id", st.one_of(st.sampled_from(node_ids), st.integers(-2, 20)))):
        choice = draw(st.integers(0, 9))
        if choice < 8:
            msg[key] = draw(good)
        elif choice == 8:
            msg[key] = draw(garbage)
    if draw(st.booleans()):
        names = st.sampled_from((*PARAMS, "colour"))
        msg["params"] = draw(st.one_of(st.dictionaries(names, numbers, max_size=4), garbage))
    return msg


# ------------------------------------------------------------------ tests
@settings(FUZZ, max_examples=120)
@given(st.data())
def test_random_widget_messages_never_change_the_tree_unless_valid(data):
    tree, widget = make_widget()
    msgs = data.draw(st.lists(messages(sorted(tree.nodes)), min_size=1, max_size=3))
    for msg in msgs:
        before = tree.to_json()
        valid = request_is_valid(msg, tree)
        widget._handle_custom_msg(msg, [])
        answer = widget.sent[-1]
        STATS["widget_cases"] += 1
        json.dumps(answer, allow_nan=False)  # the answer is strict JSON, whatever came in
        if answer["ok"]:
            assert valid, f"accepted an invalid message {msg!r}"
            STATS["widget_ok"] += 1
            kids = answer["child_ids"]
            assert kids and all(tree.node(c).parent_id == msg["node_id"] for c in kids)
            old = json.loads(before)["nodes"]
            assert all(tree.node(n["node_id"]).token_id == n["token_id"] for n in old)
        else:
            # refused (or a valid request the session could not serve): nothing changed
            STATS["widget_refused"] += 1
            assert tree.to_json() == before and answer["error"]
            assert answer["id"] == (msg.get("id") if valid else answer["id"])
    widget.close()


@FUZZ
@given(st.data())
def test_random_browser_state_is_applied_whole_when_valid_and_never_touches_the_tree(data):
    tree, widget = make_widget()
    keys = st.sampled_from((*WRITABLE, "nodes", "read_only", "_esm", "pending", "zzz"))
    values = st.one_of(numbers, st.sampled_from(sorted(tree.nodes)))
    sync = data.draw(st.dictionaries(keys, values, min_size=1, max_size=4))
    before_tree, before = tree.to_json(), {name: getattr(widget, name) for name in WRITABLE}
    writable = {k: v for k, v in sync.items() if k in WRITABLE}
    valid = all(VALID[k](v) if k in VALID else (v is None or (is_int(v) and v in tree))
                for k, v in writable.items())
    widget.set_state(sync)
    STATS["widget_state"] += 1
    assert tree.to_json() == before_tree and widget.read_only is False
    after = {name: getattr(widget, name) for name in WRITABLE}
    assert after == ({**before, **writable} if valid else before)
    widget.close()
