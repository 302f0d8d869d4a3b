"""Hypothesis strategies for token trees: random valid trees, built through the public API."""

from __future__ import annotations

import math

from hypothesis import strategies as st

from inferviz.tree import TokenTree

floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
logprobs = st.floats(max_value=0.0, allow_nan=False, allow_infinity=True, width=64)
meta_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**53, 2**53) | floats | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                  max_size=3),
    max_leaves=6)


@st.composite
def trees(draw, max_children: int = 12, max_token_id: int = 50_000) -> TokenTree:
    """A tree of up to ``max_children`` added nodes with every field drawn over its whole
    allowed range (-inf log-probabilities, NaN and inf in meta, any bytes and text)."""
    prompt = draw(st.text(min_size=1, max_size=10))
    tree = TokenTree(prompt, draw(st.lists(st.integers(0, max_token_id), min_size=1, max_size=5)),
                     model=draw(st.text(max_size=6)))
    for _ in range(draw(st.integers(0, max_children))):
        parent = draw(st.sampled_from(sorted(tree.nodes)))
        tree.add_child(parent, draw(st.integers(0, max_token_id)), draw(st.binary(max_size=6)),
                       raw_logprob=draw(logprobs), prob=draw(st.floats(0, 1)),
                       rank=draw(st.integers(0, 50_000)),
                       entropy=draw(st.floats(0, 20, allow_nan=False)),
                       meta=draw(st.dictionaries(st.text(max_size=6), meta_values, max_size=3)),
                       notify=False)
    return tree


def same(a, b) -> bool:
    """Equal, with NaN equal to NaN and types compared (1 is not 1.0)."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b and type(a) is type(b)
