"""greedy and sample: parity with transformers, reproducibility, processors applied, bad input."""

from __future__ import annotations

import pytest
import torch

from inferviz.strategies import strategy_names

PROMPTS = ["The capital of France is", "def fibonacci(n):", "Once upon a time",
           "The three primary colors are", "In 1969, astronauts", "Water boils at",
           "My favourite recipe for pancakes", "Translate to French: good morning ->"]


@pytest.mark.model
@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_equals_transformers_generate(default_session, prompt):
    s = default_session
    res = s.generate(prompt, strategy="greedy", max_new_tokens=16)
    ids = torch.tensor([s.encode(prompt)])
    with torch.no_grad():
        hf = s.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                              max_new_tokens=16, pad_token_id=s.tokenizer.pad_token_id)
    assert res.token_ids == hf[0, ids.shape[1]:].tolist()


@pytest.mark.model
def test_greedy_ignores_a_sampling_generation_config(default_session):
    """Inference Edge's "greedy" inherited do_sample/temperature from generation_config."""
    s = default_session
    config = s.model.generation_config
    saved = (config.do_sample, config.temperature, config.top_k)
    config.do_sample, config.temperature, config.top_k = True, 5.0, 0
    try:
        texts = {s.generate("Water boils at", max_new_tokens=10).text for _ in range(3)}
        tree = s.tree("Water boils at")
        s.expand(tree, 0, k=1)
    finally:
        config.do_sample, config.temperature, config.top_k = saved
    assert len(texts) == 1
    top = tree.children(0)[0]
    res = s.generate("Water boils at", max_new_tokens=1)
    assert res.token_ids == [top.token_id] and top.rank == 0


def test_greedy_picks_the_argmax_and_records_it(tiny_session):
    res = tiny_session.generate("Hello", strategy="greedy", max_new_tokens=5, stop_at_eos=False)
    path = res.tree.path(res.node_id)[1:]
    assert len(path) == 5 and all(n.rank == 0 for n in path)
    assert all(n.meta["strategy"] == "greedy" for n in path)
    assert res.scores[0] == pytest.approx(sum(n.raw_logprob for n in path))


def test_sampling_is_reproducible_from_seed(tiny_session):
    a = tiny_session.generate("Hello", strategy="sample", max_new_tokens=8, seed=7,
                              stop_at_eos=False)
    b = tiny_session.generate("Hello", strategy="sample", max_new_tokens=8, seed=7,
                              stop_at_eos=False)
    c = tiny_session.generate("Hello", strategy="sample", max_new_tokens=8, seed=8,
                              stop_at_eos=False)
    assert a.token_ids == b.token_ids
    assert a.token_ids != c.token_ids


def test_sampling_draws_from_the_processed_distribution(tiny_session):
    """First-token frequencies over many seeds match the processed probabilities (top_k=3)."""
    s = tiny_session
    tree = s.tree("Hello")
    counts: dict[int, int] = {}
    runs = 600
    for seed in range(runs):
        res = s.generate(tree, strategy="top_k", top_k=3, temperature=2.0, max_new_tokens=1,
                         seed=seed)
        tok = res.token_ids[0]
        counts[tok] = counts.get(tok, 0) + 1
    kids = {n.token_id: n for n in tree.children(0)}
    assert set(counts) <= set(kids) and len(kids) <= 3
    for tok, n in counts.items():
        p = kids[tok].prob
        sigma = (p * (1 - p) / runs) ** 0.5
        assert abs(n / runs - p) < 5 * sigma + 1e-9


def test_filtered_tokens_are_never_sampled(tiny_session):
    res = tiny_session.generate("Hello", strategy="min_p", min_p=0.9, max_new_tokens=6, seed=0,
                                stop_at_eos=False)
    for node in res.tree.path(res.node_id)[1:]:
        assert node.prob > 0


def test_modes_set_the_temperature(tiny_session):
    focused = tiny_session.generate("Hello", strategy="sample", mode="focused", seed=0,
                                    max_new_tokens=1)
    assert focused.params["temperature"] == 0.3
    explicit = tiny_session.generate("Hello", strategy="sample", mode="exploratory",
                                     temperature=0.7, seed=0, max_new_tokens=1)
    assert explicit.params["temperature"] == 0.7
    with pytest.raises(ValueError, match="mode 'wild' is unknown"):
        tiny_session.generate("Hello", strategy="sample", mode="wild")


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(strategy="nucleus"), ValueError, "valid names: .*greedy"),
    (dict(max_new_tokens=0), ValueError, "max_new_tokens must be >= 1"),
    (dict(strategy="top_p"), ValueError, "needs top_p="),
    (dict(strategy="sample", temperature=0), ValueError, "greedy"),
    (dict(strategy="greedy", top_q=3), TypeError, "top_q"),
    (dict(seed=-1), ValueError, "seed"),
])
def test_bad_generate_arguments(tiny_session, kwargs, error, message):
    tree = tiny_session.tree("Hello")
    before = tree.to_json()
    with pytest.raises(error, match=message):
        tiny_session.generate(tree, **kwargs)
    assert tree.to_json() == before


def test_strategy_names_include_the_inference_edge_aliases():
    assert {"greedy", "sample", "top_k", "top_p", "beam_search", "beam", "contrastive",
            "smc"} <= set(strategy_names())
