"""Counters of the fuzz tests, printed by tests/conftest.py at the end of the run (so `make test`
shows them even under -q) and reported in docs/reliability.md."""

from __future__ import annotations

from collections import Counter

STATS: Counter = Counter()


def summary() -> str | None:
    s = STATS
    if not (s["round_trip"] or s["file_cases"] or s["widget_cases"]):
        return None
    return (f"fuzz: {s['round_trip']} random trees round-tripped exactly; "
            f"{s['file_cases']} mutated tree files: {s['file_refused']} refused naming the "
            f"field, {s['file_loaded']} loaded and used ({s['use_refused']} of them refused on "
            f"first use: token ids outside the vocabulary, prompt_ids not the prompt), hangs {s['hangs']}, nodes lost "
            f"{s['nodes_lost']}; {s['widget_cases']} widget messages: {s['widget_ok']} valid "
            f"(expanded), {s['widget_refused']} refused with the tree unchanged, "
            f"{s['widget_state']} browser state updates")
