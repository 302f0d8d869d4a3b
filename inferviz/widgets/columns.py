"""Compact column encoding for widget state: numbers travel as binary buffers, not JSON.

``encode_columns(tree.to_columns())`` gives::

    {"n": N, "names": [...], "columns": {name: {"dtype": D, "data": ...}}}

with one of four dtypes per column (decoded by ``js/src/columns.js``):

- ``"f64"``  little-endian float64 bytes, length 8*N; None is NaN (ids, ranks, log-probs: token
             ids up to 2**53 are exact; -inf/NaN survive, which JSON cannot carry)
- ``"bool"`` uint8 bytes, length N: 0 false, 1 true, 2 None
- ``"str"``  list of N strings (None allowed)
- ``"json"`` list of N JSON values (anything else; non-finite floats as "nan"/"inf"/"-inf")

ipywidgets ships ``bytes`` inside a Dict trait as binary buffers (DataView in the browser).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

STRING_COLUMNS = ("token",)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


def json_safe(value: Any) -> Any:
    """A strict-JSON copy of ``value``: non-finite floats become strings, numpy scalars plain."""
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isfinite(value):
            return value
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


def encode_column(name: str, values: list) -> dict[str, Any]:
    present = [v for v in values if v is not None]
    if name in STRING_COLUMNS or (present and all(isinstance(v, str) for v in present)):
        return {"dtype": "str", "data": [None if v is None else str(v) for v in values]}
    if present and all(_is_bool(v) for v in present):
        codes = np.array([2 if v is None else int(bool(v)) for v in values], dtype=np.uint8)
        return {"dtype": "bool", "data": codes.tobytes()}
    if all(_is_number(v) for v in present):  # also an all-None column
        floats = np.array([np.nan if v is None else float(v) for v in values], dtype="<f8")
        return {"dtype": "f64", "data": floats.tobytes()}
    return {"dtype": "json", "data": [json_safe(v) for v in values]}


def encode_columns(columns: dict[str, list]) -> dict[str, Any]:
    """Encode ``TokenTree.to_columns()`` output (equal-length lists) for a widget trait."""
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise ValueError(f"columns must have equal lengths, got {sorted(lengths)}")
    n = lengths.pop() if lengths else 0
    return {
        "n": n,
        "names": list(columns),
        "columns": {name: encode_column(name, list(vals)) for name, vals in columns.items()},
    }


def decode_column(column: dict[str, Any]) -> list:
    """Inverse of :func:`encode_column` (for tests and debugging)."""
    dtype, data = column["dtype"], column["data"]
    if dtype == "f64":
        return [None if math.isnan(x) else x for x in np.frombuffer(bytes(data), "<f8").tolist()]
    if dtype == "bool":
        return [None if c == 2 else bool(c) for c in np.frombuffer(bytes(data), np.uint8).tolist()]
    return list(data)


def array_payload(array: Any, dtype: str) -> dict[str, Any]:
    """A dense numpy array as ``{"dtype", "shape", "data"}`` little-endian bytes."""
    arr = np.ascontiguousarray(np.asarray(array), dtype=np.dtype(dtype).newbyteorder("<"))
    return {"dtype": np.dtype(dtype).name, "shape": list(arr.shape), "data": arr.tobytes()}
