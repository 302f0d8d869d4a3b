"""Compare decoding strategies: run several from one prompt into ONE tree and find where they split.

``compare(session, prompt, strategies=["greedy", {"strategy": "beam", "num_beams": 4}], ...)``
runs each strategy with :func:`inferviz.strategies.run_strategy` on the same :class:`TokenTree`
and returns a :class:`Comparison`. Each node a strategy's best sequence passes through gets the
meta ``compare_labels`` (the labels of those strategies, joined by ", "); a node first written by
a strategy's run gets ``compare_by`` (that label); the first node of a sequence after it parts
from the reference gets ``compare_diverges`` (the labels that part there). No pandas or widget
import at module import time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .strategies import STRATEGIES, run_strategy, strategy_names, tree_and_start
from .strategies.result import GenerationResult
from .tree import TokenTree
from .validate import check_int

# Keys of a strategy dict that are not passed to the strategy itself.
SPEC_KEYS = ("strategy", "label", "intervention", "constraint")


@dataclass(frozen=True)
class StrategySpec:
    """One entry of ``strategies``: the strategy name, its label and its keyword arguments."""

    label: str
    strategy: str
    params: dict[str, Any] = field(default_factory=dict)
    intervention: Any = None  # a Steer / Ablate / Patch the strategy runs under, or None
    constraint: Any = None  # an iv.Regex / JSONSchema / Grammar / Choice it keeps to, or None


@dataclass(frozen=True)
class Divergence:
    """Where the best sequences of strategies ``a`` and ``b`` part.

    ``node_id`` is the last node both paths share (the root when they differ from the first
    token); ``position`` is the 0-based index, among the generated tokens, of the first token
    that differs (None when the sequences are identical). ``a_node_id``/``b_node_id`` are the
    first nodes after the split on each path (None where that path ended at the split)."""

    a: str
    b: str
    node_id: int
    position: int | None
    a_node_id: int | None
    b_node_id: int | None

    @property
    def identical(self) -> bool:
        return self.position is None


def parse_strategies(strategies: Any, constraint: Any = None) -> list[StrategySpec]:
    """Validate ``strategies`` (a non-empty list of names, dicts with a ``"strategy"`` key, an
    optional ``"label"``, an optional ``"intervention"`` and an optional ``"constraint"``, or
    interventions: greedy under it) and return one :class:`StrategySpec` per entry.
    ``constraint`` applies to every entry that does not name its own."""
    from .constraints import check_constraint
    from .interventions import Intervention, check_intervention

    constraint = check_constraint(constraint)

    if isinstance(strategies, (str, dict)) or not isinstance(strategies, (list, tuple)):
        raise TypeError(f"strategies must be a list of strategy names or dicts, e.g. "
                        f"['greedy', {{'strategy': 'beam', 'num_beams': 4}}]; got "
                        f"{type(strategies).__name__}")
    if not strategies:
        raise ValueError("strategies is empty: give at least one strategy to run")
    specs: list[StrategySpec] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(strategies):
        where = f"strategies[{index}]"
        intervention = None
        own_constraint = constraint
        if isinstance(entry, str):
            name, label, params = entry, entry, {}
        elif isinstance(entry, Intervention):  # greedy under it
            name, label, params, intervention = "greedy", entry.label, {}, entry
        elif isinstance(entry, dict):
            if "strategy" not in entry:
                raise ValueError(f"{where} is a dict without a 'strategy' key; e.g. "
                                 f"{{'strategy': 'top_p', 'top_p': 0.9}}")
            name = entry["strategy"]
            if entry.get("intervention") is not None:
                try:
                    intervention = check_intervention(entry["intervention"])
                except TypeError as exc:
                    raise TypeError(f"{where}: {exc}") from None
            if "constraint" in entry:
                own_constraint = check_constraint(entry["constraint"],
                                                  f"{where}['constraint']")
            default = name if intervention is None else f"{name} · {intervention.label}"
            if own_constraint is not None and own_constraint is not constraint:
                default = f"{default} · {own_constraint.label}"
            label = entry.get("label", default)
            params = {k: v for k, v in entry.items() if k not in SPEC_KEYS}
        else:
            raise TypeError(f"{where} must be a strategy name, a dict or an intervention "
                            f"(Steer, Ablate, Patch); got {type(entry).__name__}")
        if not isinstance(name, str) or name not in STRATEGIES:
            raise ValueError(f"{where} names an unknown strategy {name!r}; valid names: "
                             f"{', '.join(strategy_names())}")
        if not isinstance(label, str) or not label.strip():
            raise ValueError(f"{where} label must be a non-empty str; got {label!r}")
        if label in seen:
            raise ValueError(f"{where} has the label {label!r} of strategies[{seen[label]}]; "
                             f"labels must be distinct: add a 'label' key, e.g. "
                             f"{{'strategy': {name!r}, 'label': '{name}-2', ...}}")
        seen[label] = index
        specs.append(StrategySpec(label, name, params, intervention, own_constraint))
    return specs


def divergence(tree: TokenTree, a: str, a_leaf: int, b: str, b_leaf: int,
               start_id: int | None = None) -> Divergence:
    """Where the paths from ``start_id`` (default root) to ``a_leaf`` and ``b_leaf`` part."""
    start = tree.root_id if start_id is None else start_id
    path_a = _path_from(tree, start, a_leaf)
    path_b = _path_from(tree, start, b_leaf)
    shared = 0
    while shared < min(len(path_a), len(path_b)) and path_a[shared] == path_b[shared]:
        shared += 1
    node_id = path_a[shared - 1]
    if shared == len(path_a) == len(path_b):
        return Divergence(a, b, node_id, None, None, None)
    a_next = path_a[shared] if shared < len(path_a) else None
    b_next = path_b[shared] if shared < len(path_b) else None
    return Divergence(a, b, node_id, shared - 1, a_next, b_next)


def _path_from(tree: TokenTree, start_id: int, leaf_id: int) -> list[int]:
    ids = [n.node_id for n in tree.path(leaf_id)]
    if start_id not in ids:
        raise ValueError(f"node {leaf_id} does not descend from start node {start_id}")
    return ids[ids.index(start_id):]


@dataclass
class Comparison:
    """Several strategies run from one prompt into one tree.

    ``results`` maps each label to its :class:`GenerationResult` (in the order given; the first
    is the reference); ``divergence`` maps each pair ``(a, b)`` of labels, ``a`` before ``b``,
    to its :class:`Divergence`; ``specs`` are the parsed strategy entries."""

    tree: TokenTree
    results: dict[str, GenerationResult]
    divergence: dict[tuple[str, str], Divergence]
    specs: list[StrategySpec]
    start_id: int = 0

    @property
    def labels(self) -> list[str]:
        return list(self.results)

    @property
    def reference(self) -> str:
        return self.labels[0]

    def vs_reference(self, label: str) -> Divergence | None:
        """The :class:`Divergence` of ``label`` from the reference (None for the reference)."""
        if label not in self.results:
            raise KeyError(f"label {label!r} is not in this comparison; labels: {self.labels}")
        if label == self.reference:
            return None
        return self.divergence[(self.reference, label)]

    def path_ids(self, label: str) -> list[int]:
        """Node ids of ``label``'s best sequence after the start node."""
        return _path_from(self.tree, self.start_id, self.results[label].node_id)[1:]

    def summary(self) -> list[dict[str, Any]]:
        """One dict per strategy: the rows of :meth:`to_pandas` (no pandas needed)."""
        rows = []
        for label, result in self.results.items():
            nodes = [self.tree.node(i) for i in self.path_ids(label)]
            logprobs = [n.raw_logprob for n in nodes]
            kls = [n.meta["kl"] for n in nodes if isinstance(n.meta.get("kl"), float)]
            masses = [n.meta["log_legal_mass"] for n in nodes if "log_legal_mass" in n.meta]
            total = float(sum(logprobs))
            mean = total / len(logprobs) if logprobs else math.nan
            div = self.vs_reference(label)
            rows.append({
                "label": label,
                "strategy": result.strategy,
                "text": self.tree.completion(result.node_id),
                "tokens": len(logprobs),
                "sum_logprob": total,
                "mean_logprob": mean,
                "perplexity": math.exp(-mean) if logprobs else math.nan,
                "finish_reason": result.finish_reason,
                "diverges_at": None if div is None else div.position,
                "diverges_after_node": None if div is None or div.identical else div.node_id,
                "leaf_id": result.node_id,
                "intervention": nodes[0].meta.get("intervention") if nodes else None,
                "mean_kl": sum(kls) / len(kls) if kls else None,
                "constraint": nodes[0].meta.get("constraint") if nodes else None,
                "sum_log_legal_mass": sum(masses) if masses else None,
            })
        return rows

    def to_pandas(self):
        """Side-by-side table, one row per strategy: ``label``, ``strategy``, ``text``,
        ``tokens``, ``sum_logprob`` and ``mean_logprob`` (raw model log-probabilities of the
        continuation, nats; under an intervention, the intervened model's), ``perplexity`` (exp
        of minus the mean), ``finish_reason``,
        ``diverges_at`` (0-based generated-token position of the first token that differs from
        the reference; <NA> for the reference and for identical sequences),
        ``diverges_after_node`` (the last shared node), ``leaf_id``, ``intervention`` (its
        label, or empty), ``mean_kl`` (the mean KL from the plain model along the path,
        nats; NaN for a plain run), ``constraint`` (its label, or empty) and
        ``sum_log_legal_mass`` (what the constraint cut along the path: the sum of the log
        legal mass at each step, nats; NaN for an unconstrained run)."""
        import pandas as pd

        df = pd.DataFrame(self.summary())
        df["mean_kl"] = df["mean_kl"].astype("float64")
        df["sum_log_legal_mass"] = df["sum_log_legal_mass"].astype("float64")
        for col in ("diverges_at", "diverges_after_node"):
            df[col] = df[col].astype("Int64")
        return df

    def text_view(self, label: str | None = None, k: int = 5):
        """``label``'s text (default: the reference) as a shaded
        :class:`~inferviz.widgets.views.text_view.TextView`."""
        from .widgets.views.text_view import TextView

        label = self.reference if label is None else label
        if label not in self.results:
            raise KeyError(f"label {label!r} is not in this comparison; labels: {self.labels}")
        return TextView(self.tree, self.results[label].node_id, k=k)

    def widget(self):
        """Table, shaded texts and the shared tree (with divergence marks) as one widget."""
        from .widgets.export.compare_view import comparison_widget

        return comparison_widget(self)

    def _repr_html_(self) -> str:
        from .widgets.export.compare_view import comparison_html

        return comparison_html(self)

    def __repr__(self) -> str:
        parts = []
        for label in self.labels:
            div = self.vs_reference(label)
            where = "reference" if div is None else (
                "same" if div.identical else f"splits at {div.position}")
            parts.append(f"{label}: {where}")
        return f"Comparison({'; '.join(parts)})"


def compare(session: Any, prompt: str | TokenTree, strategies: Any, max_new_tokens: int = 32,
            seed: int | None = None, start_id: int | None = None,
            constraint: Any = None) -> Comparison:
    """Run every entry of ``strategies`` from ``prompt`` (a str, or a TokenTree to grow) into one
    tree. Each entry is a strategy name or a dict ``{"strategy": name, "label": ..., **params}``;
    ``max_new_tokens`` and ``seed`` apply to entries that do not set their own. Arguments are
    checked before anything runs. ``constraint`` (or a dict's ``"constraint"``): the runs
    keep to it (docs/constraints.md)."""
    specs = parse_strategies(strategies, constraint)
    check_int("max_new_tokens", max_new_tokens, 1)
    if seed is not None:
        check_int("seed", seed, 0)
    tree, start = tree_and_start(session, prompt, start_id)
    results: dict[str, GenerationResult] = {}
    for index, spec in enumerate(specs):
        params = {"max_new_tokens": max_new_tokens, "seed": seed, **spec.params}
        before = set(tree.nodes)
        try:
            if spec.intervention is None and spec.constraint is None:
                result = run_strategy(session, tree, strategy=spec.strategy, start_id=start,
                                      **params)
            else:  # a sibling branch under the intervention or the constraint
                result = session.generate(tree, spec.strategy, start_id=start,
                                          intervention=spec.intervention,
                                          constraint=spec.constraint, **params)
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"strategies[{index}] ({spec.label!r}): {exc}") from exc
        for node_id in sorted(set(tree.nodes) - before):
            tree.nodes[node_id].meta.setdefault("compare_by", spec.label)
        results[spec.label] = result
    comparison = Comparison(tree, results, {}, specs, start)
    labels = comparison.labels
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            comparison.divergence[(a, b)] = divergence(
                tree, a, results[a].node_id, b, results[b].node_id, start)
    _mark_tree(comparison)
    return comparison


def _mark_tree(comparison: Comparison) -> None:
    """Write ``compare_labels`` and ``compare_diverges`` into the nodes' meta and notify."""
    tree = comparison.tree
    visited: dict[int, list[str]] = {}
    for label in comparison.labels:
        for node_id in comparison.path_ids(label):
            visited.setdefault(node_id, []).append(label)
    diverges: dict[int, list[str]] = {}
    for label in comparison.labels[1:]:
        div = comparison.vs_reference(label)
        if div is not None and not div.identical and div.b_node_id is not None:
            diverges.setdefault(div.b_node_id, []).append(label)
    for node_id, labels in visited.items():
        tree.nodes[node_id].meta["compare_labels"] = ", ".join(labels)
    for node_id, labels in diverges.items():
        tree.nodes[node_id].meta["compare_diverges"] = ", ".join(labels)
    tree.notify(sorted(set(visited) | set(diverges)))
