"""Arguments of the wrong type get an error naming the argument and what is allowed."""

from __future__ import annotations

import pytest


def test_generate_refuses_unhashable_mode_naming_mode(tiny_session):
    with pytest.raises(TypeError, match=r"mode must be a str, one of focused, exploratory; "
                                        r"got list \[\]"):
        tiny_session.generate("Hello", strategy="sample", mode=[], max_new_tokens=1)


def test_generate_refuses_unknown_mode_listing_valid_ones(tiny_session):
    with pytest.raises(ValueError, match=r"mode 'wild' is unknown; valid modes: focused"):
        tiny_session.generate("Hello", strategy="sample", mode="wild", max_new_tokens=1)


def test_expand_refuses_a_string_of_node_ids_instead_of_iterating_it(tiny_session):
    tree = tiny_session.tree("Hello")
    with pytest.raises(TypeError, match=r"node_ids must be an int or a list of ints, got str "
                                        r"'abc'"):
        tiny_session.expand(tree, "abc")
    with pytest.raises(TypeError, match=r"node_ids must be an int or a list of ints, got "
                                        r"float 1.5"):
        tiny_session.expand(tree, 1.5)
    assert len(tree) == 1
