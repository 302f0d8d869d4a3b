"""strategy="custom": a user function picks the children; recorded like a built-in."""

from __future__ import annotations

import pytest
import torch
from tiny_models import tiny_session

from inferviz.strategies import STRATEGIES
from inferviz.strategies.custom import register_strategy


@pytest.fixture(scope="module")
def tiny():
    return tiny_session("llama")


def second_best(dist, node):
    return dist.top_k(2)[::-1]  # follow the runner-up, keep the best as a sibling


def test_first_token_is_followed_and_all_are_children(tiny):
    res = tiny.generate("t5 t6", strategy="custom", choose=second_best, max_new_tokens=4,
                        stop_at_eos=False)
    tree = res.tree
    path = tree.path(res.leaf_ids[0])[1:]
    assert len(path) == 4
    for node in path:
        dists = tiny.distributions(tree, [node.parent_id])
        assert node.token_id == dists.top_k(0, 2)[1]
        assert node.rank == 1
        assert node.meta == {"strategy": "custom", "custom_followed": True}
        siblings = tree.children(node.parent_id)
        assert len(siblings) == 2
    df = res.to_pandas()
    assert set(df["strategy"].dropna()) == {"custom"}


def test_dist_is_read_only_and_matches_the_model(tiny):
    seen = []

    def spy(dist, node):
        seen.append((dist.logprobs, dist.probs, dist.entropy, node))
        dist.logprobs[:] = 0.0  # a copy: must not leak into the tree
        with pytest.raises(AttributeError):
            dist.logprobs = None
        return [int(torch.argmax(dist.probs))]

    res = tiny.generate("t8", strategy="custom", choose=spy, max_new_tokens=2, temperature=0.5,
                        stop_at_eos=False)
    first = res.tree.path(res.leaf_ids[0])[1]
    logprobs, probs, entropy, node = seen[0]
    assert node.is_root
    assert first.raw_logprob == pytest.approx(float(logprobs[first.token_id]), abs=1e-6)
    assert first.raw_logprob < 0
    assert first.prob == pytest.approx(float(probs[first.token_id]), abs=1e-6)
    assert first.entropy == pytest.approx(entropy, abs=1e-6)


def test_errors_from_choose_name_choose(tiny):
    def broken(dist, node):
        raise KeyError("oops")

    tree = tiny.tree("t5")
    with pytest.raises(RuntimeError, match="choose raised KeyError"):
        tiny.generate(tree, strategy="custom", choose=broken, max_new_tokens=3)
    assert len(tree) == 1


@pytest.mark.parametrize("returned, match", [
    ([], "no token ids"), (["a"], "token ids must be ints"), ([10**9], r"\[0, 97\)"),
    (None, "list of token ids"),
])
def test_bad_return_values_are_explained(tiny, returned, match):
    with pytest.raises((ValueError, TypeError), match=match):
        tiny.generate("t5", strategy="custom", choose=lambda d, n: returned, max_new_tokens=2)


def test_choose_is_required(tiny):
    with pytest.raises(TypeError, match="choose"):
        tiny.generate("t5", strategy="custom", max_new_tokens=2)


def test_register_strategy_makes_a_named_strategy(tiny):
    register_strategy("runner_up", second_best)
    try:
        res = tiny.generate("t5 t6", strategy="runner_up", max_new_tokens=3, stop_at_eos=False)
        direct = tiny.generate("t5 t6", strategy="custom", choose=second_best,
                               max_new_tokens=3, stop_at_eos=False)
        assert res.token_ids == direct.token_ids
        assert res.tree.path(res.leaf_ids[0])[-1].meta["strategy"] == "runner_up"
    finally:
        STRATEGIES.pop("runner_up", None)
    with pytest.raises(ValueError, match="built in"):
        register_strategy("beam", second_best)
