"""Next-token distributions of a batch of tree nodes, raw and processed, and recording chosen
tokens into the tree with the numbers they were drawn with."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from .tree import Node, TokenTree

_BROADCAST_RANKS = 1 << 20  # up to this many comparisons, compare all at once (k small)


@dataclass
class Distributions:
    """``B`` next-token distributions (one per parent node), float32 on CPU.

    logits    [B, V] raw model logits
    logprobs  [B, V] raw log-probabilities (log_softmax of logits)
    probs     [B, V] probabilities after the processors (filtered tokens exactly 0)
    entropy   [B]    entropy of the raw distribution, nats
    approx    [B]    bool, or None when every row is a full distribution: rows that hold only
                     a backend's top N (a server). There ``logits`` = ``logprobs`` (raw, exact
                     for the N tokens, -inf for the others), ``probs`` are the processors
                     applied to those N (approximate) and ``entropy`` sums over them (a lower
                     bound); recorded nodes carry meta ``approx``.
    row_meta  [B] dicts merged into the meta of every child recorded from the row, or None
              (an intervened branch: the intervention and its divergence from the plain model)
    plain_logprobs [B, V] the plain model's raw log-probabilities on the same paths when the
              rows are intervened (each child records its token's as ``plain_logprob``)
    """

    parent_ids: list[int]
    logits: torch.Tensor
    logprobs: torch.Tensor
    probs: torch.Tensor
    entropy: torch.Tensor
    approx: torch.Tensor | None = None
    row_meta: list[dict[str, Any]] | None = None
    plain_logprobs: torch.Tensor | None = None

    @classmethod
    def from_logits(cls, parent_ids: list[int], logits: torch.Tensor,
                    probs: torch.Tensor) -> "Distributions":
        logits = logits.float()
        logprobs = torch.log_softmax(logits, dim=-1)
        entropy = -(logprobs.exp() * logprobs.nan_to_num(neginf=0.0)).sum(-1)
        return cls(parent_ids, logits, logprobs, probs, entropy)

    @classmethod
    def from_logprobs(cls, parent_ids: list[int], logprobs: torch.Tensor, probs: torch.Tensor,
                      approx: torch.Tensor | None) -> "Distributions":
        """Rows of raw log-probabilities as a backend returned them (-inf where unknown):
        not renormalised, so the known tokens keep their exact log-probabilities."""
        logprobs = logprobs.float()
        entropy = -(logprobs.exp() * logprobs.nan_to_num(neginf=0.0)).sum(-1)
        return cls(parent_ids, logprobs, logprobs, probs, entropy, approx)

    def ranks(self, row: int, token_ids: torch.Tensor | list[int]) -> list[int]:
        """0-based rank of each token under the raw distribution of ``row`` (ties share a rank):
        how many logits are strictly greater. For many tokens, one sort and a binary search
        each (O(V log V) time, O(V) memory), not a ``[k, V]`` comparison (k = V = 49152 would
        ask for 19 GB)."""
        ids = torch.as_tensor(token_ids, dtype=torch.long)
        logits = self.logits[row]
        chosen = logits[ids]
        if len(ids) * logits.numel() <= _BROADCAST_RANKS:
            return (logits.unsqueeze(0) > chosen.unsqueeze(1)).sum(-1).tolist()
        ascending = torch.sort(logits).values
        above = logits.numel() - torch.searchsorted(ascending, chosen, right=True)
        return above.tolist()

    def top_k(self, row: int, k: int) -> list[int]:
        """The ``k`` most likely tokens of ``row`` under the raw distribution, best first
        (fewer where a backend returned fewer than ``k`` tokens)."""
        if self.approx is not None and bool(self.approx[row]):
            k = min(k, int(torch.isfinite(self.logits[row]).sum()))
        return torch.topk(self.logits[row], k).indices.tolist()


def record_children(tree: TokenTree, dists: Distributions, row: int, token_ids: list[int],
                    token_bytes, metas: list[dict[str, Any]] | None = None) -> list[Node]:
    """Add the tokens ``token_ids`` as children of ``dists.parent_ids[row]`` without notifying
    listeners (the caller notifies once per batch). Returns the child nodes in the same order."""
    parent_id = dists.parent_ids[row]
    ranks = dists.ranks(row, token_ids)
    logprobs = dists.logprobs[row, token_ids].tolist()
    probs = dists.probs[row, token_ids].tolist()
    entropy = float(dists.entropy[row])
    if dists.approx is not None:  # a server's distribution: say whether it was truncated
        flag = {"approx": bool(dists.approx[row])}
        metas = [{**(metas[j] if metas else {}), **flag} for j in range(len(token_ids))]
    if dists.row_meta is not None:  # an intervened branch
        extra = [dict(dists.row_meta[row]) for _ in token_ids]
        if dists.plain_logprobs is not None:
            plain = dists.plain_logprobs[row, token_ids].tolist()
            for j, lp in enumerate(plain):
                extra[j]["plain_logprob"] = lp if math.isfinite(lp) else None
        metas = [{**(metas[j] if metas else {}), **extra[j]} for j in range(len(token_ids))]
    pieces = [token_bytes(int(tok)) for tok in token_ids]  # all first: a failure adds nothing
    out = []
    for j, tok in enumerate(token_ids):
        out.append(tree.add_child(
            parent_id, int(tok), pieces[j], raw_logprob=logprobs[j], prob=probs[j],
            rank=ranks[j], entropy=entropy, meta=metas[j] if metas else None, notify=False,
        ))
    return out


def concat_rows(parts: list[tuple[list[int], Any]], total: int) -> Any:
    """One :class:`~inferviz.scoring.Distributions` of ``total`` rows from parts computed for
    some of them (``(rows, dists)``), each row back in its place."""
    order = [0] * total
    offset = 0
    for rows, _ in parts:
        for j, row in enumerate(rows):
            order[row] = offset + j
        offset += len(rows)
    index = torch.tensor(order)

    def cat(name: str) -> torch.Tensor | None:
        values = [getattr(d, name) for _, d in parts]
        return None if values[0] is None else torch.cat(values)[index]

    parent_ids = [pid for _, d in parts for pid in d.parent_ids]
    row_meta = [m for _, d in parts for m in (d.row_meta or [{}] * len(d.parent_ids))]
    return Distributions([parent_ids[i] for i in order], cat("logits"), cat("logprobs"),
                         cat("probs"), cat("entropy"), cat("approx"),
                         [row_meta[i] for i in order], cat("plain_logprobs"))
