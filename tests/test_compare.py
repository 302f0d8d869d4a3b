"""Session.compare: several strategies into one tree, divergence, the side-by-side table, bad args."""

from __future__ import annotations

import math

import pytest

from inferviz.compare import Comparison, parse_strategies

PROMPT = "Hello world"


def _first_difference(a: list[int], b: list[int]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def _split_seed(session) -> int:
    """A seed whose sample run parts from greedy after at least one shared token, if any."""
    greedy = session.generate(PROMPT, strategy="greedy", max_new_tokens=8,
                              stop_at_eos=False).token_ids
    best = 0
    for seed in range(40):
        sample = session.generate(PROMPT, strategy="sample", seed=seed, max_new_tokens=8,
                                  temperature=0.5, stop_at_eos=False).token_ids
        pos = _first_difference(greedy, sample)
        if pos is not None and pos >= 1:
            return seed
        best = seed if pos is not None else best
    return best


def test_strategies_share_one_tree_and_each_result_matches_a_separate_run(tiny_session):
    s = tiny_session
    cmp = s.compare(PROMPT, ["greedy", {"strategy": "beam", "num_beams": 3},
                             {"strategy": "top_p", "top_p": 0.9, "seed": 3}], max_new_tokens=6)
    assert isinstance(cmp, Comparison)
    assert cmp.labels == ["greedy", "beam", "top_p"]
    assert {r.tree is cmp.tree for r in cmp.results.values()} == {True}
    alone = {
        "greedy": s.generate(PROMPT, strategy="greedy", max_new_tokens=6),
        "beam": s.generate(PROMPT, strategy="beam", num_beams=3, max_new_tokens=6),
        "top_p": s.generate(PROMPT, strategy="top_p", top_p=0.9, seed=3, max_new_tokens=6),
    }
    for label, result in alone.items():
        assert cmp.results[label].token_ids == result.token_ids


def test_divergence_is_where_greedy_and_sampling_paths_split(tiny_session):
    s = tiny_session
    seed = _split_seed(s)
    greedy = s.generate(PROMPT, strategy="greedy", max_new_tokens=8, stop_at_eos=False)
    sample = s.generate(PROMPT, strategy="sample", seed=seed, temperature=0.5,
                        max_new_tokens=8, stop_at_eos=False)
    expected = _first_difference(greedy.token_ids, sample.token_ids)
    assert expected is not None
    cmp = s.compare(PROMPT, ["greedy", {"strategy": "sample", "seed": seed, "temperature": 0.5}],
                    max_new_tokens=8)
    div = cmp.divergence[("greedy", "sample")]
    assert div.position == expected
    shared = cmp.path_ids("greedy")[:expected]
    assert div.node_id == (shared[-1] if shared else cmp.tree.root_id)
    assert cmp.tree.node(div.a_node_id).parent_id == div.node_id
    assert cmp.tree.node(div.b_node_id).parent_id == div.node_id
    assert cmp.tree.node(div.a_node_id).token_id == greedy.token_ids[expected]
    assert cmp.tree.node(div.b_node_id).token_id == sample.token_ids[expected]
    assert cmp.vs_reference("sample") is div
    assert cmp.to_pandas().set_index("label").loc["sample", "diverges_at"] == expected


def test_identical_sequences_have_no_divergence_position(tiny_session):
    cmp = tiny_session.compare(PROMPT, ["greedy", {"strategy": "top_k", "top_k": 1, "seed": 0}],
                               max_new_tokens=5)
    div = cmp.divergence[("greedy", "top_k")]
    assert div.identical and div.position is None
    assert cmp.path_ids("greedy") == cmp.path_ids("top_k")
    assert cmp.to_pandas()["diverges_at"].isna().all()


def test_table_values_are_sums_of_node_raw_logprobs(tiny_session):
    cmp = tiny_session.compare(PROMPT, ["greedy", {"strategy": "sample", "seed": 1},
                                        {"strategy": "beam", "num_beams": 2}], max_new_tokens=5)
    df = cmp.to_pandas().set_index("label")
    assert list(df.columns[:8]) == ["strategy", "text", "tokens", "sum_logprob", "mean_logprob",
                                    "perplexity", "finish_reason", "diverges_at"]
    for label, result in cmp.results.items():
        nodes = [cmp.tree.node(i) for i in cmp.path_ids(label)]
        total = sum(n.raw_logprob for n in nodes)
        row = df.loc[label]
        assert row["tokens"] == len(nodes) == len(result.token_ids)
        assert row["sum_logprob"] == pytest.approx(total)
        assert row["mean_logprob"] == pytest.approx(total / len(nodes))
        assert row["perplexity"] == pytest.approx(math.exp(-total / len(nodes)))
        assert row["text"] == result.text
        assert row["finish_reason"] == result.finish_reason


def test_nodes_record_which_labels_visited_and_made_them(tiny_session):
    cmp = tiny_session.compare(PROMPT, ["greedy", {"strategy": "sample", "seed": 2,
                                                   "label": "hot", "temperature": 1.5}],
                               max_new_tokens=6)
    tree = cmp.tree
    for label in cmp.labels:
        for node_id in cmp.path_ids(label):
            assert label in tree.node(node_id).meta["compare_labels"].split(", ")
    assert all("compare_by" in tree.node(i).meta for i in cmp.path_ids("greedy"))
    df = tree.to_pandas()
    assert {"compare_labels", "compare_by"} <= set(df.columns)
    div = cmp.vs_reference("hot")
    if not div.identical:
        assert tree.node(div.b_node_id).meta["compare_diverges"] == "hot"


def test_a_token_tree_prompt_is_grown_in_place(tiny_session):
    tree = tiny_session.tree(PROMPT)
    cmp = tiny_session.compare(tree, ["greedy", "sample"], max_new_tokens=3, seed=0)
    assert cmp.tree is tree and len(tree) > 1
    assert cmp.results["sample"].params["seed"] == 0


@pytest.mark.parametrize("strategies, error, words", [
    ([], ValueError, "strategies is empty"),
    ("greedy", TypeError, "strategies must be a list"),
    (["greedy", "nucleus"], ValueError, "strategies[1] names an unknown strategy 'nucleus'"),
    (["greedy", "greedy"], ValueError, "strategies[1] has the label 'greedy'"),
    ([{"strategy": "top_p", "top_p": 0.9}, {"strategy": "top_p", "top_p": 0.5}], ValueError,
     "labels must be distinct"),
    ([{"top_p": 0.9}], ValueError, "strategies[0] is a dict without a 'strategy' key"),
    ([3], TypeError, "strategies[0] must be a strategy name, a dict or an intervention"),
    ([{"strategy": "greedy", "label": ""}], ValueError, "strategies[0] label"),
])
def test_bad_strategies_are_refused_before_anything_runs(strategies, error, words):
    with pytest.raises(error) as info:
        parse_strategies(strategies)
    assert words in str(info.value)


def test_bad_arguments_leave_the_given_tree_unchanged(tiny_session):
    tree = tiny_session.tree(PROMPT)
    with pytest.raises(ValueError, match="labels must be distinct"):
        tiny_session.compare(tree, ["greedy", "greedy"], max_new_tokens=3)
    with pytest.raises(ValueError, match="max_new_tokens"):
        tiny_session.compare(tree, ["greedy"], max_new_tokens=0)
    assert len(tree) == 1


def test_a_strategy_parameter_error_names_its_entry(tiny_session):
    with pytest.raises(ValueError, match=r"strategies\[1\] \('beam'\): num_beams"):
        tiny_session.compare(PROMPT, ["greedy", {"strategy": "beam", "num_beams": 0}],
                             max_new_tokens=3)


def test_repr_and_html_name_every_label(tiny_session):
    cmp = tiny_session.compare(PROMPT, ["greedy", {"strategy": "sample", "seed": 0}],
                               max_new_tokens=4)
    assert "greedy: reference" in repr(cmp)
    html = cmp._repr_html_()
    assert "greedy" in html and "sample" in html and "perplexity" in html


def test_importing_compare_imports_no_pandas_or_widgets():
    import subprocess
    import sys

    code = ("import sys, inferviz.compare; "
            "assert not {'pandas', 'anywidget', 'ipywidgets', 'inferviz.widgets'} & "
            "set(sys.modules), sorted(m for m in sys.modules if m.split('.')[0] in "
            "('pandas', 'anywidget', 'ipywidgets'))")
    subprocess.run([sys.executable, "-c", code], check=True)
