"""A small OpenAI-compatible inference server for tests, over a tiny random transformers model.

Serves the vLLM dialect (``/v1/models``, ``/v1/completions`` with token-id prompts, ``logprobs``,
``prompt_logprobs``, ``return_tokens_as_token_ids``, ``/tokenize``, ``/detokenize``) or the
llama.cpp dialect (``/completion`` with ``n_probs``, ``/props``, ``/tokenize``,
``/detokenize``), the SGLang dialect (native ``/generate`` with ``input_ids``,
``top_logprobs_num``, ``logprob_start_len``), computing real log-probabilities with a full forward of the model. Knobs:
``max_logprobs`` (the top-N cap, like vLLM's ``--max-logprobs``), ``fail_times`` and
``fail_status`` (answer the first POSTs with 429/503), ``delay`` (seconds a request takes, so
overlapping requests can be seen: ``max_in_flight`` records the most at once),
``stream_delay`` (seconds between the events of a ``"stream": true`` reply), and
``misbehave`` (default None: a well-behaved server; else a key of ``MISBEHAVIOURS``, a hostile
or broken server for tests/test_remote_hostile.py; it can be set on a running server). Each
mode says which dialects show it (``modes_for(dialect)``): content modes change the scoring
reply (``/v1/completions``, ``/generate``, ``/completion``, streamed or not) in that dialect's
own shape, transport modes every POST. ``misbehave="html_error"``, for instance, answers every
POST with HTTP 500 and an HTML (text/html) body carrying a script, ``HTML_ERROR_BODY``.

    with FakeServer(model, tokenizer, dialect="vllm") as server:
        session = iv.Session.connect(server.url, tokenizer=tokenizer)
"""

from __future__ import annotations

import functools
import gzip
import json
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import torch

# misbehaviour -> (the dialects it applies to, what the server does wrong); see
# tests/test_remote_hostile.py and docs/reliability.md, "Security".
ALL = ("vllm", "sglang", "llama.cpp")
STREAMING = ("vllm", "llama.cpp")  # SGLang's /generate is not streamed here
TOKENIZING = ("vllm", "llama.cpp")  # /tokenize and /detokenize
MISBEHAVIOURS = {
    # the content of a scoring reply (/v1/completions, /generate, /completion), streamed or not
    "id_out_of_vocab": (ALL, "a top log-probability names token id 999999"),
    "negative_id": (ALL, "a top log-probability names token id -3"),
    "string_logprob": (ALL, "a log-probability is the string '-1.5'"),
    "null_logprob": (ALL, "a log-probability is null"),
    "nan_logprob": (ALL, "a log-probability is NaN"),
    "mass_over_one": (ALL, "top log-probabilities of -0.02 each: probabilities summing to ~7.8"),
    "list_body": (ALL, "the reply is a JSON list, not an object"),
    "choices_object": (("vllm",), "'choices' is an object, not a list"),
    "choices_null": (("vllm",), "'choices' is [null]"),
    "pairs_top_logprobs": (("vllm",), "'top_logprobs' rows are [key, logprob] pairs"),
    "probs_object": (("llama.cpp",), "'completion_probabilities' is an object"),
    "probs_null": (("llama.cpp",), "'completion_probabilities' is [null]"),
    "bad_rank": (("vllm",), "prompt_logprobs ranks of 10**30 (token_table)"),
    "meta_info_list": (("sglang",), "'meta_info' is a list"),
    "short_entries": (("sglang",), "top entries are [logprob] without a token id"),
    "bytes_not_list": (("llama.cpp",), "a token's 'bytes' is 1000000000, not a list"),
    # the metadata read at connect time
    "bad_max_model_len": (ALL, "the context length is 'abc' (max_model_len, n_ctx_train, n_ctx)"),
    "negative_max_model_len": (ALL, "the context length is -5"),
    "huge_vocab": (("llama.cpp",), "the model card declares n_vocab 10**12"),
    # the tokenizer endpoints
    "tokenize_out_of_vocab": (TOKENIZING, "/tokenize answers token id 999999"),
    "detokenize_fails_midway": (TOKENIZING, "/detokenize answers 500 from its third call on"),
    # the transport, every POST
    "html_error": (ALL, "every POST answers 500 with an HTML page that carries a script"),
    "redirect": (ALL, "every POST answers 302 to another address"),
    "trickle": (ALL, "every POST sends its body one byte every 0.3 s"),
    "trickle_headers": (ALL, "every POST sends its headers one byte every 0.3 s"),
    "huge_body": (ALL, "every POST declares a 50 MB body"),
    "huge_body_undeclared": (ALL, "every POST sends 40 MB with no Content-Length"),
    "gzip_bomb": (ALL, "every POST sends 50 KB of gzip that inflates to 50 MB"),
    "deep_json": (ALL, "every POST answers 100000 nested lists"),
    # streams (server_side=True)
    "stream_broken_json": (STREAMING, "the third event of a stream is broken JSON"),
    "stream_nan": (STREAMING, "the third event's chosen token has log-probability NaN"),
    "stream_reset": (STREAMING, "the connection is reset after two events"),
    "stream_too_many": (STREAMING, "a stream sends twice the tokens asked for"),
    "stream_huge_event": (STREAMING, "the third event is a 2 MB line"),
}


def modes_for(dialect: str) -> list[str]:
    """The misbehaviours a server of ``dialect`` can show."""
    return sorted(m for m, (dialects, _) in MISBEHAVIOURS.items() if dialect in dialects)


class Stream(list):
    """Events a route sends as server-sent events (``"stream": true``), ``stream_delay`` apart."""

    def __init__(self, events: list, done: bool) -> None:
        super().__init__(events)
        self.done = done  # vLLM ends with "data: [DONE]"; llama.cpp just closes


HTML_ERROR_BODY = '<html><body><img src=x onerror="window.__xss=1">boom</body></html>'


def reset(handler) -> None:
    """Abort the connection: the client reads a reset (RST), not an end of stream."""
    handler.wfile.flush()
    sock = handler.connection
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@functools.lru_cache(maxsize=1)
def gzip_bomb() -> bytes:
    """50 KB of gzip that inflates to a 50 MB JSON string."""
    return gzip.compress(b'"' + b"x" * (50 * 2**20) + b'"', compresslevel=9)


class FakeServer:
    def __init__(self, model: Any, tokenizer: Any, dialect: str = "vllm",
                 max_logprobs: int = 20, fail_times: int = 0, fail_status: int = 503,
                 delay: float = 0.0, name: str = "tiny-model", max_model_len: int = 256,
                 stream_delay: float = 0.0, misbehave: str | None = None) -> None:
        if dialect not in ("vllm", "sglang", "llama.cpp"):
            raise ValueError(f"dialect must be 'vllm', 'sglang' or 'llama.cpp'; got {dialect!r}")
        self.model, self.tokenizer, self.dialect = model, tokenizer, dialect
        self.max_logprobs, self.fail_times, self.fail_status = max_logprobs, fail_times, fail_status
        self.delay, self.name, self.max_model_len = delay, name, max_model_len
        self.stream_delay = stream_delay
        if misbehave is not None and misbehave not in MISBEHAVIOURS:
            raise ValueError(f"misbehave must be None or one of {sorted(MISBEHAVIOURS)}; got "
                             f"{misbehave!r}")
        self.misbehave = misbehave
        self.detokenized = 0
        self.vocab = int(model.config.vocab_size)
        self.requests: list[tuple[str, dict]] = []  # (path, body) of every POST
        self.failed = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._model_lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "FakeServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                server._handle(self, "GET", None)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                server._handle(self, "POST", body)

        class Server(ThreadingHTTPServer):
            # The default listen backlog (5) drops SYNs when 16 requests connect at once, and
            # the client retries after a second: a real server's backlog is far larger.
            request_queue_size = 128

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        # A short poll: stop() waits for it (the default 0.5 s a server, in every test).
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)
            self._httpd = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> "FakeServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------------ dispatch
    def _handle(self, handler: BaseHTTPRequestHandler, method: str, body: dict | None) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            fail = method == "POST" and self.failed < self.fail_times
            if fail:
                self.failed += 1
            if method == "POST":
                self.requests.append((handler.path, body))
        try:
            if self.delay:
                time.sleep(self.delay)
            if fail:
                return self._reply(handler, self.fail_status, {"error": "busy, retry"},
                                   {"Retry-After": "0"})
            routes = {("GET", "/v1/models"): self._models, ("POST", "/tokenize"): self._tokenize,
                      ("POST", "/detokenize"): self._detokenize}
            if self.dialect == "vllm":
                routes[("POST", "/v1/completions")] = self._completions
            elif self.dialect == "sglang":  # native API only; no tokenizer endpoints
                routes = {("GET", "/v1/models"): self._models,
                          ("POST", "/generate"): self._sglang_generate}
            else:
                routes.update({("GET", "/props"): self._props,
                               ("POST", "/completion"): self._llama_completion})
            route = routes.get((method, handler.path))
            if route is None:
                return self._reply(handler, 404, {"error": f"no route {handler.path}"})
            if method == "POST" and self._transport_fault(handler):
                return None
            status, payload = route(body)
            self._reply(handler, status, self._mutate(handler.path, payload))
        finally:
            with self._lock:
                self.in_flight -= 1

    def _transport_fault(self, handler) -> bool:
        """Misbehaviours of the whole reply; True when the reply was sent here."""
        mode = self.misbehave
        try:
            if mode == "detokenize_fails_midway":
                if handler.path != "/detokenize":
                    return False
                with self._lock:
                    self.detokenized += 1
                    if self.detokenized < 3:
                        return False
                self._raw(handler, 500, b'{"error": "detokenizer crashed"}', "application/json")
            elif mode == "html_error":
                self._raw(handler, 500, HTML_ERROR_BODY.encode(), "text/html")
            elif mode == "redirect":
                handler.send_response(302)
                handler.send_header("Location", "http://127.0.0.1:9/elsewhere")
                handler.send_header("Content-Length", "0")
                handler.end_headers()
            elif mode == "trickle":
                data = json.dumps({"content": "x" * 40}).encode()
                handler.send_response(200)
                handler.send_header("Content-Type", "application/json")
                handler.send_header("Content-Length", str(len(data)))
                handler.end_headers()
                self._trickle(handler, data)
            elif mode == "trickle_headers":
                self._trickle(handler, b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n"
                              + b"X-Slow: " + b"a" * 100 + b"\r\n\r\n{}")
            elif mode == "huge_body":
                handler.send_response(200)
                handler.send_header("Content-Type", "application/json")
                handler.send_header("Content-Length", str(50 * 2**20))
                handler.end_headers()
                handler.wfile.write(b"[" * 1024)
            elif mode == "huge_body_undeclared":  # HTTP/1.0: the body ends when we close
                handler.send_response(200)
                handler.send_header("Content-Type", "application/json")
                handler.end_headers()
                for _ in range(40):
                    handler.wfile.write(b" " * 2**20)
            elif mode == "gzip_bomb":
                self._raw(handler, 200, gzip_bomb(), "application/json",
                          {"Content-Encoding": "gzip"})
            elif mode == "deep_json":
                self._raw(handler, 200, b"[" * 100000 + b"]" * 100000, "application/json")
            else:
                return False
        except OSError:  # the client gave up first, as it should
            pass
        return True

    @staticmethod
    def _trickle(handler, data: bytes) -> None:
        for byte in data:
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            time.sleep(0.3)

    def _mutate(self, path: str, payload: Any) -> Any:
        """Misbehaviours of a scoring reply's content, for this server's dialect."""
        mode = self.misbehave
        if mode is None or path not in ("/v1/completions", "/generate", "/completion"):
            return payload
        if isinstance(payload, Stream):
            events = list(payload)
            if mode == "stream_too_many":
                events = [e for e in events if not e.get("stop")] * 2 + [
                    e for e in events if e.get("stop")]
            for i, event in enumerate(events):
                for row in self._rows(event):
                    self._mutate_row(row)
                if mode == "stream_nan" and i == 2:
                    self._set_chosen(event, float("nan"))
            out = Stream(events, payload.done)
            out.fault = {"stream_broken_json": "broken", "stream_reset": "reset",
                         "stream_huge_event": "huge"}.get(mode)
            return out
        if mode == "list_body":
            return [payload]
        if mode == "choices_object":
            return {**payload, "choices": {"0": payload["choices"][0]}}
        if mode == "choices_null":
            return {**payload, "choices": [None]}
        if mode == "probs_object":
            return {**payload, "completion_probabilities": {"a": 1}}
        if mode == "probs_null":
            return {**payload, "completion_probabilities": [None]}
        if mode == "meta_info_list":
            return {**payload, "meta_info": [payload["meta_info"]]}
        if mode == "bad_rank":
            for row in payload["choices"][0].get("prompt_logprobs") or []:
                for entry in (row or {}).values():
                    entry["rank"] = 10**30
            return payload
        for row in self._rows(payload):
            self._mutate_row(row)
        return payload

    def _rows(self, payload: dict) -> list:
        """The top log-probability rows of a reply or event, as the dialect writes them:
        vLLM ``{key: logprob}`` dicts, SGLang ``[[logprob, id, text], ...]`` lists, llama.cpp
        rows with ``top_logprobs``."""
        if self.dialect == "vllm":
            return [choice["logprobs"]["top_logprobs"] for choice in payload.get("choices", [])
                    if choice.get("logprobs")]
        if self.dialect == "sglang":
            return [payload.get("meta_info", {}).get("output_top_logprobs") or []]
        return payload.get("completion_probabilities") or []

    def _mutate_row(self, rows: Any) -> None:
        """One reply's rows (vLLM: the list of top dicts; SGLang: the list of entry lists;
        llama.cpp: one row) changed in place."""
        mode = self.misbehave
        values = {"id_out_of_vocab": 999999, "negative_id": -3, "string_logprob": "-1.5",
                  "null_logprob": None, "nan_logprob": float("nan")}
        if self.dialect == "vllm":
            for i, top in enumerate(rows):
                if mode in ("id_out_of_vocab", "negative_id"):
                    top[f"token_id:{values[mode]}"] = -5.0
                elif mode in values:
                    top[next(reversed(top))] = values[mode]
                elif mode == "mass_over_one":
                    rows[i] = {k: -0.02 for k in top}
                elif mode == "pairs_top_logprobs":
                    rows[i] = [[k, v] for k, v in top.items()]
        elif self.dialect == "sglang":
            for entries in rows:
                if not entries:
                    continue
                if mode in ("id_out_of_vocab", "negative_id"):
                    entries[-1][1] = values[mode]
                elif mode in values:
                    entries[-1][0] = values[mode]
                elif mode == "mass_over_one":
                    for entry in entries:
                        entry[0] = -0.02
                elif mode == "short_entries":
                    entries[:] = [[e[0]] for e in entries]
        else:
            tops = rows.get("top_logprobs") or []
            if not tops:
                return
            if mode in ("id_out_of_vocab", "negative_id"):
                tops[-1]["id"] = values[mode]
            elif mode in values:
                tops[-1]["logprob"] = values[mode]
            elif mode == "mass_over_one":
                for entry in tops:
                    entry["logprob"] = -0.02
            elif mode == "bytes_not_list":
                tops[-1]["bytes"] = 10**9

    def _set_chosen(self, event: dict, logprob: float) -> None:
        """The log-probability of the token a streamed event chose."""
        if self.dialect == "vllm":
            for choice in event.get("choices", []):
                choice["logprobs"]["token_logprobs"] = [logprob]
        else:
            for row in event.get("completion_probabilities") or []:
                row["logprob"] = logprob

    def _raw(self, handler, status: int, data: bytes, content_type: str,
             headers: dict | None = None) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _reply(self, handler, status: int, payload: Any, headers: dict | None = None) -> None:
        if isinstance(payload, Stream):
            handler.send_response(status)
            handler.send_header("Content-Type", "text/event-stream")
            handler.end_headers()
            fault = getattr(payload, "fault", None)
            try:
                for i, event in enumerate(payload):
                    line = json.dumps(event)
                    if i == 2 and fault == "broken":
                        line = line[: len(line) // 2]
                    elif i == 2 and fault == "huge":
                        line = json.dumps({**event, "pad": "x" * 2 * 2**20})
                    elif i == 2 and fault == "reset":
                        reset(handler)
                        return
                    handler.wfile.write(f"data: {line}\n\n".encode())
                    handler.wfile.flush()
                    time.sleep(self.stream_delay)
                if payload.done:
                    handler.wfile.write(b"data: [DONE]\n\n")
            except OSError:  # the client closed the stream
                pass
            return
        data = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)

    # ------------------------------------------------------------------ model
    @torch.no_grad()
    def _logprobs(self, ids: list[int]) -> torch.Tensor:
        """[T, V] raw log-probabilities of the token after each position."""
        with self._model_lock:
            logits = self.model(input_ids=torch.tensor([ids]), use_cache=False).logits[0]
        return torch.log_softmax(logits.float(), dim=-1)

    def _generate(self, ids: list[int], max_tokens: int, temperature: float, top_k: int | None,
                  seed: int | None, ignore_eos: bool) -> list[tuple[int, torch.Tensor]]:
        gen = torch.Generator().manual_seed(seed or 0)
        out, ids = [], list(ids)
        for _ in range(max_tokens):
            logp = self._logprobs(ids)[-1]
            if not temperature:
                token = int(logp.argmax())
            else:
                scaled = logp / temperature
                if top_k:
                    kth = torch.topk(scaled, top_k).values[-1]
                    scaled = scaled.masked_fill(scaled < kth, -float("inf"))
                token = int(torch.multinomial(torch.softmax(scaled, -1), 1, generator=gen))
            out.append((token, logp))
            ids.append(token)
            if token == self.tokenizer.eos_token_id and not ignore_eos:
                break
        return out

    def _cap(self, n: int) -> str | None:
        if n > self.max_logprobs:
            return (f"Requested sample logprobs of {n}, which is greater than max allowed: "
                    f"{self.max_logprobs}")
        return None

    # ------------------------------------------------------------------ routes
    @property
    def _context(self) -> Any:
        return {"bad_max_model_len": "abc", "negative_max_model_len": -5}.get(
            self.misbehave, self.max_model_len)

    def _models(self, _body):
        card = {"id": self.name, "object": "model"}
        if self.dialect in ("vllm", "sglang"):
            card.update(owned_by=self.dialect, max_model_len=self._context)
        else:
            n_vocab = 10**12 if self.misbehave == "huge_vocab" else self.vocab
            card.update(owned_by="llamacpp", meta={"n_vocab": n_vocab,
                                                   "n_ctx_train": self._context})
        return 200, {"object": "list", "data": [card]}

    def _props(self, _body):
        return 200, {"default_generation_settings": {"n_ctx": self._context}}

    def _tokenize(self, body):
        text = body.get("prompt", body.get("content", ""))
        special = body.get("add_special_tokens", body.get("add_special", True))
        ids = self.tokenizer(text, add_special_tokens=special)["input_ids"]
        if self.misbehave == "tokenize_out_of_vocab":
            ids = [*ids, 999999]
        return 200, {"tokens": ids}

    def _detokenize(self, body):
        text = self.tokenizer.decode(body["tokens"])
        return 200, ({"prompt": text} if self.dialect == "vllm" else {"content": text})

    def _top(self, logp: torch.Tensor, n: int) -> list[tuple[int, float]]:
        values, ids = torch.topk(logp, min(n, self.vocab))
        return list(zip(ids.tolist(), values.tolist()))

    def _completions(self, body):
        ids, n = body["prompt"], body.get("logprobs")
        if body.get("model") != self.name:
            return 404, {"error": f"model {body.get('model')!r} does not exist"}
        for asked in (n, body.get("prompt_logprobs")):
            if asked is not None and self._cap(asked):
                return 400, {"error": self._cap(asked)}
        as_ids = body.get("return_tokens_as_token_ids", False)
        key = (lambda t: f"token_id:{t}") if as_ids else self.tokenizer.decode
        steps = self._generate(ids, body.get("max_tokens", 16), body.get("temperature", 1.0),
                               body.get("top_k"), body.get("seed"), body.get("ignore_eos", False))
        choice: dict[str, Any] = {"index": 0, "text": self.tokenizer.decode(
            [t for t, _ in steps]), "finish_reason": "length"}
        if n is not None:
            tops = []
            for token, logp in steps:
                top = {key(t): lp for t, lp in self._top(logp, n)}
                top[key(token)] = float(logp[token])  # vLLM adds the sampled token
                tops.append(top)
            choice["logprobs"] = {"tokens": [key(t) for t, _ in steps],
                                  "token_logprobs": [float(lp[t]) for t, lp in steps],
                                  "top_logprobs": tops}
        if body.get("stream"):
            return 200, Stream([{"choices": [{"index": 0, "text": self.tokenizer.decode([t]),
                                              "logprobs": {"tokens": [tok],
                                                           "token_logprobs": [lp],
                                                           "top_logprobs": [top]}}]}
                                for (t, _), tok, lp, top in zip(
                                    steps, choice["logprobs"]["tokens"],
                                    choice["logprobs"]["token_logprobs"],
                                    choice["logprobs"]["top_logprobs"])], done=True)
        if body.get("prompt_logprobs") is not None:
            logp = self._logprobs(ids)
            rows: list[Any] = [None]
            for pos in range(1, len(ids)):
                row_lp = logp[pos - 1]
                entries = dict(self._top(row_lp, body["prompt_logprobs"]))
                entries[ids[pos]] = float(row_lp[ids[pos]])
                rows.append({str(t): {"logprob": v,
                                      "rank": int((row_lp > row_lp[t]).sum()) + 1,
                                      "decoded_token": self.tokenizer.decode([t])}
                             for t, v in entries.items()})
            choice["prompt_logprobs"] = rows
        return 200, {"id": "cmpl-fake", "object": "text_completion", "model": self.name,
                     "choices": [choice]}

    def _sglang_generate(self, body):
        ids, n = body["input_ids"], body.get("top_logprobs_num", 0)
        sampling = body.get("sampling_params") or {}
        steps = self._generate(ids, sampling.get("max_new_tokens", 16),
                               sampling.get("temperature", 1.0), sampling.get("top_k"),
                               sampling.get("sampling_seed"), sampling.get("ignore_eos", False))
        meta: dict[str, Any] = {
            "output_token_logprobs": [[float(lp[t]), t, None] for t, lp in steps],
            "output_top_logprobs": [[[v, i, None] for i, v in self._top(lp, n)]
                                    for _, lp in steps]}
        start = body.get("logprob_start_len", -1)
        if start is not None and start >= 0:
            logp = self._logprobs(ids)
            meta["input_token_logprobs"] = [[None, ids[0], None]] + [
                [float(logp[p - 1, ids[p]]), ids[p], None] for p in range(1, len(ids))]
            meta["input_top_logprobs"] = [None] + [
                [[v, i, None] for i, v in self._top(logp[p - 1], n)] for p in range(1, len(ids))]
        return 200, {"text": self.tokenizer.decode([t for t, _ in steps]), "meta_info": meta}

    def _llama_completion(self, body):
        ids, n = body["prompt"], body.get("n_probs", 0)
        if n and self._cap(n):
            return 400, {"error": self._cap(n)}
        temperature = body.get("temperature", 0.8)
        steps = self._generate(ids, body.get("n_predict", 16), temperature,
                               body.get("top_k") or None, body.get("seed"),
                               body.get("ignore_eos", False))

        def entry(t: int, lp: float) -> dict:
            piece = self.tokenizer.decode([t])
            return {"id": t, "token": piece, "bytes": list(piece.encode()), "logprob": lp}

        probs = [{**entry(t, float(lp[t])),
                  "top_logprobs": [entry(i, v) for i, v in self._top(lp, n)]}
                 for t, lp in steps] if n else []
        if body.get("stream"):
            return 200, Stream([{"content": self.tokenizer.decode([t]), "stop": False,
                                 "completion_probabilities": [row]}
                                for (t, _), row in zip(steps, probs)]
                               + [{"content": "", "stop": True}], done=False)
        return 200, {"content": self.tokenizer.decode([t for t, _ in steps]),
                     "tokens": [t for t, _ in steps], "stop": True,
                     "completion_probabilities": probs}
