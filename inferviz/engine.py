"""Engine: batched forward passes that reuse every cached prefix.

``Engine.next_logits(seqs)`` returns the raw next-token logits after each token sequence, in one
forward over the tokens that are not cached yet. Rows are laid out as

    past:  [cached_i ..., pad ...]          (P = max cached length, from the KV store)
    new:   [uncached_i ..., pad ...]        (N = max uncached length)

with an attention mask hiding the pads and explicit position ids (cached_i + j), so rows of any
depth share one forward. Pads in the new block sit after the real tokens: every query row then
sees at least one real key, so no attention row is fully masked (which would give NaN).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import torch

from .kvstore import KVStore


@dataclass
class EngineStats:
    forwards: int = 0
    tokens_computed: int = 0
    tokens_reused: int = 0


class Engine:
    """Owns the model's KV store. Thread-safe: one forward at a time."""

    def __init__(self, model: Any, kv_budget_tokens: int | None = None,
                 pad_token_id: int = 0) -> None:
        self.model = model
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self.pad_token_id = int(pad_token_id)
        self.max_positions = _max_positions(model.config)
        self.stats = EngineStats()
        self.lock = threading.RLock()
        layers, heads, head_dim = self._probe_kv_shape()
        if kv_budget_tokens is None:
            per_token = 2 * layers * heads * head_dim * torch.finfo(self.dtype).bits // 8
            kv_budget_tokens = max(4096, (1 << 30) // per_token)  # ~1 GiB of KV by default
        self.store = KVStore(kv_budget_tokens, self.device, self.dtype)
        self.store.ensure_shapes(layers, heads, head_dim, need=min(kv_budget_tokens, 512))

    def _probe_kv_shape(self) -> tuple[int, int, int]:
        """Read the KV layout off a one-token forward: works for every architecture."""
        from transformers import DynamicCache

        cache = DynamicCache()
        ids = torch.tensor([[self.pad_token_id]], device=self.device)
        with torch.no_grad():
            self.model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
        keys = cache.layers[0].keys  # [B, H, T, D]
        return len(cache.layers), keys.shape[1], keys.shape[3]

    @torch.no_grad()
    def next_logits(self, seqs: list[list[int]]) -> torch.Tensor:
        """Raw logits ``[B, V]`` (float32, on CPU) of the token after each sequence."""
        if not seqs:
            raise ValueError("seqs must hold at least one token sequence")
        with self.lock:
            return self._next_logits(seqs)

    def _next_logits(self, seqs: list[list[int]]) -> torch.Tensor:
        from transformers import DynamicCache

        store = self.store
        store.begin()
        matched = []
        for seq in seqs:
            if not seq:
                raise ValueError("a token sequence is empty: a prompt needs at least one token")
            if len(seq) > self.max_positions:
                raise ValueError(
                    f"sequence of {len(seq)} tokens is longer than the model's context "
                    f"({self.max_positions}); shorten the prompt or max_new_tokens"
                )
            matched.append(store.match(seq))
        # The last token is always recomputed: logits are not cached, only keys and values.
        cached_len = [min(len(m), len(s) - 1) for m, s in zip(matched, seqs)]
        new_len = [len(s) - c for s, c in zip(seqs, cached_len)]
        fresh_start = [len(m) for m in matched]  # first token whose KV is not stored yet
        slots = store.allocate(sum(len(s) - f for s, f in zip(seqs, fresh_start)))

        batch, past, width = len(seqs), max(cached_len), max(new_len)
        slot_rows = torch.zeros(batch, past, dtype=torch.long)
        input_ids = torch.full((batch, width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros(batch, past + width, dtype=torch.long)
        positions = torch.zeros(batch, width, dtype=torch.long)
        for i, (seq, c, n) in enumerate(zip(seqs, cached_len, new_len)):
            if c:
                slot_rows[i, :c] = torch.tensor([node.slot for node in matched[i][:c]])
                mask[i, :c] = 1
            input_ids[i, :n] = torch.tensor(seq[c:])
            mask[i, past : past + n] = 1
            positions[i] = c + torch.arange(width)
        cache = DynamicCache()
        if past:
            keys, values = store.gather(slot_rows.to(self.device))
            cache = DynamicCache(ddp_cache_data=list(zip(keys, values)))
        keep = sorted(set(n - 1 for n in new_len))
        out = self.model(
            input_ids=input_ids.to(self.device),
            attention_mask=mask.to(self.device),
            position_ids=positions.to(self.device),
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=torch.tensor(keep, device=self.device),
        )
        col = {p: j for j, p in enumerate(keep)}
        rows = torch.arange(batch, device=self.device)
        cols = torch.tensor([col[n - 1] for n in new_len], device=self.device)
        logits = out.logits[rows, cols].float().cpu()
        self._store_new(seqs, cached_len, fresh_start, slots, past, out.past_key_values)
        self.stats.forwards += 1
        self.stats.tokens_computed += sum(new_len)
        self.stats.tokens_reused += sum(cached_len)
        return logits

    def _store_new(self, seqs, cached_len, fresh_start, slots, past, cache) -> None:
        """Write the keys/values of tokens not yet in the trie into their slots. Rows of one
        batch may share uncached tokens (identical SMC particles): re-matching before each
        insert stores each token once and returns the spare slots."""
        store = self.store
        rows, cols, owners, spare = [], [], [], []
        taken = 0
        for i, (seq, c, m) in enumerate(zip(seqs, cached_len, fresh_start)):
            own = slots[taken : taken + len(seq) - m]
            taken += len(seq) - m
            if not own:
                continue
            now = store.match(seq)
            start = len(now)  # > m when an earlier row of this batch inserted part of it
            spare.extend(own[: start - m])
            own = own[start - m :]
            if not own:
                continue
            parent = now[-1] if now else store.root
            store.insert(parent, seq[start:], own)
            for j, slot in enumerate(own):
                rows.append(i)
                cols.append(past + (start - c) + j)
                owners.append(slot)
        store.release(spare)
        if not owners:
            return
        r = torch.tensor(rows, device=self.device)
        t = torch.tensor(cols, device=self.device)
        keys = torch.stack([layer.keys[r, :, t] for layer in cache.layers])  # [L, M, H, D]
        values = torch.stack([layer.values[r, :, t] for layer in cache.layers])
        store.write(torch.tensor(owners, device=self.device), keys, values)

    def clear_cache(self) -> None:
        with self.lock:
            self.store.clear()


def _max_positions(config: Any) -> int:
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(text, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return 1 << 20
