"""Tiny random causal LMs built in-process from transformers configs, for fast engine tests.

Each has 2-4 layers, a 64-wide hidden state and a 97-token vocabulary; weights are random but
seeded, in float32, on CPU. ``FAMILIES`` lists the model types the engine must support.
"""

from __future__ import annotations

import torch

VOCAB = 97
FAMILIES = ("llama", "qwen2", "gemma3_text", "gpt2", "mistral", "phi3")


def tiny_config(family: str, **overrides):
    from transformers import AutoConfig

    common = dict(vocab_size=VOCAB, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    if family == "gpt2":
        kwargs = dict(n_embd=64, n_layer=2, n_head=4, n_positions=256)
    else:
        kwargs = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=256)
        if family == "gemma3_text":
            # Sliding layers with a small window, so long prompts cross it.
            kwargs.update(head_dim=16, num_hidden_layers=4, sliding_window=8,
                          layer_types=["sliding_attention", "sliding_attention",
                                       "full_attention", "sliding_attention"])
        if family == "mistral":
            kwargs.update(sliding_window=None)
        if family == "phi3":
            kwargs.update(num_key_value_heads=4)
    kwargs.update(common)
    kwargs.update(overrides)
    return AutoConfig.for_model(family, **kwargs)


def tiny_model(family: str, seed: int = 0, **overrides):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    config = tiny_config(family, **overrides)
    config._attn_implementation = "sdpa"
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    return model.eval()


@torch.no_grad()
def full_forward_last_logits(model, seq: list[int]) -> torch.Tensor:
    """Reference: ``model(input_ids).logits[:, -1]`` over the whole sequence, no cache."""
    ids = torch.tensor([seq])
    return model(input_ids=ids, use_cache=False).logits[0, -1].float()


def tiny_tokenizer():
    """A word-level tokenizer over the tiny vocabulary: ``"t5 t17"`` -> ``[1, 5, 17]``."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, **{f"t{i}": i for i in range(3, VOCAB)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(single="<s> $A",
                                                           special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>",
                                   bos_token="<s>", eos_token="</s>")


def tiny_session(family: str = "llama", **session_kwargs):
    """A :class:`inferviz.Session` over a tiny random model and :func:`tiny_tokenizer`."""
    from inferviz.session import Session

    return Session(tiny_model(family), tiny_tokenizer(), name=f"tiny-{family}",
                   **session_kwargs)
