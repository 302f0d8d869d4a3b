"""The fast path over a server: greedy or sampling run by the server in one request.

The server generates every token and returns each one with its top-N alternatives; they are
written into the tree as the path (meta ``strategy``) plus its siblings, with the same numbers
as the step-by-step path would record (raw log-probabilities exact; ``prob`` and ``entropy``
from the top N, marked ``approx`` unless N covers the vocabulary). One request instead of one
per token; the server's own sampler draws the tokens. Streamed where the server streams (vLLM,
llama.cpp): each token is written, and listeners (the tree widget) notified, as it arrives.

``Session.generate(server_side=True)`` runs this through the run machinery
(``strategies.transaction.execute``), as a local run: all or nothing (a stream that breaks off, sends a
bad token or more tokens than ``max_new_tokens`` rolls back every node it wrote), ``stop=``
checked between tokens (the stream is closed there; the run is partial) and ``on_step`` called
after each token. The reply checks are ``RemoteBackend.generate``'s (``reply_check``).
"""

from __future__ import annotations

from typing import Any

from ..distributions import Distributions, record_children
from ..processors import processed_probs

SERVER_STRATEGIES = ("greedy", "sample", "top_k", "top_p", "min_p")


def generate_on_server(session: Any, tree, start_id: int, strategy: str, max_new_tokens: int,
                       seed: int | None, params: dict[str, Any], constraint: Any = None):
    """The run (see the module doc). ``constraint``: passed to the server in its own words
    (``Dialect.constraint_fields``); the server masks, so the path's tokens are recorded alone
    (its top N are the raw model's and may hold illegal tokens), marked with the constraint.
    What it asks of the session is one capability, ``Session.server_generation``."""
    from .common import sampler_settings, take_stop_at_eos
    from .result import GenerationResult
    from .transaction import current_transaction

    if strategy not in SERVER_STRATEGIES:
        raise ValueError(f"server_side=True supports strategy {', '.join(SERVER_STRATEGIES)}; "
                         f"got {strategy!r} (it runs step by step without server_side)")
    settings = sampler_settings(params, f"strategy={strategy!r}")
    stop_at_eos = take_stop_at_eos(params, f"strategy={strategy!r}")
    if strategy == "greedy":
        sampling = {"temperature": 0.0}
    else:
        sampling = {"temperature": settings.temperature, "top_k": settings.top_k,
                    "top_p": settings.top_p, "min_p": settings.min_p}
    ids = tree.token_ids(start_id)
    session.check_context(ids)
    node_id, stop, count = start_id, "max_new_tokens", 0
    eos = session.eos_token_ids
    txn = current_transaction(tree)
    steps = session.server_generation(ids, max_new_tokens, sampling, seed, stop_at_eos,
                                      constraint)
    for token_id, logprobs, approx, known in steps:
        count += 1
        probs = processed_probs(logprobs, settings)
        dists = Distributions.from_logprobs([node_id], logprobs, probs, approx)
        siblings = [t for t in dists.top_k(0, known) if t != token_id]
        if constraint is not None:  # the server's top N may hold tokens the constraint cut
            siblings = []
        tokens = [token_id, *siblings]
        path_meta = {"strategy": strategy, "server_side": True}
        if constraint is not None:
            path_meta.update(constraint=constraint.label, constraint_key=constraint.key)
        metas = [path_meta] + [{}] * len(siblings)
        for token in tokens:  # every token's bytes first (a /detokenize may fail)
            session.token_bytes(token)
        children = record_children(tree, dists, 0, tokens, session.token_bytes, metas)
        txn.step([c.node_id for c in children])
        node_id = children[0].node_id
        if stop_at_eos and token_id in eos:
            stop = "eos"
        reason = txn.stop_reason()
        if reason is not None and stop != "eos":
            stop = reason
            steps.close()  # the server stops when its stream is closed
            break
    score = tree.node(node_id).cum_logprob - tree.node(start_id).cum_logprob
    out = {"max_new_tokens": max_new_tokens, "server_side": True}
    if constraint is not None:
        out["constraint"] = constraint.label
    if strategy != "greedy":
        out.update(seed=seed, **settings.to_dict())
    ended_by = frozenset()
    if stop == "max_new_tokens" and 0 < count < max_new_tokens and stop_at_eos:
        # The server ended the text early on an end-of-generation token the model's config
        # does not list (llama.cpp stops on every EOG token, e.g. <|endoftext|> besides
        # <|im_end|>): that token ends the sequence, and the text leaves it out.
        stop = "eos"
        ended_by = frozenset({tree.node(node_id).token_id})
    result = GenerationResult(strategy, tree, [node_id], out, [score], stop)
    result.eos_token_ids = ended_by
    return result


__all__ = ["SERVER_STRATEGIES", "generate_on_server"]
