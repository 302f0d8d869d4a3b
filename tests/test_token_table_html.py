"""The Path tab's per-token table reads as a table (issue 16): named columns with units,
tokens shown as the tree shows them, probabilities as percentages with bars, the model's
alternatives with their probabilities; and it says what the numbers are."""

from __future__ import annotations

import re

import pandas as pd

from inferviz.widgets.export.token_table_html import percent, token_table_html
from inferviz.widgets.views.visible_text import display_token


def table(**overrides):
    df = pd.DataFrame({"position": [5, 6], "token_id": [1, 2], "token": [" Paris", "\n"],
                       "prob": [0.773, 0.0004], "logprob": [-0.258, -7.8], "rank": [0, 12],
                       "entropy": [1.4812, 2.0], "top_token_ids": [[1, 3], [4, 5]],
                       "top_tokens": [[" Paris", " the"], [".", ","]],
                       "top_probs": [[0.773, 0.065], [0.6, 0.2]], **overrides})
    df.attrs["perplexity"] = 3.149
    return df


def cells(html: str) -> list[list[str]]:
    rows = re.findall(r"<tr>(.*?)</tr>", html)
    return [[re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", r)]
            for r in rows]


def test_columns_are_named_with_their_units():
    header = cells(token_table_html(table()))[0]
    assert header == ["pos", "token", "probability", "rank (0 = top)", "entropy (nats)",
                      "model's top 5"]


def test_a_row_shows_the_token_as_the_tree_does_and_numbers_rounded():
    first, second = cells(token_table_html(table()))[1:]
    assert first[:5] == ["5", "·Paris", "77.3%", "0", "1.48"]
    assert second[:3] == ["6", "↵", "0.04%"]
    assert "'" not in first[1]  # no Python repr quotes


def test_the_probability_bar_is_as_long_as_the_probability():
    widths = [int(w) for w in re.findall(r"class='bar' style='width:(\d+)px", token_table_html(table()))]
    assert widths == [62, 1]  # 80 px * 0.773, and at least one pixel


def test_alternatives_carry_their_probabilities():
    assert cells(token_table_html(table()))[1][5] == "·Paris 77.3%·the 6.5%"


def test_it_says_what_the_numbers_are_and_gives_perplexity():
    html = token_table_html(table())
    assert "raw model" in html and "teacher-forced" in html
    assert "Perplexity <b>3.149</b>" in html


def test_a_servers_approximate_scores_are_flagged():
    assert "only its top tokens" in token_table_html(table(approx=[True, False]))
    assert "only its top tokens" not in token_table_html(table())


def test_display_and_percent_rules():
    assert display_token("a\tb\x01") == "a→b<0x01>"
    assert display_token("") == "∅"
    assert [percent(p) for p in (0.5, 0.041, 0.0012, 0.00001, 0)] == [
        "50.0%", "4.1%", "0.12%", "<0.01%", "0%"]
