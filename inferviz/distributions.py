"""Next-token distributions of a batch of tree nodes, raw and processed, and recording chosen
tokens into the tree with the numbers they were drawn with."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

from .arrays import Array, is_tensor, namespace, to_torch
from .tree import Node, TokenTree

_BROADCAST_RANKS = 1 << 20  # up to this many comparisons, compare all at once (k small)


@dataclass
class Distributions:
    """``B`` next-token distributions (one per parent node), float32 on CPU: torch tensors
    from a local model, numpy arrays from a server (:meth:`to_torch` for tensors either way).

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

    Under a constraint (:mod:`inferviz.constraint_masks`) ``logits`` and ``logprobs`` hold the
    *constrained* log-probabilities (the model restricted to the legal tokens, -inf elsewhere:
    what greedy, beam and SMC choose by) and ``probs`` the processors applied to them, while
    ``raw_logprobs`` keeps the model's own numbers (recorded as ``raw_logprob``; ``rank`` and
    ``entropy`` are those of the raw distribution too).

    raw_logprobs   [B, V] or None   the raw log-probabilities of a constrained step
    legal          [B, V] bool      tokens the constraint allows
    log_legal_mass [B]              log of the raw mass of the legal tokens
    no_legal       [B] bool         rows where no token is legal (nothing to choose)
    """

    parent_ids: list[int]
    logits: Array
    logprobs: Array
    probs: Array
    entropy: Array
    approx: Array | None = None
    row_meta: list[dict[str, Any]] | None = None
    plain_logprobs: Array | None = None
    raw_logprobs: Array | None = None
    legal: Array | None = None
    log_legal_mass: Array | None = None
    no_legal: Array | None = None

    @property
    def raw(self) -> Array:
        """[B, V] the model's raw log-probabilities (whatever a constraint did)."""
        return self.logprobs if self.raw_logprobs is None else self.raw_logprobs

    def has_choice(self, row: int) -> bool:
        """False when a constraint leaves no legal token after ``row``'s node."""
        return self.no_legal is None or not bool(self.no_legal[row])

    @classmethod
    def from_logits(cls, parent_ids: list[int], logits: Array,
                    probs: Array) -> "Distributions":
        xp = namespace(logits)
        logits = xp.float32(logits)
        logprobs = xp.log_softmax(logits)
        entropy = -(xp.exp(logprobs) * xp.neginf_to(logprobs, 0.0)).sum(-1)
        return cls(parent_ids, logits, logprobs, probs, entropy)

    @classmethod
    def from_logprobs(cls, parent_ids: list[int], logprobs: Array, probs: Array,
                      approx: Array | None) -> "Distributions":
        """Rows of raw log-probabilities as a backend returned them (-inf where unknown):
        not renormalised, so the known tokens keep their exact log-probabilities."""
        xp = namespace(logprobs)
        logprobs = xp.float32(logprobs)
        entropy = -(xp.exp(logprobs) * xp.neginf_to(logprobs, 0.0)).sum(-1)
        return cls(parent_ids, logprobs, logprobs, probs, entropy, approx)

    def to_torch(self) -> "Distributions":
        """These distributions with every array a torch tensor (sharing memory with numpy
        rows; itself when they already are): for strategies that draw with a seeded
        ``torch.Generator`` or hand tensors to user code. Imports torch."""
        if is_tensor(self.logits):
            return self
        return replace(self, **{f.name: to_torch(getattr(self, f.name)) for f in fields(self)
                                if f.name not in ("parent_ids", "row_meta")})

    def ranks(self, row: int, token_ids: Array | list[int]) -> list[int]:
        """0-based rank of each token under the raw distribution of ``row`` (ties share a rank):
        how many logits are strictly greater. For many tokens, one sort and a binary search
        each (O(V log V) time, O(V) memory), not a ``[k, V]`` comparison (k = V = 49152 would
        ask for 19 GB)."""
        raw = self.logits if self.raw_logprobs is None else self.raw_logprobs
        return _ranks(raw[row], token_ids)

    def legal_ranks(self, row: int, token_ids: Array | list[int]) -> list[int]:
        """0-based rank of each token among the legal tokens of a constrained ``row``."""
        return _ranks(self.logits[row], token_ids)

    def top_k(self, row: int, k: int) -> list[int]:
        """The ``k`` most likely tokens of ``row`` under the raw distribution, best first
        (fewer where a backend returned fewer than ``k`` tokens); under a constraint, the
        ``k`` most likely legal tokens (fewer if fewer are legal)."""
        xp = namespace(self.logits)
        if self.approx is not None and bool(self.approx[row]) or self.legal is not None:
            k = min(k, int(xp.isfinite(self.logits[row]).sum()))
        return xp.topk(self.logits[row], k)[1].tolist()


def _ranks(logits: Array, token_ids: Array | list[int]) -> list[int]:
    """How many entries of ``logits`` [V] are strictly greater than each token's."""
    xp = namespace(logits)
    ids = xp.index(token_ids)
    chosen = logits[ids]
    vocab = logits.shape[-1]
    if len(ids) * vocab <= _BROADCAST_RANKS:
        return (logits[None, :] > chosen[:, None]).sum(-1).tolist()
    ascending = xp.sort(logits)[0]
    above = vocab - xp.searchsorted_right(ascending, chosen)
    return above.tolist()


def record_children(tree: TokenTree, dists: Distributions, row: int, token_ids: list[int],
                    token_bytes, metas: list[dict[str, Any]] | None = None) -> list[Node]:
    """Add the tokens ``token_ids`` as children of ``dists.parent_ids[row]`` without notifying
    listeners (the caller notifies once per batch). Returns the child nodes in the same order."""
    parent_id = dists.parent_ids[row]
    ranks = dists.ranks(row, token_ids)
    logprobs = dists.raw[row, token_ids].tolist()
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
    if dists.legal is not None:  # a constrained step: where each token ranks among the legal
        legal_ranks = dists.legal_ranks(row, token_ids)
        metas = [{**(metas[j] if metas else {}), "legal_rank": legal_ranks[j]}
                 for j in range(len(token_ids))]
    pieces = [token_bytes(int(tok)) for tok in token_ids]  # all first: a failure adds nothing
    out = []
    for j, tok in enumerate(token_ids):
        out.append(tree.add_child(
            parent_id, int(tok), pieces[j], raw_logprob=logprobs[j], prob=probs[j],
            rank=ranks[j], entropy=entropy, meta=metas[j] if metas else None, notify=False,
        ))
    return out


def concat_rows(parts: list[tuple[list[int], Any]], total: int) -> Any:
    """One :class:`~inferviz.distributions.Distributions` of ``total`` rows from parts computed for
    some of them (``(rows, dists)``), each row back in its place."""
    order = [0] * total
    offset = 0
    for rows, _ in parts:
        for j, row in enumerate(rows):
            order[row] = offset + j
        offset += len(rows)

    def cat(name: str) -> Array | None:
        values = [getattr(d, name) for _, d in parts]
        if values[0] is None:
            return None
        xp = namespace(values[0])
        return xp.concat(values)[xp.index(order)]

    parent_ids = [pid for _, d in parts for pid in d.parent_ids]
    row_meta = [m for _, d in parts for m in (d.row_meta or [{}] * len(d.parent_ids))]
    return Distributions([parent_ids[i] for i in order], cat("logits"), cat("logprobs"),
                         cat("probs"), cat("entropy"), cat("approx"),
                         [row_meta[i] for i in order], cat("plain_logprobs"),
                         cat("raw_logprobs"), cat("legal"), cat("log_legal_mass"),
                         cat("no_legal"))
