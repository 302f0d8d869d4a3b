"""The explorer's controls a newcomer meets (issue 16): parameters do not carry over between
strategies, the picker offers only what can run from the boxes, stale messages go, the
progress bar shows during a run only, and the heading names the model."""

from __future__ import annotations

import pytest
from tiny_models import tiny_session

from inferviz.widgets.app.run_controls import RunControls


@pytest.fixture(scope="module")
def session():
    return tiny_session("llama")


def test_processor_boxes_reset_when_the_strategy_changes():
    controls = RunControls("top_p")
    assert controls.boxes["top_p"].value == "0.9"  # the preset of the strategy picked
    controls.strategy.value = "min_p"
    strategy, params = controls.values()
    assert strategy == "min_p" and params.get("min_p") == 0.05
    assert "top_p" not in params and "top_k" not in params
    controls.boxes["top_k"].value = "7"
    controls.strategy.value = "sample"
    assert "top_k" not in controls.values()[1]


def test_the_picker_leaves_out_aliases_and_strategies_that_need_code():
    options = RunControls("greedy").strategy.options
    assert "beam" in options and "beam_search" not in options
    assert "custom" not in options
    assert "custom" in RunControls("greedy", extra_params={"choose": print}).strategy.options


def test_a_fixed_value_clears_the_error_and_new_tree_clears_the_last_runs_line(session):
    explorer = session.explore("t5 t6", max_new_tokens=2)
    explorer.controls.boxes["max_new_tokens"].value = "0"
    explorer.controls.run_button.click()
    assert "inferviz-error" in explorer.status.value and "max_new_tokens" in explorer.status.value
    explorer.controls.boxes["max_new_tokens"].value = "2"
    assert explorer.status.value == ""
    explorer.run(wait=True)
    assert "greedy</b> done" in explorer.status.value
    explorer.new_tree("t7 t8")
    assert explorer.status.value == ""


def test_the_progress_bar_shows_only_during_a_run(session):
    explorer = session.explore("t5 t6", max_new_tokens=2)
    assert explorer.controls.progress.layout.visibility == "hidden"
    seen = []
    explorer.controls.progress.observe(
        lambda _c: seen.append(explorer.controls.progress.layout.visibility), names="value")
    explorer.run(wait=True)
    assert "visible" in seen
    assert explorer.controls.progress.layout.visibility == "hidden"


def test_the_heading_names_the_model_behind_default():
    from inferviz.widgets.app.explorer import _model_label

    class Named:
        name = "default"
    assert "SmolLM2-135M-Instruct.Q4_1" in _model_label(Named())
    Named.name = "<b>x</b>"
    assert _model_label(Named()) == "<code>&lt;b&gt;x&lt;/b&gt;</code>"
