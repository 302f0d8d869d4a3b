"""LensWidget: a logit-lens heatmap, layers x positions, one top token per cell.

Synced state:

- ``lens``      the result as compact arrays (binary buffers), see ``lens_payload``
- ``color_by``  "prob" (top-1 probability) or "entropy" (nats)
- ``pinned``    ``[layer, position]`` of the cell whose top-k is pinned in the side panel, or None
- ``error``     the last error message

The browser may write only ``color_by`` and ``pinned``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import traitlets

from ...validate import is_int
from . import protocol
from .base import STATIC, ViewWidget
from .columns import array_payload

COLOR_BY = ("prob", "entropy")


def lens_payload(result: Any) -> dict[str, Any]:
    """``LensResult`` -> dict of arrays for the ``lens`` trait. Shapes: L1 = layers + 1 (embed
    ... final), P positions, k top tokens; ``top_tokens`` is flattened row-major [L1*P*k]."""
    token_ids = np.asarray(result.token_ids)
    probs = np.asarray(result.probs)
    if token_ids.ndim != 3 or probs.shape != token_ids.shape:
        raise ValueError(
            f"token_ids and probs must both have shape [layers+1, positions, k]; got "
            f"{token_ids.shape} and {probs.shape}"
        )
    n_layers, n_positions, k = token_ids.shape
    entropy = np.asarray(result.entropy)
    kl = np.asarray(result.kl_to_final)
    final_rank = np.asarray(result.final_top_rank)
    for name, arr in (("entropy", entropy), ("kl_to_final", kl), ("final_top_rank", final_rank)):
        if arr.shape != (n_layers, n_positions):
            raise ValueError(f"{name} must have shape {(n_layers, n_positions)}, got {arr.shape}")
    top_tokens = [str(t) for layer in result.top_tokens for pos in layer for t in pos]
    if len(top_tokens) != n_layers * n_positions * k:
        raise ValueError(f"top_tokens must have shape [{n_layers}][{n_positions}][{k}]")
    input_tokens = [str(t) for t in result.input_tokens]
    layer_names = [str(n) for n in result.layer_names]
    if len(input_tokens) != n_positions:
        raise ValueError(f"input_tokens must have {n_positions} entries, got {len(input_tokens)}")
    if len(layer_names) != n_layers:
        raise ValueError(f"layer_names must have {n_layers} entries, got {len(layer_names)}")
    return {
        "n_layers": int(n_layers),
        "n_positions": int(n_positions),
        "k": int(k),
        "layer_names": layer_names,
        "input_tokens": input_tokens,
        "top_tokens": top_tokens,
        "token_ids": array_payload(token_ids, "int32"),
        "probs": array_payload(probs, "float32"),
        "entropy": array_payload(entropy, "float32"),
        "kl_to_final": array_payload(kl, "float32"),
        "final_top_rank": array_payload(final_rank, "int32"),
    }


class LensWidget(ViewWidget):
    """Heatmap of a :class:`~inferviz.lens.LensResult`: hover a cell for its top-k, click to pin
    it. ``LensWidget(result, color_by="entropy")``."""

    _esm = STATIC / "lens.js"
    _css = STATIC / "lens.css"
    browser_writable = ("color_by", "pinned")

    lens = traitlets.Dict().tag(sync=True)
    color_by = traitlets.Unicode("prob").tag(sync=True)
    pinned = traitlets.List(traitlets.Int(), allow_none=True, default_value=None).tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)

    def __init__(self, result: Any, color_by: str = "prob", **kwargs: Any) -> None:
        unknown = sorted(set(kwargs) - {"layout"})
        if unknown:
            raise TypeError(
                f"LensWidget got unexpected keyword argument(s) {unknown}; it takes result, "
                "color_by"
            )
        self._result = result
        payload = lens_payload(result)
        self._shape = (payload["n_layers"], payload["n_positions"])
        super().__init__(lens=payload, color_by=color_by, **kwargs)

    @property
    def result(self) -> Any:
        return self._result

    @traitlets.validate("color_by")
    def _check_color_by(self, proposal: dict) -> str:
        try:
            return check_color_by(proposal["value"])
        except protocol.ProtocolError as exc:
            raise protocol.SettingError(str(exc)) from None

    @traitlets.validate("pinned")
    def _check_pinned(self, proposal: dict) -> list[int] | None:
        try:
            return check_pinned(proposal["value"], self._shape)
        except protocol.ProtocolError as exc:
            raise protocol.SettingError(str(exc)) from None

    def check_browser_value(self, name: str, value: Any) -> None:
        """From the browser only ``color_by`` and ``pinned``, and only valid values."""
        if name == "color_by":
            check_color_by(value)
        else:
            check_pinned(value, self._shape)


def check_color_by(value: Any) -> str:
    if value not in COLOR_BY:
        raise protocol.ProtocolError(f"color_by must be one of {list(COLOR_BY)}, got {value!r}")
    return value


def check_pinned(value: Any, shape: tuple[int, int]) -> list[int] | None:
    if value is None:
        return None
    ok = (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(is_int(v) for v in value)
        and 0 <= value[0] < shape[0]
        and 0 <= value[1] < shape[1]
    )
    if not ok:
        raise protocol.ProtocolError(
            f"pinned must be None or [layer, position] with layer in 0..{shape[0] - 1} and "
            f"position in 0..{shape[1] - 1}, got {value!r}"
        )
    return [int(value[0]), int(value[1])]
