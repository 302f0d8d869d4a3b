"""What the explorer's action panels (Why, Compare) share: holding the explorer's run lock
while they compute (refused at once while a run holds it, queued clicks answered first), and
a status line for their progress and errors (escaped)."""

from __future__ import annotations

import contextlib
from typing import Any, Callable

from .guarded_session import BUSY_MESSAGE
from .status import error_html, status_html


class PanelActions:
    """Mixin: the panel sets ``_lock`` (the explorer's RLock), ``_wait_idle`` (a callable)
    and ``status`` (a ``widgets.HTML``)."""

    _lock: Any
    _wait_idle: Callable[[], None]
    status: Any

    @contextlib.contextmanager
    def _holding(self):
        """The explorer's run lock, refused at once while a run holds it; queued clicks are
        answered first."""
        if not self._lock.acquire(blocking=False):
            raise ValueError(BUSY_MESSAGE)
        try:
            self._wait_idle()
            yield
        finally:
            self._lock.release()

    def _say(self, message: str, level: str = "info") -> None:
        """Show ``message`` (HTML: every piece of text in it already went through ``esc``)."""
        self.status.value = status_html(message, level)

    def _guard(self, action: Callable[[], Any]) -> None:
        """A button's action: an error shows in the status line instead of raising in the
        kernel (where nobody would see it in Voila)."""
        try:
            action()
        except Exception as exc:  # noqa: BLE001 -- a button has no caller to raise to
            self._say(error_html(exc), "error")
