"""forward_threads_only: one torch thread between forwards, the user's count inside them."""

import pytest
import torch

from inferviz.threads import forward_threads_only


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_small_ops_run_on_one_thread_and_forwards_on_the_configured_count(tiny_session,
                                                                          two_threads):
    seen = []
    inside = tiny_session.model.get_input_embeddings()  # runs within the model's forward
    handle = inside.register_forward_pre_hook(
        lambda module, args: seen.append(torch.get_num_threads()))
    try:
        with forward_threads_only(tiny_session):
            outside = torch.get_num_threads()
            tiny_session.generate("Once upon a time", strategy="greedy", max_new_tokens=3)
            after_forwards = torch.get_num_threads()
    finally:
        handle.remove()
    assert outside == 1 and after_forwards == 1
    assert seen and set(seen) == {2}
    assert torch.get_num_threads() == 2
    assert not tiny_session.model._forward_pre_hooks and not tiny_session.model._forward_hooks


def test_the_thread_count_is_restored_when_the_block_raises(tiny_session, two_threads):
    with pytest.raises(RuntimeError, match="boom"):
        with forward_threads_only(tiny_session):
            raise RuntimeError("boom")
    assert torch.get_num_threads() == 2
    assert not tiny_session.model._forward_pre_hooks and not tiny_session.model._forward_hooks


def test_greedy_restores_the_thread_count_and_leaves_no_hook(tiny_session, two_threads):
    tiny_session.generate("Once upon a time", strategy="greedy", max_new_tokens=3)
    assert torch.get_num_threads() == 2
    assert not tiny_session.model._forward_pre_hooks and not tiny_session.model._forward_hooks


def test_a_session_without_a_local_model_is_left_alone(two_threads):
    class Remote:
        backend = object()

    with forward_threads_only(Remote()):
        assert torch.get_num_threads() == 2
