"""A session over an inference server (Session.connect) against the fake server in
tests/fake_server.py: same tokens as the local session when the server returns the whole
vocabulary, nodes marked approximate when it returns only its top N."""

from __future__ import annotations

import math

import pytest
from fake_server import FakeServer
from tiny_models import VOCAB, tiny_model, tiny_tokenizer

import inferviz as iv
from inferviz.backends import ServerLacks
from inferviz.backends.http import ServerError

PROMPT = "t5 t17 t20"


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama")


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def local(model, tokenizer):
    return iv.Session(model, tokenizer, name="tiny")


@pytest.fixture(scope="module")
def vllm(model, tokenizer):
    server = FakeServer(model, tokenizer, dialect="vllm", max_logprobs=VOCAB).start()
    yield server
    server.stop()
    assert not server.running


@pytest.fixture(scope="module")
def full(vllm, tokenizer):
    session = iv.Session.connect(vllm.url, tokenizer=tokenizer, top_logprobs="full")
    yield session
    session.backend.close()


@pytest.fixture(scope="module")
def top5(vllm, tokenizer):
    session = iv.Session.connect(vllm.url, tokenizer=tokenizer, top_logprobs=5)
    yield session
    session.backend.close()


def tokens_of(result, leaf=None):
    tree = result.tree
    return tree.token_ids(result.node_id if leaf is None else leaf)


def test_full_vocabulary_session_declares_exact_distributions(full):
    assert full.is_remote and full.backend.top_n is None and full.vocab_size == VOCAB
    assert full.model is None and full.engine is None


def test_remote_greedy_gives_local_tokens_and_exact_logprobs(full, local):
    remote, here = full.generate(PROMPT, max_new_tokens=8), local.generate(PROMPT,
                                                                          max_new_tokens=8)
    assert tokens_of(remote) == tokens_of(here)
    df_r, df_l = remote.tree.to_pandas(), here.tree.to_pandas()
    assert df_r["raw_logprob"].tolist() == pytest.approx(df_l["raw_logprob"].tolist(), abs=1e-4)
    assert df_r["entropy"].iloc[1:].tolist() == pytest.approx(df_l["entropy"].iloc[1:].tolist(),
                                                             abs=1e-4)
    assert not df_r["approx"].iloc[1:].any()


def test_remote_beam_gives_local_sequences_and_scores(full, local):
    kw = dict(strategy="beam", num_beams=3, num_return_sequences=3, max_new_tokens=6)
    remote, here = full.generate(PROMPT, **kw), local.generate(PROMPT, **kw)
    assert [remote.tree.token_ids(n) for n in remote.leaf_ids] == \
        [here.tree.token_ids(n) for n in here.leaf_ids]
    assert remote.scores == pytest.approx(here.scores, abs=1e-4)


def test_remote_smc_gives_local_particles_with_same_seed(full, local):
    kw = dict(strategy="smc", particles=6, top_k=8, max_new_tokens=5, seed=3)
    remote, here = full.generate(PROMPT, **kw), local.generate(PROMPT, **kw)
    assert remote.posterior == pytest.approx(here.posterior)
    assert remote.log_ml == pytest.approx(here.log_ml, abs=1e-4)


def test_remote_bfs_grows_the_local_tree(full, local):
    kw = dict(strategy="bfs", k=3, depth=2, max_new_tokens=2)
    remote, here = full.generate(PROMPT, **kw), local.generate(PROMPT, **kw)
    assert sorted(map(tuple, (remote.tree.token_ids(n) for n in remote.tree.nodes))) == \
        sorted(map(tuple, (here.tree.token_ids(n) for n in here.tree.nodes)))


def test_top_n_rows_are_marked_approximate_with_exact_raw_logprobs(top5, local):
    tree_r, tree_l = top5.tree(PROMPT), local.tree(PROMPT)
    kids_r = top5.expand(tree_r, tree_r.root_id, k=5, top_p=0.5)
    kids_l = local.expand(tree_l, tree_l.root_id, k=5, top_p=0.5)
    assert [c.token_id for c in kids_r] == [c.token_id for c in kids_l]
    assert [c.raw_logprob for c in kids_r] == pytest.approx([c.raw_logprob for c in kids_l],
                                                           abs=1e-5)
    assert [c.rank for c in kids_r] == [c.rank for c in kids_l]
    df = tree_r.to_pandas()
    assert df["approx"].iloc[1:].all()
    # entropy over the top 5 only: a lower bound of the true entropy
    assert kids_r[0].entropy < kids_l[0].entropy


def test_expanding_more_children_than_the_server_returns_gives_what_it_has(top5):
    tree = top5.tree(PROMPT)
    assert len(top5.expand(tree, tree.root_id, k=9)) == 5


def test_beam_wider_than_the_top_n_refuses_naming_what_to_change(top5):
    with pytest.raises(ServerLacks, match="top_logprobs >= 8"):
        top5.generate(PROMPT, strategy="beam", num_beams=4, max_new_tokens=3)


def test_asking_more_logprobs_than_the_server_allows_is_a_clear_error(model, tokenizer):
    with FakeServer(model, tokenizer, max_logprobs=20) as server:
        session = iv.Session.connect(server.url, tokenizer=tokenizer, top_logprobs=50,
                                     max_retries=0)
        with pytest.raises(ServerError, match="greater than max allowed: 20"):
            session.generate(PROMPT, max_new_tokens=1)


def test_llamacpp_dialect_greedy_matches_local(model, tokenizer, local):
    with FakeServer(model, tokenizer, dialect="llama.cpp", max_logprobs=VOCAB) as server:
        session = iv.Session.connect(server.url, top_logprobs="full")  # server tokenizer
        assert session.backend.dialect.name == "llama.cpp" and session.vocab_size == VOCAB
        assert session.encode(PROMPT) == local.encode(PROMPT)
        remote = session.generate(PROMPT, max_new_tokens=6)
        assert tokens_of(remote) == tokens_of(local.generate(PROMPT, max_new_tokens=6))
        assert remote.tree.node(remote.node_id).token == "t" + str(tokens_of(remote)[-1])
        with pytest.raises(ServerLacks, match="no prompt log-probabilities"):
            session.token_table(PROMPT)
        session.backend.close()


def test_sglang_dialect_greedy_and_token_table_match_local(model, tokenizer, local):
    with FakeServer(model, tokenizer, dialect="sglang", max_logprobs=VOCAB) as server:
        with pytest.raises(ServerLacks, match="pass tokenizer="):
            iv.Session.connect(server.url, vocab_size=VOCAB)  # no /tokenize to stand in
        session = iv.Session.connect(server.url, tokenizer=tokenizer, top_logprobs="full")
        assert session.backend.dialect.name == "sglang"
        remote = session.generate(PROMPT, max_new_tokens=6)
        assert tokens_of(remote) == tokens_of(local.generate(PROMPT, max_new_tokens=6))
        got, want = session.token_table("t5 t17 t20 t30"), local.token_table("t5 t17 t20 t30")
        assert got["logprob"].tolist() == pytest.approx(want["logprob"].tolist(), abs=1e-5)
        assert got["rank"].tolist() == want["rank"].tolist()
        fast = session.generate(PROMPT, max_new_tokens=4, server_side=True)
        assert tokens_of(fast) == tokens_of(local.generate(PROMPT, max_new_tokens=4))
        session.backend.close()


def test_server_tokenizer_stands_in_when_none_is_given(vllm, local):
    session = iv.Session.connect(vllm.url, vocab_size=VOCAB)
    assert session.encode(PROMPT) == local.encode(PROMPT)
    tree = session.tree(PROMPT)
    kids = session.expand(tree, tree.root_id, k=2)
    assert kids[0].token == local.token_bytes(kids[0].token_id).decode()


def test_token_table_remote_matches_local(full, top5, local):
    text = "t5 t17 t20 t30 t31"
    want = local.token_table(text)
    got = full.token_table(text)
    assert got["logprob"].tolist() == pytest.approx(want["logprob"].tolist(), abs=1e-5)
    assert got["rank"].tolist() == want["rank"].tolist()
    assert got["entropy"].tolist() == pytest.approx(want["entropy"].tolist(), abs=1e-4)
    assert not got["approx"].any()
    assert got.attrs["perplexity"] == pytest.approx(want.attrs["perplexity"], rel=1e-5)
    truncated = top5.token_table(text)
    assert truncated["logprob"].tolist() == pytest.approx(want["logprob"].tolist(), abs=1e-5)
    assert truncated["rank"].tolist() == want["rank"].tolist()  # the server's exact ranks
    assert truncated["approx"].all()


def test_logit_lens_refuses_with_what_the_server_lacks(full):
    with pytest.raises(ServerLacks, match="hidden state"):
        full.logit_lens(PROMPT)
    with pytest.raises(ServerLacks, match="hidden state"):
        full.generate(PROMPT, strategy="contrastive", amateur_layer=0, max_new_tokens=2)


def test_contrastive_with_a_truncated_amateur_refuses(full, top5):
    with pytest.raises(ServerLacks, match="full next-token distribution"):
        full.generate(PROMPT, strategy="contrastive", amateur=top5, max_new_tokens=2)


def test_contrastive_remote_expert_local_amateur_matches_local(full, local):
    kw = dict(strategy="contrastive", amateur=local, alpha=0.1, max_new_tokens=4)
    assert tokens_of(full.generate(PROMPT, **kw)) == tokens_of(local.generate(PROMPT, **kw))


def test_busy_server_is_retried_with_back_off(model, tokenizer):
    with FakeServer(model, tokenizer, fail_times=3, fail_status=429) as server:
        session = iv.Session.connect(server.url, tokenizer=tokenizer, backoff=0.001)
        tree = session.tree(PROMPT)
        session.expand(tree, tree.root_id, k=2)
        assert server.failed == 3 and session.backend.http.retries == 3


def test_server_still_busy_after_max_retries_raises_its_status(model, tokenizer):
    with FakeServer(model, tokenizer) as server:
        session = iv.Session.connect(server.url, tokenizer=tokenizer, max_retries=2,
                                     backoff=0.001)
        server.fail_times = server.failed + 10
        tree = session.tree(PROMPT)
        with pytest.raises(ServerError, match="answered 503"):
            session.expand(tree, tree.root_id, k=2)
        assert len(tree) == 1  # the tree is unchanged
        assert session.backend.http.retries == 2


def test_one_tree_level_goes_to_the_server_concurrently(model, tokenizer):
    with FakeServer(model, tokenizer, delay=0.05) as server:
        session = iv.Session.connect(server.url, tokenizer=tokenizer, concurrency=8)
        tree = session.tree(PROMPT)
        kids = session.expand(tree, tree.root_id, k=8)
        before = len(server.requests)
        session.expand(tree, [c.node_id for c in kids], k=2)
        assert len(server.requests) - before == 8
        assert server.max_in_flight >= 4


def test_widget_clicks_through_the_batcher_work_remotely(full, local):
    tree = full.tree(PROMPT)
    futures = [full.submit_expand(tree, tree.root_id, k=3) for _ in range(3)]
    kids = [f.result(timeout=30) for f in futures]
    want = local.expand(local.tree(PROMPT), 0, k=3)
    assert [c.token_id for c in kids[0]] == [c.token_id for c in want]
    assert len(tree) == 4


def test_server_side_greedy_writes_path_and_siblings_in_one_request(top5, local, vllm):
    before = len(vllm.requests)
    res = top5.generate(PROMPT, max_new_tokens=5, server_side=True)
    assert len(vllm.requests) - before == 1
    assert tokens_of(res) == tokens_of(local.generate(PROMPT, max_new_tokens=5))
    df = res.tree.to_pandas()
    assert (df["depth"] == 1).sum() == 5  # the chosen token and 4 siblings
    assert df["approx"].iloc[1:].all()
    path = res.tree.path(res.node_id)
    assert all(n.meta.get("strategy") == "greedy" for n in path[1:])


@pytest.mark.parametrize("dialect", ["vllm", "llama.cpp"])
def test_server_side_generation_streams_tokens_into_the_tree_as_they_arrive(model, tokenizer,
                                                                           local, dialect):
    with FakeServer(model, tokenizer, dialect=dialect, stream_delay=0.05) as server:
        session = iv.Session.connect(server.url, tokenizer=tokenizer, top_logprobs=3)
        tree = session.tree(PROMPT)
        seen: list[tuple[int, int]] = []  # (node depth, requests still in flight)
        tree.on_change(lambda ids: seen.append((tree.node(ids[0]).depth, server.in_flight)))
        res = session.generate(tree, max_new_tokens=4, server_side=True)
        assert server.requests[-1][1]["stream"] is True
        assert [depth for depth, _ in seen] == [1, 2, 3, 4]
        assert seen[0][1] == 1  # the first token was in the tree while the reply streamed on
        assert tokens_of(res) == tokens_of(local.generate(PROMPT, max_new_tokens=4))
        session.backend.close()


def test_server_side_sampling_is_reproducible_with_a_seed(full):
    a = full.generate(PROMPT, strategy="sample", max_new_tokens=5, seed=7, server_side=True)
    b = full.generate(PROMPT, strategy="sample", max_new_tokens=5, seed=7, server_side=True)
    assert tokens_of(a) == tokens_of(b)
    node = a.tree.node(a.node_id)
    assert math.isfinite(node.raw_logprob) and node.meta["approx"] is False


def test_server_side_refuses_strategies_it_cannot_run(full, local):
    with pytest.raises(ValueError, match="server_side=True supports"):
        full.generate(PROMPT, strategy="beam", server_side=True)
    with pytest.raises(ServerLacks, match="session is local"):
        local.generate(PROMPT, server_side=True)


@pytest.mark.parametrize("kwargs, match", [
    (dict(base_url="localhost:8000"), "base_url must be an http"),
    (dict(base_url=8000), "base_url must be an http"),
    (dict(top_logprobs=0), "top_logprobs"),
    (dict(concurrency=0), "concurrency"),
    (dict(timeout=-1), "timeout"),
    (dict(max_retries=-1), "max_retries"),
    (dict(dialect="tgi"), "dialect must be"),
    (dict(model="other-model"), "is not served"),
])
def test_bad_connect_arguments_are_clear_errors(vllm, tokenizer, kwargs, match):
    args = {"base_url": vllm.url, "tokenizer": tokenizer, **kwargs}
    with pytest.raises(ValueError, match=match):
        iv.Session.connect(**args)


def test_no_server_at_the_url_is_a_clear_error(tokenizer):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ValueError, match="no inference server answered"):
        iv.Session.connect(f"http://127.0.0.1:{port}/v1", tokenizer=tokenizer, max_retries=0)


def test_a_mismatched_local_tokenizer_is_refused(vllm):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "Hello": 5, "world,": 6}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    other = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>")
    with pytest.raises(ValueError, match="does not match the server"):
        iv.Session.connect(vllm.url, tokenizer=other)


def test_local_backend_hands_the_engine_logits_on_without_a_copy(local, monkeypatch):
    tree = local.tree(PROMPT)
    computed = []
    real = local.engine.next_logits
    monkeypatch.setattr(local.engine, "next_logits",
                        lambda seqs: computed.append(real(seqs)) or computed[-1])
    scores = local.backend.next_token([tree.token_ids(tree.root_id)])
    assert scores.kind == "logits" and scores.approx is None
    assert scores.scores is computed[-1]
    dists = local.distributions(tree, [tree.root_id])
    assert dists.logits.data_ptr() == computed[-1].data_ptr()  # the engine's own tensor
    local.expand(tree, tree.root_id, k=2)
    assert dists.approx is None and "approx" not in tree.to_pandas().columns


def test_session_without_a_model_or_backend_says_how_to_make_one(tokenizer):
    with pytest.raises(TypeError, match="Session.connect"):
        iv.Session(None, tokenizer)


def test_server_lacks_is_a_value_error_exported_at_the_top_level():
    assert iv.ServerLacks is ServerLacks and issubclass(ServerLacks, ValueError)


@pytest.mark.parametrize("strategy, params", [
    ("sample", dict(temperature=0.8)), ("top_p", dict(top_p=0.9)), ("min_p", dict(min_p=0.1)),
    ("smc", dict(particles=4, top_k=3)), ("bfs", dict(k=2, depth=2)),
    ("threshold", dict(k=3)), ("beam", dict(num_beams=2)),
])
def test_every_strategy_runs_over_a_top_n_server_and_marks_its_nodes(top5, strategy, params):
    res = top5.generate(PROMPT, strategy=strategy, max_new_tokens=3, seed=0, **params)
    df = res.tree.to_pandas().iloc[1:]
    assert len(df) and df["approx"].all()
    assert df["raw_logprob"].map(math.isfinite).all() and (df["prob"] >= 0).all()


def test_closing_a_remote_session_releases_its_backend_and_refuses_further_use(vllm, tokenizer):
    session = iv.Session.connect(vllm.url, tokenizer=tokenizer, top_logprobs=5)
    backend = session.backend
    tree = session.tree("Hello")
    with session:
        session.expand(tree, tree.root_id, k=2)
    assert session.closed
    assert backend._pool._shutdown  # the request threads are gone
    with pytest.raises(RuntimeError, match="is closed"):
        session.expand(tree, tree.root_id, k=2)
    assert len(tree) == 3  # the refused call left the tree as it was


def test_control_tokens_sent_without_bytes_take_the_local_tokenizer_text(tokenizer):
    """llama.cpp sends ``bytes: []`` for control tokens such as <|im_end|>: with a local
    tokenizer the node shows its text (as locally), without one the server's empty bytes stay."""
    from types import SimpleNamespace

    from inferviz.backends.remote import RemoteTokenBytes

    eos = tokenizer.eos_token_id
    backend = SimpleNamespace(pieces={eos: b"", 7: b"seven"})
    assert RemoteTokenBytes(backend, tokenizer)(eos) == tokenizer.eos_token.encode()
    assert RemoteTokenBytes(backend, tokenizer)(7) == b"seven"  # the server's bytes win
    assert RemoteTokenBytes(backend, None)(eos) == b""


@pytest.mark.parametrize("served, shown", [
    ("/models/x/SmolLM2-135M-Instruct.Q4_1.gguf", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    ("C:\\models\\tiny.gguf", "tiny.gguf"),
    ("Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-7B-Instruct"),
    ("tiny", "tiny")])
def test_a_model_served_by_its_file_path_is_named_by_its_file(served, shown):
    from inferviz.backends.remote import display_name

    assert display_name(served) == shown


@pytest.mark.parametrize("strategy, params", [("greedy", {}), ("sample", {"seed": 0}),
                                              ("beam", {"num_beams": 2})])
def test_a_remote_run_at_the_context_limit_ends_with_finish_reason_context(strategy, params):
    """A server with an 8-token context: the run stops when the context is full, as a local
    one does, instead of raising at the next step (issue 17)."""
    model, tokenizer = tiny_model("llama"), tiny_tokenizer()
    with FakeServer(model, tokenizer, max_model_len=8, max_logprobs=20) as server:
        s = iv.Session.connect(server.url, tokenizer=tokenizer)
        prompt = "t5 t6 t7 t8"  # 5 tokens with the BOS: room for 3 more
        result = s.generate(prompt, strategy, max_new_tokens=10, stop_at_eos=False, **params)
        assert result.finish_reason == "context"
        assert len(result.token_ids) == 8 - len(s.encode(prompt))

