"""A hostile or broken inference server (tests/fake_server.py ``misbehave=``) cannot corrupt a
tree: every misbehaviour, in every dialect that can show it, ends in a ``ServerError`` whose
message names the server's URL and what was wrong, the tree is byte-for-byte as it was, and
the session's vocabulary does not grow (docs/reliability.md, "Security")."""

from __future__ import annotations

import threading
import time

import pytest
from fake_server import MISBEHAVIOURS, FakeServer, modes_for
from tiny_models import VOCAB, tiny_model, tiny_tokenizer

import inferviz as iv
from inferviz.backends.http import MAX_REPLY_BYTES, ServerError
from inferviz.backends.reply_check import MAX_VOCAB, MalformedReply

PROMPT = "t1 t2 t3"
MB32 = 32 * 2**20


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama")


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


def _server(model, tokenizer, dialect, **kwargs):
    return FakeServer(model, tokenizer, dialect=dialect, max_logprobs=VOCAB, **kwargs)


def _session(server, tokenizer, served_tokenizer=False, **kwargs):
    """A session with the local tokenizer, or (``served_tokenizer``: vLLM, llama.cpp) the
    server's /tokenize and /detokenize."""
    kwargs.setdefault("top_logprobs", 8)
    if not served_tokenizer:
        kwargs.setdefault("tokenizer", tokenizer)
    elif server.dialect == "vllm":
        kwargs.setdefault("vocab_size", VOCAB)
    return iv.Session.connect(server.url, **kwargs)


def _refused(session, server, mode, action, match: str) -> ServerError:
    """With the server well behaved, a tree with some nodes; then, with it misbehaving in
    ``mode``, ``action(tree)`` must raise a ServerError naming the server and leave the tree
    and the vocabulary as they were."""
    tree = session.tree(PROMPT)
    session.expand(tree, tree.root_id, k=3)  # some nodes to keep
    before, vocab = tree.to_json(), session.vocab_size
    server.misbehave = mode
    with pytest.raises(ServerError, match=match) as info:
        action(tree)
    assert server.url in str(info.value)
    assert tree.to_json() == before
    assert session.vocab_size == vocab == VOCAB
    server.misbehave = None
    assert session.expand(tree, tree.root_id, k=2)  # the session still works afterwards
    return info.value


def _cases(modes, dialects=("vllm", "sglang", "llama.cpp")):
    return [pytest.param(d, m, id=f"{m}-{d}") for m in modes for d in dialects
            if d in MISBEHAVIOURS[m][0]]


def _expand(session):
    return lambda tree: session.expand(tree, [1, 2], k=3)


def _server_side(session, max_new_tokens=5):
    return lambda tree: session.generate(tree, strategy="greedy",
                                         max_new_tokens=max_new_tokens, server_side=True)


# ------------------------------------------------------------------ the content of a reply
REPLY_FAULTS = {
    "id_out_of_vocab": f"sent token id 999999, outside the vocabulary \\(ids 0..{VOCAB - 1}\\)",
    "negative_id": "sent token id -3, outside the vocabulary",
    "string_logprob": 'sent log-probability "-1.5" \\(a string\\) for token \\d+, not a number',
    "null_logprob": "sent log-probability null \\(null\\) for token \\d+, not a number",
    "nan_logprob": "sent log-probability NaN for token \\d+; a log-probability is <= 0",
    "mass_over_one": "sent top log-probabilities whose probabilities sum to [\\d.]+ \\(more "
                     "than 1\\): not a distribution",
    "list_body": "sent the reply to /\\S+ as a list, not a JSON object",
    "choices_object": "sent 'choices' as an object, not a list",
    "choices_null": "sent choices\\[0\\] as null, not a JSON object",
    "pairs_top_logprobs": "sent top_logprobs\\[0\\] as a list, not a JSON object",
    "probs_object": "sent 'completion_probabilities' as an object, not a list",
    "probs_null": "sent completion_probabilities\\[0\\] as null, not a JSON object",
    "meta_info_list": "sent 'meta_info' as a list, not a JSON object",
    "short_entries": "sent an entry of output_top_logprobs\\[0\\] with 1 fields, not "
                     "\\[logprob, token_id, text\\]",
    "bytes_not_list": "sent the bytes of token \\d+ as a number, not a list",
}


@pytest.mark.parametrize("dialect,mode", _cases(REPLY_FAULTS))
def test_a_malformed_reply_to_expand_is_refused(model, tokenizer, dialect, mode):
    with _server(model, tokenizer, dialect) as server:
        session = _session(server, tokenizer)
        err = _refused(session, server, mode, _expand(session), REPLY_FAULTS[mode])
        assert isinstance(err, MalformedReply)


def test_a_reply_never_widens_the_vocabulary(model, tokenizer):
    """The rows stay [B, VOCAB] whatever a refused reply held (it used to be [B, 1e6])."""
    with _server(model, tokenizer, "llama.cpp") as server:
        session = _session(server, tokenizer)
        server.misbehave = "id_out_of_vocab"
        with pytest.raises(MalformedReply):
            session.backend.next_token([[1, 2]])
        server.misbehave = None
        assert session.backend.next_token([[1, 2]]).scores.shape == (1, VOCAB)
        assert session.vocab_size == VOCAB


# ------------------------------------------------------------------ server-side runs (streams)
STREAM_FAULTS = {
    "stream_broken_json": "streamed an event that is not JSON",
    "stream_nan": "sent log-probability NaN for token \\d+",
    "stream_reset": "the stream broke off|cut off",
    "stream_too_many": "streamed more than the 5 tokens asked for",
    "id_out_of_vocab": "sent token id 999999, outside the vocabulary",
    "nan_logprob": "sent log-probability NaN",
    "string_logprob": 'sent log-probability "-1.5"',
}


@pytest.mark.parametrize("dialect,mode", _cases(STREAM_FAULTS, ("vllm", "llama.cpp")))
def test_a_server_side_run_that_goes_wrong_midway_is_rolled_back(model, tokenizer, dialect,
                                                                 mode):
    with _server(model, tokenizer, dialect) as server:
        session = _session(server, tokenizer)
        _refused(session, server, mode, _server_side(session), STREAM_FAULTS[mode])


@pytest.mark.parametrize("dialect", ["vllm", "llama.cpp"])
def test_stream_huge_event_is_refused_at_max_reply_bytes(model, tokenizer, dialect):
    with _server(model, tokenizer, dialect) as server:
        session = _session(server, tokenizer, max_reply_bytes=2**20)
        _refused(session, server, "stream_huge_event", _server_side(session),
                 f"streamed an event of (more than {2**20} bytes|\\d+ bytes \\(limit {2**20}\\))")


@pytest.mark.parametrize("dialect", ["vllm", "llama.cpp"])
def test_a_stream_cut_off_cleanly_is_an_error_not_a_short_run(model, tokenizer, dialect):
    """An end of stream without vLLM's [DONE] or llama.cpp's final 'stop' event."""
    with _server(model, tokenizer, dialect) as server:
        session = _session(server, tokenizer)
        original = server._reply

        def cut(handler, status, payload, headers=None):
            if hasattr(payload, "done"):
                payload = type(payload)([e for e in payload[:2]], done=False)
            return original(handler, status, payload, headers)

        server._reply = cut
        _refused(session, server, None, _server_side(session), "cut off")


def test_a_step_by_step_run_that_meets_a_bad_reply_is_rolled_back(model, tokenizer):
    with _server(model, tokenizer, "llama.cpp") as server:
        session = _session(server, tokenizer)
        _refused(session, server, "negative_id",
                 lambda tree: session.generate(tree, strategy="beam", num_beams=2,
                                               max_new_tokens=3), "outside the vocabulary")


def test_a_server_side_run_stops_between_tokens_and_keeps_what_it_has(model, tokenizer):
    with _server(model, tokenizer, "llama.cpp") as server:
        session = _session(server, tokenizer)
        tree = session.tree(PROMPT)
        seen = []
        stop = threading.Event()

        def on_step(info):
            seen.append(info["step"])
            stop.set()

        res = session.generate(tree, strategy="greedy", max_new_tokens=5, server_side=True,
                               stop=stop, on_step=on_step)
        assert (res.finish_reason, res.partial, seen) == ("stopped", True, [1])
        assert len(tree.token_ids(res.leaf_ids[0])) == len(tree.token_ids(tree.root_id)) + 1


def test_bad_rank_in_prompt_logprobs_is_refused(model, tokenizer):
    with _server(model, tokenizer, "vllm") as server:
        session = _session(server, tokenizer)
        _refused(session, server, "bad_rank", lambda tree: session.token_table(PROMPT),
                 f"sent rank {10**30}; a rank is an int in 1..{VOCAB}")


# ------------------------------------------------------------------ the tokenizer endpoints
@pytest.mark.parametrize("dialect", ["vllm"])
def test_detokenize_fails_midway_leaves_no_partial_children(model, tokenizer, dialect):
    with _server(model, tokenizer, dialect) as server:
        session = _session(server, tokenizer, served_tokenizer=True, max_retries=0)
        _refused(session, server, "detokenize_fails_midway",
                 lambda tree: session.expand(tree, [1, 2, 3], k=5),
                 "POST \\S+/detokenize answered 500")


def test_detokenize_fails_midway_in_a_server_side_run_rolls_it_back(model, tokenizer):
    with _server(model, tokenizer, "vllm") as server:
        session = _session(server, tokenizer, served_tokenizer=True, max_retries=0)
        _refused(session, server, "detokenize_fails_midway", _server_side(session),
                 "POST \\S+/detokenize answered 500")


@pytest.mark.parametrize("dialect", ["vllm", "llama.cpp"])
def test_tokenize_out_of_vocab_is_refused(model, tokenizer, dialect):
    with _server(model, tokenizer, dialect) as server:
        session = _session(server, tokenizer, served_tokenizer=True)
        _refused(session, server, "tokenize_out_of_vocab", lambda tree: session.tree("t4 t5"),
                 "sent token id 999999, outside the vocabulary")


# ------------------------------------------------------------------ metadata at connect time
CONNECT_FAULTS = {
    "bad_max_model_len": "declared a context length of 'abc'; it must be a positive int",
    "negative_max_model_len": "declared a context length of -5; it must be a positive int",
    "huge_vocab": f"declared a vocabulary size of {10**12}, more than {MAX_VOCAB}",
}


@pytest.mark.parametrize("dialect,mode", _cases(CONNECT_FAULTS))
def test_bad_metadata_is_refused_at_connect_naming_the_server(model, tokenizer, dialect, mode):
    with _server(model, tokenizer, dialect, misbehave=mode) as server:
        with pytest.raises(ValueError, match=CONNECT_FAULTS[mode]) as info:
            _session(server, tokenizer, served_tokenizer=mode == "huge_vocab")
        assert f"the server at {server.url} cannot be used: {server.url} " in str(info.value)
        assert isinstance(info.value.__cause__, MalformedReply)


# ------------------------------------------------------------------ the transport
TRANSPORT_FAULTS = {
    "html_error": "POST \\S+ answered 500: <html><body><img src=x onerror=",
    "redirect": "answered 302, a redirect to 'http://127.0.0.1:9/elsewhere'; inferviz does "
                "not follow redirects",
    "huge_body": f"answered with {50 * 2**20} bytes \\(limit {MB32}\\); not read",
    "huge_body_undeclared": f"answered with more than {MB32} bytes; not read further",
    "gzip_bomb": f"answered with more than {MB32} bytes; not read further",
    "deep_json": "answered with no JSON \\(RecursionError\\)",
}


@pytest.mark.parametrize("dialect,mode", _cases(TRANSPORT_FAULTS))
def test_a_bad_transport_reply_is_refused(model, tokenizer, dialect, mode):
    with _server(model, tokenizer, dialect) as server:
        session = _session(server, tokenizer, max_retries=0)
        _refused(session, server, mode, _expand(session), TRANSPORT_FAULTS[mode])


@pytest.mark.parametrize("dialect,mode", _cases(["trickle", "trickle_headers"],
                                                ("vllm", "llama.cpp")))
def test_a_trickled_reply_is_bounded_by_the_timeout_as_a_whole(model, tokenizer, dialect,
                                                               mode):
    """1 byte / 0.3 s: per read that never times out; the whole request must (it took 16 s
    with timeout=2 before)."""
    with _server(model, tokenizer, dialect) as server:
        session = _session(server, tokenizer, timeout=1.0, max_retries=0)
        assert session.backend.http.deadline_bound
        tree = session.tree(PROMPT)
        before = tree.to_json()
        server.misbehave = mode
        start = time.monotonic()
        with pytest.raises(ServerError, match="no complete reply within timeout=1 s \\(the "
                                              "whole reply, not one read\\)") as info:
            session.expand(tree, tree.root_id, k=2)
        assert time.monotonic() - start < 2.0
        assert server.url in str(info.value) and tree.to_json() == before


def test_max_reply_bytes_is_a_knob_with_a_documented_default(model, tokenizer):
    assert MAX_REPLY_BYTES == MB32
    with _server(model, tokenizer, "llama.cpp") as server:
        assert _session(server, tokenizer).backend.http.max_reply_bytes == MB32
        session = _session(server, tokenizer, max_reply_bytes=1024, top_logprobs=VOCAB)
        _refused_tree = session.tree(PROMPT)
        with pytest.raises(ServerError, match="bytes \\(limit 1024\\); not read") as info:
            session.expand(_refused_tree, _refused_tree.root_id, k=2)
        assert server.url in str(info.value)
        with pytest.raises(ValueError, match="max_reply_bytes must be >= 1024"):
            _session(server, tokenizer, max_reply_bytes=10)


def test_every_misbehaviour_of_the_fake_server_is_tested():
    tested = {*REPLY_FAULTS, *STREAM_FAULTS, *CONNECT_FAULTS, *TRANSPORT_FAULTS, "trickle",
              "trickle_headers", "stream_huge_event", "detokenize_fails_midway",
              "tokenize_out_of_vocab", "bad_rank"}
    assert tested == set(MISBEHAVIOURS)
    assert "html_error" in modes_for("vllm") and "probs_null" not in modes_for("vllm")
