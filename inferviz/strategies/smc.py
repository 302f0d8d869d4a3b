"""Sequential Monte Carlo over token sequences (particle filtering, as in llamppl).

N particles grow together. At each step every live particle draws its next token from the
proposal q (the model under the sampler settings given: temperature, top_k, top_p, min_p, ...),
and its log-weight gains

    log p(token | prefix) - log q(token | prefix) + potential(text_t) - potential(text_{t-1})

where p is the model at temperature 1 and ``text_t`` the text this run generated so far (prompt
excluded, EOS included as the tokenizer shows it: the very strings of ``res.posterior``). With a
truncating proposal at temperature 1 (top_k/top_p/min_p/typical_p, no penalty) the first two
terms are log of the raw mass the processors kept, the same for every kept token: NOT log p(token)
(adding log p(token) while proposing from the renormalised top-k would target p^2).
Particles start with log-weight potential(""). When ESS < ess_threshold * N the particles are
resampled and every weight set to the log-mean-exp of the weights before, so
``log_ml = logsumexp(log_w) - log N`` at the end is the log of an unbiased estimate of

    Z = sum over completed sequences x in the support of q of p(x) * exp(potential(x))

(completed: ended by EOS or by max_new_tokens). With a truncated proposal, sequences outside its
support are never drawn: Z counts only those inside it. A potential that is -inf on a prefix must
be -inf on every extension of it (a particle at weight 0 stops advancing).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..distributions import Distributions, record_children
from ..processors import SamplerSettings, log_kept_mass, process
from ..resampling import RESAMPLERS, ess, normalize_log_weights, resample
from ..tree import TokenTree
from ..validate import check_float, check_int
from .common import draw_tokens, make_generator, sampler_settings, step_budget, take_stop_at_eos
from .smc_record import SMCRecord, SMCResult, SMCStep, final_node_weights, step_node_meta
from .transaction import current_transaction

MAX_PARTICLES = 4096  # one forward holds up to this many rows; each row keeps 3 x V floats
SMC_ARGS = ("particles", "particlenum", "potential", "ess_threshold", "resampling")


class PotentialError(ValueError):
    """The user's potential raised, or returned something that is not a log-weight."""


def incremental_log_weights(dists: Distributions, rows: np.ndarray, tokens: np.ndarray,
                            settings: SamplerSettings) -> np.ndarray:
    """log p(token) - log q(token) [M] for tokens drawn from rows of ``dists`` (p raw, q the
    processed ``dists.probs``). Exactly 0 for identity settings; log kept mass for a pure
    truncation at temperature 1."""
    # Under a constraint p above is the model restricted to the legal tokens, and the weight
    # gains the log legal mass: log p_raw(x) - log q(x) = log mass + log p_legal(x) - log q(x).
    legal = 0.0 if dists.log_legal_mass is None else \
        dists.log_legal_mass.double().numpy()[rows]
    if settings.is_identity:
        return np.zeros(len(tokens)) + legal
    if settings.temperature == 1 and settings.repetition_penalty in (None, 1):
        kept = log_kept_mass(dists.logits, process(dists.logits, settings)).double().numpy()
        return kept[rows] + legal
    r, t = torch.as_tensor(rows), torch.as_tensor(tokens)
    return (dists.logprobs[r, t].double() - dists.probs[r, t].double().log()).numpy() + legal


def _potential_name(potential: Callable) -> str:
    return getattr(potential, "__qualname__", None) or repr(potential)


def evaluate_potential(potential: Callable[[str], float], text: str) -> float:
    """potential(text) as a float log-weight in [-inf, inf); PotentialError otherwise."""
    name = _potential_name(potential)
    try:
        value = potential(text)
    except Exception as exc:
        raise PotentialError(f"potential {name} raised {type(exc).__name__}: {exc} (on text "
                             f"{text!r}); the SMC run was abandoned, the tree is unchanged") \
            from exc
    if isinstance(value, bool):
        raise PotentialError(f"potential {name} returned a bool on text {text!r}; return a "
                             f"log-weight (a float; 0.0 to keep, -inf to rule out)")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise PotentialError(f"potential {name} returned {value!r} on text {text!r}; it must "
                             f"return a float log-weight (-inf allowed)") from None
    if math.isnan(value) or value == math.inf:
        raise PotentialError(f"potential {name} returned {value} on text {text!r}; it must "
                             f"return a finite float or -inf; the tree is unchanged")
    return value


def _check_params(params: dict[str, Any]) -> tuple[int, Any, float, str]:
    n = params.pop("particles", None)
    alias = params.pop("particlenum", None)
    if n is not None and alias is not None and n != alias:
        raise ValueError(f"particles={n!r} and particlenum={alias!r} disagree; particlenum is "
                         f"an alias of particles: give one")
    n = check_int("particles", 16 if n is None and alias is None else n if n is not None
                  else alias, 1, MAX_PARTICLES)
    potential = params.pop("potential", None)
    if potential is not None and not callable(potential):
        raise TypeError(f"potential must be a callable text -> log-weight, or None; got "
                        f"{potential!r}")
    threshold = check_float("ess_threshold", params.pop("ess_threshold", 0.5), 0.0, 1.0)
    scheme = params.pop("resampling", "multinomial")
    if not isinstance(scheme, str) or scheme not in RESAMPLERS:
        raise ValueError(f"resampling={scheme!r} is unknown; valid: {', '.join(RESAMPLERS)}")
    return n, potential, threshold, scheme


def run(session: Any, tree: TokenTree, start_id: int, max_new_tokens: int,
        seed: int | None = None, strategy: str = "smc", **params: Any) -> SMCResult:
    n, potential, ess_threshold, scheme = _check_params(params)
    settings = sampler_settings(params, "strategy='smc'")
    stop_at_eos = take_stop_at_eos(params, "strategy='smc'", SMC_ARGS)
    eos = np.array(sorted(session.eos_token_ids) if stop_at_eos else [], dtype=np.int64)
    gen = make_generator(seed)
    rng = np.random.default_rng(gen.initial_seed())
    txn = current_transaction(tree)
    # A full context completes the particles as max_new_tokens would.
    last_step, length_reason = step_budget(session, tree, start_id, max_new_tokens)
    text_of = _TextFrom(tree, start_id)  # text generated below the start node
    phi_of: dict[int, float] = {start_id: 0.0}
    if potential is not None:
        phi_of[start_id] = evaluate_potential(potential, "")
        if phi_of[start_id] == -math.inf:
            raise ValueError(f"potential {_potential_name(potential)} is -inf on the empty "
                             f"text: every particle would start with weight 0")

    nodes = np.full(n, start_id, dtype=np.int64)
    log_w = np.full(n, phi_of[start_id])
    done = np.zeros(n, dtype=bool)
    record = SMCRecord(n)
    record.add(SMCStep(0, nodes.tolist(), log_w.tolist(), None, done.tolist(), [False] * n,
                       float(n)))
    ancestors = np.arange(n)
    finish = length_reason
    all_zero = False
    constraint_blocked = False
    for step in range(1, last_step + 1):
        if txn.stop_reason():
            finish = txn.stop_reason()
            break
        live = np.flatnonzero(~done & (log_w > -np.inf))
        if live.size == 0:  # resampling kept only finished particles
            finish = "eos"
            break
        parents = list(dict.fromkeys(nodes[live].tolist()))  # identical particles share a row
        # Drawn with the seeded torch generator: a server's numpy rows become tensors.
        dists = session.distributions(tree, parents, settings).to_torch()
        row_of = {p: r for r, p in enumerate(parents)}
        rows = np.array([row_of[p] for p in nodes[live].tolist()], dtype=np.int64)
        if dists.no_legal is not None and bool(dists.no_legal.any()):
            # A constraint allows nothing after these particles: their weight is 0 (the legal
            # mass), and they stay where they are.
            blocked = dists.no_legal.numpy()[rows]
            log_w[live[blocked]] = -np.inf
            live, rows = live[~blocked], rows[~blocked]
            constraint_blocked = True
        tokens = np.empty(live.size, dtype=np.int64)
        child_of: dict[tuple[int, int], int] = {}
        for r in range(len(parents)):
            members = np.flatnonzero(rows == r)
            if members.size == 0:
                continue
            drawn = draw_tokens(dists.probs[r], members.size, gen)
            tokens[members] = drawn.numpy()
            distinct = list(dict.fromkeys(tokens[members].tolist()))
            children = record_children(tree, dists, r, distinct, session.token_bytes)
            child_of.update({(r, t): c.node_id for t, c in zip(distinct, children)})
        new_nodes = np.array([child_of[(r, t)] for r, t in zip(rows.tolist(), tokens.tolist())])
        for node_id in dict.fromkeys(new_nodes.tolist()):
            if node_id not in phi_of:
                phi_of[node_id] = (0.0 if potential is None else
                                   evaluate_potential(potential, text_of(node_id)))
        old_phi = np.array([phi_of[x] for x in nodes[live]])
        new_phi = np.array([phi_of[x] for x in new_nodes])
        log_w[live] += incremental_log_weights(dists, rows, tokens, settings) + (new_phi - old_phi)
        nodes[live] = new_nodes
        done[live] |= np.isin(tokens, eos)
        moved = np.zeros(n, dtype=bool)
        moved[live] = True

        all_zero = bool((log_w == -np.inf).all())
        step_ess = 0.0 if all_zero else ess(log_w)
        record.add(SMCStep(step, nodes.tolist(), log_w.tolist(), ancestors.tolist(),
                           done.tolist(), moved.tolist(), step_ess))
        ancestors = np.arange(n)
        finished = all_zero or not (~done & (log_w > -np.inf)).any()
        if not finished and step < last_step and step_ess < ess_threshold * n:
            # no resampling after the last step: it would only add variance
            log_norm, log_sum = normalize_log_weights(log_w)
            ancestors = resample(scheme, np.exp(log_norm), rng)
            log_w = np.full(n, log_sum - math.log(n))  # every weight := mean: Z stays unbiased
            nodes, done = nodes[ancestors], done[ancestors]
            record.steps[-1].resampled_to = ancestors.tolist()
        _write_step(tree, record.steps[-1])
        txn.step(list(dict.fromkeys(new_nodes.tolist())), ess=record.ess,
                  particles=n)
        if all_zero:
            finish = "constraint" if constraint_blocked else "zero_weight"
            break
        if finished:  # the weight left sits on finished particles
            finish = "eos"
            break

    record.finish(nodes.tolist(), log_w.tolist())
    log_ml = -math.inf if all_zero else float(normalize_log_weights(log_w)[1] - math.log(n))
    node_weights = final_node_weights(record)
    posterior: dict[str, float] = {}
    for node_id, weight in node_weights.items():
        if weight > 0:
            text = text_of(node_id)  # the text generated from the start node
            posterior[text] = posterior.get(text, 0.0) + weight
    posterior = dict(sorted(posterior.items(), key=lambda kv: -kv[1]))
    _write_final(tree, start_id, record, node_weights)
    eos_ids = set(eos.tolist())
    reasons = ["eos" if tree.node(k).token_id in eos_ids and k != start_id
               else finish if finish in ("stopped", "interrupted", "zero_weight", "constraint")
               else length_reason
               for k in node_weights]
    return SMCResult(
        strategy, tree, list(node_weights),
        {"max_new_tokens": max_new_tokens, "seed": seed, "particles": n,
         "ess_threshold": ess_threshold, "resampling": scheme,
         "potential": None if potential is None else _potential_name(potential),
         **settings.to_dict()},
        list(node_weights.values()), finish, reasons, log_ml=log_ml, ess=record.ess,
        resampling_events=record.resampling_events, posterior=posterior,
        particles=list(zip(record.final_node_ids, record.final_log_weights)), record=record,
    )


class _TextFrom:
    """Text generated below ``start_id`` on the path to a node (bytes joined, then decoded,
    as ``TokenTree.completion``), memoised per node."""

    def __init__(self, tree: TokenTree, start_id: int) -> None:
        self.tree, self.start_id = tree, start_id
        self.raw: dict[int, bytes] = {start_id: b""}

    def __call__(self, node_id: int) -> str:
        return self._bytes(node_id).decode("utf-8", errors="replace")

    def _bytes(self, node_id: int) -> bytes:
        if node_id not in self.raw:
            node = self.tree.node(node_id)
            self.raw[node_id] = self._bytes(node.parent_id) + node.token_bytes
        return self.raw[node_id]


def _write_step(tree: TokenTree, step: SMCStep) -> None:
    """SMC meta of the nodes particles moved onto at this step, written as the run goes."""
    for node_id, meta in step_node_meta(step).items():
        tree.update_meta(node_id, meta)


def _write_final(tree: TokenTree, start_id: int, record: SMCRecord,
                 node_weights: dict[int, float]) -> None:
    """``smc_final_weight`` on final particle nodes and ``smc_alive`` on the paths of final
    particles of weight > 0."""
    changed = []
    for node_id, weight in node_weights.items():
        if node_id != start_id:
            tree.update_meta(node_id, {"smc_final_weight": weight})
            changed.append(node_id)
        if weight <= 0:
            continue
        while node_id != start_id:
            tree.update_meta(node_id, {"smc_alive": True})
            changed.append(node_id)
            node_id = tree.node(node_id).parent_id
    if changed:
        tree.notify(list(dict.fromkeys(changed)))
