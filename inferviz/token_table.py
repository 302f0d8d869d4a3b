"""Teacher-forced per-token table: how likely the model found each token of a given text."""

from __future__ import annotations

import math
from typing import Any

from .arrays import namespace
from .tree import TokenTree, readable_token
from .validate import resolve_token_ids

TOP_ALTERNATIVES = 5


def token_table(session: Any, text_or_tree: str | TokenTree, node_id: int | None = None):
    """One row per predicted token: ``position``, ``token_id``, ``token``, ``prob``,
    ``logprob`` (raw, nats), ``rank`` (0 = the model's top choice), ``entropy`` (nats) and the
    top-5 alternatives (``top_token_ids``, ``top_tokens``, ``top_probs``, lists).

    For a text, every token after the first is scored; for ``(tree, node_id)`` the generated
    tokens on the path to the node are. ``df.attrs["perplexity"]`` is exp of the mean negative
    log-likelihood of the scored tokens.

    Over a server (``Session.connect``) the scores come from its prompt log-probabilities and
    a boolean ``approx`` column says whether only its top N were known (then ``entropy`` and
    the alternatives cover those N)."""
    import pandas as pd

    ids, first = resolve_token_ids(session, text_or_tree, node_id)
    rows: list[dict[str, Any]] = []
    approx = False
    if len(ids) > first:
        scored = session.backend.prompt_scores(ids)  # [T-1, V] raw log-probabilities
        logprobs = scored.logprobs[first - 1 : len(ids) - 1]
        approx = scored.approx
        xp = namespace(logprobs)  # a tensor locally, a numpy array from a server
        targets = xp.index(ids[first:])
        chosen = xp.gather(logprobs, targets[:, None])[:, 0]
        ranks = (logprobs > chosen[:, None]).sum(-1)
        if scored.ranks is not None:  # the server's own ranks: exact beyond its top N
            ranks = scored.ranks[first - 1 : len(ids) - 1]
        entropy = -(xp.exp(logprobs) * xp.neginf_to(logprobs, 0.0)).sum(-1)
        top_values, top_indices = xp.topk(logprobs, TOP_ALTERNATIVES)
        for j, tok in enumerate(targets.tolist()):
            top_ids = top_indices[j].tolist()
            rows.append({
                "position": first + j,
                "token_id": tok,
                "token": readable_token(session.token_bytes(tok)),
                "prob": math.exp(chosen[j].item()),
                "logprob": chosen[j].item(),
                "rank": int(ranks[j]),
                "entropy": entropy[j].item(),
                "top_token_ids": top_ids,
                "top_tokens": [readable_token(session.token_bytes(t)) for t in top_ids],
                "top_probs": xp.exp(top_values[j]).tolist(),
            })
    columns = ["position", "token_id", "token", "prob", "logprob", "rank", "entropy",
               "top_token_ids", "top_tokens", "top_probs"]
    df = pd.DataFrame(rows, columns=columns)
    if session.backend.is_remote:  # entropy over a server's top N is a lower bound
        df["approx"] = approx
    df.attrs["perplexity"] = (math.exp(-df["logprob"].mean()) if len(df) else float("nan"))
    return df
