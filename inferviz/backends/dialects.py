"""How each inference server is asked for next-token log-probabilities (one class a server).

Every prompt goes as token ids, so a node's path is exactly the tokens the server reads.

- vLLM: OpenAI ``/v1/completions`` with a list-of-int ``prompt``, ``max_tokens=1``,
  ``logprobs=N`` and ``return_tokens_as_token_ids`` (top tokens keyed ``"token_id:123"``, so two
  tokens with the same text stay two tokens); ``prompt_logprobs=N`` for teacher-forced scores;
  ``/tokenize`` and ``/detokenize``. At most ``--max-logprobs`` (default 20) tokens a row.
- SGLang: native ``/generate`` with ``input_ids``, ``return_logprob`` and ``top_logprobs_num``
  (entries ``[logprob, token_id, text]``); ``logprob_start_len=0`` for prompt log-probabilities.
- llama.cpp server: ``/completion`` with a token-id ``prompt``, ``n_probs=N`` and
  ``post_sampling_probs=false`` (log-probabilities of the raw distribution, with each token's
  bytes); ``/tokenize`` and ``/detokenize``; no prompt log-probabilities.

A dialect turns replies into ``Step`` records: the chosen token (when the server chose one) and
the top tokens as ``{token_id: raw logprob}``. It reads a reply through the checks of
``reply_check`` (every object, list and id the JSON type it should be; nothing coerced) and
leaves the values as sent: ``RemoteBackend`` checks them against the vocabulary.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

from .base import ServerLacks
from .http import HttpClient, ServerError
from .reply_check import (
    MalformedReply,
    check_rank,
    check_token_bytes,
    expect,
    expect_int,
    id_key,
    member,
)


@dataclass
class Step:
    """One position: ``top`` maps token id -> raw log-probability (the server's top N);
    ``token_id``/``logprob``: the token the server chose there (None for a look-ahead);
    ``rank``: that token's rank when the server reports it."""

    top: dict[int, float]
    token_id: int | None = None
    logprob: float | None = None
    rank: int | None = None
    pieces: dict[int, bytes] = field(default_factory=dict)  # token bytes the server sent


@dataclass
class ServerInfo:
    model: str
    max_positions: int | None = None
    vocab_size: int | None = None


def _sampling(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in settings.items() if v is not None}


class Dialect:
    name = ""
    has_prompt_logprobs = True
    has_tokenizer_endpoints = True

    def info(self, http: HttpClient, model: str | None) -> ServerInfo:
        """The model card; its sizes as sent (``open_connection`` checks them)."""
        url = http.base_url
        cards = _model_cards(http)
        if not cards:
            raise ServerError(f"{url}/v1/models lists no model")
        ids = [member(url, c, "id", str, "a model card") for c in cards]
        if model is not None and model not in ids:
            raise ValueError(f"model {model!r} is not served at {url}; it serves "
                             f"{', '.join(map(str, ids))}")
        card = cards[ids.index(model)] if model is not None else cards[0]
        meta = expect(url, card.get("meta") or {}, dict, "the model card's 'meta'")
        return ServerInfo(card["id"], card.get("max_model_len") or meta.get("n_ctx_train"),
                          meta.get("n_vocab"))

    def next_token(self, http: HttpClient, model: str, ids: list[int], n: int) -> Step:
        raise NotImplementedError

    def prompt_logprobs(self, http: HttpClient, model: str, ids: list[int], n: int
                        ) -> list[Step]:
        raise ServerLacks(f"the {self.name} server gives no prompt log-probabilities, so "
                          f"teacher-forced scores (token_table) cannot be read from it; use a "
                          f"vLLM or SGLang server, or a local Session")

    def generate(self, http: HttpClient, model: str, ids: list[int], max_new_tokens: int,
                 n: int, settings: dict[str, Any], seed: int | None, stop_at_eos: bool
                 ) -> list[Step]:
        raise NotImplementedError

    def constraint_fields(self, constraint: Any) -> dict[str, Any]:
        """The request fields that make this server keep to ``constraint`` when it generates
        (``Session.generate(server_side=True, constraint=...)``); ServerLacks for a kind it
        does not take."""
        raise ServerLacks(f"the {self.name or 'connected'} server takes no constraint; run "
                          f"step by step (server_side=False) with a local tokenizer instead")

    def tokenize(self, http: HttpClient, model: str, text: str, add_special: bool) -> list[int]:
        raise NotImplementedError

    def detokenize(self, http: HttpClient, model: str, ids: list[int]) -> str:
        raise NotImplementedError


def _model_cards(http: HttpClient) -> list[dict]:
    url = http.base_url
    data = expect(url, http.get("/v1/models"), dict, "the reply to /v1/models")
    cards = expect(url, data.get("data") or [], list, "the model list ('data')")
    return [expect(url, c, dict, "a model card") for c in cards]


# ---------------------------------------------------------------------------------- vLLM
def _token_id(url: str, key: Any) -> int:
    if isinstance(key, str) and not key.startswith("token_id:"):
        raise ServerLacks(f"the server keyed a top log-probability by its text ({key!r}), not "
                          f"by token id, so tokens with the same text would collide; use a "
                          f"server that honours return_tokens_as_token_ids (vLLM)")
    return id_key(url, key, "token_id:")


def _vllm_top(url: str, top: Any, what: str) -> dict[int, Any]:
    """``{"token_id:5": logprob, ...}`` -> ``{5: logprob}`` (values as sent)."""
    if top is None:
        return {}
    return {_token_id(url, k): v for k, v in expect(url, top, dict, what).items()}


class VLLM(Dialect):
    name = "vllm"

    def _completion(self, http, model, ids, extra):
        url = http.base_url
        body = {"model": model, "prompt": list(ids), "max_tokens": 1, "temperature": 0.0,
                "return_tokens_as_token_ids": True, "skip_special_tokens": False, **extra}
        reply = expect(url, http.post("/v1/completions", body), dict,
                       "the reply to /v1/completions")
        choices = expect(url, reply.get("choices") or [], list, "'choices'")
        if not choices:
            raise MalformedReply(f"{url}/v1/completions answered with no choices")
        return expect(url, choices[0], dict, "choices[0]")

    def next_token(self, http, model, ids, n):
        url = http.base_url
        choice = self._completion(http, model, ids, {"logprobs": n})
        logprobs = expect(url, choice.get("logprobs") or {}, dict, "choices[0]'s 'logprobs'")
        top = expect(url, logprobs.get("top_logprobs") or [None], list, "'top_logprobs'")
        if not top[0]:
            raise ServerLacks("the server returned no top log-probabilities; start vLLM with "
                              "--max-logprobs N (N >= top_logprobs)")
        return Step(_vllm_top(url, top[0], "top_logprobs[0]"))

    def prompt_logprobs(self, http, model, ids, n):
        url = http.base_url
        choice = self._completion(http, model, ids, {"prompt_logprobs": n})
        rows = choice.get("prompt_logprobs")
        if rows is None:
            raise ServerLacks("the server returned no prompt_logprobs; it needs vLLM's "
                              "prompt_logprobs extension of /v1/completions")
        expect(url, rows, list, "'prompt_logprobs'")
        if len(rows) != len(ids):
            raise MalformedReply(f"{url} sent prompt_logprobs for {len(rows)} positions of a "
                                 f"{len(ids)}-token prompt")
        steps = []
        for pos, row in enumerate(rows[1:], start=1):
            what = f"prompt_logprobs[{pos}]"
            entries = {id_key(url, k): expect(url, v, dict, f"an entry of {what}")
                       for k, v in expect(url, row, dict, what).items()}
            top = {t: member(url, v, "logprob", object, f"an entry of {what}")
                   for t, v in entries.items()}
            rank = check_rank(url, entries.get(ids[pos], {}).get("rank"))
            steps.append(Step(top, ids[pos], top.get(ids[pos]), rank))
        return steps

    def generate(self, http, model, ids, max_new_tokens, n, settings, seed, stop_at_eos):
        """Streamed: yields each token's Step as the server sends it."""
        body = {"model": model, "prompt": list(ids), "max_tokens": max_new_tokens,
                "logprobs": n, "ignore_eos": not stop_at_eos, "skip_special_tokens": False,
                "return_tokens_as_token_ids": True, **_sampling(settings)}
        if seed is not None:
            body["seed"] = seed
        url = http.base_url
        events = http.stream("/v1/completions", body, until_done=True,
                             max_events=max_new_tokens + 8)
        for event in _closing(events):
            expect(url, event, dict, "a streamed event")
            for choice in expect(url, event.get("choices") or [], list, "a streamed 'choices'"):
                choice = expect(url, choice, dict, "a streamed choice")
                logprobs = expect(url, choice.get("logprobs") or {}, dict,
                                  "a streamed choice's 'logprobs'")
                columns = [expect(url, logprobs.get(k) or [], list, f"a streamed {k!r}")
                           for k in ("tokens", "token_logprobs", "top_logprobs")]
                if len({len(c) for c in columns}) > 1:
                    raise MalformedReply(f"{url} streamed tokens, token_logprobs and "
                                         f"top_logprobs of different lengths "
                                         f"({', '.join(str(len(c)) for c in columns)})")
                for key, lp, top in zip(*columns):
                    yield Step(_vllm_top(url, top, "a streamed top_logprobs row"),
                               _token_id(url, key), lp)

    def constraint_fields(self, constraint):
        """vLLM's structured outputs (``structured_outputs``: regex, json, choice, grammar)."""
        kind = constraint.kind
        spec = {"regex": {"regex": getattr(constraint, "pattern", None)},
                "json": {"json": getattr(constraint, "schema", None)},
                "choice": {"choice": list(getattr(constraint, "options", ()))},
                "grammar": {"grammar": getattr(constraint, "text", None)}}[kind]
        return {"structured_outputs": spec}

    def tokenize(self, http, model, text, add_special):
        reply = http.post("/tokenize", {"model": model, "prompt": text,
                                        "add_special_tokens": add_special})
        return _token_list(http.base_url, reply)

    def detokenize(self, http, model, ids):
        url = http.base_url
        reply = expect(url, http.post("/detokenize", {"model": model, "tokens": list(ids)}),
                       dict, "the reply to /detokenize")
        return member(url, reply, "prompt", str, "the reply to /detokenize")


def _closing(events):
    """Yield from ``events`` and close it (its connection) when we stop early."""
    with contextlib.closing(events):
        yield from events


def _token_list(url: str, reply: Any) -> list[int]:
    """The ``tokens`` of a /tokenize reply: ints, or llama.cpp's ``{"id": ...}`` pieces."""
    tokens = member(url, expect(url, reply, dict, "the reply to /tokenize"), "tokens", list,
                   "the reply to /tokenize")
    return [expect_int(url, member(url, t, "id", object, "a token") if isinstance(t, dict)
                       else t, "token id") for t in tokens]


# ---------------------------------------------------------------------------------- SGLang
def _sglang_entry(url: str, entry: Any, what: str) -> tuple[Any, int]:
    """``[logprob, token_id, text]`` -> (logprob as sent, token id)."""
    entry = expect(url, entry, list, what)
    if len(entry) < 2:
        raise MalformedReply(f"{url} sent {what} with {len(entry)} fields, not "
                             "[logprob, token_id, text]")
    return entry[0], expect_int(url, entry[1], f"token id in {what}")


def _sglang_top(url: str, entries: Any, what: str) -> dict[int, Any]:
    top = {}
    for entry in expect(url, entries if entries is not None else [], list, what):
        lp, token = _sglang_entry(url, entry, f"an entry of {what}")
        top[token] = lp
    return top


class SGLang(Dialect):
    name = "sglang"
    has_tokenizer_endpoints = False

    def _generate(self, http, ids, sampling, extra):
        body = {"input_ids": list(ids), "sampling_params": sampling, "return_logprob": True,
                **extra}
        url = http.base_url
        reply = expect(url, http.post("/generate", body), dict, "the reply to /generate")
        return expect(url, reply.get("meta_info") or {}, dict, "'meta_info'")

    def next_token(self, http, model, ids, n):
        url = http.base_url
        meta = self._generate(http, ids, {"max_new_tokens": 1, "temperature": 0.0},
                              {"top_logprobs_num": n, "logprob_start_len": -1})
        top = expect(url, meta.get("output_top_logprobs") or [None], list,
                     "'output_top_logprobs'")
        if not top[0]:
            raise ServerLacks("the server returned no output_top_logprobs")
        return Step(_sglang_top(url, top[0], "output_top_logprobs[0]"))

    def prompt_logprobs(self, http, model, ids, n):
        url = http.base_url
        meta = self._generate(http, ids, {"max_new_tokens": 1, "temperature": 0.0},
                              {"top_logprobs_num": n, "logprob_start_len": 0})
        tops = meta.get("input_top_logprobs")
        if tops is None:
            raise ServerLacks("the server returned no input_top_logprobs")
        expect(url, tops, list, "'input_top_logprobs'")
        chosen = expect(url, meta.get("input_token_logprobs") or [], list,
                        "'input_token_logprobs'")
        steps = []
        for pos in range(1, len(ids)):
            what = f"input_top_logprobs[{pos}]"
            top = _sglang_top(url, tops[pos] if pos < len(tops) else None, what)
            lp = None
            if pos < len(chosen) and chosen[pos] is not None:
                lp = _sglang_entry(url, chosen[pos], f"input_token_logprobs[{pos}]")[0]
            if lp is not None:
                top.setdefault(ids[pos], lp)
            steps.append(Step(top, ids[pos], lp))
        return steps

    def generate(self, http, model, ids, max_new_tokens, n, settings, seed, stop_at_eos):
        sampling = {"max_new_tokens": max_new_tokens, "ignore_eos": not stop_at_eos,
                    **_sampling(settings)}
        if seed is not None:
            sampling["sampling_seed"] = seed
        url = http.base_url
        meta = self._generate(http, ids, sampling, {"top_logprobs_num": n,
                                                    "logprob_start_len": -1})
        chosen = expect(url, meta.get("output_token_logprobs") or [], list,
                        "'output_token_logprobs'")
        tops = expect(url, meta.get("output_top_logprobs") or [], list, "'output_top_logprobs'")
        if tops and len(tops) != len(chosen):
            raise MalformedReply(f"{url} sent {len(chosen)} output_token_logprobs but "
                                 f"{len(tops)} output_top_logprobs")
        steps = []
        for pos, entry in enumerate(chosen):
            lp, token = _sglang_entry(url, entry, f"output_token_logprobs[{pos}]")
            top = _sglang_top(url, tops[pos] if tops else None, f"output_top_logprobs[{pos}]")
            steps.append(Step(top, token, lp))
        return steps

    def constraint_fields(self, constraint):
        """SGLang's sampling parameters ``regex``, ``json_schema`` and ``ebnf``."""
        kind = constraint.kind
        if kind == "regex":
            return {"regex": constraint.pattern}
        if kind == "choice":
            return {"regex": constraint.regex()}
        if kind == "json":
            return {"json_schema": json.dumps(constraint.schema)}
        if constraint.syntax == "gbnf":
            return {"ebnf": constraint.text}
        raise ServerLacks("constraint: the SGLang server takes EBNF grammars, not Lark; give "
                          "iv.Grammar(text, syntax='gbnf'), or run step by step "
                          "(server_side=False) with a local tokenizer")

    def tokenize(self, http, model, text, add_special):
        raise ServerLacks("inferviz reads SGLang's tokenizer locally: pass tokenizer=... (the "
                          "model's folder or hub id) to Session.connect")

    detokenize = tokenize


# ---------------------------------------------------------------------------------- llama.cpp
def _llama_entry(url: str, entry: Any, what: str, pieces: dict[int, bytes]) -> tuple[int, Any]:
    """``{"id", "logprob", "bytes"}`` -> (token id, logprob as sent); its bytes into pieces."""
    entry = expect(url, entry, dict, what)
    token = expect_int(url, member(url, entry, "id", object, what), f"token id in {what}")
    logprob = member(url, entry, "logprob", object, what)
    if entry.get("bytes") is not None:
        pieces[token] = check_token_bytes(url, token, entry["bytes"])
    return token, logprob


def _llama_top(url: str, entries: Any, pieces: dict[int, bytes]) -> dict[int, Any]:
    top = {}
    for entry in expect(url, entries if entries is not None else [], list, "'top_logprobs'"):
        token, logprob = _llama_entry(url, entry, "an entry of 'top_logprobs'", pieces)
        top[token] = logprob
    return top


class LlamaCpp(Dialect):
    name = "llama.cpp"
    has_prompt_logprobs = False

    def info(self, http, model):
        info = super().info(http, model)
        url = http.base_url
        try:
            props = http.get("/props")
        except ServerError:
            props = {}
        props = expect(url, props, dict, "the reply to /props")
        settings = expect(url, props.get("default_generation_settings") or {}, dict,
                          "/props' 'default_generation_settings'")
        n_ctx = settings.get("n_ctx")
        if n_ctx:  # as sent: open_connection checks it
            info.max_positions = n_ctx
        return info

    # Sampler settings llama.cpp would otherwise apply by default (top_k=40, min_p=0.05, ...).
    NEUTRAL = {"top_k": 0, "top_p": 1.0, "min_p": 0.0, "typical_p": 1.0, "repeat_penalty": 1.0}

    def _body(self, ids, n_predict, n, extra):
        return {"prompt": list(ids), "n_predict": n_predict, "n_probs": n,
                "post_sampling_probs": False, "cache_prompt": True, "return_tokens": True,
                **self.NEUTRAL, **extra}

    def _completion(self, http, ids, n_predict, n, extra):
        url = http.base_url
        body = {**self._body(ids, n_predict, n, extra), "stream": False}
        reply = expect(url, http.post("/completion", body), dict, "the reply to /completion")
        return expect(url, reply.get("completion_probabilities") or [], list,
                      "'completion_probabilities'")

    def next_token(self, http, model, ids, n):
        url = http.base_url
        rows = self._completion(http, ids, 1, n, {"temperature": 0.0})
        if not rows:
            raise ServerLacks("the server returned no completion_probabilities; a llama.cpp "
                              "server of 2025 or later reports them for n_probs")
        row = expect(url, rows[0], dict, "completion_probabilities[0]")
        step = Step({})
        step.top = _llama_top(url, row.get("top_logprobs"), step.pieces)
        return step

    def generate(self, http, model, ids, max_new_tokens, n, settings, seed, stop_at_eos):
        extra = {**_sampling(settings), "ignore_eos": not stop_at_eos}
        if seed is not None:
            extra["seed"] = seed
        url = http.base_url
        ended = False
        events = http.stream("/completion", self._body(ids, max_new_tokens, n, extra),
                             max_events=max_new_tokens + 8)
        with contextlib.closing(events):
            for event in events:
                expect(url, event, dict, "a streamed event")
                rows = expect(url, event.get("completion_probabilities") or [], list,
                              "a streamed 'completion_probabilities'")
                for row in rows:  # streamed: yield as sent
                    step = Step({})
                    step.token_id, step.logprob = _llama_entry(
                        url, row, "a streamed completion_probabilities row", step.pieces)
                    step.top = _llama_top(url, row.get("top_logprobs"), step.pieces)
                    yield step
                if event.get("stop") is True:
                    ended = True
                    break
        if not ended:  # llama.cpp's last event says "stop": true; without it, cut off
            raise MalformedReply(f"{url}/completion: the stream ended without its final "
                                 "event ('stop': true); cut off")

    def constraint_fields(self, constraint):
        """llama.cpp's ``json_schema`` and GBNF ``grammar`` (a choice is written as GBNF)."""
        kind = constraint.kind
        if kind == "json":
            return {"json_schema": constraint.schema}
        if kind == "choice":
            return {"grammar": "root ::= " + " | ".join(gbnf_literal(o)
                                                       for o in constraint.options)}
        if kind == "grammar" and constraint.syntax == "gbnf":
            return {"grammar": constraint.text}
        what = "a regex" if kind == "regex" else "a Lark grammar"
        raise ServerLacks(f"constraint: a llama.cpp server takes GBNF grammars and JSON "
                          f"schemas, not {what}; give iv.Grammar(text, syntax='gbnf') or "
                          f"iv.JSONSchema, or run step by step (server_side=False) with a "
                          f"local tokenizer, where every constraint kind works")

    def tokenize(self, http, model, text, add_special):
        reply = http.post("/tokenize", {"content": text, "add_special": add_special})
        return _token_list(http.base_url, reply)

    def detokenize(self, http, model, ids):
        url = http.base_url
        reply = expect(url, http.post("/detokenize", {"tokens": list(ids)}), dict,
                       "the reply to /detokenize")
        return member(url, reply, "content", str, "the reply to /detokenize")


DIALECTS: dict[str, Dialect] = {"vllm": VLLM(), "sglang": SGLang(), "llama.cpp": LlamaCpp()}
ALIASES = {"llamacpp": "llama.cpp", "llama_cpp": "llama.cpp", "openai": "vllm"}
OWNED_BY = {"vllm": "vllm", "sglang": "sglang", "llamacpp": "llama.cpp"}


def gbnf_literal(text: str) -> str:
    """``text`` as a GBNF string literal (quotes, backslashes and control characters
    escaped)."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 32:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def detect(http: HttpClient) -> Dialect:
    """The dialect of the server at ``http``, from ``owned_by`` in its ``/v1/models``."""
    owners = {str(c.get("owned_by", "")).lower() for c in _model_cards(http)}
    for owner, name in OWNED_BY.items():
        if owner in owners:
            return DIALECTS[name]
    raise ValueError(f"cannot tell which server runs at {http.base_url} (owned_by: "
                     f"{', '.join(sorted(owners)) or 'none'}); pass dialect='vllm', 'sglang' "
                     f"or 'llama.cpp'")


def get_dialect(name: str) -> Dialect:
    key = ALIASES.get(name, name) if isinstance(name, str) else name
    if key not in DIALECTS:
        raise ValueError(f"dialect must be 'auto', {', '.join(map(repr, DIALECTS))}; got "
                         f"{name!r}")
    return DIALECTS[key]
