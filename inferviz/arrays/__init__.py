"""One set of array operations for the two kinds of next-token rows: torch tensors (a local
model's logits) and numpy arrays (a server's top-N log-probabilities, a few KB a row).

Processors, distributions, logit checks and constraint masks are written once against
``xp = namespace(rows)``; ``xp`` is :mod:`inferviz.arrays.torch_ops` for a tensor (the very
torch ops the code called before, so local results are bit-identical) or
:mod:`inferviz.arrays.numpy_ops` for anything else. Every operation works along the last
axis. Nothing here imports torch unless it is handed a tensor, so a session over a server never
loads it (tests/test_remote_without_torch.py).
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

from . import numpy_ops

Array = Any  # a torch.Tensor or a numpy.ndarray: what the annotations of array code say


def is_tensor(x: Any) -> bool:
    """True for a torch tensor; never imports torch (a tensor exists only once it is loaded)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def namespace(x: Any) -> ModuleType:
    """The operations module for ``x``: torch_ops for a tensor, numpy_ops otherwise."""
    if is_tensor(x):
        from . import torch_ops

        return torch_ops
    return numpy_ops


def to_torch(x: Any) -> Any:
    """``x`` as a torch tensor, sharing memory with a numpy array (None stays None). For the
    strategies that draw with a seeded ``torch.Generator`` or hand tensors to user code."""
    if x is None or is_tensor(x):
        return x
    import torch

    return torch.from_numpy(numpy_ops.np.ascontiguousarray(x))


__all__ = ["Array", "is_tensor", "namespace", "to_torch"]
