"""Constraints on what a run may generate: a regex, a JSON schema, a Lark (or GBNF) grammar, or a
choice among strings. Each compiles, through llguidance (the grammar engine vLLM, SGLang and
llama.cpp use), to an llguidance grammar; nothing here parses a regex or a grammar itself.

A constraint applies to the text generated below the node it starts from (its *anchor*): the
prompt is not constrained. Nodes grown under it form a branch of their own (children keyed by
``(constraint_key, token_id)``), each recording what the constraint cut (docs/constraints.md).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

__all__ = ["Choice", "Constraint", "ConstraintError", "Grammar", "JSONSchema", "Regex",
           "check_constraint"]


class ConstraintError(ValueError):
    """A constraint that does not compile, or that no token can continue."""


def _llguidance():
    try:
        import llguidance
    except ImportError as exc:  # a core dependency; a broken install says so
        raise ImportError("constraints need llguidance (pip install llguidance)") from exc
    return llguidance


@dataclass(frozen=True)
class Constraint:
    """Base of the constraints: ``grammar`` is the llguidance grammar (JSON text), ``key`` a
    short stable id of it (child keys, tree meta), ``label`` what a person reads."""

    kind: str = field(init=False, default="")

    def llg_grammar(self) -> str:
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:
        """JSON-able definition (saved in ``tree.meta["constraints"]``)."""
        raise NotImplementedError

    @property
    def label(self) -> str:
        raise NotImplementedError

    @cached_property
    def key(self) -> str:
        text = json.dumps({"kind": self.kind, **self.spec()}, sort_keys=True)
        return f"{self.kind}:{hashlib.sha256(text.encode()).hexdigest()[:12]}"

    def _validate(self) -> None:
        """ConstraintError naming the argument when llguidance refuses the grammar."""
        llg = _llguidance()
        try:
            grammar = self.llg_grammar()
        except Exception as exc:  # llguidance raises ValueError/RuntimeError on bad input
            raise ConstraintError(f"{self._argument()} does not compile: {exc}") from None
        error = llg.LLMatcher.validate_grammar(grammar)
        if error:
            raise ConstraintError(f"{self._argument()} does not compile: {_condense(error)}")

    def _argument(self) -> str:
        return type(self).__name__


def _condense(error: str) -> str:
    """llguidance's error on one line: its first line (without the ``at 1(8):`` position) and
    its ``error:`` lines, without the echoed source and the ``^`` pointers (which only line up
    in a monospace terminal)."""
    lines = [line.strip() for line in error.strip().splitlines() if line.strip()]
    if not lines:
        return "invalid"
    first = re.sub(r"^at \d+\(\d+\):\s*", "", lines[0]).rstrip(":")
    details = [line.removeprefix("error:").strip() for line in lines[1:]
               if line.startswith("error:")]
    return "; ".join([first, *details])


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Regex(Constraint):
    """The generated text must match ``pattern`` (Rust regex syntax, as llguidance takes it:
    no look-around or back-references). ``Regex(r"[0-9]{1,3}")``."""

    pattern: str = ""
    kind: str = field(init=False, default="regex")

    def __post_init__(self) -> None:
        if not isinstance(self.pattern, str):
            raise TypeError(f"Regex(pattern) must be a str; got {type(self.pattern).__name__}")
        if not self.pattern:
            raise ConstraintError("Regex(pattern) must not be empty")
        self._validate()

    def llg_grammar(self) -> str:
        return _llguidance().LLMatcher.grammar_from_regex(self.pattern)

    def spec(self) -> dict[str, Any]:
        return {"pattern": self.pattern}

    @property
    def label(self) -> str:
        return f"regex /{_short(self.pattern)}/"

    def _argument(self) -> str:
        return f"Regex(pattern={_short(self.pattern)!r})"


@dataclass(frozen=True)
class JSONSchema(Constraint):
    """The generated text must be JSON valid under ``schema`` (a dict, or its JSON text), as
    llguidance compiles it. ``whitespace=False`` (default): compact JSON, no whitespace
    between tokens (a weak model cannot loop on blanks); True: whitespace where JSON allows."""

    schema: Any = None
    whitespace: bool = False
    kind: str = field(init=False, default="json")

    def __post_init__(self) -> None:
        schema = self.schema
        if isinstance(schema, str):
            try:
                schema = json.loads(schema)
            except json.JSONDecodeError as exc:
                raise ConstraintError(f"JSONSchema(schema) is not valid JSON: {exc}") from None
        if not isinstance(schema, dict):
            raise TypeError(f"JSONSchema(schema) must be a dict (or its JSON text); got "
                            f"{type(self.schema).__name__}")
        if not isinstance(self.whitespace, bool):
            raise TypeError(f"JSONSchema(whitespace) must be a bool; got {self.whitespace!r}")
        object.__setattr__(self, "schema", schema)
        self._validate()

    def llg_grammar(self) -> str:
        return _llguidance().LLMatcher.grammar_from_json_schema(
            self.schema, overrides={"whitespace_flexible": self.whitespace})

    def spec(self) -> dict[str, Any]:
        return {"schema": self.schema, "whitespace": self.whitespace}

    @property
    def label(self) -> str:
        title = self.schema.get("title") or self.schema.get("type") or "schema"
        return f"json {_short(str(title), 24)}"

    def _argument(self) -> str:
        return f"JSONSchema(schema={_short(json.dumps(self.schema), 60)})"

    def __hash__(self) -> int:  # the schema is a dict
        return hash(self.key)


@dataclass(frozen=True)
class Grammar(Constraint):
    """The generated text must be a sentence of a context-free grammar: llguidance's Lark
    syntax (``start: ...``), or llama.cpp's GBNF with ``syntax="gbnf"`` (``root ::= ...``)."""

    text: str = ""
    syntax: str = "lark"
    kind: str = field(init=False, default="grammar")

    def __post_init__(self) -> None:
        if not isinstance(self.text, str) or not self.text.strip():
            raise ConstraintError("Grammar(text) must be a non-empty str")
        if self.syntax not in ("lark", "gbnf"):
            raise ValueError(f"Grammar(syntax={self.syntax!r}) is unknown; valid: 'lark', "
                             f"'gbnf'")
        self._validate()

    def lark(self) -> str:
        if self.syntax == "lark":
            return self.text
        return _llguidance().gbnf_to_lark.gbnf_to_lark(self.text)

    def llg_grammar(self) -> str:
        return _llguidance().LLMatcher.grammar_from_lark(self.lark())

    def spec(self) -> dict[str, Any]:
        return {"text": self.text, "syntax": self.syntax}

    @property
    def label(self) -> str:
        first = next((line.strip() for line in self.text.splitlines() if line.strip()), "")
        return f"grammar {_short(first, 28)}"

    def _argument(self) -> str:
        return f"Grammar(text={_short(self.text)!r})"


@dataclass(frozen=True)
class Choice(Constraint):
    """The generated text must be exactly one of ``options`` (non-empty strings)."""

    options: tuple[str, ...] = ()
    kind: str = field(init=False, default="choice")

    def __post_init__(self) -> None:
        options = self.options
        if isinstance(options, str) or not isinstance(options, (list, tuple)):
            raise TypeError(f"Choice(options) must be a list of str; got {options!r}")
        options = tuple(options)
        if not options or not all(isinstance(o, str) and o for o in options):
            raise ConstraintError(f"Choice(options) must be a non-empty list of non-empty "
                                  f"strings; got {list(options)!r}")
        object.__setattr__(self, "options", options)
        self._validate()

    def regex(self) -> str:
        return "|".join(re.escape(o) for o in self.options)

    def llg_grammar(self) -> str:
        return _llguidance().LLMatcher.grammar_from_regex(f"(?:{self.regex()})")

    def spec(self) -> dict[str, Any]:
        return {"options": list(self.options)}

    @property
    def label(self) -> str:
        return f"choice {_short(' | '.join(self.options), 30)}"


def check_constraint(value: Any, name: str = "constraint") -> Constraint | None:
    """``value`` if it is a constraint (or None); TypeError naming ``name`` otherwise."""
    if value is None or isinstance(value, Constraint):
        return value
    raise TypeError(f"{name} must be iv.Regex(...), iv.JSONSchema(...), iv.Grammar(...), "
                    f"iv.Choice([...]) or None; got {type(value).__name__} {value!r:.60}")
