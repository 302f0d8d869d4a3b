"""Breadth-first tree expansion: the ``k`` most likely
children of every node, level by level, to ``depth`` tokens below the start node.

Each level is one batched forward over all its nodes (cached prefixes are reused). Children are
the top-``k`` tokens by raw probability; their ``prob`` column is the probability under the
sampler settings given (temperature, top_k, top_p, min_p, ...). A child is not expanded further
when it is EOS (with ``stop_at_eos``) or its processed probability is 0 (the sampler settings
filter it: no sampler could reach its subtree).

The result's ``leaf_ids`` are the terminal nodes of the run, most probable path first, and
``scores`` their log-probabilities relative to the start node. Nodes get meta
``strategy='bfs'`` and ``path_prob`` (raw probability of the path from the start node).
"""

from __future__ import annotations

import math
from typing import Any

from ..distributions import record_children
from ..step_memory import check_step_memory
from ..validate import check_int
from .common import context_room, sampler_settings, take_stop_at_eos
from .result import GenerationResult
from .transaction import current_transaction


def run(session: Any, tree, start_id: int, max_new_tokens: int, seed: int | None = None,
        strategy: str = "bfs", k: int = 3, depth: int = 3, max_nodes: int = 10_000,
        **params: Any) -> GenerationResult:
    where = f"strategy={strategy!r}"
    check_int("k", k, 1, session.vocab_size)
    check_int("depth", depth, 1)
    check_int("max_nodes", max_nodes, 1)
    if depth > max_new_tokens:
        raise ValueError(f"depth must be <= max_new_tokens ({max_new_tokens}); got {depth}")
    worst_case = max_tree_nodes(k, depth, max_nodes)
    if worst_case is None:
        raise ValueError(f"k={k}, depth={depth} can add about 10^{_log10_nodes(k, depth)} "
                         f"nodes, more than max_nodes={max_nodes}; lower k or depth, or raise "
                         f"max_nodes")
    if worst_case > max_nodes:
        raise ValueError(f"k={k}, depth={depth} can add {worst_case} nodes, more than "
                         f"max_nodes={max_nodes}; lower k or depth, or raise max_nodes")
    widest = k ** (depth - 1)  # the last level's parents: one forward over all of them
    check_step_memory(session, widest, new_nodes=widest * k,
                      what=f"bfs with k={k}, depth={depth} (its last level expands {widest} "
                           f"nodes in one forward)", advice="lower k or depth")
    settings = sampler_settings(params, where)
    stop_at_eos = take_stop_at_eos(params, where)
    eos = session.eos_token_ids if stop_at_eos else set()

    txn = current_transaction(tree)
    levels = min(depth, context_room(session, tree, start_id))
    finish = "depth" if levels == depth else "context"
    level, terminal = [start_id], []
    path_lp = {start_id: 0.0}  # log path probability below the start (constrained if so run)
    for _ in range(levels):
        if txn.stop_reason():
            finish = txn.stop_reason()
            break
        dists = session.distributions(tree, level, settings)
        next_level, changed = [], []
        for row, parent_id in enumerate(level):
            tokens = dists.top_k(row, k)
            lps = [path_lp[parent_id] + float(dists.logprobs[row, t]) for t in tokens]
            metas = [{"strategy": strategy, "path_prob": math.exp(lp)} for lp in lps]
            children = record_children(tree, dists, row, tokens, session.token_bytes, metas)
            for child, lp in zip(children, lps):
                path_lp[child.node_id] = lp
                changed.append(child.node_id)
                if child.token_id in eos or child.prob == 0.0:
                    terminal.append(child.node_id)
                else:
                    next_level.append(child.node_id)
        txn.step(changed)
        level = next_level
        if not level:
            blocked = not any(dists.has_choice(row) for row in range(len(dists.parent_ids)))
            finish = "constraint" if blocked else "eos"
            break
    leaves = sorted(terminal + level, key=lambda n: -path_lp[n])
    params_out = {"max_new_tokens": max_new_tokens, "k": k, "depth": depth,
                  **settings.to_dict()}
    return GenerationResult(strategy, tree, leaves, params_out,
                            [path_lp[n] for n in leaves], finish)


def max_tree_nodes(k: int, depth: int, cap: int) -> int | None:
    """Nodes a full ``k``-ary expansion to ``depth`` levels adds, ``k + k^2 + ... + k^depth``,
    in closed form; None when that is certainly more than ``cap`` (so a huge depth is answered
    at once, without building a number with millions of digits)."""
    if k == 1:
        return depth
    if depth > cap.bit_length():  # k^depth >= 2^depth > cap
        return None
    return (k ** (depth + 1) - k) // (k - 1)


def _log10_nodes(k: int, depth: int) -> int:
    """Decimal exponent of ``k^depth`` (the largest term), for the error message."""
    return int(depth * math.log10(k))
