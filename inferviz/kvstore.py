"""Prefix-shared KV store: a token trie over a slot pool (SGLang's radix cache, at token grain).

Every cached token owns one slot of a pool holding its keys and values for all layers; a trie
keyed by token ids maps each cached prefix to its slots. Any path through the token tree (or
any other sequence with a common prefix, across trees) reuses what is cached, so expanding a
node costs a forward over its uncached tokens only, whatever its depth.

Memory is bounded by ``budget_tokens``: when the pool is full, least recently used trie leaves
are evicted (a leaf before its ancestors, so a cached node's prefix is always cached), and the
engine transparently recomputes an evicted suffix when it is needed again. Nodes matched by the
request being served (those touched since the last ``begin``) are never evicted.

Invariants (checked by :meth:`KVStore.check`): every trie node owns one distinct slot in
``1..capacity``; a slot is either owned by exactly one node or free; a node's slot holds the keys
and values of its token given the whole prefix above it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

_OOM = (torch.OutOfMemoryError,) if hasattr(torch, "OutOfMemoryError") else ()


class KVBudgetError(MemoryError):
    """A request needs more KV slots (or memory) than is available, even after eviction."""


@dataclass(eq=False)
class TrieNode:
    token_id: int
    slot: int
    parent: "TrieNode | None"
    depth: int
    last_used: int = 0
    children: dict[int, "TrieNode"] = field(default_factory=dict)


class KVStore:
    """Slots ``[num_layers, capacity + 1, kv_heads, head_dim]`` for keys and values; slot 0 is an
    all-zero pad slot. Shapes are set by :meth:`ensure_shapes` before the first write; the pool
    grows by doubling up to ``budget_tokens`` slots."""

    def __init__(self, budget_tokens: int, device: torch.device, dtype: torch.dtype) -> None:
        if isinstance(budget_tokens, bool) or not isinstance(budget_tokens, int) \
                or budget_tokens < 1:
            raise ValueError(f"kv_budget_tokens must be an int >= 1; got {budget_tokens!r}")
        self.budget_tokens = budget_tokens
        self.device = device
        self.dtype = dtype
        self.keys: torch.Tensor | None = None
        self.values: torch.Tensor | None = None
        self.capacity = 0  # usable slots (excluding the pad slot)
        self.free: list[int] = []
        self.root = TrieNode(token_id=-1, slot=0, parent=None, depth=0)
        self.tick = 0
        self.evictions = 0
        self.num_cached = 0
        self.memory_capped = False  # True once an allocation failure stopped the pool growing

    # ------------------------------------------------------------------ trie
    def begin(self) -> None:
        """Start a request: nodes matched from now on are protected from eviction until the
        next ``begin``."""
        self.tick += 1

    def match(self, token_ids: list[int]) -> list[TrieNode]:
        """Trie nodes of the longest cached prefix of ``token_ids`` (touched as used)."""
        node = self.root
        out: list[TrieNode] = []
        for tok in token_ids:
            child = node.children.get(tok)
            if child is None:
                break
            child.last_used = self.tick
            out.append(child)
            node = child
        return out

    def insert(self, parent: TrieNode, token_id: int, slot: int) -> TrieNode:
        """Add the child ``token_id`` of ``parent`` owning ``slot`` (whose data is written)."""
        if token_id in parent.children:
            raise RuntimeError(f"KV trie already holds token {token_id} under this prefix")
        child = TrieNode(token_id, slot, parent, parent.depth + 1, self.tick)
        parent.children[token_id] = child
        self.num_cached += 1
        return child

    # ------------------------------------------------------------------ slots
    def allocate(self, n: int) -> list[int]:
        """``n`` free slots, growing the pool or evicting LRU leaves not used in this request.
        Raises :class:`KVBudgetError` (with nothing allocated) when that is not enough."""
        if n == 0:
            return []
        if n > self.budget_tokens:
            raise KVBudgetError(
                f"this request needs {n} KV slots but kv_budget_tokens={self.budget_tokens}; "
                f"raise kv_budget_tokens or expand fewer nodes at once")
        if len(self.free) < n:
            self._grow(n - len(self.free))
        if len(self.free) < n:
            self._evict(n - len(self.free))
        if len(self.free) < n:
            capped = (f"; device memory capped the pool at {self.capacity} tokens"
                      if self.memory_capped else "")
            raise KVBudgetError(
                f"KV budget exhausted: {n} slots needed, {len(self.free)} free after evicting "
                f"everything this request does not use (kv_budget_tokens={self.budget_tokens}"
                f"{capped}); expand fewer nodes at once, clear the cache "
                f"(session.engine.clear_cache()) or free device memory")
        slots, self.free = self.free[-n:], self.free[:-n]
        return slots[::-1]  # ascending: a path's tokens get neighbouring slots

    def release(self, slots: list[int]) -> None:
        """Give back slots that were allocated but not inserted into the trie."""
        self.free.extend(slots)

    def ensure_shapes(self, layers: int, heads: int, head_dim: int, need: int) -> None:
        """Allocate the pool for ``need`` tokens (at most the budget) once the KV shape is known."""
        if self.keys is not None:
            return
        self.capacity = min(self.budget_tokens, max(1, need))
        shape = (layers, self.capacity + 1, heads, head_dim)
        self.keys = torch.zeros(shape, dtype=self.dtype, device=self.device)
        self.values = torch.zeros(shape, dtype=self.dtype, device=self.device)
        self.free = list(range(self.capacity, 0, -1))

    def _grow(self, need: int) -> None:
        if self.keys is None:
            raise RuntimeError("KVStore.ensure_shapes must run before the first allocation")
        target = min(self.budget_tokens, max(self.capacity * 2, self.capacity + need))
        if target <= self.capacity:
            return
        shape = list(self.keys.shape)
        shape[1] = target - self.capacity
        # Build both before assigning either: an allocation failure leaves the pool as it was.
        try:
            keys, values = _extended(self.keys, shape), _extended(self.values, shape)
        except _OOM:
            # The device is full before the budget is: the pool stays at its size, the budget
            # shrinks to it, and the request evicts (or fails with KVBudgetError) from there.
            keys = values = None
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            self.budget_tokens = self.capacity
            self.memory_capped = True
            return
        self.keys, self.values = keys, values
        self.free.extend(range(target, self.capacity, -1))
        self.capacity = target

    def _evict(self, need: int) -> None:
        """Free at least ``need`` slots if possible, least recently used leaves first (deepest
        first among equals); nodes touched in the current request are never evicted."""
        freed = 0
        while freed < need:
            leaves = [n for n in self._iter_nodes() if not n.children and n.last_used < self.tick]
            if not leaves:
                return
            leaves.sort(key=lambda n: (n.last_used, -n.depth))
            for leaf in leaves:
                del leaf.parent.children[leaf.token_id]
                self.free.append(leaf.slot)
                self.num_cached -= 1
                self.evictions += 1
                freed += 1
                if freed >= need:
                    return

    def _iter_nodes(self):
        stack = list(self.root.children.values())
        while stack:
            node = stack.pop()
            stack.extend(node.children.values())
            yield node

    def clear(self) -> None:
        """Drop every cached prefix (the pool stays allocated)."""
        self.root.children.clear()
        self.num_cached = 0
        if self.keys is not None:
            self.free = list(range(self.capacity, 0, -1))

    def close(self) -> None:
        """Free the pool and the trie; the store cannot be used afterwards."""
        self.clear()
        self.keys = self.values = None
        self.capacity = 0
        self.free = []

    def check(self) -> None:
        """Raise AssertionError if the trie and the free list disagree (for tests)."""
        owned = [n.slot for n in self._iter_nodes()]
        assert len(owned) == self.num_cached, (len(owned), self.num_cached)
        assert len(set(owned)) == len(owned), "two trie nodes share a slot"
        assert not set(owned) & set(self.free), "a slot is both owned and free"
        assert len(set(self.free)) == len(self.free), "a slot is free twice"
        assert set(owned) | set(self.free) == set(range(1, self.capacity + 1)), "slots leaked"
        for node in self._iter_nodes():
            assert node.parent.children.get(node.token_id) is node
            assert node.depth == node.parent.depth + 1

    # ------------------------------------------------------------------ data
    def gather(self, slot_rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values for a ``[B, P]`` matrix of slots (0 = pad): ``[L, B, H, P, D]``."""
        keys = self.keys[:, slot_rows].permute(0, 1, 3, 2, 4)
        values = self.values[:, slot_rows].permute(0, 1, 3, 2, 4)
        return keys, values

    def write(self, slots: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Store ``[L, M, H, D]`` keys/values into ``M`` slots."""
        self.keys[:, slots] = keys.to(self.dtype)
        self.values[:, slots] = values.to(self.dtype)

    def write_range(self, layer: int, first: int, keys: torch.Tensor,
                    values: torch.Tensor) -> None:
        """Store one layer's ``[M, H, D]`` keys/values into the consecutive slots from
        ``first`` (a forward writing in place, layer by layer)."""
        self.keys[layer, first:first + len(keys)].copy_(keys)
        self.values[layer, first:first + len(values)].copy_(values)

    @property
    def bytes_used(self) -> int:
        """Bytes held by the pool (keys and values, allocated capacity)."""
        if self.keys is None:
            return 0
        return 2 * self.keys.element_size() * self.keys.numel()


def _extended(pool: torch.Tensor, shape: list[int]) -> torch.Tensor:
    """A copy of ``pool`` with ``shape[1]`` more zero slots (may raise OutOfMemoryError)."""
    return torch.cat([pool, pool.new_zeros(shape)], dim=1)
