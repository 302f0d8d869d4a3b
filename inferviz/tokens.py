"""Exact bytes of a token, whatever the tokenizer family, so token text is shown faithfully.

``tokenizer.decode([id])`` loses information: a partial UTF-8 character becomes U+FFFD and some
tokenizers strip a leading space. We map the token's vocabulary piece back to bytes instead:
byte-level BPE (GPT-2, Llama 3, SmolLM, Qwen) through the inverse of GPT-2's byte-to-unicode
table; SentencePiece (Gemma, Llama 2) through "▁" -> space and ``<0xNN>`` byte fallback.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

_BYTE_FALLBACK = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


@lru_cache(maxsize=1)
def _unicode_to_bytes() -> dict[str, int]:
    """Inverse of GPT-2's ``bytes_to_unicode`` table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def _decoder_kind(tokenizer: Any) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or backend.decoder is None:
        return "plain"
    spec = json.dumps(json.loads(backend.to_str()).get("decoder"))
    if "ByteLevel" in spec:
        return "bytelevel"
    if "ByteFallback" in spec or "\u2581" in spec or "Metaspace" in spec:
        return "sentencepiece"
    return "plain"


class TokenBytes:
    """Callable ``id -> bytes`` for one tokenizer, memoised per id."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.kind = _decoder_kind(tokenizer)
        self.special_ids = set(getattr(tokenizer, "all_special_ids", []) or [])
        self._cache: dict[int, bytes] = {}

    def __call__(self, token_id: int) -> bytes:
        token_id = int(token_id)
        cached = self._cache.get(token_id)
        if cached is None:
            cached = self._compute(token_id)
            self._cache[token_id] = cached
        return cached

    def _compute(self, token_id: int) -> bytes:
        piece = self.tokenizer.convert_ids_to_tokens(token_id)
        if piece is None:
            return self.tokenizer.decode([token_id]).encode("utf-8")
        if token_id in self.special_ids:
            return piece.encode("utf-8")
        if self.kind == "bytelevel":
            table = _unicode_to_bytes()
            if all(ch in table for ch in piece):
                return bytes(table[ch] for ch in piece)
            return piece.encode("utf-8")  # added tokens are stored as plain text
        if self.kind == "sentencepiece":
            match = _BYTE_FALLBACK.match(piece)
            if match:
                return bytes([int(match.group(1), 16)])
            return piece.replace("\u2581", " ").encode("utf-8")
        return self.tokenizer.decode([token_id]).encode("utf-8")
