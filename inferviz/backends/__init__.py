"""Where next-token log-probabilities come from: this process (:class:`LocalBackend`, the
engine over a transformers model) or an inference server (:class:`RemoteBackend`: vLLM, SGLang,
llama.cpp). Strategies, the tree and the widgets see only :class:`Backend`."""

from .base import Backend, NextTokenScores, ServerLacks
from .local import LocalBackend

__all__ = ["Backend", "LocalBackend", "NextTokenScores", "ServerLacks"]
