"""The session the explorer's TreeWidget expands with: clicks refused while a strategy run
holds the model (the model and its cache serve one caller at a time)."""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import Future
from typing import Any

from ...tree import TokenTree

BUSY_MESSAGE = "a strategy run is going on: press Stop or wait for it to finish"


class GuardedSession:
    """What the TreeWidget expands with: the session, refusing while a run holds the model.

    Clicks go through the session's request batcher (``submit_expand``); a run waits until the
    clicks already queued are answered (``wait_idle``) before it starts writing to the tree."""

    def __init__(self, session: Any, lock: threading.RLock) -> None:
        self._session = session
        self._lock = lock
        self._in_flight = 0
        self._idle = threading.Condition()

    @contextlib.contextmanager
    def _no_run(self):
        """Hold the run lock while a click starts; refuse at once if a run holds it."""
        if not self._lock.acquire(blocking=False):
            raise ValueError(BUSY_MESSAGE)
        try:
            yield
        finally:
            self._lock.release()

    def constrained(self, constraint: Any) -> Any:
        """The session's check that it can run under ``constraint`` (nothing runs)."""
        return self._session.constrained(constraint)

    def expand(self, tree: TokenTree, node_ids: Any, **params: Any) -> Any:
        with self._no_run():
            return self._session.expand(tree, node_ids, **params)

    def submit_expand(self, tree: TokenTree, node_id: int, **params: Any) -> Any:
        with self._no_run():
            submit = getattr(self._session, "submit_expand", None)
            if submit is not None:
                future = submit(tree, node_id, **params)
            else:  # a session object without a batcher: expand now, answer at once
                future = Future()
                future.set_result(self._session.expand(tree, node_id, **params))
            with self._idle:
                self._in_flight += 1
        future.add_done_callback(self._one_done)
        return future

    def _one_done(self, _future: Any) -> None:
        with self._idle:
            self._in_flight -= 1
            self._idle.notify_all()

    def wait_idle(self) -> None:
        """Block until every submitted click is answered (call with the run lock held, so
        that no new click starts meanwhile)."""
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight == 0)
