"""One check for what an inference server sends back, used by every dialect through
``RemoteBackend``: a reply is data from another process, possibly a hostile one.

- token ids are ints in ``[0, vocab_size)`` of the vocabulary the session declared (from the
  local tokenizer or the server's metadata at connect time); a reply never widens it;
- log-probabilities are numbers (not strings, not null), not NaN, ``<= 0`` (a 1e-3 round-off
  allowed) or ``-inf``; the probabilities of a row's top tokens sum to at most 1 (1 % allowed);
- sizes: a context length is a positive int.

Every refusal is a ``MalformedReply`` (a ``ServerError``) naming the server and what was wrong.
Shapes the dialects' parsers did not expect (``choices`` an object, a list body, ...) are caught
where the dialect is called (``RemoteBackend``) and reported the same way.
"""

from __future__ import annotations

import math
from typing import Any

from .http import ServerError

LOGPROB_SLACK = 1e-3  # float round-off above 0 that a server may send
MASS_SLACK = 0.01  # probability mass of a top-N row above 1 that round-off explains


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
        raise MalformedReply(f"{url} sent token id {token_id!r} ({type(token_id).__name__}), "
                             "not an int")
    if not 0 <= token_id < vocab_size:
        raise MalformedReply(f"{url} sent token id {token_id}, outside the vocabulary "
                             f"(ids 0..{vocab_size - 1})")
    return token_id


def check_logprob(url: str, token_id: Any, logprob: Any) -> float:
    if isinstance(logprob, bool) or not isinstance(logprob, (int, float)):
        raise MalformedReply(f"{url} sent log-probability {logprob!r} "
                             f"({type(logprob).__name__}) for token {token_id}, not a number")
    if math.isnan(logprob) or logprob > LOGPROB_SLACK:
        raise MalformedReply(f"{url} sent log-probability {logprob!r} for token {token_id}; "
                             "a log-probability is <= 0 or -inf")
    return float(logprob)


def check_context(url: str, value: Any) -> int | None:
    """A context length from the server's metadata: a positive int, or None when absent."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise MalformedReply(f"{url} declared a context length of {value!r}; it must be a "
                             "positive int")
    return value


PARSE_ERRORS = (AttributeError, KeyError, TypeError, ValueError, IndexError)


def malformed(url: str, what: str, err: BaseException) -> MalformedReply:
    """The error for a reply the dialect's parser could not read."""
    return MalformedReply(f"{url} sent a malformed reply to {what} "
                          f"({type(err).__name__}: {err})")
