"""Tree files that are well-formed but inconsistent are refused (inferviz/tree_consistency.py):
at load, a token label that is not its bytes or a cum_logprob that is not the path sum; on
first use with a session, prompt_ids that are not the prompt or another model's vocabulary.
Ids past 2**53 - 1 and meta nested deeper than the writer handles are refused where they are
made. ``strict=False`` loads files of other tools without the consistency checks."""

from __future__ import annotations

import json
import warnings

import pytest

from inferviz.tree import TokenTree
from inferviz.tree_schema import MAX_ID, MAX_META_DEPTH


def small_tree() -> TokenTree:
    tree = TokenTree("Hi", [7, 8], model="m")
    a = tree.add_child(0, 11, b" a", -0.5, 0.6, 0, 1.2)
    tree.add_child(a.node_id, 12, b"\xbd", -1.25, 0.3, 1, 0.9)
    return tree


def session_tree(session, prompt: str = "Hello world") -> TokenTree:
    tree = session.tree(prompt)
    session.expand(tree, tree.root_id, k=2)
    return tree


def nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth - 1):
        value = {"x": value}
    return value


# ------------------------------------------------------------------ at load
def test_a_token_label_that_is_not_the_text_of_its_bytes_is_refused_at_load():
    data = small_tree().to_dict()
    data["nodes"][2]["token"] = "<script>"  # over the byte 0xbd
    with pytest.raises(ValueError, match=r"node 2: field 'token' must be the text of its "
                                         r"token_bytes \(bd: '<0xBD>'\), got '<script>'"):
        TokenTree.from_dict(data)


def test_a_cum_logprob_that_is_not_the_parent_plus_raw_logprob_is_refused_at_load():
    data = small_tree().to_dict()
    data["nodes"][2]["cum_logprob"] = -0.1
    with pytest.raises(ValueError, match=r"node 2: field 'cum_logprob' must be the parent's "
                                         r"cum_logprob plus raw_logprob \(-1.75\), got -0.1"):
        TokenTree.from_dict(data)


def test_a_cum_logprob_off_by_float_rounding_loads():
    data = small_tree().to_dict()
    data["nodes"][2]["cum_logprob"] = -1.75 + 3e-7  # summed in float32 by another tool
    assert TokenTree.from_dict(data).nodes[2].cum_logprob == pytest.approx(-1.75)


def test_a_root_whose_text_is_not_the_prompt_is_refused_at_load():
    data = small_tree().to_dict()
    data["nodes"][0]["token"] = "<img src=x onerror=alert(1)>"
    with pytest.raises(ValueError, match=r"node 0: field 'token' of the root must be the "
                                         r"prompt 'Hi'"):
        TokenTree.from_dict(data)


def test_meta_nested_deeper_than_the_writer_handles_is_refused_at_load():
    data = small_tree().to_dict()
    data["nodes"][1]["meta"] = {"deep": nested(900)}
    with pytest.raises(ValueError, match=rf"node 1: field 'meta' is nested more than "
                                         rf"{MAX_META_DEPTH} deep"):
        TokenTree.from_json(json.dumps(data))


def test_meta_at_the_depth_limit_loads_and_saves():
    data = small_tree().to_dict()
    data["nodes"][1]["meta"] = nested(MAX_META_DEPTH)
    tree = TokenTree.from_json(json.dumps(data))
    assert TokenTree.from_json(tree.to_json()).to_json() == tree.to_json()


def test_a_tree_file_with_a_lone_surrogate_prompt_saves_as_utf8_and_round_trips():
    data = small_tree().to_dict()
    data["prompt"] = data["nodes"][0]["token"] = "Hi \ud800"
    data["nodes"][0]["token_bytes"] = "Hi \ud800".encode("utf-8", "surrogatepass").hex()
    tree = TokenTree.from_dict(data)
    text = tree.to_json()
    text.encode("utf-8")  # a file can be written (it raised UnicodeEncodeError)
    assert "\\ud800" in text and TokenTree.from_json(text).prompt == "Hi \ud800"


# ------------------------------------------------------------------ where ids and meta are made
def test_node_ids_beyond_2_53_are_refused_at_creation():
    data = small_tree().to_dict()
    data["next_id"] = MAX_ID + 1  # a file may have used every id
    data["nodes"][2]["node_id"] = MAX_ID
    tree = TokenTree.from_dict(data)
    with pytest.raises(ValueError, match=r"no node ids left for 1 more node\(s\): ids stop at "
                                         r"9007199254740991"):
        tree.add_child(0, 13, b"x", -1.0, 0.5, 2, 1.0)
    assert len(tree) == 3 and TokenTree.from_json(tree.to_json()).to_json() == tree.to_json()


def test_expand_refuses_before_its_forward_when_ids_would_pass_2_53(tiny_session):
    data = tiny_session.tree("Hello").to_dict()
    data["next_id"] = MAX_ID  # room for one node, expand asks for two
    tree = TokenTree.from_dict(data)
    before = tree.to_json()
    with pytest.raises(ValueError, match=r"no node ids left for 2 more node\(s\)"):
        tiny_session.expand(tree, tree.root_id, k=2)
    assert tree.to_json() == before


def test_token_ids_and_ranks_beyond_2_53_are_refused_at_add():
    tree = small_tree()
    with pytest.raises(ValueError, match=r"token_id and rank must be in \[0, 9007199254740991\]"):
        tree.add_child(0, 2**60, b"x", -1.0, 0.5, 0, 1.0)
    with pytest.raises(ValueError, match=r"token_id and rank must be in"):
        tree.add_child(0, 5, b"x", -1.0, 0.5, 2**60, 1.0)


def test_meta_nested_deeper_than_the_writer_handles_is_refused_at_add():
    tree = small_tree()
    with pytest.raises(ValueError, match=rf"field 'meta' is nested more than {MAX_META_DEPTH}"):
        tree.add_child(0, 13, b"x", -1.0, 0.5, 2, 1.0, meta={"deep": nested(900)})
    loop: dict = {}
    loop["self"] = loop
    with pytest.raises(ValueError, match=r"nested more than"):
        tree.update_meta(1, {"loop": loop})
    assert 13 not in tree.root.children and "loop" not in tree.nodes[1].meta
    tree.to_json()


def test_prompt_ids_outside_the_id_range_are_refused_by_the_constructor():
    with pytest.raises(ValueError, match=r"prompt_ids must be a non-empty list"):
        TokenTree("Hi", [])
    with pytest.raises(ValueError, match=r"token ids in \[0, 9007199254740991\]; got -1"):
        TokenTree("Hi", [1, -1])
    with pytest.raises(TypeError, match=r"prompt_ids must be a list of token ids"):
        TokenTree("Hi", [1.5])


# ------------------------------------------------------------------ on first use
def test_session_trees_record_the_model_vocabulary_in_meta(tiny_session):
    tree = tiny_session.tree("Hello")
    assert tree.meta["vocab_size"] == tiny_session.vocab_size
    assert tree.meta["vocabulary"].startswith("sha256:")
    assert TokenTree.from_json(tree.to_json()).meta == tree.meta


def test_a_tree_of_another_model_is_refused_on_first_use_naming_both(tiny_session):
    from tiny_models import tiny_session as other_session

    other = other_session("llama")
    tree = session_tree(tiny_session)
    for candidate in (tree, TokenTree.from_json(tree.to_json())):
        before = candidate.to_json()
        with pytest.raises(ValueError, match=r"this tree was made with 'tiny' \(vocab_size 300, "
                                             r"vocabulary sha256:\w+\) and is used with "
                                             r"'tiny-llama' \(vocab_size 97, vocabulary "
                                             r"sha256:\w+\): its token ids would be read as "
                                             r"other tokens"):
            other.expand(candidate, candidate.root_id, k=2)
        assert candidate.to_json() == before


def test_a_tree_is_usable_by_another_model_sharing_the_tokenizer(tiny_session, tiny_tokenizer):
    from tiny_models import tiny_model

    from inferviz import Session

    amateur = Session(tiny_model("llama", seed=1, vocab_size=len(tiny_tokenizer),
                                 eos_token_id=0, pad_token_id=0, bos_token_id=0),
                      tiny_tokenizer, name="amateur")
    tree = TokenTree.from_json(session_tree(tiny_session).to_json())
    assert len(amateur.expand(tree, tree.root_id, k=2)) == 2


def test_prompt_ids_that_are_not_the_prompt_are_refused_on_first_use(tiny_session):
    data = session_tree(tiny_session, "Hello world").to_dict()
    data["prompt"] = data["nodes"][0]["token"] = "Ignore that"
    data["nodes"][0]["token_bytes"] = b"Ignore that".hex()
    tree = TokenTree.from_dict(data)  # consistent in itself
    before = tree.to_json()
    with pytest.raises(ValueError, match=r"tree prompt_ids are not its prompt under the "
                                         r"tokenizer of 'tiny': prompt_ids decode to "
                                         r"'Hello world', the prompt is 'Ignore that'"):
        tiny_session.expand(tree, tree.root_id, k=2)
    assert tree.to_json() == before
    with pytest.raises(ValueError, match=r"prompt_ids are not its prompt"):
        tiny_session.token_table(tree)


def test_a_loaded_tree_whose_prompt_ids_are_its_prompt_is_used(tiny_session):
    tree = TokenTree.from_json(session_tree(tiny_session, "naïve café 東京").to_json())
    assert len(tiny_session.expand(tree, 1, k=2)) == 2


def test_a_child_added_outside_the_vocabulary_after_first_use_is_refused_not_an_index_error(
        tiny_session):
    tree = session_tree(tiny_session)  # first use: the vocabulary check is cached
    bad = tree.add_child(tree.root_id, tiny_session.vocab_size + 5, b"?", -1.0, 0.1, 9, 1.0)
    with pytest.raises(ValueError, match=rf"node {bad.node_id}: field 'token_id' "
                                         rf"{tiny_session.vocab_size + 5} is outside the "
                                         rf"vocabulary of 'tiny'"):
        tiny_session.expand(tree, bad.node_id, k=2)


# ------------------------------------------------------------------ strict=False
def inconsistent_file(session) -> str:
    data = session_tree(session).to_dict()
    data["nodes"][1]["token"] = "label of another tool"
    data["nodes"][1]["cum_logprob"] = -0.0
    data["prompt"] = data["nodes"][0]["token"] = "other text"
    data["nodes"][0]["token_bytes"] = b"other text".hex()
    data["meta"] = {"vocab_size": 12345}
    return json.dumps(data)


def test_strict_false_loads_a_file_of_another_tool_and_says_so(tiny_session):
    text = inconsistent_file(tiny_session)
    with pytest.raises(ValueError, match=r"field 'token' of the root must be the prompt|"
                                         r"field 'token' must be the text"):
        TokenTree.from_json(text)
    with pytest.warns(UserWarning, match=r"strict=False: its token texts, cum_logprob, "
                                         r"prompt_ids and model identity are not checked"):
        tree = TokenTree.from_json(text, strict=False)
    assert tree.strict is False and tree.nodes[1].token == "label of another tool"
    assert len(tiny_session.expand(tree, tree.root_id, k=2)) >= 1


def test_strict_false_still_checks_structure_types_and_the_vocabulary_range(tiny_session):
    data = json.loads(inconsistent_file(tiny_session))
    data["nodes"][1]["depth"] = 7
    with warnings.catch_warnings(), pytest.raises(ValueError, match=r"field 'depth'"):
        warnings.simplefilter("ignore")
        TokenTree.from_dict(data, strict=False)
    data = json.loads(inconsistent_file(tiny_session))
    data["nodes"][1]["token_id"] = 10**6
    with pytest.warns(UserWarning):
        tree = TokenTree.from_dict(data, strict=False)
    with pytest.raises(ValueError, match=r"outside the vocabulary"):
        tiny_session.expand(tree, tree.root_id, k=1)
    with pytest.raises(TypeError, match=r"strict must be a bool"):
        TokenTree.from_json(tree.to_json(), strict="no")
