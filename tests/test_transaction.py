"""Strategy runs as transactions: the model's context ends a run like EOS, a failing run leaves
the tree as it was, Stop and Ctrl-C end a run between steps with a partial result, and runs
write their nodes into the tree as they step (tiny random model, 256-token context)."""

from __future__ import annotations

import signal
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inferviz import TokenTree

# strategy -> keyword arguments that make it run several steps on the tiny model
STRATEGY_ARGS = {
    "greedy": {},
    "sample": {"seed": 0},
    "top_k": {"seed": 0, "top_k": 5},
    "beam": {"num_beams": 2},
    "contrastive": {"amateur_layer": 0, "candidates": 2},
    "smc": {"particles": 4, "seed": 0},
    "bfs": {"k": 2, "depth": 4},
    "threshold": {"threshold": 1e-12, "k": 1, "max_nodes": 40, "batch_size": 1},
    "custom": {"choose": lambda dist, node: dist.top_k(2)},
}
STEPPING = sorted(STRATEGY_ARGS)


def assert_consistent(tree: TokenTree) -> None:
    """Every node's parent exists and lists it, children lists point back, depths are the
    parent's + 1, and each node's token_ids path ends with its token."""
    for node in tree.nodes.values():
        for token_id, child_id in node.children.items():
            assert child_id in tree.nodes, f"node {node.node_id} lists missing child {child_id}"
            child = tree.nodes[child_id]
            assert child.parent_id == node.node_id and child.token_id == token_id
        if node.parent_id is None:
            assert node.node_id == tree.root_id and node.depth == 0
            continue
        assert node.parent_id in tree.nodes, f"node {node.node_id} lost its parent"
        parent = tree.nodes[node.parent_id]
        assert parent.children.get(node.token_id) == node.node_id
        assert node.depth == parent.depth + 1
        ids = tree.token_ids(node.node_id)
        assert len(ids) == len(tree.prompt_ids) + node.depth and ids[-1] == node.token_id


def snapshot(tree: TokenTree) -> dict:
    return {i: (n.parent_id, n.token_id, n.prob, dict(n.meta), dict(n.children))
            for i, n in tree.nodes.items()}


def long_tree(length: int) -> TokenTree:
    return TokenTree("x" * length, [5] * length, model="tiny")


# ------------------------------------------------------------------ A: the context limit
@pytest.mark.parametrize("strategy", STEPPING)
def test_generate_at_context_limit_finishes_with_reason_context(tiny_session, strategy):
    tree = long_tree(251)  # the tiny model's context is 256 tokens
    assert tiny_session.engine.max_positions == 256
    args = {**STRATEGY_ARGS[strategy], **({"depth": 8} if strategy == "bfs" else {})}
    res = tiny_session.generate(tree, strategy=strategy, max_new_tokens=20, stop_at_eos=False,
                                **args)
    assert res.finish_reason == "context" and not res.partial
    assert set(res.finish_reasons) == {"context"}
    assert max(n.depth for n in tree.nodes.values()) == 5
    assert all(tree.node(n).depth == 5 for n in res.leaf_ids) or strategy == "threshold"
    assert isinstance(res.text, str)
    assert_consistent(tree)


@pytest.mark.parametrize("strategy", ["greedy", "beam", "smc", "bfs", "threshold"])
def test_generate_from_a_full_context_returns_the_start_node(tiny_session, strategy):
    tree = long_tree(256)
    res = tiny_session.generate(tree, strategy=strategy, max_new_tokens=4, stop_at_eos=False,
                                **STRATEGY_ARGS[strategy])
    assert res.finish_reason == "context" and res.leaf_ids == [tree.root_id]
    assert res.text == "" and res.steps == 0 and len(tree) == 1


def test_generate_below_the_context_keeps_its_usual_reason(tiny_session):
    res = tiny_session.generate(long_tree(200), max_new_tokens=20, stop_at_eos=False)
    assert res.finish_reason == "max_new_tokens" and res.steps == 20


# ------------------------------------------------------------------ B: all or nothing
def test_failed_custom_strategy_leaves_tree_unchanged(tiny_session):
    tree = tiny_session.tree("Hello world")
    seen: list[list[int]] = []
    tree.on_change(seen.append)

    def fails_at_step_2(dist, node):
        if node.depth == 2:
            raise ValueError("no idea")
        return dist.top_k(1)

    with pytest.raises(RuntimeError, match="no idea"):
        tiny_session.generate(tree, strategy="custom", choose=fails_at_step_2,
                              max_new_tokens=5, stop_at_eos=False)
    assert len(tree) == 1 and tree.root.children == {}
    assert seen[-1] == [tree.root_id]  # views were told the root's children changed back


def test_failed_run_restores_the_nodes_it_updated(tiny_session):
    tree = tiny_session.tree("Hello world")
    tiny_session.expand(tree, tree.root_id, k=5, temperature=0.5)
    before = snapshot(tree)
    calls = []

    def follow_then_fail(dist, node):
        calls.append(node.node_id)
        if len(calls) == 2:
            raise ValueError("boom")
        return dist.top_k(5)  # the root's existing children: updated, not added

    with pytest.raises(RuntimeError, match="boom"):
        tiny_session.generate(tree, strategy="custom", choose=follow_then_fail,
                              max_new_tokens=4, stop_at_eos=False, temperature=2.0)
    assert snapshot(tree) == before


@pytest.mark.parametrize("strategy", STEPPING)
def test_a_run_failing_mid_way_is_rolled_back(tiny_session, strategy):
    tree = tiny_session.tree("Hello world")
    tiny_session.expand(tree, tree.root_id, k=3)
    before, before_json = snapshot(tree), tree.to_json()
    calls = []

    def fail_on_second_step(info):
        calls.append(info["step"])
        if info["step"] == 2:
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        tiny_session.generate(tree, strategy=strategy, max_new_tokens=6, stop_at_eos=False,
                              on_step=fail_on_second_step, **STRATEGY_ARGS[strategy])
    assert calls == [1, 2]
    assert snapshot(tree) == before and tree.to_json() == before_json
    assert_consistent(tree)


def test_failing_smc_potential_leaves_tree_unchanged(tiny_session):
    from inferviz.strategies.smc import PotentialError

    tree = tiny_session.tree("Hello world")

    def potential(text):
        if len(text) > 3:
            raise KeyError("oops")
        return 0.0

    with pytest.raises(PotentialError, match="tree is unchanged"):
        tiny_session.generate(tree, strategy="smc", particles=4, seed=0, max_new_tokens=8,
                              stop_at_eos=False, potential=potential)
    assert len(tree) == 1


def test_bad_stop_or_on_step_is_rejected_before_the_run(tiny_session):
    tree = tiny_session.tree("Hello")
    with pytest.raises(TypeError, match="stop must be a threading.Event"):
        tiny_session.generate(tree, stop="yes")
    with pytest.raises(TypeError, match="on_step must be a callable"):
        tiny_session.generate(tree, on_step=3)
    assert len(tree) == 1


# ------------------------------------------------------------------ C: Stop and live runs
@pytest.mark.parametrize("strategy", STEPPING)
def test_stop_after_step_n_gives_a_partial_result_with_n_steps(tiny_session, strategy):
    tree = tiny_session.tree("Hello world")
    stop = threading.Event()

    def stop_after_2(info):
        if info["step"] == 2:
            stop.set()

    res = tiny_session.generate(tree, strategy=strategy, max_new_tokens=8, stop_at_eos=False,
                                stop=stop, on_step=stop_after_2, **STRATEGY_ARGS[strategy])
    assert res.partial and res.finish_reason == "stopped" and res.steps == 2
    assert "partial=True" in repr(res)
    assert res.leaf_ids and all(n in tree for n in res.leaf_ids)
    added = [n for n in tree.nodes.values() if not n.is_root]
    assert added and all(n.meta.get("run_partial") is True for n in added)
    assert_consistent(tree)
    if strategy in ("greedy", "sample", "top_k", "contrastive", "custom", "beam"):
        assert tree.node(res.node_id).depth == 2
    if strategy == "smc":
        assert len(res.ess) == 2 and len(res.record.steps) == 3
        assert "stopped" in res.finish_reasons


def test_stop_callable_is_asked_between_steps(tiny_session):
    tree = tiny_session.tree("Hello world")
    res = tiny_session.generate(tree, max_new_tokens=10, stop_at_eos=False,
                                stop=lambda: len(tree) > 3)
    assert res.partial and res.steps == 3 and tree.node(res.node_id).depth == 3


def test_a_complete_run_is_not_partial_and_its_nodes_are_not_marked(tiny_session):
    tree = tiny_session.tree("Hello world")
    res = tiny_session.generate(tree, strategy="beam", num_beams=2, max_new_tokens=3,
                                stop=threading.Event())
    assert not res.partial and res.steps >= 1
    assert not any("run_partial" in n.meta for n in tree.nodes.values())


def test_ctrl_c_stops_between_steps_with_reason_interrupted(tiny_session):
    tree = tiny_session.tree("Hello world")
    before = signal.getsignal(signal.SIGINT)

    def interrupt_at_2(info):
        if info["step"] == 2:
            signal.raise_signal(signal.SIGINT)

    res = tiny_session.generate(tree, strategy="smc", particles=4, seed=0, max_new_tokens=8,
                                stop_at_eos=False, on_step=interrupt_at_2)
    assert res.partial and res.finish_reason == "interrupted" and res.steps == 2
    assert signal.getsignal(signal.SIGINT) is before  # the handler is given back


def test_hard_keyboard_interrupt_keeps_marked_nodes(tiny_session):
    tree = tiny_session.tree("Hello world")

    def interrupt_at_3(info):
        if info["step"] == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tiny_session.generate(tree, strategy="beam", num_beams=2, max_new_tokens=8,
                              stop_at_eos=False, on_step=interrupt_at_3)
    added = [n for n in tree.nodes.values() if not n.is_root]
    assert max(n.depth for n in added) == 3
    assert all(n.meta.get("run_partial") is True for n in added)
    assert_consistent(tree)


@pytest.mark.parametrize("strategy", ["beam", "smc"])
def test_nodes_appear_in_the_tree_during_the_run(tiny_session, strategy):
    tree = tiny_session.tree("Hello world")
    sizes: list[int] = []
    tree.on_change(lambda ids: sizes.append(len(tree)))
    res = tiny_session.generate(tree, strategy=strategy, max_new_tokens=5, stop_at_eos=False,
                                **STRATEGY_ARGS[strategy])
    assert res.steps == 5 and len(sizes) >= 5
    assert sizes[0] < len(tree) and sizes == sorted(sizes)  # it grew step by step


def test_smc_reports_its_ess_after_every_step(tiny_session):
    infos: list[dict] = []
    res = tiny_session.generate("Hello world", strategy="smc", particles=8, seed=1,
                                max_new_tokens=5, stop_at_eos=False, on_step=infos.append)
    assert [i["step"] for i in infos] == [1, 2, 3, 4, 5]
    assert [len(i["ess"]) for i in infos] == [1, 2, 3, 4, 5]
    assert infos[-1]["ess"] == res.ess and infos[-1]["particles"] == 8


def test_smc_meta_is_on_the_tree_when_its_step_is_announced(tiny_session):
    tree = tiny_session.tree("Hello world")
    missing: list[int] = []

    def check(info):
        missing.extend(i for i in info["node_ids"] if "smc_weight" not in tree.node(i).meta)

    res = tiny_session.generate(tree, strategy="smc", particles=4, seed=0, max_new_tokens=4,
                                stop_at_eos=False, on_step=check)
    assert missing == [] and res.steps == 4
    alive = [n for n in tree.nodes.values() if n.meta.get("smc_alive")]
    assert alive and all(tree.node(p).meta.get("smc_final_weight") is not None
                         for p, _w in res.particles)


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(strategy=st.sampled_from(STEPPING), stop_step=st.integers(1, 5),
       how=st.sampled_from(["stop", "keyboard_interrupt", "error"]))
def test_a_run_ended_at_a_random_step_leaves_a_consistent_tree(tiny_session, strategy,
                                                                stop_step, how):
    tree = tiny_session.tree("Hello")
    tiny_session.expand(tree, tree.root_id, k=2)
    before = snapshot(tree)
    stop = threading.Event()

    def end_at(info):
        if info["step"] == stop_step:
            if how == "stop":
                stop.set()
            elif how == "keyboard_interrupt":
                raise KeyboardInterrupt
            else:
                raise RuntimeError("failed")

    try:
        res = tiny_session.generate(tree, strategy=strategy, max_new_tokens=5,
                                    stop_at_eos=False, stop=stop, on_step=end_at,
                                    **STRATEGY_ARGS[strategy])
    except KeyboardInterrupt:
        assert how == "keyboard_interrupt"
    except RuntimeError:
        assert how == "error"
        assert snapshot(tree) == before
    else:  # a run may finish before the step chosen (bfs levels, threshold rounds)
        assert res.partial == (how == "stop" and res.finish_reason == "stopped")
        assert res.steps <= stop_step or not res.partial
    assert_consistent(tree)


# ------------------------------------------------------------------ the tree's journal
def _add(tree: TokenTree, parent: int, token: int, meta: dict | None = None) -> int:
    return tree.add_child(parent, token, b"t", -1.0, 0.5, 0, 1.0, meta=meta).node_id


def test_rollback_removes_what_this_thread_added_and_what_grew_below_it():
    tree = TokenTree("p", [1])
    kept = _add(tree, tree.root_id, 7, {"a": 1})
    journal = tree.begin_journal()
    _add(tree, kept, 8, {"b": 2})          # new node
    _add(tree, tree.root_id, 7, {"a": 9})  # updates the existing child
    run_node = _add(tree, tree.root_id, 9)
    other: list[int] = []
    worker = threading.Thread(target=lambda: other.append(_add(tree, run_node, 3)))
    worker.start()
    worker.join()
    assert other[0] not in journal["added"]  # another thread's click is not the run's
    seen: list[list[int]] = []
    tree.on_change(seen.append)
    removed = tree.rollback(journal)
    tree.end_journal()
    assert sorted(removed) == sorted([2, run_node, other[0]])
    assert set(tree.nodes) == {tree.root_id, kept} and tree.node(kept).meta == {"a": 1}
    assert tree.node(kept).children == {} and seen == [[tree.root_id, kept]]
    assert_consistent(tree)
    assert _add(tree, kept, 8) == 2  # nothing made since the journal began survives


def test_a_run_started_inside_a_run_is_undone_when_the_outer_run_fails(tiny_session):
    """A custom strategy may call generate on the same tree (a nested run on the same thread):
    when the outer run fails, what the inner run added goes too."""
    tree = tiny_session.tree("Hello world")
    before = snapshot(tree)

    def look_ahead_then_fail(dist, node):
        if node.depth == 1:
            tiny_session.generate(tree, strategy="beam", num_beams=3, max_new_tokens=3,
                                  stop_at_eos=False)  # the inner run succeeds, from the root
        if node.depth == 2:
            raise ValueError("no idea")
        return dist.top_k(1)

    with pytest.raises(RuntimeError, match="no idea"):
        tiny_session.generate(tree, strategy="custom", choose=look_ahead_then_fail,
                              max_new_tokens=5, stop_at_eos=False)
    assert snapshot(tree) == before
    assert_consistent(tree)


def test_an_inner_journal_folds_into_the_outer_one():
    tree = TokenTree("p", [1])
    kept = _add(tree, tree.root_id, 7, {"a": 1})
    outer = tree.begin_journal()
    first = _add(tree, tree.root_id, 8)
    inner = tree.begin_journal()
    second = _add(tree, first, 9)
    _add(tree, tree.root_id, 7, {"a": 2})  # updates kept inside the inner run
    tree.end_journal()
    assert inner["added"] == [second]
    third = _add(tree, kept, 3)
    assert outer["added"] == [first, second, third] and kept in outer["updated"]
    tree.rollback(outer)
    tree.end_journal()
    assert set(tree.nodes) == {tree.root_id, kept} and tree.node(kept).meta == {"a": 1}
    assert tree._journal() is None
