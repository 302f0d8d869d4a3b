"""Config-built models with random weights, for benchmarks on machines without the real files
(a lent GPU): the shapes of SmolLM2-135M, Qwen2.5-0.5B, Qwen2.5-1.5B and Llama-3-8B.

Speed depends on the shapes (layers, widths, vocabulary), not on the values of the weights, so
these time what the real models would. The unembedding is scaled up so that next-token
distributions are peaked like a trained model's, not near-uniform (near-ties would make
bfloat16 rounding flip greedy choices between two runs of the same model).

The tokenizer comes from ``$INFERVIZ_BENCH_TOKENIZERS/<name>`` when set (a folder written by
``tokenizer.save_pretrained``), else from the embedded default model (SmolLM2) or the zoo's
Qwen2.5-Coder GGUF (Qwen, and the Llama-3 shape: its ids stay below that vocabulary's size).
"""

from __future__ import annotations

import os
from typing import Any

SHAPES: dict[str, dict[str, Any]] = {
    "smollm2-135m": dict(model_type="llama", hidden_size=576, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, intermediate_size=1536,
                         vocab_size=49152, tie_word_embeddings=True, rope_theta=100000.0,
                         max_position_embeddings=8192, rms_norm_eps=1e-5, tokenizer="smollm2"),
    "qwen2.5-0.5b": dict(model_type="qwen2", hidden_size=896, num_hidden_layers=24,
                         num_attention_heads=14, num_key_value_heads=2, intermediate_size=4864,
                         vocab_size=151936, tie_word_embeddings=True, rope_theta=1000000.0,
                         max_position_embeddings=32768, rms_norm_eps=1e-6, tokenizer="qwen2.5"),
    "qwen2.5-1.5b": dict(model_type="qwen2", hidden_size=1536, num_hidden_layers=28,
                         num_attention_heads=12, num_key_value_heads=2, intermediate_size=8960,
                         vocab_size=151936, tie_word_embeddings=True, rope_theta=1000000.0,
                         max_position_embeddings=32768, rms_norm_eps=1e-6, tokenizer="qwen2.5"),
    "llama3-8b": dict(model_type="llama", hidden_size=4096, num_hidden_layers=32,
                      num_attention_heads=32, num_key_value_heads=8, intermediate_size=14336,
                      vocab_size=128256, tie_word_embeddings=False, rope_theta=500000.0,
                      max_position_embeddings=8192, rms_norm_eps=1e-5, tokenizer="qwen2.5"),
}
SHARPEN = 8.0


def tokenizer_for(name: str):
    from transformers import AutoTokenizer

    kind = SHAPES[name]["tokenizer"]
    folder = os.environ.get("INFERVIZ_BENCH_TOKENIZERS")
    if folder:
        return AutoTokenizer.from_pretrained(os.path.join(folder, kind))
    if kind == "smollm2":
        from inferviz.models import default_gguf_path

        path = default_gguf_path()
    else:
        from inferviz.zoo import zoo_path

        path = zoo_path("qwen2.5-coder-0.5b")
    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


def random_model(name: str, device: str, dtype: str = "bfloat16", seed: int = 0):
    """The model of shape ``name`` with seeded random weights, built on ``device``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    spec = {k: v for k, v in SHAPES[name].items() if k != "tokenizer"}
    config = AutoConfig.for_model(spec.pop("model_type"), bos_token_id=None, eos_token_id=None,
                                  pad_token_id=0, **spec)
    config._attn_implementation = "sdpa"
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(SHARPEN)
    return model.eval()


def random_session(name: str, device: str, dtype: str = "bfloat16", **kwargs):
    import time

    import inferviz

    start = time.perf_counter()
    model = random_model(name, device, dtype)
    session = inferviz.Session(model, tokenizer_for(name), name=f"{name} (random weights)",
                               **kwargs)
    session.load_seconds = time.perf_counter() - start
    session.source = "config"
    return session


def weight_bytes(model) -> int:
    """Bytes of the parameters (tied embeddings once): what one decode step reads."""
    return sum(p.numel() * p.element_size() for p in model.parameters())
