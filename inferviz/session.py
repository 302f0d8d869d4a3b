"""Session: a model, its tokenizer and a prefix-shared KV cache, growing token trees."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from .backends import Backend
from .scorer import Scorer, _one_branch_kind
from .tokens import TokenBytes
from .tree import Node, TokenTree
from .tree_consistency import check_tree_for_session, vocabulary_identity
from .validate import check_node_ids, check_prompt

if TYPE_CHECKING:  # a session over a server imports neither torch nor the local engine
    import torch

    from . import models


class Session(Scorer):
    """Holds ``model``, ``tokenizer`` and a :class:`~inferviz.backends.Backend` giving
    next-token distributions: locally an :class:`~inferviz.engine.Engine` whose KV cache is
    shared by every tree grown from this session (``session.engine``), or an inference server
    (:meth:`connect`: ``model``, ``engine`` and ``adapter`` are None)."""

    def __init__(self, model: Any, tokenizer: Any, name: str = "",
                 kv_budget_tokens: int | None = None, batch_size: int = 16,
                 batch_timeout: float = 0.005, compile: bool | str = False,
                 backend: Backend | None = None) -> None:
        from .batching import check_batch_args

        self._batch_args = check_batch_args(batch_size, batch_timeout)
        self._batcher: Any = None
        self._batcher_lock = threading.Lock()
        self.model = model
        self.tokenizer = tokenizer
        self._eos_token_ids: set[int] = set()
        if backend is not None:  # a server: see connect()
            self.name = name or backend.name
            self.adapter = None
            self.engine = None
            self.backend: Backend = backend
        else:
            if model is None:
                raise TypeError("Session needs a transformers model and its tokenizer; load "
                                "one with Session.from_pretrained, or use Session.connect for "
                                "a model on an inference server")
            from .adapter import adapter_for
            from .backends.local import LocalBackend
            from .engine import Engine

            self.name = name or getattr(model.config, "_name_or_path", "") or "model"
            self.adapter = adapter_for(model)
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
            self.engine = Engine(model, kv_budget_tokens=kv_budget_tokens, pad_token_id=pad,
                                 compile=compile)
            self.backend = LocalBackend(model, self.engine, self.name)
        self.token_bytes = TokenBytes(tokenizer) if backend is None else None  # connect() sets it
        self.load_seconds: float | None = None
        self.source = ""
        # Bytes one step's distributions may take (None: a share of the free memory; see
        # inferviz.step_memory): a larger step is refused before anything is allocated.
        self.step_memory_budget: int | None = None

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
        from . import models

        start = time.perf_counter()
        loaded = models.load(name_or_path, device=device, dtype=dtype, gguf_file=gguf_file,
                             progress=progress)
        session = cls(loaded.model, loaded.tokenizer, name=loaded.name,
                      kv_budget_tokens=kv_budget_tokens, batch_size=batch_size,
                      batch_timeout=batch_timeout, compile=compile)
        session.load_seconds = time.perf_counter() - start
        session.source = loaded.source
        return session

    @classmethod
    def connect(cls, base_url: str, model: str | None = None, tokenizer: Any = None,
                api_key: str | None = None, top_logprobs: int | str = 20,
                timeout: float = 60.0, max_retries: int = 5, concurrency: int = 16,
                dialect: str = "auto", vocab_size: int | None = None,
                eos_token_ids: list[int] | None = None, backoff: float = 0.2,
                batch_size: int = 16, batch_timeout: float = 0.005,
                max_reply_bytes: int | None = None) -> "Session":
        """A session over an OpenAI-compatible inference server (vLLM, SGLang, llama.cpp
        server): see docs/remote.md (``max_reply_bytes``: the largest reply read, default
        32 MiB). ``tokenizer``: a local transformers tokenizer (object,
        folder or hub id), else the server's /tokenize. ``top_logprobs``: tokens asked for
        each distribution (``"full"``: the whole vocabulary, exact where the server allows)."""
        from .backends.connect import open_connection

        conn = open_connection(base_url, model=model, tokenizer=tokenizer, api_key=api_key,
                               top_logprobs=top_logprobs, timeout=timeout,
                               max_retries=max_retries, concurrency=concurrency,
                               dialect=dialect, vocab_size=vocab_size,
                               eos_token_ids=eos_token_ids, backoff=backoff,
                               **({} if max_reply_bytes is None
                                  else {"max_reply_bytes": max_reply_bytes}))
        session = cls(None, conn.tokenizer, backend=conn.backend, batch_size=batch_size,
                      batch_timeout=batch_timeout)
        session.token_bytes = conn.token_bytes
        session._eos_token_ids = conn.eos_token_ids
        session.source = conn.backend.http.base_url
        return session

    @property
    def device(self) -> "torch.device":
        if self.engine is not None:
            return self.engine.device
        import torch  # a server's session: asked for, so loaded now

        return torch.device("cpu")

    @property
    def eos_token_ids(self) -> set[int]:
        if self.model is None:
            return set(self._eos_token_ids)
        ids = self.model.generation_config.eos_token_id
        if ids is None:
            ids = self.tokenizer.eos_token_id
        if ids is None:
            return set()
        return {int(i) for i in (ids if isinstance(ids, (list, tuple)) else [ids])}

    def __repr__(self) -> str:
        if self.closed:
            return f"Session(model={self.name!r}, closed)"
        if self.engine is None:
            return f"Session(model={self.name!r}, backend={self.backend!r})"
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
        if len(ids) >= self.backend.max_positions:
            raise ValueError(
                f"prompt is {len(ids)} tokens, longer than the model's context "
                f"({self.backend.max_positions}); shorten it")
        return TokenTree(prompt, ids, model=self.name, meta=vocabulary_identity(self))

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
        check_tree_for_session(tree, self)
        return self.batcher.submit(tree, node_id, k, **settings)

    # ------------------------------------------------------------------ analyses
    def token_table(self, text_or_tree: str | TokenTree, node_id: int | None = None):
        """Teacher-forced per-token table: see :func:`inferviz.token_table.token_table`."""
        from .token_table import token_table

        return token_table(self, text_or_tree, node_id)

    def logit_lens(self, text_or_tree: str | TokenTree | tuple, node_id: int | None = None,
                   k: int = 5):
        """Each layer's next-token guess at each position: see :func:`inferviz.lens.logit_lens`."""
        from .lens import logit_lens

        self.require_local("the logit lens", "every layer's hidden state", "no hidden states")
        if isinstance(text_or_tree, tuple):
            text_or_tree, node_id = text_or_tree
        return logit_lens(self, text_or_tree, node_id=node_id, k=k)

    def attribute(self, tree: TokenTree, node_id: int, method: str = "input_x_gradient",
                  contrast: int | str | None = None, contrast_token_id: int | None = None,
                  steps: int = 64, baseline: str = "pad", keep_first: bool = True,
                  batch_size: int | None = None):
        """Why node ``node_id``'s token: one score per context token (an
        :class:`~inferviz.attribution.AttributionResult`, cached); see
        :func:`inferviz.attribution.attribute` and docs/why.md."""
        from .attribution import attribute

        return attribute(self, tree, node_id, method=method, contrast=contrast,
                         contrast_token_id=contrast_token_id, steps=steps, baseline=baseline,
                         keep_first=keep_first, batch_size=batch_size)

    def generate(self, prompt: str | TokenTree, strategy: str = "greedy",
                 max_new_tokens: int = 32, seed: int | None = None,
                 server_side: bool = False, intervention: Any = None, constraint: Any = None,
                 **params: Any):
        """Run a decoding strategy; see :mod:`inferviz.strategies` for names and parameters.
        ``server_side=True`` (a connected session; greedy and sampling): the server generates
        in one request, each token written with its top-N siblings (docs/remote.md).
        ``intervention``: run it under a ``Steer``, ``Ablate`` or ``Patch`` from ``start_id``
        on: its nodes form a sibling branch marked with the intervention (docs/why.md).
        ``constraint`` (``iv.Regex``, ``iv.JSONSchema``, ``iv.Grammar``, ``iv.Choice``): every
        step draws from the model restricted to what the constraint allows; a run the
        constraint leaves no token to ends with ``finish_reason="constraint"``
        (docs/constraints.md)."""
        from .constraints import check_constraint
        from .strategies import run_strategy

        if not isinstance(server_side, bool):
            raise TypeError(f"server_side must be a bool; got {server_side!r}")
        constraint = _one_branch_kind(intervention, check_constraint(constraint))
        if constraint is not None:
            if not server_side:
                tree = prompt if isinstance(prompt, TokenTree) else self.tree(prompt)
                result = self.constrained(constraint).generate(
                    tree, strategy, max_new_tokens=max_new_tokens, seed=seed, **params)
                self._record_constraint(tree, constraint)
                if "constraint" in (result.finish_reason, *result.finish_reasons) \
                        and not result.message:
                    from .constraint_masks import no_token_message

                    result.message = (f"{no_token_message(constraint, 'the text generated')}; "
                                      f"the run ended with what it had")
                return result
        if intervention is not None:
            if server_side:
                raise ValueError("server_side=True cannot run under an intervention: the "
                                 "server's forward takes no hooks; leave server_side out")
            if strategy in ("contrastive", "custom"):
                raise ValueError(f"strategy {strategy!r} cannot run under an intervention "
                                 f"(it runs its own forwards around the engine); use greedy, "
                                 f"sample, beam, bfs, threshold or smc")
            tree = prompt if isinstance(prompt, TokenTree) else self.tree(prompt)
            start_id = params.get("start_id", tree.root_id)
            check_node_ids(tree, start_id)
            view = self.under(intervention, len(tree.token_ids(start_id)) - 1)
            result = view.generate(tree, strategy, max_new_tokens=max_new_tokens, seed=seed,
                                   **params)
            self._record_intervention(tree, intervention)
            return result
        if server_side:
            from .strategies.server_side import generate_on_server
            from .strategies.transaction import execute

            tree = prompt if isinstance(prompt, TokenTree) else self.tree(prompt)
            start_id = params.pop("start_id", tree.root_id)
            stop, on_step = params.pop("stop", None), params.pop("on_step", None)
            # All or nothing, as a local run: a stream that breaks off rolls back.
            result = execute(tree, lambda: generate_on_server(
                self, tree, start_id, strategy, max_new_tokens, seed, params, constraint),
                stop=stop, on_step=on_step)
            result.eos_token_ids = result.eos_token_ids | frozenset(self.eos_token_ids)
            self._record_constraint(tree, constraint)
            return result

        return run_strategy(self, prompt, strategy=strategy, max_new_tokens=max_new_tokens,
                            seed=seed, **params)

    def compare(self, prompt: str | TokenTree, strategies: Any, max_new_tokens: int = 32,
                seed: int | None = None, start_id: int | None = None, constraint: Any = None):
        """Run several strategies into one tree and see where they part: see
        :func:`inferviz.compare.compare` and docs/compare.md."""
        from .compare import compare

        return compare(self, prompt, strategies, max_new_tokens=max_new_tokens, seed=seed,
                       start_id=start_id, constraint=constraint)

    def text_view(self, tree: TokenTree, node_id: int | None = None, k: int = 5):
        """The generated text on the path to ``node_id``, each token shaded by its probability
        (a :class:`~inferviz.widgets.TextView`); see docs/text-view.md."""
        from .widgets.views.text_view import TextView

        return TextView(tree, node_id, k=k)

    def explore(self, prompt: str | None = None, **kwargs: Any):
        """The interactive explorer widget (tree, controls, path table, logit lens)."""
        from .widgets.app.explorer import Explorer

        return Explorer(self, prompt=prompt, **kwargs)

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Free what this session holds on its device: the KV store, the model reference and
        the request batcher; on CUDA the allocator's cache is emptied too, so the memory is
        back for other sessions (the weights are freed unless you keep ``s.model`` elsewhere).
        Any later use raises RuntimeError. Calling close twice is harmless."""
        if self.closed:
            return
        with self._batcher_lock:
            batcher, self._batcher = self._batcher, None
        if batcher is not None:
            batcher.close()
        on_cuda = self.engine is not None and self.engine.device.type == "cuda"
        if self.engine is not None:
            self.engine.close()
        self.backend.close()  # a server's connection pool and threads
        closed = _ClosedSession(self.name)
        self.engine = self.model = self.adapter = self.backend = closed
        import gc

        gc.collect()
        if on_cuda:
            import torch

            torch.cuda.empty_cache()

    @property
    def closed(self) -> bool:
        return isinstance(self.backend, _ClosedSession)

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _ClosedSession:
    """Stands in for the engine, model and adapter of a closed session: any use says so."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str):
        raise RuntimeError(f"Session {self._name!r} is closed (session.close() freed its model "
                           f"and KV cache); create a new one with Session.from_pretrained(...)")

    def __call__(self, *args: Any, **kwargs: Any):
        return self.__getattr__("__call__")
