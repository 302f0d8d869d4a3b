"""Tokens as every view shows them: whitespace made visible, control characters as bytes (the
Python twin of js/src/shared/format.js ``displayToken``)."""

from __future__ import annotations

VISIBLE = {" ": "·", "\n": "↵", "\t": "→", "\r": "␍"}


def display_token(text: str) -> str:
    """A token with whitespace made visible (``·`` ``↵`` ``→`` ``␍``), other control characters
    as ``<0xNN>``, the empty token as ``∅``."""
    if text == "":
        return "∅"
    out = []
    for ch in text:
        if ch in VISIBLE:
            out.append(VISIBLE[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"<0x{ord(ch):02X}>")
        else:
            out.append(ch)
    return "".join(out)
