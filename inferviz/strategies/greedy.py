"""Greedy decoding: argmax of the raw logits at every step, whatever the model's
generation_config says (Inference Edge's "greedy" inherited sampling from it)."""

from __future__ import annotations

from typing import Any

from ..scoring import record_children
from .common import check_stop
from .result import GenerationResult


def run(session: Any, tree, start_id: int, max_new_tokens: int, seed: int | None = None,
        strategy: str = "greedy", **params: Any) -> GenerationResult:
    stop_at_eos = check_stop(params, "strategy='greedy'")
    eos = session.eos_token_ids
    node_id, stop = start_id, "max_new_tokens"
    for _ in range(max_new_tokens):
        dists = session.distributions(tree, [node_id])
        token = int(dists.logits[0].argmax())
        (child,) = record_children(tree, dists, 0, [token], session.token_bytes,
                                   [{"strategy": "greedy"}])
        tree.notify([child.node_id])
        node_id = child.node_id
        if stop_at_eos and token in eos:
            stop = "eos"
            break
    score = tree.node(node_id).cum_logprob - tree.node(start_id).cum_logprob
    return GenerationResult(strategy, tree, [node_id], {"max_new_tokens": max_new_tokens},
                            [score], stop)
