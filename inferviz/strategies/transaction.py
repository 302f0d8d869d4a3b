"""One strategy run as a transaction, with Stop and live steps.

``run_strategy`` calls every strategy through :func:`execute`, which gives it a :class:`Transaction`:

- **All or nothing on error.** The tree journals what the run's thread adds or updates; if the
  strategy raises, the nodes it added are removed, the nodes it updated get their ``prob`` and
  ``meta`` back, and listeners (widget views) are notified, so they show the tree as it was.
- **Stop.** ``stop=`` (a ``threading.Event`` or a zero-argument callable returning True to
  stop) is checked between steps: the strategy ends there and returns what it has, with
  ``finish_reason="stopped"`` and ``partial=True``. In the main thread the first Ctrl-C (a
  kernel interrupt) does the same with ``finish_reason="interrupted"``; a second one raises
  ``KeyboardInterrupt`` at once. Nodes of a partial run keep meta ``run_partial=True``.
- **Live steps.** A strategy calls :meth:`Transaction.step` after each step it wrote: listeners see the
  nodes at once, and ``on_step(info)`` gets ``{"step": n, "node_ids": [...], ...}`` (SMC adds
  ``ess``, the ESS after each step so far).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from contextvars import ContextVar
from typing import Any, Callable

from ..tree import TokenTree

PARTIAL_REASONS = ("stopped", "interrupted")

_current: ContextVar["Transaction | None"] = ContextVar("inferviz_run", default=None)


def check_run_args(stop: Any, on_step: Any) -> None:
    if stop is not None and not callable(getattr(stop, "is_set", None)) and not callable(stop):
        raise TypeError(f"stop must be a threading.Event, a callable returning True to stop, "
                        f"or None; got {stop!r}")
    if on_step is not None and not callable(on_step):
        raise TypeError(f"on_step must be a callable on_step(info: dict) or None; got "
                        f"{on_step!r}")


class Transaction:
    """What a strategy sees of its run: ``stop_reason()`` between steps, ``step(node_ids)``
    after each step, ``steps`` done so far."""

    def __init__(self, tree: TokenTree, stop: Any = None,
                 on_step: Callable[[dict[str, Any]], Any] | None = None) -> None:
        self.tree = tree
        self.steps = 0
        self._stop = stop
        self._on_step = on_step
        self._reason: str | None = None

    def request_stop(self, reason: str = "stopped") -> None:
        """Stop at the next step boundary (from any thread)."""
        if self._reason is None:
            self._reason = reason

    def stop_reason(self) -> str | None:
        """``"stopped"``/``"interrupted"`` once a stop was asked for, else None."""
        if self._reason is None and self._stop is not None:
            is_set = getattr(self._stop, "is_set", None)
            if bool(is_set() if callable(is_set) else self._stop()):
                self._reason = "stopped"
        return self._reason

    def step(self, node_ids: list[int], **info: Any) -> None:
        """One step is written: notify the tree's listeners and ``on_step``."""
        self.steps += 1
        self.tree.notify(list(node_ids))
        if self._on_step is not None:
            self._on_step({"step": self.steps, "node_ids": list(node_ids), **info})


def current_transaction(tree: TokenTree) -> Transaction:
    """The transaction of the run in progress on ``tree`` in this context, or a detached one (a
    strategy module called directly: no stop, plain notifications)."""
    txn = _current.get()
    return txn if txn is not None and txn.tree is tree else Transaction(tree)


def execute(tree: TokenTree, call: Callable[[], Any], stop: Any = None,
            on_step: Callable[[dict[str, Any]], Any] | None = None) -> Any:
    """``call()`` (a strategy run writing into ``tree``) as a transaction; see the module doc.
    Returns its result with ``steps``, ``partial`` and (for a partial run) marked nodes."""
    check_run_args(stop, on_step)
    txn = Transaction(tree, stop, on_step)
    journal = tree.begin_journal()
    token = _current.set(txn)
    try:
        with _sigint_stops(txn):
            result = call()
    except KeyboardInterrupt:  # a hard interrupt: keep what was made, marked
        _mark_partial(tree, journal)
        raise
    except BaseException:
        tree.rollback(journal)
        raise
    finally:
        _current.reset(token)
        tree.end_journal()
    partial = getattr(result, "finish_reason", "") in PARTIAL_REASONS
    if hasattr(result, "finish_reason"):  # a GenerationResult (a registered module may differ)
        result.steps, result.partial = txn.steps, partial
    if partial:
        _mark_partial(tree, journal)
    return result


def _mark_partial(tree: TokenTree, journal: dict[str, Any]) -> None:
    added = [i for i in journal["added"] if i in tree]
    for node_id in added:
        tree.nodes[node_id].meta["run_partial"] = True
    if added:
        tree.notify(added)


@contextlib.contextmanager
def _sigint_stops(txn: Transaction):
    """In the main thread, the first SIGINT asks the run to stop between steps; a second one
    goes to the previous handler (KeyboardInterrupt)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if not callable(previous):  # SIG_IGN, SIG_DFL or a C handler: leave it alone
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if txn.stop_reason() is None:
            txn.request_stop("interrupted")
        else:
            previous(signum, frame)

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
