"""Token masks of a constraint at tree nodes, and the numbers a constrained step records.

A :class:`ConstraintTracker` follows one constraint through one tree: the llguidance matcher at
a node is its parent's, advanced by the node's token, from the constraint's *anchor* (the
nearest ancestor not grown under this constraint: there the matcher is fresh). Matchers and
masks are cached per node (a node is one constraint state); the masks of a whole batched level
are computed at once by llguidance's parallel executor.

:func:`constrain_rows` turns raw next-token log-probabilities into the constrained ones:

    legal        [B, V] bool   tokens the constraint allows after each node
    log_legal_mass [B]         log of the raw probability mass of the legal tokens
    constrained  [B, V]        raw log-prob - log_legal_mass on legal tokens, -inf elsewhere
                               (the model restricted to the constraint: p(x | legal))

Masks are numpy arrays (llguidance's numpy bitmasks); the numbers of a step are computed in the
kind of the model's scores (:mod:`inferviz.arrays`): torch locally, numpy over a server.
"""

from __future__ import annotations

import math
import threading
import weakref
from typing import Any

import numpy as np

from .arrays import Array, namespace
from .constraints import Constraint, ConstraintError

_BITS = np.arange(32, dtype=np.int32)
_TRACKERS: "weakref.WeakKeyDictionary[Any, dict[str, ConstraintTracker]]" = \
    weakref.WeakKeyDictionary()
_LOCK = threading.Lock()
CUT_FLOOR = 0.005  # illegal tokens this likely (raw) are shown as cut even below the best legal


def llg_tokenizer(session: Any):
    """The llguidance tokenizer of ``session`` (built once: about 1 s for a 50k vocabulary),
    with the session's end-of-sequence ids and the width of its logits."""
    cached = getattr(session, "_llg_tokenizer", None)
    if cached is not None:
        return cached
    import llguidance.hf

    tokenizer = session.tokenizer
    if tokenizer is None or not getattr(tokenizer, "is_fast", False):
        raise ConstraintError(
            f"constraint needs a local fast (Rust) tokenizer for its token masks; the session "
            f"{session.name!r} has {type(tokenizer).__name__}: load the model with "
            f"Session.from_pretrained, or give Session.connect a tokenizer=")
    eos = sorted(session.eos_token_ids) or None
    try:
        built = llguidance.hf.from_tokenizer(tokenizer, n_vocab=session.vocab_size,
                                             eos_token=eos)
    except (ValueError, RuntimeError) as exc:
        raise ConstraintError(f"constraint needs token masks, and llguidance cannot read the "
                              f"tokenizer of {session.name!r}: {exc}") from None
    session._llg_tokenizer = built
    return built


def tracker_for(session: Any, tree: Any, constraint: Constraint) -> "ConstraintTracker":
    """The tracker of ``constraint`` on ``tree`` (made on first use, kept while the tree
    lives)."""
    with _LOCK:
        per_tree = _TRACKERS.setdefault(tree, {})
        tracker = per_tree.get(constraint.key)
        if tracker is None:
            tracker = ConstraintTracker(tree, constraint, llg_tokenizer(session),
                                        session.vocab_size, sorted(session.eos_token_ids))
            per_tree[constraint.key] = tracker
        return tracker


class ConstraintTracker:
    """Matchers and masks of one constraint over one tree; see the module doc."""

    def __init__(self, tree: Any, constraint: Constraint, tokenizer: Any,
                 vocab_size: int, eos_ids: list[int]) -> None:
        import llguidance

        self.tree = tree
        self.constraint = constraint
        self.vocab_size = vocab_size
        self._tokenizer = tokenizer
        self._grammar = constraint.llg_grammar()
        self._llg = llguidance
        # node id -> (parent id, token id, matcher) and node id -> (parent, token, mask row):
        # the path is kept to notice a node id reused after a rolled-back run.
        self._matchers: dict[int, tuple[Any, Any, Any]] = {}
        self._masks: dict[int, tuple[Any, Any, np.ndarray]] = {}
        self._executor = llguidance.LLExecutor()
        self._eos = list(eos_ids)
        self._eos_set = set(eos_ids)
        self.mask_seconds = 0.0  # time spent computing masks (benchmarks)
        self.masks_computed = 0

    def on_branch(self, node_id: int) -> bool:
        """True when the node was grown under this constraint."""
        return self.tree.node(node_id).meta.get("constraint_key") == self.constraint.key

    def _signature(self, node_id: int) -> tuple[Any, Any]:
        node = self.tree.node(node_id)
        return node.parent_id, node.token_id

    def matcher(self, node_id: int):
        """The matcher after ``node_id``'s token (fresh at the anchor)."""
        sig = self._signature(node_id)
        cached = self._matchers.get(node_id)
        if cached is not None and cached[:2] == sig:
            return cached[2]
        if self.on_branch(node_id):
            node = self.tree.node(node_id)
            matcher = self.matcher(node.parent_id).deep_copy()
            matcher.consume_token(int(node.token_id))
        else:
            matcher = self._llg.LLMatcher(self._tokenizer, self._grammar, log_level=0)
        if matcher.is_error():
            reason = matcher.get_error().strip().splitlines()[0]
            raise ConstraintError(f"constraint {self.constraint.label} failed at node "
                                  f"{node_id}: {reason}")
        self._matchers[node_id] = (*sig, matcher)
        return matcher

    def legal(self, node_ids: list[int]) -> np.ndarray:
        """[B, V] bool (numpy): the tokens the constraint allows after each node (one parallel
        mask computation for the rows not cached)."""
        import time

        import llguidance.numpy as llg_numpy

        rows: list[np.ndarray | None] = []
        todo: list[int] = []
        for i, node_id in enumerate(node_ids):
            cached = self._masks.get(node_id)
            if cached is not None and cached[:2] == self._signature(node_id):
                rows.append(cached[2])
            else:
                rows.append(None)
                todo.append(i)
        if todo:
            start = time.perf_counter()
            matchers = [(self.matcher(node_ids[i]), j) for j, i in enumerate(todo)]
            bitmask = llg_numpy.allocate_token_bitmask(len(todo), self.vocab_size)
            if len(todo) == 1:
                llg_numpy.fill_next_token_bitmask(matchers[0][0], bitmask, 0)
            else:
                llg_numpy.fill_next_token_bitmask_par(self._executor, matchers, bitmask)
            self.mask_seconds += time.perf_counter() - start
            self.masks_computed += len(todo)
            for j, i in enumerate(todo):
                node = self.tree.node(node_ids[i])
                if self.on_branch(node_ids[i]) and node.token_id in self._eos_set:
                    bitmask[j] = 0  # after the end of sequence nothing is legal
                elif not matchers[j][0].is_accepting():
                    # llguidance lets a stuck matcher stop (EOS allowed): here the text is
                    # not a match, so the end of sequence is not legal either.
                    self._clear(bitmask[j], self._eos)
                rows[i] = bitmask[j].copy()
                self._masks[node_ids[i]] = (*self._signature(node_ids[i]), rows[i])
        packed = np.stack(rows)  # type: ignore[arg-type]
        bits = (packed[..., None] >> _BITS) & 1
        return bits.reshape(len(node_ids), -1)[:, : self.vocab_size].astype(bool)

    @staticmethod
    def _clear(packed: np.ndarray, token_ids: list[int]) -> None:
        """Clear the bits of ``token_ids`` in one packed mask row (int32 words)."""
        for tok in token_ids:
            word, bit = divmod(tok, 32)
            if word < packed.size:
                packed[word] &= np.int32(~(1 << bit) if bit < 31 else 0x7FFFFFFF)


def no_token_message(constraint: Constraint, where: str) -> str:
    """What to say when ``constraint`` allows no token after ``where``."""
    return (f"the constraint {constraint.label} allows no token after {where} (the text there "
            f"is complete, or cannot be continued)")


def no_token_error(constraint: Constraint, node_ids: list[int]) -> ConstraintError:
    """The error of an expansion the constraint leaves nothing to add (nothing was added)."""
    return ConstraintError(f"{no_token_message(constraint, f'node(s) {node_ids}')}; nothing "
                           f"was added")


def constrain_rows(raw_logprobs: Array, legal: Array) -> tuple[Array, Array, Array]:
    """``(constrained, log_legal_mass, no_legal)`` from raw log-probabilities [B, V] and the
    legal mask [B, V] (see the module doc). ``no_legal`` [B] marks rows where no token is
    legal: their constrained row is all -inf and their log legal mass -inf."""
    xp = namespace(raw_logprobs)
    masked = xp.masked_fill(raw_logprobs, ~legal, -math.inf)
    log_mass = xp.logsumexp(masked)
    no_legal = ~xp.isfinite(log_mass)
    constrained = masked - xp.masked_fill(log_mass, no_legal, 0.0)[..., None]
    return constrained, log_mass, no_legal


def constraint_row_meta(constraint: Constraint, raw_logprobs: Array,
                        constrained: Array, log_mass: float, token_bytes: Any,
                        cut_top: int = 3) -> dict[str, Any]:
    """What every child of one constrained row records: the constraint, the log legal mass
    at the parent, the model's best token when it was illegal, the margin (nats) between
    the best token and the best legal one, and the model's likeliest illegal tokens
    (``cut_alternatives``: ``[token_id, token, raw_logprob]``, best first, at most
    ``cut_top``: those that outranked the best legal token, or had raw probability
    >= ``CUT_FLOOR``)."""
    from .tree_consistency import readable_token

    best = int(raw_logprobs.argmax())
    best_legal = int(constrained.argmax())
    margin = float(raw_logprobs[best] - raw_logprobs[best_legal])
    meta: dict[str, Any] = {
        "constraint": constraint.label,
        "constraint_key": constraint.key,
        "log_legal_mass": log_mass,
        "constraint_margin": max(margin, 0.0),
        "best_illegal_token_id": None,
        "best_illegal_token": None,
    }
    xp = namespace(raw_logprobs)
    illegal = xp.masked_fill(raw_logprobs, xp.isfinite(constrained), -math.inf)
    n = min(cut_top, int(xp.isfinite(illegal).sum()))
    cut = []
    if n:
        values, ids = xp.topk(illegal, n)
        best_legal_lp = float(raw_logprobs[best_legal])
        for value, tok in zip(values.tolist(), ids.tolist()):
            if value > best_legal_lp or value >= math.log(CUT_FLOOR):
                cut.append([int(tok), readable_token(token_bytes(int(tok))), float(value)])
    if best != best_legal and not bool(xp.isfinite(constrained[best])):
        meta["best_illegal_token_id"] = best
        meta["best_illegal_token"] = readable_token(token_bytes(best))
    meta["cut_alternatives"] = cut
    return meta


def constrained_distributions(constraint: Constraint, parent_ids: list[int], scores: Any,
                              settings: Any, input_ids: Array | None,
                              legal: Array, token_bytes: Any):
    """The :class:`~inferviz.distributions.Distributions` of a constrained step: the processors
    run on the model's scores with the illegal tokens masked (so top-p is a share of the
    legal mass), ``logits``/``logprobs`` are the constrained log-probabilities and
    ``raw_logprobs`` the model's own; each row's :func:`constraint_row_meta` goes to its
    children. Rows with no legal token get probability 0 everywhere (``no_legal``)."""
    from .distributions import Distributions
    from .processors import processed_probs

    xp = namespace(scores.scores)
    values = xp.float32(scores.scores)
    raw = xp.log_softmax(values) if scores.kind == "logits" else values
    legal = xp.asarray(legal)  # numpy masks; tensors for a local model's scores
    if tuple(legal.shape) != tuple(raw.shape):
        raise ValueError(f"constraint mask {tuple(legal.shape)} does not match the scores "
                         f"{tuple(raw.shape)}")
    constrained, log_mass, no_legal = constrain_rows(raw, legal)
    # Processors see the model's scores with illegal tokens at -inf (a row with nothing legal
    # keeps its own scores here: its probabilities are zeroed below).
    keep = legal | no_legal[..., None]
    probs = processed_probs(xp.masked_fill(values, ~keep, -math.inf), settings, input_ids)
    probs[no_legal] = 0.0
    entropy = -(xp.exp(raw) * xp.neginf_to(raw, 0.0)).sum(-1)
    row_meta = []
    for row in range(len(parent_ids)):
        if bool(no_legal[row]):
            row_meta.append({"constraint": constraint.label, "constraint_key": constraint.key})
        else:
            row_meta.append(constraint_row_meta(constraint, raw[row], constrained[row],
                                                float(log_mass[row]), token_bytes))
    return Distributions(parent_ids, constrained, constrained, probs, entropy, scores.approx,
                         row_meta, None, raw, legal, log_mass, no_legal)
