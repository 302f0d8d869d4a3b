"""Every entry point refuses NaN / +inf logits with one message that says what is wrong, where
(node or position, token id, count), and leaves the tree unchanged."""

from __future__ import annotations

import pytest
from broken_models import broken_lens_adapter, broken_logits

BROKEN = "the model or its dtype is broken"


def test_expand_refuses_nan_logits_naming_node_token_and_count(tiny_session):
    tree = tiny_session.tree("Hello")
    with broken_logits(tiny_session, [17, 40]), pytest.raises(
            ValueError, match=rf"model returned NaN logits at node 0 \(token id 17 and 1 "
                              rf"others\); {BROKEN}"):
        tiny_session.expand(tree, 0, k=3)
    assert len(tree) == 1


def test_expand_refuses_inf_logits_not_calling_them_a_row_without_finite_value(tiny_session):
    tree = tiny_session.tree("Hello")
    with broken_logits(tiny_session, [9], float("inf")), pytest.raises(
            ValueError, match=r"model returned \+inf logits at node 0 \(token id 9\)") as err:
        tiny_session.expand(tree, 0, k=3)
    assert "no finite value" not in str(err.value) and len(tree) == 1


def test_expand_of_several_nodes_counts_the_rows(tiny_session):
    tree = tiny_session.tree("Hello")
    kids = tiny_session.expand(tree, 0, k=2)
    with broken_logits(tiny_session, [17]), pytest.raises(
            ValueError, match=rf"at node {kids[0].node_id} \(token id 17 and 1 others, in 2 "
                              rf"nodes\)"):
        tiny_session.expand(tree, [k.node_id for k in kids], k=2)
    assert len(tree) == 3


def test_all_minus_inf_row_is_refused_as_no_finite_value(tiny_session):
    tree = tiny_session.tree("Hello")
    with broken_logits(tiny_session, range(tiny_session.vocab_size), float("-inf")), \
            pytest.raises(ValueError, match=rf"no finite value at node 0: all -inf.*{BROKEN}"):
        tiny_session.expand(tree, 0, k=1)


@pytest.mark.parametrize("strategy, params", [
    ("greedy", {}), ("sample", {"top_k": 5}), ("beam", {"num_beams": 2}),
    ("smc", {"particles": 2}), ("bfs", {"depth": 2}),
])
def test_strategies_refuse_nan_logits(tiny_session, strategy, params):
    with broken_logits(tiny_session, [17]), pytest.raises(
            ValueError, match=r"model returned NaN logits at node \d+ \(token id 17"):
        tiny_session.generate("Hello", strategy=strategy, max_new_tokens=2, seed=0, **params)


def test_contrastive_refuses_nan_in_the_lens_amateur(tiny_session, monkeypatch):
    monkeypatch.setattr(tiny_session, "adapter", broken_lens_adapter(tiny_session.adapter, 21))
    with pytest.raises(ValueError, match=r"the amateur \(layer 0 through the logit lens\) "
                                         r"returned NaN logits at row 0 \(token id 21\)"):
        tiny_session.generate("Hello", strategy="contrastive", amateur_layer=0,
                              max_new_tokens=2)


def test_widget_click_path_refuses_nan_logits(tiny_session):
    tree = tiny_session.tree("Hello")
    with broken_logits(tiny_session, [17]):
        future = tiny_session.submit_expand(tree, 0, k=2)
        with pytest.raises(ValueError, match=r"NaN logits at node 0 \(token id 17\)"):
            future.result(timeout=60)
    assert len(tree) == 1
