"""``Session.connect``: check the arguments, find the server's dialect, model, vocabulary and
context, and build the remote backend, tokenizer and token-bytes table a Session needs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ..validate import check_int
from .dialects import detect, get_dialect
from .http import MAX_REPLY_BYTES, HttpClient, ServerError
from .remote import RemoteBackend, RemoteTokenBytes, ServerTokenizer
from .reply_check import MAX_VOCAB, PARSE_ERRORS, MalformedReply, check_context, malformed

TOKENIZER_PROBE = "Hello world, 1 2 3."


@dataclass
class Connection:
    backend: RemoteBackend
    tokenizer: Any
    token_bytes: Any
    eos_token_ids: set[int]


def normalise_url(base_url: Any) -> str:
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise ValueError(f"base_url must be an http:// or https:// URL such as "
                         f"'http://localhost:8000'; got {base_url!r}")
    url = base_url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def _check_number(name: str, value: Any, zero_ok: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 \
            or (value == 0 and not zero_ok):
        raise ValueError(f"{name} must be a number of seconds {'>=' if zero_ok else '>'} 0; "
                         f"got {value!r}")
    return float(value)


def _local_tokenizer(tokenizer: Any) -> Any:
    if tokenizer is None or not isinstance(tokenizer, (str, os.PathLike)):
        return tokenizer
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(os.fspath(tokenizer))


def open_connection(base_url: Any, model: str | None = None, tokenizer: Any = None,
                    api_key: str | None = None, top_logprobs: int | str = 20,
                    timeout: float = 60.0, max_retries: int = 5, concurrency: int = 16,
                    dialect: str = "auto", vocab_size: int | None = None,
                    eos_token_ids: list[int] | None = None, backoff: float = 0.2,
                    max_reply_bytes: int = MAX_REPLY_BYTES) -> Connection:
    url = normalise_url(base_url)
    if model is not None and not isinstance(model, str):
        raise TypeError(f"model must be the served model's name (str) or None; got {model!r}")
    if top_logprobs != "full":
        check_int("top_logprobs", top_logprobs, 1)
    _check_number("timeout", timeout)
    check_int("max_retries", max_retries, 0, 100)
    check_int("concurrency", concurrency, 1, 1024)
    _check_number("backoff", backoff, zero_ok=True)
    check_int("max_reply_bytes", max_reply_bytes, 1024)
    if vocab_size is not None:
        check_int("vocab_size", vocab_size, 1)
    if api_key is not None and not isinstance(api_key, str):
        raise TypeError("api_key must be a str or None")
    if not isinstance(dialect, str):
        raise TypeError(f"dialect must be a str; got {dialect!r}")
    local = _local_tokenizer(tokenizer)

    http = HttpClient(url, api_key=api_key, timeout=timeout, max_retries=max_retries,
                      backoff=backoff, max_connections=concurrency,
                      max_reply_bytes=max_reply_bytes)
    try:
        try:
            speaks = detect(http) if dialect == "auto" else get_dialect(dialect)
            info = speaks.info(http, model)
            info.max_positions = check_context(url, info.max_positions)
            if vocab_size is None and local is None:  # the server's word is used: check it
                info.vocab_size = check_context(url, info.vocab_size, "a vocabulary size",
                                                MAX_VOCAB)
        except MalformedReply as err:  # it answered, with metadata we cannot use
            raise ValueError(f"the server at {url} cannot be used: {err}") from err
        except ServerError as err:
            raise ValueError(f"no inference server answered at {url}: {err}") from err
        except PARSE_ERRORS as err:
            bad = malformed(url, "its model list / properties", err)
            raise ValueError(f"the server at {url} cannot be used: {bad}") from bad
        vocab = vocab_size or (len(local) if local is not None else None) or info.vocab_size
        if vocab is None:
            raise ValueError(f"the {speaks.name} server at {url} does not say its vocabulary "
                             f"size; pass tokenizer=... (the model's folder or hub id) or "
                             f"vocab_size=...")
        n = vocab if top_logprobs == "full" else top_logprobs
        backend = RemoteBackend(http, speaks, info.model, vocab, info.max_positions, n,
                                concurrency)
    except BaseException:
        http.close()
        raise
    if local is not None:
        try:
            _check_same_tokenizer(backend, local)
        except BaseException:
            backend.close()
            raise
        eos = local.eos_token_id
        eos_ids = set() if eos is None else {int(eos)}
    else:
        local_or_server = ServerTokenizer(backend)
        eos_ids = set()
    if eos_token_ids is not None:
        eos_ids = {int(t) for t in eos_token_ids}
    tok = local if local is not None else local_or_server
    return Connection(backend, tok, RemoteTokenBytes(backend, local), eos_ids)


def _check_same_tokenizer(backend: RemoteBackend, local: Any) -> None:
    """ValueError when the server tokenises a probe differently from the local tokenizer
    (token ids would mean other tokens); skipped when the server has no /tokenize."""
    if not backend.dialect.has_tokenizer_endpoints:
        return
    try:
        served = backend.dialect.tokenize(backend.http, backend.model, TOKENIZER_PROBE, False)
    except MalformedReply as err:  # it answered, with a reply we cannot read
        raise ValueError(f"the server at {backend.http.base_url} cannot be used: {err}") from err
    except ServerError:  # no /tokenize here: nothing to compare
        return
    mine = list(local(TOKENIZER_PROBE, add_special_tokens=False)["input_ids"])
    if served != mine:
        raise ValueError(f"the tokenizer given does not match the server's: {TOKENIZER_PROBE!r} "
                         f"is {mine} locally and {served} on the server; pass the served "
                         f"model's tokenizer, or tokenizer=None to use the server's")
