"""Session: trees, expansion (batched, KV-cached), chat prompts, bad input leaves trees as they
were. Fast tests use a tiny random model; `model` tests the embedded default."""

from __future__ import annotations

import math

import pytest
import torch

SAMPLER_ERRORS = [
    (dict(k=0), "k must be"),
    (dict(k=10**6), "k must be"),
    (dict(temperature=0), "greedy"),
    (dict(temperature=-1.0), "greedy"),
    (dict(top_p=0.0), "top_p"),
    (dict(top_p=1.5), "top_p"),
    (dict(min_p=-0.1), "min_p"),
    (dict(min_p=1.1), "min_p"),
    (dict(top_k=0), "top_k"),
]


def test_tree_is_rooted_at_the_prompt(tiny_session):
    tree = tiny_session.tree("Hello world")
    assert tree.prompt == "Hello world" and len(tree) == 1
    assert tree.prompt_ids == tiny_session.encode("Hello world")


def test_expand_adds_top_k_children_by_raw_rank(tiny_session):
    tree = tiny_session.tree("Hello world")
    kids = tiny_session.expand(tree, tree.root_id, k=4)
    assert [k.rank for k in kids] == [0, 1, 2, 3]
    assert all(k.parent_id == tree.root_id and k.depth == 1 for k in kids)
    logprobs = [k.raw_logprob for k in kids]
    assert logprobs == sorted(logprobs, reverse=True)
    assert kids[0].entropy > 0
    # processed prob equals raw prob at temperature 1 with no filters
    for k in kids:
        assert k.prob == pytest.approx(math.exp(k.raw_logprob), rel=1e-5)


def test_filtered_children_have_prob_zero_not_nan(tiny_session):
    tree = tiny_session.tree("Hello")
    kids = tiny_session.expand(tree, tree.root_id, k=5, top_k=2)
    probs = [k.prob for k in kids]
    assert probs[2:] == [0.0, 0.0, 0.0]
    assert sum(probs[:2]) == pytest.approx(1.0)
    assert not any(math.isnan(p) for p in probs)


def test_several_nodes_expand_in_one_forward(tiny_session):
    tree = tiny_session.tree("Hello")
    kids = tiny_session.expand(tree, tree.root_id, k=3)
    before = tiny_session.engine.stats.forwards
    grandkids = tiny_session.expand(tree, [k.node_id for k in kids], k=2)
    assert tiny_session.engine.stats.forwards == before + 1
    assert [g.parent_id for g in grandkids] == [kids[0].node_id] * 2 + [kids[1].node_id] * 2 + \
        [kids[2].node_id] * 2


def test_child_of_an_expanded_node_costs_one_token(tiny_session):
    tree = tiny_session.tree("The capital of France is Paris.")
    (kid,) = tiny_session.expand(tree, tree.root_id, k=1)
    computed = tiny_session.engine.stats.tokens_computed
    tiny_session.expand(tree, kid.node_id, k=1)
    assert tiny_session.engine.stats.tokens_computed == computed + 1


def test_batched_expansion_matches_one_at_a_time(tiny_session, tiny_tokenizer):
    from inferviz import Session

    tree = tiny_session.tree("Hello world")
    kids = tiny_session.expand(tree, tree.root_id, k=3)
    deep = tiny_session.expand(tree, kids[0].node_id, k=2)
    ids = [tree.root_id, kids[1].node_id, deep[1].node_id]
    batched = tiny_session.distributions(tree, ids).logits
    fresh = Session(tiny_session.model, tiny_tokenizer)
    for row, node_id in enumerate(ids):
        alone = fresh.distributions(tree, [node_id]).logits[0]
        full = tiny_session.model(torch.tensor([tree.token_ids(node_id)])).logits[0, -1]
        torch.testing.assert_close(batched[row], alone, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(batched[row], full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kwargs,message", SAMPLER_ERRORS)
def test_bad_sampler_arguments_leave_the_tree_unchanged(tiny_session, kwargs, message):
    tree = tiny_session.tree("Hello")
    tiny_session.expand(tree, tree.root_id, k=2)
    before = tree.to_json()
    args = {"k": 2, **kwargs}
    with pytest.raises((ValueError, TypeError), match=message):
        tiny_session.expand(tree, tree.root_id, **args)
    assert tree.to_json() == before


@pytest.mark.parametrize("node_ids,message", [
    (99, "node_ids: 99 is not a node"), ([0, 42], "42 is not a node"), ([], "empty"),
    ("0", "must be an int or a list of ints, got str"), (True, "must hold ints")])
def test_unknown_node_ids_are_rejected(tiny_session, node_ids, message):
    tree = tiny_session.tree("Hello")
    before = tree.to_json()
    with pytest.raises((ValueError, TypeError), match=message):
        tiny_session.expand(tree, node_ids)
    assert tree.to_json() == before


def test_empty_prompt_is_rejected(tiny_session):
    with pytest.raises(ValueError, match="prompt is empty"):
        tiny_session.tree("")
    with pytest.raises(TypeError, match="prompt must be a str"):
        tiny_session.tree(None)


def test_prompt_longer_than_context_is_rejected(tiny_session):
    with pytest.raises(ValueError, match="longer than the model's context"):
        tiny_session.tree("Hello world " * 400)


def test_unknown_processor_argument_is_rejected(tiny_session):
    tree = tiny_session.tree("Hello")
    with pytest.raises(TypeError, match="top_q"):
        tiny_session.expand(tree, 0, top_q=0.5)
    assert len(tree) == 1


# --------------------------------------------------------------------- default model
@pytest.mark.model
def test_cached_expansion_equals_full_forward_on_default_model(default_session):
    s = default_session
    tree = s.tree("The capital of France is")
    kids = s.expand(tree, tree.root_id, k=3)
    grand = s.expand(tree, [k.node_id for k in kids], k=2)
    deeper = s.expand(tree, [g.node_id for g in grand[:3]], k=2)
    ids = [tree.root_id] + [n.node_id for n in kids + grand + deeper]
    cached = s.distributions(tree, ids).logits
    with torch.no_grad():
        for row, node_id in enumerate(ids):
            full = s.model(torch.tensor([tree.token_ids(node_id)])).logits[0, -1].float()
            torch.testing.assert_close(cached[row], full, rtol=1e-4, atol=1e-4)


@pytest.mark.model
def test_default_model_knows_paris(default_session):
    tree = default_session.tree("The capital of France is")
    (top,) = default_session.expand(tree, tree.root_id, k=1)
    assert top.token == " Paris" and top.prob > 0.5


@pytest.mark.model
def test_chat_prompt_applies_the_template(default_session):
    prompt = default_session.chat_prompt([{"role": "user", "content": "Hi!"}])
    assert "Hi!" in prompt and "<|im_start|>" in prompt
    tree = default_session.tree(prompt)
    assert tree.prompt_ids == default_session.tokenizer(prompt)["input_ids"]
    with pytest.raises(TypeError, match="messages"):
        default_session.chat_prompt([{"content": "no role"}])
