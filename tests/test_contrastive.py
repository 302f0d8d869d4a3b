"""Contrastive decoding (Li et al. 2022): hand-computed scores, the plausibility mask, a lens
amateur, a real expert/amateur pair, and refusing an amateur with another vocabulary."""

from __future__ import annotations

import math

import pytest
import torch
from tiny_models import tiny_model, tiny_session

from inferviz import Session
from inferviz.lens import capture_residuals
from inferviz.strategies.contrastive import contrastive_scores

INF = math.inf


# ----------------------------------------------------------------- the pure function
def test_scores_of_a_hand_computed_vector():
    # p_exp = [.5, .3, .15, .05]; alpha = .2 keeps p >= .1, i.e. the first three tokens.
    # p_ama = [.6, .1, .2, .1] (temperature 1): score = log(p_exp / p_ama) on the set.
    expert = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    amateur = torch.log(torch.tensor([0.6, 0.1, 0.2, 0.1]))
    scores = contrastive_scores(expert, amateur, alpha=0.2, amateur_temperature=1.0)
    expected = torch.tensor([-0.1823216, 1.0986123, -0.2876821, -INF])
    assert torch.allclose(scores, expected, atol=1e-6)
    assert int(scores.argmax()) == 1


def test_amateur_temperature_divides_the_amateur_logits():
    # expert logits [2, 1, 0] -> log p = [-0.407606, -1.407606, -2.407606], p = [.665, .245, .090]
    # amateur logits [1, 0, 2] / 0.5 = [2, 0, 4] -> log p = [-2.142932, -4.142932, -0.142932]
    # alpha = .3 keeps p >= .1996: tokens 0 and 1.
    scores = contrastive_scores(torch.tensor([2.0, 1.0, 0.0]), torch.tensor([1.0, 0.0, 2.0]),
                                alpha=0.3, amateur_temperature=0.5)
    assert torch.allclose(scores, torch.tensor([1.7353257, 2.7353257, -INF]), atol=1e-6)


def test_alpha_zero_keeps_every_token_and_alpha_one_only_the_top():
    expert = torch.tensor([[3.0, 1.0, -2.0], [0.0, 0.5, 0.2]])
    amateur = torch.tensor([[1.0, 1.0, 1.0], [0.3, 0.0, 0.1]])
    every = contrastive_scores(expert, amateur, alpha=0.0, amateur_temperature=1.0)
    assert torch.isfinite(every).all()
    expect = torch.log_softmax(expert, -1) - torch.log_softmax(amateur, -1)
    assert torch.allclose(every, expect)
    top = contrastive_scores(expert, amateur, alpha=1.0, amateur_temperature=1.0)
    assert torch.isfinite(top).sum(-1).tolist() == [1, 1]
    assert top.argmax(-1).tolist() == expert.argmax(-1).tolist()


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan")])
def test_alpha_outside_unit_interval_is_refused(alpha):
    with pytest.raises(ValueError, match="alpha"):
        contrastive_scores(torch.zeros(3), torch.zeros(3), alpha=alpha)


def test_amateur_temperature_must_be_positive():
    with pytest.raises(ValueError, match="amateur_temperature"):
        contrastive_scores(torch.zeros(3), torch.zeros(3), amateur_temperature=0.0)


# ----------------------------------------------------------------- the strategy, tiny models
@pytest.fixture(scope="module")
def pair():
    expert = tiny_session("llama")
    amateur = Session(tiny_model("llama", seed=1), expert.tokenizer, name="tiny-amateur")
    return expert, amateur


def test_each_step_picks_the_argmax_of_the_scores_and_records_the_mask(pair):
    expert, amateur = pair
    res = expert.generate("t5 t6 t7", strategy="contrastive", amateur=amateur, alpha=0.1,
                          max_new_tokens=4, stop_at_eos=False)
    tree = res.tree
    path = tree.path(res.leaf_ids[0])[1:]
    assert len(path) == 4
    for node in path:
        parent = node.parent_id
        e = expert.distributions(tree, [parent]).logits[0]
        a = amateur.distributions(tree, [parent]).logits[0]
        scores = contrastive_scores(e, a, 0.1, 0.5)
        assert node.token_id == int(scores.argmax())
        assert node.meta["cd_chosen"] and node.meta["cd_plausible"]
        assert node.meta["cd_score"] == pytest.approx(float(scores.max()), abs=1e-5)
        siblings = tree.children(parent)
        assert sum(s.meta["cd_chosen"] for s in siblings) == 1
        for s in siblings:
            assert s.meta["cd_plausible"] == math.isfinite(s.meta["cd_score"])
            assert (s.prob == 0.0) == (not s.meta["cd_plausible"])
            exp_lp = float(torch.log_softmax(e, -1)[s.token_id])
            assert s.meta["cd_expert_logprob"] == pytest.approx(exp_lp, abs=1e-5)
            assert s.raw_logprob == pytest.approx(exp_lp, abs=1e-5)
        # The expert's most likely token is always shown (it is always plausible).
        assert int(e.argmax()) in {s.token_id for s in siblings}
    df = res.to_pandas()
    for col in ("cd_expert_logprob", "cd_amateur_logprob", "cd_score", "cd_plausible",
                "cd_chosen"):
        assert col in df.columns


def test_lens_amateur_reads_the_early_layer_through_the_kv_engine(pair):
    expert, _ = pair
    layer, temp = 1, 0.7
    res = expert.generate("t9 t10", strategy="contrastive", amateur_layer=layer,
                          amateur_temperature=temp, max_new_tokens=3, stop_at_eos=False)
    tree = res.tree
    for node in tree.path(res.leaf_ids[0])[1:]:
        ids = tree.token_ids(node.parent_id)
        with torch.no_grad(), capture_residuals(expert.adapter) as states:
            expert.model(input_ids=torch.tensor([ids]), use_cache=False)
            lens = expert.adapter.lens_logits(states[layer][0, -1]).float()
        want = torch.log_softmax(lens / temp, -1)
        for s in tree.children(node.parent_id):
            assert s.meta["cd_amateur_logprob"] == pytest.approx(float(want[s.token_id]),
                                                                 abs=1e-4)


@pytest.mark.parametrize("kwargs, name", [
    ({"alpha": 1.5}, "alpha"),
    ({"alpha": -0.01}, "alpha"),
    ({"amateur_temperature": 0}, "amateur_temperature"),
    ({"amateur_layer": 99}, "amateur_layer"),
    ({"amateur": None}, "amateur"),
    ({"temperature": 0.7}, "temperature"),
])
def test_bad_arguments_are_refused_and_leave_the_tree_alone(pair, kwargs, name):
    expert, amateur = pair
    tree = expert.tree("t5 t6")
    expert.expand(tree, tree.root_id, k=2)
    before = tree.to_json()
    kwargs = {"amateur": amateur, **kwargs}
    if "amateur_layer" in kwargs:
        kwargs.pop("amateur")
    with pytest.raises((ValueError, TypeError), match=name):
        expert.generate(tree, strategy="contrastive", max_new_tokens=3, **kwargs)
    assert tree.to_json() == before


def test_amateur_with_another_vocabulary_is_refused(pair, tiny_tokenizer):
    expert, _ = pair
    other = Session(tiny_model("llama", vocab_size=len(tiny_tokenizer)), tiny_tokenizer,
                    name="other-vocab")
    tree = expert.tree("t5 t6")
    before = tree.to_json()
    with pytest.raises(ValueError, match="another vocabulary"):
        expert.generate(tree, strategy="contrastive", amateur=other, max_new_tokens=2)
    assert tree.to_json() == before


# ----------------------------------------------------------------- real models
@pytest.mark.slow
def test_gemma_amateur_for_the_default_expert_is_refused():
    expert = Session.from_pretrained("default")
    with pytest.raises(ValueError, match="another vocabulary"):
        expert.generate("Hello", strategy="contrastive", amateur="gemma3-270m",
                        max_new_tokens=2)


@pytest.fixture(scope="module")
def qwen_pair():
    from inferviz import zoo

    if not (zoo.is_installed("qwen2.5-coder-1.5b") and zoo.is_installed("qwen2.5-coder-0.5b")):
        pytest.skip("qwen2.5-coder-1.5b / -0.5b not installed (make models)")
    return (Session.from_pretrained("qwen2.5-coder-1.5b"),
            Session.from_pretrained("qwen2.5-coder-0.5b"))


@pytest.mark.slow
def test_real_pair_decodes_and_the_inverted_ratio_would_pick_differently(qwen_pair):
    expert, amateur = qwen_pair
    res = expert.generate("def quicksort(arr):\n", strategy="contrastive", amateur=amateur,
                          alpha=0.1, max_new_tokens=6)
    tree = res.tree
    inverted_differs = 0
    for node in tree.path(res.leaf_ids[0])[1:]:
        e = expert.distributions(tree, [node.parent_id]).logits[0]
        a = amateur.distributions(tree, [node.parent_id]).logits[0]
        scores = contrastive_scores(e, a, 0.1, 0.5)
        assert node.token_id == int(scores.argmax())
        assert node.meta["cd_plausible"] and node.meta["cd_chosen"]
        # Inference Edge: log p_exp / log p_ama, no plausibility mask.
        inverted = torch.log_softmax(e, -1) / torch.log_softmax(a, -1)
        inverted_differs += int(inverted.argmax()) != node.token_id
    assert inverted_differs >= 1
    assert res.text
