"""Pieces shared by the step-by-step strategies. torch is imported only by the sampling
pieces (a seeded ``torch.Generator``): greedy over a server never loads it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..processors import SamplerSettings
from ..sampler_params import PARAMS
from ..validate import reject_unknown
from .transaction import current_transaction

if TYPE_CHECKING:
    import torch

# The sampler keyword arguments every sampling strategy takes: a live view of the schema, so a
# registered processor's parameter is taken too.
SAMPLER_ARGS = PARAMS.keys()

# The presets of ``mode=``: "focused" is near-deterministic, "exploratory" creative.
MODES = {"focused": 0.3, "exploratory": 1.5}


def sampler_settings(params: dict[str, Any], where: str) -> SamplerSettings:
    """SamplerSettings from the sampler keyword arguments in ``params`` (popped), with the
    ``mode`` preset applied when no explicit temperature is given."""
    mode = params.pop("mode", None)
    kwargs = {k: params.pop(k) for k in SAMPLER_ARGS if k in params}
    if mode is not None:
        if not isinstance(mode, str):
            raise TypeError(f"mode must be a str, one of {', '.join(MODES)}; got "
                            f"{type(mode).__name__} {mode!r}")
        if mode not in MODES:
            raise ValueError(f"mode {mode!r} is unknown; valid modes: {', '.join(MODES)}")
        kwargs.setdefault("temperature", MODES[mode])
    return SamplerSettings(**kwargs)


def make_generator(seed: int | None) -> "torch.Generator":
    import torch

    gen = torch.Generator()
    gen.manual_seed(seed if seed is not None else int(torch.seed() % (2**63)))
    return gen


def take_stop_at_eos(params: dict[str, Any], where: str, allowed: tuple[str, ...] = ()) -> bool:
    """Pop ``stop_at_eos`` (default True) from ``params`` and return it; reject any name left
    in ``params`` that is not in ``allowed``, a sampler setting or ``mode``."""
    stop_at_eos = params.pop("stop_at_eos", True)
    if not isinstance(stop_at_eos, bool):
        raise TypeError(f"stop_at_eos must be a bool; got {stop_at_eos!r}")
    reject_unknown(where, params, (*allowed, *SAMPLER_ARGS, "mode", "stop_at_eos"))
    return stop_at_eos


def context_room(session: Any, tree, node_id: int) -> int:
    """How many tokens can still follow ``node_id`` before the model's context is full (the
    session's ``max_positions``: the local engine's, or what a server declared)."""
    limit = getattr(session, "max_positions", None)
    if limit is None:
        return 1 << 62
    return max(0, int(limit) - len(tree.token_ids(node_id)))


def step_budget(session: Any, tree, start_id: int, max_new_tokens: int) -> tuple[int, str]:
    """``(steps, reason)``: the steps a run from ``start_id`` can take (``max_new_tokens``, or
    fewer where the context fills first) and the finish reason when it takes them all
    (``"max_new_tokens"`` or ``"context"``)."""
    room = context_room(session, tree, start_id)
    if room < max_new_tokens:
        return room, "context"
    return max_new_tokens, "max_new_tokens"


def follow_one_path(session: Any, tree, start_id: int, max_new_tokens: int, pick,
                    strategy: str, stop_at_eos: bool,
                    settings: SamplerSettings | None = None) -> tuple[int, float, str]:
    """Step one path: ``pick(dists) -> token id`` chooses each token, which is recorded with
    meta ``strategy``. Returns the last node id, its score (sum of raw logprobs since
    ``start_id``) and why it stopped ("eos", "max_new_tokens", "context", "stopped",
    "interrupted", or "constraint": a constraint allows no token after the last node)."""
    from ..distributions import record_children
    from ..threads import forward_threads_only

    eos = session.eos_token_ids
    txn = current_transaction(tree)
    budget, finish = step_budget(session, tree, start_id, max_new_tokens)
    node_id = start_id
    with forward_threads_only(session):  # a step's small ops on one thread (inferviz.threads)
        for _ in range(budget):
            if txn.stop_reason():
                finish = txn.stop_reason()
                break
            dists = session.distributions(tree, [node_id], settings)
            if not dists.has_choice(0):
                finish = "constraint"
                break
            token = int(pick(dists))
            (child,) = record_children(tree, dists, 0, [token], session.token_bytes,
                                       [{"strategy": strategy}])
            txn.step([child.node_id])
            node_id = child.node_id
            if stop_at_eos and token in eos:
                finish = "eos"
                break
    score = tree.node(node_id).cum_logprob - tree.node(start_id).cum_logprob
    return node_id, score, finish


def draw_tokens(probs: "torch.Tensor", n: int, generator: "torch.Generator") -> "torch.Tensor":
    """``n`` token ids drawn with replacement from one processed distribution ``probs`` [V].

    Draws over the support only (a top-k/top-p distribution has a few dozen nonzero entries of
    a 50k-150k vocabulary): the same tokens as ``torch.multinomial(probs, n, replacement=True)``
    with the same generator state, about 10x faster per call."""
    import torch

    support = probs.nonzero().squeeze(1)
    return support[torch.multinomial(probs[support], n, replacement=True, generator=generator)]
