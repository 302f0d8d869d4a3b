"""One check for what an inference server sends back, used by every dialect through
``RemoteBackend``: a reply is data from another process, possibly a hostile one.

- token ids are ints in ``[0, vocab_size)`` of the vocabulary the session declared (from the
  local tokenizer or the server's metadata at connect time); a reply never widens it;
- log-probabilities are numbers (not strings, not null), not NaN, ``<= 0`` (a 1e-3 round-off
  allowed) or ``-inf``; the probabilities of a row's top tokens sum to at most 1 (1 % allowed);
- shapes: every object, list, string and number is the JSON type the dialect reads (nothing is
  coerced: ``"-1.5"`` is not a log-probability, ``5.0`` not a token id);
- sizes: a context length is a positive int, a declared vocabulary at most
  :data:`MAX_VOCAB` tokens, a token's bytes at most :data:`MAX_TOKEN_BYTES`; a reply's size and
  time are bounded by the transport (``http.py``).

Every refusal is a ``MalformedReply`` (a ``ServerError``) naming the server and what was wrong.
A shape no check here foresaw still ends as one: the dialects are called through
``RemoteBackend``, which reports what their parsers raise the same way (:func:`malformed`).
"""

from __future__ import annotations

import json
import math
from typing import Any

from .http import ServerError

LOGPROB_SLACK = 1e-3  # float round-off above 0 that a server may send
MASS_SLACK = 0.01  # probability mass of a top-N row above 1 that round-off explains
# The largest vocabulary a server may declare (every row is a dense [B, V] tensor; the largest
# real ones are ~256k). vocab_size= or a local tokenizer at connect time is not capped.
MAX_VOCAB = 2**21
MAX_TOKEN_BYTES = 1024  # bytes of one token's text a server may send (llama.cpp "bytes")

_KINDS = {dict: "a JSON object", list: "a list", str: "a string"}


class MalformedReply(ServerError):
    """The server answered, but with something that is not a valid reply."""


def check_top(url: str, top: Any, vocab_size: int) -> dict[int, float]:
    """A row of ``{token_id: logprob}`` checked against the vocabulary; returns it."""
    if not isinstance(top, dict):
        raise MalformedReply(f"{url} sent top log-probabilities as {type(top).__name__}, "
                             "not an object of token id -> log-probability")
    for token_id, logprob in top.items():
        check_token_id(url, token_id, vocab_size)
        check_logprob(url, token_id, logprob)
    finite = [v for v in top.values() if v > -math.inf]
    if finite:
        peak = max(finite)
        mass = math.exp(peak) * sum(math.exp(v - peak) for v in finite)
        if mass > 1 + MASS_SLACK:
            raise MalformedReply(f"{url} sent top log-probabilities whose probabilities sum to "
                                 f"{mass:.3f} (more than 1): not a distribution")
    return top


def check_token_id(url: str, token_id: Any, vocab_size: int) -> int:
    if not isinstance(token_id, int) or isinstance(token_id, bool):
        raise MalformedReply(f"{url} sent token id {_shown(token_id)} "
                             f"({_json_type(token_id)}), not an int")
    if not 0 <= token_id < vocab_size:
        raise MalformedReply(f"{url} sent token id {token_id}, outside the vocabulary "
                             f"(ids 0..{vocab_size - 1})")
    return token_id


def check_logprob(url: str, token_id: Any, logprob: Any) -> float:
    if isinstance(logprob, bool) or not isinstance(logprob, (int, float)):
        raise MalformedReply(f"{url} sent log-probability {_shown(logprob)} "
                             f"({_json_type(logprob)}) for token {token_id}, not a number")
    if math.isnan(logprob) or logprob > LOGPROB_SLACK:
        raise MalformedReply(f"{url} sent log-probability {_shown(logprob)} for token "
                             f"{token_id}; a log-probability is <= 0 or -inf")
    return float(logprob)


def check_context(url: str, value: Any, what: str = "a context length",
                  limit: int | None = None) -> int | None:
    """A size from the server's metadata (context length, vocabulary): a positive int (at
    most ``limit``), or None when absent."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise MalformedReply(f"{url} declared {what} of {value!r}; it must be a positive int")
    if limit is not None and value > limit:
        raise MalformedReply(f"{url} declared {what} of {value}, more than {limit}; pass "
                             "vocab_size=... (or the model's tokenizer) if that is right")
    return value


def expect(url: str, value: Any, kind: type, what: str) -> Any:
    """``value`` if it is of JSON type ``kind`` (dict, list, str), else MalformedReply."""
    if not isinstance(value, kind):
        raise MalformedReply(f"{url} sent {what} as {_json_type(value)}, not "
                             f"{_KINDS.get(kind, kind.__name__)}")
    return value


def member(url: str, obj: dict, key: str, kind: type, what: str) -> Any:
    """``obj[key]``, present and of type ``kind``."""
    if key not in obj:
        raise MalformedReply(f"{url} sent {what} without its {key!r}")
    return expect(url, obj[key], kind, f"{what}'s {key!r}")


def id_key(url: str, key: Any, prefix: str = "") -> int:
    """A token id written as a string key (vLLM: ``"token_id:123"``, ``"123"``); its range is
    checked with the row (:func:`check_top`)."""
    text = key[len(prefix):] if isinstance(key, str) and key.startswith(prefix) else None
    digits = text[1:] if text is not None and text.startswith("-") else text
    if not digits or not digits.isascii() or not digits.isdigit() or len(digits) > 18:
        raise MalformedReply(f"{url} keyed a log-probability by {key!r}, not "
                             f"'{prefix}<token id>'")
    return int(text)


def expect_int(url: str, value: Any, what: str) -> int:
    """An int (not a bool, not 5.0); its range is checked where the vocabulary is known."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedReply(f"{url} sent {what} {value!r} ({_json_type(value)}), not an int")
    return value


def check_rank(url: str, value: Any, vocab_size: int | None = None) -> int | None:
    """A 1-based rank the server reports for a token (vLLM), or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (
            vocab_size is not None and value > vocab_size):
        raise MalformedReply(f"{url} sent rank {_shown(value)}; a rank is an int in "
                             f"1..{vocab_size or 'the vocabulary size'}")
    return value


def check_token_bytes(url: str, token_id: Any, value: Any) -> bytes:
    """A token's bytes sent as a list of ints 0..255 (llama.cpp), at most MAX_TOKEN_BYTES."""
    expect(url, value, list, f"the bytes of token {token_id}")
    if len(value) > MAX_TOKEN_BYTES or not all(
            isinstance(b, int) and not isinstance(b, bool) and 0 <= b < 256 for b in value):
        raise MalformedReply(f"{url} sent the bytes of token {token_id} as something other "
                             f"than at most {MAX_TOKEN_BYTES} ints 0..255")
    return bytes(value)


def _shown(value: Any) -> str:
    """A value as the server wrote it (JSON), cut to 60 characters."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


PARSE_ERRORS = (AttributeError, KeyError, TypeError, ValueError, IndexError)


def malformed(url: str, what: str, err: BaseException) -> MalformedReply:
    """The error for a reply the dialect's parser could not read."""
    return MalformedReply(f"{url} sent a malformed reply to {what} "
                          f"({type(err).__name__}: {err})")
