"""Compact column encoding for widget state: numbers travel as binary buffers, not JSON.

``encode_columns(tree.to_columns())`` gives::

    {"n": N, "names": [...], "columns": {name: {"dtype": D, "data": ...}}}

with one of four dtypes per column (decoded by ``js/src/shared/columns.js``):

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
    # Decide by the set of value types (one pass), then convert in numpy.
    types = {type(v) for v in values} - {type(None)}
    if name in STRING_COLUMNS or (types and all(issubclass(t, str) for t in types)):
        return {"dtype": "str", "data": [None if v is None else str(v) for v in values]}
    if types and all(issubclass(t, (bool, np.bool_)) for t in types):
        codes = np.array([2 if v is None else int(bool(v)) for v in values], dtype=np.uint8)
        return {"dtype": "bool", "data": codes.tobytes()}
    if all(issubclass(t, (int, float, np.integer, np.floating))
           and not issubclass(t, (bool, np.bool_)) for t in types):  # also an all-None column
        floats = np.array(values, dtype="<f8") if values else np.zeros(0, "<f8")  # None -> NaN
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


# ------------------------------------------------------------------ deltas
DELTA_KIND = "inferviz:delta"


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    try:
        if a == b:
            return type(a) is type(b) or (_is_number(a) and _is_number(b))
    except Exception:  # noqa: BLE001 -- exotic meta values compare unequal
        return False
    return isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)


def changed_rows(previous: dict[str, list], current: dict[str, list]) -> list[int]:
    """Rows of ``current`` that a view holding ``previous`` lacks or holds differently (new rows,
    updated values, a value in a column it does not have). Rows are positions in id order;
    nodes are only ever added, so ``previous``'s rows are a prefix of ``current``'s."""
    n = len(current.get("node_id", []))
    n_prev = len(previous.get("node_id", []))
    if n < n_prev:
        raise ValueError(f"a tree only grows: {n_prev} rows were sent, now there are {n}")
    changed = set(range(n_prev, n))
    for name, values in current.items():
        old = previous.get(name)
        if old is None:
            changed.update(i for i in range(n_prev) if values[i] is not None)
            continue
        if old == values[:n_prev]:
            continue  # the common case, compared in C (list equality tries `is` first)
        changed.update(i for i, (a, b) in enumerate(zip(old, values)) if not _same(a, b))
    return sorted(changed)


def encode_delta(current: dict[str, list], rows: list[int], base: int,
                 version: int) -> tuple[dict[str, Any], list[bytes]]:
    """A delta message for the rows ``rows`` of ``current``, and its binary buffers.

    ``{"kind": "inferviz:delta", "base": b, "version": v, "n": N, "rows": {"dtype": "f64",
    "buffer": 0}, "names": [...], "columns": {name: {"dtype": D, "buffer": i} | {"dtype": D,
    "data": [...]}}}``: a view at version ``base`` applies it (``js/src/tree/store.js``) and is then
    at ``version``; binary column data travels in the message's buffers, referenced by index."""
    lengths = {len(v) for v in current.values()}
    if len(lengths) > 1:
        raise ValueError(f"columns must have equal lengths, got {sorted(lengths)}")
    buffers: list[bytes] = [np.asarray(rows, dtype="<f8").tobytes()]
    columns: dict[str, Any] = {}
    for name, values in current.items():
        encoded = encode_column(name, [values[i] for i in rows])
        if isinstance(encoded["data"], bytes):
            buffers.append(encoded["data"])
            encoded = {"dtype": encoded["dtype"], "buffer": len(buffers) - 1}
        columns[name] = encoded
    content = {
        "kind": DELTA_KIND,
        "base": int(base),
        "version": int(version),
        "n": lengths.pop() if lengths else 0,
        "rows": {"dtype": "f64", "buffer": 0},
        "names": list(current),
        "columns": columns,
    }
    return content, buffers
