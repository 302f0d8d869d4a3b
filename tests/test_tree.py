"""TokenTree: pure data, children keyed by token id, faithful text, exact JSON round trip."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inferviz.tree import CORE_COLUMNS, TokenTree, readable_token


def small_tree() -> TokenTree:
    tree = TokenTree("Hi", [7, 8], model="m")
    a = tree.add_child(0, 11, b" there", -0.5, 0.6, 0, 2.0)
    tree.add_child(0, 12, b" there", -1.5, 0.3, 1, 2.0)  # same text, another token id
    tree.add_child(a.node_id, 13, b"\n", -0.1, 1.0, 0, 0.4, meta={"beam_score": -0.6})
    return tree


def test_children_are_keyed_by_token_id_not_text():
    tree = small_tree()
    kids = tree.children(tree.root_id)
    assert [k.token for k in kids] == [" there", " there"]
    assert sorted(tree.root.children) == [11, 12]


def test_re_adding_a_token_keeps_its_node_and_updates_prob():
    tree = small_tree()
    again = tree.add_child(0, 11, b" there", -0.5, 0.9, 0, 2.0)
    assert again.node_id == 1 and again.prob == 0.9 and len(tree) == 4


def test_path_text_and_cum_logprob():
    tree = small_tree()
    leaf = 3
    assert [n.node_id for n in tree.path(leaf)] == [0, 1, 3]
    assert tree.text(leaf) == "Hi there\n"
    assert tree.completion(leaf) == " there\n"
    assert tree.token_ids(leaf) == [7, 8, 11, 13]
    assert tree.node(leaf).cum_logprob == pytest.approx(-0.6)


def test_character_split_across_tokens_is_whole_in_text_and_readable_per_token():
    tree = TokenTree("x", [1])
    euro = "€".encode()  # three bytes, split over two tokens
    a = tree.add_child(0, 5, euro[:2], -1.0, 0.5, 0, 1.0)
    b = tree.add_child(a.node_id, 6, euro[2:], -1.0, 0.5, 0, 1.0)
    assert a.token == "<0xE2><0x82>" and b.token == "<0xAC>"
    assert tree.completion(b.node_id) == "€"


@given(st.binary(max_size=12))
def test_readable_token_never_crashes_and_round_trips_valid_utf8(data):
    text = readable_token(data)
    assert isinstance(text, str)
    try:
        assert text == data.decode("utf-8")
    except UnicodeDecodeError:
        assert "<0x" in text


def test_unknown_node_id_is_a_clear_error():
    with pytest.raises(KeyError, match="node_id 99 is not in this tree"):
        small_tree().node(99)


def test_to_pandas_is_tidy_with_meta_columns():
    df = small_tree().to_pandas()
    assert list(df.columns[: len(CORE_COLUMNS)]) == list(CORE_COLUMNS)
    assert "beam_score" in df.columns
    assert len(df) == 4 and df["node_id"].is_unique
    assert df.loc[0, "parent_id"] is not None and df["parent_id"].isna().sum() == 1
    assert not df["prob"].isna().any()


def test_on_change_notifies_and_unsubscribes():
    tree = small_tree()
    seen: list[list[int]] = []
    stop = tree.on_change(seen.append)
    tree.add_child(0, 20, b"!", -3.0, 0.0, 2, 2.0)
    stop()
    tree.add_child(0, 21, b"?", -3.0, 0.0, 3, 2.0)
    assert seen == [[4]]


def test_from_json_rejects_other_schemas_and_versions():
    data = small_tree().to_dict()
    with pytest.raises(ValueError, match="not an inferviz tree"):
        TokenTree.from_dict({**data, "schema": "x"})
    with pytest.raises(ValueError, match="version 99 is not supported"):
        TokenTree.from_dict({**data, "version": 99})


# The JSON round trip of random trees: tests/test_fuzz_tree_files.py.
