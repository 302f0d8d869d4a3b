"""Attribution of a node's token to its context (s.attribute): the numbers against independent
computations (autograd, output_attentions, inseq), integrated-gradients completeness,
contrast, caching, the remote refusal, bad input, and the view."""

from __future__ import annotations

import copy
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from fake_server import FakeServer
from tiny_models import FAMILIES, VOCAB, tiny_model, tiny_session, tiny_tokenizer

import inferviz as iv
from inferviz.attribution import AttributionResult, cached
from inferviz.backends import ServerLacks

PROMPT = "t5 t17 t20 t31 t8"
DEFAULT_PROMPTS = ("The capital of France is", "My favourite colour is",
                   "Once upon a time, there was a")


def grown(session, prompt=PROMPT, depth=3, k=2):
    """A tree with ``k`` children at each level along the most likely path; returns
    (tree, deepest node on that path)."""
    tree = session.tree(prompt)
    node_id = tree.root_id
    for _ in range(depth):
        node_id = session.expand(tree, node_id, k=k)[0].node_id
    return tree, tree.node(node_id)


def autograd_input_x_gradient(model, ids, token_id):
    """Input x gradient written out with torch.autograd, summed over the embedding."""
    embeds = model.get_input_embeddings()(torch.tensor([ids])).detach().requires_grad_(True)
    logits = model(inputs_embeds=embeds, use_cache=False).logits[0, -1].float()
    target = torch.log_softmax(logits, dim=-1)[token_id]
    (grad,) = torch.autograd.grad(target, embeds)
    return (grad * embeds).sum(-1)[0].detach().numpy()


def count_forwards(model):
    calls = []
    handle = model.register_forward_pre_hook(lambda *_: calls.append(1))
    return calls, handle


@pytest.fixture(scope="module")
def llama():
    return tiny_session("llama")


# ------------------------------------------------------------------ results
def test_result_has_one_score_per_context_token(llama):
    tree, node = grown(llama)
    res = llama.attribute(tree, node.node_id)
    context = tree.token_ids(node.parent_id)
    assert isinstance(res, AttributionResult) and res.input_ids == context
    assert res.scores.shape == res.scores_l2.shape == (len(context),)
    prompt_len = len(tree.prompt_ids)
    path_ids = [n.node_id for n in tree.path(node.parent_id)[1:]]
    assert res.context_node_ids == [None] * prompt_len + path_ids
    assert res.prompt_length == prompt_len and res.token_id == node.token_id


def test_to_pandas_has_the_documented_columns(llama):
    tree, node = grown(llama)
    res = llama.attribute(tree, node.node_id, method="integrated_gradients", steps=8)
    df = res.to_pandas()
    assert list(df.columns) == [
        "node_id", "position", "context_node_id", "in_prompt", "token_id", "token", "score",
        "score_l2", "method", "target_token_id", "target_token", "target",
        "contrast_token_id", "contrast_token", "steps", "baseline", "keep_first"]
    assert len(df) == len(res.input_ids) and df["position"].tolist() == list(range(len(df)))
    assert df["in_prompt"].sum() == len(tree.prompt_ids)
    assert df["context_node_id"].isna().sum() == len(tree.prompt_ids)
    assert df["score"].tolist() == pytest.approx(res.scores.tolist())
    assert (df["steps"] == 8).all() and (df["baseline"] == "pad").all()
    assert df["contrast_token_id"].isna().all()


@pytest.mark.parametrize("family", FAMILIES)
def test_target_is_the_nodes_raw_logprob_on_every_family(family):
    session = tiny_session(family)
    tree, node = grown(session, depth=2)
    for method in ("input_x_gradient", "attention"):
        res = session.attribute(tree, node.node_id, method=method)
        assert res.target == pytest.approx(node.raw_logprob, abs=1e-4)


@pytest.mark.parametrize("family", FAMILIES)
def test_input_x_gradient_equals_autograd_on_every_family(family):
    session = tiny_session(family)
    tree, node = grown(session, depth=2)
    res = session.attribute(tree, node.node_id, method="input_x_gradient")
    expected = autograd_input_x_gradient(session.model, res.input_ids, node.token_id)
    np.testing.assert_allclose(res.scores, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
def test_attention_methods_match_output_attentions_on_every_family(family):
    session = tiny_session(family)
    tree, node = grown(session, depth=2)
    last = session.attribute(tree, node.node_id, method="attention")
    rollout = session.attribute(tree, node.node_id, method="attention_rollout")
    assert session.model.config._attn_implementation == "sdpa"  # restored after
    model = copy.deepcopy(session.model)
    model.set_attn_implementation("eager")
    with torch.no_grad():
        out = model(input_ids=torch.tensor([last.input_ids]), output_attentions=True)
    means = [a[0].mean(0) for a in out.attentions]  # [P, P] per layer
    np.testing.assert_allclose(last.scores, means[-1][-1].numpy(), rtol=1e-5, atol=1e-7)
    eye = torch.eye(len(last.input_ids))
    product = eye
    for mean in means:  # Abnar & Zuidema: 0.5 A + 0.5 I, renormalised, first layer first
        mixed = 0.5 * mean + 0.5 * eye
        product = (mixed / mixed.sum(-1, keepdim=True)) @ product
    np.testing.assert_allclose(rollout.scores, product[-1].numpy(), rtol=1e-5, atol=1e-7)
    assert rollout.scores.sum() == pytest.approx(1.0, abs=1e-5)


def test_contrastive_attribution_is_the_difference_of_the_two_targets(llama):
    tree, node = grown(llama)
    sibling = [n for n in tree.children(node.parent_id) if n.node_id != node.node_id][0]
    for method, kw in (("input_x_gradient", {}), ("integrated_gradients", {"steps": 16})):
        own = llama.attribute(tree, node.node_id, method=method, **kw)
        other = llama.attribute(tree, sibling.node_id, method=method, **kw)
        both = llama.attribute(tree, node.node_id, method=method, contrast=sibling.node_id, **kw)
        np.testing.assert_allclose(both.scores, own.scores - other.scores, rtol=1e-4,
                                   atol=1e-5)
        assert both.target == pytest.approx(own.target - other.target, abs=1e-5)
        assert both.contrast_token_id == sibling.token_id


def test_contrast_by_sibling_token_text_or_token_id_is_the_same_attribution(llama):
    tree, node = grown(llama)
    sibling = [n for n in tree.children(node.parent_id) if n.node_id != node.node_id][0]
    by_node = llama.attribute(tree, node.node_id, contrast=sibling.node_id)
    assert llama.attribute(tree, node.node_id, contrast=sibling.token) is by_node
    assert llama.attribute(tree, node.node_id, contrast_token_id=sibling.token_id) is by_node


# ------------------------------------------------------------------ caching
def test_second_call_returns_the_cached_result_without_a_forward(llama):
    tree, node = grown(llama)
    first = llama.attribute(tree, node.node_id, method="integrated_gradients", steps=8)
    calls, handle = count_forwards(llama.model)
    try:
        again = llama.attribute(tree, node.node_id, method="integrated_gradients", steps=8)
    finally:
        handle.remove()
    assert again is first and calls == []
    assert cached(llama, tree, node.node_id) == [first]
    other = llama.attribute(tree, node.node_id, method="integrated_gradients", steps=9)
    assert other is not first  # steps are part of the key


def test_attribution_leaves_the_tree_and_its_file_unchanged(llama):
    tree, node = grown(llama)
    before = tree.to_json()
    for method in ("input_x_gradient", "integrated_gradients", "attention_rollout"):
        llama.attribute(tree, node.node_id, method=method, steps=4)
    assert tree.to_json() == before
    assert iv.TokenTree.from_json(before).to_json() == before


# ------------------------------------------------------------------ refusals and bad input
def test_remote_session_refuses_naming_what_the_server_lacks():
    model, tokenizer = tiny_model("llama"), tiny_tokenizer()
    with FakeServer(model, tokenizer, dialect="vllm", max_logprobs=VOCAB) as server:
        session = iv.Session.connect(server.url, tokenizer=tokenizer, top_logprobs="full")
        tree = session.tree(PROMPT)
        child = session.expand(tree, tree.root_id, k=2)[0]
        before = tree.to_json()
        with pytest.raises(ServerLacks, match=r"gradients.*RemoteBackend\(vllm at .*"
                                              r"returns only log-probabilities") as err:
            session.attribute(tree, child.node_id)
        assert "no weights, no gradients" in str(err.value)
        assert tree.to_json() == before
        session.backend.close()


def _bad_inputs(tree, node, other_branch):
    own = node.node_id
    return [
        (dict(node_id=own, method="saliency_map"), ValueError, "method must be one of"),
        (dict(node_id=own, method=3), TypeError, "method must be a str"),
        (dict(node_id=own, steps=0), ValueError, r"steps must be in \[1, 4096\]"),
        (dict(node_id=own, steps=2.5), TypeError, "steps must be an int"),
        (dict(node_id=own, steps=math.nan), TypeError, "steps must be an int"),
        (dict(node_id=own, steps=True), TypeError, "steps must be an int"),
        (dict(node_id=tree.root_id), ValueError, "is the root"),
        (dict(node_id=10_000), ValueError, "node_id 10000 is not a node of this tree"),
        (dict(node_id="1"), TypeError, "node_id must be an int"),
        (dict(node_id=own, contrast=own), ValueError, "not a sibling node"),
        (dict(node_id=own, contrast=other_branch), ValueError, "not a sibling node"),
        (dict(node_id=own, contrast=10_000), ValueError, "not a sibling node"),
        (dict(node_id=own, contrast=node.token), ValueError, "own token"),
        (dict(node_id=own, contrast_token_id=node.token_id), ValueError, "own token"),
        (dict(node_id=own, contrast_token_id=VOCAB), ValueError, "contrast_token_id must be"),
        (dict(node_id=own, contrast="t5 t6"), ValueError, "is 2 tokens"),
        (dict(node_id=own, contrast=math.nan), TypeError, "contrast must be"),
        (dict(node_id=own, contrast=1, contrast_token_id=3), TypeError, "not both"),
        (dict(node_id=own, baseline="mean"), ValueError, "baseline must be one of"),
        (dict(node_id=own, keep_first=1), TypeError, "keep_first must be a bool"),
        (dict(node_id=own, batch_size=0), ValueError, "batch_size must be"),
        (dict(node_id=own, method="attention", contrast_token_id=3), ValueError,
         "contrast applies to the gradient methods"),
    ]


def test_bad_inputs_raise_clear_errors_and_leave_the_tree_unchanged():
    session = tiny_session("llama")
    tree, node = grown(session)
    other_branch = [n for n in tree.children(tree.root_id)
                    if n.node_id != tree.path(node.node_id)[1].node_id][0].node_id
    before = tree.to_json()
    for kwargs, error, message in _bad_inputs(tree, node, other_branch):
        node_id = kwargs.pop("node_id")
        with pytest.raises(error, match=message):
            session.attribute(tree, node_id, **kwargs)
    assert tree.to_json() == before and cached(session, tree) == []


def test_tree_must_be_a_token_tree(llama):
    with pytest.raises(TypeError, match="tree must be an inferviz TokenTree"):
        llama.attribute("t5 t6", 1)


def test_gradient_methods_without_captum_say_how_to_install(llama, monkeypatch):
    tree, node = grown(llama)
    monkeypatch.setitem(sys.modules, "captum.attr", None)
    with pytest.raises(ImportError, match=r"inferviz\[attribution\]"):
        llama.attribute(tree, node.node_id, method="input_x_gradient", steps=3)


def test_core_module_imports_neither_pandas_widgets_nor_captum():
    code = ("import sys, inferviz.attribution; "
            "bad = [m for m in ('pandas', 'captum', 'inferviz.widgets', 'anywidget') "
            "if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------ view
def _hand_made(scores, tokens=("<b>bold</b>", " a", "\n")):
    return AttributionResult(
        node_id=7, method="input_x_gradient", token_id=9, token="<script>x</script>",
        input_ids=list(range(len(tokens))), input_tokens=list(tokens),
        context_node_ids=[None, None, 5][: len(tokens)], scores=np.array(scores),
        scores_l2=np.abs(np.array(scores)), target=-1.5)


def test_view_shades_tokens_on_a_diverging_scale_with_a_legend():
    from inferviz.widgets.views.attribution_view import diverging_color

    html = _hand_made([2.0, 0.0, -2.0])._repr_html_()
    assert "inferviz-attribution-legend" in html and "against" in html
    assert html.count("class='inferviz-attribution-token'") == 3
    assert f"background:{diverging_color(1.0)}" in html      # the largest positive: dark red
    assert f"background:{diverging_color(-1.0)}" in html     # the largest negative: dark blue
    assert diverging_color(0.0) == "rgb(247,247,247)"        # 0 is (near) white
    red, blue = diverging_color(1.0), diverging_color(-1.0)
    assert red == "rgb(103,0,31)" and blue == "rgb(5,48,97)"
    assert "score +2" in html and "score -2" in html         # the value on hover


def test_view_escapes_token_text():
    html = _hand_made([1.0, 0.5, -0.2]).to_html()
    assert "<b>bold" not in html and "&lt;b&gt;bold&lt;/b&gt;" in html
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_widget_is_an_html_widget_of_the_same_view(llama):
    tree, node = grown(llama)
    res = llama.attribute(tree, node.node_id)
    view = res.widget()
    assert isinstance(view, iv.AttributionView) and view.value == res._repr_html_()


# ------------------------------------------------------------------ default model (slower)
def _default_nodes(session):
    """One node per prompt of DEFAULT_PROMPTS: the top child of the root for the first two,
    the third token of the greedy path for the last (a context with generated tokens)."""
    nodes = []
    for prompt, depth in zip(DEFAULT_PROMPTS, (1, 1, 3)):
        tree, node = grown(session, prompt, depth=depth, k=1)
        nodes.append((tree, node))
    return nodes


@pytest.mark.model
def test_integrated_gradients_completeness_within_one_percent_on_default_model(
        default_session):
    errors = []
    for tree, node in _default_nodes(default_session):
        res = default_session.attribute(tree, node.node_id, method="integrated_gradients",
                                        steps=64)
        difference = res.target - res.baseline_target
        assert abs(difference) > 1.0  # a relative error against a real difference
        errors.append(abs(res.scores.sum() - difference) / abs(difference))
    print("IG completeness relative errors:", [f"{e:.2e}" for e in errors])
    assert max(errors) < 0.01


@pytest.mark.model
def test_input_x_gradient_equals_autograd_on_default_model(default_session):
    tree, node = _default_nodes(default_session)[2]
    res = default_session.attribute(tree, node.node_id, method="input_x_gradient")
    expected = autograd_input_x_gradient(default_session.model, res.input_ids, node.token_id)
    # float32 through 30 layers: the explicit attention mask takes another SDPA kernel than the
    # reference's mask-free call, ~1e-4 apart; a wrong gradient or target is off by the scores'
    # own size (0.03-0.9 here).
    np.testing.assert_allclose(res.scores, expected, rtol=1e-3, atol=2e-4)


@pytest.mark.model
def test_inseq_agrees_on_the_top5_context_tokens_on_default_model(default_session):
    import inseq

    session = default_session
    # inseq sets the tokenizer's padding side and may touch the model: give it copies.
    model = inseq.load_model(copy.deepcopy(session.model), "input_x_gradient",
                             tokenizer=copy.deepcopy(session.tokenizer))
    for tree, node in _default_nodes(session):
        ours = session.attribute(tree, node.node_id, method="input_x_gradient")
        full = tree.token_ids(node.node_id)
        out = model.attribute(tree.prompt, tree.text(node.node_id), attributed_fn="probability",
                              logprob=True, attr_pos_start=len(full) - 1, show_progress=False)
        seq = out.sequence_attributions[0]
        assert [t.id for t in seq.target] == full  # inseq attributes the same path
        theirs = seq.target_attributions[: len(full) - 1, -1, :].sum(-1).numpy()
        assert list(np.argsort(-theirs, kind="stable")[:5]) == ours.top(5)
        np.testing.assert_allclose(ours.scores, theirs, rtol=1e-3, atol=1e-5)
