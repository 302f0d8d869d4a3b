"""Constraints over a server (tests/fake_server.py, the vLLM dialect): masks computed here from
a local tokenizer over the server's distributions — the same tokens and legal masses as a
local session when the server returns the whole vocabulary, marked approximate over a top N —
and clear refusals where no mask can be made."""

from __future__ import annotations

import pytest
from fake_server import FakeServer
from tiny_models import tiny_model

import inferviz as iv


@pytest.fixture(scope="module")
def tokenizer(tiny_tokenizer):
    return tiny_tokenizer  # byte-level BPE (tests/conftest.py): llguidance reads it


@pytest.fixture(scope="module")
def local(tokenizer):
    model = tiny_model("llama", vocab_size=len(tokenizer), eos_token_id=0, pad_token_id=0,
                       bos_token_id=0)
    return iv.Session(model, tokenizer, name="tiny")


@pytest.fixture(scope="module")
def server(local, tokenizer):
    running = FakeServer(local.model, tokenizer, dialect="vllm",
                         max_logprobs=len(tokenizer)).start()
    yield running
    running.stop()


def _connect(server, tokenizer, **kwargs):
    return iv.Session.connect(server.url, tokenizer=tokenizer, eos_token_ids=[0], **kwargs)


def _tokens(res):
    return [res.tree.node(i).token_id for i in res.path_ids()[1:]]


def test_a_constraint_over_a_full_server_gives_the_local_constrained_tokens(server, tokenizer,
                                                                           local):
    remote = _connect(server, tokenizer, top_logprobs="full")
    try:
        digits = iv.Regex("[0-9]+")
        here = local.generate("Hello", "greedy", max_new_tokens=4, constraint=digits)
        there = remote.generate("Hello", "greedy", max_new_tokens=4, constraint=digits)
        assert _tokens(there) == _tokens(here)
        for a, b in zip(here.path_ids()[1:], there.path_ids()[1:]):
            ours, theirs = here.tree.node(a).meta, there.tree.node(b).meta
            assert theirs["log_legal_mass"] == pytest.approx(ours["log_legal_mass"], abs=1e-4)
    finally:
        remote.close()


def test_a_constraint_over_a_top_n_server_marks_the_legal_mass_approximate(server, tokenizer):
    remote = _connect(server, tokenizer, top_logprobs=20)
    try:
        res = remote.generate("Hello", "greedy", max_new_tokens=3, constraint=iv.Regex("[a-z ]+"))
        nodes = [res.tree.node(i) for i in res.path_ids()[1:]]
        assert nodes or res.finish_reason == "constraint"
        for node in nodes:
            assert node.meta["approx"] is True and node.meta["log_legal_mass"] <= 0
    finally:
        remote.close()


def test_a_tokenizer_llguidance_cannot_read_is_refused_naming_the_constraint(local):
    from tiny_models import tiny_tokenizer

    other = iv.Session(tiny_model("llama"), tiny_tokenizer(), name="word-level")
    tree = other.tree("Hello")
    with pytest.raises(ValueError, match="constraint needs token masks, and llguidance cannot"):
        other.generate(tree, "greedy", max_new_tokens=2, constraint=iv.Regex("a"))
    assert len(tree.nodes) == 1
