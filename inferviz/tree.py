"""TokenTree: the token tree every strategy writes into. Pure data: no torch, no pandas at import.

A tree is rooted at a prompt. Every other node is one token with the numbers it was drawn with:

- ``raw_logprob``  log-probability of the token under the model's raw distribution (nats)
- ``prob``         probability after the processors active when its parent was expanded
                   (0.0 for a token the processors filtered out, never NaN)
- ``rank``         0-based rank of the token under the raw distribution
- ``entropy``      entropy (nats) of the raw distribution the token was drawn from
- ``cum_logprob``  sum of ``raw_logprob`` from the root down to this node
- ``meta``         free dict for strategies (beam score, SMC weight, ...), exported as columns

Children are keyed by token id, never by text: two tokens that decode to the same text are two
children.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from .tree_journal import RunJournals, record_added, record_update, undo
from .tree_schema import SCHEMA, SCHEMA_VERSION, check_scores, parse_tree

__all__ = ["CORE_COLUMNS", "SCHEMA", "SCHEMA_VERSION", "Node", "TokenTree", "readable_token"]

# Columns of to_pandas()/to_columns(), in order; meta keys follow.
CORE_COLUMNS = (
    "node_id",
    "parent_id",
    "depth",
    "token_id",
    "token",
    "raw_logprob",
    "prob",
    "rank",
    "entropy",
    "cum_logprob",
)


def readable_token(token_bytes: bytes) -> str:
    """Text of a token's bytes, faithfully: valid UTF-8 decodes as is (spaces, newlines kept);
    bytes that are not valid UTF-8 on their own (a partial character) show as ``<0xNN>``."""
    out: list[str] = []
    i = 0
    while i < len(token_bytes):
        # Find the longest valid UTF-8 prefix starting at i (a char is at most 4 bytes).
        for width in (1, 2, 3, 4):
            chunk = token_bytes[i : i + width]
            try:
                out.append(chunk.decode("utf-8"))
                i += width
                break
            except UnicodeDecodeError:
                continue
        else:
            out.append(f"<0x{token_bytes[i]:02X}>")
            i += 1
    return "".join(out)


@dataclass
class Node:
    """One node of a :class:`TokenTree`. The root has ``token_id=None`` and holds the prompt."""

    node_id: int
    parent_id: int | None
    depth: int
    token_id: int | None
    token: str
    token_bytes: bytes
    raw_logprob: float
    prob: float
    rank: int | None
    entropy: float | None
    cum_logprob: float
    meta: dict[str, Any] = field(default_factory=dict)
    children: dict[int, int] = field(default_factory=dict)  # token_id -> node_id

    @property
    def is_root(self) -> bool:
        return self.parent_id is None


class TokenTree:
    """A tree of tokens rooted at a prompt. Build it with ``Session.tree(prompt)``."""

    # thread id -> change journal of the strategy run on that thread (see begin_journal)
    _journals: RunJournals | None = None

    def __init__(self, prompt: str, prompt_ids: Iterable[int], model: str = "") -> None:
        self.prompt = prompt
        self.prompt_ids: list[int] = [int(t) for t in prompt_ids]
        self.model = model
        self.nodes: dict[int, Node] = {}
        self._next_id = 0
        self._listeners: list[Callable[[list[int]], None]] = []
        self._lock = threading.RLock()
        root = Node(
            node_id=self._take_id(),
            parent_id=None,
            depth=0,
            token_id=None,
            token=prompt,
            token_bytes=prompt.encode("utf-8"),
            raw_logprob=0.0,
            prob=1.0,
            rank=None,
            entropy=None,
            cum_logprob=0.0,
        )
        self.nodes[root.node_id] = root
        self.root_id = root.node_id

    # ----------------------------------------------------------------- building
    def _take_id(self) -> int:
        node_id = self._next_id
        self._next_id += 1
        return node_id

    def add_child(
        self,
        parent_id: int,
        token_id: int,
        token_bytes: bytes,
        raw_logprob: float,
        prob: float,
        rank: int,
        entropy: float,
        meta: dict[str, Any] | None = None,
        notify: bool = True,
    ) -> Node:
        """Add (or update) the child of ``parent_id`` for ``token_id`` and return it.

        An existing child keeps its id; its processed ``prob`` is updated to the latest sampler
        settings and ``meta`` is merged. Raw numbers never change for a given token. Numbers
        outside the schema's ranges (see :mod:`inferviz.tree_schema`) raise ``ValueError``, so
        every tree built here can be saved and loaded back."""
        with self._lock:
            parent = self.node(parent_id)
            token_id, rank = int(token_id), int(rank)
            where = f"child of node {parent_id} with token_id {token_id}"
            if token_id < 0 or rank < 0:
                raise ValueError(f"{where}: token_id and rank must be >= 0, got {token_id}, "
                                 f"{rank}")
            raw_logprob, prob, entropy, cum_logprob = check_scores(
                where, float(raw_logprob), float(prob), float(entropy),
                parent.cum_logprob + float(raw_logprob))
            existing = parent.children.get(token_id)
            journal = self._journal()
            if existing is not None:
                child = self.nodes[existing]
                record_update(journal, child)
                child.prob = prob
                if meta:
                    child.meta.update(meta)
            else:
                child = Node(
                    node_id=self._take_id(),
                    parent_id=parent.node_id,
                    depth=parent.depth + 1,
                    token_id=token_id,
                    token=readable_token(token_bytes),
                    token_bytes=bytes(token_bytes),
                    raw_logprob=raw_logprob,
                    prob=prob,
                    rank=rank,
                    entropy=entropy,
                    cum_logprob=cum_logprob,
                    meta=dict(meta or {}),
                )
                self.nodes[child.node_id] = child
                parent.children[token_id] = child.node_id
                record_added(journal, child.node_id)
        if notify:
            self.notify([child.node_id])
        return child

    def update_meta(self, node_id: int, meta: dict[str, Any]) -> None:
        """Merge ``meta`` into a node's meta (journaled like ``add_child``; no notification)."""
        with self._lock:
            node = self.node(node_id)
            record_update(self._journal(), node)
            node.meta.update(meta)

    # ------------------------------------------------------------ run journal
    def _journal(self) -> dict[str, Any] | None:
        journals = self._journals
        return journals.current() if journals is not None else None

    def begin_journal(self) -> dict[str, Any]:
        """Record what this thread adds or updates from now on (``{"added": [ids], "updated":
        {id: (prob, meta) before}}``) until :meth:`end_journal`; a strategy run uses it to
        roll a failed run back. Other threads' changes (widget clicks) are not recorded."""
        with self._lock:
            if self._journals is None:
                self._journals = RunJournals()
            return self._journals.begin(self._next_id)

    def end_journal(self) -> None:
        with self._lock:
            if self._journals is not None:
                self._journals.end()

    def rollback(self, journal: dict[str, Any]) -> list[int]:
        """Undo a journal: remove the nodes it added (with anything added below them since) and
        restore ``prob``/``meta`` of the nodes it updated. Notifies listeners with the surviving
        nodes whose children or numbers changed; returns the removed ids. When no node made
        since the journal began survives, the next id goes back too (``to_json`` is as before)."""
        with self._lock:
            removed, touched = undo(self.nodes, journal)
            if all(i < journal["next_id"] for i in self.nodes):
                self._next_id = journal["next_id"]
        if touched:
            self.notify(sorted(touched))
        return removed

    def on_change(self, callback: Callable[[list[int]], None]) -> Callable[[], None]:
        """Call ``callback(node_ids)`` whenever nodes are added or updated; returns an unsubscribe
        function. Widgets use this to grow live while a strategy runs."""
        self._listeners.append(callback)

        def unsubscribe() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return unsubscribe

    def notify(self, node_ids: list[int]) -> None:
        for callback in list(self._listeners):
            callback(list(node_ids))

    # ---------------------------------------------------------------- reading
    def __len__(self) -> int:
        return len(self.nodes)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self.nodes

    @property
    def root(self) -> Node:
        return self.nodes[self.root_id]

    def node(self, node_id: int) -> Node:
        """The node with this id; a clear ``KeyError`` naming the id otherwise."""
        try:
            return self.nodes[node_id]
        except (KeyError, TypeError):
            raise KeyError(
                f"node_id {node_id!r} is not in this tree (ids run 0..{self._next_id - 1})"
            ) from None

    def children(self, node_id: int) -> list[Node]:
        return [self.nodes[c] for c in self.node(node_id).children.values()]

    def path(self, node_id: int) -> list[Node]:
        """Nodes from the root down to ``node_id``, both included."""
        node = self.node(node_id)
        out = [node]
        while node.parent_id is not None:
            node = self.nodes[node.parent_id]
            out.append(node)
        return out[::-1]

    def token_ids(self, node_id: int) -> list[int]:
        """Prompt ids followed by the generated ids on the path to ``node_id``."""
        return self.prompt_ids + [n.token_id for n in self.path(node_id)[1:]]

    def completion(self, node_id: int) -> str:
        """The generated text on the path to ``node_id`` (without the prompt). Bytes of the
        path's tokens are joined before decoding, so characters split across tokens come out
        whole."""
        raw = b"".join(n.token_bytes for n in self.path(node_id)[1:])
        return raw.decode("utf-8", errors="replace")

    def text(self, node_id: int) -> str:
        """Prompt plus the generated text on the path to ``node_id``."""
        return self.prompt + self.completion(node_id)

    def leaves(self) -> list[Node]:
        return [n for n in self.nodes.values() if not n.children]

    def meta_keys(self) -> list[str]:
        keys: dict[str, None] = {}
        for n in self.nodes.values():
            for k in n.meta:
                keys[k] = None
        return list(keys)

    # ---------------------------------------------------------------- export
    def to_columns(self, node_ids: Iterable[int] | None = None) -> dict[str, list]:
        """Column-wise dict (equal-length lists) of the given nodes (all by default), in id order:
        ``CORE_COLUMNS`` then one column per meta key. Root: ``parent_id``/``token_id``/``rank``/
        ``entropy`` are None. The compact form widgets and DataFrames are built from."""
        with self._lock:
            ids = sorted(self.nodes) if node_ids is None else list(node_ids)
            nodes = [self.nodes[i] for i in ids]
            keys = self.meta_keys()
            cols: dict[str, list] = {c: [getattr(n, c) for n in nodes] for c in CORE_COLUMNS}
            for k in keys:
                if k in cols:
                    continue
                cols[k] = [n.meta.get(k) for n in nodes]
        return cols

    def to_pandas(self):
        """One row per node, tidy, snake_case: ``CORE_COLUMNS`` then strategy columns (meta).
        See docs/dataframes.md for the column reference."""
        import pandas as pd

        df = pd.DataFrame(self.to_columns())
        for col in ("parent_id", "token_id", "rank"):
            df[col] = df[col].astype("Int64")
        df["entropy"] = df["entropy"].astype("float64")
        return df

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "version": SCHEMA_VERSION,
            "prompt": self.prompt,
            "prompt_ids": list(self.prompt_ids),
            "model": self.model,
            "next_id": self._next_id,
            "nodes": [_node_to_dict(n) for n in sorted(self.nodes.values(), key=_by_id)],
        }

    def to_json(self, indent: int | None = None) -> str:
        """Versioned JSON (schema ``inferviz.tree`` v1); ``TokenTree.from_json`` restores it
        exactly. Non-finite floats are written as the strings "nan", "inf", "-inf"."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TokenTree":
        """The tree of ``to_dict()`` output. Untrusted input is checked field by field
        (:func:`inferviz.tree_schema.parse_tree`): a bad file raises ``ValueError`` naming the
        node and the field, never loads half or as a tree that fails later."""
        parsed = parse_tree(data)
        tree = cls.__new__(cls)
        tree.prompt = parsed["prompt"]
        tree.prompt_ids = parsed["prompt_ids"]
        tree.model = parsed["model"]
        tree.nodes = {}
        tree._listeners = []
        tree._lock = threading.RLock()
        for fields in parsed["nodes"]:  # parents come first
            node = Node(**fields)
            tree.nodes[node.node_id] = node
            if node.parent_id is not None:
                tree.nodes[node.parent_id].children[node.token_id] = node.node_id
        tree.root_id = parsed["root_id"]
        tree._next_id = parsed["next_id"]
        return tree

    @classmethod
    def from_json(cls, text: str | bytes) -> "TokenTree":
        """The tree of a ``to_json()`` text; ``ValueError`` naming the problem otherwise."""
        if not isinstance(text, (str, bytes, bytearray)):
            raise TypeError(f"text must be a str (the JSON of a tree), got {type(text).__name__}")
        try:
            data = json.loads(text)
        except RecursionError:
            raise ValueError("tree file is not valid JSON: nested too deeply") from None
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
            raise ValueError(f"tree file is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    def __repr__(self) -> str:
        depth = max(n.depth for n in self.nodes.values())
        return f"TokenTree(prompt={self.prompt!r}, nodes={len(self)}, depth={depth})"


def _by_id(node: Node) -> int:
    return node.node_id


def _enc_float(x: float | None) -> float | str | None:
    if x is None or math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def _node_to_dict(n: Node) -> dict[str, Any]:
    return {
        "node_id": n.node_id,
        "parent_id": n.parent_id,
        "depth": n.depth,
        "token_id": n.token_id,
        "token": n.token,
        "token_bytes": n.token_bytes.hex(),
        "raw_logprob": _enc_float(n.raw_logprob),
        "prob": _enc_float(n.prob),
        "rank": n.rank,
        "entropy": _enc_float(n.entropy),
        "cum_logprob": _enc_float(n.cum_logprob),
        "meta": _encode_meta(n.meta),
    }


# Meta values are JSON values; non-finite floats are tagged so they survive strict JSON.
def _encode_meta(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return {"__float__": _enc_float(value)}
    if isinstance(value, dict):
        return {str(k): _encode_meta(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode_meta(v) for v in value]
    return value
