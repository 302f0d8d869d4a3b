"""Logits processors as pure functions: raw logits [..., V] in, a new processed array out.

Each function matches the corresponding ``transformers.generation.logits_process`` class
element-wise (same comparisons, same tie handling); filtered entries become ``-inf``.
``process`` applies them in the order ``GenerationMixin.generate`` does, so the processed
distribution here is the one ``generate(do_sample=True, ...)`` samples from.

Logits are a torch tensor (a local model: the same torch ops as the warpers) or a numpy array
(a server's top N: no torch imported); one implementation through :mod:`inferviz.arrays`.
"""

from __future__ import annotations

import math
from typing import Any

from .arrays import Array, namespace
from .logit_check import check_logits
from .sampler_params import PARAMS, ParamSpec

FILTERED = -math.inf


def _check_logits(logits: Any) -> None:
    if not (namespace(logits).is_floating(logits) and logits.ndim >= 1):
        raise ValueError("logits must be a floating-point torch.Tensor or numpy array of "
                         "shape [..., V]")


def _rows(logits: Any) -> Any:
    """View [..., V] as [N, V] (the HF warpers index dim 1)."""
    return logits.reshape(-1, logits.shape[-1])


def apply_temperature(logits: Array, temperature: float) -> Array:
    """logits / temperature (TemperatureLogitsWarper)."""
    _check_logits(logits)
    PARAMS["temperature"].check(temperature)
    return logits / temperature


def apply_top_k(logits: Array, top_k: int, min_tokens_to_keep: int = 1) -> Array:
    """Keep the top_k largest logits; ties with the k-th value are kept (TopKLogitsWarper)."""
    _check_logits(logits)
    PARAMS["top_k"].check(top_k)
    PARAMS["min_tokens_to_keep"].check(min_tokens_to_keep)
    xp = namespace(logits)
    k = min(max(top_k, min_tokens_to_keep), logits.shape[-1])
    kth_value = xp.topk(logits, k)[0][..., -1:]
    return xp.masked_fill(logits, logits < kth_value, FILTERED)


def apply_top_p(logits: Array, top_p: float, min_tokens_to_keep: int = 1) -> Array:
    """Keep the smallest most-probable set whose probability reaches top_p (TopPLogitsWarper).

    top_p == 1 keeps everything (generate skips the warper then)."""
    _check_logits(logits)
    PARAMS["top_p"].check(top_p)
    PARAMS["min_tokens_to_keep"].check(min_tokens_to_keep)
    xp = namespace(logits)
    if top_p == 1:
        return xp.clone(logits)
    rows = _rows(logits)
    sorted_logits, sorted_indices = xp.sort(rows)
    cumulative_probs = xp.cumsum(xp.softmax(sorted_logits))
    # Ascending order: drop the low tail whose total stays within 1 - top_p.
    sorted_remove = cumulative_probs <= (1 - top_p)
    sorted_remove[..., -min_tokens_to_keep:] = False
    remove = xp.scatter(sorted_remove, sorted_indices, sorted_remove)
    return xp.masked_fill(rows, remove, FILTERED).reshape(logits.shape)


def apply_min_p(logits: Array, min_p: float, min_tokens_to_keep: int = 1) -> Array:
    """Keep tokens with p >= min_p * p_max: RELATIVE to the top probability (MinPLogitsWarper).

    (An absolute threshold p >= min_p is a different, wrong filter: with a flat distribution it
    removes everything but min_tokens_to_keep.)"""
    _check_logits(logits)
    PARAMS["min_p"].check(min_p)
    PARAMS["min_tokens_to_keep"].check(min_tokens_to_keep)
    xp = namespace(logits)
    probs = xp.softmax(logits)
    remove = probs < min_p * xp.max_keep(probs)
    k = min(min_tokens_to_keep, logits.shape[-1])
    remove = xp.scatter(remove, xp.topk(probs, k)[1], False)
    return xp.masked_fill(logits, remove, FILTERED)


def apply_typical_p(
    logits: Array, typical_p: float, min_tokens_to_keep: int = 1
) -> Array:
    """Locally typical sampling (Meister et al. 2022), as TypicalLogitsWarper: keep the tokens
    whose surprisal is closest to the entropy until their mass reaches typical_p."""
    _check_logits(logits)
    PARAMS["typical_p"].check(typical_p)
    PARAMS["min_tokens_to_keep"].check(min_tokens_to_keep)
    xp = namespace(logits)
    rows = _rows(logits)
    log_probs = xp.log_softmax(rows)
    entropy = -xp.nansum_product_keep(log_probs, xp.exp(log_probs))
    distance = abs(-log_probs - entropy)
    sorted_distance, sorted_indices = xp.sort(distance)
    cumulative_probs = xp.cumsum(xp.softmax(xp.gather(rows, sorted_indices)))
    last_index = xp.clamp_max((cumulative_probs < typical_p).sum(1), rows.shape[-1] - 1)
    sorted_remove = sorted_distance > xp.gather(sorted_distance, last_index.reshape(-1, 1))
    sorted_remove[..., :min_tokens_to_keep] = False
    remove = xp.scatter(sorted_remove, sorted_indices, sorted_remove)
    return xp.masked_fill(rows, remove, FILTERED).reshape(logits.shape)


def apply_repetition_penalty(
    logits: Array, input_ids: Array, penalty: float
) -> Array:
    """CTRL repetition penalty (RepetitionPenaltyLogitsProcessor): each token id present in
    input_ids [..., T] gets logit * penalty if negative, logit / penalty otherwise (once, however
    often it occurs). Ids >= V (embedding larger than the head) are ignored, as in HF."""
    _check_logits(logits)
    PARAMS["repetition_penalty"].check(penalty)
    xp = namespace(logits)
    if not xp.is_integer(input_ids):
        raise ValueError("input_ids must be an integer array of shape [..., T], a torch.Tensor "
                         "for tensor logits, a numpy array for numpy logits")
    if tuple(input_ids.shape[:-1]) != tuple(logits.shape[:-1]):
        raise ValueError(f"input_ids shape {tuple(input_ids.shape)} must match logits "
                         f"{tuple(logits.shape)} in all but the last dimension")
    if math.prod(input_ids.shape) and int(input_ids.min()) < 0:
        raise ValueError("input_ids must be >= 0 (no padding ids)")
    vocab_size = logits.shape[-1]
    ids = xp.clamp_max(xp.index(input_ids.reshape(-1, input_ids.shape[-1])), vocab_size)
    # One padding column absorbs out-of-vocabulary ids, then is dropped.
    padded = xp.pad_one(_rows(logits))
    picked = xp.gather(padded, ids)
    picked = xp.where(picked < 0, picked * penalty, picked / penalty)
    return xp.scatter(padded, ids, picked)[:, :vocab_size].reshape(logits.shape)


class SamplerSettings:
    """Processor settings, one keyword argument per row of :mod:`inferviz.sampler_params`
    (``temperature``, ``top_k``, ``top_p``, ``min_p``, ``typical_p``, ``repetition_penalty``,
    ``min_tokens_to_keep`` and any registered processor's); None switches a processor off.
    Validated on construction; immutable, compared and hashed by value."""

    __slots__ = ("_values",)

    def __init__(self, **values: Any) -> None:
        unknown = sorted(set(values) - set(PARAMS))
        if unknown:
            raise TypeError(f"SamplerSettings got unexpected keyword argument(s) {unknown}; "
                            f"allowed: {list(PARAMS)}")
        checked = {}
        for spec in PARAMS.values():
            value = values.get(spec.name, spec.default)
            if value is not None or not spec.optional:
                spec.check(value)
            checked[spec.name] = value
        object.__setattr__(self, "_values", checked)

    def __getattr__(self, name: str) -> Any:
        try:
            return object.__getattribute__(self, "_values")[name]
        except KeyError:
            raise AttributeError(f"SamplerSettings has no setting {name!r}; settings: "
                                 f"{list(PARAMS)}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"SamplerSettings is immutable: make a new one with {name}=...")

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, SamplerSettings) and self._values == other._values

    def __hash__(self) -> int:
        return hash(tuple(self._values.items()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={value!r}" for name, value in self._values.items())
        return f"SamplerSettings({inner})"

    def active(self) -> list[tuple[ParamSpec, Any]]:
        """``(row, value)`` of each processor that changes logits here, in the order
        ``process`` applies them."""
        return [(PARAMS[name], value) for name, value in self._values.items()
                if name in PARAMS and PARAMS[name].is_active(value)]

    @property
    def is_identity(self) -> bool:
        """True when ``process`` returns the logits unchanged for any vocabulary."""
        return not self.active()

    def to_dict(self) -> dict[str, Any]:
        return dict(self._values)


def process(
    logits: Array, settings: SamplerSettings, input_ids: Array | None = None
) -> Array:
    """Apply every active processor of ``settings`` to logits [..., V]; returns a new array
    of the same kind (``input_ids`` [..., T] the same kind as ``logits``).

    Order and skip rules follow transformers 5.x ``GenerationMixin._get_logits_processor``:
    the repetition penalty is among the processors appended before the sampling warpers
    (skipped when == 1.0); then, with do_sample, temperature (skipped when == 1.0), top_k,
    top_p (skipped when == 1.0), min_p (after temperature, as llama.cpp), typical_p; then
    any registered processor (:func:`inferviz.sampler_params.register_processor`).
    """
    if not isinstance(settings, SamplerSettings):
        raise TypeError(f"settings must be a SamplerSettings, got {type(settings).__name__}")
    _check_logits(logits)
    keep = settings.min_tokens_to_keep
    out = namespace(logits).clone(logits)
    for spec, value in settings.active():  # sampler_params.PARAMS: its order, its skip rules
        out = spec.run(out, value, keep, input_ids)
    return out


def processed_probs(
    logits: Array, settings: SamplerSettings, input_ids: Array | None = None
) -> Array:
    """Softmax of the processed logits [..., V]: filtered tokens are exactly 0.0, never NaN.

    Raises ValueError (:func:`inferviz.logit_check.check_logits`) for NaN or +inf logits, or a
    row with no finite logit to normalise."""
    check_logits(logits)
    xp = namespace(logits)
    probs = xp.softmax(process(logits, settings, input_ids))
    if xp.isnan(probs).any():  # cannot happen for checked logits; never return NaN
        raise ValueError("the sampler settings left a row with no finite value (e.g. a "
                         "temperature so small that logits / temperature overflow); use a "
                         "larger temperature, or strategy='greedy' for argmax")
    return probs


def log_kept_mass(raw_logits: Array, processed_logits: Array) -> Array:
    """log of the raw-probability mass of the tokens kept (not -inf) by processing, shape [...].

    For a truncated proposal q = p restricted to the kept set and renormalised (temperature 1,
    no penalty), log p(x) - log q(x) = log_kept_mass for every kept x: the SMC incremental weight.
    """
    _check_logits(raw_logits)
    _check_logits(processed_logits)
    if raw_logits.shape != processed_logits.shape:
        raise ValueError(f"raw_logits {tuple(raw_logits.shape)} and processed_logits "
                         f"{tuple(processed_logits.shape)} must have the same shape")
    xp = namespace(raw_logits)
    kept = xp.masked_fill(raw_logits, processed_logits == FILTERED, FILTERED)
    return xp.logsumexp(kept) - xp.logsumexp(raw_logits)


def kept_mass(raw_logits: Array, processed_logits: Array) -> Array:
    """Raw-probability mass (in [0, 1]) of the tokens that processing kept, shape [...]."""
    return namespace(raw_logits).exp(log_kept_mass(raw_logits, processed_logits))
