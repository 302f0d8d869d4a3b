"""Where next-token log-probabilities come from: this process (:class:`LocalBackend`, the
engine over a transformers model) or an inference server (:class:`RemoteBackend`: vLLM, SGLang,
llama.cpp). Strategies, the tree and the widgets see only :class:`Backend`.

``LocalBackend`` is imported on first use: it brings the engine and torch, which a session over
a server never needs."""

from typing import Any

from .base import Backend, NextTokenScores, ServerLacks

__all__ = ["Backend", "LocalBackend", "NextTokenScores", "ServerLacks"]


def __getattr__(name: str) -> Any:
    if name == "LocalBackend":
        from .local import LocalBackend

        return LocalBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
