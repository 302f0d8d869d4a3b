"""Array operations on torch tensors, along the last axis: the ops the processors and
distributions always called (see :mod:`inferviz.arrays`). Same names as ``numpy_ops``."""

from __future__ import annotations

from typing import Any

import torch

Array = torch.Tensor


def is_floating(x: Any) -> bool:
    return isinstance(x, torch.Tensor) and x.is_floating_point()


def is_integer(x: Any) -> bool:
    return isinstance(x, torch.Tensor) and x.dtype in (torch.int64, torch.int32)


def index(values: Any) -> Array:
    """Integer indices (int64) from a list or tensor."""
    return torch.as_tensor(values, dtype=torch.long)


def int_rows(rows: list[list[int]]) -> Array:
    """[B, T] int64 from equal-length lists of token ids."""
    return torch.tensor(rows)


def asarray(x: Any) -> Array:
    """``x`` (a numpy array, a tensor or a list) as a tensor, sharing memory where it can."""
    return torch.as_tensor(x)


def float32(x: Array) -> Array:
    return x.float()


def clone(x: Array) -> Array:
    return x.clone()


def exp(x: Array) -> Array:
    return x.exp()


def isfinite(x: Array) -> Array:
    return torch.isfinite(x)


def isnan(x: Array) -> Array:
    return torch.isnan(x)


def neginf_to(x: Array, value: float) -> Array:
    """-inf entries replaced by ``value``."""
    return x.nan_to_num(neginf=value)


def softmax(x: Array) -> Array:
    return torch.softmax(x, dim=-1)


def log_softmax(x: Array) -> Array:
    return torch.log_softmax(x, dim=-1)


def logsumexp(x: Array) -> Array:
    return torch.logsumexp(x, dim=-1)


def cumsum(x: Array) -> Array:
    return x.cumsum(dim=-1)


def nansum_product_keep(a: Array, b: Array) -> Array:
    """Sum of ``a * b`` over the last axis ignoring NaN (``-inf * 0``), kept as a size-1 axis."""
    return (a * b).nansum(-1, keepdim=True)


def max_keep(x: Array) -> Array:
    """Largest entry of the last axis, kept as a size-1 axis."""
    return x.amax(dim=-1, keepdim=True)


def topk(x: Array, k: int) -> tuple[Array, Array]:
    """(values, indices) of the ``k`` largest entries, largest first."""
    out = torch.topk(x, k, dim=-1)
    return out.values, out.indices


def sort(x: Array) -> tuple[Array, Array]:
    """(values, indices), ascending."""
    out = torch.sort(x, descending=False)
    return out.values, out.indices


def searchsorted_right(ascending: Array, values: Array) -> Array:
    return torch.searchsorted(ascending, values, right=True)


def gather(x: Array, indices: Array) -> Array:
    return x.gather(-1, indices)


def scatter(x: Array, indices: Array, src: Any) -> Array:
    """A copy of ``x`` with ``x[..., indices[..., j]] = src[..., j]`` (or the scalar ``src``)."""
    return x.scatter(-1, indices, src)


def masked_fill(x: Array, mask: Array, value: float) -> Array:
    return x.masked_fill(mask, value)


def where(condition: Array, a: Array, b: Array) -> Array:
    return torch.where(condition, a, b)


def clamp_max(x: Array, high: int) -> Array:
    return x.clamp(max=high)


def pad_one(x: Array) -> Array:
    """[N, V] -> [N, V + 1] with a zero column at the end."""
    return torch.nn.functional.pad(x, (0, 1))


def concat(parts: list[Array]) -> Array:
    return torch.cat(parts)
