"""The explorer's strategy controls: which parameters each strategy takes, their input boxes,
and turning what a user typed into keyword arguments for ``Session.generate``.

Strategies reject parameters they do not know, so the explorer sends each one only its own
(``STRATEGY_PARAMS``); anything else can go through the free-form "extra" box
(``name=value, ...``, Python literals). Empty optional boxes mean "off" and are not sent.
"""

from __future__ import annotations

import ast
import importlib.util
import math
from collections import ChainMap
from typing import Any, Mapping

import ipywidgets as widgets

from ... import sampler_params
from ...sampler_params import ParamSpec
from .potential_controls import PotentialControls

# The strategies' own parameters; the sampler parameters (temperature, top_k, top_p, min_p and
# any registered processor's) are the ``sampler_params`` rows with ``box=True``.
STRATEGY_OWN: dict[str, ParamSpec] = {p.name: p for p in (
    ParamSpec("max_new_tokens", int, 12, 1, 4096, optional=False, help="tokens to generate"),
    ParamSpec("num_beams", int, 4, 1, 64, optional=False, help="beam width"),
    ParamSpec("particles", int, 8, 1, 1024, optional=False, help="SMC particles"),
    ParamSpec("alpha", float, 0.1, 0.0, 1.0, optional=False,
              help="plausibility: p_exp >= alpha * max p_exp"),
    ParamSpec("amateur_layer", int, 6, 0, None, optional=False,
              help="expert layer read as the amateur"),
    ParamSpec("k", int, 3, 1, 50, optional=False, help="children per node"),
    ParamSpec("depth", int, 3, 1, 64, optional=False, help="levels to expand breadth-first"),
    ParamSpec("threshold", float, 0.05, 0.0, 1.0, optional=False,
              help="expand children with prob above this"),
    ParamSpec("seed", int, 0, 0, None, help="random seed (empty: fresh each run)"),
)}
# Every box by name (a live view: a processor registered later is found too).
PARAMS: Mapping[str, ParamSpec] = ChainMap(STRATEGY_OWN, sampler_params.PARAMS)


def box_names() -> list[str]:
    """The explorer's boxes in their order: max_new_tokens, the sampler's, the strategies'."""
    return ["max_new_tokens", *(spec.name for spec in sampler_params.offered()),
            *(name for name in STRATEGY_OWN if name != "max_new_tokens")]


SAMPLING = "sampling"  # stands for the sampler's boxes (``sampler_params.offered()``)
STRATEGY_PARAMS: dict[str, tuple[str, ...]] = {
    "greedy": ("max_new_tokens",),
    "sample": ("max_new_tokens", SAMPLING, "seed"),
    "top_k": ("max_new_tokens", SAMPLING, "seed"),
    "top_p": ("max_new_tokens", SAMPLING, "seed"),
    "min_p": ("max_new_tokens", SAMPLING, "seed"),
    "beam": ("max_new_tokens", "num_beams"),
    "beam_search": ("max_new_tokens", "num_beams"),
    "contrastive": ("max_new_tokens", "alpha", "amateur_layer"),
    # SMC's weights assume a truncation of the raw distribution: no min_p box (extra takes it).
    "smc": ("max_new_tokens", "particles", "temperature", "top_k", "top_p", "seed"),
    "bfs": ("max_new_tokens", "k", "depth"),
    "threshold": ("max_new_tokens", "threshold", "k"),
    "custom": ("max_new_tokens",),  # needs choose=fn: Explorer(..., extra_params={"choose": fn})
}

# The strategies named after a processor need it set: prefill an empty box when picked.
PRESETS = {"top_k": ("top_k", "40"), "top_p": ("top_p", "0.9"), "min_p": ("min_p", "0.05")}


def reset_on_switch() -> list[str]:
    """The processor boxes (the optional sampler ones) reset when the strategy changes: a top_p
    set for "top_p" is not sent with "min_p" (or any other strategy) unless typed again."""
    return [spec.name for spec in sampler_params.offered() if spec.optional]


# Not offered in the picker: aliases of another entry, and strategies that need a Python
# argument no box can hold (custom needs choose=fn: offered when extra_params gives one).
ALIASES = ("beam_search",)
NEEDS_CODE = {"custom": "choose"}


def params_for(strategy: str) -> tuple[str, ...]:
    """Parameter boxes shown for ``strategy`` (a strategy registered later gets the basics)."""
    names = STRATEGY_PARAMS.get(strategy, ("max_new_tokens", "seed"))
    sampler = tuple(spec.name for spec in sampler_params.offered())
    return tuple(n for name in names for n in (sampler if name == SAMPLING else (name,)))


def available_strategies() -> tuple[list[str], list[str]]:
    """``(available, missing)`` strategy names: a name is missing when its module is not
    installed (yet), so the picker never offers something that cannot run."""
    from ... import strategies

    available, missing = [], []
    for name, (module, _preset) in strategies.STRATEGIES.items():
        found = importlib.util.find_spec(f"{strategies.__name__}.{module}") is not None
        (available if found else missing).append(name)
    return available, missing


def parse_value(spec: ParamSpec, text: str) -> int | float | None:
    """The value typed in ``spec``'s box; ``ValueError`` naming the parameter if it is bad."""
    text = text.strip()
    if text == "" or text.lower() in ("off", "none"):
        if spec.optional:
            return None
        raise ValueError(f"{spec.name} needs a value ({spec.help})")
    try:
        value: int | float = int(text) if spec.kind is int else float(text)
    except ValueError:
        kind = "an integer" if spec.kind is int else "a number"
        raise ValueError(f"{spec.name} must be {kind}, got {text!r}") from None
    if spec.kind is float and not math.isfinite(value):
        raise ValueError(f"{spec.name} must be finite, got {text!r}")
    if not spec.accepts(value):
        lo = "" if spec.low is None else spec.low
        hi = "" if spec.high is None else spec.high
        raise ValueError(f"{spec.name} must be in {'(' if spec.low_open else '['}{lo}, {hi}"
                         f"{')' if spec.high_open else ']'} ({spec.help}), got {value}")
    return value


def parse_extra(text: str) -> dict[str, Any]:
    """``"a=1, b='x'"`` -> ``{"a": 1, "b": "x"}`` (Python literals only; nothing is run)."""
    text = text.strip()
    if not text:
        return {}
    try:
        call = ast.parse(f"f({text})", mode="eval").body
        if not isinstance(call, ast.Call) or call.args:
            raise ValueError
        out = {}
        for kw in call.keywords:
            if kw.arg is None:
                raise ValueError
            out[kw.arg] = ast.literal_eval(kw.value)
        return out
    except (SyntaxError, ValueError):
        raise ValueError(f"extra parameters must look like name=value, name=value with "
                         f"Python literals; got {text!r}") from None


class RunControls:
    """The strategy picker, one text box per parameter, the extra box, Run/Stop and progress.
    ``values()`` reads them into ``(strategy, kwargs)`` for ``Session.generate``."""

    def __init__(self, strategy: str = "greedy", extra_params: dict[str, Any] | None = None,
                 **initial: Any) -> None:
        allowed = box_names()
        unknown = sorted(set(initial) - set(allowed))
        if unknown:
            raise TypeError(f"unknown explorer parameter(s) {unknown}; allowed: "
                            f"{sorted(allowed)} (others go in extra_params=)")
        available, self.missing = available_strategies()
        if strategy not in available:
            raise ValueError(f"strategy {strategy!r} is not available; choose one of "
                             f"{available}")
        self._available = available
        self.strategy = widgets.Dropdown(options=self._offered(strategy, extra_params),
                                         value=strategy,
                                         description="strategy",
                                         layout=widgets.Layout(width="210px"))
        self.boxes: dict[str, widgets.Text] = {}
        for name in allowed:
            spec = PARAMS[name]
            value = initial.get(name, spec.default)
            self.boxes[name] = widgets.Text(
                value="" if value is None else str(value), description=name,
                placeholder="off", tooltip=spec.help,
                layout=widgets.Layout(width="190px"),
                style={"description_width": "initial"})
        self.extra = widgets.Text(value="", description="extra", placeholder="name=value, ...",
                                  layout=widgets.Layout(width="300px"))
        self.run_button = widgets.Button(description="Run", button_style="primary",
                                         layout=widgets.Layout(width="90px"))
        self.stop_button = widgets.Button(description="Stop", disabled=True,
                                          layout=widgets.Layout(width="90px"))
        self.run_button.add_class("inferviz-run")
        self.stop_button.add_class("inferviz-stop")
        self.progress = widgets.IntProgress(value=0, min=0, max=1, description="",
                                            layout=widgets.Layout(width="200px",
                                                                  visibility="hidden"))
        self.from_selected = widgets.Checkbox(value=False, description="continue from selected",
                                              indent=False, layout=widgets.Layout(width="190px"))
        # SMC's potential without code: a built-in one (shown for smc only).
        self.potential = PotentialControls()
        self.strategy.observe(lambda _change: self._switched(), names="value")
        self.show_params()
        self.widget = widgets.VBox([
            widgets.HBox([self.strategy, self.run_button, self.stop_button, self.progress,
                          self.from_selected]),
            widgets.HBox(list(self.boxes.values()) + [self.extra],
                         layout=widgets.Layout(flex_flow="row wrap")),
            self.potential.widget,
        ])

    def _offered(self, current: str, extra_params: dict[str, Any] | None) -> list[str]:
        given = set(extra_params or {})
        return [name for name in self._available
                if name == current or (name not in ALIASES
                                       and NEEDS_CODE.get(name, "") in given | {""})]

    def offer(self, extra_params: dict[str, Any] | None) -> None:
        """Offer the strategies that can run with ``extra_params`` (custom once a ``choose``
        is given); the current choice stays."""
        current = self.strategy.value
        options = self._offered(current, extra_params)
        if list(self.strategy.options) != options:
            self.strategy.options = options
            self.strategy.value = current

    def _switched(self) -> None:
        for name in reset_on_switch():
            if name in self.boxes:
                self.boxes[name].value = ""
        self.show_params()

    def show_params(self) -> None:
        wanted = params_for(self.strategy.value)
        if self.strategy.value in PRESETS:
            name, value = PRESETS[self.strategy.value]
            if not self.boxes[name].value.strip():
                self.boxes[name].value = value
        for name, box in self.boxes.items():
            box.layout.display = None if name in wanted else "none"
        self.potential.widget.layout.display = None if self.strategy.value == "smc" else "none"

    def values(self, extra_params: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        """``(strategy, kwargs)``: the visible boxes' values (empty optional ones left out),
        then ``extra_params`` and the extra box, then for smc the potential row's choice (a
        chosen one wins over an ``extra_params`` potential; "none" leaves that one).
        ``ValueError`` names a bad box."""
        strategy = self.strategy.value
        kwargs: dict[str, Any] = {}
        for name in params_for(strategy):
            if name not in self.boxes:  # a processor registered after these controls were made
                continue
            value = parse_value(PARAMS[name], self.boxes[name].value)
            if value is not None:
                kwargs[name] = value
        kwargs.update(extra_params or {})
        kwargs.update(parse_extra(self.extra.value))
        if strategy == "smc":
            potential = self.potential.potential()
            if potential is not None:
                kwargs["potential"] = potential
        return strategy, kwargs

    def set_running(self, running: bool) -> None:
        """Buttons for a run going on (or not); the progress bar shows only during a run."""
        self.run_button.disabled = running
        self.stop_button.disabled = not running
        self.strategy.disabled = running
        self.progress.layout.visibility = "visible" if running else "hidden"
