"""TextView: the path's tokens with probabilities and alternatives, browser state, offline HTML,
and its link to the tree in the explorer and the comparison widget."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("anywidget")

from inferviz.tree import TokenTree
from inferviz.widgets.views.text_view import TextView, path_tokens, prob_color, text_view_html


def small_tree() -> TokenTree:
    """root -> a (p .6) -> c ; root -> b (p .3); root -> d (p .1)."""
    tree = TokenTree("Hi", [1, 2])
    a = tree.add_child(0, 10, b" a", math.log(0.6), 0.6, 0, 1.0, meta={"compare_labels": "greedy"})
    tree.add_child(0, 11, b" b", math.log(0.3), 0.3, 1, 1.0)
    tree.add_child(0, 12, b"\n", math.log(0.1), 0.1, 2, 1.0)
    tree.add_child(a.node_id, 13, b" c", math.log(0.5), 0.5, 0, 0.7)
    return tree


def test_tokens_hold_raw_probability_and_siblings_as_alternatives():
    tree = small_tree()
    rows = path_tokens(tree, 4)
    assert [r["node_id"] for r in rows] == [1, 4]
    assert rows[0]["prob"] == pytest.approx(0.6)
    assert rows[0]["labels"] == "greedy" and rows[1]["labels"] == ""
    alts = rows[0]["alternatives"]
    assert [a["token"] for a in alts] == [" a", " b", "\n"]
    assert [a["chosen"] for a in alts] == [True, False, False]
    assert [a["prob"] for a in alts] == pytest.approx([0.6, 0.3, 0.1])
    assert [a["token"] for a in path_tokens(tree, 4, k=2)[0]["alternatives"]] == [" a", " b"]


def test_the_chosen_token_is_listed_even_below_the_top_k():
    tree = small_tree()
    rows = path_tokens(tree, 3, k=2)  # "\n" is the third most probable child
    assert [(a["token"], a["chosen"]) for a in rows[0]["alternatives"]] == [
        (" a", False), (" b", False), ("\n", True)]


def test_view_opens_on_the_deepest_most_probable_leaf_and_follows_the_tree():
    tree = small_tree()
    view = TextView(tree)
    assert view.node_id == 4 and view.prompt == "Hi"
    assert [t["token"] for t in view.tokens] == [" a", " c"]
    tree.add_child(1, 14, b" e", math.log(0.4), 0.4, 1, 0.7)
    assert [a["token"] for a in view.tokens[1]["alternatives"]] == [" c", " e"]
    view.show(2, selected=2)
    assert [t["token"] for t in view.tokens] == [" b"] and view.selected == 2
    view.close()


def test_browser_may_set_only_a_selected_node_of_the_tree():
    view = TextView(small_tree(), 4)
    view.set_state({"selected": 1})
    assert view.selected == 1
    view.set_state({"selected": 99})
    assert view.selected == 1
    view.set_state({"node_id": 2, "tokens": []})
    assert view.node_id == 4 and len(view.tokens) == 2


def test_bad_arguments_name_what_was_wrong():
    with pytest.raises(TypeError, match="tree must be an inferviz TokenTree"):
        TextView("text")
    with pytest.raises(KeyError, match="node_id 42"):
        TextView(small_tree(), 42)
    with pytest.raises(ValueError, match="k must be"):
        TextView(small_tree(), 4, k=0)
    with pytest.raises(TypeError, match="unexpected keyword"):
        TextView(small_tree(), 4, colour="red")


def test_offline_html_has_shaded_tokens_alternatives_and_a_legend(tmp_path):
    tree = small_tree()
    page = text_view_html(tree, 4)
    assert page.count("class='inferviz-text-token'") == 2
    assert f"background:{prob_color(0.6)}" in page
    assert "token probability (raw model)" in page and "100%" in page
    assert "·b  30.0%" in page  # the alternatives of " a" in its title
    path = TextView(tree, 4).to_html(tmp_path / "text.html")
    assert path.read_text(encoding="utf-8").startswith("<!doctype html>")


def test_probability_colours_match_the_js_ramp():
    import re
    from pathlib import Path

    from inferviz.widgets.views.text_view import PROB_STOPS

    js = (Path(__file__).resolve().parents[1] / "js" / "src" / "shared" / "color.js").read_text()
    table = js.split("VIRIDIS_STOPS = [", 1)[1].split("];", 1)[0]
    stops = tuple(tuple(int(v) for v in m) for m in re.findall(r"\[(\d+), (\d+), (\d+)\]", table))
    assert stops == PROB_STOPS and len(stops) == 9
    assert prob_color(0.0) == "rgb(68,1,84)"
    assert prob_color(1.0) == "rgb(253,231,37)"
    assert prob_color(float("nan")) == "rgb(220,220,220)"


def test_session_text_view_shows_a_generated_path(tiny_session):
    res = tiny_session.generate("Hello world", strategy="greedy", max_new_tokens=3)
    view = tiny_session.text_view(res.tree, res.node_id)
    assert [t["node_id"] for t in view.tokens] == res.path_ids()[1:]
    assert [t["token"] for t in view.tokens] == [res.tree.node(i).token
                                                 for i in res.path_ids()[1:]]


def test_explorer_text_view_follows_the_selection_and_a_token_click_selects_the_node(
        tiny_session):
    pytest.importorskip("plotly")
    ex = tiny_session.explore("Hello world", max_new_tokens=4)
    result = ex.run(wait=True)
    view = ex.text_view
    assert view.node_id == result.node_id and view.tree is ex.tree
    first = result.path_ids()[1]
    view.set_state({"selected": first})  # a click on the first token, from the browser
    assert ex.selected == first
    assert view.node_id == result.node_id  # the path stays; only the highlight moves
    other = ex.tree.children(ex.tree.root_id)[0].node_id
    ex.tree_widget.expand(ex.tree.root_id, k=3)
    sibling = next(c.node_id for c in ex.tree.children(ex.tree.root_id) if c.node_id != first)
    ex.select(sibling)
    assert view.node_id == sibling and view.selected == sibling
    assert other in ex.tree


def test_comparison_widget_links_its_text_view_to_the_tree(tiny_session):
    pytest.importorskip("ipywidgets")
    cmp = tiny_session.compare("Hello world", ["greedy", {"strategy": "sample", "seed": 0}],
                               max_new_tokens=3)
    box = cmp.widget()
    assert box.text_view.node_id == cmp.results["greedy"].node_id
    box.children[1].value = "sample"
    assert box.text_view.node_id == cmp.results["sample"].node_id
    token = cmp.path_ids("sample")[0]
    box.text_view.set_state({"selected": token})
    assert box.tree_widget.selected == token


def test_comparison_text_view_shows_a_label_and_refuses_unknown_ones(tiny_session):
    cmp = tiny_session.compare("Hello world", ["greedy", {"strategy": "sample", "seed": 0}],
                               max_new_tokens=3)
    view = cmp.text_view("sample")
    assert [t["node_id"] for t in view.tokens] == cmp.path_ids("sample")
    assert all("sample" in t["labels"] for t in view.tokens)
    assert cmp.text_view().node_id == cmp.results["greedy"].node_id
    with pytest.raises(KeyError, match="label 'beam' is not in this comparison"):
        cmp.text_view("beam")
