"""One schema for sampler parameters: a processor added as one function and one row is validated
by SamplerSettings and applied by process, refused by the widget protocol when bad, offered by
the explorer and the tree bar; the built-in rows give the messages users have always seen."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_models import tiny_session

from inferviz import sampler_params
from inferviz.processors import SamplerSettings, apply_temperature, process
from inferviz.sampler_params import ParamSpec, register_processor
from inferviz.tree import TokenTree
from inferviz.widgets import TreeWidget
from inferviz.widgets.app.run_controls import RunControls
from inferviz.widgets.views.protocol import click_params

FIXTURE = Path(__file__).resolve().parent.parent / "js" / "test" / "fixtures" / "param_schema.json"


def apply_flatten(logits, flatten):
    """Scale logits by 1 - flatten: 0 changes nothing, 1 makes every token equally likely."""
    return logits * (1 - flatten)


@pytest.fixture
def flatten():
    """The toy processor registered through the schema only; removed again after the test."""
    spec = ParamSpec("flatten", float, None, low=0, high=1, off_values=(0,),
                     apply=apply_flatten, args=("logits", "value"), box=True, step=0.1,
                     help="scale logits by 1 - flatten")
    register_processor(spec)
    yield spec
    del sampler_params.PARAMS["flatten"]


class RecordingSession:
    def __init__(self):
        self.calls = []

    def expand(self, tree, node_id, **params):
        self.calls.append(params)
        return []


def test_a_registered_processor_is_validated_and_applied_after_the_built_ins(flatten):
    with pytest.raises(ValueError, match=r"flatten must be a number in \[0, 1\], got 2"):
        SamplerSettings(flatten=2)
    settings = SamplerSettings(temperature=0.5, flatten=0.25)
    assert settings.flatten == 0.25 and settings.to_dict()["flatten"] == 0.25
    logits = torch.randn(2, 9)
    expected = apply_flatten(apply_temperature(logits, 0.5), 0.25)
    torch.testing.assert_close(process(logits, settings), expected)
    assert SamplerSettings(flatten=0).is_identity


def test_a_registered_processor_reaches_the_strategies(flatten):
    session = tiny_session("llama")
    result = session.generate("Hi", strategy="sample", max_new_tokens=2, seed=0, flatten=0.5)
    assert result.steps == 2
    with pytest.raises(ValueError, match="flatten must be a number"):
        session.generate("Hi", strategy="sample", max_new_tokens=2, seed=0, flatten=-1.0)


def test_the_widget_protocol_refuses_a_bad_registered_value_naming_it(flatten):
    session = RecordingSession()
    widget = TreeWidget(TokenTree("hi", [1]), session=session)
    sent = []
    widget.send = lambda msg, buffers=None: sent.append(msg)
    request = {"kind": "inferviz:request", "id": "r1", "action": "expand", "node_id": 0}
    widget._handle_custom_msg({**request, "params": {"flatten": 5}}, [])
    assert sent[-1]["ok"] is False
    assert sent[-1]["error"] == "flatten must be None or a number in [0, 1], got 5"
    assert session.calls == []
    widget._handle_custom_msg({**request, "params": {"flatten": 0.5}}, [])
    assert sent[-1]["ok"] is True and session.calls[-1]["flatten"] == 0.5
    assert [row["name"] for row in widget.param_schema][-1] == "flatten"


def test_the_explorer_offers_a_box_for_a_registered_processor(flatten):
    controls = RunControls("sample")
    box = controls.boxes["flatten"]
    assert box.layout.display is None and box.tooltip == "scale logits by 1 - flatten"
    box.value = "0.3"
    assert controls.values()[1]["flatten"] == 0.3
    box.value = "1.5"
    with pytest.raises(ValueError, match=r"flatten must be in \[0, 1\]"):
        controls.values()
    controls.strategy.value = "beam"
    assert box.layout.display == "none"


def test_the_tree_bar_offers_the_same_boxes_as_before():
    assert [spec.name for spec in click_params()] == ["k", "temperature", "top_k", "top_p",
                                                        "min_p"]


def test_the_js_tests_use_the_schema_the_widget_sends():
    widget = TreeWidget(TokenTree("hi", [1]))
    assert json.loads(FIXTURE.read_text()) == widget.param_schema, (
        "regenerate js/test/fixtures/param_schema.json from protocol.click_params()")


def test_register_processor_refuses_a_taken_name_or_a_row_without_a_function():
    with pytest.raises(ValueError, match="exists already"):
        register_processor(ParamSpec("top_p", float, None, apply=apply_flatten))
    with pytest.raises(ValueError, match="needs apply="):
        register_processor(ParamSpec("nothing", float, None))
    assert "nothing" not in sampler_params.PARAMS


def test_a_row_names_only_arguments_a_processor_can_get():
    with pytest.raises(ValueError, match="args must name"):
        ParamSpec("bad", float, None, args=("logits", "value", "scores"))
