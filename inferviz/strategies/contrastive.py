"""Contrastive decoding (Li et al. 2022, "Contrastive Decoding: Open-ended Text Generation as
Optimization") -- not contrastive *search* (Su et al.), which is a different method.

At each step, with expert log-probabilities ``log p_exp`` (temperature 1) and amateur
log-probabilities ``log p_ama`` (from the amateur's logits divided by ``amateur_temperature``):

    V     = {v : p_exp(v) >= alpha * max_w p_exp(w)}         (plausibility set)
    score = log p_exp(v) - log p_ama(v)  for v in V,  -inf elsewhere

and the token with the highest score is chosen (greedy CD). The amateur is a second model that
shares the expert's tokenizer, or an early layer of the expert read through the logit lens.

(Dividing log-probabilities, ``log p_exp / log p_ama``, without the mask is a different rule:
it favours tokens the amateur likes and the expert does not. ``tests/test_contrastive.py``
shows it picking differently on a real step.)
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

import torch

from ..capabilities import ServerLacks, require_full
from ..distributions import record_children
from ..validate import check_float, check_int
from .common import step_budget, take_stop_at_eos
from .result import GenerationResult
from .transaction import current_transaction

VOCAB_SAMPLE = 512  # token -> id pairs compared between expert and amateur tokenizers


def contrastive_scores(expert_logits: torch.Tensor, amateur_logits: torch.Tensor,
                       alpha: float = 0.1, amateur_temperature: float = 0.5) -> torch.Tensor:
    """CD scores ``[..., V]``: ``log p_exp - log p_ama`` on the plausibility set, ``-inf`` off it.

    ``expert_logits`` and ``amateur_logits`` are raw logits of the same shape ``[..., V]``; the
    expert is read at temperature 1, the amateur at ``amateur_temperature``. Plausible means
    ``log p_exp >= log(alpha) + max log p_exp`` (as the reference implementation), i.e.
    ``p_exp >= alpha * max p_exp``; ``alpha = 0`` keeps every token."""
    alpha = check_float("alpha", alpha, 0.0, 1.0)
    amateur_temperature = check_float("amateur_temperature", amateur_temperature, 0.0, math.inf,
                                      low_open=True, high_open=True)
    if not (torch.is_tensor(expert_logits) and torch.is_tensor(amateur_logits)):
        raise TypeError("expert_logits and amateur_logits must be torch tensors [..., V]")
    if expert_logits.shape != amateur_logits.shape:
        raise ValueError(f"expert_logits {tuple(expert_logits.shape)} and amateur_logits "
                         f"{tuple(amateur_logits.shape)} must have the same shape")
    expert = torch.log_softmax(expert_logits.float(), dim=-1)
    amateur = torch.log_softmax(amateur_logits.float() / amateur_temperature, dim=-1)
    cutoff = math.log(alpha) if alpha > 0 else -math.inf
    plausible = expert >= cutoff + expert.amax(dim=-1, keepdim=True)
    return torch.where(plausible, expert - amateur, torch.full_like(expert, -math.inf))


def check_same_vocabulary(expert: Any, amateur: Any) -> int:
    """Raise unless the two sessions' tokenizers agree (size and a sample of token -> id);
    returns the number of logit columns to compare (the tokenizer's size when the two output
    layers are padded differently)."""
    e_tok, a_tok = expert.tokenizer, amateur.tokenizer
    hint = ("contrastive decoding compares the two models token by token, so the amateur must "
            "share the expert's tokenizer (e.g. a smaller model of the same family), or use "
            "amateur_layer=... to read an early layer of the expert instead")
    if len(e_tok) != len(a_tok):
        raise ValueError(f"amateur {amateur.name!r} has another vocabulary ({len(a_tok)} tokens) "
                         f"than the expert {expert.name!r} ({len(e_tok)} tokens); {hint}")
    e_vocab, a_vocab = e_tok.get_vocab(), a_tok.get_vocab()
    tokens = sorted(e_vocab, key=e_vocab.__getitem__)
    step = max(1, len(tokens) // VOCAB_SAMPLE)
    for token in tokens[::step]:
        if a_vocab.get(token) != e_vocab[token]:
            raise ValueError(f"amateur {amateur.name!r} has another vocabulary than the expert "
                             f"{expert.name!r}: token {token!r} is id {e_vocab[token]} for the "
                             f"expert and {a_vocab.get(token)} for the amateur; {hint}")
    width = min(expert.vocab_size, amateur.vocab_size)
    if width < len(e_tok):
        raise ValueError(f"amateur {amateur.name!r} has {amateur.vocab_size} output logits, fewer "
                         f"than the tokenizer's {len(e_tok)} tokens; {hint}")
    return width


def _resolve_amateur(session: Any, amateur: Any, amateur_layer: Any) -> tuple[Any, int | None]:
    if (amateur is None) == (amateur_layer is None):
        raise ValueError("strategy='contrastive' needs exactly one of amateur=... (a Session, or "
                         "a model name/path sharing the expert's tokenizer) or amateur_layer=... "
                         "(an early layer of the expert, read through the logit lens)")
    if amateur_layer is not None:
        try:
            layers = session.num_layers
        except ServerLacks:
            raise ServerLacks("amateur_layer reads an early layer's hidden state, which the "
                              "server does not return; pass amateur=... (a Session sharing "
                              "the tokenizer, local or connected with full distributions)"
                              ) from None
        check_int("amateur_layer", amateur_layer, 0, layers - 1)
        return None, amateur_layer
    if isinstance(amateur, (str, os.PathLike)):
        from ..session import Session

        amateur = Session.from_pretrained(amateur)
    elif not (hasattr(amateur, "engine") and hasattr(amateur, "tokenizer")):
        raise TypeError(f"amateur must be a Session or a model name/path; got "
                        f"{type(amateur).__name__}")
    require_full(amateur, "the amateur of contrastive decoding (its log-probability "
                 "of every plausible token)")
    return amateur, None


def _check_plausible_known(dists, alpha: float) -> None:
    """ServerLacks when a truncated expert row may have plausible tokens outside its top N."""
    if dists.approx is None or not bool(dists.approx[0]):
        return
    known = dists.logprobs[0][torch.isfinite(dists.logprobs[0])]
    if alpha == 0 or float(known.min()) >= float(known.max()) + math.log(alpha):
        raise ServerLacks(f"the plausibility set (p >= alpha * max p, alpha={alpha}) reaches "
                          f"beyond the server's top {known.numel()} tokens; raise alpha or "
                          f"connect with a larger top_logprobs")


def run(session: Any, tree, start_id: int, max_new_tokens: int, seed: int | None = None,
        strategy: str = "contrastive", amateur: Any = None, amateur_layer: int | None = None,
        alpha: float = 0.1, amateur_temperature: float = 0.5, candidates: int = 5,
        **params: Any) -> GenerationResult:
    """Greedy contrastive decoding from ``start_id``. At every step the ``candidates`` best
    tokens by CD score and the ``candidates`` most likely expert tokens are written as children
    (so the plausibility mask is visible), with meta ``cd_expert_logprob``,
    ``cd_amateur_logprob``, ``cd_score``, ``cd_plausible``, ``cd_chosen``. A child's ``prob`` is
    its probability under softmax(CD scores): 0 outside the plausibility set."""
    alpha = check_float("alpha", alpha, 0.0, 1.0)
    check_float("amateur_temperature", amateur_temperature, 0.0, math.inf, low_open=True,
                high_open=True)
    check_int("candidates", candidates, 1, session.vocab_size)
    stop_at_eos = take_stop_at_eos(params, f"strategy={strategy!r}")  # rejects sampler arguments too
    if params:
        raise TypeError(f"strategy={strategy!r} takes no sampler arguments "
                        f"({', '.join(sorted(params))}): the expert is read at temperature 1")
    amateur, amateur_layer = _resolve_amateur(session, amateur, amateur_layer)
    width = session.vocab_size if amateur is None else check_same_vocabulary(session, amateur)

    eos = session.eos_token_ids
    txn = current_transaction(tree)
    budget, finish = step_budget(session, tree, start_id, max_new_tokens)
    node_id, total = start_id, 0.0
    for _ in range(budget):
        if txn.stop_reason():
            finish = txn.stop_reason()
            break
        dists, amateur_logits = _step_logits(session, tree, node_id, amateur, amateur_layer)
        if not dists.has_choice(0):
            finish = "constraint"
            break
        _check_plausible_known(dists, alpha)
        expert_logits = dists.logits[0, :width]
        scores = contrastive_scores(expert_logits, amateur_logits[:width], alpha,
                                    amateur_temperature)
        token = int(scores.argmax())
        expert_lp = dists.logprobs[0, :width]
        amateur_lp = torch.log_softmax(amateur_logits[:width].float() / amateur_temperature, -1)
        shown = _candidates(scores, expert_lp, token, candidates)
        cd_probs = torch.zeros_like(dists.probs)
        cd_probs[0, :width] = torch.softmax(scores, dim=-1)
        metas = [{"strategy": strategy, "cd_expert_logprob": float(expert_lp[t]),
                  "cd_amateur_logprob": float(amateur_lp[t]), "cd_score": float(scores[t]),
                  "cd_plausible": bool(torch.isfinite(scores[t])), "cd_chosen": t == token}
                 for t in shown]
        children = record_children(tree, dataclasses.replace(dists, probs=cd_probs), 0, shown,
                                   session.token_bytes, metas)
        txn.step([c.node_id for c in children])
        node_id = children[shown.index(token)].node_id
        total += float(scores[token])
        if stop_at_eos and token in eos:
            finish = "eos"
            break
    params_out = {"max_new_tokens": max_new_tokens, "alpha": alpha,
                  "amateur_temperature": amateur_temperature,
                  "amateur": amateur.name if amateur is not None else None,
                  "amateur_layer": amateur_layer}
    return GenerationResult(strategy, tree, [node_id], params_out, [total], finish)


def _step_logits(session: Any, tree, node_id: int, amateur: Any,
                 amateur_layer: int | None):
    """Expert distributions of ``node_id`` and the amateur's raw logits ``[V]``: a second
    session's, or the expert's own early layer read through the logit lens during the
    expert's forward (``Session.early_layer_logits``, local only)."""
    if amateur is not None:  # a server's rows are numpy: this strategy works in torch
        dists = session.distributions(tree, [node_id]).to_torch()
        return dists, amateur.distributions(tree, [node_id]).to_torch().logits[0]
    return session.early_layer_logits(
        tree, node_id, amateur_layer,
        source=f"the amateur (layer {amateur_layer} through the logit lens)")


def _candidates(scores: torch.Tensor, expert_lp: torch.Tensor, chosen: int, count: int
                ) -> list[int]:
    """The chosen token, the best ``count`` by CD score and the expert's ``count`` most likely
    tokens (some may lie outside the plausibility set), without repeats."""
    finite = int(torch.isfinite(scores).sum())
    by_score = torch.topk(scores, min(count, finite)).indices.tolist()
    known = int(torch.isfinite(expert_lp).sum())  # under a constraint: the legal tokens
    by_expert = torch.topk(expert_lp, min(count, known)).indices.tolist()
    out: list[int] = []
    for t in [chosen, *by_score, *by_expert]:
        if t not in out:
            out.append(int(t))
    return out
