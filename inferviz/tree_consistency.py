"""Does a tree agree with itself, and with the model that uses it?

A tree file can be well-formed (:mod:`inferviz.tree_schema`) and still lie: a token label that
is not the text of its bytes (``<script>`` over ``\\xbd``), a ``cum_logprob`` that is not the
sum of the path, ``prompt_ids`` that are not the prompt, or token ids of another model's
vocabulary, which a session would silently read as other tokens. This module checks those:

- when a tree is loaded (``TokenTree.from_dict``/``from_json`` with ``strict=True``, the
  default): :func:`check_node_consistency`;
- the first time a tree is used with a session (:func:`check_tree_for_session`): the model
  identity recorded in ``tree.meta`` when a session made the tree (``vocab_size`` and a
  fingerprint of the tokenizer's vocabulary, :func:`vocabulary_identity`) against the session's,
  and, for a loaded tree, that ``prompt_ids`` are the prompt under the session's tokenizer; then
  the token ids against the vocabulary (:func:`inferviz.tree_schema.check_token_ids`).

``strict=False`` (files written by other tools) skips these consistency checks, never the
structural ones nor the vocabulary range (which keeps torch from indexing out of bounds).
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from .tree_schema import TreeFileError, check_token_ids

# cum_logprob of a file from another tool may be summed in another order or precision.
CUM_REL_TOLERANCE = 1e-6
CUM_ABS_TOLERANCE = 1e-4


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


def prompt_bytes(prompt: str) -> bytes:
    """The root's ``token_bytes``: the prompt in UTF-8 (a lone surrogate, which a JSON file can
    hold but no text encoding can, is kept as its 3 bytes, ``surrogatepass``)."""
    return prompt.encode("utf-8", errors="surrogatepass")


def _short(text: str) -> str:
    text = repr(text)
    return text if len(text) <= 60 else text[:57] + "..."


def check_node_consistency(prompt: str, nodes: list[dict[str, Any]]) -> None:
    """TreeFileError at the first node whose fields disagree: the root's ``token`` and
    ``token_bytes`` are not the prompt, a node's ``token`` is not the readable text of its
    ``token_bytes``, or ``cum_logprob`` is not the parent's plus ``raw_logprob`` (within
    float rounding). ``nodes``: parsed node dicts, parents first."""
    cum: dict[int, float] = {}
    for node in nodes:
        where = f"node {node['node_id']}"
        if node["parent_id"] is None:
            if node["token"] != prompt:
                raise TreeFileError(f"{where}: field 'token' of the root must be the prompt "
                                    f"{_short(prompt)}, got {_short(node['token'])}")
            if node["token_bytes"] != prompt_bytes(prompt):
                raise TreeFileError(f"{where}: field 'token_bytes' of the root must be the "
                                    f"prompt in UTF-8 ({prompt_bytes(prompt)[:24].hex()}...), "
                                    f"got {node['token_bytes'][:24].hex()}...")
            cum[node["node_id"]] = 0.0
            continue
        text = readable_token(node["token_bytes"])
        if node["token"] != text:
            raise TreeFileError(f"{where}: field 'token' must be the text of its token_bytes "
                                f"({node['token_bytes'][:24].hex() or 'empty'}: "
                                f"{_short(text)}), got {_short(node['token'])}")
        expect = cum[node["parent_id"]] + node["raw_logprob"]
        got = node["cum_logprob"]
        if not (got == expect or math.isclose(got, expect, rel_tol=CUM_REL_TOLERANCE,
                                              abs_tol=CUM_ABS_TOLERANCE)):
            raise TreeFileError(f"{where}: field 'cum_logprob' must be the parent's "
                                f"cum_logprob plus raw_logprob ({expect!r}), got {got!r}")
        cum[node["node_id"]] = got


# ------------------------------------------------------------------ use with a session
def vocabulary_identity(session: Any) -> dict[str, Any]:
    """What the token ids of ``session`` mean: ``{"vocab_size": V}`` plus, when its tokenizer
    can list its vocabulary, ``"vocabulary": "sha256:<16 hex>"`` (a fingerprint of every
    ``(id, piece)`` pair, so two models sharing a tokenizer match). Computed once a session."""
    cached = getattr(session, "_vocabulary_identity", None)
    if cached is not None:
        return dict(cached)
    identity: dict[str, Any] = {"vocab_size": int(session.vocab_size)}
    try:
        vocab = session.tokenizer.get_vocab()
    except Exception:  # a server's tokenizer cannot list it (ServerLacks), or none at all
        vocab = None
    if isinstance(vocab, dict) and vocab:
        pairs = sorted((int(i), str(piece)) for piece, i in vocab.items())
        digest = hashlib.sha256(json.dumps(pairs).encode("utf-8", "surrogatepass"))
        identity["vocabulary"] = "sha256:" + digest.hexdigest()[:16]
    try:
        session._vocabulary_identity = dict(identity)
    except AttributeError:  # an object that takes no attributes: recompute next time
        pass
    return identity


def _describe(name: str, identity: dict[str, Any]) -> str:
    parts = [f"vocab_size {identity.get('vocab_size', '?')}"]
    if identity.get("vocabulary"):
        parts.append(f"vocabulary {identity['vocabulary']}")
    return f"{name} ({', '.join(parts)})"


def _check_identity(tree: Any, session: Any) -> None:
    recorded = {k: tree.meta[k] for k in ("vocab_size", "vocabulary") if k in tree.meta}
    if not recorded:
        return  # made by hand or by an older inferviz: the id range check still runs
    mine = vocabulary_identity(session)
    if recorded.get("vocabulary") and mine.get("vocabulary"):
        same = recorded["vocabulary"] == mine["vocabulary"]  # the tokenizer defines the ids
    else:
        same = recorded.get("vocab_size", mine["vocab_size"]) == mine["vocab_size"]
    if not same:
        raise ValueError(
            f"this tree was made with {_describe(repr(tree.model or '?'), recorded)} and is "
            f"used with {_describe(repr(session.name), mine)}: its token ids would be read as "
            f"other tokens. Use it with the model that made it; for a file from another tool, "
            f"load it with TokenTree.from_json(text, strict=False)")


def _decode_matches(tokenizer: Any, ids: list[int], prompt: str) -> bool:
    for skip in (False, True):
        try:
            if tokenizer.decode(ids, skip_special_tokens=skip) == prompt:
                return True
        except (TypeError, ValueError, OverflowError):
            return False
    return False


def _check_prompt(tree: Any, session: Any) -> None:
    """prompt_ids must be what the session's tokenizer makes of the prompt, or decode to it
    (tokenizers do not always round-trip: BOS, special tokens, spacing clean-up)."""
    tokenizer = getattr(session, "tokenizer", None)
    if tokenizer is None:
        return
    try:
        if session.encode(tree.prompt) == tree.prompt_ids:
            return
    except (TypeError, ValueError):  # a prompt the tokenizer cannot take (lone surrogate)
        pass
    if _decode_matches(tokenizer, tree.prompt_ids, tree.prompt):
        return
    try:
        decoded = tokenizer.decode(tree.prompt_ids, skip_special_tokens=True)
    except (TypeError, ValueError, OverflowError):
        decoded = "(not decodable)"
    raise ValueError(f"tree prompt_ids are not its prompt under the tokenizer of "
                     f"{session.name!r}: prompt_ids decode to {_short(decoded)}, the prompt is "
                     f"{_short(tree.prompt)}; was the tree made with another tokenizer, or "
                     f"edited? (a file from another tool: TokenTree.from_json(text, "
                     f"strict=False))")


def check_tree_for_session(tree: Any, session: Any) -> None:
    """ValueError if ``tree`` cannot be used with ``session``: another model's vocabulary, a
    loaded tree whose ``prompt_ids`` are not its prompt, or a token id outside the vocabulary.
    Cached per tree and session vocabulary; adding a child outside the checked vocabulary
    clears the cache (``TokenTree.add_child``), so the next use checks again."""
    if getattr(tree, "_lock", None) is None:
        return  # not a TokenTree: refused elsewhere
    if getattr(tree, "strict", True):
        key = (session.name, session.vocab_size, id(session.tokenizer))
        if tree._use_checked != key:
            with tree._lock:
                _check_identity(tree, session)
                if tree._prompt_unverified:
                    _check_prompt(tree, session)
                tree._use_checked = key
    check_token_ids(tree, session.vocab_size, repr(session.name))
