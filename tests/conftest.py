"""Shared fixtures: a tiny random model with an in-process tokenizer (fast unit tests) and the
embedded default model (real-model tests, marked `model`)."""

from __future__ import annotations

import pytest


def _tiny_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = ["The capital of France is Paris.", "Hello world, hello there!",
              "naïve café — 東京 🙂 tokens\nnew line\ttab"] * 20
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<eos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<eos>")


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return _tiny_tokenizer()


@pytest.fixture()
def tiny_session(tiny_tokenizer):
    from tiny_models import tiny_model

    from inferviz import Session

    model = tiny_model("llama", vocab_size=len(tiny_tokenizer), eos_token_id=0, pad_token_id=0,
                       bos_token_id=0)
    return Session(model, tiny_tokenizer, name="tiny")


@pytest.fixture(scope="session")
def default_session():
    from inferviz import Session

    return Session.from_pretrained("default")


def pytest_terminal_summary(terminalreporter):
    """Print the fuzz counters (pytest -q hides prints from tests)."""
    try:
        from fuzz_stats import summary
    except ImportError:
        return
    line = summary()
    if line:
        terminalreporter.write_line(line)


# ------------------------------------------------------------------ devices (tests/test_cuda.py)
# CUDA tests take `test_device` (CUDA, or the device named by INFERVIZ_TEST_DEVICE to check the
# tests without a GPU) or `cuda_device` (CUDA only); without CUDA they are skipped, and say why.
@pytest.fixture(scope="session")
def test_device():
    import os

    import torch

    name = os.environ.get("INFERVIZ_TEST_DEVICE")
    if name:
        return torch.device(name)
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    return torch.device("cuda")


@pytest.fixture(scope="session")
def cuda_device():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    return torch.device("cuda")
