"""SMC with a constraint as its potential targets the constrained posterior p(x | x in L), and
its log_ml estimates log P(L): checked on a problem small enough to enumerate exactly (a tiny
model, a regex of six strings). The enumeration reads the model with full forwards of its own
and checks every string it counts with Python's `re`."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

import inferviz as iv

PATTERN = r"[ab]{1,2}"
HORIZON = 3  # two characters and the end of sequence: every sequence of L ends in time


@pytest.fixture(scope="module")
def session(tiny_tokenizer):
    from tiny_models import tiny_model

    tok = tiny_tokenizer
    model = tiny_model("llama", vocab_size=len(tok), eos_token_id=0, pad_token_id=0,
                       bos_token_id=0, seed=3)
    return iv.Session(model, tok, name="tiny")


def _exact(session, prompt: str) -> tuple[float, dict[str, float]]:
    """P(L) and the constrained posterior over texts, by enumerating every token sequence
    the regex allows (llguidance masks, each complete text re-checked with `re`)."""
    import llguidance
    import llguidance.torch as llg_torch

    from inferviz.constraint_masks import llg_tokenizer

    tokenizer = llg_tokenizer(session)
    grammar = llguidance.LLMatcher.grammar_from_regex(PATTERN)
    eos = 0
    posterior: dict[str, float] = {}

    def forward(ids):
        with torch.no_grad():
            logits = session.model(torch.tensor([ids])).logits[0, -1].double()
        return torch.log_softmax(logits, -1)

    def walk(ids, matcher, text, logp, depth):
        mask = llg_torch.allocate_token_bitmask(1, session.vocab_size)
        llg_torch.fill_next_token_bitmask(matcher, mask, 0)
        bits = ((mask.unsqueeze(-1) >> torch.arange(32, dtype=torch.int32)) & 1)
        legal = bits.reshape(-1)[: session.vocab_size].bool()
        if not matcher.is_accepting():
            legal[eos] = False
        raw = forward(ids)
        for tok in legal.nonzero().flatten().tolist():
            lp = logp + float(raw[tok])
            if tok == eos:
                assert re.fullmatch(PATTERN, text), text  # an independent check of the mask
                posterior[text] = posterior.get(text, 0.0) + math.exp(lp)
                continue
            piece = session.tokenizer.decode([tok])
            assert depth + 1 < HORIZON, "every string of L ends before the horizon"
            child = matcher.deep_copy()
            child.consume_token(tok)
            walk(ids + [tok], child, text + piece, lp, depth + 1)

    ids = session.encode(prompt)
    walk(ids, llguidance.LLMatcher(tokenizer, grammar), "", 0.0, 0)
    total = sum(posterior.values())
    assert set(posterior) == {"a", "b", "aa", "ab", "ba", "bb"}
    return total, {t: p / total for t, p in posterior.items()}


SEEDS = 400


@pytest.fixture(scope="module")
def runs(session):
    """``(Z estimate, posterior)`` of SEEDS constrained SMC runs."""
    out = []
    for seed in range(SEEDS):
        res = session.generate("Hello", "smc", particles=8, seed=seed, max_new_tokens=HORIZON,
                               constraint=iv.Regex(PATTERN))
        # posterior texts as generated: the final end of sequence shows as "<eos>"
        post = {t.removesuffix("<eos>"): w for t, w in res.posterior.items()}
        out.append((math.exp(res.log_ml), post))
    return out


def test_smc_under_a_constraint_estimates_the_constrained_marginal_unbiasedly(session, runs):
    exact, _ = _exact(session, "Hello")
    z = np.array([zhat for zhat, _ in runs])
    se = z.std(ddof=1) / math.sqrt(len(z))
    print(f"P(L) exact {exact:.6e}, SMC mean {z.mean():.6e} +- {se:.2e} ({SEEDS} seeds)")
    assert abs(z.mean() - exact) <= 3 * se + 1e-9 * exact
    assert z.std() > 0  # single runs do differ from the exact value: not a trivial agreement


def test_smc_under_a_constraint_weighs_each_text_by_its_constrained_posterior(session, runs):
    """E[Z_hat * posterior(x)] = P(L) * p(x | L) = P(x) for SMC: the mean over runs of each
    text's weighted estimate matches the exact probability of the text (z-scores, summed into
    a chi-square statistic), and the pooled posterior matches p(x | L)."""
    total, exact = _exact(session, "Hello")
    texts = sorted(exact)
    y = np.array([[zhat * post.get(t, 0.0) for t in texts] for zhat, post in runs])
    assert all(t in exact for _, post in runs for t in post)
    mean, se = y.mean(0), y.std(0, ddof=1) / math.sqrt(len(y))
    target = np.array([exact[t] * total for t in texts])
    zscores = (mean - target) / se
    stat = float((zscores ** 2).sum())
    dof = len(texts)
    p_value = float(torch.special.gammaincc(torch.tensor(dof / 2.0, dtype=torch.float64),
                                            torch.tensor(stat / 2.0, dtype=torch.float64)))
    pooled = mean / mean.sum()
    print(f"posterior: exact {dict(zip(texts, np.round([exact[t] for t in texts], 4)))}, "
          f"SMC {dict(zip(texts, np.round(pooled, 4)))}; chi-square {stat:.2f} (dof {dof}), "
          f"p = {p_value:.3f}")
    assert p_value > 0.001
    assert np.abs(pooled - np.array([exact[t] for t in texts])).max() < 0.05
