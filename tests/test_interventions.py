"""Interventions as branches (inferviz/interventions.py, backends/intervened.py): an intervened
node's distribution equals a full forward of its path under an independently written hook; the
plain branch is bit-identical before and after an intervened sibling is grown (no KV shared);
alpha = 0 reproduces the plain branch; every intervened node records its intervention and its
KL divergence from the plain distribution; bad input is refused naming the argument, with the
tree unchanged."""

from __future__ import annotations

import math

import pytest
import torch
from tiny_models import tiny_session

from inferviz.interventions import Ablate, Patch, Steer
from inferviz.tree import TokenTree

FAMILIES = ("llama", "qwen2", "gpt2")  # padded rows (gpt2, llama) and packed tree attention


@pytest.fixture(scope="module", params=FAMILIES)
def session(request):
    return tiny_session(request.param)


def grown(session, prompt="t5 t17 t30"):
    tree = session.tree(prompt)
    kids = session.expand(tree, tree.root_id, k=3)
    session.expand(tree, kids[0].node_id, k=2)
    return tree, kids


def vector(session, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(session.adapter.hidden_size, generator=gen)


# ------------------------------------------------------------------ independent references
def full_forward(session, ids, layer_hook=None, layer=None, pre_hook=None, module=None):
    """Last-position log-probabilities of one full forward of ``ids`` (no cache), with a hook
    written here, on its own: a forward hook on decoder layer ``layer`` or a pre-hook on
    ``module``, each given the absolute positions 0..T-1."""
    handles = []
    positions = torch.arange(len(ids))
    if layer_hook is not None:
        def hook(_m, args, output):
            hidden = output if torch.is_tensor(output) else output[0]
            new = layer_hook(hidden, positions, args)
            return new if torch.is_tensor(output) else (new, *output[1:])
        handles.append(session.adapter.layers[layer].register_forward_hook(hook))
    if pre_hook is not None:
        handles.append(module.register_forward_pre_hook(
            lambda _m, args: (pre_hook(args[0], positions), *args[1:])))
    try:
        with torch.no_grad():
            logits = session.model(input_ids=torch.tensor([ids]), use_cache=False).logits
    finally:
        for h in handles:
            h.remove()
    return torch.log_softmax(logits[0, -1].float(), -1)


def steered_reference(session, ids, layer, v, alpha, start):
    def add(hidden, positions, _args):
        out = hidden.clone()
        out[0, start:] += alpha * v
        return out
    return full_forward(session, ids, add, layer)


# ------------------------------------------------------------------ equal to a full forward
def test_a_steered_node_equals_a_full_forward_of_its_path_with_the_same_hook(session):
    tree, kids = grown(session)
    v = vector(session)
    iv = Steer(layer=1, alpha=3.0, vector=v)
    branch = session.expand(tree, kids[0].node_id, k=2, intervention=iv)
    # The steered child's own distribution (a node of the intervened branch, deeper down).
    got = session.distributions(tree, [branch[0].node_id], intervention=iv).logprobs[0]
    ids = tree.token_ids(branch[0].node_id)
    start = len(tree.token_ids(kids[0].node_id)) - 1  # the branch grew from kids[0]
    # under the intervention started at kids[0], the child's forward steers from `start`, but
    # distributions() of a node starts at the node itself: use the node's own start
    own_start = len(ids) - 1
    want = steered_reference(session, ids, 1, v, 3.0, own_start)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # and the children recorded by expand are those of the forward steered from `start`
    want_children = steered_reference(session, tree.token_ids(kids[0].node_id), 1, v, 3.0,
                                      start)
    for child in branch:
        assert child.raw_logprob == pytest.approx(float(want_children[child.token_id]),
                                                  abs=1e-5)


def test_a_greedy_run_under_steering_equals_step_by_step_full_forwards(session):
    tree, kids = grown(session)
    v = vector(session, 1)
    iv = Steer(layer=0, alpha=4.0, vector=v)
    result = session.generate(tree, "greedy", max_new_tokens=4, start_id=kids[1].node_id,
                              intervention=iv)
    start = len(tree.token_ids(kids[1].node_id)) - 1
    path = tree.path(result.leaf_ids[0])
    steps = [n for n in path if n.depth > kids[1].depth]
    assert len(steps) == 4
    for node in steps:
        want = steered_reference(session, tree.token_ids(node.parent_id), 0, v, 4.0, start)
        assert node.token_id == int(want.argmax())
        assert node.raw_logprob == pytest.approx(float(want[node.token_id]), abs=1e-5)
        assert node.meta["intervention"] == iv.label
        assert node.meta["intervention_key"] == iv.key


def test_head_ablation_equals_a_full_forward_that_zeroes_the_heads(session):
    tree, kids = grown(session)
    heads = [0, 1]
    iv = Ablate(layer=1, heads=heads)
    node = kids[2].node_id
    got = session.distributions(tree, [node], intervention=iv).logprobs[0]
    ids = tree.token_ids(node)
    start = len(ids) - 1
    n_heads = session.adapter.num_heads

    def zero_heads(x, positions):
        out = x.clone().view(*x.shape[:-1], n_heads, -1)
        out[0, start:, heads] = 0
        return out.view_as(x)
    want = full_forward(session, ids, pre_hook=zero_heads,
                        module=session.adapter.attention_out(1))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_neuron_ablation_and_whole_layer_ablation_equal_full_forwards(session):
    tree, kids = grown(session)
    node = kids[0].node_id
    ids = tree.token_ids(node)
    start = len(ids) - 1
    neurons = [0, 3, 9]

    def zero_neurons(x, positions):
        out = x.clone()
        out[0, start:, neurons] = 0
        return out
    got = session.distributions(tree, [node], intervention=Ablate(layer=0, neurons=neurons))
    want = full_forward(session, ids, pre_hook=zero_neurons,
                        module=session.adapter.mlp_down(0))
    torch.testing.assert_close(got.logprobs[0], want, rtol=1e-5, atol=1e-5)

    def skip_layer(hidden, positions, args):
        out = hidden.clone()
        out[0, start:] = args[0][0, start:]
        return out
    got = session.distributions(tree, [node], intervention=Ablate(layer=1, whole_layer=True))
    want = full_forward(session, ids, skip_layer, 1)
    torch.testing.assert_close(got.logprobs[0], want, rtol=1e-5, atol=1e-5)


def test_activation_patching_equals_a_full_forward_with_the_source_residual():
    s = tiny_session("llama")
    tree = s.tree("t5 t6 t7 t8")
    node = s.expand(tree, tree.root_id, k=1)[0].node_id
    source = "t40 t41 t42 t43"
    assert s.encode(source) != s.encode("t5 t6 t7 t8")  # a patch that changes something
    with torch.no_grad():
        states = s.model(input_ids=torch.tensor([s.encode(source)]),
                         output_hidden_states=True).hidden_states
    value = states[1][0, 2]  # leaving layer 0, position 2

    def patch(hidden, positions, _args):
        out = hidden.clone()
        out[0, 2] = value
        return out
    got = s.distributions(tree, [node], intervention=Patch(layer=0, position=2, source=source))
    want = full_forward(s, tree.token_ids(node), patch, 0)
    torch.testing.assert_close(got.logprobs[0], want, rtol=1e-5, atol=1e-5)
    plain = s.distributions(tree, [node]).logprobs[0]
    assert (plain - want).abs().max() > 1e-3  # the patch mattered


# ------------------------------------------------------------------ no KV between branches
def test_the_plain_branch_is_bit_identical_before_and_after_an_intervened_sibling(session):
    tree, kids = grown(session)
    nodes = [kids[0].node_id, kids[1].node_id]
    before = session.distributions(tree, nodes).logits.clone()
    iv = Steer(layer=1, alpha=10.0, vector=vector(session, 2))
    session.generate(tree, "greedy", max_new_tokens=3, start_id=kids[0].node_id,
                     intervention=iv)
    session.expand(tree, nodes, k=2, intervention=iv)
    after = session.distributions(tree, nodes).logits
    assert torch.equal(before, after)
    # and from a cold plain cache: the plain numbers are those of a full plain forward
    session.engine.clear_cache()
    for node in nodes:
        want = full_forward(session, tree.token_ids(node))
        got = session.distributions(tree, [node]).logprobs[0]
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_zero_strength_steering_reproduces_the_plain_branch(session):
    tree = session.tree("t5 t17 t30")
    plain = session.generate(tree, "greedy", max_new_tokens=5)
    iv = Steer(layer=1, alpha=0.0, vector=vector(session, 3))
    steered = session.generate(tree, "greedy", max_new_tokens=5, intervention=iv)
    assert steered.token_ids == plain.token_ids
    for a, b in zip(tree.path(plain.leaf_ids[0])[1:], tree.path(steered.leaf_ids[0])[1:]):
        assert a.node_id != b.node_id  # two branches, side by side
        assert a.raw_logprob == pytest.approx(b.raw_logprob, abs=1e-5)
        assert b.meta["kl"] == pytest.approx(0.0, abs=1e-5)
        assert b.meta["top5_overlap"] == 5


# ------------------------------------------------------------------ what the tree records
def test_intervened_children_are_siblings_of_the_plain_ones_with_their_divergence():
    s = tiny_session("llama")
    tree = s.tree("t5 t17 t30")
    plain = s.expand(tree, tree.root_id, k=4)
    iv = Steer(layer=1, alpha=6.0, vector=vector(s, 4))
    steered = s.expand(tree, tree.root_id, k=4, intervention=iv)
    assert len(tree.children(tree.root_id)) == 8  # the same token twice is two siblings
    assert {c.node_id for c in plain}.isdisjoint(c.node_id for c in steered)
    plain_lp = s.distributions(tree, [tree.root_id]).logprobs[0]
    steered_lp = s.distributions(tree, [tree.root_id], intervention=iv).logprobs[0]
    kl = float((steered_lp.exp() * (steered_lp - plain_lp)).sum())
    assert kl > 1e-4
    for child in steered:
        assert child.meta["intervention"] == "steer L1 α=6"
        assert child.meta["kl"] == pytest.approx(kl, rel=1e-4)
        assert child.meta["plain_logprob"] == pytest.approx(float(plain_lp[child.token_id]),
                                                            abs=1e-5)
        assert 0 <= child.meta["top5_overlap"] <= 5
    for child in plain:
        assert "intervention" not in child.meta
    # expanding again merges into the same nodes (no duplicates), plain and steered alike
    s.expand(tree, tree.root_id, k=4, intervention=iv)
    s.expand(tree, tree.root_id, k=4)
    assert len(tree.children(tree.root_id)) == 8
    # the tree says what the intervention was, and survives a save and load
    assert tree.meta["interventions"][iv.key]["layer"] == 1
    loaded = TokenTree.from_json(tree.to_json())
    assert len(loaded.children(loaded.root_id)) == 8
    df = tree.to_pandas()
    assert set(df.loc[df.node_id.isin([c.node_id for c in steered]), "intervention"]) == {
        iv.label}


def test_steering_from_two_prompts_builds_the_actadd_vector():
    s = tiny_session("llama")
    iv = Steer(layer=1, alpha=2.0, positive="t10 t11", negative="t20 t21")
    bound = iv.bind(s)
    assert s.encode("t10 t11")[0] == s.tokenizer.bos_token_id  # already after a BOS
    with torch.no_grad():
        pos = s.model(input_ids=torch.tensor([s.encode("t10 t11")]),
                      output_hidden_states=True).hidden_states[2][0, -1]
        neg = s.model(input_ids=torch.tensor([s.encode("t20 t21")]),
                      output_hidden_states=True).hidden_states[2][0, -1]
    torch.testing.assert_close(bound.vector, pos - neg)


def test_a_failed_run_under_an_intervention_leaves_the_tree_unchanged():
    s = tiny_session("llama")
    tree = s.tree("t5 t17 t30")
    s.expand(tree, tree.root_id, k=2)
    before = tree.to_json()
    iv = Steer(layer=1, alpha=1.0, vector=vector(s))

    def boom(_result):
        raise RuntimeError("callback failed")
    with pytest.raises(RuntimeError, match="callback failed"):
        s.generate(tree, "greedy", max_new_tokens=3, intervention=iv, on_step=boom)
    assert tree.to_json() == before


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("iv, message", [
    (Steer(layer=99, vector=[0.0]), r"layer must be in \[0, 1\]; got 99"),
    (Steer(layer=-1, vector=[0.0]), r"layer must be in \[0, 1\]; got -1"),
    (Steer(layer=0, alpha=math.nan, vector=[0.0] * 64), r"alpha must be a finite number"),
    (Steer(layer=0, alpha=1.0, vector=[1.0, 2.0]), r"vector must have the residual stream's "
                                                   r"size 64"),
    (Steer(layer=0, vector=[math.inf] * 64), r"vector holds NaN or infinite"),
    (Steer(layer=0), r"Steer needs vector="),
    (Steer(layer=0, vector=[0.0] * 64, positive="a", negative="b"), r"not both"),
    (Ablate(layer=0, heads=[7]), r"heads: 7 is not one of the model's 4 attention heads"),
    (Ablate(layer=0, neurons=[10_000]), r"neurons: 10000 is not one of layer 0's 128 MLP"),
    (Ablate(layer=0, heads=[1, 1]), r"heads lists an index twice"),
    (Ablate(layer=0), r"Ablate needs something to ablate"),
    (Ablate(layer=0, heads=[0], mode="median"), r"mode must be one of 'zero', 'mean'"),
    (Ablate(layer=0, heads=[0], mode="mean"), r"reference must be a non-empty str"),
    (Patch(layer=0, position=50, source="t5 t6"), r"position must be in \[0, "),
    (Patch(layer=0, position=0, source=""), r"source must be a non-empty str"),
])
def test_bad_interventions_are_refused_naming_the_argument_with_the_tree_unchanged(iv,
                                                                                  message):
    s = tiny_session("llama")
    tree = s.tree("t5 t17 t30")
    s.expand(tree, tree.root_id, k=2)
    before = tree.to_json()
    with pytest.raises((ValueError, TypeError), match=message):
        s.expand(tree, tree.root_id, k=2, intervention=iv)
    with pytest.raises((ValueError, TypeError), match=message):
        s.generate(tree, "greedy", max_new_tokens=2, intervention=iv)
    assert tree.to_json() == before


def test_not_an_intervention_and_unsupported_strategies_are_refused():
    s = tiny_session("llama")
    tree = s.tree("t5 t17 t30")
    with pytest.raises(TypeError, match="intervention must be an inferviz Steer, Ablate or "
                                        "Patch; got dict"):
        s.expand(tree, tree.root_id, intervention={"layer": 1})
    iv = Steer(layer=0, vector=[0.0] * 64)
    with pytest.raises(ValueError, match="strategy 'contrastive' cannot run under an "
                                         "intervention"):
        s.generate(tree, "contrastive", intervention=iv)
    with pytest.raises(ValueError, match="server_side=True cannot run under an intervention"):
        s.generate(tree, "greedy", server_side=True, intervention=iv)
    assert len(tree) == 1


def test_a_remote_session_refuses_interventions_naming_what_the_server_lacks():
    from fake_server import FakeServer
    from tiny_models import tiny_model, tiny_tokenizer

    from inferviz import Session
    from inferviz.backends import ServerLacks

    tokenizer = tiny_tokenizer()
    with FakeServer(tiny_model("llama"), tokenizer) as server:
        s = Session.connect(server.url, tokenizer=tokenizer)
        tree = s.tree("t5 t17 t30")
        with pytest.raises(ServerLacks, match="returns only log-probabilities .* load the "
                                              "model locally"):
            s.expand(tree, tree.root_id, k=2, intervention=Steer(layer=0, vector=[0.0]))
        assert len(tree) == 1


def test_an_intervened_node_cannot_change_branch():
    s = tiny_session("llama")
    tree = s.tree("t5 t17 t30")
    iv = Steer(layer=0, alpha=1.0, vector=vector(s))
    child = s.expand(tree, tree.root_id, k=1, intervention=iv)[0]
    with pytest.raises(ValueError, match="intervention_key' says which branch"):
        tree.update_meta(child.node_id, {"intervention_key": "other"})


# ------------------------------------------------------------------ the default model
@pytest.mark.model
def test_the_steering_vector_of_a_model_without_bos_is_read_after_a_sink_token(
        default_session):
    s = default_session  # SmolLM2 names a BOS but adds none: "Love" would be the sink
    assert s.encode("Love")[0] != s.tokenizer.bos_token_id
    bound = Steer(layer=10, alpha=1.0, positive="Love", negative="Hate").bind(s)
    eos = s.tokenizer.bos_token_id
    with torch.no_grad():
        def last(text):
            ids = [eos, *s.encode(text)]
            return s.model(input_ids=torch.tensor([ids]),
                           output_hidden_states=True).hidden_states[11][0, -1]
        torch.testing.assert_close(bound.vector, last("Love") - last("Hate"))
        typical = s.model(input_ids=torch.tensor([s.encode("I think that you are")]),
                          output_hidden_states=True).hidden_states[11][0, 1:].norm(dim=-1)
    assert float(bound.vector.norm()) < 5 * float(typical.max())  # not the sink's 10^4


@pytest.mark.model
def test_actadd_steering_moves_the_default_models_next_token(default_session):
    s = default_session
    tree = s.tree("I think that you are")
    plain = s.expand(tree, tree.root_id, k=5)
    iv = Steer(layer=6, alpha=0.5, positive="Love", negative="Hate", from_position=0)
    steered = s.expand(tree, tree.root_id, k=5, intervention=iv)
    kl = steered[0].meta["kl"]
    assert kl > 0.05, kl  # a real change of the distribution
    ids = tree.token_ids(tree.root_id)
    bound = s._bound_interventions[iv.key]

    def add(hidden, positions, _args):
        return hidden + 0.5 * bound.vector.to(hidden.dtype)
    want = full_forward(s, ids, add, 6)
    for child in steered:
        assert child.raw_logprob == pytest.approx(float(want[child.token_id]), abs=1e-4)
    assert [c.token_id for c in plain] != [c.token_id for c in steered] or kl > 0.05


# ------------------------------------------------------------------ compare
def test_compare_takes_interventions_as_strategies_side_by_side_with_their_divergence():
    import pandas as pd

    s = tiny_session("llama")
    steer = Steer(layer=1, alpha=8.0, vector=vector(s, 5))
    cmp = s.compare("t5 t17 t30", ["greedy", steer,
                                   {"strategy": "greedy", "label": "ablated",
                                    "intervention": Ablate(layer=1, whole_layer=True)}],
                    max_new_tokens=4)
    assert cmp.labels == ["greedy", steer.label, "ablated"]
    df = cmp.to_pandas()
    plain, steered, ablated = df.to_dict("records")
    assert pd.isna(plain["intervention"]) and math.isnan(plain["mean_kl"]), plain
    assert steered["intervention"] == steer.label and steered["mean_kl"] > 0
    assert ablated["intervention"].startswith("zero-ablate L1 layer")
    # the steered path's KL column is the mean of its nodes' kl
    kls = [cmp.tree.node(i).meta["kl"] for i in cmp.path_ids(steer.label)]
    assert steered["mean_kl"] == pytest.approx(sum(kls) / len(kls))
    # the intervened run equals generate(..., intervention=...) on a fresh tree
    alone = s.generate("t5 t17 t30", "greedy", max_new_tokens=4, intervention=steer)
    assert alone.token_ids == cmp.results[steer.label].token_ids
    assert "mean KL vs plain" in cmp._repr_html_()
    with pytest.raises(TypeError, match=r"strategies\[1\]: intervention must be an inferviz"):
        s.compare("t5", ["greedy", {"strategy": "greedy", "intervention": "steer"}])


def test_the_plain_prefix_before_the_intervention_is_reused_not_recomputed(session):
    prompt = " ".join(f"t{i}" for i in range(3, 43))  # 41 tokens with the BOS
    tree = session.tree(prompt)
    kids = session.expand(tree, tree.root_id, k=2)  # the plain cache holds the prompt
    iv = Steer(layer=1, alpha=2.0, vector=vector(session, 6))
    before = session.engine.stats.tokens_computed
    result = session.generate(tree, "greedy", max_new_tokens=3, start_id=kids[0].node_id,
                              intervention=iv)
    backend = session._intervention_backends[(iv.key, len(tree.prompt_ids))]
    # the prompt came from the plain cache; computed under the hooks: the branch's start
    # token and what the branch generated
    assert backend.tokens_copied == len(tree.prompt_ids)
    assert backend.engine.stats.tokens_computed <= 1 + 3
    # the plain forwards of the same steps (for the KL) computed only the new tokens too
    assert session.engine.stats.tokens_computed - before <= 3
    # and the numbers are still those of a full forward with the hook from the branch start
    start = len(tree.token_ids(kids[0].node_id)) - 1
    last = tree.node(result.leaf_ids[0])
    want = steered_reference(session, tree.token_ids(last.parent_id), 1, iv.bind(session).vector,
                             2.0, start)
    assert last.raw_logprob == pytest.approx(float(want[last.token_id]), abs=1e-5)
