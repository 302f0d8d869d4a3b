"""Engine: batched, prefix-cached next-token logits equal a plain full forward, whatever the
depths in the batch, the KV budget or a failure half way."""

import pytest
import torch
from tiny_models import FAMILIES, full_forward_last_logits, tiny_model

from inferviz.engine import Engine
from inferviz.kvstore import KVBudgetError

ATOL = 1e-5


def random_ids(n: int, seed: int) -> list[int]:
    return torch.randint(3, 97, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def assert_matches_full_forward(model, seqs, logits):
    assert logits.dtype == torch.float32 and logits.device.type == "cpu"
    assert not logits.is_inference()  # the forward runs in inference mode; callers may mutate
    assert logits.shape[0] == len(seqs)
    for row, seq in enumerate(seqs):
        torch.testing.assert_close(logits[row], full_forward_last_logits(model, seq),
                                   atol=ATOL, rtol=1e-4)


@pytest.fixture(scope="module", params=FAMILIES)
def model(request):
    return tiny_model(request.param)


@pytest.fixture(params=["rows", "packed", "auto"])
def layout(request):
    """Padded rows, one packed row with a tree attention mask, or the engine's choice."""
    return request.param


def test_mixed_depth_batch_matches_full_forward(model, layout):
    engine = Engine(model, layout=layout)
    prompt = random_ids(30, 1)
    engine.next_logits([prompt])
    engine.next_logits([prompt + [5, 6]])
    seqs = [prompt + [5, 6, 7], prompt + [5], prompt[:10], random_ids(4, 2), prompt + [9],
            random_ids(45, 3)]
    assert_matches_full_forward(model, seqs, engine.next_logits(seqs))
    engine.store.check()
    assert not engine.store.keys.is_inference() and not engine.store.values.is_inference()


def test_identical_sequences_in_one_batch_are_computed_and_stored_once(model, layout):
    engine = Engine(model, layout=layout)
    seq = random_ids(12, 4)
    logits = engine.next_logits([seq, seq, seq[:5], seq])
    assert_matches_full_forward(model, [seq, seq, seq[:5], seq], logits)
    assert engine.store.num_cached == 12
    assert engine.stats.rows == 2
    engine.store.check()


def test_shared_uncached_prefix_in_one_batch_is_stored_once(model, layout):
    engine = Engine(model, layout=layout)
    stem = random_ids(10, 5)
    seqs = [stem + [3], stem + [4], stem + [4, 8]]
    assert_matches_full_forward(model, seqs, engine.next_logits(seqs))
    assert engine.store.num_cached == 10 + 2 + 1
    engine.store.check()
    assert_matches_full_forward(model, seqs, engine.next_logits(seqs))  # now all cached


def test_expanding_a_deep_node_computes_only_its_new_token(model):
    engine = Engine(model)
    path = random_ids(60, 6)
    for depth in range(20, 61, 20):
        engine.next_logits([path[:depth]])
    engine.stats.reset()
    logits = engine.next_logits([path + [7]])
    assert engine.stats.tokens_computed == 1 and engine.stats.tokens_reused == 60
    assert_matches_full_forward(model, [path + [7]], logits)


@pytest.mark.parametrize("family", ["gemma3_text", "mistral"])
def test_sliding_window_holds_when_rows_have_different_cached_lengths(family, layout):
    """Window 8, prompts far beyond it, rows with 0..40 cached tokens and 1..50 new ones: the
    pads must not shift the window (index distance = position distance) or make NaN rows."""
    model = tiny_model(family, sliding_window=8)
    engine = Engine(model, layout=layout)
    prompt = random_ids(40, 7)
    engine.next_logits([prompt])
    seqs = [prompt + [4], prompt[:20] + [5], random_ids(50, 8), prompt[:3], prompt + [4, 6, 9]]
    logits = engine.next_logits(seqs)
    assert not torch.isnan(logits).any()
    assert_matches_full_forward(model, seqs, logits)


def test_a_tree_level_goes_through_one_packed_forward_computing_each_token_once(model):
    """A level of a tree over a long shared prompt: "auto" packs it (the prompt's keys and
    values are read once, not once per row), and the logits still equal full forwards."""
    engine = Engine(model)
    prompt = random_ids(50, 12)
    engine.next_logits([prompt])
    level = [prompt + [t] for t in (3, 4, 5, 6)]
    engine.next_logits(level)
    engine.stats.reset()
    seqs = [seq + [t] for seq in level for t in (7, 8)] + [prompt + [3, 7, 9]]
    logits = engine.next_logits(seqs)
    assert engine.stats.packed == 1 and engine.stats.forwards == 1
    # [3, 7] is shared by two rows: computed once; every other row adds one token
    assert engine.stats.tokens_computed == 9
    assert_matches_full_forward(model, seqs, logits)
    engine.store.check()


def test_auto_keeps_padded_rows_for_sequences_that_share_nothing(model):
    engine = Engine(model)
    seqs = [random_ids(20, 13), random_ids(20, 14)]
    assert_matches_full_forward(model, seqs, engine.next_logits(seqs))
    assert engine.stats.packed == 0


def test_bad_layout_is_refused():
    with pytest.raises(ValueError, match="layout must be one of auto, rows, packed"):
        Engine(tiny_model("llama"), layout="tree")


def test_pad_positions_never_pass_the_context_of_learned_position_tables():
    model = tiny_model("gpt2")  # n_positions=256: an index past it would raise
    engine = Engine(model)
    long = random_ids(250, 9)
    engine.next_logits([long])
    seqs = [long + [3], random_ids(30, 10)]
    assert_matches_full_forward(model, seqs, engine.next_logits(seqs))


def test_sequence_longer_than_the_context_is_refused():
    engine = Engine(tiny_model("gpt2"))
    with pytest.raises(ValueError, match="longer than the model's context"):
        engine.next_logits([random_ids(257, 11)])


def test_empty_input_is_refused():
    engine = Engine(tiny_model("llama"))
    with pytest.raises(ValueError, match="non-empty"):
        engine.next_logits([])
    with pytest.raises(ValueError, match="empty"):
        engine.next_logits([[]])


# ------------------------------------------------------------------ budget and failures

def test_tiny_budget_evicts_and_recomputes_transparently(model):
    engine = Engine(model, kv_budget_tokens=40)
    prompt = random_ids(16, 12)
    branches = [prompt + random_ids(8, 20 + i) for i in range(6)]
    for _ in range(2):
        for branch in branches:
            logits = engine.next_logits([branch, branch[:-3]])
            assert_matches_full_forward(model, [branch, branch[:-3]], logits)
            engine.store.check()
    assert engine.store.evictions > 0
    assert engine.store.num_cached <= 40


def test_batch_that_does_not_fit_the_budget_is_split_and_still_right(model):
    engine = Engine(model, kv_budget_tokens=40)
    seqs = [random_ids(15, 30 + i) for i in range(5)]  # 75 slots in all, 15 each
    logits = engine.next_logits(seqs)
    assert engine.stats.splits > 0
    assert_matches_full_forward(model, seqs, logits)
    engine.store.check()


def test_sequence_longer_than_the_budget_raises_and_leaves_the_store_intact():
    model = tiny_model("llama")
    engine = Engine(model, kv_budget_tokens=20)
    short = random_ids(10, 40)
    engine.next_logits([short])
    with pytest.raises(KVBudgetError, match="does not fit kv_budget_tokens=20"):
        engine.next_logits([short + [5], random_ids(21, 41)])
    engine.store.check()
    assert engine.store.num_cached == 10
    assert_matches_full_forward(model, [short + [6]], engine.next_logits([short + [6]]))


def test_out_of_memory_in_a_batched_forward_splits_and_retries(monkeypatch):
    model = tiny_model("qwen2")
    engine = Engine(model)
    real_forward = model.forward

    def forward(*args, **kwargs):
        if kwargs["input_ids"].shape[0] > 1:
            raise torch.OutOfMemoryError("simulated: batch too large")
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", forward)
    seqs = [random_ids(9, 50 + i) for i in range(4)]
    logits = engine.next_logits(seqs)
    assert engine.stats.splits == 3 and engine.stats.forwards == 4
    monkeypatch.undo()
    assert_matches_full_forward(model, seqs, logits)
    engine.store.check()


def test_out_of_memory_on_one_sequence_raises_budget_error_and_changes_nothing(monkeypatch):
    model = tiny_model("llama")
    engine = Engine(model)
    prompt = random_ids(12, 60)
    engine.next_logits([prompt])

    def forward(*args, **kwargs):
        raise torch.OutOfMemoryError("simulated")

    monkeypatch.setattr(model, "forward", forward)
    with pytest.raises(KVBudgetError, match="out of memory"):
        engine.next_logits([prompt + [4, 5]])
    monkeypatch.undo()
    engine.store.check()
    assert engine.store.num_cached == 12
    assert_matches_full_forward(model, [prompt + [4, 5]], engine.next_logits([prompt + [4, 5]]))


def test_failure_while_storing_keys_leaves_no_dangling_trie_node(monkeypatch):
    model = tiny_model("llama")
    engine = Engine(model)
    prompt = random_ids(8, 70)
    engine.next_logits([prompt])

    def write(*args, **kwargs):
        raise RuntimeError("simulated write failure")

    monkeypatch.setattr(engine.store, "write", write)
    monkeypatch.setattr(engine.store, "write_range", write)  # a path's in-place writes
    with pytest.raises(RuntimeError, match="simulated"):
        engine.next_logits([prompt + [3, 4, 5]])
    monkeypatch.undo()
    engine.store.check()
    assert engine.store.num_cached == 8
    assert_matches_full_forward(model, [prompt + [3, 4, 5]],
                                engine.next_logits([prompt + [3, 4, 5]]))


def test_engine_follows_the_model_device_and_dtype():
    model = tiny_model("llama").to(torch.bfloat16)
    engine = Engine(model)
    assert engine.dtype == torch.bfloat16 and engine.store.keys.dtype == torch.bfloat16
    assert engine.store.keys.device == next(model.parameters()).device
    logits = engine.next_logits([random_ids(5, 80)])
    assert logits.dtype == torch.float32


# ------------------------------------------------------------------ real models

def expand_levels(session, tree, k: int, depth: int) -> list[int]:
    """Expand every node level by level (one batched call per level); all node ids."""
    frontier = [tree.root_id]
    for _ in range(depth):
        children = session.expand(tree, frontier, k=k)
        frontier = [c.node_id for c in children]
    return list(tree.nodes)


@pytest.fixture(scope="module")
def default_session():
    import inferviz

    return inferviz.Session.from_pretrained("default", device="cpu")


@pytest.mark.model
def test_default_model_mixed_depth_batch_matches_full_forward(default_session):
    s = default_session
    tree = s.tree("The capital of France is")
    nodes = expand_levels(s, tree, k=2, depth=3)
    s.engine.clear_cache()
    s.expand(tree, nodes[3], k=1)  # some rows cached, others not
    batch = [nodes[0], nodes[-1], nodes[3], nodes[5], nodes[-1]]
    dists = s.distributions(tree, batch)
    for row, node in enumerate(batch):
        torch.testing.assert_close(
            dists.logits[row], full_forward_last_logits(s.model, tree.token_ids(node)),
            atol=1e-4, rtol=1e-4)


@pytest.mark.model
def test_default_model_tiny_budget_recomputes_and_fails_cleanly(default_session):
    from inferviz.session import Session

    s = Session(default_session.model, default_session.tokenizer, kv_budget_tokens=24)
    tree = s.tree("Once upon a time, in a land far away,")
    expand_levels(s, tree, k=3, depth=2)
    leaf = max(tree.nodes.values(), key=lambda n: n.depth)
    node_id = leaf.node_id
    while len(tree.token_ids(node_id)) <= 24:
        node_id = s.expand(tree, node_id, k=1)[0].node_id
    assert s.engine.store.evictions > 0
    before = tree.to_json()
    with pytest.raises(KVBudgetError, match="kv_budget_tokens=24"):
        s.expand(tree, [tree.root_id, node_id], k=2)
    assert tree.to_json() == before
    s.engine.store.check()
    dists = s.distributions(tree, [leaf.node_id])
    torch.testing.assert_close(
        dists.logits[0], full_forward_last_logits(s.model, tree.token_ids(leaf.node_id)),
        atol=1e-4, rtol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gemma3-270m", "qwen2.5-coder-0.5b"])
def test_real_model_batched_expansion_equals_one_at_a_time(name):
    """Gemma 3 270M has a 512-token sliding window: the prompt goes beyond it, and the batch
    mixes rows with short and long cached prefixes."""
    import inferviz
    from inferviz import zoo

    if not zoo.is_installed(name):
        pytest.skip(f"{name} is not installed ({zoo.ZOO[name].install_hint})")
    s = inferviz.Session.from_pretrained(name, device="cpu", dtype="float32")
    words = " ".join(f"item{i}" for i in range(260))  # > 512 tokens
    long_tree = s.tree("Count: " + words)
    short_tree = s.tree("def add(a, b):")
    long_nodes = expand_levels(s, long_tree, k=2, depth=2)
    short_nodes = expand_levels(s, short_tree, k=2, depth=2)
    pairs = [(long_tree, n) for n in long_nodes] + [(short_tree, n) for n in short_nodes]
    seqs = [t.token_ids(n) for t, n in pairs]
    assert max(len(q) for q in seqs) > 520
    s.engine.clear_cache()
    s.engine.next_logits([long_tree.token_ids(long_nodes[1])[:300]])  # a partial prefix cached
    s.engine.stats.reset()
    batched = s.engine.next_logits(seqs)
    assert s.engine.stats.packed == 1  # one packed row: a tree attention mask over both trees
    s.engine.clear_cache()
    for row, seq in enumerate(seqs):
        alone = s.engine.next_logits([seq])[0]
        torch.testing.assert_close(batched[row], alone, atol=2e-4, rtol=1e-4)
    torch.testing.assert_close(batched[-1], full_forward_last_logits(s.model, seqs[-1]),
                               atol=2e-4, rtol=1e-4)
    torch.testing.assert_close(batched[2], full_forward_last_logits(s.model, seqs[2]),
                               atol=2e-4, rtol=1e-4)


# ------------------------------------------------------------------ compiled forwards
def test_bad_compile_option_is_refused():
    with pytest.raises(ValueError, match="compile must be False, True or a torch.compile mode"):
        Engine(tiny_model("llama"), compile="fast")
    with pytest.raises(ValueError, match="layout='packed' cannot be compiled"):
        Engine(tiny_model("llama"), compile=True, layout="packed")


@pytest.mark.slow
def test_compiled_engine_matches_eager_and_reuses_its_graphs():
    """compile=True: torch.compile over padded rows whose widths are rounded up to buckets; the
    logits equal the eager engine's, and decoding inside one bucket compiles nothing new."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    model = tiny_model("llama")
    eager, compiled = Engine(model), Engine(model, compile=True)
    prompt = random_ids(20, 21)
    path = list(prompt)
    for step in range(3):  # prefill + two decode steps: compiles the shapes it meets
        torch.testing.assert_close(compiled.next_logits([path]), eager.next_logits([path]),
                                   atol=1e-4, rtol=1e-4)
        path.append(3 + step)
    graphs = counters["stats"]["unique_graphs"]
    for step in range(5):  # more decode steps in the same past bucket
        torch.testing.assert_close(compiled.next_logits([path]), eager.next_logits([path]),
                                   atol=1e-4, rtol=1e-4)
        path.append(7 + step)
    assert counters["stats"]["unique_graphs"] == graphs, "decode steps recompiled"
    seqs = [prompt + [5], random_ids(9, 22), path]  # a batch of mixed depths
    torch.testing.assert_close(compiled.next_logits(seqs), eager.next_logits(seqs),
                               atol=1e-4, rtol=1e-4)
    assert compiled.stats.packed == 0
    compiled.store.check()


def test_a_path_decoded_token_by_token_is_written_in_place_and_matches_full_forward(model):
    engine = Engine(model)
    path = random_ids(20, 8)
    engine.next_logits([path])
    for token in (5, 6, 7):
        path = path + [token]
        engine.stats.reset()
        logits = engine.next_logits([path])
        assert engine.stats.in_place == 1 and engine.stats.tokens_computed == 1
        assert_matches_full_forward(model, [path], logits)
    engine.store.check()


def test_a_path_whose_slots_are_not_consecutive_is_gathered_and_still_right(model):
    engine = Engine(model)
    first, second = random_ids(12, 9), random_ids(12, 10)
    engine.next_logits([first])
    engine.next_logits([second])  # takes the slots right after first's
    engine.stats.reset()
    logits = engine.next_logits([first + [4]])
    assert engine.stats.in_place == 0
    assert_matches_full_forward(model, [first + [4]], logits)
    engine.store.check()
