"""The one-line status messages of the explorer and its panels (HTML: every piece of text in
``message`` already went through :func:`inferviz.html_text.esc`)."""

from __future__ import annotations

from ...html_text import esc

COLORS = {"info": "#374151", "warn": "#b45309", "error": "#b91c1c"}


def status_html(message: str, level: str = "info") -> str:
    """``message`` coloured by ``level`` (info, warn, error); an error is an alert box."""
    role = " role='alert' class='inferviz-error'" if level == "error" else ""
    return f"<div style='color:{COLORS[level]}'{role}>{message}</div>"


def error_html(exc: BaseException) -> str:
    """``Type: message`` of an exception, escaped: messages carry what users typed and what
    servers answered (an HTML error page), which must show as text, never run."""
    return esc(f"{type(exc).__name__}: {exc}")
