"""Beam search with the semantics of transformers' ``generate(num_beams=N, do_sample=False)``
(``GenerationMixin._beam_search`` in transformers 5.x), step for step:

- every live beam advances in one batched forward; candidates are ranked by the running sum of
  raw log-probabilities (log_softmax of the logits), and the best ``K = max(2, 1 + #eos) * N``
  of all ``beam x vocabulary`` continuations are kept;
- a candidate ending in EOS (or reaching ``max_new_tokens``) is finished only if it is among
  the top ``N`` of those ``K``; its final score is ``sum_logprobs / generated_len **
  length_penalty`` where ``generated_len`` counts the new tokens including the EOS;
- the best ``N`` unfinished candidates become the next beams;
- ``early_stopping`` True stops once ``N`` hypotheses are finished; False and "never" stop when
  the best running beam can no longer beat the worst finished one (heuristic length: the
  current length, or ``max_new_tokens`` for "never" with a positive length penalty).

Every candidate of every step is written into the tree with meta ``beam_step`` (new tokens so
far), ``beam_score`` (running sum of log-probabilities), ``beam_kept`` (it became a live beam),
and ``beam_final_score`` on the candidates that entered the finished set. Scores are float32
tensors throughout, as in transformers, so ties break the same way.

Under a constraint the beams are ranked by the *constrained* log-probabilities (the model
restricted to the legal tokens at each step, so an illegal token never enters a beam and a
forced token costs nothing), and ``beam_raw_score`` keeps each candidate's sum of raw
log-probabilities alongside.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..capabilities import ServerLacks
from ..distributions import record_children
from ..step_memory import check_step_memory
from ..validate import check_int, reject_unknown
from .common import step_budget
from .result import GenerationResult
from .transaction import current_transaction

NEG = -1.0e9  # transformers' "never pick this" offset


def check_beam_args(num_beams: Any, length_penalty: Any, early_stopping: Any,
                    num_return_sequences: Any, stop_at_eos: Any) -> None:
    check_int("num_beams", num_beams, 1)
    if isinstance(num_return_sequences, bool) or not isinstance(num_return_sequences, int):
        raise TypeError(f"num_return_sequences must be an int; got {num_return_sequences!r}")
    if not 1 <= num_return_sequences <= num_beams:
        raise ValueError(f"num_return_sequences must be in [1, num_beams={num_beams}]; got "
                         f"{num_return_sequences} (raise num_beams to return more sequences)")
    if isinstance(length_penalty, bool) or not isinstance(length_penalty, (int, float)) \
            or not math.isfinite(length_penalty):
        raise ValueError(f"length_penalty must be a finite number (> 0 favours longer "
                         f"sequences, < 0 shorter); got {length_penalty!r}")
    if early_stopping not in (True, False, "never") or early_stopping in (0, 1) \
            and not isinstance(early_stopping, bool):
        raise ValueError(f"early_stopping must be True, False or 'never'; got {early_stopping!r}")
    if not isinstance(stop_at_eos, bool):
        raise TypeError(f"stop_at_eos must be a bool; got {stop_at_eos!r}")


def run(session: Any, tree, start_id: int, max_new_tokens: int, seed: int | None = None,
        strategy: str = "beam", num_beams: int = 4, length_penalty: float = 1.0,
        early_stopping: bool | str = False, num_return_sequences: int = 1,
        stop_at_eos: bool = True, **params: Any) -> GenerationResult:
    reject_unknown(f"strategy={strategy!r}", params, ())
    check_beam_args(num_beams, length_penalty, early_stopping, num_return_sequences, stop_at_eos)
    eos = sorted(session.eos_token_ids) if stop_at_eos else []
    beams_to_keep = max(2, 1 + len(eos)) * num_beams
    if beams_to_keep > session.vocab_size:
        raise ValueError(f"num_beams={num_beams} keeps {beams_to_keep} candidates a step, more "
                         f"than the vocabulary ({session.vocab_size}); lower num_beams")
    top_n = session.top_n  # a server returning only its top N tokens a row
    if top_n is not None and beams_to_keep > top_n:
        raise ServerLacks(f"num_beams={num_beams} ranks {beams_to_keep} candidates a step, but "
                          f"the server returns only its top {top_n} tokens; lower num_beams or "
                          f"connect with top_logprobs >= {beams_to_keep}")
    check_step_memory(session, num_beams, new_nodes=beams_to_keep * max_new_tokens,
                      what=f"num_beams={num_beams} (each step scores {num_beams} beams over "
                           f"the vocabulary and adds {beams_to_keep} candidates, for "
                           f"{max_new_tokens} steps)",
                      advice="lower num_beams or max_new_tokens")
    eos_set = torch.tensor(eos, dtype=torch.long)
    length_penalty = float(length_penalty)
    txn = current_transaction(tree)
    # A full context ends the run as max_new_tokens would (as transformers' max_length does).
    limit, length_reason = step_budget(session, tree, start_id, max_new_tokens)

    running_ids = [start_id]  # node ids of the live beams, best first (transformers' order)
    running_scores = torch.zeros(1)
    finished_ids: list[int | None] = [None] * num_beams
    finished_scores = torch.full((num_beams,), NEG)
    finished_flags = torch.zeros(num_beams, dtype=torch.bool)
    improvable = True
    finish = length_reason
    new_len = 0
    base = tree.node(start_id).cum_logprob

    for step in range(limit):
        if txn.stop_reason():
            finish = txn.stop_reason()
            break
        new_len = step + 1
        dists = session.distributions(tree, running_ids).to_torch()  # a server's: numpy
        vocab = dists.logprobs.shape[-1]
        flat = (dists.logprobs + running_scores[:, None]).reshape(-1)
        # Under a constraint few tokens may be legal: rank only those (-inf is illegal).
        width = beams_to_keep if dists.legal is None else \
            min(beams_to_keep, int(torch.isfinite(flat).sum()))
        if width == 0:
            finish = "constraint"
            break
        top_n = torch.arange(width) < num_beams
        cand_scores, cand_index = torch.topk(flat, k=width)
        cand_row, cand_token = cand_index // vocab, cand_index % vocab
        hits = torch.isin(cand_token, eos_set) | (new_len >= limit)

        # The next live beams: best num_beams candidates that did not stop.
        masked = cand_scores + hits.float() * NEG
        next_pos = torch.topk(masked, k=min(num_beams, width))[1]
        if dists.legal is not None:  # no beam continues from a finished hypothesis
            next_pos = next_pos[masked[next_pos] > NEG / 2]

        # Finished hypotheses: only the top num_beams candidates may enter.
        final = cand_scores / (new_len ** length_penalty)
        if bool(finished_flags.all()) and early_stopping is True:
            final = final + NEG
        if not improvable:
            final = final + NEG
        just_finished = hits & top_n
        final = final + (~just_finished).float() * NEG
        merged = torch.cat((finished_scores, final))
        keep = torch.topk(merged, k=num_beams)[1]

        nodes = _record_step(session, tree, dists, cand_row, cand_token, cand_scores,
                             set(next_pos.tolist()), hits, just_finished, final, keep,
                             num_beams, new_len, strategy, base)
        merged_ids = finished_ids + nodes
        merged_flags = torch.cat((finished_flags, just_finished))
        finished_ids = [merged_ids[i] for i in keep.tolist()]
        finished_scores = merged[keep]
        finished_flags = merged_flags[keep]
        running_ids = [nodes[i] for i in next_pos.tolist()]
        running_scores = masked[next_pos]

        improvable = improvable and bool(running_ids) and _can_improve(
            running_scores, finished_scores, finished_flags, new_len, limit,
            early_stopping, length_penalty)
        all_full = bool(finished_flags.all()) and early_stopping is True
        if not improvable or all_full or bool(hits.all()) or not running_ids:
            if new_len < limit:
                finish = "beams_finished"
            break

    if finish in ("stopped", "interrupted") and new_len:
        # A stopped run returns its best hypotheses so far: the finished ones and the live
        # beams scored as if they ended here.
        merged = torch.cat((finished_scores, running_scores / (new_len ** length_penalty)))
        keep = torch.topk(merged, k=num_beams)[1].tolist()
        pool = finished_ids + list(running_ids)
        finished_ids, finished_scores = [pool[i] for i in keep], merged[keep]
        live = set(running_ids)
    else:
        live = set()
    returned = [(int(n), float(x)) for n, x in zip(finished_ids[:num_return_sequences],
                                                   finished_scores[:num_return_sequences])
                if n is not None]
    leaf_ids, scores = [n for n, _ in returned], [x for _, x in returned]
    if not leaf_ids:  # no step was taken (the context was full, or stopped at once)
        leaf_ids, scores = [start_id], [0.0]
    reasons = [finish if n in live or n == start_id
               else "eos" if tree.node(n).token_id in eos else length_reason for n in leaf_ids]
    params_out = {"max_new_tokens": max_new_tokens, "num_beams": num_beams,
                  "length_penalty": length_penalty, "early_stopping": early_stopping,
                  "num_return_sequences": num_return_sequences}
    return GenerationResult(strategy, tree, leaf_ids, params_out, scores, finish, reasons)


def _can_improve(running_scores: torch.Tensor, finished_scores: torch.Tensor,
                 finished_flags: torch.Tensor, new_len: int, max_new_tokens: int,
                 early_stopping: bool | str, length_penalty: float) -> bool:
    """transformers' ``_check_early_stop_heuristic``: can the best live beam still beat the
    worst finished hypothesis? (Always True while a finished slot is empty.)"""
    if early_stopping == "never" and length_penalty > 0.0:
        best_length = max_new_tokens
    else:
        best_length = new_len
    best_possible = running_scores[:1] / (best_length ** length_penalty)
    worst = torch.where(finished_flags, finished_scores.min(), torch.tensor(NEG))
    return bool((best_possible > worst).any())


def _record_step(session, tree, dists, cand_row, cand_token, cand_scores, kept: set[int],
                 hits, just_finished, final, keep, num_beams: int, new_len: int,
                 strategy: str, base: float) -> list[int]:
    """Write the candidates of one step into the tree; returns their node ids in candidate
    order. Candidates are grouped by parent so each parent's children go in one call."""
    entered = {int(i) - num_beams for i in keep
               if int(i) >= num_beams and bool(just_finished[int(i) - num_beams])}
    metas = []
    for j in range(len(cand_token)):
        meta = {"strategy": strategy, "beam_step": new_len,
                "beam_score": float(cand_scores[j]), "beam_kept": j in kept and not bool(hits[j])}
        if j in entered:
            meta["beam_final_score"] = float(final[j])
        metas.append(meta)
    node_ids: list[int] = [0] * len(cand_token)
    changed = []
    by_row: dict[int, list[int]] = {}  # one pass, not one scan of the candidates per row
    for j, row in enumerate(cand_row.tolist()):
        by_row.setdefault(row, []).append(j)
    tokens = cand_token.tolist()
    for row in sorted(by_row):
        positions = by_row[row]
        children = record_children(tree, dists, row, [tokens[j] for j in positions],
                                   session.token_bytes, [metas[j] for j in positions])
        for j, child in zip(positions, children):
            node_ids[j] = child.node_id
            changed.append(child.node_id)
            if dists.raw_logprobs is not None:  # constrained scores above, the raw kept here
                tree.update_meta(child.node_id, {"beam_raw_score": child.cum_logprob - base})
    current_transaction(tree).step(changed)
    return node_ids
