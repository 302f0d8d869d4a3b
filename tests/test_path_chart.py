"""The Charts tab's path chart names its x axis by the path's tokens (issue 16), as the tree
shows them, not by positions 1..n."""

from __future__ import annotations

from tiny_models import tiny_session

from inferviz.widgets import figures


def test_the_x_axis_shows_the_paths_tokens_with_whitespace_visible():
    session = tiny_session("llama")
    tree = session.tree("t5 t6")
    res = session.generate(tree, strategy="greedy", max_new_tokens=4)
    tokens = [n.token for n in tree.path(res.node_id)[1:]]
    axis = figures.path_figure(tree, res.node_id).layout.xaxis
    assert list(axis.tickvals) == [1, 2, 3, 4]
    assert list(axis.ticktext) == [figures.hover_text(t) for t in figures.axis_tokens(tokens)]
    assert axis.title.text == "token on the selected path"


def test_tick_labels_are_visible_tokens_shortened():
    assert figures.axis_tokens([" the", "\n", "a" * 14]) == ["·the", "↵", "a" * 9 + "…"]


def test_a_long_path_names_every_nth_token():
    session = tiny_session("llama")
    tree = session.tree("t5 t6")
    res = session.generate(tree, strategy="greedy", max_new_tokens=70)
    axis = figures.path_figure(tree, res.node_id).layout.xaxis
    assert len(axis.tickvals) <= figures.MAX_TICKS
    assert list(axis.tickvals)[:2] == [1, 4]
