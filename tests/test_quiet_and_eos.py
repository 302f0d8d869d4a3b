"""Normal use is quiet (no library warnings) and a result's text leaves out its final EOS."""

from __future__ import annotations

import warnings

import pytest

from inferviz.models import cache_argument


def test_cache_argument_follows_the_forward_signature(tiny_session):
    class OldStyle:
        def forward(self, input_ids=None, past_key_values=None, use_cache=None):
            return None

    assert cache_argument(OldStyle()) == "past_key_values"
    model = tiny_session.model
    import inspect

    expected = "cache" if "cache" in inspect.signature(model.forward).parameters \
        else "past_key_values"
    assert cache_argument(model) == expected


def test_generate_and_expand_emit_no_warnings(tiny_session):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a FutureWarning (past_key_values) fails the test
        tree = tiny_session.tree("Hello world")
        kids = tiny_session.expand(tree, tree.root_id, k=3)
        tiny_session.expand(tree, [k.node_id for k in kids], k=2)
        result = tiny_session.generate("Hello", max_new_tokens=4)
        tiny_session.generate("Hello", strategy="beam", num_beams=2, max_new_tokens=3)
    assert len(result.token_ids) >= 1


def test_text_leaves_out_the_final_eos_but_the_tree_keeps_it(tiny_session):
    eos = tiny_session.tokenizer.eos_token_id
    picks = iter([[5], [eos]])
    result = tiny_session.generate("Hello", strategy="custom", max_new_tokens=4,
                                   choose=lambda dist, node: next(picks))
    assert result.finish_reason == "eos"
    assert result.token_ids == [5, eos]
    assert result.tree.node(result.node_id).token_id == eos
    expected = tiny_session.tokenizer.decode([5])
    assert result.text == expected and result.texts == [expected]
    assert "<eos>" not in result.text
    assert result.tree.completion(result.node_id).endswith("<eos>")


def test_text_without_eos_is_the_whole_completion(tiny_session):
    result = tiny_session.generate("Hello", strategy="custom", max_new_tokens=2,
                                   choose=lambda dist, node: [7])
    assert result.finish_reason == "max_new_tokens"
    assert result.text == result.tree.completion(result.node_id)


@pytest.mark.model
def test_chat_run_text_has_no_im_end(default_session):
    prompt = default_session.chat_prompt("Say hi.")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = default_session.generate(prompt, max_new_tokens=40)
    assert result.finish_reason == "eos"
    assert not result.text.endswith("<|im_end|>") and result.text.strip()


def test_dashboard_progress_bar_follows_a_cold_load_and_hides_after():
    from inferviz.models import GGUF_STAGE, LOAD_STAGE
    from inferviz.widgets.dashboard.launcher import WidgetProgress

    progress = WidgetProgress()
    progress(LOAD_STAGE, 0, 1)
    assert progress.bar is None  # a fast cached load draws nothing
    for done in (0, 100, 272):
        progress(GGUF_STAGE, done, 272)
    assert (progress.bar.value, progress.bar.max) == (272, 272)
    assert "272/272" in progress.label.value
    progress.hide()
    assert progress.box.layout.display == "none"


def test_load_session_passes_its_progress_bar_to_the_loader(monkeypatch):
    from inferviz import Session
    from inferviz.widgets.dashboard import launcher as dashboard

    seen = {}

    def fake_from_pretrained(name, progress=None, **kwargs):
        seen["name"], seen["progress"] = name, progress
        progress("converting GGUF tensors", 3, 10)
        return "session"

    monkeypatch.setattr(Session, "from_pretrained", staticmethod(fake_from_pretrained))
    assert dashboard.load_session("default") == "session"
    assert isinstance(seen["progress"], dashboard.WidgetProgress)
    assert seen["progress"].box.layout.display == "none"
