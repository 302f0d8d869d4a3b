"""The tree file schema (``inferviz.tree`` version 1) and its one validator.

A tree file is untrusted input: ``TokenTree.from_dict``/``from_json`` call :func:`parse_tree`,
which checks the structure and every field and returns plain values to build the tree from, or
raises one ``ValueError`` naming the node and the field, e.g.
``node 7: field 'depth' must be parent depth + 1 (3), got 99``. What a valid file holds (the
table in docs/reliability.md is this module in words):

- top level: ``schema`` ("inferviz.tree"), ``version`` (1), ``prompt`` (str), ``prompt_ids``
  (non-empty list of token ids), ``model`` (str, optional), ``meta`` (object of JSON values,
  optional: a session records its model's ``vocab_size`` and ``vocabulary`` fingerprint there),
  ``next_id`` (int > every node id, optional), ``nodes`` (non-empty list); nothing else.
- each node: ``node_id`` (unique int), ``parent_id`` (None for the one root, else the id of an
  earlier node: parents have smaller ids, so there is no cycle), ``depth`` (0 for the root, else
  parent depth + 1), ``token_id`` (None for the root, else an id unique among its siblings),
  ``token`` (str), ``token_bytes`` (hex str), ``raw_logprob`` (<= 0, may be -inf, never NaN),
  ``prob`` (in [0, 1]), ``rank`` (None for the root, else int >= 0), ``entropy`` (None for the
  root, else finite >= 0), ``cum_logprob`` (<= 0, may be -inf), ``meta`` (object of JSON values,
  optional); nothing else. Non-finite floats are the strings "nan", "inf", "-inf". A ``meta``
  holds lists and objects nested at most ``MAX_META_DEPTH`` deep (the writer's limit too).

With ``strict=True`` (the default) the fields must also agree with each other
(:mod:`inferviz.tree_consistency`): ``token`` is the readable text of ``token_bytes``, the
root's is the prompt, and ``cum_logprob`` is the parent's plus ``raw_logprob``.

Token ids are checked against a model's vocabulary when the tree is used with a session
(:func:`check_token_ids`), since the file does not say how large the vocabulary is.
"""

from __future__ import annotations

import math
from typing import Any

from .validate import is_int

SCHEMA = "inferviz.tree"
SCHEMA_VERSION = 1
MAX_ID = 2**53 - 1  # ids travel to the browser as float64: exact up to 2**53
# float32 round-off allowed above a bound (log-probabilities <= 0, probabilities <= 1).
TOLERANCE = 1e-5
# Lists/objects inside a meta, counting the meta itself (and the {"__float__": ...} tag of a
# non-finite float): the reader refuses deeper, so does TokenTree.add_child/update_meta, and
# the writer (recursive, like json) handles this depth from any reasonable call stack.
MAX_META_DEPTH = 64

TOP_FIELDS = ("schema", "version", "prompt", "prompt_ids", "model", "meta", "next_id",
              "nodes")
NODE_FIELDS = ("node_id", "parent_id", "depth", "token_id", "token", "token_bytes",
               "raw_logprob", "prob", "rank", "entropy", "cum_logprob", "meta")
OPTIONAL_NODE_FIELDS = ("meta",)
NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


class TreeFileError(ValueError):
    """A tree file (or dict) that is not a valid ``inferviz.tree``; the message names the node
    and the field."""


def _fail(where: str, message: str) -> TreeFileError:
    return TreeFileError(f"{where}: {message}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _int(where: str, name: str, value: Any, low: int = 0, high: int = MAX_ID,
         allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if not is_int(value):
        kind = "an int or null" if allow_none else "an int"
        raise _fail(where, f"field {name!r} must be {kind}, got {_short(value)} "
                           f"({type(value).__name__})")
    if not low <= value <= high:
        raise _fail(where, f"field {name!r} must be in [{low}, {high}], got {value}")
    return value


def _float(where: str, name: str, value: Any) -> float:
    """A JSON number, or one of the strings "nan", "inf", "-inf" that ``to_json`` writes."""
    if isinstance(value, str) and value in NON_FINITE:
        return NON_FINITE[value]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(where, f"field {name!r} must be a number (or \"-inf\"), got {_short(value)} "
                           f"({type(value).__name__})")
    return float(value)


def check_scores(where: str, raw_logprob: Any, prob: Any, entropy: Any,
                 cum_logprob: Any) -> tuple[float, float, float | None, float]:
    """The four numbers of a non-root node, checked (``TokenTree.add_child`` uses this too, so
    the API never builds a tree its own reader refuses)."""
    raw = _float(where, "raw_logprob", raw_logprob)
    if math.isnan(raw) or raw > TOLERANCE:
        raise _fail(where, f"field 'raw_logprob' must be a log-probability (<= 0, may be "
                           f"-inf), got {raw}")
    p = _float(where, "prob", prob)
    if not 0.0 <= p <= 1.0 + TOLERANCE:  # also refuses NaN
        raise _fail(where, f"field 'prob' must be in [0, 1], got {p}")
    ent = _float(where, "entropy", entropy)
    if not (math.isfinite(ent) and ent >= -TOLERANCE):
        raise _fail(where, f"field 'entropy' must be a finite number >= 0, got {ent}")
    cum = _float(where, "cum_logprob", cum_logprob)
    if math.isnan(cum) or cum > TOLERANCE:
        raise _fail(where, f"field 'cum_logprob' must be <= 0 (may be -inf), got {cum}")
    return raw, p, ent, cum


def _token_bytes(where: str, value: Any) -> bytes:
    if not isinstance(value, str):
        raise _fail(where, f"field 'token_bytes' must be a hex string, got "
                           f"{type(value).__name__}")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise _fail(where, f"field 'token_bytes' must be a hex string (two digits a byte), "
                           f"got {_short(value)}") from None


def _meta(where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(where, f"field 'meta' must be an object, got {type(value).__name__}")
    return _meta_value(where, value, 1)


def _too_deep(where: str) -> TreeFileError:
    return _fail(where, f"field 'meta' is nested more than {MAX_META_DEPTH} deep (lists and "
                        f"objects inside one another); flatten it")


def _meta_value(where: str, value: Any, depth: int) -> Any:
    if isinstance(value, (dict, list)) and depth > MAX_META_DEPTH:
        raise _too_deep(where)
    if isinstance(value, dict):
        if set(value) == {"__float__"}:  # a tagged non-finite float
            tag = value["__float__"]
            if not isinstance(tag, str) or tag not in NON_FINITE:
                raise _fail(where, f"field 'meta' has {{'__float__': {_short(tag)}}}; the tag "
                                   f"must be \"nan\", \"inf\" or \"-inf\"")
            return NON_FINITE[tag]
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _fail(where, f"field 'meta' keys must be strings, got {_short(key)}")
            out[key] = _meta_value(where, item, depth + 1)
        return out
    if isinstance(value, list):
        return [_meta_value(where, item, depth + 1) for item in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise _fail(where, f"field 'meta' holds a {type(value).__name__}; only JSON values "
                       f"(null, bool, number, string, list, object) are allowed")


def child_key(token_id: int, meta: dict[str, Any] | None) -> Any:
    """A child's key among its siblings: its token id, or ``(intervention_key, token_id)`` for
    a node of an intervened branch (meta ``intervention_key``), so the plain child of a token
    and its steered twin are two siblings; ``(intervention_key or "", token_id,
    constraint_key)`` for a node grown under a constraint (meta ``constraint_key``)."""
    branch = meta.get("intervention_key") if meta else None
    constraint = meta.get("constraint_key") if meta else None
    if constraint is not None:
        return ("" if branch is None else str(branch), token_id, str(constraint))
    return token_id if branch is None else (str(branch), token_id)


def check_meta_depth(where: str, meta: Any) -> None:
    """ValueError if ``meta`` (a dict given to ``add_child``/``update_meta``) nests lists,
    tuples and dicts deeper than ``MAX_META_DEPTH``, the most a tree file may hold (a
    non-finite float counts as one level: it is written as ``{"__float__": "nan"}``). A
    self-containing dict is refused the same way, instead of a RecursionError when saved."""
    todo = [(meta, 1)]
    while todo:
        value, depth = todo.pop()
        container = isinstance(value, (dict, list, tuple))
        if depth > MAX_META_DEPTH and (container or isinstance(value, float)
                                       and not math.isfinite(value)):
            raise _too_deep(where)
        if isinstance(value, dict):
            todo.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, (list, tuple)):
            todo.extend((item, depth + 1) for item in value)


def _node(index: int, raw: Any) -> dict[str, Any]:
    """The fields of ``nodes[index]``, each checked on its own (links are checked later)."""
    where = f"nodes[{index}]"
    if not isinstance(raw, dict):
        raise _fail(where, f"a node must be an object, got {type(raw).__name__}")
    if "node_id" in raw:
        node_id = _int(where, "node_id", raw["node_id"])
        where = f"node {node_id}"
    unknown = sorted(str(k) for k in raw if k not in NODE_FIELDS)
    if unknown:
        raise _fail(where, f"unknown field(s) {unknown}; a node has {list(NODE_FIELDS)}")
    missing = [k for k in NODE_FIELDS if k not in raw and k not in OPTIONAL_NODE_FIELDS]
    if missing:
        raise _fail(where, f"missing field(s) {missing}")
    parent_id = _int(where, "parent_id", raw["parent_id"], allow_none=True)
    token = raw["token"]
    if not isinstance(token, str):
        raise _fail(where, f"field 'token' must be a string, got {type(token).__name__}")
    node = {
        "node_id": node_id,
        "parent_id": parent_id,
        "depth": _int(where, "depth", raw["depth"]),
        "token_id": _int(where, "token_id", raw["token_id"], allow_none=True),
        "token": token,
        "token_bytes": _token_bytes(where, raw["token_bytes"]),
        "rank": _int(where, "rank", raw["rank"], allow_none=True),
        "meta": _meta(where, raw.get("meta", {})),
    }
    if parent_id is None:  # the root: the prompt, no token and no distribution of its own
        for name in ("token_id", "rank"):
            if node[name] is not None:
                raise _fail(where, f"field {name!r} must be null for the root, "
                                   f"got {node[name]}")
        if raw["entropy"] is not None:
            raise _fail(where, f"field 'entropy' must be null for the root, "
                               f"got {_short(raw['entropy'])}")
        node["raw_logprob"] = _float(where, "raw_logprob", raw["raw_logprob"])
        node["prob"] = _float(where, "prob", raw["prob"])
        node["cum_logprob"] = _float(where, "cum_logprob", raw["cum_logprob"])
        node["entropy"] = None
        for name in ("raw_logprob", "cum_logprob"):
            if node[name] != 0.0:
                raise _fail(where, f"field {name!r} must be 0 for the root, got {node[name]}")
        if node["prob"] != 1.0:
            raise _fail(where, f"field 'prob' must be 1 for the root, got {node['prob']}")
        return node
    for name in ("token_id", "rank"):
        if node[name] is None:
            raise _fail(where, f"field {name!r} must be an int (only the root has null)")
    (node["raw_logprob"], node["prob"], node["entropy"],
     node["cum_logprob"]) = check_scores(where, raw["raw_logprob"], raw["prob"], raw["entropy"],
                                         raw["cum_logprob"])
    return node


def _top(data: Any) -> None:
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise TreeFileError(f"not an inferviz tree: expected schema {SCHEMA!r}")
    version = data.get("version")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise TreeFileError(
            f"tree schema version {_short(version)} is not supported (this inferviz reads "
            f"version {SCHEMA_VERSION}); upgrade inferviz")
    unknown = sorted(str(k) for k in data if k not in TOP_FIELDS)
    if unknown:
        raise _fail("tree file", f"unknown field(s) {unknown}; a tree file has "
                                 f"{list(TOP_FIELDS)}")
    for name in ("prompt", "prompt_ids", "nodes"):
        if name not in data:
            raise _fail("tree file", f"missing field {name!r}")
    if not isinstance(data["prompt"], str):
        raise _fail("tree file", f"field 'prompt' must be a string, got "
                                 f"{type(data['prompt']).__name__}")
    if not isinstance(data.get("model", ""), str):
        raise _fail("tree file", f"field 'model' must be a string, got "
                                 f"{type(data['model']).__name__}")
    if not isinstance(data.get("meta", {}), dict):
        raise _fail("tree file", f"field 'meta' must be an object, got "
                                 f"{type(data['meta']).__name__}")
    ids = data["prompt_ids"]
    if not isinstance(ids, list) or not ids:
        raise _fail("tree file", "field 'prompt_ids' must be a non-empty list of token ids")
    for i, tok in enumerate(ids):
        _int("tree file", f"prompt_ids[{i}]", tok)
    if not isinstance(data["nodes"], list) or not data["nodes"]:
        raise _fail("tree file", "field 'nodes' must be a non-empty list of nodes")


def parse_tree(data: Any, strict: bool = True) -> dict[str, Any]:
    """Check a tree dict (``TokenTree.to_dict()`` or parsed JSON) and return ``{"prompt",
    "prompt_ids", "model", "meta", "next_id", "root_id", "nodes"}`` with ``nodes`` a list of
    node field dicts in id order (parents first). Raises :class:`TreeFileError` (a
    ``ValueError``) naming the node and field at the first problem; nothing is half-built.
    ``strict``: also check that the fields agree (token text, cum_logprob; see the module
    docstring); False skips that, never the structure and types."""
    _top(data)
    meta = _meta("tree file", data.get("meta", {}))
    nodes: dict[int, dict[str, Any]] = {}
    for index, raw in enumerate(data["nodes"]):
        node = _node(index, raw)
        if node["node_id"] in nodes:
            raise _fail(f"node {node['node_id']}", "field 'node_id' is used by two nodes; "
                                                   "node ids must be unique")
        nodes[node["node_id"]] = node
    roots = [i for i, n in nodes.items() if n["parent_id"] is None]
    if len(roots) != 1:
        raise _fail("tree file", f"a tree has exactly one root (a node with parent_id null); "
                                 f"this one has {len(roots)}")
    ordered = [nodes[i] for i in sorted(nodes)]
    siblings: set[tuple[int, Any]] = set()
    for node in ordered:
        parent_id = node["parent_id"]
        if parent_id is None:
            if node["depth"] != 0:
                raise _fail(f"node {node['node_id']}",
                            f"field 'depth' must be 0 for the root, got {node['depth']}")
            continue
        where = f"node {node['node_id']}"
        if parent_id not in nodes:
            raise _fail(where, f"field 'parent_id' names node {parent_id}, which is not in "
                               f"the file")
        if parent_id >= node["node_id"]:
            # Ids are handed out in order, so a parent is always older: this also rules out
            # cycles (a node its own parent or ancestor).
            raise _fail(where, f"field 'parent_id' must be the id of an earlier node (smaller "
                               f"than {node['node_id']}), got {parent_id}")
        expect = nodes[parent_id]["depth"] + 1
        if node["depth"] != expect:
            raise _fail(where, f"field 'depth' must be parent depth + 1 ({expect}), "
                               f"got {node['depth']}")
        key = (parent_id, child_key(node["token_id"], node["meta"]))
        if key in siblings:
            raise _fail(where, f"field 'token_id' {node['token_id']} is already a child of "
                               f"node {parent_id}; sibling tokens must be unique (per "
                               f"intervention: meta 'intervention_key')")
        siblings.add(key)
    top_id = ordered[-1]["node_id"]
    next_id = data.get("next_id", top_id + 1)
    _int("tree file", "next_id", next_id, low=0, high=MAX_ID + 1)
    if next_id <= top_id:
        raise _fail("tree file", f"field 'next_id' must be greater than every node id "
                                 f"({top_id}), got {next_id}")
    if strict:
        from .tree_consistency import check_node_consistency

        check_node_consistency(data["prompt"], ordered)
    return {"prompt": data["prompt"], "prompt_ids": list(data["prompt_ids"]),
            "model": data.get("model", ""), "meta": meta, "next_id": next_id,
            "root_id": roots[0], "nodes": ordered}


def check_token_ids(tree: Any, vocab_size: int, model_name: str = "this model") -> None:
    """ValueError if the prompt or a node of ``tree`` has a token id outside ``[0,
    vocab_size)`` (a tree made with another model's tokenizer). Cached per tree and vocabulary
    size, so it costs one pass over the nodes the first time a tree is used with a session."""
    lock = getattr(tree, "_lock", None)
    if lock is None or getattr(tree, "_vocab_checked", None) == vocab_size:
        return  # not a TokenTree (refused elsewhere), or checked already
    with lock:
        for i, tok in enumerate(tree.prompt_ids):
            if not 0 <= tok < vocab_size:
                raise ValueError(f"tree prompt_ids[{i}] is token id {tok}, outside the "
                                 f"vocabulary of {model_name} (ids 0..{vocab_size - 1}); "
                                 f"was the tree made with another model?")
        for node in tree.nodes.values():
            if node.token_id is not None and not 0 <= node.token_id < vocab_size:
                raise ValueError(f"node {node.node_id}: field 'token_id' {node.token_id} is "
                                 f"outside the vocabulary of {model_name} (ids "
                                 f"0..{vocab_size - 1}); was the tree made with another model?")
    tree._vocab_checked = vocab_size
