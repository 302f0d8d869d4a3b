"""The backend of an intervened branch: the session's model with an intervention's hooks, over
a KV cache of its own.

One :class:`InterventionBackend` per (intervention, first intervened position): its engine's
KV store holds the keys and values of its branch. Those of the positions before the
intervention starts are the plain model's (the hooks do not touch them, and attention is
causal), so they are copied from the session's KV cache when it holds them
(:meth:`InterventionBackend.seed_prefix`) rather than recomputed; everything from the first
intervened position on is computed under the hooks and lives in this store only. Nothing is
ever copied the other way: no key or value computed under an intervention reaches a plain
forward. The engines share the session engine's lock,
so the hooks, which sit on the shared model while a forward runs, never meet a plain forward.
The few most recent backends of a session are kept (:data:`KEEP`), each with a KV budget of
:data:`KV_TOKENS` tokens (grown lazily).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch

from ..engine import Engine
from .base import NextTokenScores

KEEP = 4
KV_TOKENS = 16384


class InterventionBackend:
    is_remote = False
    top_n = None

    def __init__(self, session: Any, bound: Any, start: int) -> None:
        self.session = session
        self.bound = bound
        self.start = start
        self.name = f"{session.name} under {bound.intervention.label}"
        plain = session.engine
        keys = plain.store.keys  # [layers, slots, kv heads, head dim]: no probe forward
        with plain.lock:
            self.engine = Engine(session.model, kv_budget_tokens=KV_TOKENS,
                                 pad_token_id=plain.pad_token_id, layout=plain.layout,
                                 kv_shape=(keys.shape[0], keys.shape[2], keys.shape[3],
                                           keys.dtype))
        self.engine.lock = plain.lock  # one forward on the model at a time, hooks or not
        self.tokens_copied = 0  # plain prefix keys/values copied in (seed_prefix)

    @property
    def vocab_size(self) -> int:
        return self.session.backend.vocab_size

    @property
    def max_positions(self) -> int:
        return self.engine.max_positions

    def next_token(self, seqs: list[list[int]]) -> NextTokenScores:
        with self.engine.lock:
            self.seed_prefix(seqs)
            with self.bound.installed(self.session.adapter, self.start):
                logits = self.engine.next_logits(seqs)
        return NextTokenScores(logits, "logits")

    def seed_prefix(self, seqs: list[list[int]]) -> int:
        """Copy into this branch's store the plain keys/values of each sequence's positions
        before the intervention (``bound.unaffected_before(start)``) that the session's cache
        holds and this store does not; returns how many tokens were copied. The last token of
        a sequence is always recomputed (its logits are needed)."""
        mine, plain = self.engine.store, self.session.engine.store
        if plain.keys is None or mine.keys is None:
            return 0
        unaffected = self.bound.unaffected_before(self.start)
        mine.begin()
        copied = 0
        for seq in seqs:
            n = min(unaffected, len(seq) - 1)
            have = mine.match(seq[:n])
            if len(have) >= n:
                continue
            source = plain.match(seq[:n])[len(have):]
            if not source:
                continue
            slots = mine.allocate(len(source))  # may evict this store's old branches
            src = torch.tensor([node.slot for node in source], device=plain.keys.device)
            mine.write(torch.tensor(slots, device=mine.keys.device),
                       plain.keys[:, src], plain.values[:, src])
            parent = have[-1] if have else mine.root
            for node, slot in zip(source, slots):
                parent = mine.insert(parent, node.token_id, slot)
            copied += len(source)
        self.tokens_copied += copied
        return copied

    def close(self) -> None:
        self.engine.close()


def backend_for(session: Any, intervention: Any, branch_position: int) -> InterventionBackend:
    """The session's backend for ``intervention`` on a branch growing from the node at
    ``branch_position`` (made and bound on first use, then reused)."""
    cache: OrderedDict = session.__dict__.setdefault("_intervention_backends", OrderedDict())
    bound = session.__dict__.setdefault("_bound_interventions", {}).get(intervention.key)
    if bound is None:
        bound = intervention.bind(session)  # checks it; raises before anything is cached
        session._bound_interventions[intervention.key] = bound
    start = bound.start_for(branch_position)
    key = (intervention.key, start)
    backend = cache.get(key)
    if backend is None:
        backend = InterventionBackend(session, bound, start)
        cache[key] = backend
        while len(cache) > KEEP:
            _, old = cache.popitem(last=False)
            old.close()
    cache.move_to_end(key)
    return backend
