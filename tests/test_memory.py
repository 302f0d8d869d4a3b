"""Memory policy (runs on CPU): the default KV budget, a pool that cannot grow, clear errors
when a forward runs out of memory, and Session.close() / the context manager."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch
from tiny_models import full_forward_last_logits, tiny_model, tiny_session

from inferviz import kvstore
from inferviz.engine import (
    CPU_KV_BYTES,
    CUDA_KV_FREE_FRACTION,
    MIN_KV_BUDGET_TOKENS,
    Engine,
    default_kv_budget_tokens,
)
from inferviz.kvstore import KVBudgetError


def random_ids(n: int, seed: int) -> list[int]:
    return torch.randint(3, 97, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def test_default_budget_on_cpu_is_about_one_gib_of_kv():
    per_token = 2 * 2 * 2 * 16 * 4  # keys+values, 2 layers, 2 heads, head_dim 16, float32
    assert default_kv_budget_tokens(torch.device("cpu"), per_token) == CPU_KV_BYTES // per_token
    engine = Engine(tiny_model("llama"))
    assert engine.store.budget_tokens == CPU_KV_BYTES // per_token


def test_default_budget_on_cuda_is_a_fraction_of_the_free_memory(monkeypatch):
    free = 10 * 2**30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, 80 * 2**30))
    per_token = 2 * 30 * 3 * 64 * 2  # a SmolLM2-135M-shaped model in bfloat16
    budget = default_kv_budget_tokens(torch.device("cuda"), per_token)
    assert budget == int(free * CUDA_KV_FREE_FRACTION) // per_token
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (2**20, 80 * 2**30))
    assert default_kv_budget_tokens(torch.device("cuda"), per_token) == MIN_KV_BUDGET_TOKENS


def test_pool_that_cannot_grow_caps_the_budget_and_evicts_instead(monkeypatch):
    model = tiny_model("llama")
    engine = Engine(model, kv_budget_tokens=4096)
    assert engine.store.capacity == 512

    def out_of_memory(pool, shape):
        raise torch.OutOfMemoryError("simulated: the device is full")

    monkeypatch.setattr(kvstore, "_extended", out_of_memory)
    first = random_ids(200, 1)
    engine.next_logits([first])
    seqs = [random_ids(200, 2 + i) for i in range(3)]  # 600 new tokens > the 512-slot pool
    logits = engine.next_logits(seqs)
    for row, seq in enumerate(seqs):
        torch.testing.assert_close(logits[row], full_forward_last_logits(model, seq),
                                   atol=1e-5, rtol=1e-4)
    store = engine.store
    assert store.memory_capped and store.budget_tokens == store.capacity == 512
    assert store.evictions > 0 and engine.stats.splits > 0
    store.check()


def test_out_of_memory_names_the_store_and_what_to_do(monkeypatch):
    model = tiny_model("qwen2")
    engine = Engine(model)
    engine.next_logits([random_ids(10, 9)])

    def forward(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(model, "forward", forward)
    with pytest.raises(KVBudgetError) as info:
        engine.next_logits([random_ids(10, 9) + [5]])
    message = str(info.value)
    assert "out of memory" in message and "10 cached tokens" in message
    assert "clear_cache()" in message and "kv_budget_tokens" in message
    assert isinstance(info.value.__cause__, torch.OutOfMemoryError)
    engine.store.check()
    assert engine.store.num_cached == 10


# ------------------------------------------------------------------ Session.close
def test_closed_session_refuses_further_use_with_a_clear_error():
    session = tiny_session("llama")
    tree = session.tree("t5 t6")
    session.expand(tree, tree.root_id, k=2)
    session.close()
    assert session.closed and "closed" in repr(session)
    for use in (lambda: session.expand(tree, tree.root_id, k=2),
                lambda: session.generate("t5", max_new_tokens=2),
                lambda: session.tree("t7"),
                lambda: session.logit_lens("t5 t6"),
                lambda: session.model(input_ids=torch.tensor([[5]]))):
        with pytest.raises(RuntimeError, match="is closed .* Session.from_pretrained"):
            use()
    session.close()  # twice is harmless


def test_close_frees_the_kv_store_the_model_and_the_batcher():
    session = tiny_session("llama")
    tree = session.tree("t5 t6")
    session.submit_expand(tree, tree.root_id, k=2).result(timeout=30)
    engine, batcher = session.engine, session.batcher
    model_ref = weakref.ref(session.model)
    assert engine.store.num_cached > 0
    session.close()
    gc.collect()
    assert model_ref() is None, "the closed session still keeps its model alive"
    assert engine.store.keys is None and engine.store.num_cached == 0
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit(tree, tree.root_id, k=2)


def test_context_manager_closes_the_session_even_on_error():
    with pytest.raises(KeyError):
        with tiny_session("llama") as session:
            assert not session.closed
            session.expand(session.tree("t5"), 0, k=1)
            raise KeyError("user code failed")
    assert session.closed
