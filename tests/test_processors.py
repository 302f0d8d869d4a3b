"""Processors match transformers' own warpers element-wise, alone and composed in generate's order."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM
from transformers.generation.logits_process import (
    LogitsProcessorList,
    MinPLogitsWarper,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
    TypicalLogitsWarper,
)

from inferviz.processors import (
    SamplerSettings,
    apply_min_p,
    apply_repetition_penalty,
    apply_temperature,
    apply_top_k,
    apply_top_p,
    apply_typical_p,
    kept_mass,
    log_kept_mass,
    process,
    processed_probs,
)

HYPOTHESIS = settings(max_examples=60, deadline=None)


@st.composite
def logit_batches(draw, max_vocab: int = 40):
    """float32 logits [B, V] with ties and some -inf entries (at least one finite per row)."""
    batch = draw(st.integers(1, 3))
    vocab = draw(st.integers(2, max_vocab))
    if draw(st.booleans()):  # arbitrary values: extremes, many exact ties
        values = draw(st.lists(st.floats(-30, 30, width=32), min_size=batch * vocab,
                               max_size=batch * vocab))
        logits = torch.tensor(values, dtype=torch.float32).reshape(batch, vocab)
    else:  # realistic spread-out logits, optionally rounded to create ties
        seed, scale = draw(st.integers(0, 2**31)), draw(st.floats(0.3, 6.0))
        logits = scale * torch.randn(batch, vocab, generator=torch.Generator().manual_seed(seed))
        if draw(st.booleans()):
            logits = logits.round()
    masked = torch.tensor(draw(st.lists(st.booleans(), min_size=batch * vocab,
                                        max_size=batch * vocab))).reshape(batch, vocab)
    masked[:, draw(st.integers(0, vocab - 1))] = False
    return logits.masked_fill(masked & draw(st.booleans()), -math.inf)  # all finite or some -inf


def input_ids_for(logits: torch.Tensor, data) -> torch.Tensor:
    batch, vocab = logits.shape
    length = data.draw(st.integers(1, 8))
    ids = data.draw(st.lists(st.integers(0, vocab - 1), min_size=batch * length,
                             max_size=batch * length))
    return torch.tensor(ids, dtype=torch.long).reshape(batch, length)


def assert_same(actual: torch.Tensor, expected: torch.Tensor) -> None:
    # Exact: same operations, same ties; assert_close treats equal infinities as equal.
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)


probabilities = st.floats(0.01, 0.99)
keeps = st.integers(1, 3)


@HYPOTHESIS
@given(logit_batches(), st.floats(0.05, 5.0))
def test_temperature_matches_transformers(logits, temperature):
    assert_same(apply_temperature(logits, temperature),
                TemperatureLogitsWarper(temperature)(None, logits))


@HYPOTHESIS
@given(logit_batches(), st.integers(1, 50), keeps)
def test_top_k_matches_transformers(logits, top_k, keep):
    assert_same(apply_top_k(logits, top_k, keep),
                TopKLogitsWarper(top_k, min_tokens_to_keep=keep)(None, logits))


@HYPOTHESIS
@given(logit_batches(), probabilities, keeps)
def test_top_p_matches_transformers(logits, top_p, keep):
    assert_same(apply_top_p(logits, top_p, keep),
                TopPLogitsWarper(top_p, min_tokens_to_keep=keep)(None, logits))


@HYPOTHESIS
@given(logit_batches(), st.floats(0.0, 1.0), keeps)
def test_min_p_matches_transformers(logits, min_p, keep):
    assert_same(apply_min_p(logits, min_p, keep),
                MinPLogitsWarper(min_p, min_tokens_to_keep=keep)(None, logits))


@HYPOTHESIS
@given(logit_batches(), probabilities, keeps)
def test_typical_p_matches_transformers(logits, typical_p, keep):
    assert_same(apply_typical_p(logits, typical_p, keep),
                TypicalLogitsWarper(typical_p, min_tokens_to_keep=keep)(None, logits))


@HYPOTHESIS
@given(logit_batches(), st.floats(0.1, 5.0), st.data())
def test_repetition_penalty_matches_transformers(logits, penalty, data):
    input_ids = input_ids_for(logits, data)
    assert_same(apply_repetition_penalty(logits, input_ids, penalty),
                RepetitionPenaltyLogitsProcessor(penalty)(input_ids, logits))


@pytest.fixture(scope="module")
def tiny_model():
    config = LlamaConfig(vocab_size=32, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2)
    return LlamaForCausalLM(config)


def generate_processors(model, sampler: SamplerSettings) -> LogitsProcessorList:
    """The processor list transformers' own generate() builds for these settings."""
    config = GenerationConfig(
        do_sample=True,
        temperature=float(sampler.temperature),
        top_k=sampler.top_k,
        top_p=sampler.top_p,
        min_p=sampler.min_p,
        typical_p=sampler.typical_p,
        repetition_penalty=sampler.repetition_penalty,
    )
    return model._get_logits_processor(generation_config=config, input_ids_seq_length=4,
                                       encoder_input_ids=torch.zeros(1, 4, dtype=torch.long),
                                       device="cpu", model_kwargs={})


def test_generate_builds_processors_in_the_documented_order(tiny_model):
    sampler = SamplerSettings(temperature=0.7, top_k=5, top_p=0.9, min_p=0.1, typical_p=0.8,
                              repetition_penalty=1.3)
    names = [type(p).__name__ for p in generate_processors(tiny_model, sampler)]
    assert names == ["RepetitionPenaltyLogitsProcessor", "TemperatureLogitsWarper",
                     "TopKLogitsWarper", "TopPLogitsWarper", "MinPLogitsWarper",
                     "TypicalLogitsWarper"]


def optional(strategy):
    return st.none() | strategy


sampler_settings = st.builds(
    SamplerSettings,
    temperature=st.floats(0.2, 3.0),
    top_k=optional(st.integers(1, 40)),
    top_p=optional(st.floats(0.05, 1.0)),
    min_p=optional(st.floats(0.0, 0.5)),
    typical_p=optional(probabilities),
    repetition_penalty=optional(st.floats(0.5, 2.0)),
)


@settings(max_examples=80, deadline=None)
@given(logit_batches(max_vocab=32), sampler_settings, st.data())
def test_process_matches_generate_processor_list(tiny_model, logits, sampler, data):
    input_ids = input_ids_for(logits, data)
    expected = generate_processors(tiny_model, sampler)(input_ids, logits.clone())
    assert_same(process(logits, sampler, input_ids), expected)


def test_process_applies_top_p_before_min_p():
    # Order matters here: top_p 0.6 keeps {0.5, 0.3}; min-p 0.5 on the renormalised pair
    # (0.625, 0.375) keeps both. min-p first would keep {0.5, 0.3}, then top_p only 0.5.
    logits = torch.tensor([[0.5, 0.3, 0.2]]).log()
    sampler = SamplerSettings(top_p=0.6, min_p=0.5)
    assert torch.isfinite(process(logits, sampler)).tolist() == [[True, True, False]]
    order_swapped = apply_top_p(apply_min_p(logits, 0.5), 0.6)
    assert torch.isfinite(order_swapped).tolist() == [[True, False, False]]


def test_process_applies_temperature_before_min_p():
    logits = torch.tensor([0.6, 0.25, 0.15]).log()
    hot = process(logits, SamplerSettings(temperature=4.0, min_p=0.5))
    assert torch.isfinite(hot).all()  # flattened first: 0.15**0.25 / 0.6**0.25 > 0.5
    assert not torch.isfinite(apply_min_p(logits, 0.5)[2])


def test_top_p_known_vector_from_transformers_tests():
    dist = torch.log(torch.tensor([[0.3, 0.1, 0.1, 0.5], [0.15, 0.3, 0.3, 0.25]]))
    kept = torch.exp(apply_top_p(dist, 0.8))
    torch.testing.assert_close(kept, torch.tensor([[0.3, 0.0, 0.0, 0.5], [0.0, 0.3, 0.3, 0.25]]))


def test_min_p_known_vector_from_transformers_tests():
    dist = torch.log(torch.tensor([[0.9, 0.0274, 0.047, 0.0274],  # 0.047 > 0.05 * 0.9
                                   [0.15, 0.3, 0.3, 0.25],  # flat: all kept
                                   [0.97, 0.01, 0.01, 0.01]]))
    kept = torch.exp(apply_min_p(dist, 0.05))
    torch.testing.assert_close(kept, torch.tensor([[0.9, 0.0, 0.047, 0.0],
                                                   [0.15, 0.3, 0.3, 0.25],
                                                   [0.97, 0.0, 0.0, 0.0]]))


def test_top_k_known_vector_from_transformers_tests():
    ramp = torch.arange(10, dtype=torch.float32).repeat(2, 1)
    ramp[1, :5] = ramp[1, 5:] + 10
    filtered = torch.isinf(apply_top_k(ramp, 3))
    assert filtered[0].tolist() == 7 * [True] + 3 * [False]
    assert filtered[1].tolist() == 2 * [True] + 3 * [False] + 5 * [True]


def test_typical_p_known_vector_from_transformers_tests():
    dist = torch.log(torch.tensor([[0.97, 0.01, 0.01, 0.01], [0.4, 0.2, 0.2, 0.2]]))
    kept = torch.exp(apply_typical_p(dist, 0.5))
    torch.testing.assert_close(kept, torch.tensor([[0.97, 0.0, 0.0, 0.0], [0.0, 0.2, 0.2, 0.2]]))


def test_repetition_penalty_known_vector_from_transformers_tests():
    scores = torch.full((2, 10), 1 / 10)
    scores[0, 0] = -1 / 10
    scores[1, 5] = 4 / 10
    out = apply_repetition_penalty(scores, torch.tensor([[0, 1], [5, 0]]), 2.0)
    expected = scores.clone()
    expected[0, 0], expected[0, 1], expected[1, 0], expected[1, 5] = -0.2, 0.05, 0.05, 0.2
    torch.testing.assert_close(out, expected)


def test_repetition_penalty_ignores_ids_beyond_the_vocabulary():
    scores = torch.ones(1, 4)
    out = apply_repetition_penalty(scores, torch.tensor([[1, 7]]), 2.0)
    assert out.tolist() == [[1.0, 0.5, 1.0, 1.0]]


def test_inferactive_absolute_min_p_bug_is_not_reproduced():
    # Flat distribution over 20 tokens: every p = 0.05. Relative min-p 0.1 keeps all of them
    # (0.05 >= 0.1 * 0.05); InferActive's absolute rule p >= 0.1 would drop every token.
    logits = torch.zeros(20)
    kept = torch.isfinite(apply_min_p(logits, 0.1))
    assert kept.all()
    absolute_rule = torch.softmax(logits, -1) >= 0.1
    assert not absolute_rule.any()


def test_min_p_scales_with_the_top_probability():
    probs = torch.tensor([0.6, 0.25, 0.1, 0.05])
    kept = torch.isfinite(apply_min_p(probs.log(), 0.2))  # threshold 0.2 * 0.6 = 0.12
    assert kept.tolist() == [True, True, False, False]


def test_processors_accept_leading_dimensions_and_return_new_tensors():
    logits = torch.randn(2, 3, 11, generator=torch.Generator().manual_seed(0))
    before = logits.clone()
    for fn, arg in ((apply_top_p, 0.7), (apply_typical_p, 0.7), (apply_min_p, 0.2),
                    (apply_top_k, 4), (apply_temperature, 0.5)):
        out = fn(logits, arg)
        assert out.shape == logits.shape and out.data_ptr() != logits.data_ptr()
        torch.testing.assert_close(out, fn(logits.reshape(6, 11), arg).reshape(2, 3, 11))
    assert torch.equal(logits, before)


def test_top_k_above_vocabulary_keeps_everything():
    logits = torch.randn(3, 5)
    assert torch.equal(apply_top_k(logits, 1000), logits)


def test_top_p_one_keeps_everything_even_underflowing_tokens():
    logits = torch.tensor([0.0, -200.0, 5.0])  # exp(-205) underflows float32
    assert torch.isfinite(apply_top_p(logits, 1.0)).all()


@HYPOTHESIS
@given(logit_batches(), sampler_settings, st.data())
def test_processed_probs_are_a_distribution_with_exact_zeros(logits, sampler, data):
    input_ids = input_ids_for(logits, data)
    probs = processed_probs(logits, sampler, input_ids)
    processed = process(logits, sampler, input_ids)
    assert not torch.isnan(probs).any()
    assert (probs[processed == -math.inf] == 0.0).all()
    torch.testing.assert_close(probs.sum(-1), torch.ones(probs.shape[0]))


def test_processed_probs_single_survivor_is_one_not_nan():
    logits = torch.tensor([[1.0, -math.inf, -math.inf, -math.inf]])
    probs = processed_probs(logits, SamplerSettings(top_p=0.5, min_p=0.9))
    assert probs.tolist() == [[1.0, 0.0, 0.0, 0.0]]


def test_processed_probs_rejects_rows_without_finite_logits():
    with pytest.raises(ValueError, match="no finite value"):
        processed_probs(torch.full((1, 3), -math.inf), SamplerSettings())


@HYPOTHESIS
@given(logit_batches(), sampler_settings, st.data())
def test_kept_mass_is_raw_probability_of_kept_tokens(logits, sampler, data):
    input_ids = input_ids_for(logits, data)
    processed = process(logits, sampler, input_ids)
    raw_probs = torch.softmax(logits.double(), -1)
    expected = (raw_probs * (processed != -math.inf)).sum(-1).float()
    torch.testing.assert_close(kept_mass(logits, processed), expected)
    assert (kept_mass(logits, processed) <= 1 + 1e-6).all()


def test_log_kept_mass_is_the_truncated_proposal_weight():
    # q = p restricted to the top-2 and renormalised: log p(x) - log q(x) = log kept mass.
    logits = torch.tensor([2.0, 1.0, 0.5, -1.0])
    processed = apply_top_k(logits, 2)
    log_p = torch.log_softmax(logits, -1)
    log_q = torch.log_softmax(processed, -1)
    weight = log_kept_mass(logits, processed)
    torch.testing.assert_close(log_p[:2] - log_q[:2], weight.expand(2))
    torch.testing.assert_close(weight.exp(), torch.softmax(logits, -1)[:2].sum())


def test_kept_mass_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        kept_mass(torch.zeros(2, 3), torch.zeros(2, 4))


def test_settings_identity_and_dict():
    assert SamplerSettings().is_identity
    assert SamplerSettings(top_p=1.0, min_p=0.0, repetition_penalty=1.0).is_identity
    assert not SamplerSettings(temperature=0.5).is_identity
    assert not SamplerSettings(top_k=50).is_identity
    assert SamplerSettings(top_k=3).to_dict() == {
        "temperature": 1.0, "top_k": 3, "top_p": None, "min_p": None, "typical_p": None,
        "repetition_penalty": None, "min_tokens_to_keep": 1}
    logits = torch.randn(2, 7)
    assert torch.equal(process(logits, SamplerSettings()), logits)


def test_settings_are_frozen():
    with pytest.raises(AttributeError):
        SamplerSettings().top_k = 3


def test_repetition_penalty_without_input_ids_is_an_error():
    with pytest.raises(ValueError, match="input_ids"):
        process(torch.zeros(1, 4), SamplerSettings(repetition_penalty=1.2))


@pytest.mark.parametrize("temperature", [0, 0.0, -1.0, math.nan, math.inf, True, "1"])
def test_bad_temperature(temperature):
    with pytest.raises(ValueError, match=r"temperature.*> 0.*strategy=\"greedy\""):
        apply_temperature(torch.zeros(3), temperature)
    with pytest.raises(ValueError, match="temperature"):
        SamplerSettings(temperature=temperature)


@pytest.mark.parametrize("top_k", [0, -1, 2.0, True, None])
def test_bad_top_k(top_k):
    with pytest.raises(ValueError, match=r"top_k must be an int >= 1"):
        apply_top_k(torch.zeros(3), top_k)
    if top_k is not None:
        with pytest.raises(ValueError, match="top_k"):
            SamplerSettings(top_k=top_k)


@pytest.mark.parametrize("top_p", [0, 0.0, -0.1, 1.01, math.nan, True])
def test_bad_top_p(top_p):
    with pytest.raises(ValueError, match=r"top_p must be a number in \(0, 1\]"):
        apply_top_p(torch.zeros(3), top_p)
    with pytest.raises(ValueError, match="top_p"):
        SamplerSettings(top_p=top_p)


@pytest.mark.parametrize("min_p", [-0.01, 1.5, math.nan, False])
def test_bad_min_p(min_p):
    with pytest.raises(ValueError, match=r"min_p must be a number in \[0, 1\]"):
        apply_min_p(torch.zeros(3), min_p)
    with pytest.raises(ValueError, match="min_p"):
        SamplerSettings(min_p=min_p)


@pytest.mark.parametrize("typical_p", [0, 1, 1.0, -0.5, math.nan])
def test_bad_typical_p(typical_p):
    with pytest.raises(ValueError, match=r"typical_p must be a number in \(0, 1\)"):
        apply_typical_p(torch.zeros(3), typical_p)
    with pytest.raises(ValueError, match="typical_p"):
        SamplerSettings(typical_p=typical_p)


@pytest.mark.parametrize("penalty", [0, 0.0, -1.0, math.inf, True])
def test_bad_repetition_penalty(penalty):
    with pytest.raises(ValueError, match=r"repetition_penalty must be a finite number > 0"):
        apply_repetition_penalty(torch.zeros(1, 3), torch.zeros(1, 2, dtype=torch.long), penalty)
    with pytest.raises(ValueError, match="repetition_penalty"):
        SamplerSettings(repetition_penalty=penalty)


@pytest.mark.parametrize("keep", [0, -2, 1.0, True])
def test_bad_min_tokens_to_keep(keep):
    for fn, arg in ((apply_top_k, 2), (apply_top_p, 0.5), (apply_min_p, 0.1),
                    (apply_typical_p, 0.5)):
        with pytest.raises(ValueError, match=r"min_tokens_to_keep must be an int >= 1"):
            fn(torch.zeros(3), arg, keep)
    with pytest.raises(ValueError, match="min_tokens_to_keep"):
        SamplerSettings(min_tokens_to_keep=keep)


def test_bad_input_ids():
    logits = torch.zeros(2, 5)
    with pytest.raises(ValueError, match="must match logits"):
        apply_repetition_penalty(logits, torch.zeros(3, 2, dtype=torch.long), 1.2)
    with pytest.raises(ValueError, match="integer"):
        apply_repetition_penalty(logits, torch.zeros(2, 2), 1.2)
    with pytest.raises(ValueError, match=">= 0"):
        apply_repetition_penalty(logits, torch.full((2, 2), -1), 1.2)


def test_bad_logits():
    with pytest.raises(ValueError, match="logits"):
        apply_top_k(torch.zeros(3, dtype=torch.long), 1)
    with pytest.raises(TypeError, match="settings must be a SamplerSettings"):
        process(torch.zeros(3), {"top_k": 2})
