"""Probability-threshold expansion (a "block multiverse"): grow every continuation whose
path probability stays at or above ``threshold``, most probable first, within a node budget.

The frontier is a priority queue keyed by path probability (raw model probability of the
tokens from the start node). Each round pops the ``batch_size`` most probable frontier nodes
and expands them in one batched forward; of each node's ``k`` most likely next tokens, those
whose path probability is still >= ``threshold`` are added and join the frontier (EOS children
and children at ``max_new_tokens`` below the start are not expanded). It stops when the
frontier is empty (``finish_reason='threshold'``, or ``'context'`` when a path reached the
model's context) or ``max_nodes`` nodes were added (``'max_nodes'``; at the budget the most
probable children are kept). With ``batch_size=1`` the order is exactly best-first.

Nodes get meta ``strategy='threshold'`` and ``path_prob``. ``leaf_ids`` are the nodes of the
run that were not expanded, most probable first; ``scores`` their log path probabilities.
"""

from __future__ import annotations

import heapq
import math
from typing import Any

from ..distributions import record_children
from ..step_memory import check_step_memory
from ..validate import check_float, check_int
from .common import SAMPLER_ARGS, context_room, take_stop_at_eos
from .result import GenerationResult
from .transaction import current_transaction


def run(session: Any, tree, start_id: int, max_new_tokens: int, seed: int | None = None,
        strategy: str = "threshold", threshold: float = 0.01, k: int = 5, max_nodes: int = 200,
        batch_size: int = 8, **params: Any) -> GenerationResult:
    where = f"strategy={strategy!r}"
    threshold = check_float("threshold", threshold, 0.0, 1.0, low_open=True, high_open=True)
    check_int("k", k, 1, session.vocab_size)
    check_int("max_nodes", max_nodes, 1)
    check_int("batch_size", batch_size, 1)
    given = sorted(set(params) & {*SAMPLER_ARGS, "mode"})
    if given:
        raise TypeError(f"{where} does not take sampler arguments ({', '.join(given)}): it "
                        f"thresholds the model's raw path probability")
    stop_at_eos = take_stop_at_eos(params, where)
    eos = session.eos_token_ids if stop_at_eos else set()
    log_threshold = math.log(threshold)
    # At each depth at most 1/threshold paths keep probability >= threshold, and the frontier
    # never holds more than the nodes added: bounds on the nodes and the rows of one forward.
    most_nodes = min(max_nodes, int(max_new_tokens / threshold))
    rows = min(batch_size, most_nodes)
    check_step_memory(session, rows, new_nodes=most_nodes,
                      what=f"threshold with batch_size={batch_size}, max_nodes={max_nodes}",
                      advice="lower batch_size or max_nodes")

    txn = current_transaction(tree)
    start = tree.node(start_id)
    start_depth = start.depth
    room = context_room(session, tree, start_id)
    reach = min(max_new_tokens, room)  # depth below the start a node may be expanded from
    frontier: list[tuple[float, int]] = [(-0.0, start_id)] if room else []
    added: list[int] = []
    expanded: set[int] = set()
    lp_of = {start_id: 0.0}  # log path probability below the start (constrained if so run)
    finish = "threshold" if room else "context"
    while frontier:
        if txn.stop_reason():
            finish = txn.stop_reason()
            break
        budget = max_nodes - len(added)
        if budget <= 0:
            finish = "max_nodes"
            break
        batch = [heapq.heappop(frontier)[1] for _ in range(min(batch_size, len(frontier)))]
        dists = session.distributions(tree, batch)
        picks = []  # (log path prob, row, token)
        for row, parent_id in enumerate(batch):
            parent_lp = lp_of[parent_id]
            for token in dists.top_k(row, k):
                path_lp = parent_lp + float(dists.logprobs[row, token])
                if path_lp >= log_threshold:
                    picks.append((path_lp, row, token))
        picks.sort(key=lambda p: -p[0])
        if len(picks) > budget:
            picks, finish = picks[:budget], "max_nodes"
        changed = []
        for row in range(len(batch)):
            mine = [(lp, t) for lp, r, t in picks if r == row]
            if not mine:
                continue  # no child over the threshold: the node stays a leaf
            expanded.add(batch[row])
            metas = [{"strategy": strategy, "path_prob": math.exp(lp)} for lp, _ in mine]
            children = record_children(tree, dists, row, [t for _, t in mine],
                                       session.token_bytes, metas)
            for child, (lp, _) in zip(children, mine):
                lp_of[child.node_id] = lp
                changed.append(child.node_id)
                added.append(child.node_id)
                if child.token_id not in eos and child.depth - start_depth < reach:
                    heapq.heappush(frontier, (-lp, child.node_id))
                elif child.token_id not in eos and child.depth - start_depth == room \
                        and room < max_new_tokens and finish == "threshold":
                    finish = "context"  # the model's context, not the threshold, ended this path
        txn.step(changed)
        if finish == "max_nodes":
            break
    leaves = [n for n in added if n not in expanded] or [start_id]
    leaves.sort(key=lambda n: -lp_of[n])
    params_out = {"max_new_tokens": max_new_tokens, "threshold": threshold, "k": k,
                  "max_nodes": max_nodes, "batch_size": batch_size, "nodes_added": len(added)}
    return GenerationResult(strategy, tree, leaves, params_out,
                            [lp_of[n] for n in leaves], finish)
