"""TokenTree: the token tree every strategy writes into. Pure data: no torch, no pandas at import.

A tree is rooted at a prompt. Every other node is one token with the numbers it was drawn with:

- ``raw_logprob``  log-probability of the token under the model's raw distribution (nats)
- ``prob``         probability after the processors active when its parent was expanded
                   (0.0 for a token the processors filtered out, never NaN)
- ``rank``         0-based rank of the token under the raw distribution
- ``entropy``      entropy (nats) of the raw distribution the token was drawn from
- ``cum_logprob``  sum of ``raw_logprob`` from the root down to this node
- ``meta``         free dict for strategies (beam score, SMC weight, ...), exported as columns

The tree's own ``meta`` (a dict of JSON values, saved with it) records what made it: a
session writes its model's ``vocab_size`` and ``vocabulary`` fingerprint there, checked when
another session uses the tree (:mod:`inferviz.tree_consistency`).

Children are keyed by token id, never by text: two tokens that decode to the same text are two
children.
"""

from __future__ import annotations

import json
import math
import operator
import re
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from .tree_consistency import prompt_bytes, readable_token
from .tree_journal import RunJournals, record_added, record_update, undo
from .tree_schema import (
    MAX_ID,
    SCHEMA,
    SCHEMA_VERSION,
    check_meta_depth,
    check_scores,
    child_key,
    parse_tree,
)

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
    # Checks of its use with a session (inferviz.tree_consistency), cached: the vocabulary size
    # the token ids were checked against, the session the identity was checked for, and whether
    # prompt_ids still have to be checked against the prompt (a loaded tree).
    _vocab_checked: int | None = None
    _use_checked: Any = None
    _prompt_unverified = False
    strict = True  # False: loaded with strict=False, consistency not checked

    def __init__(self, prompt: str, prompt_ids: Iterable[int], model: str = "",
                 meta: dict[str, Any] | None = None) -> None:
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str; got {type(prompt).__name__}")
        if not isinstance(model, str):
            raise TypeError(f"model must be a str; got {type(model).__name__}")
        ids = [_prompt_id(t) for t in prompt_ids]
        bad = [t for t in ids if not 0 <= t <= MAX_ID]
        if not ids or bad:
            raise ValueError(f"prompt_ids must be a non-empty list of token ids in "
                             f"[0, {MAX_ID}]; got {bad[0] if bad else 'none'}")
        self.prompt_ids: list[int] = ids
        self.meta: dict[str, Any] = dict(meta or {})
        check_meta_depth("tree meta", self.meta)
        self.prompt = prompt
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
            token_bytes=prompt_bytes(prompt),
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
        self.check_id_room(1)
        node_id = self._next_id
        self._next_id += 1
        return node_id

    def check_id_room(self, count: int) -> None:
        """ValueError unless ``count`` more nodes can get ids: ids stop at 2**53 - 1, the
        largest a tree file holds and a browser counts exactly (``expand`` asks before its
        forward, so it never adds half of its children)."""
        if self._next_id + count - 1 > MAX_ID:
            raise ValueError(f"this tree has no node ids left for {count} more node(s): ids "
                             f"stop at {MAX_ID} (2**53 - 1, the largest a tree file can hold "
                             f"and a browser can count exactly) and the next is "
                             f"{self._next_id}; start a new tree")

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
            if not (0 <= token_id <= MAX_ID and 0 <= rank <= MAX_ID):
                raise ValueError(f"{where}: token_id and rank must be in [0, {MAX_ID}], got "
                                 f"{token_id}, {rank}")
            if meta:
                check_meta_depth(where, meta)
            raw_logprob, prob, entropy, cum_logprob = check_scores(
                where, float(raw_logprob), float(prob), float(entropy),
                parent.cum_logprob + float(raw_logprob))
            key = child_key(token_id, meta)
            existing = parent.children.get(key)
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
                parent.children[key] = child.node_id
                record_added(journal, child.node_id)
                if self._vocab_checked is not None and token_id >= self._vocab_checked:
                    self._vocab_checked = None  # outside the checked vocabulary: check again
        if notify:
            self.notify([child.node_id])
        return child

    def update_meta(self, node_id: int, meta: dict[str, Any]) -> None:
        """Merge ``meta`` into a node's meta (journaled like ``add_child``; no notification)."""
        with self._lock:
            node = self.node(node_id)
            check_meta_depth(f"node {node_id}", meta)
            for branch_key in ("intervention_key", "constraint_key"):
                if branch_key in meta and meta[branch_key] != node.meta.get(branch_key):
                    raise ValueError(f"node {node_id}: meta {branch_key!r} says which branch "
                                     f"the node is on and cannot change")
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
        out = {
            "schema": SCHEMA,
            "version": SCHEMA_VERSION,
            "prompt": self.prompt,
            "prompt_ids": list(self.prompt_ids),
            "model": self.model,
            "next_id": self._next_id,
            "nodes": [_node_to_dict(n) for n in sorted(self.nodes.values(), key=_by_id)],
        }
        if self.meta:  # only when there is one: files of trees made by hand stay as they were
            out["meta"] = _encode_meta(self.meta)
        return out

    def to_json(self, indent: int | None = None) -> str:
        """Versioned JSON (schema ``inferviz.tree`` v1); ``TokenTree.from_json`` restores it
        exactly. Non-finite floats are written as the strings "nan", "inf", "-inf"; a lone
        surrogate (which no text encoding holds) as its ``\\udXXX`` escape, so the text can
        always be saved as UTF-8."""
        text = json.dumps(self.to_dict(), indent=indent, allow_nan=False, ensure_ascii=False)
        return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)

    @classmethod
    def from_dict(cls, data: dict[str, Any], strict: bool = True) -> "TokenTree":
        """The tree of ``to_dict()`` output. Untrusted input is checked field by field
        (:func:`inferviz.tree_schema.parse_tree`): a bad file raises ``ValueError`` naming the
        node and the field, never loads half or as a tree that fails later.

        ``strict`` (default True): the fields must also agree (each ``token`` is the text of
        its ``token_bytes``, ``cum_logprob`` sums the path), and on first use with a session
        the recorded model identity and ``prompt_ids`` must match that session's
        (:mod:`inferviz.tree_consistency`). ``strict=False``, for files written by other
        tools, skips those consistency checks (with a warning; ``tree.strict`` is False), never
        the structural and type checks nor the vocabulary range check."""
        if not isinstance(strict, bool):
            raise TypeError(f"strict must be a bool; got {strict!r}")
        parsed = parse_tree(data, strict=strict)
        if not strict:
            warnings.warn("tree loaded with strict=False: its token texts, cum_logprob, "
                          "prompt_ids and model identity are not checked for consistency",
                          stacklevel=2)
        tree = cls.__new__(cls)
        tree.prompt = parsed["prompt"]
        tree.prompt_ids = parsed["prompt_ids"]
        tree.model = parsed["model"]
        tree.meta = parsed["meta"]
        tree.strict = strict
        tree._prompt_unverified = strict
        tree.nodes = {}
        tree._listeners = []
        tree._lock = threading.RLock()
        for fields in parsed["nodes"]:  # parents come first
            node = Node(**fields)
            tree.nodes[node.node_id] = node
            if node.parent_id is not None:
                key = child_key(node.token_id, node.meta)
                tree.nodes[node.parent_id].children[key] = node.node_id
        tree.root_id = parsed["root_id"]
        tree._next_id = parsed["next_id"]
        return tree

    @classmethod
    def from_json(cls, text: str | bytes, strict: bool = True) -> "TokenTree":
        """The tree of a ``to_json()`` text; ``ValueError`` naming the problem otherwise.
        ``strict``: see :meth:`from_dict`."""
        if not isinstance(text, (str, bytes, bytearray)):
            raise TypeError(f"text must be a str (the JSON of a tree), got {type(text).__name__}")
        try:
            data = json.loads(text)
        except RecursionError:
            raise ValueError("tree file is not valid JSON: nested too deeply") from None
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
            raise ValueError(f"tree file is not valid JSON: {exc}") from None
        return cls.from_dict(data, strict=strict)

    def __repr__(self) -> str:
        depth = max(n.depth for n in self.nodes.values())
        return f"TokenTree(prompt={self.prompt!r}, nodes={len(self)}, depth={depth})"


_SURROGATE = re.compile("[\ud800-\udfff]")


def _prompt_id(value: Any) -> int:
    """An int (or numpy/torch integer) token id; bools and floats are refused."""
    if not isinstance(value, bool):
        try:
            return operator.index(value)
        except TypeError:
            pass
    raise TypeError(f"prompt_ids must be a list of token ids (ints); got {value!r}")


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
