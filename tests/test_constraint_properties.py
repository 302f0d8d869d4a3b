"""Every output of a constrained run matches its constraint: 1,000 runs of random regexes and
small JSON schemas under random strategies on a tiny model, each text checked with Python's
own `re` / `regex` (partial matches for a text cut short) and `jsonschema`, not llguidance."""

from __future__ import annotations

import itertools
import json
import re

import jsonschema
import pytest
import regex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import inferviz as iv

RUNS = 1000
STRATEGIES = [
    ("greedy", {}), ("sample", {"seed": 0}), ("top_k", {"top_k": 4, "seed": 1}),
    ("top_p", {"top_p": 0.8, "seed": 2}), ("min_p", {"min_p": 0.5, "seed": 3}),
    ("beam", {"num_beams": 2}), ("smc", {"particles": 4, "seed": 4}),
    ("bfs", {"k": 2, "depth": 2}), ("threshold", {"threshold": 0.2, "max_nodes": 12}),
    ("contrastive", {"amateur_layer": 0}),
]
COUNTS = {"runs": 0, "texts": 0, "violations": 0, "complete": 0}

_atoms = st.sampled_from(["a", "b", "0", "1", "[0-9]", "[ab]", "[a-c]", "x", "(ab|ba)"])


@st.composite
def regexes(draw):
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        atom = draw(_atoms)
        atom += draw(st.sampled_from(["", "", "?", "+", "{1,2}", "{2}"]))
        parts.append(atom)
    pattern = "".join(parts)
    if draw(st.booleans()):
        pattern = f"({pattern}|{draw(_atoms)})"
    return pattern


_leaf_schemas = st.sampled_from([
    {"type": "boolean"},
    {"enum": ["red", "green", 7]},
    {"type": "integer", "minimum": 0, "maximum": 12},
    {"const": "ok"},
    {"type": "null"},
])


@st.composite
def schemas(draw):
    if draw(st.booleans()):
        return draw(_leaf_schemas)
    names = draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=2,
                          unique=True))
    return {"type": "object", "properties": {n: draw(_leaf_schemas) for n in names},
            "required": names, "additionalProperties": False}


def _instances(schema):
    """Every valid instance of the small schemas above."""
    if "properties" in schema:
        names = list(schema["properties"])
        for values in itertools.product(*(_instances(schema["properties"][n]) for n in names)):
            yield dict(zip(names, values))
    elif schema.get("type") == "boolean":
        yield from (True, False)
    elif schema.get("type") == "integer":
        yield from range(schema["minimum"], schema["maximum"] + 1)
    elif schema.get("type") == "null":
        yield None
    elif "enum" in schema:
        yield from schema["enum"]
    else:
        yield schema["const"]


def _json_prefix_ok(schema, text):
    """``text`` is a prefix of some valid instance written compactly (any key order)."""
    for value in _instances(schema):
        if isinstance(value, dict):
            for order in itertools.permutations(value):
                doc = json.dumps({k: value[k] for k in order}, separators=(",", ":"))
                if doc.startswith(text):
                    return True
        elif json.dumps(value, separators=(",", ":")).startswith(text):
            return True
    return False


def _check(kind, spec, text, reason):
    """True when ``text`` keeps to the constraint: a full match when the run ended it with
    the end of sequence, a viable prefix when it was cut short."""
    complete = reason == "eos"
    COUNTS["complete"] += complete
    if kind == "regex":
        if complete:
            return re.fullmatch(spec, text) is not None
        return regex.fullmatch(spec, text, partial=True) is not None
    if complete:
        try:
            jsonschema.validate(json.loads(text), spec)
        except (ValueError, jsonschema.ValidationError):
            return False
        return True
    return _json_prefix_ok(spec, text)


@pytest.fixture(scope="module")
def session(tiny_tokenizer):
    from tiny_models import tiny_model

    tok = tiny_tokenizer
    model = tiny_model("llama", vocab_size=len(tok), eos_token_id=0, pad_token_id=0,
                       bos_token_id=0)
    return iv.Session(model, tok, name="tiny")


@settings(max_examples=RUNS, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_every_output_of_a_constrained_run_matches_its_constraint(session, data):
    if data.draw(st.integers(0, 2)) == 0:
        kind, spec = "json", data.draw(schemas())
        constraint = iv.JSONSchema(spec)
    else:
        kind, spec = "regex", data.draw(regexes())
        constraint = iv.Regex(spec)
    strategy, params = data.draw(st.sampled_from(STRATEGIES))
    res = session.generate("Hello", strategy, max_new_tokens=data.draw(st.integers(2, 7)),
                           constraint=constraint, **params)
    COUNTS["runs"] += 1
    bad = []
    for text, reason in zip(res.texts, res.finish_reasons):
        COUNTS["texts"] += 1
        if not _check(kind, spec, text, reason):
            bad.append((text, reason))
    COUNTS["violations"] += len(bad)
    assert not bad, f"{strategy} under {kind} {spec!r} wrote {bad}"


def test_the_property_run_counted_its_runs():
    # Runs after the property test (file order): it ran all its examples, some to the end
    # of their constraint, and none broke it.
    print(f"constraint properties: {COUNTS}")
    assert COUNTS["runs"] == RUNS
    assert COUNTS["texts"] >= RUNS and COUNTS["complete"] > 50
    assert COUNTS["violations"] == 0
