"""The explorer widget (Session.explore): tree, runs with live growth and Stop, panels,
charts and exports, on a tiny random model."""

from __future__ import annotations

import json
import threading

import pytest

pytest.importorskip("ipywidgets")
pytest.importorskip("plotly")

from inferviz.tree import TokenTree
from inferviz.widgets import figures
from inferviz.widgets.app.explorer import BUSY_MESSAGE, Explorer
from inferviz.widgets.app.run_controls import PARAMS, parse_extra, parse_value


@pytest.fixture()
def explorer(tiny_session):
    return tiny_session.explore("Hello world", max_new_tokens=4)


def test_explore_returns_an_explorer_on_the_prompt_tree(explorer):
    assert isinstance(explorer, Explorer)
    assert explorer.tree.prompt == "Hello world" and len(explorer.tree) == 1
    assert explorer.selected == explorer.tree.root_id
    assert explorer.tree_widget.tree is explorer.tree


def test_expand_root_opens_with_one_level_expanded(tiny_session):
    ex = tiny_session.explore("Hello world", expand_root=True)
    assert len(ex.tree.children(ex.tree.root_id)) == ex.tree_widget.k == 5


def test_without_a_prompt_there_is_no_tree_and_exports_say_so(tiny_session, tmp_path):
    ex = tiny_session.explore()
    assert ex.tree is None
    with pytest.raises(ValueError, match="no tree yet"):
        ex.to_csv(tmp_path / "t.csv")


def test_unknown_parameters_are_rejected_with_the_allowed_names(tiny_session):
    with pytest.raises(TypeError, match="num_beams"):
        tiny_session.explore("Hi", beams=3)


def test_greedy_run_grows_the_tree_and_selects_the_result(explorer):
    result = explorer.run(wait=True)
    assert result is not None and result.strategy == "greedy"
    assert explorer.selected == result.node_id
    assert explorer.tree.node(result.node_id).depth == 4
    assert "inferviz-token-table" in explorer.table_html.value
    assert "done" in explorer.status.value
    assert explorer.controls.progress.value == 4
    assert not explorer.controls.run_button.disabled


def test_each_strategy_gets_only_its_own_parameters(explorer):
    explorer.controls.strategy.value = "beam"
    assert explorer.controls.values() == ("beam", {"max_new_tokens": 4, "num_beams": 4})
    explorer.controls.strategy.value = "sample"
    explorer.controls.boxes["top_p"].value = "0.9"
    explorer.controls.extra.value = "stop_at_eos=False"
    strategy, params = explorer.controls.values()
    assert strategy == "sample" and params["top_p"] == 0.9 and params["stop_at_eos"] is False
    assert "num_beams" not in params and "top_k" not in params  # empty box = off


def test_a_bad_parameter_is_reported_and_nothing_runs(explorer):
    explorer.controls.boxes["max_new_tokens"].value = "0"
    explorer.controls.run_button.click()
    assert "max_new_tokens must be" in explorer.status.value
    assert "inferviz-error" in explorer.status.value
    assert len(explorer.tree) == 1 and not explorer.running


def test_a_failing_strategy_shows_its_error_and_leaves_the_explorer_usable(explorer):
    explorer.controls.extra.value = "no_such_option=1"
    assert explorer.run(wait=True) is None
    assert "failed" in explorer.status.value and "no_such_option" in explorer.status.value
    explorer.controls.extra.value = ""
    assert explorer.run(wait=True) is not None


def test_stop_ends_the_run_at_the_next_step_with_a_partial_result(explorer):
    explorer.controls.boxes["max_new_tokens"].value = "50"
    explorer.controls.extra.value = "stop_at_eos=False"
    tree = explorer.tree

    def stop_at_depth_3(node_ids):
        if max(tree.node(i).depth for i in node_ids) >= 3:
            explorer.stop()

    tree.on_change(stop_at_depth_3)
    result = explorer.run(wait=True)
    assert result.partial and result.finish_reason == "stopped" and result.steps == 3
    assert "stopped after 3 step(s)" in explorer.status.value
    assert max(n.depth for n in tree.nodes.values()) == 3
    assert explorer.selected == result.node_id and explorer.controls.progress.value == 3
    assert not explorer.running and explorer.controls.stop_button.disabled


def test_stop_button_stops_a_beam_run_between_steps(explorer):
    explorer.controls.strategy.value = "beam"
    explorer.controls.boxes["num_beams"].value = "2"
    explorer.controls.boxes["max_new_tokens"].value = "30"
    explorer.controls.extra.value = "stop_at_eos=False"
    tree = explorer.tree
    tree.on_change(lambda ids: explorer.controls.stop_button.click()
                   if len(tree) > 8 else None)
    result = explorer.run(wait=True)
    assert result.partial and 1 <= result.steps < 30
    assert all(n.meta.get("run_partial") for n in tree.nodes.values() if not n.is_root)


def test_a_failed_run_rolls_the_tree_back_and_reselects_the_root(explorer):
    tree = explorer.tree
    explorer.controls.boxes["max_new_tokens"].value = "6"

    def fails_at_depth_2(dist, node):
        if node.depth == 2:
            raise ValueError("nope")
        return dist.top_k(1)

    explorer.extra_params = {"choose": fails_at_depth_2, "stop_at_eos": False}
    explorer.controls.strategy.value = "custom"  # offered once a choose function is given
    sizes: list[int] = []
    tree.on_change(lambda ids: (sizes.append(len(tree)),
                                explorer.select(max(tree.nodes)) if len(tree) > 1 else None))
    assert explorer.run(wait=True) is None
    assert "failed" in explorer.status.value and "as it was before" in explorer.status.value
    assert len(tree) == 1 and max(sizes) == 3 and explorer.selected == tree.root_id
    assert explorer.tree_widget.selected == tree.root_id


def test_smc_ess_chart_fills_in_while_the_run_goes(explorer):
    explorer.show_charts()
    explorer.controls.strategy.value = "smc"
    explorer.controls.boxes["particles"].value = "4"
    explorer.controls.boxes["max_new_tokens"].value = "4"
    explorer.controls.extra.value = "stop_at_eos=False"
    lengths: list[int] = []
    original = explorer._on_run_step

    def watch(info):
        original(info)
        lengths.append(len(explorer.charts.ess_fig.data[0].y))

    explorer._on_run_step = watch
    result = explorer.run(wait=True)
    assert lengths == [1, 2, 3, 4] and list(explorer.charts.ess_fig.data[0].y) == result.ess
    assert explorer.charts.ess_fig in explorer.charts.shown


def test_clicks_that_would_expand_during_a_run_are_refused(explorer):
    errors: list[str] = []
    tree = explorer.tree

    def expand_from_another_thread(node_ids):
        if errors:
            return

        def click():
            try:
                explorer.tree_widget.expand(tree.root_id)
                errors.append("accepted")
            except ValueError as exc:
                errors.append(str(exc))

        worker = threading.Thread(target=click)
        worker.start()
        worker.join()

    tree.on_change(expand_from_another_thread)
    explorer.run(wait=True)
    assert errors == [BUSY_MESSAGE]


def test_charts_show_path_then_beam_and_ess_when_a_run_has_them(explorer):
    explorer.show_charts()
    assert explorer.charts.shown == [explorer.charts.path_fig]
    explorer.controls.strategy.value = "beam"
    explorer.controls.boxes["num_beams"].value = "2"
    explorer.run(wait=True)
    assert explorer.charts.beam_fig in explorer.charts.shown
    assert len(explorer.charts.path_fig.data[0].y) == explorer.tree.node(explorer.selected).depth


def test_a_chart_once_on_the_page_is_hidden_never_taken_off(explorer):
    # A FigureWidget taken off the page leaves a view listening to a purged plot: the next
    # update throws 'gd.data must be an array' in the browser.
    explorer.show_charts()
    explorer.controls.strategy.value = "smc"
    explorer.controls.boxes["particles"].value = "4"
    explorer.controls.boxes["max_new_tokens"].value = "2"
    explorer.run(wait=True)
    on_page = list(explorer.charts.children)
    assert explorer.charts.ess_fig in explorer.charts.shown
    explorer.new_tree("t7 t8")
    assert explorer.charts.ess_fig not in explorer.charts.shown  # hidden: the new tree has no run
    assert list(explorer.charts.children) == on_page  # ... but never removed
    explorer.run(wait=True)
    assert list(explorer.charts.children) == on_page and explorer.charts.ess_fig in explorer.charts.shown


def test_lens_is_computed_when_its_tab_is_open(explorer):
    assert explorer.lens_box.children == ()
    explorer.tabs.selected_index = 1
    (lens,) = explorer.lens_box.children
    assert type(lens).__name__ == "LensWidget"


def test_exports_write_csv_json_and_offline_html(explorer, tmp_path):
    explorer.run(wait=True)
    import pandas as pd

    df = pd.read_csv(explorer.to_csv(tmp_path / "t.csv"))
    assert len(df) == len(explorer.tree) and "raw_logprob" in df.columns
    restored = TokenTree.from_json(explorer.to_json(tmp_path / "t.json").read_text())
    assert restored.to_dict() == explorer.tree.to_dict()
    page = explorer.to_html(tmp_path / "t.html").read_text()
    assert "<script src=" not in page and "https://" not in page
    state = page.split('<script id="inferviz-state" type="application/json">')[1]
    state = json.loads(state.split("</script>")[0].replace("<\\/", "</"))
    assert state["read_only"] is True and state["nodes"]["n"] == len(explorer.tree)
    assert state["selected"] == explorer.selected


def test_export_buttons_write_files_and_offer_a_download(explorer, tmp_path, monkeypatch):
    monkeypatch.setenv("INFERVIZ_EXPORT_DIR", str(tmp_path / "exports"))
    explorer.export_buttons["json"].click()
    assert (tmp_path / "exports" / "inferviz_tree.json").is_file()
    assert "data:application/json;base64," in explorer.export_links.value


def test_parse_value_names_the_parameter_and_its_range():
    assert parse_value(PARAMS["top_p"], "") is None
    assert parse_value(PARAMS["num_beams"], " 3 ") == 3
    with pytest.raises(ValueError, match="top_p must be in"):
        parse_value(PARAMS["top_p"], "1.5")
    with pytest.raises(ValueError, match="num_beams must be an integer"):
        parse_value(PARAMS["num_beams"], "2.5")
    with pytest.raises(ValueError, match="temperature"):
        parse_value(PARAMS["temperature"], "0")


def test_parse_extra_takes_literals_only():
    assert parse_extra("a=1, b='x', c=[1, 2]") == {"a": 1, "b": "x", "c": [1, 2]}
    with pytest.raises(ValueError, match="name=value"):
        parse_extra("a=__import__('os')")


def test_path_series_follows_the_path():
    tree = TokenTree("hi", [1])
    a = tree.add_child(0, 5, b" a", -0.5, 0.6, 0, 1.2)
    b = tree.add_child(a.node_id, 6, b" b", -1.5, 0.2, 1, 2.2)
    series = figures.path_series(tree, b.node_id)
    assert series["step"] == [1, 2] and series["prob"] == [0.6, 0.2]
    assert series["entropy"] == [1.2, 2.2]


def test_dashboard_serves_the_repo_notebook():
    from inferviz.widgets.dashboard import launcher as dashboard

    path = dashboard.notebook_path()
    assert path.name == "dashboard.ipynb" and path.is_file()
    command = dashboard.voila_command(path, "127.0.0.1", 8866)
    assert "inferviz.widgets.dashboard.voila_app" in command and "--port=8866" in command and "--no-browser" in command
    with pytest.raises(ValueError, match="port"):
        dashboard.start(port=-1)


def test_tree_widget_to_html_shares_the_export(tiny_session, tmp_path):
    from inferviz.widgets import TreeWidget

    tree = tiny_session.tree("Hello")
    tiny_session.expand(tree, tree.root_id, k=3)
    page = TreeWidget(tree).to_html(tmp_path / "tree.html").read_text()
    assert page.startswith("<!doctype html>") and '"read_only": true' in page


def test_every_installed_strategy_runs_from_the_explorer_with_its_boxes(tiny_session):
    ex = tiny_session.explore("Hello world", max_new_tokens=2, depth=2, amateur_layer=1)
    names = [n for n in ex.controls.strategy.options if n != "custom"]  # custom needs choose=fn
    for name in names:
        ex.controls.strategy.value = name
        assert ex.run(wait=True) is not None, f"{name}: {ex.status.value}"


def _browser_click(explorer, node_id: int, rid: str = "c1") -> None:
    explorer.tree_widget._handle_custom_msg(
        {"kind": "inferviz:request", "id": rid, "action": "expand", "node_id": node_id}, [])


def test_a_browser_click_during_a_run_is_answered_busy(explorer):
    replies: list[dict] = []
    explorer.tree_widget.send = lambda content, buffers=None: replies.append(content)
    tree = explorer.tree

    def click_once(node_ids):  # from another thread, as the kernel's would be
        if not replies:
            worker = threading.Thread(target=_browser_click, args=(explorer, tree.root_id))
            worker.start()
            worker.join()

    tree.on_change(click_once)
    explorer.run(wait=True)
    assert replies[0]["ok"] is False and replies[0]["error"] == BUSY_MESSAGE
    assert explorer.tree_widget.pending == []


def test_a_run_waits_for_clicks_already_queued(tiny_session):
    """A click goes to the session's batcher and returns at once; a run started right after
    must not write to the tree before that click is answered."""
    from inferviz.session import Session

    session = Session(tiny_session.model, tiny_session.tokenizer, batch_timeout=0.3)
    explorer = session.explore("Hello world", max_new_tokens=2)
    events: list[tuple] = []
    explorer.tree_widget.send = lambda content, buffers=None: events.append(
        ("reply", content["ok"]))
    explorer.tree.on_change(lambda ids: events.append(("nodes", len(ids))))
    _browser_click(explorer, explorer.tree.root_id)
    assert explorer.tree_widget.pending == [explorer.tree.root_id]  # queued, not done
    explorer.run(wait=True)
    assert events[:2] == [("nodes", 5), ("reply", True)]
    assert ("nodes", 1) in events[2:]  # then the run's steps
    assert explorer.result is not None and explorer.tree_widget.pending == []


def test_the_compare_tab_runs_the_checked_strategies_into_the_tree(tiny_session):
    from inferviz.widgets.app.explorer import COMPARE_TAB, TABS

    ex = tiny_session.explore("Hello world", max_new_tokens=3)
    assert TABS[COMPARE_TAB] == "Compare"
    panel = ex.compare_panel
    ex.run(wait=True)
    assert "done" in ex.status.value
    ex.select(ex.tree.root_id)
    for label, box in panel.boxes.items():
        box.value = label in ("greedy", "beam 4")
    cmp = panel.compare()
    assert ex.status.value == ""  # the last run's line no longer describes what is selected
    assert cmp.labels == ["greedy", "beam 4"]
    assert cmp.tree is ex.tree and cmp.start_id == ex.tree.root_id
    assert "<table" in panel.table.value and "greedy" in panel.table.value
    assert ex.selected == cmp.results["greedy"].node_id
    assert any("compare_labels" in n.meta for n in ex.tree.nodes.values())
    for box in panel.boxes.values():
        box.value = False
    panel.boxes["greedy"].value = True
    panel.button.click()  # one strategy: refused in the status line, nothing runs
    assert "at least two" in panel.status.value


def test_the_compare_tab_keeps_to_the_constraint_row(tiny_session):
    import re

    ex = tiny_session.explore("Hello world", max_new_tokens=3)
    ex.constraint_controls.kind.value = "regex"
    ex.constraint_controls.text.value = "[0-9]+"
    for label, box in ex.compare_panel.boxes.items():
        box.value = label in ("greedy", "top-p 0.9")
    cmp = ex.compare_panel.compare()
    for result in cmp.results.values():
        assert re.fullmatch("[0-9]*", result.text)
