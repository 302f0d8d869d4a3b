"""Arguments that would ask the allocator for gigabytes are refused before anything is
allocated, with an error naming the argument, the estimate and the budget
(inferviz/step_memory.py); bfs answers a huge depth at once; ranks of many tokens take O(V)."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest
import torch

from inferviz import step_memory
from inferviz.distributions import Distributions
from inferviz.step_memory import StepMemoryError, check_step_memory
from inferviz.strategies.bfs import max_tree_nodes

TINY_BUDGET = 10_000  # bytes: below any real step of the tiny model


def test_ranks_of_many_tokens_never_build_a_k_by_vocab_matrix():
    vocab = 4096
    logits = torch.randn(1, vocab)
    logits[0, :8] = logits[0, 8]  # ties share a rank
    dists = Distributions.from_logits([0], logits, torch.softmax(logits, -1))
    tokens = list(range(vocab))
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                profile_memory=True) as prof:
        ranks = dists.ranks(0, tokens)
    largest = max(e.cpu_memory_usage for e in prof.key_averages())
    assert largest < 64 * vocab * 8, largest  # the [k, V] comparison took 8 * k * V bytes
    expect = (logits[0].unsqueeze(0) > logits[0, tokens].unsqueeze(1)).sum(-1).tolist()
    assert ranks == expect


def test_expand_with_k_beyond_memory_is_refused_before_allocating(tiny_session):
    tree = tiny_session.tree("Hello")
    before = tree.to_json()
    forwards = tiny_session.engine.stats.forwards
    tiny_session.step_memory_budget = TINY_BUDGET
    with pytest.raises(StepMemoryError, match=r"expand of 1 node\(s\) with k=50 needs about "
                                              r".* more than the step memory budget of "
                                              r"0\.0 MiB \(session\.step_memory_budget\); "
                                              r"expand fewer nodes at once or lower k"):
        tiny_session.expand(tree, tree.root_id, k=50)
    assert tree.to_json() == before and tiny_session.engine.stats.forwards == forwards


def test_step_memory_error_is_a_value_error(tiny_session):
    tiny_session.step_memory_budget = TINY_BUDGET
    tree = tiny_session.tree("Hello")
    with pytest.raises(ValueError):
        tiny_session.expand(tree, tree.root_id, k=2)


def test_beam_with_num_beams_beyond_memory_is_refused_before_any_forward(tiny_session):
    tiny_session.step_memory_budget = TINY_BUDGET
    forwards = tiny_session.engine.stats.forwards
    with pytest.raises(StepMemoryError, match=r"num_beams=8 \(each step scores 8 beams .*"
                                              r"more than the step memory budget .* lower "
                                              r"num_beams or max_new_tokens"):
        tiny_session.generate("Hello", strategy="beam", num_beams=8, max_new_tokens=4)
    assert tiny_session.engine.stats.forwards == forwards


def test_bfs_beyond_memory_is_refused_naming_k_and_depth(tiny_session):
    tiny_session.step_memory_budget = TINY_BUDGET
    with pytest.raises(StepMemoryError, match=r"bfs with k=4, depth=3 \(its last level "
                                              r"expands 16 nodes in one forward\)"):
        tiny_session.generate("Hello", strategy="bfs", k=4, depth=3, max_new_tokens=3)


def test_threshold_beyond_memory_is_refused_naming_batch_size(tiny_session):
    tiny_session.step_memory_budget = TINY_BUDGET
    with pytest.raises(StepMemoryError, match=r"threshold with batch_size=64, max_nodes=200"):
        tiny_session.generate("Hello", strategy="threshold", batch_size=64, max_new_tokens=8)


def test_any_step_over_the_budget_is_refused_before_the_forward(tiny_session):
    # SMC particles, contrastive, the request batcher: every step goes through one check.
    tree = tiny_session.tree("Hello")
    tiny_session.step_memory_budget = TINY_BUDGET
    with pytest.raises(StepMemoryError, match=r"a step over 1 sequences needs about"):
        tiny_session.distributions(tree, [tree.root_id])


def test_the_default_budget_is_a_share_of_the_memory_available_now(tiny_session, monkeypatch):
    monkeypatch.setattr(step_memory, "available_host_bytes", lambda: 200 << 20)
    with pytest.raises(StepMemoryError, match=r"more than the step memory budget of 100\.0 MiB "
                                              r"\(50% of the memory available now\)"):
        check_step_memory(tiny_session, rows=100_000, what="this")
    check_step_memory(tiny_session, rows=100)  # small steps pass without asking the system


def test_a_bad_step_memory_budget_is_refused_naming_it(tiny_session):
    tiny_session.step_memory_budget = "1GB"
    with pytest.raises(TypeError, match=r"session\.step_memory_budget must be None or an int "
                                        r"of bytes >= 1; got '1GB'"):
        check_step_memory(tiny_session, rows=1)


def test_bfs_with_a_huge_depth_is_refused_at_once():
    # In a subprocess with a timeout: the old check (a loop summing k**level over every level,
    # numbers of up to 477121 digits) held the GIL for minutes.
    script = ("from types import SimpleNamespace\n"
              "from inferviz.strategies.bfs import run\n"
              "try:\n"
              "    run(SimpleNamespace(vocab_size=100), None, 0, 10**6, k=3, depth=10**6)\n"
              "except ValueError as exc:\n"
              "    print(exc)\n")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60)
    assert re.search(r"k=3, depth=1000000 can add about 10\^477121 nodes, more than "
                     r"max_nodes=10000", out.stdout), out.stdout + out.stderr
    assert time.perf_counter() - start < 30


def test_bfs_node_bound_is_the_geometric_series_in_closed_form():
    for k in (1, 2, 3, 7):
        for depth in range(1, 9):
            exact = sum(k ** level for level in range(1, depth + 1))
            assert max_tree_nodes(k, depth, cap=10**9) == exact
    assert max_tree_nodes(2, 10**9, cap=10_000) is None  # certainly more than the cap
    assert max_tree_nodes(1, 10**9, cap=10_000) == 10**9


@pytest.mark.model
def test_expand_with_k_20000_on_the_default_model_takes_no_k_by_vocab_matrix(default_session):
    s = default_session
    tree = s.tree("The capital of France is")
    start = time.perf_counter()
    kids = s.expand(tree, tree.root_id, k=20_000)  # used to ask for 7.8 GB
    assert time.perf_counter() - start < 10
    assert [k.rank for k in kids[:3]] == [0, 1, 2] and len(kids) == 20_000


@pytest.mark.model
def test_beam_with_20000_beams_on_the_default_model_is_refused_in_under_2_s(default_session,
                                                                          monkeypatch):
    # 20000 beams x 49152 logits need ~40 GB: refused on any machine with less than ~80 GB free
    monkeypatch.setattr(step_memory, "available_host_bytes", lambda: 64 << 30)
    start = time.perf_counter()
    with pytest.raises(StepMemoryError, match=r"num_beams=20000 .* needs about .* GiB"):
        default_session.generate("Hi", strategy="beam", num_beams=20_000, max_new_tokens=4)
    assert time.perf_counter() - start < 2
