"""The local backend: the engine's batched, KV-cached forward over a transformers model."""

from __future__ import annotations

from typing import Any

import torch

from ..engine import Engine
from ..logit_check import check_logits
from .base import NextTokenScores, PromptScores


class LocalBackend:
    """Full next-token distributions from :class:`~inferviz.engine.Engine` (raw logits, no
    copy: the engine's tensor is handed on as is)."""

    is_remote = False
    top_n = None

    def __init__(self, model: Any, engine: Engine, name: str = "") -> None:
        self.model = model
        self.engine = engine
        self.name = name

    @property
    def vocab_size(self) -> int:
        return int(self.model.get_output_embeddings().weight.shape[0])

    @property
    def max_positions(self) -> int:
        return self.engine.max_positions

    def next_token(self, seqs: list[list[int]]) -> NextTokenScores:
        return NextTokenScores(self.engine.next_logits(seqs), "logits")

    @torch.no_grad()
    def prompt_scores(self, ids: list[int]) -> PromptScores:
        input_ids = torch.tensor([ids], device=self.engine.device)
        logits = self.model(input_ids=input_ids).logits[0, :-1].float().cpu()  # [T-1, V]
        check_logits(logits, "position")
        return PromptScores(torch.log_softmax(logits, dim=-1))

    def close(self) -> None:
        """Nothing to release here: the model and its cache belong to the session."""
