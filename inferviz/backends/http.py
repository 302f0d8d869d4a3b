"""HTTP for the remote backend: one pooled httpx client, timeouts, retries with back-off.

A server that is busy answers 429 (too many requests) or 503 (overloaded, still loading); we
wait and try again, doubling the wait each time (or as long as its ``Retry-After`` says, capped),
up to ``max_retries`` times. Connection errors and timeouts are retried the same way. Any other
error status raises at once with the server's own message, which usually says what was wrong.

What a reply may do is bounded here, whatever the server is:

- ``timeout`` bounds one try of a request as a whole (connect, send, headers and body): a
  deadline across every read, so a server trickling bytes cannot stretch it. A stream
  (``"stream": true``) gets ``timeout`` for its headers and then for each event;
- a reply body (after content decoding, so a gzip bomb counts at its real size) and each event
  of a stream are at most ``max_reply_bytes`` (default :data:`MAX_REPLY_BYTES`, 32 MiB);
- redirects are not followed (a 3xx is a ``ServerError`` naming where it pointed);
- a body that is not JSON (an HTML error page, JSON nested too deep) is a ``ServerError``.

Every error names the server's URL.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from typing import Any, Iterator

RETRY_STATUS = (429, 502, 503, 504)
MAX_WAIT = 30.0  # seconds: the longest single back-off, whatever Retry-After asks
# The largest reply body read (a full-vocabulary row of a 256k vocabulary as JSON is ~10 MB);
# a bigger one is refused unparsed. Session.connect(max_reply_bytes=...) changes it.
MAX_REPLY_BYTES = 32 * 2**20


class ServerError(RuntimeError):
    """The server answered with an error (after any retries); the message holds its reply."""


class _Deadline(threading.local):
    """The monotonic time by which this thread's request in progress must be done (None: no
    request in progress). One request at a time a thread: the pool runs each on its own."""

    at: float | None = None
    timeout: float = 0.0
    what: str = "the whole reply, not one read"


class _DeadlineStream:
    """An httpcore network stream whose every read and write waits at most until the thread's
    deadline (httpcore's own timeouts are per read)."""

    def __init__(self, inner: Any, deadline: _Deadline) -> None:
        self._inner, self._deadline = inner, deadline

    def _left(self, timeout: float | None, error: type) -> float | None:
        at = self._deadline.at
        if at is None:
            return timeout
        left = at - time.monotonic()
        if left <= 0:
            raise error(f"no complete reply within timeout={self._deadline.timeout:g} s "
                        f"({self._deadline.what})")
        return left if timeout is None else min(timeout, left)

    def _timed_out(self, err: Exception) -> Exception:
        """``err`` (a timeout) said as the deadline's when the deadline is what ran out."""
        at = self._deadline.at
        if at is not None and time.monotonic() >= at - 0.01:
            return type(err)(f"no complete reply within timeout={self._deadline.timeout:g} s "
                             f"({self._deadline.what})")
        return err

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        import httpcore

        try:
            return self._inner.read(max_bytes, self._left(timeout, httpcore.ReadTimeout))
        except httpcore.ReadTimeout as err:
            raise self._timed_out(err) from None

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        import httpcore

        try:
            return self._inner.write(buffer, self._left(timeout, httpcore.WriteTimeout))
        except httpcore.WriteTimeout as err:
            raise self._timed_out(err) from None

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> "_DeadlineStream":
        import httpcore

        inner = self._inner.start_tls(ssl_context, server_hostname,
                                      self._left(timeout, httpcore.ConnectTimeout))
        return _DeadlineStream(inner, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend:
    """An httpcore network backend whose connections obey the thread's deadline."""

    def __init__(self, inner: Any, deadline: _Deadline) -> None:
        self._inner, self._deadline = inner, deadline

    def _connect_timeout(self, timeout: float | None) -> float | None:
        import httpcore

        return _DeadlineStream(None, self._deadline)._left(timeout, httpcore.ConnectTimeout)

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None, socket_options: Any = None) -> Any:
        stream = self._inner.connect_tcp(host, port, self._connect_timeout(timeout),
                                         local_address, socket_options)
        return _DeadlineStream(stream, self._deadline)

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Any = None) -> Any:
        stream = self._inner.connect_unix_socket(path, self._connect_timeout(timeout),
                                                 socket_options)
        return _DeadlineStream(stream, self._deadline)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _bound_by_deadline(client: Any, deadline: _Deadline) -> int:
    """Give every connection pool of ``client`` (the direct one and any proxy's) the deadline
    backend; returns how many were wrapped. httpx has no total timeout of its own, and its
    pools' network backend is the one place every read and write of a request passes."""
    transports = [client._transport, *getattr(client, "_mounts", {}).values()]
    wrapped = 0
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        if pool is not None and hasattr(pool, "_network_backend"):
            pool._network_backend = _DeadlineBackend(pool._network_backend, deadline)
            wrapped += 1
    return wrapped


class _Lines:
    """The lines of a byte stream, none longer than ``limit`` (checked while it arrives)."""

    def __init__(self, chunks: Iterator[bytes], limit: int, where: str) -> None:
        self._chunks, self._limit, self._where = chunks, limit, where
        self._buf = bytearray()
        self._scanned = 0  # bytes of _buf known to hold no newline

    def next(self) -> bytes | None:
        """The next line (without its newline), or None at the end of the stream."""
        while True:
            end = self._buf.find(b"\n", self._scanned)
            if end > self._limit:
                raise ServerError(f"{self._where} streamed an event of {end} bytes (limit "
                                  f"{self._limit})")
            if end >= 0:
                line = bytes(self._buf[:end])
                del self._buf[:end + 1]
                self._scanned = 0
                return line.rstrip(b"\r")
            self._scanned = len(self._buf)
            if len(self._buf) > self._limit:
                raise ServerError(f"{self._where} streamed an event of more than "
                                  f"{self._limit} bytes; not read further")
            chunk = next(self._chunks, None)
            if chunk is None:
                line, self._buf = bytes(self._buf), bytearray()
                return line or None
            self._buf += chunk


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
        self.timeout = timeout  # bounds a whole try of a request (every read), not one read
        self.max_reply_bytes = max_reply_bytes
        self.max_retries = max_retries
        self.backoff = backoff
        self.retries = 0  # back-offs taken so far, for the curious and for tests
        self._httpx = httpx
        self._deadline = _Deadline()
        self._client = httpx.Client(
            base_url=base_url, headers=headers, timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            limits=httpx.Limits(max_connections=max_connections,
                                max_keepalive_connections=max_connections))
        # Without it a trickling server is still bounded by the checks in _body, but only
        # after its headers arrive; tests/test_remote_hostile.py checks the wrapping holds.
        self.deadline_bound = _bound_by_deadline(self._client, self._deadline) > 0

    @contextlib.contextmanager
    def _within(self, what: str = "the whole reply, not one read") -> Iterator[None]:
        """``timeout`` seconds from now for this thread's I/O (restoring an outer deadline:
        a request made while a stream is paused between events)."""
        d = self._deadline
        outer = d.at, d.timeout, d.what
        d.at, d.timeout, d.what = time.monotonic() + self.timeout, self.timeout, what
        try:
            yield
        finally:
            d.at, d.timeout, d.what = outer

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self._request("POST", path, body)

    def stream(self, path: str, body: dict[str, Any], until_done: bool = False,
               max_events: int | None = None):
        """POST ``body`` with ``"stream": true`` and yield each server-sent event's JSON as it
        arrives (``data: {...}`` lines, up to ``data: [DONE]``; ``until_done``: a stream that
        ends without it was cut off, an error). Busy answers are retried before the first
        event, as in :meth:`post`. The headers, then each event, must come within
        ``timeout``; an event is at most ``max_reply_bytes``; a stream at most ``max_events``
        events."""
        httpx = self._httpx
        where = f"POST {self.base_url}{path}"
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                with contextlib.ExitStack() as stack:
                    with self._within("the headers of a stream"):
                        response = stack.enter_context(self._client.stream(
                            "POST", path, json={**body, "stream": True}))
                        if response.status_code in RETRY_STATUS and not last:
                            self._wait(attempt, response.headers.get("retry-after"))
                            continue
                        if response.status_code >= 300:
                            self._refuse(response, "POST", path,
                                         self._body(response, "POST", path))
                    for count, event in enumerate(self._events(response, where, until_done)):
                        if max_events is not None and count >= max_events:
                            raise ServerError(f"{where} streamed more than {max_events} "
                                              "events; not read further")
                        yield event
                    return
            except (httpx.TransportError, httpx.StreamError) as err:
                raise ServerError(f"{where}: the stream broke off "
                                  f"({type(err).__name__}: {err})") from err

    def _events(self, response: Any, where: str, until_done: bool) -> Iterator[Any]:
        """The JSON of each ``data:`` line, each within ``timeout`` of asking for it (comment
        lines such as keep-alives do not extend it)."""
        lines = _Lines(response.iter_bytes(), self.max_reply_bytes, where)
        while True:
            payload = None
            with self._within("one event of a stream"):
                while payload is None:
                    line = lines.next()
                    if line is None:
                        break
                    if line.startswith(b"data:"):
                        payload = line[len(b"data:"):].strip()
            if payload is None:
                if until_done:
                    raise ServerError(f"{where}: the stream ended without 'data: [DONE]' (cut "
                                      "off)")
                return
            if payload == b"[DONE]":
                return
            yield self._event(payload, where)

    def _event(self, payload: bytes, where: str) -> Any:
        try:
            return json.loads(payload)
        except (ValueError, RecursionError) as err:
            text = payload[:200].decode("utf-8", "replace")
            raise ServerError(f"{where} streamed an event that is not JSON ({err}): "
                              f"{text!r}") from err

    def get(self, path: str) -> Any:
        return self._request("GET", path, None)

    def _request(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        httpx = self._httpx
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                with self._within(), self._client.stream(method, path, json=body) as response:
                    content = self._body(response, method, path)
            except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError,
                    httpx.TimeoutException) as err:
                if last:
                    tries = f"{attempt + 1} tr{'y' if attempt == 0 else 'ies'}"
                    raise ServerError(f"{method} {self.base_url}{path} failed after {tries}: "
                                      f"{type(err).__name__}: {err}") from err
                self._wait(attempt, None)
                continue
            except httpx.HTTPError as err:  # a body it cannot decode, a protocol it refuses
                raise ServerError(f"{method} {self.base_url}{path}: {type(err).__name__}: "
                                  f"{err}") from err
            if response.status_code in RETRY_STATUS and not last:
                self._wait(attempt, response.headers.get("retry-after"))
                continue
            if response.status_code >= 300:
                self._refuse(response, method, path, content)
            try:
                return json.loads(content)
            except (ValueError, RecursionError) as err:
                text = content[:200].decode("utf-8", "replace")
                raise ServerError(f"{method} {self.base_url}{path} answered with no JSON "
                                  f"({type(err).__name__}): {text!r}") from err
        raise AssertionError("unreachable")

    def _body(self, response: Any, method: str, path: str) -> bytes:
        """The reply's body, at most ``max_reply_bytes`` long once decoded, read within the
        request's deadline (checked here too, for a client whose pools could not be bound)."""
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_reply_bytes:
            raise ServerError(f"{method} {self.base_url}{path} answered with {declared} bytes "
                              f"(limit {self.max_reply_bytes}); not read")
        deadline = self._deadline.at
        chunks, size = [], 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self.max_reply_bytes:
                raise ServerError(f"{method} {self.base_url}{path} answered with more than "
                                  f"{self.max_reply_bytes} bytes; not read further")
            if deadline is not None and time.monotonic() > deadline:
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
