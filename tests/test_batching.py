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
