"""HTTP for the remote backend: one pooled httpx client, timeouts, retries with back-off.

A server that is busy answers 429 (too many requests) or 503 (overloaded, still loading); we
wait and try again, doubling the wait each time (or as long as its ``Retry-After`` says, capped),
up to ``max_retries`` times. Connection errors are retried the same way. Any other error status
raises at once with the server's own message, which usually says what was wrong.
"""

from __future__ import annotations

import json
import time
from typing import Any

RETRY_STATUS = (429, 502, 503, 504)
MAX_WAIT = 30.0  # seconds: the longest single back-off, whatever Retry-After asks
# The largest reply body read (a full-vocabulary row of a 256k vocabulary as JSON is ~10 MB);
# a bigger one is refused before it is parsed. HttpClient(max_reply_bytes=...) changes it.
MAX_REPLY_BYTES = 32 * 2**20


class ServerError(RuntimeError):
    """The server answered with an error (after any retries); the message holds its reply."""


class HttpClient:
    """POST/GET JSON to ``base_url`` with connection pooling, timeouts and retries."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 60.0,
                 max_retries: int = 5, backoff: float = 0.2, max_connections: int = 32,
                 max_reply_bytes: int = MAX_REPLY_BYTES) -> None:
        import httpx

        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.base_url = base_url
        self.timeout = timeout  # bounds a whole request (every read), not one read
        self.max_reply_bytes = max_reply_bytes
        self.max_retries = max_retries
        self.backoff = backoff
        self.retries = 0  # back-offs taken so far, for the curious and for tests
        self._httpx = httpx
        self._client = httpx.Client(
            base_url=base_url, headers=headers, timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            limits=httpx.Limits(max_connections=max_connections,
                                max_keepalive_connections=max_connections))

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self._request("POST", path, body)

    def stream(self, path: str, body: dict[str, Any]):
        """POST ``body`` with ``"stream": true`` and yield each server-sent event's JSON as it
        arrives (``data: {...}`` lines, up to ``data: [DONE]``). Busy answers are retried
        before the first event, as in :meth:`post`."""
        httpx = self._httpx
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                with self._client.stream("POST", path, json={**body, "stream": True}) as response:
                    if response.status_code in RETRY_STATUS and not last:
                        self._wait(attempt, response.headers.get("retry-after"))
                        continue
                    if response.status_code >= 300:
                        self._refuse(response, "POST", path, self._body(response, "POST", path))
                    for line in response.iter_lines():
                        if len(line) > self.max_reply_bytes:
                            raise ServerError(f"POST {self.base_url}{path} streamed an event of "
                                              f"{len(line)} bytes (limit {self.max_reply_bytes})")
                        if not line.startswith("data:"):
                            continue
                        payload = line[len("data:"):].strip()
                        if payload == "[DONE]":
                            return
                        yield json.loads(payload)
                    return
            except (httpx.TransportError, httpx.StreamError) as err:
                raise ServerError(f"POST {self.base_url}{path}: the stream broke off "
                                  f"({type(err).__name__}: {err})") from err

    def get(self, path: str) -> Any:
        return self._request("GET", path, None)

    def _request(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        httpx = self._httpx
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                with self._client.stream(method, path, json=body) as response:
                    content = self._body(response, method, path)
            except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError,
                    httpx.TimeoutException) as err:
                if last:
                    raise ServerError(f"{method} {self.base_url}{path} failed after "
                                      f"{attempt + 1} tries: {type(err).__name__}: {err}") from err
                self._wait(attempt, None)
                continue
            if response.status_code in RETRY_STATUS and not last:
                self._wait(attempt, response.headers.get("retry-after"))
                continue
            if response.status_code >= 300:
                self._refuse(response, method, path, content)
            try:
                return json.loads(content)
            except ValueError as err:
                text = content[:200].decode("utf-8", "replace")
                raise ServerError(f"{method} {self.base_url}{path} answered with no JSON: "
                                  f"{text!r}") from err
        raise AssertionError("unreachable")

    def _body(self, response: Any, method: str, path: str) -> bytes:
        """The reply's body, read within ``timeout`` seconds in all (a server trickling bytes
        cannot stretch it) and at most ``max_reply_bytes`` long."""
        deadline = time.monotonic() + self.timeout
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_reply_bytes:
            raise ServerError(f"{method} {self.base_url}{path} answered with {declared} bytes "
                              f"(limit {self.max_reply_bytes}); not read")
        chunks, size = [], 0
        for chunk in response.iter_raw():
            size += len(chunk)
            if size > self.max_reply_bytes:
                raise ServerError(f"{method} {self.base_url}{path} answered with more than "
                                  f"{self.max_reply_bytes} bytes; not read further")
            if time.monotonic() > deadline:
                raise ServerError(f"{method} {self.base_url}{path} took more than "
                                  f"{self.timeout:g} s to send its reply ({size} bytes so far)")
            chunks.append(chunk)
        return b"".join(chunks)

    def _refuse(self, response: Any, method: str, path: str, content: bytes) -> None:
        text = content[:500].decode("utf-8", "replace")
        if 300 <= response.status_code < 400:
            raise ServerError(f"{method} {self.base_url}{path} answered "
                              f"{response.status_code}, a redirect to "
                              f"{response.headers.get('location')!r}; inferviz does not follow "
                              "redirects (give the server's own URL)")
        raise ServerError(f"{method} {self.base_url}{path} answered "
                          f"{response.status_code}: {text}")

    def _wait(self, attempt: int, retry_after: str | None) -> None:
        self.retries += 1
        wait = self.backoff * (2 ** attempt)
        if retry_after is not None:
            try:
                wait = max(wait, float(retry_after))
            except ValueError:
                pass
        time.sleep(min(wait, MAX_WAIT))

    def close(self) -> None:
        self._client.close()
