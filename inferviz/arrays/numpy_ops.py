"""Array operations on numpy arrays, along the last axis, for a server's rows (see
:mod:`inferviz.arrays`): the same names and results as ``torch_ops`` (floating-point sums
may differ in the last bits; ties keep the lower token id first)."""

from __future__ import annotations

from typing import Any

import numpy as np

Array = np.ndarray

# -inf rows and 0 * -inf give NaN / -inf on purpose, as in torch: no warnings for them.
_QUIET = dict(invalid="ignore", divide="ignore", over="ignore", under="ignore")


def is_floating(x: Any) -> bool:
    return isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.floating)


def is_integer(x: Any) -> bool:
    return isinstance(x, np.ndarray) and x.dtype in (np.int64, np.int32)


def index(values: Any) -> Array:
    return np.asarray(values, dtype=np.int64)


def int_rows(rows: list[list[int]]) -> Array:
    return np.asarray(rows, dtype=np.int64)


def asarray(x: Any) -> Array:
    return np.asarray(x)


def float32(x: Array) -> Array:
    return np.asarray(x, dtype=np.float32)


def clone(x: Array) -> Array:
    return x.copy()


def exp(x: Array) -> Array:
    with np.errstate(**_QUIET):
        return np.exp(x)


def isfinite(x: Array) -> Array:
    return np.isfinite(x)


def isnan(x: Array) -> Array:
    return np.isnan(x)


def neginf_to(x: Array, value: float) -> Array:
    return np.where(np.isneginf(x), x.dtype.type(value), x)


def logsumexp(x: Array) -> Array:
    with np.errstate(**_QUIET):
        top = x.max(axis=-1, keepdims=True)
        shift = np.where(np.isfinite(top), top, x.dtype.type(0))
        out = np.log(np.exp(x - shift).sum(axis=-1, keepdims=True)) + shift
    return out[..., 0]


def log_softmax(x: Array) -> Array:
    with np.errstate(**_QUIET):
        return x - logsumexp(x)[..., None]


def softmax(x: Array) -> Array:
    with np.errstate(**_QUIET):
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)


def cumsum(x: Array) -> Array:
    return np.cumsum(x, axis=-1, dtype=x.dtype)


def nansum_product_keep(a: Array, b: Array) -> Array:
    with np.errstate(**_QUIET):
        return np.nansum(a * b, axis=-1, keepdims=True)


def max_keep(x: Array) -> Array:
    return x.max(axis=-1, keepdims=True)


def topk(x: Array, k: int) -> tuple[Array, Array]:
    indices = np.argsort(-x, axis=-1, kind="stable")[..., :k]
    return np.take_along_axis(x, indices, axis=-1), indices


def sort(x: Array) -> tuple[Array, Array]:
    indices = np.argsort(x, axis=-1, kind="stable")
    return np.take_along_axis(x, indices, axis=-1), indices


def searchsorted_right(ascending: Array, values: Array) -> Array:
    return np.searchsorted(ascending, values, side="right")


def gather(x: Array, indices: Array) -> Array:
    return np.take_along_axis(x, indices, axis=-1)


def scatter(x: Array, indices: Array, src: Any) -> Array:
    out = x.copy()
    np.put_along_axis(out, indices, src, axis=-1)
    return out


def masked_fill(x: Array, mask: Array, value: float) -> Array:
    return np.where(mask, x.dtype.type(value), x)


def where(condition: Array, a: Array, b: Array) -> Array:
    return np.where(condition, a, b)


def clamp_max(x: Array, high: int) -> Array:
    return np.minimum(x, high)


def pad_one(x: Array) -> Array:
    return np.pad(x, ((0, 0), (0, 1)))


def concat(parts: list[Array]) -> Array:
    return np.concatenate(parts)
