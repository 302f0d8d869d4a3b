"""A hostile or broken inference server (tests/fake_server.py ``misbehave=``) cannot corrupt a
tree: every misbehaviour ends in a ``ServerError`` naming the server, the tree is byte-for-byte
as it was, and the session's vocabulary does not grow (docs/reliability.md, "Security")."""

from __future__ import annotations

import time

import pytest
from fake_server import MISBEHAVIOURS, FakeServer
from tiny_models import VOCAB, tiny_model, tiny_tokenizer

import inferviz as iv
from inferviz.backends.http import ServerError

PROMPT = "t1 t2 t3"


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama")


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


def _session(server, **kwargs):
    return iv.Session.connect(server.url, top_logprobs=8, **kwargs)


def _refused(session, server, mode, action, match: str):
    """With the server well behaved, a tree with some nodes; then, with it misbehaving in
    ``mode``, ``action(tree)`` must raise a ServerError naming the server and leave everything
    as it was."""
    tree = session.tree(PROMPT)
    session.expand(tree, tree.root_id, k=3)  # some nodes to keep
    before, vocab = tree.to_json(), session.vocab_size
    server.misbehave = mode
    with pytest.raises(ServerError, match=match) as info:
        action(tree)
    assert server.url in str(info.value)
    assert tree.to_json() == before
    assert session.vocab_size == vocab == VOCAB


REPLY_FAULTS = {
    "id_out_of_vocab": "token id 999999, outside the vocabulary",
    "negative_id": "token id -3, outside the vocabulary",
    "string_logprob": "malformed reply",
    "null_logprob": "malformed reply",
    "nan_logprob": "log-probability nan",
    "mass_over_one": "probabilities sum to",
    "list_body": "malformed reply",
    "probs_object": "malformed reply",
    "probs_null": "malformed reply",
}


@pytest.mark.parametrize("mode", sorted(REPLY_FAULTS))
def test_a_malformed_reply_to_expand_is_refused_and_the_tree_is_unchanged(model, tokenizer,
                                                                           mode):
    with FakeServer(model, tokenizer, dialect="llama.cpp", max_logprobs=VOCAB) as server:
        session = _session(server)
        _refused(session, server, mode, lambda tree: session.expand(tree, [1, 2], k=3),
                 REPLY_FAULTS[mode])


@pytest.mark.parametrize("mode", ["id_out_of_vocab", "nan_logprob", "stream_broken_json",
                                  "stream_too_many"])
def test_a_server_side_run_that_goes_wrong_midway_is_rolled_back(model, tokenizer, mode):
    with FakeServer(model, tokenizer, dialect="llama.cpp", max_logprobs=VOCAB) as server:
        session = _session(server)
        match = {"stream_broken_json": "malformed reply",
                 "stream_too_many": "more than the 5 tokens asked for"}.get(mode, "")
        _refused(session, server, mode,
                 lambda tree: session.generate(tree, strategy="greedy", max_new_tokens=5,
                                               server_side=True), match)


def test_a_step_by_step_run_that_meets_a_bad_reply_is_rolled_back(model, tokenizer):
    with FakeServer(model, tokenizer, dialect="llama.cpp", max_logprobs=VOCAB) as server:
        session = _session(server)
        _refused(session, server, "negative_id",
                 lambda tree: session.generate(tree, strategy="beam", num_beams=2,
                                               max_new_tokens=3), "outside the vocabulary")


def test_an_html_error_page_is_an_error_naming_the_server(model, tokenizer):
    with FakeServer(model, tokenizer, dialect="llama.cpp", max_logprobs=VOCAB) as server:
        session = _session(server, max_retries=0)
        _refused(session, server, "html_error", lambda tree: session.expand(tree, tree.root_id, k=2),
                 "answered 500")


def test_a_redirect_is_not_followed(model, tokenizer):
    with FakeServer(model, tokenizer, dialect="llama.cpp", max_logprobs=VOCAB) as server:
        session = _session(server)
        _refused(session, server, "redirect", lambda tree: session.expand(tree, tree.root_id, k=2),
                 "answered 302, a redirect to 'http://127.0.0.1:9/elsewhere'; inferviz does "
                 "not follow redirects")


def test_a_trickled_reply_is_bounded_by_the_timeout_as_a_whole(model, tokenizer):
    with FakeServer(model, tokenizer, dialect="llama.cpp", max_logprobs=VOCAB) as server:
        session = _session(server, timeout=1.0, max_retries=0)
        start = time.monotonic()
        _refused(session, server, "trickle", lambda tree: session.expand(tree, tree.root_id, k=2),
                 "took more than 1 s to send its reply")
        assert time.monotonic() - start < 3.0


def test_a_huge_reply_is_refused_before_it_is_read(model, tokenizer):
    with FakeServer(model, tokenizer, dialect="llama.cpp", max_logprobs=VOCAB) as server:
        session = _session(server)
        _refused(session, server, "huge_body", lambda tree: session.expand(tree, tree.root_id, k=2),
                 f"answered with {50 * 2**20} bytes \\(limit {32 * 2**20}\\); not read")


def test_a_bad_context_length_is_refused_at_connect_naming_the_server(model, tokenizer):
    with FakeServer(model, tokenizer, dialect="llama.cpp", misbehave="bad_context") as server:
        with pytest.raises(ValueError, match="declared a context length of") as info:
            iv.Session.connect(server.url)
        assert server.url in str(info.value)


def test_a_detokenizer_failing_midway_leaves_no_partial_children(model, tokenizer):
    with FakeServer(model, tokenizer, dialect="vllm", max_logprobs=VOCAB) as server:
        session = iv.Session.connect(server.url, top_logprobs=8, max_retries=0,
                                     vocab_size=VOCAB)
        _refused(session, server, "detokenize_fails_midway", lambda tree: session.expand(tree, [1, 2, 3], k=5),
                 "detokenize")


def test_every_misbehaviour_of_the_fake_server_is_tested():
    tested = {*REPLY_FAULTS, "stream_broken_json", "stream_too_many", "html_error", "redirect",
              "trickle", "huge_body", "bad_context", "detokenize_fails_midway"}
    assert tested == set(MISBEHAVIOURS)
