"""The sampler parameters, each written once: name, type, range, default, help and the processor
it switches on. ``SamplerSettings`` (validation), ``processors.process`` (which processors apply,
in which order), ``strategies.common.SAMPLER_ARGS``, the widget protocol's checks, the explorer's
boxes and the tree widget's bar (sent to the browser as ``param_schema``) all read this table.

Adding a processor is one pure function and one row::

    def apply_cap(logits, cap):                      # logits [..., V] -> new logits [..., V]
        return logits.clamp(max=cap)

    register_processor(ParamSpec("cap", float, None, low=0, low_open=True, apply=apply_cap,
                                 args=("logits", "value"), help="clamp logits above cap",
                                 box=True))

This module imports no torch: built-in rows name their function in ``inferviz.processors``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from .validate import is_finite_number, is_int

# What a processor function takes, in order, by name: the logits, the setting's value, the
# settings' min_tokens_to_keep, the tokens seen so far (input_ids [..., T]).
ARG_NAMES = ("logits", "value", "min_tokens_to_keep", "input_ids")


def _number(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: its type and range, its default (None: off), and the processor it enables.

    ``low`` / ``high`` bound the value (None: unbounded), ``low_open`` / ``high_open`` exclude
    the bound itself. ``note`` goes in parentheses after the range and ``advice`` after the
    value in the Python error; ``off_values`` are values at which the processor changes nothing
    (``process`` skips it, ``is_identity`` holds). ``apply`` is the processor function (or its
    name in ``inferviz.processors``), called with ``args``; None for a setting that only shapes
    the others (``min_tokens_to_keep``). ``box``: the explorer and the tree widget's bar offer a
    box for it (the others go in the explorer's extra box or through Python); ``step`` is the
    box's increment.
    """

    name: str
    kind: type  # int or float
    default: int | float | None  # None: off (empty box)
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    optional: bool = True  # None (off) is allowed
    help: str = ""
    note: str = ""
    advice: str = ""
    off_values: tuple[float, ...] = ()
    apply: Callable[..., Any] | str | None = None
    args: tuple[str, ...] = ("logits", "value", "min_tokens_to_keep")
    box: bool = False
    step: float | None = None

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"a parameter name must be a Python identifier, got {self.name!r}")
        if self.kind not in (int, float):
            raise ValueError(f"{self.name}: kind must be int or float, got {self.kind!r}")
        if self.default is None and not self.optional:
            raise ValueError(f"{self.name}: a parameter that cannot be off needs a default")
        unknown = [a for a in self.args if a not in ARG_NAMES]
        if unknown or "logits" not in self.args or "value" not in self.args:
            raise ValueError(f"{self.name}: args must name 'logits', 'value' and any of "
                             f"{list(ARG_NAMES[2:])}; got {list(self.args)}")

    # ------------------------------------------------------------------ checks
    def requirement(self, int_word: str = "an int") -> str:
        """What a value must be: 'a number in (0, 1]', 'an int >= 1', 'a finite number > 0'."""
        if self.kind is int:
            if self.low is not None and self.high is not None:
                return f"{int_word} in {_number(self.low)}..{_number(self.high)}"
            what = int_word
        elif self.low is not None and self.high is not None:
            return (f"a number in {'(' if self.low_open else '['}{_number(self.low)}, "
                    f"{_number(self.high)}{')' if self.high_open else ']'}")
        else:
            what = "a finite number"
        if self.low is not None:
            return f"{what} {'>' if self.low_open else '>='} {_number(self.low)}"
        if self.high is not None:
            return f"{what} {'<' if self.high_open else '<='} {_number(self.high)}"
        return what

    def accepts(self, value: Any) -> bool:
        """True for a value of the right type inside the range (None is not checked here)."""
        if not (is_int(value) if self.kind is int else is_finite_number(value)):
            return False
        if self.low is not None and (value < self.low or self.low_open and value == self.low):
            return False
        return self.high is None or not (value > self.high
                                         or self.high_open and value == self.high)

    def error(self, value: Any) -> str:
        """The Python error for a bad value (a caller of ``SamplerSettings`` or ``apply_*``)."""
        note = f" ({self.note})" if self.note else ""
        advice = f"; {self.advice}" if self.advice else ""
        return f"{self.name} must be {self.requirement()}{note}, got {value!r}{advice}"

    def browser_error(self, value: Any) -> str:
        """The error a widget shows for a bad value from the browser (None means off)."""
        none = "None or " if self.optional else ""
        return f"{self.name} must be {none}{self.requirement('an integer')}, got {value!r}"

    def check(self, value: Any) -> None:
        """ValueError (``error``) unless ``value`` is valid; None is not (see ``optional``)."""
        if not self.accepts(value):
            raise ValueError(self.error(value))

    # ------------------------------------------------------------------ processing
    def is_active(self, value: Any) -> bool:
        """True when the processor changes logits at ``value``."""
        return self.apply is not None and value is not None and value not in self.off_values

    def function(self) -> Callable[..., Any]:
        if isinstance(self.apply, str):
            return getattr(importlib.import_module("inferviz.processors"), self.apply)
        assert self.apply is not None
        return self.apply

    def run(self, logits: Any, value: Any, min_tokens_to_keep: int, input_ids: Any) -> Any:
        """The processor applied to logits [..., V] at ``value``; returns new logits."""
        if "input_ids" in self.args and input_ids is None:
            raise ValueError(f"{self.name} needs input_ids (the tokens seen so far)")
        given = {"logits": logits, "value": value, "min_tokens_to_keep": min_tokens_to_keep,
                 "input_ids": input_ids}
        return self.function()(*(given[a] for a in self.args))

    def to_json(self) -> dict[str, Any]:
        """The row as the browser gets it (``param_schema``): no functions."""
        return {"name": self.name, "integer": self.kind is int, "default": self.default,
                "low": self.low, "high": self.high, "low_open": self.low_open,
                "high_open": self.high_open, "optional": self.optional, "help": self.help,
                "step": self.step if self.step is not None else (1 if self.kind is int else 0.1)}


# In the order ``process`` applies them: transformers' ``GenerationMixin`` order (the repetition
# penalty before the sampling warpers, then temperature, top_k, top_p, min_p after temperature
# as llama.cpp does, typical_p).
PARAMS: dict[str, ParamSpec] = {p.name: p for p in (
    ParamSpec("repetition_penalty", float, None, low=0, low_open=True,
              help="CTRL penalty for tokens already seen (1.0 = off, > 1 discourages repeats)",
              note="1.0 = off, > 1 discourages repeats", off_values=(1,),
              apply="apply_repetition_penalty", args=("logits", "input_ids", "value")),
    ParamSpec("temperature", float, 1.0, low=0, low_open=True, optional=False,
              help="softmax temperature (> 0)",
              advice='for argmax decoding use strategy="greedy" instead of temperature 0',
              off_values=(1,), apply="apply_temperature", args=("logits", "value"), box=True,
              step=0.1),
    ParamSpec("top_k", int, None, low=1, help="keep the k most likely tokens",
              note="values above the vocabulary keep all", apply="apply_top_k", box=True),
    ParamSpec("top_p", float, None, low=0, high=1, low_open=True,
              help="nucleus: smallest set with mass >= top_p", off_values=(1,),
              apply="apply_top_p", box=True, step=0.05),
    ParamSpec("min_p", float, None, low=0, high=1, help="keep p >= min_p * p_max",
              note="relative to the top probability", off_values=(0,), apply="apply_min_p",
              box=True, step=0.01),
    ParamSpec("typical_p", float, None, low=0, high=1, low_open=True, high_open=True,
              help="locally typical: the tokens nearest the entropy up to mass typical_p",
              note="exclusive", apply="apply_typical_p"),
    ParamSpec("min_tokens_to_keep", int, 1, low=1, optional=False,
              help="the fewest tokens top_k / top_p / min_p / typical_p keep"),
)}


def register_processor(spec: ParamSpec) -> ParamSpec:
    """Add a processor's row (applied after the existing ones); its parameter is then taken by
    ``SamplerSettings``, the strategies, the widget protocol and (``box=True``) the explorer.
    A name already in the table is refused."""
    if not isinstance(spec, ParamSpec):
        raise TypeError(f"register_processor takes a ParamSpec, got {type(spec).__name__}")
    if spec.name in PARAMS:
        raise ValueError(f"a sampler parameter {spec.name!r} exists already")
    if spec.apply is None:
        raise ValueError(f"{spec.name}: a processor needs apply= (its function)")
    PARAMS[spec.name] = spec
    return spec


def offered() -> list[ParamSpec]:
    """The rows the explorer and the tree widget's bar show as boxes, in table order."""
    return [spec for spec in PARAMS.values() if spec.box]
