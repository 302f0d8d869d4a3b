"""The run journal of a TokenTree: what one thread's strategy run added or updated, so that a
failed run can be rolled back. Pure data; TokenTree calls these under its lock.

A journal is a dict ``{"added": [ids], "updated": {id: (prob, meta) before}, "next_id": n}``
(``n`` is the tree's next node id when the journal began)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from .tree_schema import child_key

if TYPE_CHECKING:
    from .tree import Node


class RunJournals:
    """Thread id -> the change journals of the strategy runs on that thread, innermost last
    (a run may start another on the same tree: a custom strategy calling ``generate``); other
    threads' changes (widget clicks) are not recorded. An inner run's journal folds into the
    outer one when it ends, so a failing outer run also undoes what inner runs added."""

    def __init__(self) -> None:
        self._by_thread: dict[int, list[dict[str, Any]]] = {}

    def current(self) -> dict[str, Any] | None:
        """This thread's innermost journal, or None when it has none."""
        stack = self._by_thread.get(threading.get_ident())
        return stack[-1] if stack else None

    def begin(self, next_id: int) -> dict[str, Any]:
        journal: dict[str, Any] = {"added": [], "updated": {}, "next_id": next_id}
        self._by_thread.setdefault(threading.get_ident(), []).append(journal)
        return journal

    def end(self) -> None:
        thread = threading.get_ident()
        stack = self._by_thread.get(thread)
        if not stack:
            return
        inner = stack.pop()
        if stack:
            fold(stack[-1], inner)
        else:
            del self._by_thread[thread]


def fold(outer: dict[str, Any], inner: dict[str, Any]) -> None:
    """Add an ended inner run's changes to the enclosing run's journal (the outer journal
    keeps the oldest ``prob``/``meta`` of a node)."""
    outer["added"].extend(inner["added"])
    for node_id, before in inner["updated"].items():
        outer["updated"].setdefault(node_id, before)


def record_added(journal: dict[str, Any] | None, node_id: int) -> None:
    if journal is not None:
        journal["added"].append(node_id)


def record_update(journal: dict[str, Any] | None, node: Node) -> None:
    """Keep ``node``'s ``prob`` and ``meta`` from before its first change in the journal."""
    if journal is not None:
        journal["updated"].setdefault(node.node_id, (node.prob, dict(node.meta)))


def undo(nodes: dict[int, Node], journal: dict[str, Any]) -> tuple[list[int], set[int]]:
    """Undo ``journal`` in ``nodes``: remove the nodes it added (with anything added below them
    since) and restore ``prob``/``meta`` of the nodes it updated. Returns the removed ids and
    the surviving nodes whose children or numbers changed."""
    removed: list[int] = []
    touched: set[int] = set()
    for node_id in reversed(journal["added"]):
        if node_id not in nodes:
            continue
        top = nodes[node_id]
        stack = [node_id]
        while stack:  # the node's subtree
            node = nodes.pop(stack.pop())
            removed.append(node.node_id)
            stack.extend(c for c in node.children.values() if c in nodes)
        parent = nodes.get(top.parent_id)
        key = child_key(top.token_id, top.meta)
        if parent is not None and parent.children.get(key) == node_id:
            del parent.children[key]
            touched.add(parent.node_id)
    for node_id, (prob, meta) in journal["updated"].items():
        if node_id in nodes:
            nodes[node_id].prob, nodes[node_id].meta = prob, meta
            touched.add(node_id)
    touched &= nodes.keys()
    return removed, touched
