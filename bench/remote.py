"""A session over a server (Session.connect), every ratio measured side by side in one run:

- tree expansion (every node at depths 0..d-1 to its top k; k=4, d=3: 21 requests) with a
  level's requests in flight together (``concurrency=16``) vs one request at a time
  (``concurrency=1``);
- ``--tokens`` greedy tokens: client-side stepping (one request a token) vs ``server_side=True``
  (one streamed request), the same tokens checked.

Against two servers: a real llama.cpp server (``llama-server`` from ``make llama-server``, the
default GGUF, ``--parallel 16``, on this machine's CPU: its slots are decoded as one batch), and
the tests' fake server with a fixed latency a request (``--latency`` s, standing in for the
network and queue time of a remote GPU server; the latencies of concurrent requests overlap, its
tiny model runs one request at a time). Prints JSON.

Run: ``.venv/bin/python bench/remote.py [--repeats 3] [--only llama,fake]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # this checkout's inferviz and test helpers

import inferviz as iv  # noqa: E402

PROMPTS = {"llama": "The capital of France is", "fake": "t5 t17 t20"}


def expand_tree(session, prompt: str, k: int, depth: int) -> int:
    """Expand every node at depths 0..depth-1 to its top k, level by level; nodes expanded."""
    tree = session.tree(prompt)
    frontier, expanded = [tree.root_id], 0
    for _ in range(depth):
        expanded += len(frontier)
        frontier = [c.node_id for c in session.expand(tree, frontier, k=k)]
    return expanded


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def measure(url: str, prompt: str, args, connect_kw: dict) -> dict:
    """The two ratios against the server at ``url``; the sides alternate, medians reported."""
    sessions = {c: iv.Session.connect(url, concurrency=c, **connect_kw) for c in (1, 16)}
    fast = sessions[16]
    try:
        expand_tree(fast, prompt, args.k, args.depth)  # warm-up: server prompt cache, pools
        times: dict[str, list[float]] = {"serial": [], "concurrent": [], "stepwise": [],
                                         "server_side": []}
        same = True
        requests = {}
        for _ in range(args.repeats):
            for side, c in (("serial", 1), ("concurrent", 16)):
                session = sessions[c]
                before = session.backend.requests
                wall, nodes = timed(lambda s=session: expand_tree(s, prompt, args.k, args.depth))
                times[side].append(wall)
                requests[side] = session.backend.requests - before
            wall, a = timed(lambda: fast.generate(prompt, max_new_tokens=args.tokens,
                                                  stop_at_eos=False))
            times["stepwise"].append(wall)
            before = fast.backend.requests
            wall, b = timed(lambda: fast.generate(prompt, max_new_tokens=args.tokens,
                                                  stop_at_eos=False, server_side=True))
            times["server_side"].append(wall)
            requests["server_side"] = fast.backend.requests - before
            same &= a.tree.token_ids(a.node_id) == b.tree.token_ids(b.node_id)
        med = {side: statistics.median(v) for side, v in times.items()}
        return {
            "expansion": {"k": args.k, "depth": args.depth, "nodes_expanded": nodes,
                          "requests": requests["serial"],
                          "serial_s": round(med["serial"], 3),
                          "concurrent_s": round(med["concurrent"], 3),
                          "ratio_concurrent_over_serial": round(med["concurrent"] / med["serial"],
                                                                3)},
            "greedy": {"tokens": args.tokens,
                       "stepwise_tokens_per_s": round(args.tokens / med["stepwise"], 1),
                       "server_side_tokens_per_s": round(args.tokens / med["server_side"], 1),
                       "speedup_server_side": round(med["stepwise"] / med["server_side"], 2),
                       "server_side_requests": requests["server_side"],
                       "same_tokens": same},
            "wall_s": {side: [round(x, 3) for x in v] for side, v in times.items()},
        }
    finally:
        for s in sessions.values():
            s.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency", type=float, default=0.05, help="fake server, s a request")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default="llama,fake")
    args = parser.parse_args()
    out: dict = {"repeats": args.repeats}
    if "llama" in args.only:
        from llama_server import BINARY, LlamaServer

        if not BINARY.exists():
            out["llama"] = {"error": f"llama-server is not built at {BINARY}: make llama-server"}
        else:
            with LlamaServer(parallel=16, ctx_per_slot=256) as server:
                out["llama"] = {"server": "llama-server --parallel 16 -t 2, default GGUF "
                                          "(SmolLM2-135M Q4_1), CPU",
                                **measure(server.url, PROMPTS["llama"], args, {})}
    if "fake" in args.only:
        from fake_server import FakeServer
        from tiny_models import tiny_model, tiny_tokenizer

        model, tok = tiny_model("llama"), tiny_tokenizer()
        with FakeServer(model, tok, delay=args.latency, max_logprobs=97) as server:
            out["fake"] = {"server": f"tests' fake server, {args.latency * 1e3:.0f} ms a "
                                     f"request (requests overlap; the model runs one at a time)",
                           **measure(server.url, PROMPTS["fake"], args, {"tokenizer": tok})}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
