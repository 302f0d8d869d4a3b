"""The explorer's Why tab (inferviz/widgets/app/why_panel.py): attribution of the selected node,
contrast with a sibling, and growing an intervened branch, through the panel's actions as the
buttons call them; refusals show in the panel, escaped."""

from __future__ import annotations

import pytest
from tiny_models import tiny_session

from inferviz.attribution import AttributionResult
from inferviz.widgets.app.explorer import TABS, WHY_TAB
from inferviz.widgets.views.attribution_view import AttributionView


@pytest.fixture()
def explorer():
    s = tiny_session("llama")
    ex = s.explore("t5 t17 t30")
    kids = s.expand(ex.tree, ex.tree.root_id, k=3)
    ex.tree_widget.refresh()
    ex.select(kids[0].node_id)
    return ex


def test_the_why_tab_sits_between_the_lens_and_the_charts(explorer):
    assert TABS[WHY_TAB] == "Why"
    assert explorer.tabs.children[WHY_TAB] is explorer.why


def test_attribute_shows_the_shaded_context_of_the_selected_node(explorer):
    panel = explorer.why
    assert [label for label, _ in panel.contrast.options][0] == "none"
    assert len(panel.contrast.options) == 3  # none + the two siblings
    result = panel.attribute()
    assert isinstance(result, AttributionResult) and result.node_id == explorer.selected
    assert isinstance(panel.result_box.children[0], AttributionView)
    assert "attributed in" in panel.status.value
    # selecting another node and back shows the cached result without computing again
    other = panel.contrast.options[1][1]
    explorer.select(other)
    assert not isinstance(panel.result_box.children[0], AttributionView)
    explorer.select(result.node_id)
    assert isinstance(panel.result_box.children[0], AttributionView)


def test_contrast_with_a_sibling_attributes_the_difference(explorer):
    panel = explorer.why
    sibling = panel.contrast.options[1][1]
    panel.contrast.value = sibling
    result = panel.attribute()
    assert result.contrast_token_id == explorer.tree.node(sibling).token_id


def test_grow_branch_adds_a_marked_sibling_branch_and_selects_its_end(explorer):
    panel = explorer.why
    tree = explorer.tree
    start = explorer.selected
    panel.kind.value = "steer"
    panel.layer.value = 1
    panel.fields["alpha"].value = 6.0
    panel.fields["positive"].value = "t40 t41"
    panel.fields["negative"].value = "t50 t51"
    panel.tokens.value = 3
    before = len(tree)
    explorer.status.value = "<b>greedy</b> done (eos): an earlier run's line"
    result = panel.grow()
    assert len(tree) == before + 3
    assert explorer.selected == result.node_id
    assert explorer.status.value == ""  # it described another path
    for node in tree.path(result.node_id)[tree.node(start).depth + 1:]:
        assert node.meta["intervention"] == "steer L1 α=6 't40 t41'−'t50 t51'"
        assert node.meta["kl"] >= 0
    assert "KL from the plain model" in panel.status.value
    # the tree widget ships the intervention and KL columns the JS draws
    names = explorer.tree_widget.nodes["names"]
    assert "intervention" in names and "kl" in names


@pytest.mark.parametrize("kind, setup", [
    ("heads", lambda f: f["heads"].__setattr__("value", "0, 2")),
    ("layer", lambda f: None),
    ("patch", lambda f: (f["source"].__setattr__("value", "t60 t61 t62"),
                         f["position"].__setattr__("value", 1))),
])
def test_each_kind_of_intervention_grows_a_branch(explorer, kind, setup):
    panel = explorer.why
    panel.kind.value = kind
    setup(panel.fields)
    panel.tokens.value = 2
    result = panel.grow()
    assert explorer.tree.node(result.node_id).meta["intervention_key"].startswith(
        "ablate" if kind in ("heads", "layer") else "patch")
    shown = {n for n, c in panel.fields.items() if c.layout.display != "none"}
    assert shown == {"heads": {"heads"}, "layer": set(), "patch": {"source", "position"}}[kind]


def test_bad_values_are_shown_escaped_in_the_panel_with_the_tree_unchanged(explorer):
    panel = explorer.why
    before = explorer.tree.to_json()
    panel.kind.value = "heads"
    panel.fields["heads"].value = "<img src=x onerror=alert(1)>"
    panel.grow_button.click()
    assert "heads must be head numbers" in panel.status.value
    assert "<img" not in panel.status.value and "&lt;img" in panel.status.value
    panel.fields["heads"].value = "99"
    panel.grow_button.click()
    assert "heads: 99 is not one of the model&#x27;s 4 attention heads" in panel.status.value
    explorer.select(explorer.tree.root_id)
    panel.attribute_button.click()
    assert "the prompt has no token to attribute" in panel.status.value
    assert explorer.tree.to_json() == before


def test_a_remote_session_disables_the_panel_with_a_reason():
    from fake_server import FakeServer
    from tiny_models import tiny_model, tiny_tokenizer

    from inferviz import Session

    tokenizer = tiny_tokenizer()
    with FakeServer(tiny_model("llama"), tokenizer) as server:
        s = Session.connect(server.url, tokenizer=tokenizer)
        ex = s.explore("t5 t17")
        assert ex.why.attribute_button.disabled and ex.why.grow_button.disabled
        assert "runs on a server" in ex.why.status.value


def test_the_static_export_includes_the_attributions_computed(explorer, tmp_path):
    panel = explorer.why
    result = panel.attribute()
    page = explorer.to_html(tmp_path / "tree.html").read_text()
    assert "Attributions (1)" in page
    assert f"data-node-id='{result.node_id}'" in page
    assert page.count("inferviz-attribution-token") == len(result.input_ids)
    # a tree without attributions has no such section
    explorer.new_tree("t8 t9")
    assert "Attributions (" not in explorer.to_html(tmp_path / "other.html").read_text()
