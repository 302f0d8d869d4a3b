"""Constraints inside the tree (docs/constraints.md): what a constrained node records, checked
against brute force over the vocabulary; every strategy keeps to the constraint; bad input is
refused naming the argument, and a constraint nothing can continue ends the run cleanly."""

from __future__ import annotations

import math
import re

import pytest
import torch

import inferviz as iv
from inferviz.constraints import ConstraintError


def _raw_logprobs(session, ids):
    """Next-token raw log-probabilities from a full forward of the model itself (not the
    engine or its KV cache)."""
    with torch.no_grad():
        logits = session.model(torch.tensor([ids])).logits[0, -1].float()
    return torch.log_softmax(logits, -1)


def _texts(tokenizer):
    return [tokenizer.decode([i]) for i in range(len(tokenizer))]


def test_legal_mass_equals_brute_force_sum_over_vocabulary(tiny_session):
    s = tiny_session
    tree = s.tree("Hello")
    kids = s.expand(tree, tree.root_id, k=4, constraint=iv.Regex(r"[0-9]{1,3}"))
    texts = _texts(s.tokenizer)
    # Legal after the prompt: tokens made of 1 to 3 digits (no end of sequence yet).
    legal = torch.tensor([bool(re.fullmatch(r"[0-9]{1,3}", t)) for t in texts])
    raw = _raw_logprobs(s, tree.prompt_ids)
    expected = torch.logsumexp(raw[legal], -1).item()
    for kid in kids:
        assert kid.meta["log_legal_mass"] == pytest.approx(expected, abs=1e-4)
        assert legal[kid.token_id]
        assert kid.prob == pytest.approx(math.exp(raw[kid.token_id].item() - expected), rel=1e-4)
        assert kid.raw_logprob == pytest.approx(raw[kid.token_id].item(), abs=1e-4)
    # The children are the most likely legal tokens, legal_rank 0.. in order.
    best_legal = torch.topk(raw.masked_fill(~legal, -math.inf), 4).indices.tolist()
    assert [k.token_id for k in kids] == best_legal
    assert [k.meta["legal_rank"] for k in kids] == [0, 1, 2, 3]
    # The model's own best token, when illegal, and the margin to the best legal one.
    best = int(raw.argmax())
    meta = kids[0].meta
    if legal[best]:
        assert meta["best_illegal_token_id"] is None and meta["constraint_margin"] == 0
    else:
        assert meta["best_illegal_token_id"] == best
        assert meta["constraint_margin"] == pytest.approx(
            (raw[best] - raw[best_legal[0]]).item(), abs=1e-4)
    # cut_alternatives: the 3 likeliest illegal tokens, those that outranked the best legal
    # one or have raw probability >= 0.5%, best first.
    illegal = [int(t) for t in torch.argsort(raw, descending=True) if not legal[int(t)]][:3]
    shown = [t for t in illegal
             if raw[t] > raw[best_legal[0]] or raw[t] >= math.log(0.005)]
    assert [c[0] for c in meta["cut_alternatives"]] == shown


def test_legal_mass_after_a_partial_choice_counts_the_end_of_sequence(tiny_session):
    s = tiny_session
    tree = s.tree("Hello")
    choice = iv.Choice(["a", "ab"])
    (a,) = [k for k in s.expand(tree, tree.root_id, k=3, constraint=choice)
            if k.token == "a"]
    kids = s.expand(tree, a.node_id, k=5, constraint=choice)
    texts = _texts(s.tokenizer)
    raw = _raw_logprobs(s, tree.token_ids(a.node_id))
    legal = torch.tensor([t == "b" for t in texts])
    legal[0] = True  # "a" is complete: the end of sequence (id 0) is legal
    assert {k.token_id for k in kids} == set(legal.nonzero().flatten().tolist())
    assert kids[0].meta["log_legal_mass"] == pytest.approx(
        torch.logsumexp(raw[legal], -1).item(), abs=1e-4)


def test_constrained_children_are_a_branch_apart_from_the_plain_ones(tiny_session):
    s = tiny_session
    tree = s.tree("Hello")
    plain = s.expand(tree, tree.root_id, k=300)
    digits = s.expand(tree, tree.root_id, k=3, constraint=iv.Regex("[0-9]"))
    plain_of = {k.token_id: k for k in plain}
    for kid in digits:
        twin = plain_of[kid.token_id]
        assert twin.node_id != kid.node_id
        assert twin.raw_logprob == pytest.approx(kid.raw_logprob, abs=1e-5)
        assert twin.prob < kid.prob
        assert "constraint_key" not in twin.meta
    key = iv.Regex("[0-9]").key
    assert tree.meta["constraints"][key]["pattern"] == "[0-9]"
    back = iv.TokenTree.from_json(tree.to_json())
    assert len(back.nodes) == len(tree.nodes)
    assert back.node(digits[0].node_id).meta["constraint_key"] == key


def test_masks_are_computed_once_per_node_and_per_level(tiny_session):
    from inferviz.constraint_masks import tracker_for

    s = tiny_session
    c = iv.Regex(r"[a-z]{1,4}")
    res = s.generate("Hello", "bfs", k=2, depth=3, max_new_tokens=3, constraint=c)
    tracker = tracker_for(s, res.tree, c)
    # bfs expands the start and every child above depth 3 that is not an end of sequence
    levels = [n.node_id for n in res.tree.nodes.values()
              if n.is_root or n.depth < 3 and n.token_id != 0 and n.prob > 0]
    assert tracker.masks_computed == len(levels)
    expanded = {n.parent_id for n in res.tree.nodes.values() if n.parent_id is not None}
    before = tracker.masks_computed
    s.expand(res.tree, sorted(expanded), k=1, constraint=c)  # cached: no new mask
    assert tracker.masks_computed == before


@pytest.mark.parametrize("strategy,params", [
    ("greedy", {}), ("sample", {"seed": 3}), ("top_k", {"top_k": 5, "seed": 1}),
    ("beam", {"num_beams": 3}), ("smc", {"particles": 6, "seed": 2}),
    ("bfs", {"k": 2, "depth": 3}), ("threshold", {"threshold": 0.05}),
    ("contrastive", {"amateur_layer": 0}),
])
def test_every_strategy_keeps_to_a_regex(tiny_session, strategy, params):
    import regex

    res = tiny_session.generate("Hello", strategy, max_new_tokens=5,
                                constraint=iv.Regex(r"(ab|[0-9]+)"), **params)
    assert res.texts
    for text, reason in zip(res.texts, res.finish_reasons):
        if reason == "eos":
            assert re.fullmatch(r"(ab|[0-9]+)", text), text
        else:
            assert regex.fullmatch(r"(ab|[0-9]+)", text, partial=True), text
    grown = [n for n in res.tree.nodes.values() if not n.is_root]
    assert grown and all("constraint_key" in n.meta for n in grown)


def test_greedy_under_a_constraint_is_argmax_of_the_legal_tokens(tiny_session):
    s = tiny_session
    res = s.generate("Hello", "greedy", max_new_tokens=4, constraint=iv.Regex("[a-z]+"))
    texts = _texts(s.tokenizer)
    for node_id in res.path_ids():
        node = res.tree.node(node_id)
        if node.is_root:
            continue
        done = "".join(res.tree.node(i).token for i in res.path_ids()
                       if not res.tree.node(i).is_root and i < node_id)
        raw = _raw_logprobs(s, res.tree.token_ids(node.parent_id))
        legal = torch.tensor([bool(re.fullmatch("[a-z]+", done + t)) for t in texts])
        assert node.token_id == int(raw.masked_fill(~legal, -math.inf).argmax())


def test_beam_ranks_constrained_scores_and_keeps_the_raw_ones(tiny_session):
    res = tiny_session.generate("Hello", "beam", num_beams=2, max_new_tokens=3,
                                constraint=iv.Choice(["yes", "no", "maybe"]))
    tree = res.tree
    for node in tree.nodes.values():
        if node.is_root:
            continue
        assert node.meta["beam_raw_score"] == pytest.approx(node.cum_logprob, abs=1e-5)
        # constrained score = raw sum minus the log legal mass of every step
        legal_sum, walk = 0.0, node
        while not walk.is_root:
            legal_sum += walk.meta["log_legal_mass"]
            walk = tree.node(walk.parent_id)
        assert node.meta["beam_score"] == pytest.approx(node.cum_logprob - legal_sum, abs=1e-4)
    assert res.text in ("yes", "no", "maybe") or res.finish_reason != "eos"


# ------------------------------------------------------------------ bad input
def test_invalid_constraints_are_refused_naming_the_argument():
    with pytest.raises(ConstraintError, match=r"Regex\(pattern='\('\) does not compile"):
        iv.Regex("(")
    with pytest.raises(ConstraintError, match="JSONSchema.*does not compile.*minimum"):
        iv.JSONSchema({"type": "integer", "minimum": 5, "maximum": 3})
    with pytest.raises(ConstraintError, match="JSONSchema\\(schema\\) is not valid JSON"):
        iv.JSONSchema("{not json")
    with pytest.raises(ConstraintError, match="Grammar.*does not compile"):
        iv.Grammar("start: undefined_rule")
    with pytest.raises(ConstraintError, match="Choice\\(options\\) must be a non-empty list"):
        iv.Choice([])
    with pytest.raises(TypeError, match="Choice\\(options\\) must be a list of str"):
        iv.Choice("yes")
    with pytest.raises(ValueError, match="syntax='ebnf'.*valid: 'lark', 'gbnf'"):
        iv.Grammar('root ::= "a"', syntax="ebnf")


def test_a_constraint_of_the_wrong_type_is_refused_and_the_tree_unchanged(tiny_session):
    s = tiny_session
    tree = s.tree("Hello")
    with pytest.raises(TypeError, match="constraint must be iv.Regex"):
        s.expand(tree, tree.root_id, constraint="[0-9]+")
    with pytest.raises(TypeError, match="constraint must be iv.Regex"):
        s.generate(tree, "greedy", constraint={"regex": "a"})
    assert len(tree.nodes) == 1


def test_a_constraint_no_token_satisfies_ends_the_run_with_reason_constraint(tiny_session):
    s = tiny_session
    for strategy, params in [("greedy", {}), ("sample", {"seed": 0}), ("beam", {}),
                             ("smc", {"particles": 4, "seed": 0}), ("bfs", {"k": 2})]:
        res = s.generate("Hello", strategy, max_new_tokens=3,
                         constraint=iv.Regex(r"[^\s\S]"), **params)
        assert res.finish_reason == "constraint", strategy
        assert "allows no token" in res.message
        assert len(res.tree.nodes) == 1  # nothing written, the root intact
        assert res.tree.to_json()


def test_a_run_that_completes_its_constraint_stops_at_the_end_of_sequence(tiny_session):
    res = tiny_session.generate("Hello", "greedy", max_new_tokens=8, stop_at_eos=False,
                                constraint=iv.Choice(["ok"]))
    # After "ok" only the end of sequence is legal; after it nothing is: the run ends there.
    assert res.text == "ok"
    assert res.finish_reason == "constraint"
    assert res.tree.node(res.node_id).token_id == 0


def test_expanding_a_node_the_constraint_cannot_continue_raises_and_adds_nothing(
        tiny_session):
    s = tiny_session
    tree = s.tree("Hello")
    c = iv.Choice(["ok"])
    res = s.generate(tree, "greedy", max_new_tokens=5, constraint=c)
    assert res.text == "ok" and res.finish_reason == "eos"
    count = len(tree.nodes)
    with pytest.raises(ConstraintError, match="allows no token after node"):
        s.expand(tree, res.node_id, k=3, constraint=c)
    assert len(tree.nodes) == count


def test_a_grammar_that_fails_while_running_rolls_the_run_back(tiny_session):
    s = tiny_session
    tree = s.tree("Hello")
    with pytest.raises(ConstraintError, match="failed at node"):
        s.generate(tree, "greedy", max_new_tokens=4, constraint=iv.Grammar('start: "a" start'))
    assert len(tree.nodes) == 1


def test_constraint_and_intervention_together_are_refused(tiny_session):
    s = tiny_session
    tree = s.tree("Hello")
    with pytest.raises(ValueError, match="constraint and intervention together"):
        s.expand(tree, tree.root_id, constraint=iv.Regex("a"),
                 intervention=iv.Steer(layer=0, alpha=1.0, vector=torch.zeros(64)))


def test_gbnf_grammars_are_read_through_llguidance(tiny_session):
    res = tiny_session.generate("Hello", "greedy", max_new_tokens=6,
                                constraint=iv.Grammar('root ::= "yes" | "no"', syntax="gbnf"))
    assert res.text in ("yes", "no") and res.finish_reason == "eos"


def test_compare_runs_strategies_under_a_constraint_and_reports_what_it_cut(tiny_session):
    s = tiny_session
    digits = iv.Regex("[0-9]{1,3}")
    cmp = s.compare("Hello", ["greedy", {"strategy": "beam", "num_beams": 2},
                              {"strategy": "greedy", "label": "plain", "constraint": None}],
                    max_new_tokens=4, constraint=digits)
    df = cmp.to_pandas().set_index("label")
    assert re.fullmatch("[0-9]{1,3}", cmp.results["greedy"].text)
    assert df.loc["greedy", "constraint"] == digits.label
    assert df.loc["greedy", "sum_log_legal_mass"] < 0
    assert not isinstance(df.loc["plain", "constraint"], str)
    assert math.isnan(df.loc["plain", "sum_log_legal_mass"])
    with pytest.raises(TypeError, match=r"strategies\[0\]\['constraint'\] must be iv.Regex"):
        s.compare("Hello", [{"strategy": "greedy", "constraint": "[0-9]"}])


def test_each_server_dialect_says_the_constraint_in_its_own_words():
    from inferviz.backends.dialects import VLLM, LlamaCpp, SGLang

    regex, choice = iv.Regex("[0-9]+"), iv.Choice(["yes", 'say "no"'])
    schema = iv.JSONSchema({"type": "boolean"})
    gbnf = iv.Grammar('root ::= "a" | "b"', syntax="gbnf")
    assert VLLM().constraint_fields(regex) == {"structured_outputs": {"regex": "[0-9]+"}}
    assert VLLM().constraint_fields(choice) == {
        "structured_outputs": {"choice": ["yes", 'say "no"']}}
    assert SGLang().constraint_fields(schema) == {"json_schema": '{"type": "boolean"}'}
    assert SGLang().constraint_fields(choice)["regex"] == choice.regex()
    assert SGLang().constraint_fields(gbnf) == {"ebnf": gbnf.text}
    assert LlamaCpp().constraint_fields(schema) == {"json_schema": {"type": "boolean"}}
    assert LlamaCpp().constraint_fields(choice) == {"grammar": 'root ::= "yes" | "say \\"no\\""'}
    assert LlamaCpp().constraint_fields(gbnf) == {"grammar": gbnf.text}
    with pytest.raises(iv.ServerLacks, match="not a regex"):
        LlamaCpp().constraint_fields(regex)
    with pytest.raises(iv.ServerLacks, match="not Lark"):
        SGLang().constraint_fields(iv.Grammar('start: "a"'))


def test_a_local_session_refuses_server_side_constraints_clearly(tiny_session):
    tree = tiny_session.tree("Hello")
    with pytest.raises(iv.ServerLacks, match="this session is local"):
        tiny_session.generate(tree, "greedy", server_side=True, constraint=iv.Regex("a"))
    assert len(tree.nodes) == 1
