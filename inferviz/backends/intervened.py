"""The backend of an intervened branch: the session's model with an intervention's hooks, over
a KV cache of its own.

One :class:`InterventionBackend` per (intervention, first intervened position): its engine's
KV store holds only keys and values computed under those hooks, so nothing computed under an
intervention reaches a plain forward, and nothing plain is read under one (the prefix before
the intervention is recomputed once per branch start instead of shared: cheap next to a
generation, and it needs no copy between stores). The engines share the session engine's lock,
so the hooks, which sit on the shared model while a forward runs, never meet a plain forward.
The few most recent backends of a session are kept (:data:`KEEP`), each with a KV budget of
:data:`KV_TOKENS` tokens (grown lazily).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

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
        with plain.lock:  # its probe forward, too, runs alone on the model
            self.engine = Engine(session.model, kv_budget_tokens=KV_TOKENS,
                                 pad_token_id=plain.pad_token_id, layout=plain.layout)
        self.engine.lock = plain.lock  # one forward on the model at a time, hooks or not

    @property
    def vocab_size(self) -> int:
        return self.session.backend.vocab_size

    @property
    def max_positions(self) -> int:
        return self.engine.max_positions

    def next_token(self, seqs: list[list[int]]) -> NextTokenScores:
        with self.engine.lock, self.bound.installed(self.session.adapter, self.start):
            logits = self.engine.next_logits(seqs)
        return NextTokenScores(logits, "logits")

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
