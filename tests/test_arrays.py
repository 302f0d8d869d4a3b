"""One array code for two kinds of rows (inferviz.arrays): the numpy operations a server's rows
go through mirror the torch ones a local model's go through, so the processors and the
distributions give the same numbers (to float rounding) and keep the same tokens on both."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from inferviz.arrays import namespace, numpy_ops, to_torch, torch_ops
from inferviz.distributions import Distributions
from inferviz.logit_check import check_logits
from inferviz.processors import SamplerSettings, kept_mass, process, processed_probs

SETTINGS = [
    SamplerSettings(),
    SamplerSettings(temperature=0.7),
    SamplerSettings(top_k=3),
    SamplerSettings(top_p=0.8),
    SamplerSettings(min_p=0.2, temperature=1.3),
    SamplerSettings(typical_p=0.6),
    SamplerSettings(top_k=5, top_p=0.9, min_p=0.05, min_tokens_to_keep=2),
    SamplerSettings(repetition_penalty=1.5),
]


def functions(module) -> set[str]:
    return {name for name, value in vars(module).items()
            if inspect.isfunction(value) and value.__module__ == module.__name__}


def rows(seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(4, 50, generator=gen) * 3
    logits[1, :6] = logits[1, 6]  # ties across the top-k / top-p boundaries
    logits[2, 10:] = -torch.inf  # a server's top N: the rest unknown
    return logits


def test_both_namespaces_offer_the_same_operations():
    assert functions(numpy_ops) == functions(torch_ops)


def test_a_tensor_gets_the_torch_operations_and_anything_else_numpy():
    assert namespace(torch.zeros(2)) is torch_ops
    assert namespace(np.zeros(2)) is numpy_ops


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: str(s))
def test_processors_keep_the_same_tokens_with_the_same_probabilities_on_numpy(settings):
    logits = rows()
    input_ids = torch.tensor([[1, 2, 60], [3, 3, 0], [5, 7, 7], [49, 48, 0]])
    want = processed_probs(logits, settings, input_ids)
    got = processed_probs(logits.numpy(), settings, input_ids.numpy())
    assert isinstance(got, np.ndarray) and got.dtype == np.float32
    assert np.array_equal(got > 0, want.numpy() > 0)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-7)
    processed = process(logits, settings, input_ids)
    np.testing.assert_allclose(kept_mass(logits.numpy(), process(logits.numpy(), settings,
                                                                 input_ids.numpy())),
                               kept_mass(logits, processed).numpy(), rtol=1e-5)


def test_distributions_rank_and_pick_alike_on_numpy_and_torch():
    logits = rows(1)
    probs = torch.softmax(logits, dim=-1)
    here = Distributions.from_logits([0, 1, 2, 3], logits, probs)
    there = Distributions.from_logits([0, 1, 2, 3], logits.numpy(), probs.numpy())
    np.testing.assert_allclose(there.logprobs, here.logprobs.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(there.entropy, here.entropy.numpy(), rtol=1e-5)
    for row in range(4):
        assert there.top_k(row, 1) == here.top_k(row, 1)
        assert there.ranks(row, list(range(50))) == here.ranks(row, list(range(50)))
    assert torch.equal(there.to_torch().logprobs, torch.from_numpy(there.logprobs))


def test_numpy_rows_become_tensors_without_a_copy():
    row = np.arange(4, dtype=np.float32)
    tensor = to_torch(row)
    row[0] = 7
    assert tensor[0] == 7


def test_the_logit_check_names_the_same_row_and_token_on_numpy():
    logits = rows()
    logits[2, 4] = torch.nan
    for kind in (logits, logits.numpy()):
        with pytest.raises(ValueError, match=r"NaN logits at node 12 \(token id 4\)"):
            check_logits(kind, "node", [10, 11, 12, 13])
