"""KVStore: the token trie over a slot pool, its LRU eviction and its budget errors."""

import pytest
import torch

from inferviz.kvstore import KVBudgetError, KVStore


def make_store(budget: int, initial: int | None = None) -> KVStore:
    store = KVStore(budget, torch.device("cpu"), torch.float32)
    store.ensure_shapes(layers=2, heads=1, head_dim=3, need=initial or budget)
    return store


def cache_path(store: KVStore, tokens: list[int]) -> None:
    """Insert ``tokens`` as one request (begin, match, allocate, insert)."""
    store.begin()
    matched = store.match(tokens)
    parent = matched[-1] if matched else store.root
    for tok, slot in zip(tokens[len(matched):], store.allocate(len(tokens) - len(matched))):
        parent = store.insert(parent, tok, slot)


def test_budget_must_be_a_positive_int():
    for bad in (0, -3, 1.5, True, "8"):
        with pytest.raises(ValueError, match="kv_budget_tokens"):
            KVStore(bad, torch.device("cpu"), torch.float32)


def test_match_returns_longest_cached_prefix():
    store = make_store(16)
    cache_path(store, [1, 2, 3])
    assert [n.token_id for n in store.match([1, 2, 9])] == [1, 2]
    assert store.match([7]) == []
    store.check()


def test_pool_grows_by_doubling_up_to_the_budget():
    store = make_store(10, initial=2)
    cache_path(store, [1, 2])
    cache_path(store, [1, 2, 3])
    assert store.capacity == 4
    cache_path(store, [1, 2, 3, 4, 5, 6, 7])
    assert store.capacity == 8
    cache_path(store, [1, 2, 3, 4, 5, 6, 7, 8, 9])
    assert store.capacity == 10
    store.check()


def test_least_recently_used_leaf_goes_first_and_prefixes_stay():
    store = make_store(5)
    cache_path(store, [1, 2, 3])     # older branch
    cache_path(store, [1, 4, 5])     # newer branch
    cache_path(store, [7])           # needs one slot: the old leaf 3 goes
    assert [n.token_id for n in store.match([1, 2, 3])] == [1, 2]
    assert len(store.match([1, 4, 5])) == 3
    assert store.evictions == 1
    store.check()


def test_nodes_used_by_the_current_request_are_never_evicted():
    store = make_store(4)
    cache_path(store, [1, 2, 3])
    store.begin()
    store.match([1, 2, 3])
    with pytest.raises(KVBudgetError, match="kv_budget_tokens=4"):
        store.allocate(2)
    assert len(store.match([1, 2, 3])) == 3
    store.check()


def test_failed_allocation_leaves_free_list_and_trie_consistent():
    store = make_store(4)
    cache_path(store, [1, 2])
    free_before = sorted(store.free)
    store.begin()
    store.match([1, 2])
    with pytest.raises(KVBudgetError):
        store.allocate(3)
    assert sorted(store.free) == free_before
    store.check()


def test_request_larger_than_budget_names_the_budget():
    store = make_store(4)
    with pytest.raises(KVBudgetError, match="needs 5 KV slots but kv_budget_tokens=4"):
        store.allocate(5)


def test_released_slots_can_be_allocated_again():
    store = make_store(3)
    store.begin()
    slots = store.allocate(3)
    store.release(slots)
    assert sorted(store.allocate(3)) == sorted(slots)


def test_insert_refuses_a_duplicate_child():
    store = make_store(4)
    cache_path(store, [1])
    with pytest.raises(RuntimeError, match="already holds"):
        store.insert(store.root, 1, store.allocate(1)[0])


def test_clear_frees_every_slot():
    store = make_store(8)
    cache_path(store, [1, 2, 3])
    store.clear()
    assert store.num_cached == 0 and store.match([1]) == []
    store.check()


def test_write_then_gather_round_trips_with_pad_slot_zero():
    store = make_store(4)
    store.begin()
    slots = store.allocate(2)
    keys = torch.arange(2 * 2 * 1 * 3, dtype=torch.float32).reshape(2, 2, 1, 3)
    store.write(torch.tensor(slots), keys, -keys)
    got_k, got_v = store.gather(torch.tensor([[0, slots[0], slots[1]]]))  # [L, B, H, P, D]
    assert torch.equal(got_k[:, 0, :, 1:], keys.permute(0, 2, 1, 3))
    assert torch.equal(got_v[:, 0, :, 1:], -keys.permute(0, 2, 1, 3))
    assert torch.equal(got_k[:, 0, :, 0], torch.zeros(2, 1, 3))
