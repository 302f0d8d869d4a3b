"""The remote backend: next-token log-probabilities from an inference server over HTTP.

One request per sequence (a token-id prompt, one token of look-ahead, its top ``N``), all of a
batch in flight together on a thread pool so the server's own continuous batching does the
work: a tree level, every SMC particle, every beam. Replies become dense ``[B, V]`` rows of raw
log-probabilities with ``-inf`` for the tokens the server did not return; a row is exact when it
holds the whole vocabulary (``top_logprobs`` >= vocabulary and a server allowing it). Rows are
numpy float32 arrays: nothing on this path imports torch.
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator

import numpy as np

from .base import NextTokenScores, PromptScores, ServerLacks
from .dialects import Dialect, Step
from .http import HttpClient
from .reply_check import (
    PARSE_ERRORS,
    MalformedReply,
    check_logprob,
    check_rank,
    check_token_id,
    check_top,
    malformed,
)

UNKNOWN_CONTEXT = 1 << 30  # the server did not say; it will refuse what is too long itself


def display_name(model: str) -> str:
    """The served model's name for people: llama.cpp names a model by its file's path
    (``/models/x/SmolLM2-135M-Instruct.Q4_1.gguf``); show the file's name. Hub ids
    (``Qwen/Qwen2.5-7B``) stay as they are."""
    if model.startswith(("/", "\\")) or model.lower().endswith(".gguf") or ":\\" in model:
        return model.replace("\\", "/").rsplit("/", 1)[-1] or model
    return model


class RemoteBackend:
    """Talks to one model on one server through a :class:`Dialect`.

    ``top_logprobs``: tokens asked for a row (capped at the vocabulary); ``top_n`` is None when
    that covers the vocabulary (full distributions), else that number."""

    is_remote = True

    def __init__(self, http: HttpClient, dialect: Dialect, model: str, vocab_size: int,
                 max_positions: int | None, top_logprobs: int, concurrency: int = 16) -> None:
        self.http = http
        self.dialect = dialect
        self.model = model  # the id requests name
        self.name = display_name(model)
        self.vocab_size = int(vocab_size)
        self.max_positions = int(max_positions or UNKNOWN_CONTEXT)
        self.top_logprobs = min(int(top_logprobs), self.vocab_size)
        self.concurrency = concurrency
        self.pieces: dict[int, bytes] = {}  # token bytes the server sent along (llama.cpp)
        self.requests = 0
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="inferviz-remote")

    @property
    def top_n(self) -> int | None:
        return None if self.top_logprobs >= self.vocab_size else self.top_logprobs

    def __repr__(self) -> str:
        return (f"RemoteBackend({self.dialect.name} at {self.http.base_url}, model="
                f"{self.model!r}, top_logprobs={self.top_logprobs})")

    # ------------------------------------------------------------------ requests
    def _call(self, fn, *args):
        with self._lock:
            self.requests += 1
        try:
            return fn(self.http, self.model, *args)
        except PARSE_ERRORS as err:  # a reply of a shape the dialect does not read
            what = getattr(fn, "__name__", "")
            raise malformed(self.http.base_url, "a request" if what == "<lambda>" else what,
                            err) from err

    def map(self, fn, items: list) -> list:
        """``fn(http, model, item)`` for every item, ``concurrency`` requests in flight."""
        if len(items) == 1:
            return [self._call(fn, items[0])]
        return list(self._pool.map(lambda item: self._call(fn, item), items))

    def next_token(self, seqs: list[list[int]]) -> NextTokenScores:
        if not isinstance(seqs, (list, tuple)) or not seqs:
            raise ValueError("seqs must be a non-empty list of token-id lists")
        keys: dict[tuple[int, ...], int] = {}
        index = [keys.setdefault(tuple(int(t) for t in s), len(keys)) for s in seqs]
        n = self.top_logprobs
        steps = self.map(lambda http, model, seq: self.dialect.next_token(http, model, seq, n),
                         [list(k) for k in keys])
        scores, approx = self.dense([s.top for s in steps])
        for step in steps:
            self.pieces.update(step.pieces)
        if len(keys) != len(seqs):
            rows = np.asarray(index)
            scores, approx = scores[rows], approx[rows]
        return NextTokenScores(scores, "logprobs", approx)

    def dense(self, tops: list[dict[int, float]]) -> tuple[np.ndarray, np.ndarray]:
        """``[B, V]`` float32 raw log-probabilities (-inf where unknown) and ``[B]`` bool, the
        approximate rows."""
        for top in tops:  # ids in the declared vocabulary, real log-probabilities
            check_top(self.http.base_url, top, self.vocab_size)
        out = np.full((len(tops), self.vocab_size), -math.inf, dtype=np.float32)
        for row, top in enumerate(tops):
            if top:
                out[row, list(top)] = np.asarray(list(top.values()), dtype=np.float32)
        approx = np.asarray([len(t) < self.vocab_size for t in tops], dtype=bool)
        return out, approx

    def prompt_scores(self, ids: list[int]) -> PromptScores:
        if not self.dialect.has_prompt_logprobs:
            self.dialect.prompt_logprobs(self.http, self.model, ids, 1)  # raises ServerLacks
        steps = self._call(self.dialect.prompt_logprobs, ids, self.top_logprobs)
        logprobs, approx = self.dense([s.top for s in steps])
        ranks = None
        for s in steps:
            check_rank(self.http.base_url, s.rank, self.vocab_size)
        if all(s.rank is not None for s in steps):
            ranks = np.asarray([int(s.rank) - 1 for s in steps], dtype=np.int64)  # from 1
        return PromptScores(logprobs, ranks, bool(approx.any()))

    def generate(self, ids: list[int], max_new_tokens: int, settings: dict[str, Any],
                 seed: int | None, stop_at_eos: bool) -> Iterator[Step]:
        """Server-side generation in one request: yields each token's Step (its chosen token
        and top N) as the server streams it (vLLM, llama.cpp) or all at the end (SGLang)."""
        count = 0
        url = self.http.base_url
        steps = iter(self._call(self.dialect.generate, ids, max_new_tokens, self.top_logprobs,
                                settings, seed, stop_at_eos))
        try:
            while True:
                try:
                    step = next(steps)
                except StopIteration:
                    break
                except PARSE_ERRORS as err:
                    raise malformed(url, "a generation", err) from err
                count += 1
                if count > max_new_tokens:
                    raise MalformedReply(f"{url} streamed more than the {max_new_tokens} "
                                         "tokens asked for")
                check_token_id(url, step.token_id, self.vocab_size)
                check_logprob(url, step.token_id, step.logprob)
                self.pieces.update(step.pieces)
                yield step
        finally:  # a refused or abandoned stream: close its connection now
            close = getattr(steps, "close", None)
            if close is not None:
                close()
        if not count:
            raise ServerLacks("the server generated no tokens with log-probabilities")

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.http.close()


class ServerTokenizer:
    """The server's tokenizer through its ``/tokenize`` and ``/detokenize`` endpoints, with
    the few methods a Session uses. No chat template: pass ``tokenizer=`` for that."""

    bos_token = None
    eos_token_id = None
    pad_token_id = None
    chat_template = None

    def __init__(self, backend: RemoteBackend) -> None:
        self.backend = backend
        if not backend.dialect.has_tokenizer_endpoints:
            backend.dialect.tokenize(backend.http, backend.model, "", False)  # ServerLacks

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        b = self.backend
        ids = b._call(b.dialect.tokenize, text, add_special_tokens)
        for token_id in ids:  # a prompt's ids, like a reply's, stay in the vocabulary
            check_token_id(b.http.base_url, token_id, b.vocab_size)
        return {"input_ids": ids}

    def decode(self, ids: list[int], **_: Any) -> str:
        b = self.backend
        return b._call(b.dialect.detokenize, list(ids))

    def __len__(self) -> int:
        return self.backend.vocab_size

    def get_vocab(self) -> dict[str, int]:
        raise ServerLacks("the server's tokenizer cannot list its vocabulary; pass "
                          "tokenizer=... (the served model's folder or hub id) to "
                          "Session.connect")


class RemoteTokenBytes:
    """``id -> bytes`` for a remote session: the bytes the server sent with a token (exact),
    else the local tokenizer's pieces, else the server's ``/detokenize`` of the one token.
    llama.cpp sends no bytes for control tokens (``<|im_end|>``); the local tokenizer's text
    names them when there is one, as in a local session."""

    def __init__(self, backend: RemoteBackend, local: Any | None) -> None:
        from ..tokens import TokenBytes

        self.backend = backend
        self.local = TokenBytes(local) if local is not None else None
        self._cache: dict[int, bytes] = {}

    def __call__(self, token_id: int) -> bytes:
        token_id = int(token_id)
        cached = self._cache.get(token_id)
        if cached is None:
            served = self.backend.pieces.get(token_id)
            if served is not None and (served or self.local is None):
                cached = served
            elif self.local is not None:  # also for control tokens the server sends as b""
                cached = self.local(token_id)
            else:
                b = self.backend
                cached = b._call(b.dialect.detokenize, [token_id]).encode("utf-8")
            self._cache[token_id] = cached
        return cached


def require_full(backend: Any, what: str) -> None:
    """ServerLacks unless ``backend`` gives full distributions (see
    :func:`inferviz.capabilities.require_full`)."""
    from ..capabilities import require_full as check

    check(backend, what)
