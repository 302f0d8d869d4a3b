"""The one finite-check for model logits, used by every entry point (expand, distributions and
the strategies built on them, the request batcher, token_table, logit_lens, the contrastive
amateur) so a broken model or dtype is reported the same way everywhere.

NaN and +inf are never valid logits; -inf is (a token the model rules out), but not for a whole
row, which leaves no token to choose."""

from __future__ import annotations

from typing import Sequence

from .arrays import Array, namespace

BROKEN = "the model or its dtype is broken"


def _count(n: int, label: str) -> str:
    return f"{n} {label}" + ("s" if n != 1 else "")


def check_logits(logits: Array, row_label: str = "row",
                 row_names: Sequence[object] | None = None, source: str = "model") -> None:
    """Raise ``ValueError`` if ``logits`` ``[..., V]`` (a torch tensor or a numpy array) hold
    NaN or +inf, or a row that is all -inf; the message names the kind, the first row
    (``row_label`` ``row_names[i]``, e.g. "position 3" or "node 7"), the first token id and the
    count. One reduction when all is well."""
    xp = namespace(logits)
    rows = logits.reshape(-1, logits.shape[-1]) if logits.ndim else logits.reshape(1, 1)
    finite = xp.isfinite(rows)
    if bool(finite.all()):
        return

    def name(row: int) -> str:
        return f"{row_label} {row_names[row] if row_names is not None else row}"

    for kind, bad in (("NaN", xp.isnan(rows)), ("+inf", rows == float("inf"))):
        count = int(bad.sum())
        if not count:
            continue
        bad_rows = _true_at(bad.any(-1))
        first = bad_rows[0]
        token_id = _true_at(bad[first])[0]
        others = f" and {count - 1} others" if count > 1 else ""
        spread = (f", in {_count(len(bad_rows), row_label)}" if len(bad_rows) > 1 else "")
        raise ValueError(f"{source} returned {kind} logits at {name(first)} (token id "
                         f"{token_id}{others}{spread}); {BROKEN}")
    dead = _true_at(~finite.any(-1))
    if dead:
        spread = f" ({_count(len(dead), row_label)} in all)" if len(dead) > 1 else ""
        raise ValueError(f"{source} returned logits with no finite value at {name(dead[0])}"
                         f"{spread}: all -inf, no token is possible; {BROKEN}")


def _true_at(flags: Array) -> list[int]:
    """Indices of the True entries of a 1-d bool array (an error path: a Python loop)."""
    return [i for i, flag in enumerate(flags.tolist()) if flag]
