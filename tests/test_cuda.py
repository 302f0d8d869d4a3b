"""The engine and every strategy on CUDA give what transformers gives on the same device and
dtype (float32 and bfloat16): padded and packed layouts, the KV slot store, the tree attention
mask, greedy/beam sequences identical to ``generate``, seeded sampling and SMC, contrastive,
bfs, the logit lens; plus the CUDA memory policy (default KV budget, a full device, close()).

Skipped with "no CUDA device" where there is none (CI). ``INFERVIZ_TEST_DEVICE=cpu`` runs them
on the CPU instead, to check the tests themselves without a GPU.

The models are small random ones (4 layers, head_dim 64) with a sharpened unembedding, so that
bfloat16 rounding cannot flip an argmax between two near-tied tokens.
"""

from __future__ import annotations

import math

import pytest
import torch
from tiny_models import tiny_model, tiny_tokenizer

from inferviz import Session
from inferviz.engine import CUDA_KV_FREE_FRACTION, Engine
from inferviz.kvstore import KVBudgetError

DTYPES = [torch.float32, torch.bfloat16]
FAMILIES = ["llama", "qwen2", "gemma3_text"]
PROMPTS = ["t5 t17 t30", "t40", "t3 t3 t3 t9 t12 t50 t51", "t88 t12"]
SHAPE = dict(hidden_size=256, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
             num_key_value_heads=2, head_dim=64)


def build_model(family: str, device: torch.device, dtype: torch.dtype, seed: int = 0):
    model = tiny_model(family, seed=seed, **SHAPE)
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(8.0)  # peaked next-token distributions
    return model.to(device=device, dtype=dtype)


def build_session(family: str, device, dtype, seed: int = 0, **kwargs) -> Session:
    return Session(build_model(family, device, dtype, seed), tiny_tokenizer(),
                   name=f"{family}-{dtype}", **kwargs)


def logits_close(ours: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype) -> None:
    """Relative error of the logits within what the dtype allows (METHOD: fp32 far under 1e-3,
    bfloat16 between 1e-3 and 1e-2), and the same argmax."""
    ours, ref = ours.detach().float().cpu(), ref.detach().float().cpu()
    assert torch.isfinite(ours).all()
    rel = float((ours - ref).norm() / ref.norm())
    assert rel < (1e-4 if dtype == torch.float32 else 2e-2), rel
    assert torch.equal(ours.argmax(-1), ref.argmax(-1))


@torch.no_grad()
def full_forward(model, seq: list[int]) -> torch.Tensor:
    ids = torch.tensor([seq], device=model.device)
    return model(input_ids=ids, use_cache=False).logits[0, -1]


def random_ids(n: int, seed: int) -> list[int]:
    return torch.randint(3, 97, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


@pytest.fixture(params=DTYPES, ids=["fp32", "bf16"])
def dtype(request):
    return request.param


# ------------------------------------------------------------------ engine
@pytest.mark.parametrize("layout", ["rows", "packed"])
@pytest.mark.parametrize("family", FAMILIES)
def test_engine_layouts_match_a_full_forward_on_the_device(test_device, family, layout, dtype):
    model = build_model(family, test_device, dtype)
    engine = Engine(model, layout=layout)
    prompt = random_ids(30, 1)
    engine.next_logits([prompt])
    engine.next_logits([prompt + [5, 6]])
    seqs = [prompt + [5, 6, 7], prompt + [5], prompt[:10], random_ids(4, 2), prompt + [9],
            random_ids(45, 3)]
    logits = engine.next_logits(seqs)
    for row, seq in enumerate(seqs):
        logits_close(logits[row], full_forward(model, seq), dtype)
    assert engine.store.keys.device.type == test_device.type
    assert engine.store.keys.dtype == dtype
    engine.store.check()


@pytest.mark.parametrize("family", FAMILIES)
def test_tree_level_goes_through_one_packed_forward_with_the_right_logits(test_device, family,
                                                                          dtype):
    model = build_model(family, test_device, dtype)
    engine = Engine(model)  # auto: a tree level shares its past, so it is packed
    prompt = random_ids(20, 4)
    engine.next_logits([prompt])
    level = [prompt + [t] for t in (5, 6, 7, 8)]
    engine.next_logits(level)
    deeper = [seq + [t] for seq in level for t in (10, 11)]
    engine.stats.reset()
    logits = engine.next_logits(deeper)
    assert engine.stats.forwards == 1 and engine.stats.packed == 1
    assert engine.stats.tokens_computed == len(deeper)
    for row, seq in enumerate(deeper):
        logits_close(logits[row], full_forward(model, seq), dtype)


def test_slot_store_evicts_and_recomputes_on_the_device(test_device, dtype):
    model = build_model("llama", test_device, dtype)
    engine = Engine(model, kv_budget_tokens=64)
    seqs = [random_ids(40, 10 + i) for i in range(4)]
    for seq in seqs:  # each 40-token prompt evicts the previous one
        logits_close(engine.next_logits([seq])[0], full_forward(model, seq), dtype)
    assert engine.store.evictions > 0
    logits_close(engine.next_logits([seqs[0] + [7]])[0], full_forward(model, seqs[0] + [7]),
                 dtype)
    engine.store.check()


# ------------------------------------------------------------------ strategies
def hf_generate(session: Session, prompt: str, max_new_tokens: int, **kwargs):
    ids = torch.tensor([session.encode(prompt)], device=session.device)
    with torch.no_grad():
        out = session.model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
            eos_token_id=sorted(session.eos_token_ids), pad_token_id=session.tokenizer.pad_token_id,
            return_dict_in_generate=True, output_scores=True, **kwargs)
    return ids.shape[1], out


@pytest.mark.parametrize("family", FAMILIES)
def test_greedy_equals_transformers_generate_on_the_device(test_device, family, dtype):
    session = build_session(family, test_device, dtype)
    for prompt in PROMPTS:
        res = session.generate(prompt, strategy="greedy", max_new_tokens=16)
        n, out = hf_generate(session, prompt, 16, do_sample=False)
        theirs = out.sequences[0, n:].tolist()
        assert theirs[: len(res.token_ids)] == res.token_ids, prompt
        assert len(res.token_ids) == 16 or res.token_ids[-1] in session.eos_token_ids


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_beam_equals_transformers_beam_on_the_device(test_device, family, dtype):
    session = build_session(family, test_device, dtype)
    pad = session.tokenizer.pad_token_id or min(session.eos_token_ids)
    for prompt in PROMPTS:
        res = session.generate(prompt, strategy="beam", num_beams=4, num_return_sequences=2,
                               max_new_tokens=10)
        n, out = hf_generate(session, prompt, 10, do_sample=False, num_beams=4,
                             num_return_sequences=2)
        for i, leaf in enumerate(res.leaf_ids):
            ours = res.tree.token_ids(leaf)[n:]
            theirs = out.sequences[i, n:].tolist()
            same = theirs[: len(ours)] == ours and all(t == pad for t in theirs[len(ours):])
            score, hf_score = res.scores[i], float(out.sequences_scores[i])
            if dtype == torch.float32:
                assert same and score == pytest.approx(hf_score, abs=1e-4), (prompt, i)
            else:
                # bfloat16: hypotheses whose scores tie within rounding (~1e-2 here) may swap
                # places; the i-th best score is the same number either way.
                assert score == pytest.approx(hf_score, abs=1e-2), (prompt, i)
                if i == 0:
                    assert same or abs(score - res.scores[1]) < 1e-2, prompt


def test_seeded_sampling_gives_the_cpu_float32_tokens(test_device):
    """Draws happen on the CPU from the processed distribution, so a seed gives the same
    tokens on the device as on the CPU (float32: the distributions agree to ~1e-6)."""
    here = build_session("llama", test_device, torch.float32)
    cpu = build_session("llama", torch.device("cpu"), torch.float32)
    for seed in (0, 1, 2):
        kwargs = dict(strategy="sample", temperature=1.3, top_p=0.95, max_new_tokens=12,
                      seed=seed, stop_at_eos=False)
        a, b = here.generate("t5 t6", **kwargs), here.generate("t5 t6", **kwargs)
        assert a.token_ids == b.token_ids
        assert a.token_ids == cpu.generate("t5 t6", **kwargs).token_ids


def test_smc_on_the_device_is_reproducible_and_agrees_with_the_cpu(test_device):
    here = build_session("qwen2", test_device, torch.float32)
    cpu = build_session("qwen2", torch.device("cpu"), torch.float32)
    kwargs = dict(strategy="smc", particles=16, top_k=20, max_new_tokens=8, seed=3)
    a, b, c = (s.generate("t7 t8", **kwargs) for s in (here, here, cpu))
    assert a.texts == b.texts and a.log_ml == b.log_ml
    assert a.texts == c.texts
    assert math.isfinite(a.log_ml) and a.log_ml == pytest.approx(c.log_ml, abs=1e-4)


def test_contrastive_picks_the_argmax_of_device_scores(test_device, dtype):
    from inferviz.strategies.contrastive import contrastive_scores

    expert = build_session("llama", test_device, dtype)
    amateur = build_session("llama", test_device, dtype, seed=1)
    res = expert.generate("t5 t6 t7", strategy="contrastive", amateur=amateur, alpha=0.1,
                          max_new_tokens=6, stop_at_eos=False)
    tree = res.tree
    for node in tree.path(res.leaf_ids[0])[1:]:
        ids = tree.token_ids(node.parent_id)
        e, a = full_forward(expert.model, ids).float(), full_forward(amateur.model, ids).float()
        scores = contrastive_scores(e.cpu(), a.cpu(), 0.1, 0.5)
        assert node.token_id == int(scores.argmax())


def test_bfs_children_are_the_device_top_k(test_device, dtype):
    session = build_session("qwen2", test_device, dtype)
    tree = session.tree("t5 t6")
    session.generate(tree, strategy="bfs", k=3, depth=3, stop_at_eos=False)
    assert len(tree) == 1 + 3 + 9 + 27
    for node in tree.nodes.values():
        if node.depth < 3:
            want = torch.topk(full_forward(session.model, tree.token_ids(node.node_id)).float(),
                              3).indices.tolist()
            assert [c.token_id for c in tree.children(node.node_id)] == want


def test_lens_last_layer_is_the_model_logits_on_the_device(test_device, dtype):
    from inferviz.lens import capture_residuals

    session = build_session("llama", test_device, dtype)
    ids = torch.tensor([session.encode("t5 t6 t7 t8")], device=test_device)
    with torch.no_grad(), capture_residuals(session.adapter) as states:
        logits = session.model(ids).logits[0]
    logits_close(session.adapter.lens_logits(states[-1][0]), logits, dtype)
    lens = session.logit_lens("t5 t6 t7 t8", k=3)
    assert (lens.token_ids[-1, :, 0] == logits.argmax(-1).cpu().numpy()).all()


# ------------------------------------------------------------------ memory (CUDA only)
def test_default_kv_budget_is_a_fraction_of_free_gpu_memory(cuda_device):
    model = build_model("llama", cuda_device, torch.bfloat16)
    free, _ = torch.cuda.mem_get_info(cuda_device)
    engine = Engine(model)
    per_token = 2 * 4 * 2 * 64 * 2  # keys+values, 4 layers, 2 kv heads, head_dim 64, bf16
    expected = int(free * CUDA_KV_FREE_FRACTION) // per_token
    assert abs(engine.store.budget_tokens - expected) <= 0.02 * expected


def test_full_gpu_gives_a_clear_error_or_a_capped_pool_never_an_oom(cuda_device):
    """Fill the GPU but a few MiB, then grow a tree past them: the pool stops growing and
    evicts, batches split, and what cannot fit raises KVBudgetError, not a CUDA OOM."""
    model = build_model("llama", cuda_device, torch.bfloat16)
    engine = Engine(model, kv_budget_tokens=1 << 22)
    prompt = random_ids(100, 30)
    engine.next_logits([prompt])
    torch.cuda.empty_cache()
    free, _ = torch.cuda.mem_get_info(cuda_device)
    hog = torch.empty(free - (24 << 20), dtype=torch.uint8, device=cuda_device)
    try:
        seqs = [prompt + random_ids(150, 40 + i) for i in range(64)]
        try:
            logits = engine.next_logits(seqs)
        except KVBudgetError as err:
            assert "kv_budget_tokens" in str(err) or "clear_cache" in str(err)
        else:
            del hog
            hog = None
            for row in (0, 31, 63):
                logits_close(logits[row], full_forward(model, seqs[row]), torch.bfloat16)
        assert engine.store.memory_capped or engine.stats.splits > 0
        engine.store.check()
    finally:
        del hog
        torch.cuda.empty_cache()


def test_close_gives_the_gpu_memory_back(cuda_device):
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    baseline = torch.cuda.memory_allocated(cuda_device)
    with build_session("llama", cuda_device, torch.bfloat16) as session:
        tree = session.tree("t5 t6")
        session.generate(tree, strategy="bfs", k=4, depth=3, stop_at_eos=False)
        assert torch.cuda.memory_allocated(cuda_device) > baseline + (1 << 20)
    assert session.closed
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated(cuda_device) - baseline < (1 << 20)
    with pytest.raises(RuntimeError, match="closed"):
        session.expand(tree, tree.root_id, k=2)
