"""Engine: batched forward passes that reuse every cached prefix.

``Engine.next_logits(seqs)`` returns the raw next-token logits after each token sequence, in one
forward over the tokens that are not cached yet. Padded rows (``layout="rows"``): row ``i`` with
``c_i`` cached and ``n_i`` new tokens is laid out in a past block of width ``P = max c`` and a
new block of width ``N = max n``:

    past:  [pad ..., cached_i ...]          right-aligned: cached_i ends at column P - 1
    new:   [uncached_i ..., pad ...]        left-aligned: uncached_i starts at column P

so every row's real tokens are contiguous in the cache index space, and index distances equal
position distances: masks computed from cache indices (sliding windows: Gemma 3, Mistral) stay
right. Position ids are explicit (``c_i + j``). The attention mask hides the past pads only: the
new-block pads sit after every real token, so causality hides them from real queries, and each
pad query sees at least itself, so no attention row is fully masked (which would give NaN and
poison the batch through the pads' keys).

Tree attention (``layout="packed"``, chosen by ``"auto"`` when a batch shares its past, e.g. a
tree level, beams, SMC particles): the batch becomes ONE row holding each cached token of the
union of the rows' prefixes once, then every distinct uncached token; a 4D attention mask lets
each token attend to its own ancestors only (and, for sliding-window layers, only within the
window, computed from positions). A level of 256 nodes over a 512-token prompt then reads the
prompt's keys/values once per layer instead of 256 times. Position ids are explicit; the
families whose mask conventions are known are listed in ``adapter.tree_mask_kind`` (others
always use padded rows).

Failure is transactional: slots are allocated before the forward and released if it fails, keys
and values are written before the trie learns about them, so an error (KV budget, out of memory,
a bad input) never leaves a trie node pointing at unwritten data. Cached keys/values are read
from the store layer by layer, inside the forward, so a wide batch never holds every layer's
gathered past at once. When a batch does not fit the budget (or the forward runs out of
memory) it is split in halves and retried.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import Any

import torch

from .adapter import tree_mask_kind
from .engine_plan import Packed, packed_plan, plan_new_tokens
from .kvstore import KVBudgetError, KVStore, TrieNode
from .models import cache_argument

_OOM = (torch.OutOfMemoryError,) if hasattr(torch, "OutOfMemoryError") else ()
LAYOUTS = ("auto", "rows", "packed")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
_PAST_BUCKET = 128  # compiled forwards: the past block's width is a multiple of this
# Default KV budget: ~1 GiB on CPU/MPS; on CUDA this fraction of the memory free once the model
# is loaded (the pool still grows lazily, by doubling, up to it; the rest is for activations).
CPU_KV_BYTES = 1 << 30
CUDA_KV_FREE_FRACTION = 0.4
MIN_KV_BUDGET_TOKENS = 4096


def default_kv_budget_tokens(device: torch.device, bytes_per_token: int) -> int:
    """KV slots allowed when the user gives no ``kv_budget_tokens``: a fraction of the free
    GPU memory on CUDA (``torch.cuda.mem_get_info``), about 1 GiB elsewhere."""
    budget_bytes = CPU_KV_BYTES
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        budget_bytes = int(free * CUDA_KV_FREE_FRACTION)
    return max(MIN_KV_BUDGET_TOKENS, budget_bytes // bytes_per_token)


@dataclass
class EngineStats:
    forwards: int = 0          # model forward passes
    rows: int = 0              # sequences computed (after merging duplicates in a call)
    tokens_computed: int = 0   # real tokens that went through the model
    tokens_reused: int = 0     # tokens whose keys/values came from the store
    splits: int = 0            # batches split in halves because they did not fit
    packed: int = 0            # forwards done as one packed row with a tree attention mask
    in_place: int = 0          # forwards over one path of consecutive slots, written in place

    def reset(self) -> None:
        self.forwards = self.rows = self.tokens_computed = self.tokens_reused = self.splits = 0
        self.packed = self.in_place = 0


class Engine:
    """Owns the model's KV store. Thread-safe: one forward at a time."""

    def __init__(self, model: Any, kv_budget_tokens: int | None = None,
                 pad_token_id: int = 0, layout: str = "auto",
                 compile: bool | str = False,
                 kv_shape: tuple[int, int, int, torch.dtype] | None = None) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}; got {layout!r}")
        if isinstance(compile, str) and compile not in COMPILE_MODES \
                or not isinstance(compile, (bool, str)):
            raise ValueError(f"compile must be False, True or a torch.compile mode "
                             f"({', '.join(COMPILE_MODES)}); got {compile!r}")
        if compile and layout == "packed":
            raise ValueError("layout='packed' cannot be compiled (its mask changes shape with "
                             "every batch); use layout='rows' or 'auto' with compile")
        self.mask_kind = tree_mask_kind(model.config)
        if layout == "packed" and self.mask_kind is None:
            raise ValueError(f"layout='packed' needs a family whose custom attention masks "
                             f"inferviz knows; {model.config.model_type!r} is not one of them "
                             f"(use layout='rows' or 'auto')")
        self.layout = "rows" if compile else layout
        self.model = model
        self.compiled = bool(compile)
        # Compiled: padded rows only, widths rounded up to buckets so that shapes recur and
        # compiled graphs (CUDA graphs with mode="reduce-overhead") are reused.
        self._call_model = model if not compile else torch.compile(
            model, dynamic=True, mode=None if compile is True else compile)
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self.pad_token_id = int(pad_token_id)
        self.max_positions = _max_positions(model.config)
        self.stats = EngineStats()
        self.lock = threading.RLock()
        self._cache_arg = cache_argument(model)  # "cache", or "past_key_values" on older versions
        # (layers, kv heads, head dim, dtype): read off a one-token forward, unless another
        # engine of the same model already did (an intervened branch's: kv_shape)
        layers, heads, head_dim, kv_dtype = kv_shape or self._probe_kv_shape()
        if kv_budget_tokens is None:
            per_token = 2 * layers * heads * head_dim * torch.finfo(kv_dtype).bits // 8
            kv_budget_tokens = default_kv_budget_tokens(self.device, per_token)
        self.store = KVStore(kv_budget_tokens, self.device, kv_dtype)
        self.store.ensure_shapes(layers, heads, head_dim, need=min(kv_budget_tokens, 512))

    @torch.no_grad()
    def _probe_kv_shape(self) -> tuple[int, int, int, torch.dtype]:
        """Read the KV layout off a one-token forward: works for every architecture."""
        from transformers import DynamicCache

        cache = DynamicCache()
        ids = torch.tensor([[self.pad_token_id]], device=self.device)
        self.model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True,
                   logits_to_keep=1, **{self._cache_arg: cache})
        keys = cache.layers[0].keys  # [B, H, T, D]
        return len(cache.layers), keys.shape[1], keys.shape[3], keys.dtype

    def next_logits(self, seqs: list[list[int]]) -> torch.Tensor:
        """Raw logits ``[B, V]`` (float32, on CPU) of the token after each sequence.

        Identical sequences are computed once; the rest go through one forward (or a few, if
        the batch does not fit the KV budget or memory)."""
        if not isinstance(seqs, (list, tuple)) or not seqs:
            raise ValueError("seqs must be a non-empty list of token-id lists")
        keys: dict[tuple[int, ...], int] = {}
        index = []
        for seq in seqs:
            self._check_seq(seq)
            index.append(keys.setdefault(tuple(int(t) for t in seq), len(keys)))
        unique = [list(k) for k in keys]
        with self.lock:
            logits = self._run(unique)
        return logits[torch.tensor(index)] if len(unique) != len(seqs) else logits

    def _check_seq(self, seq: list[int]) -> None:
        if len(seq) == 0:
            raise ValueError("a token sequence is empty: a prompt needs at least one token")
        if len(seq) > self.max_positions:
            raise ValueError(f"sequence of {len(seq)} tokens is longer than the model's context "
                             f"({self.max_positions}); shorten the prompt or max_new_tokens")
        if len(seq) > self.store.budget_tokens:
            raise KVBudgetError(
                f"sequence of {len(seq)} tokens does not fit kv_budget_tokens="
                f"{self.store.budget_tokens}; create the Session with a larger kv_budget_tokens")

    def _run(self, seqs: list[list[int]]) -> torch.Tensor:
        """Forward ``seqs``, splitting the batch in halves while it does not fit."""
        try:
            return self._forward(seqs)
        except (KVBudgetError, *_OOM) as err:
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            if len(seqs) == 1:
                if isinstance(err, KVBudgetError):
                    raise
                raise KVBudgetError(
                    f"{self.device.type} out of memory in a forward over one sequence of "
                    f"{len(seqs[0])} tokens (the KV store holds {self.store.bytes_used / 2**20:.0f}"
                    f" MiB for {self.store.num_cached} cached tokens); call "
                    f"session.engine.clear_cache(), close other sessions (session.close()), or create "
                    f"the Session with a smaller kv_budget_tokens") from err
            self.stats.splits += 1
            half = len(seqs) // 2
            return torch.cat([self._run(seqs[:half]), self._run(seqs[half:])])

    @torch.no_grad()
    def _forward(self, seqs: list[list[int]]) -> torch.Tensor:
        store = self.store
        store.begin()
        matched = [store.match(seq) for seq in seqs]
        # The last token is always recomputed: logits are not cached, only keys and values.
        cached = [min(len(m), len(s) - 1) for m, s in zip(matched, seqs)]
        new = [len(s) - c for s, c in zip(seqs, cached)]
        packed = self._packed_plan(seqs, matched, cached, new)
        plan = packed.plan if packed else plan_new_tokens(seqs, matched, cached, store.root)
        slots = store.allocate(len(plan))  # may evict; raises with nothing changed
        span = None if packed else self._contiguous_span(matched, cached, new, slots)
        try:
            if packed:
                logits, layers = self._packed_forward(packed)
            else:
                logits, layers = self._model_forward(seqs, matched, cached, new, span)
            if plan and span is None:  # (a span's keys/values went to the store in place)
                rows = torch.tensor([t.row for t in plan], device=self.device)
                cols = torch.tensor([t.column for t in plan], device=self.device)
                keys = torch.stack([layer.new_keys[rows, :, cols] for layer in layers])
                values = torch.stack([layer.new_values[rows, :, cols] for layer in layers])
                store.write(torch.tensor(slots, device=self.device), keys, values)  # [L, M, H, D]
        except BaseException:
            store.release(slots)
            raise
        nodes: list[TrieNode] = []
        for token, slot in zip(plan, slots):
            parent = token.parent if isinstance(token.parent, TrieNode) else nodes[token.parent]
            nodes.append(store.insert(parent, token.token_id, slot))
        self.stats.forwards += 1
        self.stats.packed += bool(packed)
        self.stats.in_place += span is not None
        self.stats.rows += len(seqs)
        self.stats.tokens_computed += len(packed.query_tokens) if packed else sum(new)
        self.stats.tokens_reused += sum(cached)
        return logits

    def _contiguous_span(self, matched, cached, new, slots) -> tuple[int, int, int] | None:
        """``(start, first, end)`` when one sequence's cached slots and the slots allocated for
        its new tokens (from ``first`` on) are the consecutive range ``start..end-1`` (a path
        decoded token by token: the store hands out neighbouring slots), else None. Then every
        layer writes its new keys/values into the store in place and attends to a view of that
        range: no gather, no concatenation, no copy afterwards (see ``SlotLayer.update``)."""
        if self.compiled or len(matched) != 1 or len(slots) != new[0] \
                or len(matched[0]) != cached[0]:
            return None  # (a fully cached sequence recomputes its last token, not stored)
        first, past = slots[0], matched[0]
        start = first - cached[0]
        if any(slot != first + j for j, slot in enumerate(slots)) or any(
                node.slot != start + j for j, node in enumerate(past)):
            return None
        return start, first, first + len(slots)

    def _packed_plan(self, seqs, matched, cached, new) -> Packed | None:
        """The layout of a tree-attention forward, or None to use padded rows
        (:func:`inferviz.engine_plan.packed_plan`)."""
        if self.mask_kind is None:
            return None
        return packed_plan(seqs, matched, cached, new, self.store.root, self.layout)

    def _packed_forward(self, packed: Packed):
        """One forward over a packed row: logits ``[B, V]`` (float32, CPU) and the layers."""
        past = len(packed.past_slots)
        query_positions = packed.positions[past:]
        masks = {"full_attention": packed.allowed}
        if self.mask_kind.window is not None:
            distance = query_positions[:, None] - packed.positions[None, :]
            windowed = packed.allowed & (distance < self.mask_kind.window)
            masks = {"full_attention": packed.allowed, "sliding_attention": windowed} \
                if self.mask_kind.mapping else {"full_attention": windowed}
        blocked = torch.finfo(self.dtype).min
        masks = {name: torch.zeros(m.shape, dtype=self.dtype).masked_fill_(~m, blocked)
                 [None, None] for name, m in masks.items()}
        slot_rows = torch.tensor([packed.past_slots], dtype=torch.long)
        return self._call(torch.tensor([packed.query_tokens]),
                          masks if self.mask_kind.mapping else masks["full_attention"],
                          query_positions[None], slot_rows, [0] * len(packed.last), packed.last)

    def _model_forward(self, seqs, matched, cached, new, span=None):
        """One forward in the layout of the module docstring: logits ``[B, V]`` (float32, CPU)
        and the cache layers holding the new block's keys/values. ``span``: one sequence
        whose slots are a consecutive range (:meth:`_contiguous_span`): no pads, no mask."""
        batch, past, width = len(seqs), max(cached), max(new)
        if span is not None:
            seq, c = seqs[0], cached[0]
            return self._call(torch.tensor([seq[c:]]), None,
                              torch.arange(c, len(seq))[None], None, [0], [new[0] - 1], span)
        if self.compiled:  # recurring shapes: pads are masked (past) or after every real token
            past = -(-past // _PAST_BUCKET) * _PAST_BUCKET
            width = 1 << (width - 1).bit_length()
        slot_rows = torch.zeros(batch, past, dtype=torch.long)
        input_ids = torch.full((batch, width), self.pad_token_id, dtype=torch.long)
        mask = torch.ones(batch, past + width, dtype=torch.long)
        mask[:, :past] = 0
        positions = torch.empty(batch, width, dtype=torch.long)
        steps = torch.arange(width)
        for i, (seq, c, n) in enumerate(zip(seqs, cached, new)):
            if c:
                slot_rows[i, past - c:] = torch.tensor([node.slot for node in matched[i][:c]])
                mask[i, past - c : past] = 1
            input_ids[i, :n] = torch.tensor(seq[c:])
            # Pads repeat the last real position: never past the model's position table.
            positions[i] = c + steps.clamp(max=n - 1)
        return self._call(input_ids, mask, positions, slot_rows, list(range(batch)),
                          [n - 1 for n in new])

    def _call(self, input_ids, attention_mask, positions, slot_rows, rows: list[int],
              columns: list[int], span: tuple[int, int, int] | None = None):
        """The model over ``input_ids`` with the cached past read from ``slot_rows``' slots
        (or, given ``span`` = (start, first, end), the store's consecutive slots
        ``start..first-1``, the new block going to ``first..end-1``): logits ``[B, V]``
        (float32, CPU) of (row, column) pairs of the new block, and the cache layers holding
        the new block's keys/values. Only those columns are unembedded."""
        from transformers import DynamicCache

        slot_layer = _slot_layer_class()
        if slot_rows is not None:
            slot_rows = slot_rows.to(self.device)
        layers = [slot_layer(self.store, i, slot_rows, span)
                  for i in range(self.store.keys.shape[0])]
        cache = DynamicCache()
        cache.layers = layers
        keep = sorted(set(columns))
        index = {p: j for j, p in enumerate(keep)}
        # Each row's last column (decode, a level of one-token rows): HF's own slice, no gather.
        last_only = keep == [input_ids.shape[1] - 1] and rows == list(range(len(rows)))
        if isinstance(attention_mask, dict):  # one mask per attention type (sliding windows)
            attention_mask = {name: m.to(self.device) for name, m in attention_mask.items()}
        elif attention_mask is not None:
            attention_mask = attention_mask.to(self.device)
        with torch.inference_mode():  # a little faster than no_grad; outputs are copied out
            out = self._call_model(
                input_ids=input_ids.to(self.device),
                attention_mask=attention_mask,
                position_ids=positions.to(self.device),
                use_cache=True,
                logits_to_keep=1 if last_only else torch.tensor(keep, device=self.device),
                **{self._cache_arg: cache},
            )
        if last_only:  # (copy=True: an inference tensor must not leave as a view)
            return out.logits[:, 0].to(torch.float32, copy=True).cpu(), layers
        rows_t = torch.tensor(rows, device=self.device)
        cols = torch.tensor([index[c] for c in columns], device=self.device)
        return out.logits[rows_t, cols].float().cpu(), layers

    def clear_cache(self) -> None:
        """Forget every cached prefix (the next expansions recompute them)."""
        with self.lock:
            self.store.clear()

    def close(self) -> None:
        """Free the KV store and drop the model (and its compiled form); the engine is unusable
        afterwards. The caller frees the device memory cache (``torch.cuda.empty_cache``)."""
        with self.lock:
            self.store.close()
            self.model = self._call_model = None


@functools.cache
def _slot_layer_class():
    """The cache-layer class below (built lazily: transformers is imported on first use)."""
    from transformers.cache_utils import DynamicLayer

    class SlotLayer(DynamicLayer):
        """One layer's cache for one forward: the past is read from the store's slots when the
        layer needs it (one layer's worth at a time, not all layers up front), and only the new
        block's keys/values are kept for the store."""

        def __init__(self, store: KVStore, layer: int, slot_rows: torch.Tensor | None,
                     span: tuple[int, int, int] | None = None) -> None:
            super().__init__()
            self.store, self.layer, self.slot_rows, self.span = store, layer, slot_rows, span
            self.past = slot_rows.shape[1] if span is None else span[1] - span[0]
            self.dtype, self.device = store.dtype, store.device
            self.is_initialized = True
            self.new_keys = self.new_values = None

        def get_seq_length(self) -> int:
            return self.past

        def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
            return self.past + query_length, 0

        def update(self, key_states, value_states, *args, **kwargs):
            if self.span is not None:  # written in place; attend to a view of the range
                start, first, end = self.span
                self.store.write_range(self.layer, first, key_states[0].transpose(0, 1),
                                       value_states[0].transpose(0, 1))
                keys = self.store.keys[self.layer, start:end]  # [T, H, D]
                values = self.store.values[self.layer, start:end]
                return keys.transpose(0, 1)[None], values.transpose(0, 1)[None]
            self.new_keys, self.new_values = key_states, value_states
            if not self.past:
                return key_states, value_states
            # [B, P] slots -> [B, P, H, D] -> [B, H, P, D], then the new block after it.
            past_keys = self.store.keys[self.layer][self.slot_rows].transpose(1, 2)
            past_values = self.store.values[self.layer][self.slot_rows].transpose(1, 2)
            keys = torch.cat([past_keys.to(key_states.dtype), key_states], dim=-2)
            values = torch.cat([past_values.to(value_states.dtype), value_states], dim=-2)
            return keys, values

    return SlotLayer


def _max_positions(config: Any) -> int:
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(text, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return 1 << 20
