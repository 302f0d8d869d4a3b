"""Attribution: why a node's token, in terms of its context (the prompt and the path above it).

The target is the node's raw log-probability, ``log_softmax(logits at the parent's last
position)[token]``, or with a contrast token ``c`` the difference
``log p(token) - log p(c)`` at the same position ("why Paris and not London").

- ``input_x_gradient`` and ``integrated_gradients`` go through captum (``InputXGradient``,
  ``IntegratedGradients``) on the input embeddings: the model is run with ``inputs_embeds``
  (the embedding module's own output, so Gemma's scaling is kept). The per-token score is the
  **sum over the embedding dimension** of the attribution (so integrated-gradient scores add up
  to ``target - baseline_target``, completeness); ``scores_l2`` is the L2 norm over it (always
  >= 0, no sign). The integrated-gradient baseline puts the pad token's embedding
  (``baseline="pad"``, the default; EOS where the tokenizer has no pad token) or zeros
  (``"zero"``) at every position but the first, which keeps its own embedding
  (``keep_first=True``): the first position is the model's attention sink, and moving it
  makes the path integrand so rough that 64 steps miss completeness by several times the
  target (measured in docs/why.md); its score is then 0. Gauss-Legendre with ``steps`` points.
- ``attention`` (the last layer's attention weights from the position that predicts the token,
  mean over heads) and ``attention_rollout`` (Abnar & Zuidema 2020: per layer the head-mean
  ``A``, then ``0.5 A + 0.5 I`` rows renormalised, multiplied from the first layer up) read the
  model's attention weights under eager attention (captum has no such method). They do not
  depend on the target, so take no contrast.

One forward (and backward) of the path only: memory grows with the path, not with the tree.
Results are cached per session and tree, keyed by ``(node_id, method, contrast token, steps,
baseline, keep_first)``, and never invalidated (a node's context never changes). The tree itself, and its
file, are not touched. pandas and the views are imported only when asked for.
"""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from .logit_check import check_logits
from .tree import Node, TokenTree, readable_token
from .validate import check_int

GRADIENT_METHODS = ("input_x_gradient", "integrated_gradients")
ATTENTION_METHODS = ("attention", "attention_rollout")
METHODS = GRADIENT_METHODS + ATTENTION_METHODS
BASELINES = ("zero", "pad")
MAX_STEPS = 4096
# Integrated gradients: rows of the interpolation path per forward/backward when batch_size is
# None, so that one batch holds about this many tokens (memory stays bounded on long paths).
TOKENS_PER_BATCH = 1024

_CACHE: "weakref.WeakKeyDictionary[Any, weakref.WeakKeyDictionary]" = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


@dataclass
class AttributionResult:
    """Attribution of node ``node_id``'s token to the ``P`` tokens of its context.

    input_ids         [P] int    context token ids (prompt, then the path to the parent)
    input_tokens      [P] str    their readable text
    context_node_ids  [P]        the node holding each path token; None for prompt positions
    scores            float [P]  per-token score: sum over the embedding dimension of the
                                 attribution (attention methods: the attention weight, >= 0)
    scores_l2         float [P]  L2 norm over the embedding dimension (NaN for attention)
    target            float      f(input): the node's raw log-probability (nats), minus the
                                 contrast token's when there is one
    baseline_target   float      f(baseline) for integrated gradients, else None
    convergence_delta float      captum's ``sum(scores) - (target - baseline_target)``, or None
    """

    node_id: int
    method: str
    token_id: int
    token: str
    input_ids: list[int]
    input_tokens: list[str]
    context_node_ids: list[int | None]
    scores: np.ndarray
    scores_l2: np.ndarray
    target: float
    contrast_token_id: int | None = None
    contrast_token: str | None = None
    steps: int | None = None
    baseline: str | None = None
    keep_first: bool | None = None
    baseline_target: float | None = None
    convergence_delta: float | None = None
    seconds: float = 0.0

    def __post_init__(self) -> None:
        positions = len(self.input_ids)
        for name in ("scores", "scores_l2"):
            if getattr(self, name).shape != (positions,):
                raise ValueError(f"AttributionResult.{name} has shape "
                                 f"{getattr(self, name).shape}, expected ({positions},)")
        if len(self.input_tokens) != positions or len(self.context_node_ids) != positions:
            raise ValueError("AttributionResult: input_tokens / context_node_ids do not match "
                             "input_ids")

    @property
    def completeness_error(self) -> float | None:
        """Integrated gradients: ``|sum(scores) - (target - baseline_target)|`` relative to
        ``|target - baseline_target|`` (0 for an exact path integral; more steps lower it);
        None for the other methods."""
        if self.baseline_target is None:
            return None
        difference = self.target - self.baseline_target
        error = abs(float(self.scores.sum()) - difference)
        return error / abs(difference) if difference else float("inf") if error else 0.0

    @property
    def prompt_length(self) -> int:
        return sum(1 for n in self.context_node_ids if n is None)

    def top(self, n: int = 5) -> list[int]:
        """Positions of the ``n`` highest scores, highest first."""
        check_int("n", n, 1)
        return [int(p) for p in np.argsort(-self.scores, kind="stable")[:n]]

    def to_pandas(self):
        """One row per context token; columns in docs/dataframes.md."""
        import pandas as pd

        positions = len(self.input_ids)
        prompt_length = self.prompt_length

        def repeat(value: Any) -> list[Any]:
            return [value] * positions

        return pd.DataFrame({
            "node_id": repeat(self.node_id),
            "position": np.arange(positions),
            "context_node_id": pd.array(self.context_node_ids, dtype="Int64"),
            "in_prompt": np.arange(positions) < prompt_length,
            "token_id": np.asarray(self.input_ids, dtype=np.int64),
            "token": list(self.input_tokens),
            "score": self.scores.astype(np.float64),
            "score_l2": self.scores_l2.astype(np.float64),
            "method": repeat(self.method),
            "target_token_id": repeat(self.token_id),
            "target_token": repeat(self.token),
            "target": repeat(self.target),
            "contrast_token_id": pd.array(repeat(self.contrast_token_id), dtype="Int64"),
            "contrast_token": repeat(self.contrast_token),
            "steps": pd.array(repeat(self.steps), dtype="Int64"),
            "baseline": repeat(self.baseline),
            "keep_first": pd.array(repeat(self.keep_first), dtype="boolean"),
        })

    def to_html(self, path: Any = None) -> Any:
        """The shaded context as standalone HTML; written to ``path`` when given."""
        from .widgets.views.attribution_view import attribution_html

        if path is None:
            return attribution_html(self)
        from pathlib import Path

        from . import files

        files.write_text(Path(path), attribution_html(self, full_page=True))
        return Path(path)

    def widget(self):
        """The shaded context as a notebook widget (JupyterLab, Voila)."""
        from .widgets.views.attribution_view import AttributionView

        return AttributionView(self)

    def _repr_html_(self) -> str:
        from .widgets.views.attribution_view import attribution_html

        return attribution_html(self)


def attribute(session: Any, tree: TokenTree, node_id: int, method: str = "input_x_gradient",
              contrast: int | str | None = None, contrast_token_id: int | None = None,
              steps: int = 64, baseline: str = "pad", keep_first: bool = True,
              batch_size: int | None = None) -> AttributionResult:
    """Attribute node ``node_id``'s token to its context; see the module doc and docs/why.md.

    ``contrast``: a sibling node id or one token's text; ``contrast_token_id``: a token id.
    ``steps``, ``baseline``, ``keep_first``: integrated gradients only (ignored, but checked,
    otherwise).
    ``batch_size``: rows of the integrated-gradient path per forward (None: about
    ``TOKENS_PER_BATCH`` tokens)."""
    session.require_local("attribution", "gradients through the model's weights and its "
                          "attention weights", "no weights, no gradients")
    node = _check_node(tree, node_id)
    method = _check_method(method)
    check_int("steps", steps, 1, MAX_STEPS)
    if not isinstance(baseline, str) or baseline not in BASELINES:
        raise ValueError(f"baseline must be one of {', '.join(map(repr, BASELINES))}; got "
                         f"{baseline!r}")
    if not isinstance(keep_first, bool):
        raise TypeError(f"keep_first must be a bool; got {keep_first!r}")
    if batch_size is not None:
        check_int("batch_size", batch_size, 1)
    from .tree_consistency import check_tree_for_session

    check_tree_for_session(tree, session)
    contrast_id = _resolve_contrast(session, tree, node, contrast, contrast_token_id)
    if contrast_id is not None and method in ATTENTION_METHODS:
        raise ValueError(f"contrast applies to the gradient methods ({', '.join(GRADIENT_METHODS)})"
                         f"; method {method!r} reads attention weights, which do not depend on "
                         f"the target token")
    is_ig = method == "integrated_gradients"
    ig = (steps, baseline, keep_first) if is_ig else (None, None, None)
    key = (node.node_id, method, contrast_id, *ig)
    cache = _cache_of(session, tree)
    hit = cache.get(key)
    if hit is not None:
        return hit
    result = _compute(session, tree, node, method, contrast_id, *ig, batch_size)
    with _CACHE_LOCK:
        return cache.setdefault(key, result)


def cached(session: Any, tree: TokenTree, node_id: int | None = None) -> list[AttributionResult]:
    """The results already computed for ``tree`` by ``session`` (of one node, or all), in the
    order they were computed: what a view or an export shows without computing anything."""
    with _CACHE_LOCK:
        per_session = _CACHE.get(session)
        results = list((per_session.get(tree) or {}).values()) if per_session is not None else []
    return [r for r in results if node_id is None or r.node_id == node_id]


def _cache_of(session: Any, tree: TokenTree) -> dict:
    with _CACHE_LOCK:
        per_session = _CACHE.setdefault(session, weakref.WeakKeyDictionary())
        return per_session.setdefault(tree, {})


# ------------------------------------------------------------------ arguments
def _check_node(tree: Any, node_id: Any) -> Node:
    if not isinstance(tree, TokenTree):
        raise TypeError(f"tree must be an inferviz TokenTree; got {type(tree).__name__}")
    if isinstance(node_id, bool) or not isinstance(node_id, int):
        raise TypeError(f"node_id must be an int (a node of the tree); got {node_id!r}")
    if node_id not in tree:
        raise ValueError(f"node_id {node_id} is not a node of this tree (it has {len(tree)} "
                         f"nodes; see tree.to_pandas().node_id)")
    node = tree.node(node_id)
    if node.is_root:
        raise ValueError(f"node_id {node_id} is the root (the prompt): it has no token to "
                         f"attribute; pass a generated node (depth >= 1)")
    return node


def _check_method(method: Any) -> str:
    if not isinstance(method, str):
        raise TypeError(f"method must be a str, one of {', '.join(METHODS)}; got {method!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    return method


def _resolve_contrast(session: Any, tree: TokenTree, node: Node, contrast: Any,
                      contrast_token_id: Any) -> int | None:
    """The contrast token id, from a sibling node id, a token's text or a token id."""
    if contrast is not None and contrast_token_id is not None:
        raise TypeError("give contrast (a sibling node id or a token's text) or "
                        "contrast_token_id, not both")
    siblings = [n.node_id for n in tree.children(node.parent_id) if n.node_id != node.node_id]
    if contrast_token_id is not None:
        token_id = check_int("contrast_token_id", contrast_token_id, 0, session.vocab_size - 1)
    elif contrast is None:
        return None
    elif isinstance(contrast, str):
        ids = session.encode(contrast, add_special_tokens=False) if contrast else []
        if len(ids) != 1:
            raise ValueError(f"contrast {contrast!r} is {len(ids)} tokens {ids} under this "
                             f"tokenizer, not one; give one token's text, a sibling node id "
                             f"({siblings or 'none yet'}) or contrast_token_id=")
        token_id = ids[0]
    elif isinstance(contrast, int) and not isinstance(contrast, bool):
        other = tree.node(contrast) if contrast in tree else None
        if other is None or other.parent_id != node.parent_id or contrast == node.node_id:
            raise ValueError(f"contrast {contrast} is not a sibling node of node {node.node_id} "
                             f"(its siblings: {siblings or 'none yet'}); give a sibling node id, "
                             f"one token's text, or contrast_token_id={contrast} for that "
                             f"token id")
        token_id = int(other.token_id)
    else:
        raise TypeError(f"contrast must be a sibling node id (int), one token's text (str) or "
                        f"None; got {contrast!r} ({type(contrast).__name__})")
    if token_id == node.token_id:
        raise ValueError(f"contrast is node {node.node_id}'s own token (id {token_id}, "
                         f"{node.token!r}): the difference would be 0; contrast with another "
                         f"token")
    return token_id


# ------------------------------------------------------------------ computing
def _compute(session: Any, tree: TokenTree, node: Node, method: str, contrast_id: int | None,
             steps: int | None, baseline: str | None, keep_first: bool | None,
             batch_size: int | None) -> AttributionResult:
    start = time.perf_counter()
    path = tree.path(node.parent_id)
    ids = tree.token_ids(node.parent_id)
    context_nodes: list[int | None] = [None] * len(tree.prompt_ids)
    context_nodes += [n.node_id for n in path[1:]]
    baseline_target = delta = None
    if method in GRADIENT_METHODS:
        target, scores, scores_l2, baseline_target, delta = _gradient_attribution(
            session, node, ids, method, contrast_id, steps, baseline, keep_first, batch_size)
    else:
        target, scores = _attention_attribution(session, node, ids,
                                                rollout=method == "attention_rollout")
        scores_l2 = np.full(len(ids), np.nan)
    text = lambda t: readable_token(session.token_bytes(int(t)))  # noqa: E731
    return AttributionResult(
        node_id=node.node_id, method=method, token_id=int(node.token_id), token=node.token,
        input_ids=list(ids), input_tokens=[text(t) for t in ids], context_node_ids=context_nodes,
        scores=scores, scores_l2=scores_l2, target=target, contrast_token_id=contrast_id,
        contrast_token=None if contrast_id is None else text(contrast_id), steps=steps,
        baseline=baseline, keep_first=keep_first, baseline_target=baseline_target, convergence_delta=delta,
        seconds=time.perf_counter() - start)


def _target_fn(model: Any, token_id: int,
               contrast_id: int | None) -> Callable[[torch.Tensor], torch.Tensor]:
    """``inputs_embeds [B, P, d] -> [B]``: log p(token) (minus log p(contrast)) after the last
    position, float32."""

    def target(inputs_embeds: torch.Tensor) -> torch.Tensor:
        mask = torch.ones(inputs_embeds.shape[:2], dtype=torch.long, device=inputs_embeds.device)
        logits = model(inputs_embeds=inputs_embeds, attention_mask=mask, use_cache=False,
                       logits_to_keep=1).logits[:, -1].float()
        logp = torch.log_softmax(logits, dim=-1)
        value = logp[:, token_id]
        return value if contrast_id is None else value - logp[:, contrast_id]

    return target


def _checked_target(session: Any, node: Node, target: Callable, inputs: torch.Tensor,
                    what: str) -> float:
    with torch.no_grad():
        value = target(inputs)
    check_logits(value[:, None], "node", [node.node_id], source=f"the model ({what})")
    return float(value[0])


def _gradient_attribution(session: Any, node: Node, ids: list[int], method: str,
                          contrast_id: int | None, steps: int | None, baseline: str | None,
                          keep_first: bool | None, batch_size: int | None):
    captum_attr = _import_captum()
    model = session.model
    embed = model.get_input_embeddings()
    with torch.no_grad():
        inputs = embed(torch.tensor([ids], device=session.device)).detach()  # [1, P, d]
    target = _target_fn(model, int(node.token_id), contrast_id)
    value = _checked_target(session, node, target, inputs, "attribution target")
    baseline_target = delta = None
    with torch.enable_grad():
        if method == "input_x_gradient":
            attributions = captum_attr.InputXGradient(target).attribute(inputs.requires_grad_())
        else:
            base = _baseline(session, embed, inputs, baseline, bool(keep_first))
            baseline_target = _checked_target(session, node, target, base,
                                              "integrated-gradients baseline")
            rows = batch_size or max(1, min(steps, TOKENS_PER_BATCH // len(ids)))
            attributions, deltas = captum_attr.IntegratedGradients(target).attribute(
                inputs, baselines=base, n_steps=steps, method="gausslegendre",
                internal_batch_size=rows, return_convergence_delta=True)
            delta = float(deltas.reshape(-1)[0])
    per_dim = attributions[0].detach().float()  # [P, d]
    scores = per_dim.sum(-1).cpu().numpy().astype(np.float64)
    scores_l2 = per_dim.norm(dim=-1).cpu().numpy().astype(np.float64)
    return value, scores, scores_l2, baseline_target, delta


def _baseline(session: Any, embed: Any, inputs: torch.Tensor, baseline: str,
              keep_first: bool) -> torch.Tensor:
    """The integrated-gradient baseline ``[1, P, d]`` (see the module doc)."""
    if baseline == "zero":
        base = torch.zeros_like(inputs)
    else:
        pad = session.tokenizer.pad_token_id
        pad = session.tokenizer.eos_token_id if pad is None else pad
        if pad is None:
            raise ValueError("baseline='pad' needs a pad (or EOS) token and this tokenizer has "
                             "neither; use baseline='zero'")
        with torch.no_grad():
            row = embed(torch.tensor([[pad]], device=inputs.device))  # [1, 1, d]
        base = row.expand_as(inputs).clone()
    if keep_first:
        base[:, 0] = inputs[:, 0]
    return base


def _import_captum():
    try:
        import captum.attr as captum_attr
    except ImportError:
        raise ImportError("attribution with gradients needs captum: run pip install "
                          "'inferviz[attribution]' (or pip install 'captum>=0.7')") from None
    return captum_attr


@torch.no_grad()
def _attention_attribution(session: Any, node: Node, ids: list[int],
                           rollout: bool) -> tuple[float, np.ndarray]:
    """(target, scores [P]) from attention weights: the last layer's head mean at the last
    position, or the rollout through every layer."""
    adapter = session.adapter
    modules = adapter.attentions if rollout else adapter.attentions[-1:]
    positions = len(ids)
    state: dict[str, torch.Tensor] = {}

    def capture(_module, _args, output):
        weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
        if weights is None:
            raise RuntimeError(f"the attention of {adapter.family!r} returned no weights under "
                               f"eager attention; attention attribution cannot read them")
        mean = weights[0].float().mean(0)  # [P, P], rows sum to 1
        if not rollout:
            state["scores"] = mean[-1]
            return
        mixed = 0.5 * mean + 0.5 * torch.eye(positions, device=mean.device)
        mixed = mixed / mixed.sum(-1, keepdim=True)
        product = state.get("product")
        state["product"] = mixed if product is None else mixed @ product

    input_ids = torch.tensor([ids], device=session.device)
    handles = []
    with session.engine.lock, adapter.eager_attention():
        try:
            handles = [m.register_forward_hook(capture) for m in modules]
            logits = session.model(input_ids=input_ids, use_cache=False,
                                   logits_to_keep=1).logits[:, -1].float()
        finally:
            for handle in handles:
                handle.remove()
    check_logits(logits, "node", [node.node_id], source="the model (attention forward)")
    target = float(torch.log_softmax(logits, dim=-1)[0, int(node.token_id)])
    scores = state["scores"] if not rollout else state["product"][-1]
    return target, scores.cpu().numpy().astype(np.float64)
