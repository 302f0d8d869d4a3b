"""Token bytes are exact for byte-level BPE tokenizers: spaces, newlines, partial UTF-8."""

from __future__ import annotations

import pytest

from inferviz.tokens import TokenBytes


def test_token_bytes_concatenate_to_the_text(tiny_tokenizer):
    text = "naïve café — 東京 🙂 tokens\nnew line\ttab"
    ids = tiny_tokenizer(text)["input_ids"]
    token_bytes = TokenBytes(tiny_tokenizer)
    assert token_bytes.kind == "bytelevel"
    assert b"".join(token_bytes(i) for i in ids).decode("utf-8") == text


@pytest.mark.model
def test_default_tokenizer_pieces_are_faithful(default_session):
    s = default_session
    text = " Paris\n\n  東京🙂"
    ids = s.encode(text)
    assert b"".join(s.token_bytes(i) for i in ids).decode("utf-8") == text
    (paris,) = s.encode(" Paris")
    assert s.token_bytes(paris) == b" Paris"
