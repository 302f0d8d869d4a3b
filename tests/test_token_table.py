"""The teacher-forced per-token table (inferviz/token_table.py): columns, perplexity, the
tree's numbers, the default model, NaN / inf refused."""

from __future__ import annotations

import math

import pytest


def test_token_table_columns_and_perplexity(tiny_session):
    df = tiny_session.token_table("Hello world, hello there!")
    ids = tiny_session.encode("Hello world, hello there!")
    assert len(df) == len(ids) - 1
    assert list(df["token_id"]) == ids[1:]
    assert df["prob"].between(0, 1).all() and (df["rank"] >= 0).all()
    assert all(len(t) == 5 for t in df["top_tokens"])
    assert df.attrs["perplexity"] == pytest.approx(math.exp(-df["logprob"].mean()))


def test_token_table_matches_tree_numbers(tiny_session):
    tree = tiny_session.tree("Hello")
    kids = tiny_session.expand(tree, 0, k=3)
    grand = tiny_session.expand(tree, kids[2].node_id, k=2)
    df = tiny_session.token_table(tree, grand[1].node_id)
    assert list(df["token_id"]) == [kids[2].token_id, grand[1].token_id]
    assert list(df["rank"]) == [2, 1]
    assert df["logprob"].tolist() == pytest.approx([kids[2].raw_logprob, grand[1].raw_logprob],
                                                   abs=1e-5)


@pytest.mark.model
def test_token_table_on_default_model(default_session):
    df = default_session.token_table("The capital of France is Paris.")
    paris = df[df["token"] == " Paris"].iloc[0]
    assert paris["rank"] == 0 and paris["prob"] > 0.5
    assert 1 < df.attrs["perplexity"] < 1000


# ------------------------------------------------------------------ broken models


def test_token_table_refuses_nan_logits(tiny_session):
    from broken_models import broken_logits

    with broken_logits(tiny_session, [17]), pytest.raises(
            ValueError, match=r"model returned NaN logits at position 0 \(token id 17 and \d+ "
                              r"others, in \d+ positions\); the model or its dtype is broken"):
        tiny_session.token_table("Hello world, hello there")


def test_token_table_refuses_inf_logits(tiny_session):
    from broken_models import broken_logits

    with broken_logits(tiny_session, [5], float("inf")), pytest.raises(
            ValueError, match=r"model returned \+inf logits at position 0 \(token id 5"):
        tiny_session.token_table("Hello world")
