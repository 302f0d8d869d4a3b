"""Fuzz: random trees round-trip exactly; randomly damaged tree files are either refused with a
ValueError naming the field, or load into a tree that works (paths, DataFrame, JSON, a further
expansion by a tiny model). Every load runs under a timeout: a hang fails the test."""

from __future__ import annotations

import copy
import functools
import json
import re
import threading

from fuzz_stats import STATS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tree_strategies import same, trees

from inferviz.tree import TokenTree
from inferviz.tree_schema import NODE_FIELDS, TOP_FIELDS

TIMEOUT_S = 20
VOCAB = 97  # tests/tiny_models.py
FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# A refusal must say what was wrong: a field, or that it is not a tree / not JSON at all.
NAMES_THE_PROBLEM = re.compile(
    r"field '|not an inferviz tree|schema version|not valid JSON|exactly one root|"
    r"a node must be an object|unknown field|missing field")

garbage = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 2**70), st.floats(allow_nan=True,
                                                                allow_infinity=True),
    st.text(max_size=8), st.sampled_from(["nan", "inf", "-inf", "0a", "zz", "", "7"]),
    st.lists(st.integers(-1, 5), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(-1, 5), max_size=2))


@functools.cache
def tiny():
    from tiny_models import tiny_session

    return tiny_session("llama", kv_budget_tokens=4096)


def run_with_timeout(fn):
    """``fn()`` in a thread; a hang is counted and fails the test instead of blocking it."""
    out: dict = {}

    def target():
        try:
            out["value"] = fn()
        except BaseException as exc:  # re-raised in the test's thread
            out["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(TIMEOUT_S)
    if thread.is_alive():
        STATS["hangs"] += 1
        raise AssertionError(f"hang: no answer in {TIMEOUT_S} s")
    if "error" in out:
        raise out["error"]
    return out.get("value")


# ------------------------------------------------------------------ round trip
@FUZZ
@given(trees())
def test_random_trees_round_trip_exactly_through_json(tree):
    STATS["round_trip"] += 1
    text = tree.to_json()
    back = run_with_timeout(lambda: TokenTree.from_json(text))
    assert back.to_json() == text and back._next_id == tree._next_id
    for node_id, node in tree.nodes.items():
        other = back.nodes[node_id]
        for name in NODE_FIELDS + ("children",):
            assert same(getattr(node, name), getattr(other, name)), name


# ------------------------------------------------------------------ mutations
MUTATIONS = ("delete_field", "retype_field", "shift_int", "duplicate_node", "cycle", "reorder",
             "next_id", "delete_node", "reparent", "garbage_text",
             # well-formed but inconsistent: refused at load, or (prompt) on first use
             "relabel", "cum_logprob", "prompt_text", "deep_meta",
             # damages a file survives: they must load into a tree that works
             "reorder", "next_id_up", "delete_leaf", "foreign_token")


def mutate(data: dict, draw) -> str:
    """Apply one to three random damages to a tree dict; return the JSON text to load."""
    text = None
    for _ in range(draw(st.integers(0, 3))):
        nodes = data.get("nodes") if isinstance(data.get("nodes"), list) else []
        kind = draw(st.sampled_from(MUTATIONS))
        node = draw(st.sampled_from(nodes)) if nodes else None
        node = node if isinstance(node, dict) else None
        if kind in ("delete_field", "retype_field"):
            target = node if node is not None and draw(st.booleans()) else data
            fields = NODE_FIELDS if target is node else TOP_FIELDS
            name = draw(st.sampled_from(fields))
            if kind == "delete_field":
                target.pop(name, None)
            else:
                target[name] = draw(garbage)
        elif kind == "shift_int" and node is not None:
            name = draw(st.sampled_from(("node_id", "parent_id", "depth", "token_id", "rank")))
            if isinstance(node.get(name), int):
                node[name] += draw(st.integers(-3, 3))
        elif kind == "duplicate_node" and node is not None:
            twin = copy.deepcopy(node)
            if draw(st.booleans()):
                twin["node_id"] = draw(st.integers(0, len(nodes) + 2))
            nodes.append(twin)
        elif kind == "cycle" and node is not None:
            ids = [n.get("node_id") for n in nodes if isinstance(n, dict)]
            node["parent_id"] = draw(st.sampled_from([node.get("node_id")] + ids))
        elif kind == "reorder" and nodes:
            data["nodes"] = draw(st.permutations(nodes))
        elif kind == "next_id":
            data["next_id"] = draw(st.integers(-2, len(nodes) + 2))
        elif kind == "next_id_up":
            data["next_id"] = len(nodes) + draw(st.integers(0, 5))
        elif kind == "delete_leaf" and len(nodes) > 1:
            parents = {n.get("parent_id") for n in nodes if isinstance(n, dict)}
            leaves = [n for n in nodes if isinstance(n, dict) and n.get("node_id") not in parents]
            if leaves:
                nodes.remove(draw(st.sampled_from(leaves)))
        elif kind == "foreign_token":
            if node is not None and node.get("parent_id") is not None:
                node["token_id"] = draw(st.integers(0, 2 * VOCAB))
            elif isinstance(data.get("prompt_ids"), list) and data["prompt_ids"]:
                data["prompt_ids"][0] = draw(st.integers(0, 2 * VOCAB))
        elif kind == "relabel" and node is not None:
            node["token"] = draw(st.sampled_from(["<script>", "", " a", "<0xBD>"]))
        elif kind == "cum_logprob" and node is not None and node.get("parent_id") is not None:
            if isinstance(node.get("cum_logprob"), (int, float)):
                node["cum_logprob"] -= draw(st.sampled_from([1e-9, 0.01, 1.0]))
        elif kind == "prompt_text":
            prompt = draw(st.text(min_size=1, max_size=6))
            data["prompt"] = prompt
            for root in nodes:  # keep the root's text and bytes the prompt's: a consistent
                if isinstance(root, dict) and root.get("parent_id") is None:  # file that lies
                    root["token"], root["token_bytes"] = prompt, prompt.encode().hex()
        elif kind == "deep_meta" and node is not None:
            deep: dict = {}
            for _ in range(draw(st.integers(60, 200))):
                deep = {"x": deep}
            node["meta"] = deep
        elif kind == "delete_node" and nodes:
            nodes.remove(draw(st.sampled_from(nodes)))
        elif kind == "reparent" and node is not None:
            node["parent_id"] = draw(st.integers(-1, len(nodes) + 1))
        elif kind == "garbage_text":
            full = json.dumps(data)
            text = draw(st.one_of(st.just(full[: draw(st.integers(0, len(full)))]),
                                  st.text(max_size=40)))
    return text if text is not None else json.dumps(data)  # NaN literals allowed on purpose


def reachable_from_root(tree: TokenTree) -> int:
    seen, todo = set(), [tree.root_id]
    while todo:
        node_id = todo.pop()
        if node_id in seen:
            continue
        seen.add(node_id)
        todo.extend(tree.nodes[node_id].children.values())
    return len(seen)


def load_and_use(text: str, pick: int) -> str:
    """Load ``text``; if it loads, use the tree every way a user would. Returns the outcome."""
    try:
        tree = TokenTree.from_json(text)
    except ValueError as exc:
        assert NAMES_THE_PROBLEM.search(str(exc)), f"refusal does not name the field: {exc}"
        return "refused"
    listed = len(json.loads(text)["nodes"])
    lost = listed - len(tree) + (len(tree) - reachable_from_root(tree))
    STATS["nodes_lost"] += lost
    assert lost == 0, f"{lost} nodes of the file are missing from the tree or unreachable"
    for node_id, node in tree.nodes.items():
        path = tree.path(node_id)
        assert path[0].node_id == tree.root_id and len(path) == node.depth + 1
        assert len(tree.token_ids(node_id)) == len(tree.prompt_ids) + node.depth
    assert len(tree.to_pandas()) == len(tree)
    assert TokenTree.from_json(tree.to_json()).to_json() == tree.to_json()
    before = {i: (n.parent_id, n.token_id) for i, n in tree.nodes.items()}
    node_id = sorted(tree.nodes)[pick % len(tree)]
    try:
        kids = tiny().expand(tree, node_id, k=2)
    except ValueError as exc:  # a token id this model does not have, or prompt_ids that are
        # not the prompt: refused on first use
        assert re.search(r"field 'token_id' .* outside the vocabulary|prompt_ids\[\d+\] is "
                         r"token id .* outside the vocabulary|prompt_ids are not its prompt",
                         str(exc)), str(exc)
        assert {i: (n.parent_id, n.token_id) for i, n in tree.nodes.items()} == before
        return "use_refused"
    assert all(k.parent_id == node_id for k in kids)
    for i, old in before.items():  # nothing overwritten: new ids come after every old one
        assert (tree.nodes[i].parent_id, tree.nodes[i].token_id) == old
    assert len(tree) == len(before) + len({k.node_id for k in kids} - set(before))
    return "loaded"


def with_tokenizer_prompt(data: dict) -> dict:
    """The tree dict with its prompt replaced by what its prompt_ids decode to under the tiny
    model's tokenizer, so an undamaged file passes the prompt check on first use."""
    prompt = tiny().tokenizer.decode(data["prompt_ids"], skip_special_tokens=True)
    data["prompt"] = prompt
    data["nodes"][0].update(token=prompt, token_bytes=prompt.encode().hex())  # the root
    return data


@FUZZ
@given(trees(max_children=8, max_token_id=VOCAB - 1), st.data())
def test_damaged_tree_files_are_refused_naming_the_field_or_load_into_a_working_tree(
        tree, data):
    text = mutate(with_tokenizer_prompt(tree.to_dict()), data.draw)
    pick = data.draw(st.integers(0, 1000))
    STATS["file_cases"] += 1
    outcome = run_with_timeout(lambda: load_and_use(text, pick))
    STATS["file_refused" if outcome == "refused" else "file_loaded"] += 1
    STATS["use_refused"] += outcome == "use_refused"
