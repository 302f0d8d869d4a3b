"""Messages between the widget front ends (untrusted browser code) and the kernel.

Everything that arrives from a browser is validated here before the kernel acts on it. A bad
message is answered with an error response; it never changes the tree or raises in the kernel.

Request (browser -> kernel), sent with ``model.send``::

    {"kind": "inferviz:request", "id": "r1", "action": "expand", "node_id": 3,
     "params": {"k": 5, "temperature": 1.0, "top_k": null, "top_p": null, "min_p": null}}

``params`` is optional; missing keys fall back to the widget's traits. The names it may carry,
their types and ranges are ``click_params()``: k and the ``inferviz.sampler_params`` rows the
tree bar offers.

Response (kernel -> browser)::

    {"kind": "inferviz:response", "id": "r1", "ok": true, "action": "expand",
     "node_id": 3, "child_ids": [7, 8, 9], "error": ""}
    {"kind": "inferviz:response", "id": "r1", "ok": false, "action": "expand",
     "node_id": 3, "child_ids": [], "error": "k must be an integer in 1..50, got 0"}
"""

from __future__ import annotations

from typing import Any, Callable, Literal, TypedDict

from traitlets import TraitError

from ... import sampler_params
from ...sampler_params import ParamSpec
from ...validate import is_int

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
# A click's settings: k (children a click adds) and each sampler parameter the tree bar offers
# (``sampler_params`` rows with ``box=True``); their checks, words and boxes come from the rows.
K_PARAM = ParamSpec("k", int, 5, low=1, high=K_MAX, optional=False, step=1,
                    help="children a click adds: the k most likely next tokens")


def click_params() -> list[ParamSpec]:
    """The settings an expand request takes, in the tree bar's order (the browser gets them as
    the ``param_schema`` trait)."""
    return [K_PARAM, *sampler_params.offered()]


def checker(spec: ParamSpec) -> Callable[[Any], int | float | None]:
    """A check for ``spec``'s value from the browser: the value (an int or a float, None when
    off), or :class:`ProtocolError` naming the parameter and its range."""

    def check(value: Any) -> int | float | None:
        if value is None and spec.optional:
            return None
        if not spec.accepts(value):
            raise ProtocolError(spec.browser_error(value))
        return spec.kind(value)

    check.__name__ = f"check_{spec.name}"
    return check


def param_checks() -> dict[str, Callable[[Any], Any]]:
    """name -> check of every setting an expand request may carry (registered ones too)."""
    return {spec.name: checker(spec) for spec in click_params()}


# The settings the tree widget holds as traits (a processor registered later is checked by
# ``param_checks`` and lives in the browser's box only).
PARAM_CHECKS = param_checks()


def validate_params(params: Any, defaults: ExpandParams) -> ExpandParams:
    """Full, checked expand settings: ``params`` (may be partial) over ``defaults`` (and a
    registered processor's own default when ``defaults`` lacks it)."""
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ProtocolError(f"params must be an object, got {type(params).__name__}")
    checks = param_checks()
    unknown = sorted(str(k) for k in params if k not in checks)
    if unknown:
        raise ProtocolError(
            f"unknown expand parameter(s) {unknown}; allowed: {sorted(checks)}"
        )
    merged = {**{spec.name: spec.default for spec in click_params()}, **defaults, **params}
    return ExpandParams(**{name: check(merged[name]) for name, check in checks.items()})


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


def check_selected(value: Any, node_ids: Any) -> None:
    """Raise :class:`ProtocolError` unless ``value`` (a ``selected`` from the browser) is None
    or a node id in ``node_ids``."""
    if value is not None and (not is_int(value) or value not in node_ids):
        raise ProtocolError(f"selected node {value!r} is not in this tree")


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
