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
the top tokens as ``{token_id: raw logprob}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .base import ServerLacks
from .http import HttpClient, ServerError


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
        data = http.get("/v1/models")
        cards = data.get("data") or []
        if not cards:
            raise ServerError(f"{http.base_url}/v1/models lists no model")
        ids = [c.get("id") for c in cards]
        if model is not None and model not in ids:
            raise ValueError(f"model {model!r} is not served at {http.base_url}; it serves "
                             f"{', '.join(map(str, ids))}")
        card = cards[ids.index(model)] if model is not None else cards[0]
        meta = card.get("meta") or {}
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

    def tokenize(self, http: HttpClient, model: str, text: str, add_special: bool) -> list[int]:
        raise NotImplementedError

    def detokenize(self, http: HttpClient, model: str, ids: list[int]) -> str:
        raise NotImplementedError


# ---------------------------------------------------------------------------------- vLLM
def _token_id(key: str) -> int:
    if not key.startswith("token_id:"):
        raise ServerLacks(f"the server keyed a top log-probability by its text ({key!r}), not "
                          f"by token id, so tokens with the same text would collide; use a "
                          f"server that honours return_tokens_as_token_ids (vLLM)")
    return int(key[len("token_id:"):])


class VLLM(Dialect):
    name = "vllm"

    def _completion(self, http, model, ids, extra):
        body = {"model": model, "prompt": list(ids), "max_tokens": 1, "temperature": 0.0,
                "return_tokens_as_token_ids": True, "skip_special_tokens": False, **extra}
        choices = http.post("/v1/completions", body).get("choices") or []
        if not choices:
            raise ServerError(f"{http.base_url}/v1/completions answered with no choices")
        return choices[0]

    def next_token(self, http, model, ids, n):
        choice = self._completion(http, model, ids, {"logprobs": n})
        top = (choice.get("logprobs") or {}).get("top_logprobs") or [None]
        if not top[0]:
            raise ServerLacks("the server returned no top log-probabilities; start vLLM with "
                              "--max-logprobs N (N >= top_logprobs)")
        return Step({_token_id(k): float(v) for k, v in top[0].items()})

    def prompt_logprobs(self, http, model, ids, n):
        choice = self._completion(http, model, ids, {"prompt_logprobs": n})
        rows = choice.get("prompt_logprobs")
        if rows is None:
            raise ServerLacks("the server returned no prompt_logprobs; it needs vLLM's "
                              "prompt_logprobs extension of /v1/completions")
        steps = []
        for pos, row in enumerate(rows[1:], start=1):
            top = {int(k): float(v["logprob"]) for k, v in row.items()}
            actual = row.get(str(ids[pos])) or {}
            steps.append(Step(top, ids[pos], top.get(ids[pos]), actual.get("rank")))
        return steps

    def generate(self, http, model, ids, max_new_tokens, n, settings, seed, stop_at_eos):
        """Streamed: yields each token's Step as the server sends it."""
        body = {"model": model, "prompt": list(ids), "max_tokens": max_new_tokens,
                "logprobs": n, "ignore_eos": not stop_at_eos, "skip_special_tokens": False,
                "return_tokens_as_token_ids": True, **_sampling(settings)}
        if seed is not None:
            body["seed"] = seed
        for event in http.stream("/v1/completions", body):
            for choice in event.get("choices") or []:
                logprobs = choice.get("logprobs") or {}
                for key, lp, top in zip(logprobs.get("tokens") or [],
                                        logprobs.get("token_logprobs") or [],
                                        logprobs.get("top_logprobs") or []):
                    yield Step({_token_id(k): float(v) for k, v in (top or {}).items()},
                               _token_id(key), float(lp))

    def tokenize(self, http, model, text, add_special):
        reply = http.post("/tokenize", {"model": model, "prompt": text,
                                        "add_special_tokens": add_special})
        return [int(t) for t in reply["tokens"]]

    def detokenize(self, http, model, ids):
        return http.post("/detokenize", {"model": model, "tokens": list(ids)})["prompt"]


# ---------------------------------------------------------------------------------- SGLang
def _sglang_top(entries) -> dict[int, float]:
    return {int(e[1]): float(e[0]) for e in entries or [] if e is not None and e[0] is not None}


class SGLang(Dialect):
    name = "sglang"
    has_tokenizer_endpoints = False

    def _generate(self, http, ids, sampling, extra):
        body = {"input_ids": list(ids), "sampling_params": sampling, "return_logprob": True,
                **extra}
        reply = http.post("/generate", body)
        return reply.get("meta_info") or {}

    def next_token(self, http, model, ids, n):
        meta = self._generate(http, ids, {"max_new_tokens": 1, "temperature": 0.0},
                              {"top_logprobs_num": n, "logprob_start_len": -1})
        top = meta.get("output_top_logprobs") or [None]
        if not top[0]:
            raise ServerLacks("the server returned no output_top_logprobs")
        return Step(_sglang_top(top[0]))

    def prompt_logprobs(self, http, model, ids, n):
        meta = self._generate(http, ids, {"max_new_tokens": 1, "temperature": 0.0},
                              {"top_logprobs_num": n, "logprob_start_len": 0})
        tops = meta.get("input_top_logprobs")
        if tops is None:
            raise ServerLacks("the server returned no input_top_logprobs")
        chosen = meta.get("input_token_logprobs") or []
        steps = []
        for pos in range(1, len(ids)):
            top = _sglang_top(tops[pos] if pos < len(tops) else None)
            lp = chosen[pos][0] if pos < len(chosen) and chosen[pos] else None
            if lp is not None:
                top.setdefault(ids[pos], float(lp))
            steps.append(Step(top, ids[pos], None if lp is None else float(lp)))
        return steps

    def generate(self, http, model, ids, max_new_tokens, n, settings, seed, stop_at_eos):
        sampling = {"max_new_tokens": max_new_tokens, "ignore_eos": not stop_at_eos,
                    **_sampling(settings)}
        if seed is not None:
            sampling["sampling_seed"] = seed
        meta = self._generate(http, ids, sampling, {"top_logprobs_num": n,
                                                    "logprob_start_len": -1})
        return [Step(_sglang_top(top), int(tok[1]), float(tok[0]))
                for tok, top in zip(meta.get("output_token_logprobs") or [],
                                    meta.get("output_top_logprobs") or [])]

    def tokenize(self, http, model, text, add_special):
        raise ServerLacks("inferviz reads SGLang's tokenizer locally: pass tokenizer=... (the "
                          "model's folder or hub id) to Session.connect")

    detokenize = tokenize


# ---------------------------------------------------------------------------------- llama.cpp
def _llama_top(entries, pieces: dict[int, bytes]) -> dict[int, float]:
    top = {}
    for e in entries or []:
        top[int(e["id"])] = float(e["logprob"])
        if e.get("bytes") is not None:
            pieces[int(e["id"])] = bytes(e["bytes"])
    return top


class LlamaCpp(Dialect):
    name = "llama.cpp"
    has_prompt_logprobs = False

    def info(self, http, model):
        info = super().info(http, model)
        try:
            props = http.get("/props")
        except ServerError:
            props = {}
        n_ctx = (props.get("default_generation_settings") or {}).get("n_ctx")
        if n_ctx:
            info.max_positions = int(n_ctx)
        return info

    # Sampler settings llama.cpp would otherwise apply by default (top_k=40, min_p=0.05, ...).
    NEUTRAL = {"top_k": 0, "top_p": 1.0, "min_p": 0.0, "typical_p": 1.0, "repeat_penalty": 1.0}

    def _body(self, ids, n_predict, n, extra):
        return {"prompt": list(ids), "n_predict": n_predict, "n_probs": n,
                "post_sampling_probs": False, "cache_prompt": True, "return_tokens": True,
                **self.NEUTRAL, **extra}

    def _completion(self, http, ids, n_predict, n, extra):
        body = {**self._body(ids, n_predict, n, extra), "stream": False}
        return http.post("/completion", body).get("completion_probabilities") or []

    def next_token(self, http, model, ids, n):
        rows = self._completion(http, ids, 1, n, {"temperature": 0.0})
        if not rows:
            raise ServerLacks("the server returned no completion_probabilities; a llama.cpp "
                              "server of 2025 or later reports them for n_probs")
        step = Step({})
        step.top = _llama_top(rows[0].get("top_logprobs"), step.pieces)
        return step

    def generate(self, http, model, ids, max_new_tokens, n, settings, seed, stop_at_eos):
        extra = {**_sampling(settings), "ignore_eos": not stop_at_eos}
        if seed is not None:
            extra["seed"] = seed
        for event in http.stream("/completion", self._body(ids, max_new_tokens, n, extra)):
            for row in event.get("completion_probabilities") or []:  # streamed: yield as sent
                step = Step({}, int(row["id"]), float(row["logprob"]))
                step.top = _llama_top(row.get("top_logprobs"), step.pieces)
                if row.get("bytes") is not None:
                    step.pieces[int(row["id"])] = bytes(row["bytes"])
                yield step

    def tokenize(self, http, model, text, add_special):
        reply = http.post("/tokenize", {"content": text, "add_special": add_special})
        return [int(t) if not isinstance(t, dict) else int(t["id"]) for t in reply["tokens"]]

    def detokenize(self, http, model, ids):
        return http.post("/detokenize", {"tokens": list(ids)})["content"]


DIALECTS: dict[str, Dialect] = {"vllm": VLLM(), "sglang": SGLang(), "llama.cpp": LlamaCpp()}
ALIASES = {"llamacpp": "llama.cpp", "llama_cpp": "llama.cpp", "openai": "vllm"}
OWNED_BY = {"vllm": "vllm", "sglang": "sglang", "llamacpp": "llama.cpp"}


def detect(http: HttpClient) -> Dialect:
    """The dialect of the server at ``http``, from ``owned_by`` in its ``/v1/models``."""
    data = http.get("/v1/models")
    owners = {str(c.get("owned_by", "")).lower() for c in data.get("data") or []}
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
