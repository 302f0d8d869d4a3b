"""Beam search: the same sequences, scores and order as transformers'
``generate(num_beams=N, do_sample=False)``, every hypothesis in the tree, clear errors."""

from __future__ import annotations

import pytest
import torch
from tiny_models import tiny_session

TINY_PROMPTS = ["t5 t17 t30", "t40", "t3 t3 t3 t9", "t88 t12"]
REAL_PROMPTS = [
    "The capital of France is",
    "Once upon a time",
    "def fibonacci(n):",
    "The best way to learn a language is",
    "Q: What is 2+2?\nA:",
    "My favourite colour is",
    "import numpy as np\n",
    "In 1492, Columbus",
]
SETTINGS = [
    {"num_beams": 4},
    {"num_beams": 3, "length_penalty": 0.5, "early_stopping": True, "num_return_sequences": 2},
    {"num_beams": 4, "length_penalty": 2.0, "early_stopping": "never", "num_return_sequences": 3},
    {"num_beams": 2, "length_penalty": -1.0, "early_stopping": False, "num_return_sequences": 2},
]


def hf_beam(session, prompt: str, max_new_tokens: int, **settings):
    ids = torch.tensor([session.encode(prompt)])
    with torch.no_grad():
        out = session.model.generate(
            ids, attention_mask=torch.ones_like(ids), do_sample=False,
            max_new_tokens=max_new_tokens, eos_token_id=sorted(session.eos_token_ids),
            pad_token_id=session.tokenizer.pad_token_id, output_scores=True,
            return_dict_in_generate=True, **settings)
    return ids.shape[1], out


def assert_same_as_hf(session, prompt: str, max_new_tokens: int, **settings) -> None:
    res = session.generate(prompt, strategy="beam", max_new_tokens=max_new_tokens, **settings)
    n_prompt, out = hf_beam(session, prompt, max_new_tokens, **settings)
    # transformers fills finished rows with `pad_token_id or eos_token_id[0]` (a pad id of 0
    # falls through to EOS).
    pad = session.tokenizer.pad_token_id or min(session.eos_token_ids)
    assert len(res.leaf_ids) == out.sequences.shape[0]
    for i, leaf in enumerate(res.leaf_ids):
        ours = res.tree.token_ids(leaf)[n_prompt:]
        theirs = out.sequences[i, n_prompt:].tolist()
        assert theirs[: len(ours)] == ours, (prompt, settings, i)
        assert all(t == pad for t in theirs[len(ours):]), (prompt, settings, i)
        # Within 1e-4 as sums of log-probabilities: a negative length penalty multiplies the
        # score (and float32 rounding differences of the forward) by the length.
        scale = len(ours) ** settings.get("length_penalty", 1.0)
        assert res.scores[i] * scale == pytest.approx(
            float(out.sequences_scores[i]) * scale, abs=1e-4)
        if scale >= 1:
            assert res.scores[i] == pytest.approx(float(out.sequences_scores[i]), abs=1e-4)


@pytest.fixture(scope="module")
def tiny():
    """A tiny random Llama with sharpened logits and a bias towards EOS (id 2), so hypotheses
    finish at different lengths and the EOS / early-stopping paths are exercised."""
    session = tiny_session("llama")
    head = session.model.lm_head
    with torch.no_grad():
        head.weight.mul_(40.0)
        head.bias = torch.nn.Parameter(torch.zeros(head.weight.shape[0]))
        head.bias[2] = 8.0
    assert session.eos_token_ids == {2}
    return session


# ----------------------------------------------------------------- parity, tiny model (fast)
@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("prompt", TINY_PROMPTS)
def test_tiny_beam_matches_transformers(tiny, prompt, settings):
    assert_same_as_hf(tiny, prompt, 7, **settings)


@pytest.mark.parametrize("settings", SETTINGS[:2])
def test_beam_at_context_limit_matches_transformers_at_max_length(tiny, settings):
    prompt = " ".join(f"t{5 + i % 80}" for i in range(251))  # BOS + 251 = 252 of 256 tokens
    res = tiny.generate(prompt, strategy="beam", max_new_tokens=20, **settings)
    n_prompt, out = hf_beam(tiny, prompt, 256 - 252, **settings)
    assert n_prompt == 252 and res.finish_reason in ("context", "beams_finished")
    assert len(res.leaf_ids) == out.sequences.shape[0]
    pad = tiny.tokenizer.pad_token_id or min(tiny.eos_token_ids)
    for i, leaf in enumerate(res.leaf_ids):
        ours = res.tree.token_ids(leaf)[n_prompt:]
        theirs = out.sequences[i, n_prompt:].tolist()
        assert theirs[: len(ours)] == ours and all(t == pad for t in theirs[len(ours):])
        assert res.scores[i] == pytest.approx(float(out.sequences_scores[i]), abs=1e-4)
    assert max(n.depth for n in res.tree.nodes.values()) <= 4


def test_tiny_beam_finishes_hypotheses_at_eos(tiny):
    res = tiny.generate(TINY_PROMPTS[0], strategy="beam", max_new_tokens=7, num_beams=3,
                        early_stopping=True, num_return_sequences=3)
    eos = tiny.eos_token_ids
    assert any(res.tree.node(leaf).token_id in eos for leaf in res.leaf_ids)
    assert_same_as_hf(tiny, TINY_PROMPTS[0], 7, num_beams=3, early_stopping=True,
                      num_return_sequences=3)


def test_num_beams_one_is_beam_search_with_two_candidates(tiny):
    res = tiny.generate(TINY_PROMPTS[1], strategy="beam", max_new_tokens=5, num_beams=1)
    steps = [n for n in res.tree.nodes.values() if n.meta.get("beam_step") == 1]
    assert len(steps) == 2  # K = max(2, 1 + #eos) * num_beams candidates a step


# ----------------------------------------------------------------- the tree records
def test_every_candidate_is_in_the_tree_with_beam_meta(tiny):
    res = tiny.generate(TINY_PROMPTS[2], strategy="beam", max_new_tokens=6, num_beams=3,
                        num_return_sequences=3)
    df = res.tree.to_pandas()
    for col in ("beam_step", "beam_score", "beam_kept", "beam_final_score"):
        assert col in df.columns
    per_step = df.dropna(subset=["beam_step"]).groupby("beam_step")
    assert (per_step.size() == 2 * 3).all()  # K = max(2, 1 + one EOS id) * num_beams
    kept = df[df["beam_kept"].eq(True)]
    assert (kept.groupby("beam_step").size() <= 3).all()
    for leaf, score in zip(res.leaf_ids, res.scores):
        node = res.tree.node(leaf)
        assert node.meta["beam_final_score"] == pytest.approx(score, abs=1e-6)
        assert node.meta["beam_score"] == pytest.approx(node.cum_logprob, abs=1e-4)
        assert all(n.meta["beam_kept"] for n in res.tree.path(leaf)[1:-1])


def test_beam_score_is_running_sum_of_raw_logprobs(tiny):
    res = tiny.generate(TINY_PROMPTS[3], strategy="beam", max_new_tokens=5, num_beams=2)
    for node in res.tree.nodes.values():
        if "beam_score" in node.meta:
            assert node.meta["beam_score"] == pytest.approx(node.cum_logprob, abs=1e-4)


def test_each_step_is_one_batched_forward(tiny):
    tree = tiny.tree("t7 t8 t9")
    before = tiny.engine.stats.forwards
    res = tiny.generate(tree, strategy="beam", max_new_tokens=4, num_beams=3,
                        stop_at_eos=False)
    assert tiny.engine.stats.forwards - before == 4
    assert res.finish_reason == "max_new_tokens"


def test_result_order_is_best_first(tiny):
    res = tiny.generate(TINY_PROMPTS[0], strategy="beam", max_new_tokens=6, num_beams=4,
                        num_return_sequences=4)
    assert res.scores == sorted(res.scores, reverse=True)
    assert len(set(res.leaf_ids)) == 4


def test_beam_search_alias(tiny):
    a = tiny.generate(TINY_PROMPTS[1], strategy="beam", max_new_tokens=5, num_beams=2)
    b = tiny.generate(TINY_PROMPTS[1], strategy="beam_search", max_new_tokens=5, num_beams=2)
    assert a.token_ids == b.token_ids and a.scores == b.scores


# ----------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs, name", [
    ({"num_beams": 0}, "num_beams"),
    ({"num_beams": 2, "num_return_sequences": 3}, "num_return_sequences"),
    ({"length_penalty": float("nan")}, "length_penalty"),
    ({"early_stopping": "sometimes"}, "early_stopping"),
    ({"max_new_tokens": 0}, "max_new_tokens"),
    ({"temperature": 0.5}, "temperature"),
])
def test_bad_arguments_name_the_argument_and_leave_the_tree_alone(tiny, kwargs, name):
    tree = tiny.tree("t5 t6")
    tiny.expand(tree, tree.root_id, k=2)
    before = tree.to_json()
    kwargs = {"max_new_tokens": 4, **kwargs}
    with pytest.raises((ValueError, TypeError), match=name):
        tiny.generate(tree, strategy="beam", **kwargs)
    assert tree.to_json() == before


# ----------------------------------------------------------------- parity, real model
@pytest.fixture(scope="module")
def real():
    from inferviz import Session

    return Session.from_pretrained("default")


@pytest.mark.model
@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("prompt", REAL_PROMPTS)
def test_beam_matches_transformers_on_the_default_model(real, prompt, settings):
    assert_same_as_hf(real, prompt, 8, **settings)
