"""Logit lens: each layer's guess at the next token, at each position.

The residual stream after the embeddings and after every decoder layer is captured with forward
hooks (removed in a ``finally``), then read through the model's final norm and unembedding
(``Adapter.lens_logits``). We hook the layers rather than use HF's ``hidden_states``, whose last
entry is already normalised for Llama/Qwen/Gemma: normalising it again would be wrong. At the
last layer the lens therefore equals the model's own logits (tested).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch

from .logit_check import check_logits
from .tree import TokenTree, readable_token
from .validate import check_int, resolve_token_ids


@dataclass
class LensResult:
    """Logit-lens data for ``L+1`` rows (embeddings, then each of the ``L`` layers) and ``P``
    positions; row ``l``, position ``p`` is the distribution over the token after position ``p``.

    token_ids       int   [L+1, P, k]  top-k tokens of each cell, best first
    probs           float [L+1, P, k]  their probabilities
    entropy         float [L+1, P]     entropy of each cell's distribution (nats)
    kl_to_final     float [L+1, P]     KL(final || layer) in nats (0 on the last row)
    final_top_rank  int   [L+1, P]     rank, in each cell, of the final layer's top token
    top_tokens      [L+1][P][k] readable texts of ``token_ids``
    input_tokens    [P] readable text of the input token at each position
    layer_names     [L+1] "embed", "1", ..., "L"
    """

    token_ids: np.ndarray
    probs: np.ndarray
    entropy: np.ndarray
    kl_to_final: np.ndarray
    final_top_rank: np.ndarray
    top_tokens: list[list[list[str]]]
    input_tokens: list[str]
    layer_names: list[str]
    input_ids: list[int] | None = None

    def __post_init__(self) -> None:
        rows, positions, k = self.token_ids.shape
        expect = {"probs": (rows, positions, k), "entropy": (rows, positions),
                  "kl_to_final": (rows, positions), "final_top_rank": (rows, positions)}
        for name, shape in expect.items():
            if getattr(self, name).shape != shape:
                raise ValueError(f"LensResult.{name} has shape {getattr(self, name).shape}, "
                                 f"expected {shape}")
        if len(self.layer_names) != rows or len(self.input_tokens) != positions:
            raise ValueError("LensResult: layer_names / input_tokens do not match the arrays")

    @property
    def num_layers(self) -> int:
        return self.token_ids.shape[0] - 1

    def to_pandas(self):
        """Tidy: one row per (layer, position, rank) with ``layer`` (0 = embeddings),
        ``layer_name``, ``position``, ``input_token``, ``rank``, ``token_id``, ``token``, ``prob``,
        ``entropy``, ``kl_to_final``, ``final_top_rank``."""
        import pandas as pd

        rows, positions, k = self.token_ids.shape
        layer, pos, rank = np.meshgrid(np.arange(rows), np.arange(positions), np.arange(k),
                                       indexing="ij")
        layer, pos, rank = layer.ravel(), pos.ravel(), rank.ravel()
        return pd.DataFrame({
            "layer": layer,
            "layer_name": [self.layer_names[i] for i in layer],
            "position": pos,
            "input_token": [self.input_tokens[p] for p in pos],
            "rank": rank,
            "token_id": self.token_ids.ravel(),
            "token": [self.top_tokens[a][b][c] for a, b, c in zip(layer, pos, rank)],
            "prob": self.probs.ravel(),
            "entropy": self.entropy[layer, pos],
            "kl_to_final": self.kl_to_final[layer, pos],
            "final_top_rank": self.final_top_rank[layer, pos],
        })

    def widget(self, **kwargs: Any):
        from .widgets import LensWidget

        return LensWidget(self, **kwargs)


@contextmanager
def capture_residuals(adapter: Any) -> Iterator[list[torch.Tensor]]:
    """Collect the residual stream entering layer 0 and leaving every layer; hooks are always
    removed."""
    states: list[torch.Tensor] = []

    def first(_module, args, kwargs):
        hidden = args[0] if args else kwargs["hidden_states"]
        states.append(hidden)

    def each(_module, _args, output):
        states.append(output if torch.is_tensor(output) else output[0])

    handles = [adapter.layers[0].register_forward_pre_hook(first, with_kwargs=True)]
    handles += [layer.register_forward_hook(each) for layer in adapter.layers]
    try:
        yield states
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def logit_lens(session: Any, text_or_tree: str | TokenTree, node_id: int | None = None,
               k: int = 5) -> LensResult:
    """Logit lens of a text, or of the path from a tree's root to ``node_id``."""
    ids, _ = resolve_token_ids(session, text_or_tree, node_id)
    check_int("k", k, 1, session.vocab_size)
    adapter = session.adapter
    with capture_residuals(adapter) as states:
        out = session.model(input_ids=torch.tensor([ids], device=session.device))
    check_logits(out.logits[0], "position")
    names = ["embed"] + [str(i) for i in range(1, len(states))]
    rows = []
    for name, hidden in zip(names, states):
        logits = adapter.lens_logits(hidden[0]).float()  # [P, V]
        check_logits(logits, "position", source=f"the logit lens at layer {name!r}")
        rows.append(torch.log_softmax(logits, dim=-1).cpu())
    final = rows[-1]
    final_top = final.argmax(-1)  # [P]
    token_ids, probs, entropy, kl, ranks = [], [], [], [], []
    for logp in rows:
        top = torch.topk(logp, k, dim=-1)
        token_ids.append(top.indices)
        probs.append(top.values.exp())
        entropy.append(-(logp.exp() * logp).nan_to_num().sum(-1))
        kl.append((final.exp() * (final - logp)).nan_to_num().sum(-1))
        chosen = logp.gather(1, final_top[:, None])
        ranks.append((logp > chosen).sum(-1))
    token_ids_np = torch.stack(token_ids).numpy()
    text = lambda t: readable_token(session.token_bytes(int(t)))  # noqa: E731
    return LensResult(
        token_ids=token_ids_np,
        probs=torch.stack(probs).numpy(),
        entropy=torch.stack(entropy).numpy(),
        kl_to_final=torch.stack(kl).clamp_min(0).numpy(),
        final_top_rank=torch.stack(ranks).numpy(),
        top_tokens=[[[text(t) for t in cell] for cell in row] for row in token_ids_np],
        input_tokens=[text(t) for t in ids],
        layer_names=names,
        input_ids=list(ids),
    )
