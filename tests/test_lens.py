"""The logit lens (inferviz/lens.py): shapes, paths of tree nodes, hooks removed, parity with
the model's own logits, NaN / inf refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch


def test_lens_shapes_and_dataframe(tiny_session):
    lens = tiny_session.logit_lens("Hello world", k=3)
    layers = tiny_session.adapter.num_layers
    positions = len(tiny_session.encode("Hello world"))
    assert lens.token_ids.shape == (layers + 1, positions, 3)
    assert lens.layer_names[0] == "embed" and len(lens.layer_names) == layers + 1
    assert np.all(np.diff(lens.probs, axis=-1) <= 1e-7)  # best first
    df = lens.to_pandas()
    assert {"layer", "position", "rank", "token_id", "token", "prob"} <= set(df.columns)
    assert len(df) == (layers + 1) * positions * 3
    assert np.allclose(lens.kl_to_final[-1], 0, atol=1e-5)
    assert np.all(lens.final_top_rank[-1] == 0)


def test_lens_of_a_tree_node_covers_its_path(tiny_session):
    tree = tiny_session.tree("Hello")
    kid = tiny_session.expand(tree, 0, k=1)[0]
    lens = tiny_session.logit_lens((tree, kid.node_id))
    assert lens.input_ids == tree.token_ids(kid.node_id)


def test_lens_rejects_bad_k(tiny_session):
    with pytest.raises(ValueError, match="k must be"):
        tiny_session.logit_lens("Hello", k=0)


def test_lens_removes_its_hooks(tiny_session):
    tiny_session.logit_lens("Hello")
    assert all(not layer._forward_hooks and not layer._forward_pre_hooks
               for layer in tiny_session.adapter.layers)


@pytest.mark.model
def test_lens_last_layer_equals_model_logits_on_default_model(default_session):
    from inferviz.lens import capture_residuals

    s = default_session
    ids = torch.tensor([s.encode("The capital of France is")])
    with torch.no_grad(), capture_residuals(s.adapter) as states:
        logits = s.model(ids).logits[0]
    assert len(states) == s.adapter.num_layers + 1
    lens_last = s.adapter.lens_logits(states[-1][0])
    torch.testing.assert_close(lens_last, logits, rtol=1e-4, atol=1e-4)
    # Normalising HF's already-normalised last hidden state again would not match:
    with torch.no_grad():
        hf_last = s.model(ids, output_hidden_states=True).hidden_states[-1][0]
    twice = s.adapter.lens_logits(hf_last)
    assert not torch.allclose(twice, logits, atol=1e-2)
    lens = s.logit_lens("The capital of France is", k=5)
    final_top = logits.argmax(-1).numpy()
    assert np.array_equal(lens.token_ids[-1, :, 0], final_top)
    assert lens.top_tokens[-1][-1][0] == " Paris"


def test_logit_lens_refuses_nan_logits(tiny_session):
    from broken_models import broken_logits

    with broken_logits(tiny_session, [17]), pytest.raises(
            ValueError, match=r"model returned NaN logits at position 0 \(token id 17"):
        tiny_session.logit_lens("Hello world")


def test_logit_lens_refuses_nan_in_one_layer(tiny_session, monkeypatch):
    from broken_models import broken_lens_adapter

    monkeypatch.setattr(tiny_session, "adapter",
                        broken_lens_adapter(tiny_session.adapter, 3, call=1))  # layer "1" only
    with pytest.raises(ValueError, match=r"the logit lens at layer '1' returned NaN logits at "
                                         r"position 0 \(token id 3"):
        tiny_session.logit_lens("Hello world")
