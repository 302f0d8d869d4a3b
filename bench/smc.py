"""Batched SMC vs a per-particle loop on the default model; prints JSON.

Both run the same algorithm (proposal top-k at temperature 1, kept-mass weights, multinomial
resampling when ESS < N/2) for the same number of particles and tokens. "batched" is
``Session.generate(strategy="smc")``: every live particle advances in ONE forward per step
(identical particles share a row). "loop" steps each particle on its own with
``session.distributions(tree, [node])``. Each repeat starts from a cleared KV cache; the figure
is the median over repeats of particle-tokens per second (particle advances / wall time).

    .venv/bin/python bench/smc.py [--particles 32] [--tokens 32] [--repeats 3]
    python bench/smc.py --device cuda --model smollm2-135m --particles 256 --tokens 16
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time

import numpy as np
import torch
from common import add_device_args, load_session, machine, model_label

from inferviz.distributions import record_children
from inferviz.processors import SamplerSettings
from inferviz.resampling import ess, normalize_log_weights, resample
from inferviz.strategies.common import draw_tokens
from inferviz.strategies.smc import incremental_log_weights

PROMPT = "Once upon a time, in a small village by the sea,"


def batched(session, n: int, tokens: int, top_k: int, seed: int) -> tuple[float, int]:
    start = time.perf_counter()
    res = session.generate(PROMPT, strategy="smc", particles=n, max_new_tokens=tokens,
                           seed=seed, top_k=top_k)
    wall = time.perf_counter() - start
    moved = sum(sum(s.moved) for s in res.record.steps)
    return wall, moved


def loop(session, n: int, tokens: int, top_k: int, seed: int) -> tuple[float, int]:
    """The same SMC, one forward per particle per step."""
    start = time.perf_counter()
    settings = SamplerSettings(top_k=top_k)
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    eos = session.eos_token_ids
    tree = session.tree(PROMPT)
    nodes, log_w, done = [tree.root_id] * n, np.zeros(n), np.zeros(n, dtype=bool)
    moved = 0
    for step in range(1, tokens + 1):
        for i in np.flatnonzero(~done):
            dists = session.distributions(tree, [nodes[i]], settings)
            token = int(draw_tokens(dists.probs[0], 1, gen))  # as the batched SMC draws
            (child,) = record_children(tree, dists, 0, [token], session.token_bytes)
            log_w[i] += incremental_log_weights(dists, np.array([0]), np.array([token]),
                                                settings)[0]
            nodes[i], done[i] = child.node_id, token in eos
            moved += 1
        if done.all() or step == tokens:
            break
        if ess(log_w) < 0.5 * n:
            log_norm, log_sum = normalize_log_weights(log_w)
            ancestors = resample("multinomial", np.exp(log_norm), rng)
            log_w = np.full(n, log_sum - math.log(n))
            nodes, done = [nodes[a] for a in ancestors], done[ancestors]
    return time.perf_counter() - start, moved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--particles", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--top-k", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    add_device_args(parser)
    args = parser.parse_args()
    session = load_session(args.model, args.device, args.dtype)
    session.generate(PROMPT, strategy="smc", particles=2, max_new_tokens=2, seed=0)  # warm up
    rates: dict[str, list[float]] = {"batched": [], "loop": []}
    walls: dict[str, list[float]] = {"batched": [], "loop": []}
    for rep in range(args.repeats):  # interleaved, so drifting machine load hits both
        for name, fn in (("batched", batched), ("loop", loop)):
            session.engine.clear_cache()
            wall, moved = fn(session, args.particles, args.tokens, args.top_k, seed=rep)
            rates[name].append(moved / wall)
            walls[name].append(wall)
            print(f"repeat {rep} {name}: {moved} particle-tokens in {wall:.2f} s",
                  file=sys.stderr, flush=True)
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(json.dumps({
        "benchmark": "smc_batched_vs_per_particle_loop",
        "model": model_label(session, args.model), "device": str(session.device),
        "dtype": str(session.engine.dtype), "machine_info": machine(args.device),
        "torch_threads": torch.get_num_threads(), "machine": platform.machine(),
        "particles": args.particles, "max_new_tokens": args.tokens, "top_k": args.top_k,
        "repeats": args.repeats,
        "batched_particle_tokens_per_s": round(med["batched"], 1),
        "loop_particle_tokens_per_s": round(med["loop"], 1),
        "speedup": round(med["batched"] / med["loop"], 2),
        "batched_wall_s": [round(w, 3) for w in walls["batched"]],
        "loop_wall_s": [round(w, 3) for w in walls["loop"]],
    }, indent=2))


if __name__ == "__main__":
    main()
