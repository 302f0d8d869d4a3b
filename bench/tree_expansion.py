"""Tree expansion: inferviz (every level in one batched forward, prefixes cached) vs a naive
per-node HF forward over the node's full path (no cache), on the default model.

For prompt length P, branching k and depth d, every node at depths 0..d-1 is expanded (its k
most likely children are added): 1 + k + ... + k^(d-1) expansions. The naive side is timed on a
random sample of those nodes (stratified by depth) and extrapolated to all of them: per depth,
mean sampled time x number of nodes at that depth. The sample's top-k must equal the tree's.
The naive forward unembeds the last position only (``logits_to_keep=1``); the same nodes are
also timed through HF's default forward, which unembeds every position (the naive side until
25 Nov), and that speedup is reported beside it.

Peak memory: torch allocations are invisible to tracemalloc, so for the headline configuration
we reset the kernel's peak-RSS counter before each side and report the growth of the peak over
the RSS before it. The KV store's own size is exact (slots in use x bytes per token).

    .venv/bin/python bench/tree_expansion.py [--runs 3] [--sample 6]
    python bench/tree_expansion.py --device cuda --model qwen2.5-1.5b --configs 2048,8,4

Model share: forward hooks on the model time each forward (what is inside them is the model;
the rest of the expansion, planning, masks, the KV store, the tree, is not). The speedup's bound:
inferviz must run the prompt's own forward once, and the naive side's root node is that same
forward, so naive_s / (the root's naive time) bounds the speedup from above (about the number
of nodes expanded). Under load: the headline configuration again, both sides, while ``--load``
busy-loop processes compete for the CPU.

On CUDA, peak memory is ``torch.cuda.max_memory_allocated`` growth over the allocation before
each side (exact tensor bytes), and both sides synchronise before their clocks stop.
"""

from __future__ import annotations

import argparse
import random

from common import (
    add_device_args,
    cpu_load,
    emit,
    load_session,
    maxrss_mib,
    median,
    model_label,
    peak_growth_mib,
    prompt_of_tokens,
    synchronize,
    timed,
)

CONFIGS = [(p, k, d) for p in (128, 512) for k in (3, 4) for d in (3, 4)]
HEADLINE = (512, 4, 4)


def expand_levels(session, tree, k: int, depth: int) -> list[list[int]]:
    """Expand level by level; returns the node ids expanded at each depth."""
    levels, frontier = [], [tree.root_id]
    for _ in range(depth):
        levels.append(frontier)
        frontier = [c.node_id for c in session.expand(tree, frontier, k=k)]
    return levels


def naive_topk(session, token_ids: list[int], k: int, last_only: bool = True) -> list[int]:
    """The top k after ``token_ids`` from one uncached HF forward over all of them: with
    ``logits_to_keep=1`` (the unembedding of the last position only, the stricter baseline),
    or, ``last_only=False``, HF's default forward, which unembeds every position (what the
    naive side was before 25 Nov, when 66.6x was recorded)."""
    import torch

    keep = {"logits_to_keep": 1} if last_only else {}
    with torch.no_grad():
        ids = torch.tensor([token_ids], device=session.device)
        logits = session.model(input_ids=ids, use_cache=False, **keep).logits
    return torch.topk(logits[0, -1].float(), k).indices.tolist()


class ForwardClock:
    """Seconds spent inside the model's forwards (pre- and post-forward hooks)."""

    def __init__(self, model) -> None:
        import time

        self.seconds, self._start, self._now = 0.0, None, time.perf_counter
        self._handles = [model.register_forward_pre_hook(self._before),
                         model.register_forward_hook(self._after)]

    def _before(self, module, args) -> None:
        self._start = self._now()

    def _after(self, module, args, output) -> None:
        self.seconds += self._now() - self._start

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()


def run_config(session, p: int, k: int, d: int, runs: int, sample: int, rng) -> dict:
    prompt = prompt_of_tokens(session, p)
    times, model_times, stats = [], [], None
    for _ in range(runs):
        session.engine.clear_cache()
        session.engine.stats.reset()
        tree = session.tree(prompt)
        clock = ForwardClock(session.model)
        try:
            seconds, levels = timed(lambda tree=tree: expand_levels(session, tree, k, d))
            synchronize(session.device)
        finally:
            clock.close()
        times.append(seconds)
        model_times.append(clock.seconds)
        stats = dict(vars(session.engine.stats))
    kv_bytes_per_token = session.engine.store.bytes_used // (session.engine.store.capacity + 1)
    cached_tokens = session.engine.store.num_cached
    naive_total, default_total, sampled, topk_equal, root_s = 0.0, 0.0, 0, True, None
    for nodes in levels:
        chosen = rng.sample(nodes, min(len(nodes), max(1, sample // d)))
        per_node, per_node_default = [], []
        for node in chosen:
            ids = tree.token_ids(node)
            seconds, top = timed(lambda ids=ids: naive_topk(session, ids, k))
            per_node.append(seconds)
            expected = [c.token_id for c in sorted(tree.children(node), key=lambda c: c.rank)]
            topk_equal &= top == expected[:k]
            seconds, top = timed(lambda ids=ids: naive_topk(session, ids, k, last_only=False))
            per_node_default.append(seconds)
            topk_equal &= top == expected[:k]
        sampled += len(chosen)
        naive_total += sum(per_node) / len(per_node) * len(nodes)
        default_total += sum(per_node_default) / len(per_node_default) * len(nodes)
        if root_s is None:
            root_s = per_node[0]  # the root: the prompt's own forward
    expanded = sum(len(nodes) for nodes in levels)
    naive_tokens = sum(len(nodes) * (len(tree.prompt_ids) + depth)
                       for depth, nodes in enumerate(levels))
    inferviz_s = median(times)
    share = [1 - m / t for m, t in zip(model_times, times)]
    return {
        "prompt_tokens": len(tree.prompt_ids), "k": k, "depth": d, "nodes_expanded": expanded,
        "inferviz_s": inferviz_s, "naive_s_extrapolated": naive_total,
        "naive_nodes_timed": sampled, "naive_extrapolated": sampled < expanded,
        "speedup": naive_total / inferviz_s,
        "speedup_bound": naive_total / root_s,
        "naive_default_forward_s_extrapolated": default_total,
        "speedup_vs_default_forward": default_total / inferviz_s,
        "inferviz_model_s": median(model_times),
        "inferviz_not_model_share": median(share),
        "forwards": {"inferviz": stats["forwards"], "naive": expanded},
        "tokens_processed": {"inferviz": stats["tokens_computed"], "naive": naive_tokens},
        "kv_store_mib": cached_tokens * kv_bytes_per_token / 2**20,
        "topk_equal_on_sample": topk_equal,
    }


def cuda_peak_growth_mib(fn) -> tuple[float, object]:
    import torch

    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    out = fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - before) / 2**20, out


def peak_memory(session, p: int, k: int, d: int) -> dict:
    """Peak RSS growth of each side, in this process (the kernel's peak counter is reset before
    each side; both sides free their activations afterwards)."""
    prompt = prompt_of_tokens(session, p)
    session.engine.clear_cache()
    tree = session.tree(prompt)
    cuda = session.device.type == "cuda"
    growth = cuda_peak_growth_mib if cuda else peak_growth_mib
    inferviz_mib, levels = growth(lambda: expand_levels(session, tree, k, d))
    deepest = levels[-1][0]
    naive_mib, _ = growth(lambda: naive_topk(session, tree.token_ids(deepest), k))
    if cuda:
        return {"method": "growth of torch.cuda.max_memory_allocated over the allocation "
                          "before each side (the KV pool's growth included for inferviz); "
                          "naive: one forward over the deepest path",
                "inferviz_mib": inferviz_mib, "naive_mib": naive_mib}
    return {"method": "growth of the process's peak RSS (VmHWM, reset through "
                      "/proc/self/clear_refs before each side) over its RSS before; inferviz: "
                      "the whole level-by-level expansion (the KV pool is preallocated, so its "
                      "size shows as kv_store_mib instead); naive: one forward over the deepest "
                      "path, its largest", "inferviz_mib": inferviz_mib, "naive_mib": naive_mib}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sample", type=int, default=6, help="naive nodes timed per config")
    parser.add_argument("--quick", action="store_true", help="only the headline configuration")
    parser.add_argument("--configs", default=None,
                        help="P,k,d[;P,k,d...]: these configurations, the first the headline")
    parser.add_argument("--load", type=int, default=2,
                        help="busy-loop processes for the headline's under-load run (0: none)")
    add_device_args(parser)
    args = parser.parse_args()
    session = load_session(args.model, args.device, args.dtype)
    rng = random.Random(0)
    expand_levels(session, session.tree("warm up"), 2, 2)
    naive_topk(session, session.encode("warm up"), 2)
    configs = [HEADLINE] if args.quick else CONFIGS
    headline = HEADLINE
    if args.configs:
        configs = [tuple(int(x) for x in c.split(",")) for c in args.configs.split(";")]
        headline = configs[0]
    rows = [run_config(session, p, k, d, args.runs, args.sample, rng) for p, k, d in configs]
    head = next(r for r in rows if (r["prompt_tokens"], r["k"], r["depth"]) == headline)
    under_load = None
    if args.load:
        with cpu_load(args.load):
            under_load = run_config(session, *headline, args.runs, args.sample, rng)
        under_load["busy_processes"] = args.load
    emit({
        "benchmark": "tree_expansion",
        "model": model_label(session, args.model),
        "device": str(session.device), "dtype": str(session.engine.dtype),
        "runs": args.runs,
        "naive_method": "HF model(input_ids, logits_to_keep=1) over the full path, no cache, "
                        "per node; a random sample per depth timed and extrapolated to all "
                        "nodes of that depth",
        "naive_default_forward_method": "the same nodes through HF's default forward, "
                                        "model(input_ids), which unembeds every position",
        "configs": rows,
        "headline": {"config": dict(zip(("prompt_tokens", "k", "depth"), headline)),
                     "speedup": head["speedup"], "speedup_bound": head["speedup_bound"],
                     "speedup_vs_default_forward": head["speedup_vs_default_forward"],
                     "target_speedup": 90},
        "under_load": under_load,
        "peak_memory": peak_memory(session, *headline),
        "this_process_maxrss_mib": maxrss_mib(),
    }, args.device)


if __name__ == "__main__":
    main()
