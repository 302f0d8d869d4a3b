"""Architecture adapter: the one place that knows where each model family keeps its final norm,
unembedding and decoder layers (tuned-lens style: one branch per family).

Everything else in inferviz asks this module, never the model's attributes directly.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import torch

SUPPORTED = ("llama", "qwen2", "gemma3", "gemma3_text", "mistral", "phi3", "gpt2")


@dataclass(frozen=True)
class Adapter:
    """Architecture-specific handles of a causal LM.

    ``final_norm``: hidden [..., d] -> normalised hidden; ``unembed``: hidden -> logits [..., V]
    (includes the family's final logit soft-capping if any); ``layers``: decoder blocks."""

    family: str
    model: Any
    final_norm: torch.nn.Module
    lm_head: torch.nn.Module
    layers: Any
    logit_softcap: float | None = None

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def unembed(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.lm_head(hidden)
        if self.logit_softcap:
            logits = torch.tanh(logits / self.logit_softcap) * self.logit_softcap
        return logits

    def lens_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logit lens on a residual-stream state: final norm, then unembedding."""
        return self.unembed(self.final_norm(hidden))

    # ---------------------------------------------------------------- intervention sites
    @property
    def text_config(self) -> Any:
        config = self.model.config
        return config.get_text_config() if hasattr(config, "get_text_config") else config

    @property
    def hidden_size(self) -> int:
        """Width of the residual stream."""
        config = self.text_config
        return int(getattr(config, "hidden_size", None) or config.n_embd)

    @property
    def num_heads(self) -> int:
        config = self.text_config
        return int(getattr(config, "num_attention_heads", None) or config.n_head)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def attention_out(self, layer: int) -> torch.nn.Module:
        """Layer ``layer``'s attention output projection: its input is the heads' outputs side
        by side, ``[..., num_heads * head_dim]`` (o_proj; GPT-2's attn.c_proj)."""
        attn = self.attentions[layer]
        return attn.c_proj if self.family == "gpt2" else attn.o_proj

    def head_dim(self, layer: int) -> int:
        return _in_features(self.attention_out(layer)) // self.num_heads

    def mlp_down(self, layer: int) -> torch.nn.Module:
        """Layer ``layer``'s MLP down projection: its input is the MLP's neurons (after the
        activation and any gate), ``[..., intermediate]`` (down_proj; GPT-2's mlp.c_proj)."""
        mlp = self.layers[layer].mlp
        return mlp.c_proj if self.family == "gpt2" else mlp.down_proj

    def mlp_width(self, layer: int) -> int:
        return _in_features(self.mlp_down(layer))

    @property
    def attentions(self) -> list[torch.nn.Module]:
        """Each decoder layer's self-attention module. Under eager attention its forward
        returns ``(output, weights)``, weights ``[B, heads, T, T]`` (rows sum to 1)."""
        name = "attn" if self.family == "gpt2" else "self_attn"
        return [getattr(layer, name) for layer in self.layers]

    @contextmanager
    def eager_attention(self) -> Iterator[None]:
        """Run the model with eager attention inside the block (SDPA and flash kernels return
        no attention weights); the previous implementation is restored after, errors included.
        The caller keeps other forwards out meanwhile (the engine's lock)."""
        before = getattr(self.model.config, "_attn_implementation", None) or "eager"
        if before == "eager":
            yield
            return
        self.model.set_attn_implementation("eager")
        try:
            yield
        finally:
            self.model.set_attn_implementation(before)


def _in_features(module: torch.nn.Module) -> int:
    """Input width of a Linear (weight ``[out, in]``) or GPT-2's Conv1D (weight ``[in, out]``)."""
    if hasattr(module, "in_features"):
        return int(module.in_features)
    return int(module.weight.shape[0])


def model_family(config: Any) -> str:
    return getattr(config, "model_type", "") or ""


def adapter_for(model: Any) -> Adapter:
    """The :class:`Adapter` of a transformers causal LM; a clear error for unsupported families."""
    family = model_family(model.config)
    text_config = getattr(model.config, "text_config", None) or model.config
    softcap = getattr(text_config, "final_logit_softcapping", None)
    if family in ("llama", "qwen2", "mistral", "phi3", "gemma3_text"):
        base = model.model
        return Adapter(family, model, base.norm, model.lm_head, base.layers, softcap)
    if family == "gemma3":  # multimodal wrapper around a gemma3_text language model
        base = model.model.language_model
        return Adapter(family, model, base.norm, model.lm_head, base.layers, softcap)
    if family == "gpt2":
        base = model.transformer
        return Adapter(family, model, base.ln_f, model.lm_head, base.h, softcap)
    raise ValueError(
        f"model family {family!r} is not supported by inferviz's adapter; supported families: "
        f"{', '.join(SUPPORTED)}. Add a branch in inferviz/adapter.py to support it."
    )


def check_supported(family: str, where: str) -> None:
    """Raise before loading weights when a config/GGUF names an unsupported family."""
    if family not in SUPPORTED:
        raise ValueError(
            f"{where}: architecture {family!r} is not supported; supported: {', '.join(SUPPORTED)}"
        )


@dataclass(frozen=True)
class TreeMaskKind:
    """How a family takes a custom 4D attention mask (for tree attention in one packed row).

    ``mapping``: the model takes ``{"full_attention": m, "sliding_attention": m_window}`` (its
    layers have different masks); otherwise one mask for every layer, limited to ``window``
    positions when the family applies a sliding window to all of them (Mistral, Phi-3)."""

    mapping: bool
    window: int | None


def tree_mask_kind(config: Any) -> TreeMaskKind | None:
    """The custom-mask convention of a family, or None where it is not known (the engine then
    keeps one padded row per sequence)."""
    family = model_family(config)
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    window = getattr(text, "sliding_window", None)
    layer_types = list(getattr(text, "layer_types", None) or [])
    if family in ("qwen2", "gemma3", "gemma3_text"):
        if "sliding_attention" in layer_types:
            return TreeMaskKind(mapping=True, window=int(window))
        return TreeMaskKind(mapping=False, window=None)
    if family in ("mistral", "phi3"):
        return TreeMaskKind(mapping=False, window=int(window) if window else None)
    if family in ("llama", "gpt2"):
        return TreeMaskKind(mapping=False, window=None)
    return None
