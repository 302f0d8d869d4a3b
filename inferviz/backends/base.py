"""The backend seam: what strategies and the tree need from a model, and nothing more.

A backend gives, for a batch of token-id sequences, the next-token distribution after each
one: the full distribution where it has it (the local engine: raw logits), else the top ``N``
log-probabilities with ``N`` declared (a server: ``top_n``). What it cannot give at all (hidden
states for the logit lens, prompt log-probabilities) it says, by raising :class:`ServerLacks`
with what is missing, never by guessing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..arrays import Array
from ..capabilities import ServerLacks  # noqa: F401  (re-exported: backends.ServerLacks)


@dataclass
class NextTokenScores:
    """Next-token scores of ``B`` sequences, float32 on CPU: a torch tensor from a local model,
    a numpy array from a server (a remote session never imports torch).

    scores  [B, V]  raw logits (``kind="logits"``: the full distribution), or raw
                    log-probabilities (``kind="logprobs"``) with ``-inf`` for tokens the
                    backend did not return (outside its top ``N``)
    approx  [B]     bool: rows that hold only the top ``N`` (numbers computed from the whole
                    distribution, like entropy or top-p mass, are approximate there);
                    None when every row is the full distribution
    """

    scores: Array
    kind: str = "logits"
    approx: Array | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("logits", "logprobs"):
            raise ValueError(f"kind must be 'logits' or 'logprobs'; got {self.kind!r}")
        if self.scores.ndim != 2:
            raise ValueError(f"scores must be [B, V]; got shape {tuple(self.scores.shape)}")
        if self.approx is not None and self.approx.shape != self.scores.shape[:1]:
            raise ValueError("approx must hold one flag per row of scores")

    def rows(self, index: list[int]) -> "NextTokenScores":
        """The scores of these rows only (the request batcher scores groups of rows)."""
        approx = None if self.approx is None else self.approx[index]
        return NextTokenScores(self.scores[index], self.kind, approx)


@dataclass
class PromptScores:
    """Teacher-forced log-probabilities of a sequence's own tokens.

    logprobs  [T-1, V]  raw log-probabilities of the token at position ``t+1`` given the tokens
                        up to ``t`` (``-inf`` where the backend did not return a token)
    ranks     [T-1]     0-based rank of the actual token (exact even when only the top N is
                        known: servers report it), or None to compute it from ``logprobs``
    approx    bool      True when the rows hold only a top N
    """

    logprobs: Array
    ranks: Array | None = None
    approx: bool = False


@runtime_checkable
class Backend(Protocol):
    """What a :class:`~inferviz.session.Session` needs from a model."""

    name: str
    vocab_size: int        # width of a distribution row
    max_positions: int     # longest sequence the model accepts
    top_n: int | None      # None: full distributions; else at most N tokens a row
    is_remote: bool

    def next_token(self, seqs: list[list[int]]) -> NextTokenScores:
        """Next-token scores after each sequence (identical sequences computed once)."""
        ...

    def prompt_scores(self, ids: list[int]) -> PromptScores:
        """Log-probability of each token of ``ids`` after the first, teacher-forced."""
        ...

    def close(self) -> None:
        """Release connections and threads."""
        ...
