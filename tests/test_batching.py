"""RequestBatcher: concurrent expand requests share forwards, and every caller gets exactly its
own node's children, each child recorded once."""

import random
import threading

import pytest
import torch
from tiny_models import tiny_session

from inferviz.batching import RequestBatcher

PROMPTS = ("t5 t9 t17 t40", "t5 t9 t33")


@pytest.fixture(scope="module")
def session():
    return tiny_session("llama")


def path_table(tree):
    """{token path: (raw_logprob, prob, rank)} for every non-root node: node ids may differ
    between runs, token paths do not."""
    out = {}
    for node in tree.nodes.values():
        if not node.is_root:
            key = tuple(n.token_id for n in tree.path(node.node_id)[1:])
            out[key] = (node.raw_logprob, node.prob, node.rank)
    return out


def assert_same_trees(got, want):
    assert path_table(got).keys() == path_table(want).keys()
    for key, numbers in path_table(want).items():
        assert path_table(got)[key][2] == numbers[2]
        torch.testing.assert_close(torch.tensor(path_table(got)[key][:2]),
                                   torch.tensor(numbers[:2]), atol=1e-5, rtol=1e-4)


def assert_children_unique(tree):
    for node in tree.nodes.values():
        kids = [tree.node(c) for c in node.children.values()]
        assert len({c.token_id for c in kids}) == len(kids)
        assert all(c.parent_id == node.node_id for c in kids)


def test_many_threads_expanding_overlapping_nodes_match_sequential(session):
    k, threads = 3, 8
    want = [session.tree(p) for p in PROMPTS]
    for tree in want:  # sequential reference: two levels below the root
        for child in session.expand(tree, tree.root_id, k=k):
            session.expand(tree, child.node_id, k=k)
    got = [session.tree(p) for p in PROMPTS]
    engine_forwards = session.engine.stats.forwards
    with RequestBatcher(session, batch_size=16, batch_timeout=0.05) as batcher:
        for level in range(2):
            frontier = [(tree, n.node_id) for tree in got for n in tree.nodes.values()
                        if n.depth == level]
            barrier = threading.Barrier(threads)
            errors = []

            def worker(seed, frontier=frontier, barrier=barrier, errors=errors):
                order = frontier[:]
                random.Random(seed).shuffle(order)  # every thread asks for every node
                barrier.wait()
                try:
                    futures = [(node, batcher.submit(tree, node, k=k)) for tree, node in order]
                    for node, future in futures:
                        children = future.result(timeout=60)
                        assert [c.parent_id for c in children] == [node] * k
                except BaseException as err:  # surfaced below, in the test thread
                    errors.append(err)

            pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
            for t in pool:
                t.start()
            for t in pool:
                t.join()
            assert not errors, errors
        requests = batcher.stats.requests
    for tree_got, tree_want in zip(got, want):
        assert_children_unique(tree_got)
        assert_same_trees(tree_got, tree_want)
        assert len(tree_got) == 1 + k + k * k
    assert requests == threads * 2 * (1 + k)
    assert batcher.stats.batches < requests
    assert session.engine.stats.forwards - engine_forwards < requests


def test_each_request_gets_its_own_k_and_sampler_settings(session):
    tree = session.tree(PROMPTS[0])
    with RequestBatcher(session, batch_timeout=0.05) as batcher:
        wide = batcher.submit(tree, tree.root_id, k=4)
        narrow = batcher.submit(tree, tree.root_id, k=2, top_k=1)
        other_tree = session.tree(PROMPTS[1])
        other = batcher.submit(other_tree, other_tree.root_id, k=1)
        wide, narrow, other = wide.result(), narrow.result(), other.result()
    assert len(wide) == 4 and len(narrow) == 2 and len(other) == 1
    assert [c.node_id for c in narrow] == [c.node_id for c in wide[:2]]
    assert narrow[0].prob == 1.0 and narrow[1].prob == 0.0  # top_k=1 under narrow's settings
    assert other[0].parent_id == other_tree.root_id and len(tree) == 5


def test_batch_size_caps_the_rows_of_one_forward(session):
    tree = session.tree(PROMPTS[0])
    children = session.expand(tree, tree.root_id, k=6)
    with RequestBatcher(session, batch_size=2, batch_timeout=0.05) as batcher:
        futures = [batcher.submit(tree, c.node_id, k=1) for c in children]
        for future in futures:
            future.result()
    assert batcher.stats.largest_batch <= 2 and batcher.stats.requests == 6


def test_invalid_arguments_raise_in_the_callers_thread(session):
    tree = session.tree(PROMPTS[0])
    with RequestBatcher(session) as batcher:
        with pytest.raises(KeyError, match="node_id 99"):
            batcher.submit(tree, 99)
        with pytest.raises(ValueError, match="k"):
            batcher.submit(tree, tree.root_id, k=0)
        with pytest.raises(ValueError, match="temperature"):
            batcher.submit(tree, tree.root_id, temperature=-1.0)
        with pytest.raises(TypeError, match="TokenTree"):
            batcher.submit("tree", 0)
    for bad in ({"batch_size": 0}, {"batch_timeout": -1}, {"batch_timeout": "5ms"}):
        with pytest.raises((ValueError, TypeError)):
            RequestBatcher(session, **bad)


def test_a_closed_batcher_refuses_new_requests(session):
    batcher = RequestBatcher(session)
    batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit(session.tree(PROMPTS[0]), 0)


def test_an_engine_error_reaches_every_waiting_caller(session, monkeypatch):
    def broken(seqs):
        raise RuntimeError("simulated engine failure")

    tree = session.tree(PROMPTS[0])
    monkeypatch.setattr(session.engine, "next_logits", broken)
    with RequestBatcher(session, batch_timeout=0.05) as batcher:
        futures = [batcher.submit(tree, tree.root_id, k=2) for _ in range(3)]
        for future in futures:
            with pytest.raises(RuntimeError, match="simulated"):
                future.result(timeout=10)
    assert len(tree) == 1  # nothing recorded


# ------------------------------------------------------------------ widget clicks
def _click_widget(session, prompt: str):
    """A TreeWidget on a new tree whose replies are captured; each reply records whether the
    children it names were already in the widget's ``nodes`` when it was sent."""
    from inferviz.widgets import TreeWidget
    from inferviz.widgets.views.columns import decode_column

    tree = session.tree(prompt)
    widget = TreeWidget(tree, session=session, k=3)
    widget.replies = []
    done = threading.Event()

    def send(content, buffers=None):
        shown = set(decode_column(widget.nodes["columns"]["node_id"]))
        widget.replies.append((content, set(content.get("child_ids") or []) <= shown))
        done.set()

    widget.send = send
    widget.done = done
    return tree, widget


def _request(node_id: int, rid: str) -> dict:
    return {"kind": "inferviz:request", "id": rid, "action": "expand", "node_id": node_id}


def test_clicks_in_two_widgets_share_one_forward_and_each_gets_its_children():
    """Widget clicks go through the session's batcher: the kernel thread returns at once, and
    two clicks within batch_timeout (two explorers on one session) are one engine call."""
    session = tiny_session(batch_timeout=0.5)
    tree_a, widget_a = _click_widget(session, "t5 t6 t7")
    tree_b, widget_b = _click_widget(session, "t9 t8")
    widget_a._handle_custom_msg(_request(tree_a.root_id, "a"), [])
    widget_b._handle_custom_msg(_request(tree_b.root_id, "b"), [])
    assert widget_a.done.wait(30) and widget_b.done.wait(30)
    assert session.batcher.stats.batches == 1 and session.batcher.stats.largest_batch == 2
    for tree, widget in ((tree_a, widget_a), (tree_b, widget_b)):
        (reply, shown), = widget.replies
        assert reply["ok"] and reply["id"] in "ab"
        assert reply["child_ids"] == [c.node_id for c in tree.children(tree.root_id)]
        assert len(reply["child_ids"]) == 3
        assert shown, "the answer named children the views did not have yet"
        assert widget.pending == [] and widget.error == ""
    expected = session.distributions(tree_a, [tree_a.root_id]).top_k(0, 3)
    assert [c.token_id for c in tree_a.children(tree_a.root_id)] == expected


def test_a_bad_click_is_answered_at_once_and_changes_nothing():
    session = tiny_session()
    tree, widget = _click_widget(session, "t5 t6")
    before = tree.to_json()
    widget._handle_custom_msg({**_request(tree.root_id, "x"), "params": {"k": 10**6}}, [])
    (reply, _), = widget.replies
    assert not reply["ok"] and "k" in reply["error"]
    assert tree.to_json() == before and widget.pending == []


def test_session_batch_settings_are_checked():
    with pytest.raises(ValueError, match="batch_timeout must be a number of seconds"):
        tiny_session(batch_timeout=-1)
    with pytest.raises(ValueError, match="batch_size"):
        tiny_session(batch_size=0)
