"""What a model source can give, said by name: the error for what it cannot
(:class:`ServerLacks`) and the checks strategies run before they ask. Strategies import these
from here, never from ``backends/``: they see a session's capabilities, not where its logits
come from."""

from __future__ import annotations

from typing import Any


class ServerLacks(ValueError):
    """The backend cannot do this exactly (no hidden states, no prompt log-probabilities, too
    few top log-probabilities); the message says what is missing and what to do."""


def require_full(source: Any, what: str) -> None:
    """ServerLacks unless ``source`` (a session or a backend) gives full distributions."""
    top_n = getattr(source, "top_n", None)
    if top_n is not None:
        raise ServerLacks(f"{what} needs the full next-token distribution, but the server "
                          f"returns only the top {top_n} log-probabilities; connect "
                          f"with top_logprobs >= the vocabulary ({source.vocab_size}) on a "
                          f"server that allows it (vLLM: --max-logprobs -1)")
