"""SMC helpers: log-weight normalisation, effective sample size and resampling schemes.

Pure numpy. Every resampler takes normalised weights [N] (non-negative, sum 1) and a
``numpy.random.Generator`` and returns N ancestor indices as an int64 array SORTED ascending
(particles are exchangeable, and sorted ancestors keep genealogies readable). All four are
unbiased: E[count of i] = N * w_i. References: Douc, Cappé & Moulines (2005), "Comparison of
resampling schemes for particle filtering".
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def _logsumexp(values: np.ndarray) -> float:
    top = np.max(values)
    if top == -np.inf:
        return -np.inf
    return float(top + np.log(np.sum(np.exp(values - top))))


def _check_log_weights(log_w) -> np.ndarray:
    log_w = np.asarray(log_w, dtype=np.float64)
    if log_w.ndim != 1 or log_w.size == 0:
        raise ValueError(f"log_weights must be a non-empty 1-D array, got shape {log_w.shape}")
    if np.isnan(log_w).any() or (log_w == np.inf).any():
        raise ValueError("log_weights must not contain NaN or +inf (-inf means weight 0)")
    if (log_w == -np.inf).all():
        raise ValueError("log_weights are all -inf: every particle has weight 0, nothing to "
                         "normalise")
    return log_w


def normalize_log_weights(log_w) -> tuple[np.ndarray, float]:
    """(log_w - logsumexp(log_w), logsumexp(log_w)); -inf entries stay -inf.

    The log-sum is the log of the total unnormalised weight (what the log marginal-likelihood
    estimate accumulates, minus log N)."""
    log_w = _check_log_weights(log_w)
    log_sum = _logsumexp(log_w)
    return log_w - log_sum, log_sum


def ess(log_w) -> float:
    """Effective sample size 1 / sum(w_norm^2) in [1, N], from unnormalised log-weights.

    Computed in log space, exp(2 lse(log_w) - lse(2 log_w)), so huge or tiny weights are fine."""
    log_w = _check_log_weights(log_w)
    return float(np.exp(2 * _logsumexp(log_w) - _logsumexp(2 * log_w)))


def _check_weights(weights) -> np.ndarray:
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 1 or weights.size == 0:
        raise ValueError(f"weights must be a non-empty 1-D array, got shape {weights.shape}")
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise ValueError("weights must be finite and >= 0")
    if abs(weights.sum() - 1) > 1e-6:
        raise ValueError(f"weights must sum to 1 (got {weights.sum():.8g}); "
                         "use normalize_log_weights first")
    return weights / weights.sum()  # remove rounding drift


def _cumulative(weights: np.ndarray) -> np.ndarray:
    cumsum = np.cumsum(weights)
    cumsum /= cumsum[-1]
    cumsum[-1] = 1.0  # so every u in [0, 1) lands on a valid index
    return cumsum


def _invert(weights: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Index i with cumsum[i-1] <= u < cumsum[i]: zero-weight indices are never chosen."""
    return np.searchsorted(_cumulative(weights), uniforms, side="right").astype(np.int64)


def multinomial(weights, rng: np.random.Generator) -> np.ndarray:
    """N i.i.d. draws from Categorical(weights). Highest variance of the four."""
    weights = _check_weights(weights)
    return np.sort(_invert(weights, rng.random(weights.size)))


def stratified(weights, rng: np.random.Generator) -> np.ndarray:
    """One independent uniform in each stratum [k/N, (k+1)/N).

    The count of i is NOT always floor/ceil of N*w_i (its interval can touch two extra
    strata), only within one of them: floor(N*w_i) - 1 <= count <= ceil(N*w_i) + 1."""
    weights = _check_weights(weights)
    n = weights.size
    return _invert(weights, (np.arange(n) + rng.random(n)) / n)


def systematic(weights, rng: np.random.Generator) -> np.ndarray:
    """One shared uniform shifted by k/N: the count of i is floor(N*w_i) or ceil(N*w_i)."""
    weights = _check_weights(weights)
    n = weights.size
    return _invert(weights, (np.arange(n) + rng.random()) / n)


def residual(weights, rng: np.random.Generator) -> np.ndarray:
    """floor(N*w_i) deterministic copies of i, the remaining R draws multinomial on the
    fractional parts (Liu & Chen 1998). count >= floor(N*w_i); it can exceed ceil(N*w_i)
    when a residual is drawn twice (only systematic guarantees floor/ceil)."""
    weights = _check_weights(weights)
    n = weights.size
    scaled = n * weights
    copies = np.floor(scaled).astype(np.int64)
    n_rest = n - int(copies.sum())
    ancestors = np.repeat(np.arange(n, dtype=np.int64), copies)
    if n_rest > 0:
        fractions = scaled - copies
        drawn = _invert(fractions / fractions.sum(), rng.random(n_rest))
        ancestors = np.concatenate([ancestors, drawn])
    return np.sort(ancestors)


Resampler = Callable[[np.ndarray, np.random.Generator], np.ndarray]

RESAMPLERS: dict[str, Resampler] = {
    "multinomial": multinomial,
    "systematic": systematic,
    "stratified": stratified,
    "residual": residual,
}


def resample(scheme: str, weights, rng: np.random.Generator) -> np.ndarray:
    """Ancestor indices [N] (sorted) from the scheme named ``scheme``."""
    if scheme not in RESAMPLERS:
        raise ValueError(f"unknown resampling scheme {scheme!r}; valid: {', '.join(RESAMPLERS)}")
    return RESAMPLERS[scheme](weights, rng)
