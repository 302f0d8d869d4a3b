"""Session: a model, its tokenizer and a prefix-shared KV cache, growing token trees."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future
from typing import Any

import torch

from . import models
from .adapter import adapter_for
from .engine import Engine
from .processors import SamplerSettings, processed_probs
from .scoring import Distributions, record_children
from .tokens import TokenBytes
from .tree import Node, TokenTree
from .validate import check_int, check_node_ids, check_prompt


class Session:
    """Holds ``model``, ``tokenizer`` and an :class:`~inferviz.engine.Engine` whose KV cache is
    shared by every tree grown from this session."""

    def __init__(self, model: Any, tokenizer: Any, name: str = "",
                 kv_budget_tokens: int | None = None, batch_size: int = 16,
                 batch_timeout: float = 0.005, compile: bool | str = False) -> None:
        from .batching import check_batch_args

        self._batch_args = check_batch_args(batch_size, batch_timeout)
        self._batcher: Any = None
        self._batcher_lock = threading.Lock()
        self.model = model
        self.tokenizer = tokenizer
        self.name = name or getattr(model.config, "_name_or_path", "") or "model"
        self.adapter = adapter_for(model)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.engine = Engine(model, kv_budget_tokens=kv_budget_tokens, pad_token_id=pad,
                             compile=compile)
        self.token_bytes = TokenBytes(tokenizer)
        self.load_seconds: float | None = None
        self.source = ""

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike = "default", device: str = "auto",
                        dtype: str = "auto", gguf_file: str | None = None,
                        kv_budget_tokens: int | None = None, batch_size: int = 16,
                        batch_timeout: float = 0.005,
                        compile: bool | str = False,
                        progress: models.Progress | None = None) -> "Session":
        """Load ``"default"`` (embedded SmolLM2-135M-Instruct), a local folder (safetensors or
        GGUF), a ``.gguf`` file or a hub id. GGUF weights are cached as safetensors.
        ``progress(stage, done, total)`` is called as loading advances."""
        start = time.perf_counter()
        loaded = models.load(name_or_path, device=device, dtype=dtype, gguf_file=gguf_file,
                             progress=progress)
        session = cls(loaded.model, loaded.tokenizer, name=loaded.name,
                      kv_budget_tokens=kv_budget_tokens, batch_size=batch_size,
                      batch_timeout=batch_timeout, compile=compile)
        session.load_seconds = time.perf_counter() - start
        session.source = loaded.source
        return session

    @property
    def device(self) -> torch.device:
        return self.engine.device

    @property
    def vocab_size(self) -> int:
        return int(self.model.get_output_embeddings().weight.shape[0])

    @property
    def eos_token_ids(self) -> set[int]:
        ids = self.model.generation_config.eos_token_id
        if ids is None:
            ids = self.tokenizer.eos_token_id
        if ids is None:
            return set()
        return {int(i) for i in (ids if isinstance(ids, (list, tuple)) else [ids])}

    def __repr__(self) -> str:
        return (f"Session(model={self.name!r}, family={self.adapter.family!r}, "
                f"device={str(self.device)!r}, dtype={str(self.engine.dtype)!r})")

    # ------------------------------------------------------------------ text
    def encode(self, text: str, add_special_tokens: bool | None = None) -> list[int]:
        """Token ids of ``text``. Special tokens (BOS) are added unless the text already starts
        with the BOS token, as a chat-templated prompt does."""
        if add_special_tokens is None:
            bos = self.tokenizer.bos_token
            add_special_tokens = not (bos and text.startswith(bos))
        return list(self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])

    def chat_prompt(self, messages: list[dict[str, str]] | str,
                    add_generation_prompt: bool = True) -> str:
        """The prompt text for a chat, through the tokenizer's chat template. ``messages`` is a
        list of ``{"role": ..., "content": ...}`` dicts, or a single user message."""
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        if not isinstance(messages, list) or not all(
                isinstance(m, dict) and "role" in m and "content" in m for m in messages):
            raise TypeError("messages must be a str or a list of {'role': ..., 'content': ...}")
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(f"the tokenizer of {self.name!r} has no chat template; pass a "
                             f"plain prompt to tree()/generate() instead")
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt)

    # ------------------------------------------------------------------ trees
    def tree(self, prompt: str) -> TokenTree:
        """A new :class:`TokenTree` rooted at ``prompt``."""
        check_prompt(prompt)
        ids = self.encode(prompt)
        if not ids:
            raise ValueError("prompt encodes to no tokens; give some text")
        if len(ids) >= self.engine.max_positions:
            raise ValueError(
                f"prompt is {len(ids)} tokens, longer than the model's context "
                f"({self.engine.max_positions}); shorten it")
        return TokenTree(prompt, ids, model=self.name)

    def distributions(self, tree: TokenTree, node_ids: list[int],
                      settings: SamplerSettings | None = None) -> Distributions:
        """Next-token distributions after each node (one batched forward, cached prefixes)."""
        seqs = [tree.token_ids(n) for n in node_ids]
        return self.sequence_distributions(seqs, list(node_ids), settings)

    def sequence_distributions(self, seqs: list[list[int]], parent_ids: list[int],
                               settings: SamplerSettings | None = None,
                               logits: torch.Tensor | None = None) -> Distributions:
        """Next-token distributions after each token-id sequence (rows may come from several
        trees: the request batcher uses this). ``logits`` ``[B, V]``: raw logits already
        computed for ``seqs`` (by one forward shared with other rows); None runs the engine."""
        settings = settings or SamplerSettings()
        if logits is None:
            for seq in seqs:
                self.check_context(seq)
            logits = self.engine.next_logits(seqs)
        input_ids = None
        if settings.repetition_penalty is not None:
            width = max(len(s) for s in seqs)
            input_ids = torch.tensor([[s[0]] * (width - len(s)) + s for s in seqs])
        probs = processed_probs(logits, settings, input_ids)
        return Distributions.from_logits(list(parent_ids), logits, probs)

    def check_context(self, seq: list[int]) -> None:
        """ValueError if a node with these token ids cannot be expanded (context full)."""
        if len(seq) >= self.engine.max_positions:
            raise ValueError(f"node at {len(seq)} tokens reached the model's context "
                             f"({self.engine.max_positions}); cannot expand further")

    def expand(self, tree: TokenTree, node_ids: int | list[int], k: int = 5,
               temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
               min_p: float | None = None, **processors: Any) -> list[Node]:
        """Add the ``k`` most likely children (by raw probability) of each node; ``prob`` of each
        child is its probability under the sampler settings given (0 if they filter it).

        Several node ids go through one batched forward; only uncached tokens are computed.
        Returns the children, parent by parent, best first. The tree is unchanged on error."""
        ids = check_node_ids(tree, node_ids)
        check_int("k", k, 1, self.vocab_size)
        settings = SamplerSettings(temperature=temperature, top_k=top_k, top_p=top_p,
                                   min_p=min_p, **processors)
        dists = self.distributions(tree, ids, settings)
        children: list[Node] = []
        for row in range(len(ids)):
            children += record_children(tree, dists, row, dists.top_k(row, k), self.token_bytes)
        tree.notify([c.node_id for c in children])
        return children

    @property
    def batcher(self):
        """This session's :class:`~inferviz.batching.RequestBatcher` (made on first use, with
        the session's ``batch_size`` and ``batch_timeout``): concurrent expand requests (widget
        clicks, several explorers, threads) share one forward."""
        with self._batcher_lock:
            if self._batcher is None:
                from .batching import RequestBatcher

                self._batcher = RequestBatcher(self, *self._batch_args)
            return self._batcher

    def submit_expand(self, tree: TokenTree, node_id: int, k: int = 5,
                      **settings: Any) -> "Future[list[Node]]":
        """Queue an expansion of one node on :attr:`batcher`; the future resolves to its ``k``
        most likely children, as :meth:`expand` returns them. Bad input raises here."""
        return self.batcher.submit(tree, node_id, k, **settings)

    # ------------------------------------------------------------------ analyses
    def token_table(self, text_or_tree: str | TokenTree, node_id: int | None = None):
        """Teacher-forced per-token table: see :func:`inferviz.table.token_table`."""
        from .table import token_table

        return token_table(self, text_or_tree, node_id)

    def logit_lens(self, text_or_tree: str | TokenTree | tuple, node_id: int | None = None,
                   k: int = 5):
        """Each layer's next-token guess at each position: see :func:`inferviz.lens.logit_lens`."""
        from .lens import logit_lens

        if isinstance(text_or_tree, tuple):
            text_or_tree, node_id = text_or_tree
        return logit_lens(self, text_or_tree, node_id=node_id, k=k)

    def generate(self, prompt: str | TokenTree, strategy: str = "greedy",
                 max_new_tokens: int = 32, seed: int | None = None, **params: Any):
        """Run a decoding strategy; see :mod:`inferviz.strategies` for names and parameters."""
        from .strategies import run_strategy

        return run_strategy(self, prompt, strategy=strategy, max_new_tokens=max_new_tokens,
                            seed=seed, **params)

    def explore(self, prompt: str | None = None, **kwargs: Any):
        """The interactive explorer widget (tree, controls, path table, logit lens)."""
        from .widgets.explorer import Explorer

        return Explorer(self, prompt=prompt, **kwargs)
