"""The explorer's strategy runs, one at a time, each in a worker thread so that the kernel stays
free to hear Stop (a busy kernel would process the click only after the run).

Stop sets the event the run was given (``Session.generate(..., stop=event)``): every strategy
checks it between steps and returns what it has, a partial result over a consistent tree. A run
that fails leaves the tree as it was (the run rolls back). The explorer is told through four
callbacks: each step, the result, the failure, and the end (always, last)."""

from __future__ import annotations

import threading
from typing import Any, Callable

from ...tree import TokenTree


class RunJob:
    """``RunJob(session, lock, wait_idle, on_step, on_done, on_failed, on_end)``: ``lock`` is
    held for the whole run (the model and its cache serve one caller at a time) after
    ``wait_idle()`` lets queued clicks finish; ``on_step(info)`` comes from the worker thread
    after each step, ``on_done(result)`` or ``on_failed(strategy, exc)`` when the run ends,
    then ``on_end(tree)``."""

    def __init__(self, session: Any, lock: threading.RLock, wait_idle: Callable[[], None],
                 on_step: Callable[[dict[str, Any]], None], on_done: Callable[[Any], None],
                 on_failed: Callable[[str, Exception], None],
                 on_end: Callable[[TokenTree], None]) -> None:
        self._session, self._lock, self._wait_idle = session, lock, wait_idle
        self._on_step, self._on_done = on_step, on_done
        self._on_failed, self._on_end = on_failed, on_end
        self._stop = threading.Event()
        self._running = threading.Event()
        self._worker: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._running.is_set()

    def start(self, tree: TokenTree, strategy: str, start_id: int, max_new: int,
              seed: int | None, params: dict[str, Any]) -> None:
        """Run ``session.generate(tree, strategy=..., start_id=..., ...)`` in a worker."""
        self._stop.clear()
        self._running.set()
        self._worker = threading.Thread(
            target=self._work, name="inferviz-explorer-run", daemon=True,
            args=(tree, strategy, start_id, max_new, seed, params))
        self._worker.start()

    def join(self) -> None:
        if self._worker is not None:
            self._worker.join()

    def stop(self) -> bool:
        """Ask the run to stop at its next step; False when none is running."""
        if not self.running:
            return False
        self._stop.set()
        return True

    def _work(self, tree: TokenTree, strategy: str, start_id: int, max_new: int,
              seed: int | None, params: dict[str, Any]) -> None:
        with self._lock:
            self._wait_idle()
            try:
                result = self._session.generate(tree, strategy=strategy, start_id=start_id,
                                                max_new_tokens=max_new, seed=seed,
                                                stop=self._stop, on_step=self._on_step,
                                                **params)
            except Exception as exc:  # noqa: BLE001 -- shown to the user, as in Voila
                self._on_failed(strategy, exc)
            else:
                self._on_done(result)
            finally:
                try:
                    self._on_end(tree)
                finally:
                    self._running.clear()
