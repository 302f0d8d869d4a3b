"""A strategy written as one Python function.

``s.generate(prompt, strategy="custom", choose=fn)`` calls ``fn(dist, node)`` at every step,
where ``dist`` is a read-only :class:`StepDistribution` of the next token and ``node`` the
current (parent) :class:`~inferviz.tree.Node`. ``fn`` returns token ids: all of them are added
as children (so alternatives stay visible in the tree) and the first one is followed.

``register_strategy("name", fn)`` makes ``s.generate(prompt, strategy="name")`` run ``fn``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..distributions import Distributions, record_children
from .common import sampler_settings, step_budget, take_stop_at_eos
from .result import GenerationResult
from .transaction import current_transaction

Choose = Callable[["StepDistribution", Any], "list[int]"]


class StepDistribution:
    """The next-token distribution after one node, read-only (tensors are copies).

    logprobs  [V] raw log-probabilities          probs  [V] after the sampler settings
    logits    [V] raw logits                      entropy    raw entropy, nats
    """

    __slots__ = ("_entropy", "_logits", "_logprobs", "_probs")

    def __init__(self, dists: Distributions, row: int) -> None:
        self._logits = dists.logits[row]
        self._logprobs = dists.logprobs[row]
        self._probs = dists.probs[row]
        self._entropy = float(dists.entropy[row])

    @property
    def logits(self) -> torch.Tensor:
        return self._logits.clone()

    @property
    def logprobs(self) -> torch.Tensor:
        return self._logprobs.clone()

    @property
    def probs(self) -> torch.Tensor:
        return self._probs.clone()

    @property
    def entropy(self) -> float:
        return self._entropy

    @property
    def vocab_size(self) -> int:
        return int(self._logits.shape[-1])

    def top_k(self, k: int) -> list[int]:
        """The ``k`` most likely token ids under the raw distribution, best first."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be an int >= 1; got {k!r}")
        return torch.topk(self._logits, min(k, self.vocab_size)).indices.tolist()

    def __repr__(self) -> str:
        return f"StepDistribution(vocab_size={self.vocab_size}, entropy={self._entropy:.3f})"


def register_strategy(name: str, choose: Choose, **preset: Any) -> None:
    """Register ``choose`` under ``name``: ``s.generate(prompt, strategy=name)`` then runs it
    like ``strategy="custom", choose=choose`` (``preset`` gives default keyword arguments)."""
    from . import STRATEGIES, register

    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name must be an identifier-like str; got {name!r}")
    if name in STRATEGIES and STRATEGIES[name][0] != "custom":
        raise ValueError(f"strategy {name!r} is built in; pick another name")
    if not callable(choose):
        raise TypeError(f"choose must be callable as choose(dist, node) -> list[int]; "
                        f"got {type(choose).__name__}")
    register(name, "custom", {**preset, "choose": choose})


def run(session: Any, tree, start_id: int, max_new_tokens: int, seed: int | None = None,
        strategy: str = "custom", choose: Choose | None = None,
        **params: Any) -> GenerationResult:
    where = f"strategy={strategy!r}"
    if choose is None or not callable(choose):
        raise TypeError(f"{where} needs choose=fn, a callable fn(dist, node) -> list[int] of "
                        f"token ids (the first is followed); got {choose!r}")
    settings = sampler_settings(params, where)
    stop_at_eos = take_stop_at_eos(params, where)
    eos = session.eos_token_ids
    txn = current_transaction(tree)
    budget, finish = step_budget(session, tree, start_id, max_new_tokens)
    node_id = start_id
    for step in range(budget):
        if txn.stop_reason():
            finish = txn.stop_reason()
            break
        # The user's function is handed torch tensors, whatever the source (a server: numpy).
        dists = session.distributions(tree, [node_id], settings).to_torch()
        node = tree.node(node_id)
        try:
            picked = choose(StepDistribution(dists, 0), node)
        except Exception as err:
            raise RuntimeError(f"choose raised {type(err).__name__}: {err} (at step {step}, "
                               f"node {node_id})") from err
        tokens = _check_tokens(picked, dists.logits.shape[-1], step)
        metas = [{"strategy": strategy, "custom_followed": j == 0} for j in range(len(tokens))]
        children = record_children(tree, dists, 0, tokens, session.token_bytes, metas)
        txn.step([c.node_id for c in children])
        node_id = children[0].node_id
        if stop_at_eos and tokens[0] in eos:
            finish = "eos"
            break
    score = tree.node(node_id).cum_logprob - tree.node(start_id).cum_logprob
    params_out = {"max_new_tokens": max_new_tokens,
                  "choose": getattr(choose, "__name__", repr(choose)), **settings.to_dict()}
    return GenerationResult(strategy, tree, [node_id], params_out, [score], finish)


def _check_tokens(picked: Any, vocab_size: int, step: int) -> list[int]:
    if isinstance(picked, torch.Tensor):
        picked = picked.reshape(-1).tolist()
    elif isinstance(picked, int) and not isinstance(picked, bool):
        picked = [picked]
    try:
        tokens = list(picked)
    except TypeError:
        raise TypeError(f"choose must return a list of token ids; it returned {picked!r} at "
                        f"step {step}") from None
    if not tokens:
        raise ValueError(f"choose returned no token ids at step {step}; return at least one "
                         f"(the first is followed)")
    out: list[int] = []
    for t in tokens:
        if hasattr(t, "item"):
            t = t.item()
        if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < vocab_size:
            raise ValueError(f"choose returned {t!r} at step {step}; token ids must be ints in "
                             f"[0, {vocab_size})")
        if t not in out:
            out.append(t)
    return out
