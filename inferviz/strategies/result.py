"""What a strategy run returns: the tree it wrote into and the sequences it chose."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..tree import TokenTree


@dataclass
class GenerationResult:
    """``leaf_ids`` holds the last node of each returned sequence, best first; ``scores`` their
    strategy scores (sum of raw logprobs for greedy/sample, beam score for beam, ...).

    ``finish_reason`` says why the run ended: ``"eos"``, ``"max_new_tokens"``, ``"context"``
    (the model's context is full), a strategy's own (``"beams_finished"``, ``"depth"``,
    ``"threshold"``, ``"max_nodes"``, ``"zero_weight"``), or ``"stopped"``/``"interrupted"``
    (Stop or Ctrl-C between steps: then ``partial`` is True). ``finish_reasons`` gives one
    reason per returned sequence; ``steps`` counts the steps the run wrote.

    ``eos_token_ids``: the model's end-of-sequence ids; a sequence's final EOS token stays in
    the tree and in ``token_ids`` but is left out of ``text`` / ``texts``."""

    strategy: str
    tree: TokenTree
    leaf_ids: list[int]
    params: dict[str, Any] = field(default_factory=dict)
    scores: list[float] = field(default_factory=list)
    finish_reason: str = ""
    finish_reasons: list[str] = field(default_factory=list)
    partial: bool = False
    steps: int = 0
    eos_token_ids: frozenset[int] = field(default_factory=frozenset)
    message: str = ""  # why a run ended early, in words (e.g. a constraint no token satisfies)

    def __post_init__(self) -> None:
        if not self.finish_reasons:
            self.finish_reasons = [self.finish_reason] * len(self.leaf_ids)

    @property
    def node_id(self) -> int:
        return self.leaf_ids[0]

    @property
    def text(self) -> str:
        """Generated text of the best sequence (without the prompt, without a final EOS)."""
        return self._completion(self.leaf_ids[0])

    @property
    def texts(self) -> list[str]:
        """Generated text of every returned sequence, best first (as ``text``)."""
        return [self._completion(n) for n in self.leaf_ids]

    def _completion(self, leaf_id: int) -> str:
        leaf = self.tree.node(leaf_id)
        if leaf.token_id in self.eos_token_ids and leaf.parent_id is not None:
            leaf_id = leaf.parent_id  # "<|im_end|>" is a stop signal, not text
        return self.tree.completion(leaf_id)

    @property
    def token_ids(self) -> list[int]:
        return self.tree.token_ids(self.leaf_ids[0])[len(self.tree.prompt_ids):]

    def path_ids(self, index: int = 0) -> list[int]:
        return [n.node_id for n in self.tree.path(self.leaf_ids[index])]

    def to_pandas(self):
        """The tree's DataFrame with ``in_result`` (node on a returned sequence) and
        ``sequence`` (index of the first returned sequence through the node, else <NA>)."""
        df = self.tree.to_pandas()
        seq_of: dict[int, int] = {}
        for index in range(len(self.leaf_ids)):
            for node_id in self.path_ids(index):
                seq_of.setdefault(node_id, index)
        df["in_result"] = df["node_id"].isin(seq_of)
        df["sequence"] = df["node_id"].map(seq_of).astype("Int64")
        return df

    def __repr__(self) -> str:
        partial = ", partial=True" if self.partial else ""
        return (f"{type(self).__name__}(strategy={self.strategy!r}, sequences={len(self.leaf_ids)}, "
                f"finish_reason={self.finish_reason!r}{partial}, text={self.text!r})")
