"""Messages between the widget front ends (untrusted browser code) and the kernel.

Everything that arrives from a browser is validated here before the kernel acts on it. A bad
message is answered with an error response; it never changes the tree or raises in the kernel.

Request (browser -> kernel), sent with ``model.send``::

    {"kind": "inferviz:request", "id": "r1", "action": "expand", "node_id": 3,
     "params": {"k": 5, "temperature": 1.0, "top_k": null, "top_p": null, "min_p": null}}

``params`` is optional; missing keys fall back to the widget's traits.

Response (kernel -> browser)::

    {"kind": "inferviz:response", "id": "r1", "ok": true, "action": "expand",
     "node_id": 3, "child_ids": [7, 8, 9], "error": ""}
    {"kind": "inferviz:response", "id": "r1", "ok": false, "action": "expand",
     "node_id": 3, "child_ids": [], "error": "k must be an integer in 1..50, got 0"}
"""

from __future__ import annotations

import math
from typing import Any, Literal, TypedDict

from traitlets import TraitError

from ..validate import is_int

REQUEST_KIND = "inferviz:request"
RESPONSE_KIND = "inferviz:response"
ACTIONS = ("expand",)
# A view that missed a delta asks for the full snapshot: {"kind": REQUEST_KIND, "id": ...,
# "action": "snapshot"}; the kernel re-sends the ``nodes`` trait (no response message).
SNAPSHOT_ACTION = "snapshot"
K_MAX = 50
MAX_ID_LENGTH = 64
READ_ONLY_MESSAGE = "this tree is read-only: pass session= to TreeWidget to expand nodes"


class ExpandParams(TypedDict):
    """Sampler settings for one expansion; the keyword arguments of ``Session.expand``."""

    k: int
    temperature: float
    top_k: int | None
    top_p: float | None
    min_p: float | None


class Response(TypedDict):
    kind: Literal["inferviz:response"]
    id: str | int | None
    ok: bool
    action: str | None
    node_id: int | None
    child_ids: list[int]
    error: str


class ProtocolError(ValueError):
    """A message or a setting from the browser (or a caller) that the widget refuses."""


class SettingError(TraitError, ValueError):
    """A bad trait value: a ``TraitError`` for traitlets, a ``ValueError`` for users."""


# ------------------------------------------------------------------ settings

def _is_real(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) and math.isfinite(
        value
    )


def check_k(value: Any) -> int:
    if not is_int(value) or not 1 <= value <= K_MAX:
        raise ProtocolError(f"k must be an integer in 1..{K_MAX}, got {value!r}")
    return int(value)


def check_temperature(value: Any) -> float:
    if not _is_real(value) or value <= 0:
        raise ProtocolError(f"temperature must be a finite number > 0, got {value!r}")
    return float(value)


def check_top_k(value: Any) -> int | None:
    if value is None:
        return None
    if not is_int(value) or value < 1:
        raise ProtocolError(f"top_k must be None or an integer >= 1, got {value!r}")
    return int(value)


def check_top_p(value: Any) -> float | None:
    if value is None:
        return None
    if not _is_real(value) or not 0 < value <= 1:
        raise ProtocolError(f"top_p must be None or a number in (0, 1], got {value!r}")
    return float(value)


def check_min_p(value: Any) -> float | None:
    if value is None:
        return None
    if not _is_real(value) or not 0 <= value <= 1:
        raise ProtocolError(f"min_p must be None or a number in [0, 1], got {value!r}")
    return float(value)


PARAM_CHECKS = {
    "k": check_k,
    "temperature": check_temperature,
    "top_k": check_top_k,
    "top_p": check_top_p,
    "min_p": check_min_p,
}


def validate_params(params: Any, defaults: ExpandParams) -> ExpandParams:
    """Full, checked expand settings: ``params`` (may be partial) over ``defaults``."""
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ProtocolError(f"params must be an object, got {type(params).__name__}")
    unknown = sorted(str(k) for k in params if k not in PARAM_CHECKS)
    if unknown:
        raise ProtocolError(
            f"unknown expand parameter(s) {unknown}; allowed: {sorted(PARAM_CHECKS)}"
        )
    merged = {**defaults, **params}
    return ExpandParams(**{name: check(merged[name]) for name, check in PARAM_CHECKS.items()})


# ------------------------------------------------------------------ requests
def request_id(msg: Any) -> str | int | None:
    """The request id to echo back, or None when the message has no usable one."""
    if not isinstance(msg, dict):
        return None
    rid = msg.get("id")
    if isinstance(rid, str) and len(rid) <= MAX_ID_LENGTH:
        return rid
    if is_int(rid):
        return rid
    return None


def validate_request(msg: Any, node_ids: Any, defaults: ExpandParams) -> tuple[int, ExpandParams]:
    """Check an expand request against the tree's node ids; return ``(node_id, params)``.

    Raises :class:`ProtocolError` naming what is wrong. ``node_ids`` supports ``in``."""
    if not isinstance(msg, dict):
        raise ProtocolError(f"a request must be an object, got {type(msg).__name__}")
    if msg.get("kind") != REQUEST_KIND:
        raise ProtocolError(f"unknown message kind {msg.get('kind')!r}; expected {REQUEST_KIND!r}")
    if request_id(msg) is None:
        raise ProtocolError(
            f"a request needs an id: a string of at most {MAX_ID_LENGTH} characters or an integer"
        )
    action = msg.get("action")
    if action not in ACTIONS:
        raise ProtocolError(f"unknown action {action!r}; allowed: {list(ACTIONS)}")
    node_id = msg.get("node_id")
    if not is_int(node_id):
        raise ProtocolError(f"node_id must be an integer, got {node_id!r}")
    if node_id not in node_ids:
        raise ProtocolError(f"node_id {node_id} is not in this tree")
    return node_id, validate_params(msg.get("params"), defaults)


def response(
    rid: str | int | None,
    *,
    ok: bool,
    action: str | None = None,
    node_id: int | None = None,
    child_ids: list[int] | None = None,
    error: str = "",
) -> Response:
    return Response(
        kind=RESPONSE_KIND,
        id=rid,
        ok=ok,
        action=action if isinstance(action, str) and action in ACTIONS else None,
        node_id=node_id if is_int(node_id) else None,
        child_ids=list(child_ids or []),
        error=error,
    )
