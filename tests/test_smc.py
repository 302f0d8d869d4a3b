"""SMC strategy: weights, unbiased marginal likelihood, resampling, genealogy, tree meta, errors.

The unbiasedness tests enumerate every sequence of a tiny random Llama (vocabulary of 8 words)
exactly and compare the mean of exp(log_ml) over many seeded runs with the true normaliser."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

import inferviz as iv
from inferviz.processors import SamplerSettings, process
from inferviz.strategies import smc

WORDS = ["<unk>", "</s>", "a", "b", "c", "d", "e", "f"]
EOS = 1
PROMPT = "a b"
STEPS = 3


@pytest.fixture(scope="module")
def tiny():
    """A Session over a random 1-layer Llama with an 8-word vocabulary and peaked logits."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 16-wide model: threads only add overhead
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>",
                                        eos_token="</s>", pad_token="<unk>")
    config = LlamaConfig(vocab_size=len(WORDS), hidden_size=16, intermediate_size=32,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=64, bos_token_id=None, eos_token_id=EOS,
                         pad_token_id=0, tie_word_embeddings=False)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        model.lm_head.weight.normal_(0.0, 0.6)  # logits of spread ~2: far from uniform
    yield iv.Session(model, tokenizer, name="tiny", kv_budget_tokens=4096)
    torch.set_num_threads(threads)


def likes_a(text: str) -> float:
    """A potential: +1.5 per "a", -1 per "c", and "dd" rules a text out (so do its extensions)."""
    return -math.inf if "dd" in text else 1.5 * text.count("a") - text.count("c")


def exact_normaliser(session, settings: SamplerSettings, potential=None,
                     steps: int = STEPS) -> float:
    """Z = sum over completed sequences x in the proposal's support of p(x) exp(potential(x)),
    p the raw model (float64), by enumerating the tree (EOS or ``steps`` tokens end a sequence)."""
    prompt_ids = session.encode(PROMPT)

    def visit(ids: list[int], log_p: float) -> float:
        text = "".join(session.token_bytes(t).decode() for t in ids[len(prompt_ids):])
        done = len(ids) - len(prompt_ids) == steps or (len(ids) > len(prompt_ids)
                                                       and ids[-1] == EOS)
        if done:
            return math.exp(log_p + (potential(text) if potential else 0.0))
        with torch.no_grad():
            logits = session.model(torch.tensor([ids])).logits[0, -1].double()
        logprobs = torch.log_softmax(logits, -1)
        kept = torch.isfinite(process(logits.float(), settings)).nonzero().flatten().tolist()
        return sum(visit(ids + [t], log_p + float(logprobs[t])) for t in kept)

    return visit(prompt_ids, 0.0)


def ml_estimates(session, runs: int, **params) -> np.ndarray:
    return np.array([math.exp(session.generate(PROMPT, strategy="smc", max_new_tokens=STEPS,
                                               seed=seed, **params).log_ml)
                     for seed in range(runs)])


def inferactive_weights(dists, rows, tokens, settings):
    """InferActive's increment: log p(token), although the token came from the top-k proposal."""
    return dists.logprobs[torch.as_tensor(rows), torch.as_tensor(tokens)].double().numpy()


# ------------------------------------------------------------------ unbiasedness, exactly
@pytest.mark.parametrize("potential, resampling, threshold", [
    (None, "multinomial", 0.5),
    (likes_a, "systematic", 1.0),  # resample at every step: the mean-weight bookkeeping counts
], ids=["top_k", "top_k+potential"])
def test_mean_of_exp_log_ml_matches_the_enumerated_normaliser(tiny, potential, resampling,
                                                              threshold):
    z = exact_normaliser(tiny, SamplerSettings(top_k=3), potential)
    est = ml_estimates(tiny, 200, particles=4, top_k=3, potential=potential,
                       resampling=resampling, ess_threshold=threshold)
    stderr = est.std(ddof=1) / math.sqrt(est.size)
    print(f"Z={z:.5f} mean={est.mean():.5f} stderr={stderr:.5f} "
          f"z-score={(est.mean() - z) / stderr:+.2f}")
    assert z < 0.99 * exact_normaliser(tiny, SamplerSettings(), potential)  # truncation matters
    assert abs(est.mean() - z) < 4 * stderr


def test_inferactive_weighting_misses_the_normaliser_by_many_sigma(tiny, monkeypatch):
    z = exact_normaliser(tiny, SamplerSettings(top_k=3))
    monkeypatch.setattr(smc, "incremental_log_weights", inferactive_weights)
    est = ml_estimates(tiny, 60, particles=4, top_k=3)
    stderr = est.std(ddof=1) / math.sqrt(est.size)
    print(f"InferActive: Z={z:.5f} mean={est.mean():.5f} z-score={(est.mean() - z) / stderr:+.1f}")
    assert abs(est.mean() - z) > 10 * stderr


def test_kept_mass_increment_equals_log_p_minus_log_q_for_truncation(tiny):
    tree = tiny.tree(PROMPT)
    settings = SamplerSettings(top_k=3, top_p=0.9)
    dists = tiny.distributions(tree, [tree.root_id], settings)
    kept = dists.probs[0].nonzero().flatten().numpy()
    rows = np.zeros(kept.size, dtype=np.int64)
    fast = smc.incremental_log_weights(dists, rows, kept, settings)
    general = (dists.logprobs[0, kept].double() - dists.probs[0, kept].double().log()).numpy()
    np.testing.assert_allclose(fast, general, atol=1e-5)
    assert np.all(fast == fast[0]) and fast[0] < 0  # one value: log of the kept mass


# ------------------------------------------------------------------ weights and resampling
@pytest.mark.model
def test_proposal_equal_to_target_keeps_every_log_weight_exactly_zero():
    s = iv.Session.from_pretrained("default")
    res = s.generate("The capital of France is", strategy="smc", particles=6, max_new_tokens=4,
                     seed=0)
    assert res.log_ml == 0.0
    assert all(w == 0.0 for _, w in res.particles)
    assert res.genealogy().log_weight.eq(0.0).all()
    assert res.resampling_events == [] and res.ess == [6.0] * len(res.ess)


def test_resampling_happens_when_ess_drops_and_sets_every_weight_to_the_mean(tiny):
    def strong(text: str) -> float:
        return 4.0 * text.count("f")

    res = tiny.generate(PROMPT, strategy="smc", particles=8, max_new_tokens=5, seed=1,
                        potential=strong, ess_threshold=0.9)  # identity proposal: inc = d-phi
    assert res.resampling_events, "a potential this strong must trigger resampling"
    g, tree = res.genealogy(), res.tree
    text = {n: tree.completion(n) for n in g.node_id.unique()}
    for event in res.resampling_events:
        t, before = event["step"], g[g.step == event["step"]]
        if t == g.step.max():
            continue  # resampled onto finished particles only: the run ended there
        assert min(res.ess[t - 1], 8) < 0.9 * 8
        mean = np.logaddexp.reduce(before.log_weight.to_numpy()) - math.log(8)
        after = g[g.step == t + 1].reset_index()
        prev = before.set_index("particle").loc[after.ancestor, "node_id"].to_numpy()
        # log_w(t+1) = mean + phi(new text) - phi(ancestor's text), for every particle
        carried = [lw - strong(text[n]) + strong(text[p])
                   for lw, n, p in zip(after.log_weight, after.node_id, prev)]
        np.testing.assert_allclose(carried, mean, atol=1e-9)
        assert sorted(event["ancestors"]) == list(after.ancestor)


def test_genealogy_ancestors_point_to_the_previous_steps_particles(tiny):
    res = tiny.generate(PROMPT, strategy="smc", particles=8, max_new_tokens=4, seed=3,
                        top_k=4, potential=likes_a, ess_threshold=1.0)
    g, tree = res.genealogy(), res.tree
    assert list(g.columns) == ["step", "particle", "node_id", "ancestor", "log_weight",
                               "weight", "finished", "resampled"]
    for t in range(1, g.step.max() + 1):
        now, prev = g[g.step == t], g[g.step == t - 1].set_index("particle")
        for _, row in now.iterrows():
            parent_row = prev.loc[row.ancestor]
            node = tree.node(row.node_id)
            if parent_row.finished or parent_row.log_weight == -math.inf:
                assert row.node_id == parent_row.node_id  # finished and dead particles stay
            else:
                assert node.parent_id == parent_row.node_id


def test_tree_meta_counts_weights_and_alive_paths(tiny):
    res = tiny.generate(PROMPT, strategy="smc", particles=8, max_new_tokens=4, seed=5,
                        top_k=4, potential=likes_a, ess_threshold=1.0)
    df = res.tree.to_pandas()
    smc_nodes = df[df.smc_step.notna()]
    g = res.genealogy()
    moved = g[g.step >= 1].merge(smc_nodes[["node_id", "smc_step"]], on="node_id")
    for t, rows in smc_nodes.groupby("smc_step"):
        arrived = moved[(moved.step == t) & (moved.smc_step == t)]
        assert rows.smc_count.sum() == len(arrived)
        assert rows.smc_weight.sum() == pytest.approx(arrived.weight.sum())
        assert rows.smc_resampled.nunique() == 1
    alive = set(df.node_id[df.smc_alive.fillna(False).astype(bool)])
    finals = {n for n, w in res.particles if w > -math.inf}
    assert finals <= alive
    assert alive == {p.node_id for n in finals for p in res.tree.path(n)[1:]}
    assert set(res.leaf_ids) == finals
    assert res.scores == sorted(res.scores, reverse=True)
    assert sum(res.posterior.values()) == pytest.approx(1.0)


def test_same_seed_same_run_different_seed_different_run(tiny):
    kw = {"strategy": "smc", "particles": 8, "max_new_tokens": 4, "top_k": 4,
          "potential": likes_a}
    a, b = tiny.generate(PROMPT, seed=7, **kw), tiny.generate(PROMPT, seed=7, **kw)
    assert a.texts == b.texts and a.log_ml == b.log_ml and a.posterior == b.posterior
    assert a.resampling_events == b.resampling_events
    others = [tiny.generate(PROMPT, seed=s, **kw) for s in (8, 9)]
    assert any(o.posterior != a.posterior for o in others)


def test_every_resampling_scheme_runs_and_particlenum_is_an_alias(tiny):
    for scheme in ("multinomial", "systematic", "stratified", "residual"):
        res = tiny.generate(PROMPT, strategy="smc", particlenum=5, max_new_tokens=3, seed=0,
                            potential=likes_a, resampling=scheme, ess_threshold=1.0)
        assert len(res.particles) == 5 and res.params["resampling"] == scheme


# ------------------------------------------------------------------ bad input, tree unchanged
@pytest.mark.parametrize("params, match", [
    ({"particles": 0}, r"particles must be in \[1, 4096\]"),
    ({"particles": 4097}, r"particles must be in \[1, 4096\]"),
    ({"particles": 4, "particlenum": 5}, "alias"),
    ({"ess_threshold": 1.5}, r"ess_threshold must be in \[0.0, 1.0\]"),
    ({"resampling": "bogus"}, "multinomial, systematic, stratified, residual"),
    ({"potential": "not callable"}, "potential must be a callable"),
    ({"temperature": 0}, "temperature"),
])
def test_bad_arguments_raise_before_anything_is_written(tiny, params, match):
    tree = tiny.tree(PROMPT)
    before = tree.to_json()
    with pytest.raises((ValueError, TypeError), match=match):
        tiny.generate(tree, strategy="smc", max_new_tokens=3, seed=0, **params)
    assert tree.to_json() == before


def _raises_late(text: str) -> float:
    if len(text) >= 2:
        raise RuntimeError("boom")
    return 0.0


def _nan_late(text: str) -> float:
    return math.nan if len(text) >= 2 else 0.0


def _never(text: str) -> float:
    return -math.inf


@pytest.mark.parametrize("potential, match", [
    (_raises_late, "potential _raises_late raised RuntimeError: boom"),
    (_nan_late, "potential _nan_late returned nan"),
    (lambda text: True, "returned a bool"),
    (_never, "-inf on the empty text"),
])
def test_failing_potential_names_itself_and_leaves_the_tree_unchanged(tiny, potential, match):
    tree = tiny.tree(PROMPT)
    tiny.expand(tree, tree.root_id, k=2)  # a tree with content, grown before the run
    before = tree.to_json()
    with pytest.raises(ValueError, match=match):
        tiny.generate(tree, strategy="smc", particles=4, max_new_tokens=3, seed=0,
                      potential=potential)
    assert tree.to_json() == before


def test_a_potential_that_rules_everything_out_gives_log_ml_minus_inf(tiny):
    res = tiny.generate(PROMPT, strategy="smc", particles=4, max_new_tokens=3, seed=0,
                        potential=lambda text: 0.0 if text == "" else -math.inf)
    assert res.finish_reason == "zero_weight" and res.log_ml == -math.inf
    assert res.posterior == {} and res.ess == [0.0]
    assert len(res.tree) == 1 + len({n for n, _ in res.particles})


@pytest.mark.parametrize("keep", [5, 100, 1000])
def test_drawing_over_the_support_gives_the_tokens_multinomial_gives(keep):
    """SMC draws over the nonzero entries only (fast for a top-k proposal over a big vocab);
    with the same generator state it must pick exactly what torch.multinomial picks."""
    from inferviz.strategies.common import draw_tokens

    for seed in range(10):
        logits = torch.randn(1000, generator=torch.Generator().manual_seed(seed)) * 3
        probs = torch.softmax(logits, 0)
        probs = torch.where(probs >= torch.topk(probs, keep).values[-1], probs, 0.0)
        probs /= probs.sum()
        fast = draw_tokens(probs, 64, torch.Generator().manual_seed(seed))
        slow = torch.multinomial(probs, 64, replacement=True,
                                 generator=torch.Generator().manual_seed(seed))
        assert torch.equal(fast, slow)
        assert (probs[fast] > 0).all()
