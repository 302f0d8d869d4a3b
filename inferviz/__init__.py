"""inferviz: see language-model inference one token at a time."""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# Public names resolved lazily, so `import inferviz` stays light and never imports widget,
# plotly or pandas code (the core must not depend on the views).
_LAZY = {
    "Session": "inferviz.session",
    "TokenTree": "inferviz.tree",
    "Node": "inferviz.tree",
    "LensResult": "inferviz.lens",
    "AttributionResult": "inferviz.attribution",
    "Steer": "inferviz.interventions",
    "Ablate": "inferviz.interventions",
    "Patch": "inferviz.interventions",
    "Regex": "inferviz.constraints",
    "JSONSchema": "inferviz.constraints",
    "Grammar": "inferviz.constraints",
    "Choice": "inferviz.constraints",
    "ConstraintError": "inferviz.constraints",
    "SamplerSettings": "inferviz.processors",
    "RequestBatcher": "inferviz.batching",
    "ServerLacks": "inferviz.backends",
    "Comparison": "inferviz.compare",
    "compare": "inferviz.compare",
    "TreeWidget": "inferviz.widgets",
    "TextView": "inferviz.widgets",
    "LensWidget": "inferviz.widgets",
    "AttributionView": "inferviz.widgets.views.attribution_view",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'inferviz' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
