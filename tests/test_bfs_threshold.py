"""Breadth-first expansion (InferActive's generate_with_bfs) and probability-threshold expansion
(Loom's block multiverse): shape of the tree, batching, ordering, budgets and errors."""

from __future__ import annotations

import math

import pytest
import torch
from tiny_models import tiny_session


@pytest.fixture(scope="module")
def tiny():
    """A tiny random Llama with sharpened logits, so path probabilities spread out."""
    session = tiny_session("llama")
    with torch.no_grad():
        session.model.lm_head.weight.mul_(40.0)
    return session


# ----------------------------------------------------------------- bfs
def test_bfs_expands_top_k_at_every_node_to_depth(tiny):
    tree = tiny.tree("t5 t6")
    res = tiny.generate(tree, strategy="bfs", k=3, depth=3, stop_at_eos=False)
    by_depth = {}
    for node in tree.nodes.values():
        by_depth[node.depth] = by_depth.get(node.depth, 0) + 1
    assert by_depth == {0: 1, 1: 3, 2: 9, 3: 27}
    for node in tree.nodes.values():
        if node.depth < 3:
            kids = tree.children(node.node_id)
            want = tiny.distributions(tree, [node.node_id]).top_k(0, 3)
            assert [c.token_id for c in kids] == want
    assert len(res.leaf_ids) == 27
    assert all(tree.node(n).depth == 3 for n in res.leaf_ids)


def test_bfs_leaves_are_ordered_by_cum_logprob(tiny):
    res = tiny.generate("t7", strategy="bfs", k=2, depth=3, stop_at_eos=False)
    cum = [res.tree.node(n).cum_logprob for n in res.leaf_ids]
    assert cum == sorted(cum, reverse=True)
    assert res.scores == pytest.approx(cum)
    path_prob = res.tree.node(res.leaf_ids[0]).meta["path_prob"]
    assert path_prob == pytest.approx(math.exp(cum[0]), rel=1e-5)


def test_bfs_one_batched_forward_per_level(tiny):
    tree = tiny.tree("t11 t12")
    before = tiny.engine.stats.forwards
    tiny.generate(tree, strategy="bfs", k=2, depth=3, stop_at_eos=False)
    assert tiny.engine.stats.forwards - before == 3


def test_bfs_sampler_settings_set_prob_and_filtered_children_are_not_expanded(tiny):
    tree = tiny.tree("t20")
    tiny.generate(tree, strategy="bfs", k=3, depth=2, top_k=1, stop_at_eos=False)
    level1 = tree.children(tree.root_id)
    assert next(c.prob for c in level1) == pytest.approx(1.0)
    assert all(c.prob == 0.0 for c in level1[1:])
    assert all(not c.children for c in level1[1:])
    assert len(level1[0].children) == 3


@pytest.mark.parametrize("kwargs, name", [
    ({"k": 0}, "k"), ({"depth": 0}, "depth"), ({"max_nodes": 0}, "max_nodes"),
    ({"k": 10, "depth": 6}, "max_nodes"), ({"depth": 5, "max_new_tokens": 3}, "depth"),
    ({"top_p": 2.0}, "top_p"), ({"beams": 3}, "beams"),
])
def test_bfs_bad_arguments_leave_the_tree_alone(tiny, kwargs, name):
    tree = tiny.tree("t5 t6")
    tiny.expand(tree, tree.root_id, k=2)
    before = tree.to_json()
    with pytest.raises((ValueError, TypeError), match=name):
        tiny.generate(tree, strategy="bfs", **kwargs)
    assert tree.to_json() == before


# ----------------------------------------------------------------- threshold
def test_threshold_keeps_only_paths_above_the_threshold(tiny):
    tree = tiny.tree("t30 t31")
    res = tiny.generate(tree, strategy="threshold", threshold=0.02, k=4, max_nodes=500,
                        max_new_tokens=6, stop_at_eos=False)
    assert res.finish_reason == "threshold"
    added = [n for n in tree.nodes.values() if n.meta.get("strategy") == "threshold"]
    assert added
    for node in added:
        assert node.meta["path_prob"] >= 0.02
        assert node.meta["path_prob"] == pytest.approx(math.exp(node.cum_logprob), rel=1e-5)
        assert node.depth <= 6
    # Every expanded node had its above-threshold top-k children added, and nothing else.
    for node in [tree.root] + added:
        if not node.children:
            continue
        dists = tiny.distributions(tree, [node.node_id])
        want = [t for t in dists.top_k(0, 4)
                if node.cum_logprob + float(dists.logprobs[0, t]) >= math.log(0.02)]
        assert [c.token_id for c in tree.children(node.node_id)] == want


def test_threshold_respects_the_node_budget_and_is_best_first(tiny):
    tree = tiny.tree("t40")
    res = tiny.generate(tree, strategy="threshold", threshold=1e-6, k=3, max_nodes=10,
                        batch_size=1, max_new_tokens=8, stop_at_eos=False)
    assert res.finish_reason == "max_nodes"
    assert len(tree) - 1 == 10
    cum = [res.tree.node(n).cum_logprob for n in res.leaf_ids]
    assert cum == sorted(cum, reverse=True)
    # Best-first: every expanded node is at least as probable as every unexpanded leaf.
    expanded = [n for n in tree.nodes.values() if n.children and not n.is_root]
    if expanded:
        assert min(n.cum_logprob for n in expanded) >= max(cum) - 1e-9


@pytest.mark.parametrize("kwargs, name", [
    ({"threshold": 0.0}, "threshold"), ({"threshold": 1.0}, "threshold"),
    ({"threshold": 1.5}, "threshold"), ({"max_nodes": 0}, "max_nodes"), ({"k": 0}, "k"),
    ({"temperature": 0.5}, "temperature"), ({"max_new_tokens": 0}, "max_new_tokens"),
])
def test_threshold_bad_arguments_leave_the_tree_alone(tiny, kwargs, name):
    tree = tiny.tree("t5 t6")
    tiny.expand(tree, tree.root_id, k=2)
    before = tree.to_json()
    with pytest.raises((ValueError, TypeError), match=name):
        tiny.generate(tree, strategy="threshold", **kwargs)
    assert tree.to_json() == before


def test_threshold_leaves_are_the_nodes_without_children_over_the_threshold(tiny):
    # A flat model: one level of children clears the threshold, their children do not. The
    # result is those children (expanded, but nothing above the threshold), not the start
    # node alone with an empty text (issue 16: "threshold with defaults stops after one level
    # with an empty result").
    flat = tiny_session("llama")
    tree = flat.tree("t30 t31")
    res = flat.generate(tree, strategy="threshold", max_new_tokens=4)  # the defaults
    first = tree.children(tree.root_id)
    assert first and all(not tree.children(c.node_id) for c in first)
    assert sorted(res.leaf_ids) == sorted(c.node_id for c in first)
    assert tree.root_id not in res.leaf_ids and all(res.texts)
    assert res.scores == sorted(res.scores, reverse=True)
