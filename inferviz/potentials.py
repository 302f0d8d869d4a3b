"""Built-in SMC potentials: ``text -> log-weight`` functions a page can choose without code.

``Session.generate(..., strategy="smc", potential=fn)`` takes any callable; these are the ones
the explorer offers (its "potential" row), each a small frozen dataclass so that a run's
``params["potential"]`` names it readably (``avoid_word('the', strength=2.0)``). ``text`` is
the text the run generated (prompt excluded). Words match whole and case-insensitively; the
word is matched literally (``re.escape``): nothing a user types is run or compiled as a pattern.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .validate import check_float

MAX_WORD_CHARS = 100


def _check_word(word: object) -> str:
    if not isinstance(word, str) or not word.strip():
        raise ValueError(f"potential: the word box is empty or not text ({word!r}); type the "
                         f"word to look for")
    word = word.strip()
    if len(word) > MAX_WORD_CHARS:
        raise ValueError(f"potential: the word has {len(word)} characters; at most "
                         f"{MAX_WORD_CHARS}")
    return word


def _word_pattern(word: str) -> re.Pattern[str]:
    # Whole words: no letter or digit right before or after (\b fails next to punctuation).
    return re.compile(rf"(?<!\w){re.escape(word)}(?!\w)", re.IGNORECASE)


@dataclass(frozen=True)
class _WordPotential:
    """A potential about one ``word`` (matched whole, case-insensitively, literally) with a
    ``strength`` in nats."""

    word: str
    strength: float = 2.0
    name = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "word", _check_word(self.word))
        check_float("potential strength", self.strength, 0.0, math.inf, high_open=True)

    def __repr__(self) -> str:
        return f"{self.name}({self.word!r}, strength={self.strength})"


@dataclass(frozen=True, repr=False)
class AvoidWord(_WordPotential):
    """``-strength`` nats for each time ``word`` occurs in the text."""

    name = "avoid_word"

    def __call__(self, text: str) -> float:
        return -self.strength * len(_word_pattern(self.word).findall(text))


@dataclass(frozen=True, repr=False)
class IncludeWord(_WordPotential):
    """``+strength`` nats once ``word`` occurs in the text (more occurrences add nothing)."""

    name = "include_word"

    def __call__(self, text: str) -> float:
        return self.strength if _word_pattern(self.word).search(text) else 0.0


@dataclass(frozen=True)
class ShorterText:
    """``-strength`` nats per 10 characters of text: shorter completions (an early end, short
    tokens) weigh more."""

    strength: float = 2.0

    def __post_init__(self) -> None:
        check_float("potential strength", self.strength, 0.0, math.inf, high_open=True)

    def __call__(self, text: str) -> float:
        return -self.strength * len(text) / 10

    def __repr__(self) -> str:
        return f"shorter_text(strength={self.strength})"


# The explorer's choices: label -> (constructor, whether it needs a word).
BUILT_IN = {
    "avoid a word": (AvoidWord, True),
    "include a word": (IncludeWord, True),
    "shorter text": (ShorterText, False),
}


def built_in(choice: str, word: str = "", strength: float = 2.0):
    """The potential named ``choice`` (a key of ``BUILT_IN``, or "none" for None)."""
    if choice == "none":
        return None
    if choice not in BUILT_IN:
        raise ValueError(f"potential {choice!r} is unknown; choose one of "
                         f"{['none', *BUILT_IN]}")
    make, needs_word = BUILT_IN[choice]
    return make(word, strength) if needs_word else make(strength)
