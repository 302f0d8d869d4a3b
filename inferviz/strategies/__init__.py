"""Decoding strategies. Each writes what it did into a TokenTree and returns a result.

``run_strategy(session, prompt, strategy=..., max_new_tokens=..., seed=..., stop=None,
on_step=None, **params)`` is what ``Session.generate`` calls. A strategy module exposes
``run(session, tree, start_id, max_new_tokens, seed, **params) -> GenerationResult`` and its
allowed parameter names. Every run goes through :func:`inferviz.strategies.transaction.execute`: all
or nothing on error, stoppable between steps (``stop``), live (``on_step``).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from ..tree import TokenTree
from ..validate import check_int, check_prompt
from .result import GenerationResult
from .transaction import check_run_args, execute

# name -> (module, preset params). "top_k", "top_p" and "min_p" are sampling with that
# filter on; "beam_search" is beam.
STRATEGIES: dict[str, tuple[str, dict[str, Any]]] = {
    "greedy": ("greedy", {}),
    "sample": ("sample", {}),
    "top_k": ("sample", {}),
    "top_p": ("sample", {}),
    "min_p": ("sample", {}),
    "beam": ("beam", {}),
    "beam_search": ("beam", {}),
    "contrastive": ("contrastive", {}),
    "smc": ("smc", {}),
    "bfs": ("bfs", {}),
    "threshold": ("threshold", {}),
    "custom": ("custom", {}),
}


def register(name: str, module: str, preset: dict[str, Any] | None = None) -> None:
    STRATEGIES[name] = (module, dict(preset or {}))


def strategy_names() -> list[str]:
    return sorted(STRATEGIES)


def tree_and_start(session: Any, prompt: str | TokenTree,
                   start_id: int | None) -> tuple[TokenTree, int]:
    """The tree a run grows and the node it starts from: ``prompt`` itself when it is a
    TokenTree (``start_id`` defaults to its root), else a new tree of the prompt text."""
    if isinstance(prompt, TokenTree):
        start_id = prompt.root_id if start_id is None else start_id
        if start_id not in prompt:
            raise ValueError(f"start_id {start_id} is not a node of this tree")
        return prompt, start_id
    if start_id is not None:
        raise ValueError("start_id needs a TokenTree as prompt")
    check_prompt(prompt)
    tree = session.tree(prompt)
    return tree, tree.root_id


def run_strategy(session: Any, prompt: str | TokenTree, strategy: str = "greedy",
                 max_new_tokens: int = 32, seed: int | None = None, start_id: int | None = None,
                 stop: Any = None, on_step: Any = None, **params: Any) -> GenerationResult:
    if not isinstance(strategy, str) or strategy not in STRATEGIES:
        raise ValueError(f"strategy {strategy!r} is unknown; valid names: "
                         f"{', '.join(strategy_names())}")
    check_int("max_new_tokens", max_new_tokens, 1)
    check_run_args(stop, on_step)
    if seed is not None:
        check_int("seed", seed, 0)
    tree, start_id = tree_and_start(session, prompt, start_id)
    module_name, preset = STRATEGIES[strategy]
    module = import_module(f"{__name__}.{module_name}")
    merged = {**preset, **params}
    result = execute(tree, lambda: module.run(session, tree, start_id,
                                              max_new_tokens=max_new_tokens, seed=seed,
                                              strategy=strategy, **merged),
                     stop=stop, on_step=on_step)
    result.eos_token_ids = frozenset(getattr(session, "eos_token_ids", ()))
    return result


__all__ = ["GenerationResult", "STRATEGIES", "register", "run_strategy", "strategy_names"]


def register_strategy(name: str, choose: Any, **preset: Any) -> None:
    """Register your own strategy ``choose(dist, node) -> list[int]`` under ``name``; see
    docs/strategies/custom.md."""
    from .custom import register_strategy as _register

    _register(name, choose, **preset)


__all__.append("register_strategy")
