"""Forward planning for the Engine: which tokens a forward computes and stores, and the
tree-attention layout (``layout="packed"``: one row, each cached token once, a mask letting
every token see its own ancestors only). Pure bookkeeping over the KV store's trie; the
Engine runs the forward (see :mod:`inferviz.engine`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .kvstore import TrieNode

# A packed forward's mask is [queries, past + queries]; past this many entries, use rows.
PACKED_MASK_LIMIT = 1 << 24


@dataclass
class NewToken:
    """A token whose keys/values this forward computes and the store will keep."""

    parent: TrieNode | int  # a cached trie node, or the index of an earlier NewToken
    token_id: int
    row: int
    column: int  # index in the new block


@dataclass
class Query:
    """A token of a packed row whose keys/values this forward computes."""

    parent_q: int | None       # the query it follows, or None if it follows the cached past
    parent_node: TrieNode      # the cached node it follows (when parent_q is None)
    top_column: int            # that node's column in the packed past (-1: the root)
    token_id: int
    position: int
    store: bool                # False: already cached, recomputed only for its logits


@dataclass
class Packed:
    plan: list[NewToken]       # tokens to store (row 0, column = query index)
    past_slots: list[int]      # the packed past: each cached token once
    positions: torch.Tensor    # [past + queries] position of every column
    allowed: torch.Tensor      # [queries, past + queries] bool: query may attend to column
    query_tokens: list[int]
    last: list[int]            # for each sequence, the query of its last token


def packed_plan(seqs, matched, cached, new, root: TrieNode, layout: str) -> Packed | None:
    """The layout of a tree-attention forward, or None to use padded rows.

    One row holds the union of the cached prefixes (each cached token once, however many
    sequences share it) followed by every distinct uncached token; a 4D mask lets each
    token see exactly its own ancestors. "auto" packs when the batch shares enough of its
    past that the packed row is under half the padded rows' size."""
    if layout == "rows" or (layout == "auto" and len(seqs) == 1):
        return None
    # Union of the cached prefixes. Each row's prefix is walked from its deepest token up
    # to the first one already taken: its new columns form one segment, deepest first,
    # and the rest of its ancestors are those of the column where it stopped.
    column: dict[int, int] = {}
    past_nodes: list[TrieNode] = []
    segment_of: list[int] = []  # column -> segment
    segments: list[tuple[int, int]] = []  # (end column, column of the stop or -1)
    for m, c in zip(matched, cached):
        stop = -1
        for j in range(c - 1, -1, -1):
            col = column.get(id(m[j]))
            if col is not None:
                stop = col
                break
            column[id(m[j])] = len(past_nodes)
            past_nodes.append(m[j])
            segment_of.append(len(segments))
        segments.append((len(past_nodes), stop))
    queries: list[Query] = []
    index: dict[tuple, int] = {}
    last: list[int] = []
    for seq, m, c in zip(seqs, matched, cached):
        top = column[id(m[c - 1])] if c else -1
        key_parent: tuple = ("past", top)
        parent_q: int | None = None
        for j in range(c, len(seq)):
            key = (key_parent, seq[j])
            q = index.get(key)
            if q is None:
                q = index[key] = len(queries)
                queries.append(Query(parent_q, m[c - 1] if c else root, top,
                                      seq[j], j, j >= len(m)))
            key_parent, parent_q = ("query", q), q
        last.append(q)
    width = len(past_nodes) + len(queries)
    if layout == "auto" and (
            2 * width > len(seqs) * (max(cached) + max(new))
            or len(queries) * width > PACKED_MASK_LIMIT):
        return None

    def ancestor_ranges(col: int):
        while col >= 0:
            end, stop = segments[segment_of[col]]
            yield col, end
            col = stop

    past = len(past_nodes)
    allowed = torch.zeros(len(queries), width, dtype=torch.bool)
    plan: list[NewToken] = []
    plan_index: dict[int, int] = {}
    for q, query in enumerate(queries):
        if query.parent_q is None:
            for start, end in ancestor_ranges(query.top_column):
                allowed[q, start:end] = True
        else:
            allowed[q] = allowed[query.parent_q]
        allowed[q, past + q] = True
        if query.store:
            parent = query.parent_node if query.parent_q is None \
                else plan_index[query.parent_q]
            plan_index[q] = len(plan)
            plan.append(NewToken(parent, query.token_id, 0, q))
    positions = torch.tensor([n.depth - 1 for n in past_nodes]
                             + [query.position for query in queries], dtype=torch.long)
    return Packed(plan, [n.slot for n in past_nodes], positions, allowed,
                   [query.token_id for query in queries], last)


def plan_new_tokens(seqs, matched, cached, root: TrieNode) -> list[NewToken]:
    """Tokens to store, parents before children; a prefix that several rows share but the
    store lacks (identical SMC particles, two new prompts) is stored once."""
    plan: list[NewToken] = []
    seen: dict[tuple[int, int], int] = {}  # (parent key, token) -> plan index
    for row, (seq, m, c) in enumerate(zip(seqs, matched, cached)):
        parent: TrieNode | int = m[-1] if m else root
        for j in range(len(m), len(seq)):
            key = (id(parent) if isinstance(parent, TrieNode) else -1 - parent, seq[j])
            if key not in seen:
                seen[key] = len(plan)
                plan.append(NewToken(parent, seq[j], row, j - c))
            parent = seen[key]
    return plan
