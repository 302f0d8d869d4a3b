"""What a strategy sees of a model: the :class:`Scorer`.

A :class:`~inferviz.session.Session` is a Scorer (and a view of one, ``s.under(...)`` or
``s.constrained(...)``, is one too). It answers, for tree nodes or token-id sequences, their
next-token distributions, raw and processed (:class:`~inferviz.distributions.Distributions`),
from its backend (this process or a server: the backend is all the scorer sees of where
logits come from); it declares what it can give (``vocab_size``, ``max_positions``, ``top_n``:
None for full distributions, ``num_layers`` and ``early_layer_logits`` locally only,
``server_generation`` over a server) and refuses the rest with ``ServerLacks``; and it holds
the one expand routine (:meth:`Scorer.expand`, :meth:`Scorer.add_top_children`) used by
``Session.expand`` and the request batcher. Strategies use nothing else of a session.
"""

from __future__ import annotations

from typing import Any

from .arrays import Array, namespace
from .backends import NextTokenScores, ServerLacks
from .distributions import Distributions, record_children
from .logit_check import check_logits
from .processors import SamplerSettings, processed_probs
from .step_memory import check_step_memory
from .threads import forward_threads_only
from .tree import Node, TokenTree
from .tree_consistency import check_tree_for_session
from .validate import check_int, check_node_ids


class Scorer:
    """Next-token distributions of tree nodes from ``self.backend``, under this view's
    intervention or constraint, and the expand routine. Subclassed by
    :class:`~inferviz.session.Session`, which sets ``backend``, ``adapter`` (None over a
    server), ``token_bytes``, ``eos_token_ids`` and ``step_memory_budget``."""

    backend: Any
    adapter: Any
    token_bytes: Any
    step_memory_budget: int | None
    # Under an intervention (see under()): the plain scorer and the intervention.
    _plain: "Scorer | None" = None
    _intervention: Any = None
    # Under a constraint (see constrained()): the constraint every step is masked by.
    _constraint: Any = None

    # ------------------------------------------------------------------ capabilities
    @property
    def vocab_size(self) -> int:
        return self.backend.vocab_size

    @property
    def is_remote(self) -> bool:
        return self.backend.is_remote

    @property
    def max_positions(self) -> int:
        """The model's context: the most tokens a sequence may hold (the local engine's, or
        what a server declared)."""
        return self.backend.max_positions

    @property
    def top_n(self) -> int | None:
        """None when every distribution is the whole vocabulary; else the most tokens a row
        holds (a server's top N). Strategies read this capability, not the backend."""
        return self.backend.top_n

    @property
    def num_layers(self) -> int:
        """Layers of the model (local only: ``ServerLacks`` over a server)."""
        self.require_local("reading an early layer", "the model's hidden states",
                           "no hidden states")
        return self.adapter.num_layers

    def server_generation(self, ids: list[int], max_new_tokens: int, sampling: dict[str, Any],
                          seed: int | None, stop_at_eos: bool, constraint: Any = None):
        """Capability of a connected session: the server generates up to ``max_new_tokens``
        after ``ids`` in one request (its own sampler, ``sampling`` in its words, keeping to
        ``constraint`` when given). Yields, token by token as they arrive,
        ``(token_id, logprobs [1, V] (-inf where unknown), approx [1], known)`` where
        ``known`` counts the tokens of the row. Closing the iterator closes the stream.
        ``ServerLacks`` for a local session, or a constraint kind the server cannot take."""
        backend = self.backend
        if not hasattr(backend, "generate"):
            raise ServerLacks("server_side=True runs the generation on an inference server; "
                              "this session is local (use Session.connect)")
        if constraint is not None:
            sampling = {**sampling, **backend.dialect.constraint_fields(constraint)}
        steps = backend.generate(ids, max_new_tokens, sampling, seed, stop_at_eos)

        def scored():
            try:
                for step in steps:
                    top = dict(step.top)
                    top.setdefault(step.token_id, step.logprob)
                    logprobs, approx = backend.dense([top])
                    yield step.token_id, logprobs, approx, len(top)
            finally:
                steps.close()  # the server stops when its stream is closed

        return scored()

    def early_layer_logits(self, tree: TokenTree, node_id: int, layer: int,
                           source: str | None = None):
        """``(distributions, lens_logits)`` after ``node_id``: the model's next-token
        distributions and the residual stream after ``layer`` read through the final norm and
        unembedding (the logit lens), both from one forward (local only). The contrastive
        strategy's early-layer amateur asks for this. ``source`` names the lens logits in a
        NaN / inf error."""
        from .lens import capture_residuals

        self.require_local("reading an early layer", "the model's hidden states",
                           "no hidden states")
        with capture_residuals(self.adapter) as states:
            dists = self.distributions(tree, [node_id])
        import torch  # a local model: torch is loaded already

        with torch.no_grad():
            # one row, no padding: the last column is the residual after the node's token
            hidden = states[layer][0, -1]
            lens = self.adapter.lens_logits(hidden).float().cpu()
        check_logits(lens, source=source or f"layer {layer} through the logit lens")
        return dists, lens

    # ------------------------------------------------------------------ distributions
    def distributions(self, tree: TokenTree, node_ids: list[int],
                      settings: SamplerSettings | None = None,
                      intervention: Any = None) -> Distributions:
        """Next-token distributions after each node (one batched forward, cached prefixes).
        ``intervention`` (a :class:`~inferviz.interventions.Steer`, ``Ablate`` or ``Patch``):
        the distributions of the model under it, from each node's position on, with each
        row's divergence from the plain model in ``row_meta`` (docs/why.md)."""
        check_tree_for_session(tree, self)  # a loaded tree, or another model's: once
        seqs = [tree.token_ids(n) for n in node_ids]
        if self._constraint is not None:
            from .constraint_masks import tracker_for

            legal = tracker_for(self, tree, self._constraint).legal(list(node_ids))
            return self.sequence_distributions(seqs, list(node_ids), settings, legal=legal)
        if intervention is None:
            return self.sequence_distributions(seqs, list(node_ids), settings)
        groups: dict[int, list[int]] = {}  # rows by branch position: one backend each
        for row, seq in enumerate(seqs):
            groups.setdefault(len(seq) - 1, []).append(row)
        parts = {}
        for position, rows in groups.items():
            view = self.under(intervention, position)
            parts[position] = view.sequence_distributions(
                [seqs[r] for r in rows], [node_ids[r] for r in rows], settings)
        if len(parts) == 1:
            return next(iter(parts.values()))
        from .distributions import concat_rows

        return concat_rows([(rows, parts[p]) for p, rows in groups.items()], len(seqs))

    def under(self, intervention: Any, branch_position: int) -> "Scorer":
        """This session as seen by a branch growing under ``intervention`` from the node at
        ``branch_position``: the same model, tokenizer and settings, its distributions those of
        the intervened model (over a KV cache of their own), each recorded child marked with
        the intervention and its divergence from the plain model. Strategies run on it as on
        the session itself."""
        import copy

        from .interventions import check_intervention

        intervention = check_intervention(intervention)
        self.require_local("interventions", "to change the model's activations inside its "
                           "forward", "no hooks, no activations")
        if self._plain is not None:
            raise ValueError("this session already runs under an intervention; interventions "
                             "do not stack: grow the branch from the plain session")
        from .backends.intervened import backend_for

        view = copy.copy(self)
        view.backend = backend_for(self, intervention, branch_position)
        view._plain = self
        view._intervention = intervention
        return view

    def constrained(self, constraint: Any) -> "Scorer":
        """This session as seen by a branch growing under ``constraint`` (``iv.Regex``,
        ``iv.JSONSchema``, ``iv.Grammar``, ``iv.Choice``): every next-token distribution is
        the model restricted to the tokens the constraint allows after the node (masks by
        llguidance), each recorded child marked with the constraint and what it cut
        (docs/constraints.md). Strategies run on it as on the session itself."""
        import copy

        from .constraint_masks import llg_tokenizer
        from .constraints import check_constraint

        constraint = check_constraint(constraint)
        if constraint is None:
            return self
        if self._constraint is not None and self._constraint.key != constraint.key:
            raise ValueError(f"this session already runs under the constraint "
                             f"{self._constraint.label}; constraints do not stack")
        if self._plain is not None:
            raise ValueError("constraint and intervention together are not supported: grow "
                             "the intervened branch, or the constrained one, from the plain "
                             "session")
        llg_tokenizer(self)  # a session without a usable tokenizer says so now
        view = copy.copy(self)
        view._constraint = constraint
        return view

    def _record_constraint(self, tree: TokenTree, constraint: Any) -> None:
        """Write what the constraint is into the tree's meta (saved with it; None: nothing)."""
        if constraint is None:
            return
        _record_definition(tree, "constraints", constraint,
                           {"label": constraint.label, "kind": constraint.kind})

    def require_local(self, what: str, needs: str, lacks: str) -> None:
        """``ServerLacks`` unless the model runs in this process: ``what`` needs ``needs``,
        which a server (returning log-probabilities only, ``lacks``) cannot give. A closed
        session raises its own RuntimeError on first use of the model."""
        if self.adapter is None:
            raise ServerLacks(f"{what} needs {needs}, and the server behind this session "
                              f"({self.backend!r}) returns only log-probabilities ({lacks}); "
                              f"load the model locally with Session.from_pretrained to use "
                              f"{what}")

    def _record_intervention(self, tree: TokenTree, intervention: Any) -> None:
        """Write what the intervention is into the tree's meta (saved with it)."""
        _record_definition(tree, "interventions", intervention, {"label": intervention.label})

    def sequence_distributions(self, seqs: list[list[int]], parent_ids: list[int],
                               settings: SamplerSettings | None = None,
                               scores: NextTokenScores | None = None,
                               legal: Array | None = None) -> Distributions:
        """Next-token distributions after each token-id sequence (rows may come from several
        trees: the request batcher uses this). ``scores``: already computed for ``seqs`` (shared
        with other rows); None asks the backend.
        ``legal`` [B, V] bool: the tokens this session's constraint allows after each row."""
        settings = settings or SamplerSettings()
        if scores is None:
            for seq in seqs:
                self.check_context(seq)
            check_step_memory(self, len(seqs), what=f"a step over {len(seqs)} sequences")
            scores = self.backend.next_token(seqs)
        plain = None
        if self._plain is not None:  # intervened: the plain model on the same paths, too
            plain = self._plain.backend.next_token(seqs).scores
            check_logits(plain, "node", parent_ids)
        check_logits(scores.scores, "node", parent_ids)
        xp = namespace(scores.scores)  # torch for a local model, numpy for a server's rows
        input_ids = None
        if settings.repetition_penalty is not None:
            width = max(len(s) for s in seqs)
            input_ids = xp.int_rows([[s[0]] * (width - len(s)) + s for s in seqs])
        if legal is not None:
            from .constraint_masks import constrained_distributions

            return constrained_distributions(self._constraint, list(parent_ids), scores,
                                             settings, input_ids, legal, self.token_bytes)
        probs = processed_probs(scores.scores, settings, input_ids)
        if scores.kind == "logits":
            dists = Distributions.from_logits(list(parent_ids), scores.scores, probs)
        else:
            dists = Distributions.from_logprobs(list(parent_ids), scores.scores, probs,
                                                scores.approx)
        if plain is not None:
            from .interventions import divergence

            dists.plain_logprobs = xp.log_softmax(xp.float32(plain))
            dists.row_meta = divergence(self._intervention, dists.logprobs,
                                        dists.plain_logprobs)
        return dists

    def check_context(self, seq: list[int]) -> None:
        """ValueError if a node with these token ids cannot be expanded (context full)."""
        if len(seq) >= self.backend.max_positions:
            raise ValueError(f"node at {len(seq)} tokens reached the model's context "
                             f"({self.backend.max_positions}); cannot expand further")

    def expand(self, tree: TokenTree, node_ids: int | list[int], k: int = 5,
               temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
               min_p: float | None = None, intervention: Any = None,
               constraint: Any = None, **processors: Any) -> list[Node]:
        """Add the ``k`` most likely children (by raw probability) of each node; ``prob`` of each
        child is its probability under the sampler settings given (0 if they filter it).

        Several node ids go through one batched forward; only uncached tokens are computed.
        ``intervention`` (``Steer``, ``Ablate``, ``Patch``: :mod:`inferviz.interventions`): the
        children are those of the intervened model, a sibling branch of the plain children
        marked with the intervention and their KL divergence from the plain distribution.
        ``constraint`` (``iv.Regex``, ``iv.JSONSchema``, ``iv.Grammar``, ``iv.Choice``): the
        ``k`` most likely *legal* children, a branch of their own recording the legal mass at
        the parent, the best illegal tokens and the margin (docs/constraints.md); a node after
        which the constraint allows no token raises ``ConstraintError``.
        Returns the children, parent by parent, best first. The tree is unchanged on error."""
        from .constraints import check_constraint

        constraint = _one_branch_kind(intervention, check_constraint(constraint))
        if constraint is not None:
            view = self.constrained(constraint)
            children = view.expand(tree, node_ids, k=k, temperature=temperature, top_k=top_k,
                                   top_p=top_p, min_p=min_p, **processors)
            self._record_constraint(tree, constraint)
            return children
        ids = check_node_ids(tree, node_ids)
        settings = self.expand_settings(k, temperature=temperature, top_k=top_k, top_p=top_p,
                                        min_p=min_p, **processors)
        check_step_memory(self, len(ids), new_nodes=len(ids) * k,
                          what=f"expand of {len(ids)} node(s) with k={k}",
                          advice="expand fewer nodes at once or lower k")
        tree.check_id_room(len(ids) * k)
        with forward_threads_only(self):  # the small ops after the forward on one thread
            dists = self.distributions(tree, ids, settings, intervention=intervention)
            children = self.add_top_children(tree, dists, ids, k)
        if intervention is not None:
            self._record_intervention(tree, intervention)
        return children

    def expand_settings(self, k: Any, **settings: Any) -> SamplerSettings:
        """Check ``k`` (children a node gets: 1 .. vocab_size) and return the sampler settings
        of an expansion (``temperature``, ``top_k``, ...), for :meth:`expand` and the request
        batcher alike. ValueError naming the argument otherwise."""
        check_int("k", k, 1, self.vocab_size)
        return SamplerSettings(**settings)

    def add_top_children(self, tree: TokenTree, dists: Distributions, node_ids: list[int],
                         k: int, rows: list[int] | None = None) -> list[Node]:
        """Record the ``k`` most likely children of each node and notify the tree's
        listeners: the one expand step of :meth:`expand` and the request batcher. Row
        ``rows[i]`` of ``dists`` (default: row ``i``) holds ``node_ids[i]``. All or nothing: a
        node the constraint leaves no token raises ``ConstraintError``, and a token whose bytes
        cannot be read (a server failing) raises, before any child is added. Returns the
        children, parent by parent, best first."""
        rows = list(range(len(node_ids))) if rows is None else rows
        dead = [node for node, row in zip(node_ids, rows) if not dists.has_choice(row)]
        if dead:
            from .constraint_masks import no_token_error

            raise no_token_error(self._constraint, dead)
        tops = [dists.top_k(row, k) for row in rows]
        for tok in {int(t) for top in tops for t in top}:
            self.token_bytes(tok)  # every token's bytes first (a server may fail): all or none
        children: list[Node] = []
        for row, top in zip(rows, tops):
            children += record_children(tree, dists, row, top, self.token_bytes)
        tree.notify([c.node_id for c in children])
        return children


def _one_branch_kind(intervention: Any, constraint: Any) -> Any:
    """``constraint``, unless an intervention is given too (a branch is grown under one of
    them): ValueError then."""
    if constraint is not None and intervention is not None:
        raise ValueError("constraint and intervention together are not supported; give one "
                         "of them")
    return constraint


def _record_definition(tree: TokenTree, meta_key: str, item: Any,
                       header: dict[str, Any]) -> None:
    """Keep ``item``'s definition (``header`` and its ``spec()``) under ``tree.meta[meta_key]``
    by its key, once."""
    known = dict(tree.meta.get(meta_key) or {})
    if item.key not in known:
        known[item.key] = {**header, **item.spec()}
        tree.meta[meta_key] = known
