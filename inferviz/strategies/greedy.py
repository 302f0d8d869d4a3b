"""Greedy decoding: argmax of the raw logits at every step, whatever the model's
generation_config says (its do_sample and temperature never turn greedy into sampling)."""

from __future__ import annotations

from typing import Any

from .common import follow_one_path, take_stop_at_eos
from .result import GenerationResult


def run(session: Any, tree, start_id: int, max_new_tokens: int, seed: int | None = None,
        strategy: str = "greedy", **params: Any) -> GenerationResult:
    stop_at_eos = take_stop_at_eos(params, "strategy='greedy'")
    node_id, score, stop = follow_one_path(
        session, tree, start_id, max_new_tokens, lambda d: d.logits[0].argmax(), "greedy",
        stop_at_eos)
    return GenerationResult(strategy, tree, [node_id], {"max_new_tokens": max_new_tokens},
                            [score], stop)
