"""Ancestral sampling with processors (temperature, top-k, top-p, min-p, typical-p, repetition
penalty), reproducible from ``seed`` through a torch.Generator. The strategy names "top_k",
"top_p" and "min_p" are this strategy with that processor given."""

from __future__ import annotations

from typing import Any

import torch

from ..arrays import to_torch
from .common import follow_one_path, make_generator, sampler_settings, take_stop_at_eos
from .result import GenerationResult


def run(session: Any, tree, start_id: int, max_new_tokens: int, seed: int | None = None,
        strategy: str = "sample", **params: Any) -> GenerationResult:
    settings = sampler_settings(params, f"strategy={strategy!r}")
    needed = {"top_k": settings.top_k, "top_p": settings.top_p, "min_p": settings.min_p}
    if strategy in needed and needed[strategy] is None:
        raise ValueError(f"strategy={strategy!r} needs {strategy}=...; e.g. "
                         f"generate(prompt, strategy={strategy!r}, {strategy}=...)")
    stop_at_eos = take_stop_at_eos(params, f"strategy={strategy!r}")
    gen = make_generator(seed)
    node_id, score, stop = follow_one_path(
        session, tree, start_id, max_new_tokens,
        lambda d: torch.multinomial(to_torch(d.probs[0]), 1, generator=gen), strategy,
        stop_at_eos, settings)
    return GenerationResult(strategy, tree, [node_id],
                            {"max_new_tokens": max_new_tokens, "seed": seed,
                             **settings.to_dict()}, [score], stop)
