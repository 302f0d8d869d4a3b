"""One way to put text into HTML: ``esc(value)``. Every place that builds HTML from text that
is not our own literal markup (token text, prompts, exception messages, server replies,
strategy and parameter names, file names) passes it through here, so markup in that text is
shown, never run. ``docs/reliability.md`` ("Security") lists the producers and the test that
sends markup through each (``tests/test_html_escaping.py``).
"""

from __future__ import annotations

import html
import re
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")


def esc(value: Any) -> str:
    """``str(value)`` with ``& < > " '`` escaped (safe in element text and in quoted
    attributes); lone surrogates, which no page can encode, become U+FFFD."""
    text = value if isinstance(value, str) else str(value)
    return html.escape(_SURROGATE.sub("\ufffd", text), quote=True)
