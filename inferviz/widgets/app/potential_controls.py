"""The explorer's SMC potential row: a built-in potential (:mod:`inferviz.potentials`), its word
and its strength, so that a page without code can weight SMC's particles (and the ESS chart
shows resampling). Nothing typed here is run: the word is matched literally."""

from __future__ import annotations

import math
from typing import Any

import ipywidgets as widgets

from ...potentials import BUILT_IN, built_in

HELP = {
    "none": "no potential: particles weigh only what the sampler changed",
    "avoid a word": "−strength nats each time the word occurs",
    "include a word": "+strength nats once the word occurs",
    "shorter text": "−strength nats per 10 characters generated",
}


def parse_strength(text: str) -> float:
    """The strength box's value in nats (>= 0); ValueError naming the box otherwise."""
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"potential strength must be a number of nats, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"potential strength must be a finite number >= 0 (nats), got {text!r}")
    return value


class PotentialControls:
    """``choice`` (Dropdown), ``word`` and ``strength`` (Text); ``potential()`` reads them."""

    def __init__(self) -> None:
        self.choice = widgets.Dropdown(options=["none", *BUILT_IN], value="none",
                                       description="potential",
                                       layout=widgets.Layout(width="230px"))
        self.word = widgets.Text(value="", description="word", placeholder="e.g. the",
                                 layout=widgets.Layout(width="190px"))
        self.strength = widgets.Text(value="2", description="strength (nats)",
                                     style={"description_width": "initial"},
                                     layout=widgets.Layout(width="170px"))
        self.help = widgets.HTML("")
        self.help.add_class("inferviz-potential-help")
        self.choice.observe(lambda _c: self._chosen(), names="value")
        self.widget = widgets.HBox([self.choice, self.word, self.strength, self.help])
        self.widget.add_class("inferviz-potential-row")
        self._chosen()

    @property
    def boxes(self) -> tuple[widgets.Widget, ...]:
        return (self.choice, self.word, self.strength)

    def _chosen(self) -> None:
        choice = self.choice.value
        needs_word = BUILT_IN.get(choice, (None, False))[1]
        self.word.layout.display = None if needs_word else "none"
        self.strength.layout.display = None if choice != "none" else "none"
        self.help.value = f"<span style='color:#666'>{HELP[choice]}</span>"

    def potential(self) -> Any:
        """The chosen potential (a callable ``text -> log-weight``), or None."""
        choice = self.choice.value
        if choice == "none":
            return None
        return built_in(choice, self.word.value, parse_strength(self.strength.value))
