"""A tree file is untrusted input: every way a file can be wrong is refused with a ValueError
that names the node and the field, and nothing that loads fails later."""

from __future__ import annotations

import json

import pytest

from inferviz.tree import TokenTree


def valid_dict() -> dict:
    tree = TokenTree("Hi", [7, 8], model="m")
    a = tree.add_child(0, 11, b" there", -0.5, 0.6, 0, 2.0)
    tree.add_child(0, 12, b"!", -1.5, 0.3, 1, 2.0)
    b = tree.add_child(a.node_id, 13, b"\n", -0.1, 1.0, 0, 0.4, meta={"beam_score": -0.6})
    tree.add_child(b.node_id, 14, b"x", -2.0, 0.1, 3, 1.0)
    return tree.to_dict()  # nodes 0..4: 0 -> (1, 2), 1 -> 3, 3 -> 4


def node(data: dict, node_id: int) -> dict:
    return next(n for n in data["nodes"] if n["node_id"] == node_id)


def refused(data, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TokenTree.from_json(json.dumps(data))


def test_valid_file_loads_with_children_and_next_id():
    tree = TokenTree.from_dict(valid_dict())
    assert sorted(tree.root.children) == [11, 12] and tree.token_ids(4) == [7, 8, 11, 13, 14]
    assert tree.add_child(0, 15, b"?", -3.0, 0.0, 4, 2.0).node_id == 5


def test_from_json_refuses_node_that_is_its_own_parent():
    data = valid_dict()
    node(data, 3)["parent_id"] = 3
    refused(data, r"node 3: field 'parent_id' must be the id of an earlier node")


def test_from_json_refuses_cycle():
    data = valid_dict()  # 3 and 4 each other's parent, cut off from the root
    node(data, 3)["parent_id"] = 4
    refused(data, r"node 3: field 'parent_id' must be the id of an earlier node .* got 4")


def test_from_json_refuses_missing_parent():
    data = valid_dict()
    node(data, 4)["parent_id"] = 2
    data["nodes"] = [n for n in data["nodes"] if n["node_id"] != 2]
    refused(data, r"node 4: field 'parent_id' names node 2, which is not in the file")


def test_from_json_refuses_next_id_below_existing_id():
    data = valid_dict()
    data["next_id"] = 0
    refused(data, r"field 'next_id' must be greater than every node id \(4\), got 0")


def test_from_json_refuses_duplicate_node_ids():
    data = valid_dict()
    data["nodes"].append(dict(node(data, 2), token_id=99))
    refused(data, r"node 2: field 'node_id' is used by two nodes")


def test_from_json_refuses_duplicate_sibling_tokens():
    data = valid_dict()
    node(data, 2)["token_id"] = 11  # same token as its sibling node 1
    refused(data, r"node 2: field 'token_id' 11 is already a child of node 0")


def test_from_json_refuses_depth_not_parent_depth_plus_one():
    data = valid_dict()
    node(data, 4)["depth"] = 99
    refused(data, r"node 4: field 'depth' must be parent depth \+ 1 \(3\), got 99")


def test_from_json_refuses_two_roots_or_none():
    data = valid_dict()
    node(data, 2).update(parent_id=None, depth=0, token_id=None, rank=None, entropy=None,
                         raw_logprob=0.0, prob=1.0, cum_logprob=0.0)
    refused(data, "exactly one root .* this one has 2")


@pytest.mark.parametrize("field, value, match", [
    ("node_id", "7", r"nodes\[1\]: field 'node_id' must be an int, got '7' \(str\)"),
    ("node_id", True, r"field 'node_id' must be an int, got True \(bool\)"),
    ("node_id", -1, r"field 'node_id' must be in \[0, "),
    ("depth", 1.5, r"node 1: field 'depth' must be an int"),
    ("token_id", None, r"node 1: field 'token_id' must be an int \(only the root has null\)"),
    ("token_id", -3, r"node 1: field 'token_id' must be in \[0, "),
    ("rank", "first", r"node 1: field 'rank' must be an int or null"),
    ("token_bytes", "zz", r"node 1: field 'token_bytes' must be a hex string"),
    ("token_bytes", 5, r"node 1: field 'token_bytes' must be a hex string"),
    ("token", ["a"], r"node 1: field 'token' must be a string"),
    ("raw_logprob", "nan", r"node 1: field 'raw_logprob' must be a log-probability"),
    ("raw_logprob", 0.5, r"node 1: field 'raw_logprob' must be a log-probability"),
    ("raw_logprob", "abc", r"node 1: field 'raw_logprob' must be a number"),
    ("prob", 1.5, r"node 1: field 'prob' must be in \[0, 1\], got 1.5"),
    ("prob", "nan", r"node 1: field 'prob' must be in \[0, 1\], got nan"),
    ("entropy", "inf", r"node 1: field 'entropy' must be a finite number >= 0"),
    ("entropy", None, r"node 1: field 'entropy' must be a number"),
    ("cum_logprob", "inf", r"node 1: field 'cum_logprob' must be <= 0"),
    ("meta", [1], r"node 1: field 'meta' must be an object"),
    ("meta", {"w": {"__float__": "big"}}, r"node 1: field 'meta' .* tag must be"),
    ("extra", 1, r"node 1: unknown field\(s\) \['extra'\]"),
])
def test_from_json_refuses_bad_field_naming_node_and_field(field, value, match):
    data = valid_dict()
    node(data, 1)[field] = value
    refused(data, match)


@pytest.mark.parametrize("field", ["parent_id", "depth", "token_id", "token", "token_bytes",
                                   "raw_logprob", "prob", "rank", "entropy", "cum_logprob"])
def test_from_json_refuses_missing_node_field(field):
    data = valid_dict()
    del node(data, 3)[field]
    refused(data, rf"node 3: missing field\(s\) \['{field}'\]")


@pytest.mark.parametrize("field, value, match", [
    ("token_id", 5, r"node 0: field 'token_id' must be null for the root"),
    ("depth", 2, r"node 0: field 'depth' must be 0 for the root, got 2"),
    ("prob", 0.5, r"node 0: field 'prob' must be 1 for the root"),
])
def test_from_json_refuses_bad_root(field, value, match):
    data = valid_dict()
    node(data, 0)[field] = value
    refused(data, match)


@pytest.mark.parametrize("field, value, match", [
    ("prompt_ids", [], r"field 'prompt_ids' must be a non-empty list"),
    ("prompt_ids", [1, "2"], r"field 'prompt_ids\[1\]' must be an int"),
    ("prompt", 3, r"field 'prompt' must be a string"),
    ("model", None, r"field 'model' must be a string"),
    ("nodes", {}, r"field 'nodes' must be a non-empty list"),
    ("next_id", "5", r"field 'next_id' must be an int"),
    ("version", True, r"version True is not supported"),
    ("version", 2, r"version 2 is not supported"),
    ("schema", "other", r"not an inferviz tree"),
    ("colour", "red", r"unknown field\(s\) \['colour'\]"),
])
def test_from_json_refuses_bad_top_level_field(field, value, match):
    data = valid_dict()
    data[field] = value
    refused(data, match)


def test_from_json_refuses_text_that_is_not_json_or_not_an_object():
    with pytest.raises(ValueError, match="tree file is not valid JSON"):
        TokenTree.from_json('{"schema": "inferviz.tree", ')
    with pytest.raises(ValueError, match="not an inferviz tree"):
        TokenTree.from_json("[1, 2]")
    with pytest.raises(ValueError, match="not valid JSON: nested too deeply"):
        TokenTree.from_json("[" * 100_000 + "]" * 100_000)
    with pytest.raises(TypeError, match="text must be a str"):
        TokenTree.from_json(None)


def test_from_json_accepts_nodes_in_any_order_and_missing_optional_fields():
    data = valid_dict()
    data["nodes"].reverse()
    del data["next_id"], data["model"]
    for n in data["nodes"]:
        n.pop("meta")
    tree = TokenTree.from_dict(data)
    assert tree.token_ids(4) == [7, 8, 11, 13, 14] and tree._next_id == 5 and tree.model == ""


def test_refused_file_leaves_no_partial_tree_and_dict_unchanged():
    data = valid_dict()
    node(data, 4)["depth"] = 99
    before = json.dumps(data)
    with pytest.raises(ValueError):
        TokenTree.from_dict(data)
    assert json.dumps(data) == before


def test_add_child_refuses_numbers_a_tree_file_could_not_hold():
    tree = TokenTree("Hi", [1])
    with pytest.raises(ValueError, match="field 'prob' must be in \\[0, 1\\]"):
        tree.add_child(0, 5, b"a", -1.0, float("nan"), 0, 1.0)
    with pytest.raises(ValueError, match="field 'raw_logprob' must be a log-probability"):
        tree.add_child(0, 5, b"a", 0.7, 0.5, 0, 1.0)
    assert len(tree) == 1


# ------------------------------------------------------------------ token ids vs a model
def foreign_tree(session, token_id: int) -> TokenTree:
    data = session.tree("Hello").to_dict()
    data["nodes"].append({"node_id": 1, "parent_id": 0, "depth": 1, "token_id": token_id,
                          "token": "x", "token_bytes": "78", "raw_logprob": -1.0, "prob": 0.5,
                          "rank": 0, "entropy": 1.0, "cum_logprob": -1.0, "meta": {}})
    data["next_id"] = 2
    return TokenTree.from_json(json.dumps(data))


def test_loaded_tree_with_token_id_outside_vocabulary_is_refused_on_first_use(tiny_session):
    tree = foreign_tree(tiny_session, tiny_session.vocab_size + 5)
    match = (rf"node 1: field 'token_id' {tiny_session.vocab_size + 5} is outside the "
             rf"vocabulary of 'tiny' \(ids 0..{tiny_session.vocab_size - 1}\)")
    with pytest.raises(ValueError, match=match):
        tiny_session.expand(tree, 0, k=2)
    with pytest.raises(ValueError, match=match):
        tiny_session.generate(tree, strategy="greedy", max_new_tokens=1)
    with pytest.raises(ValueError, match=match):
        tiny_session.token_table(tree, 1)
    with pytest.raises(ValueError, match=match):
        tiny_session.logit_lens((tree, 1))
    with pytest.raises(ValueError, match=match):
        tiny_session.submit_expand(tree, 0, k=2)
    assert len(tree) == 2


def test_loaded_tree_with_token_ids_inside_vocabulary_expands_and_is_checked_once(tiny_session):
    tree = foreign_tree(tiny_session, tiny_session.vocab_size - 1)
    kids = tiny_session.expand(tree, 1, k=2)
    assert [k.parent_id for k in kids] == [1, 1] and tree._vocab_checked == tiny_session.vocab_size
