"""Argument checks shared by the public API: each error names the argument and what is allowed."""

from __future__ import annotations

import math
import re
from typing import Any, Iterable

_SURROGATE = re.compile("[\ud800-\udfff]")


def is_int(value: Any) -> bool:
    """An int that is not a bool (True is an int to Python, never a count here)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_finite_number(value: Any) -> bool:
    """A finite int or float that is not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int; got {value!r} ({type(value).__name__})")
    if low is not None and value < low or high is not None and value > high:
        raise ValueError(f"{name} must be in [{low}, {high}]; got {value}"
                         if high is not None else f"{name} must be >= {low}; got {value}")
    return value


def check_float(name: str, value: Any, low: float, high: float, low_open: bool = False,
                high_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number; got {value!r} ({type(value).__name__})")
    value = float(value)
    bad = (math.isnan(value) or value < low or value > high or (low_open and value == low)
           or (high_open and value == high))
    if bad:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ValueError(f"{name} must be in {lo}{low}, {high}{hi}; got {value}")
    return value


def check_prompt(prompt: Any) -> str:
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str; got {type(prompt).__name__}")
    if not prompt:
        raise ValueError("prompt is empty: give at least one character of text")
    lone = _SURROGATE.search(prompt)
    if lone:  # tokenizers cannot take one (they raise an obscure TypeError)
        raise ValueError(f"prompt holds a lone surrogate (U+{ord(lone.group()):04X} at index "
                         f"{lone.start()}), which is not text: no encoding can write it. Remove "
                         f"it (text decoded with errors='surrogateescape' holds them)")
    return prompt


def check_node_ids(tree: Any, node_ids: Any) -> list[int]:
    """One node id or an iterable of them, each in ``tree``; duplicates removed, order kept."""
    ids: Iterable[Any] = [node_ids] if isinstance(node_ids, int) else node_ids
    if isinstance(node_ids, (str, bytes, dict)):  # iterable, but not a list of node ids
        raise TypeError(f"node_ids must be an int or a list of ints, got "
                        f"{type(node_ids).__name__} {node_ids!r}")
    try:
        ids = list(ids)
    except TypeError:
        raise TypeError(f"node_ids must be an int or a list of ints, got "
                        f"{type(node_ids).__name__} {node_ids!r}") from None
    if not ids:
        raise ValueError("node_ids is empty: pass at least one node id")
    out: list[int] = []
    for node_id in ids:
        if isinstance(node_id, bool) or not isinstance(node_id, int):
            raise TypeError(f"node_ids must hold ints; got {node_id!r}")
        if node_id not in tree:
            raise ValueError(f"node_ids: {node_id} is not a node of this tree "
                             f"(it has {len(tree)} nodes; see tree.to_pandas().node_id)")
        if node_id not in out:
            out.append(node_id)
    return out


def reject_unknown(where: str, kwargs: dict[str, Any], allowed: Iterable[str]) -> None:
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise TypeError(f"{where} got unexpected argument(s) {', '.join(unknown)}; "
                        f"allowed: {', '.join(sorted(allowed))}")


def resolve_token_ids(session: Any, text_or_tree: Any, node_id: int | None) -> tuple[list[int], int]:
    """Token ids of a text, or of the path from a tree's root to ``node_id`` (the root by
    default), and the index of the first generated token (1 for a text: the first token has no
    prediction). Checks the node id and the model's context length."""
    from .tree import TokenTree
    from .tree_consistency import check_tree_for_session

    if isinstance(text_or_tree, TokenTree):
        tree = text_or_tree
        node_id = tree.root_id if node_id is None else node_id
        if node_id not in tree:
            raise ValueError(f"node_id {node_id} is not a node of this tree")
        check_tree_for_session(tree, session)
        ids, first = tree.token_ids(node_id), len(tree.prompt_ids)
    else:
        ids, first = session.encode(check_prompt(text_or_tree)), 1
    if len(ids) > session.backend.max_positions:
        raise ValueError(f"text is {len(ids)} tokens, longer than the model's context "
                         f"({session.backend.max_positions})")
    return ids, first
