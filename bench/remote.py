"""A session over a server (Session.connect): concurrent requests and the server-side fast
path, against tests/fake_server.py with a fixed per-request latency standing in for a GPU
server's (``--latency`` seconds). Prints JSON with wall times and ratios measured in one run:

- one tree level of ``--width`` nodes expanded with ``concurrency=1`` vs ``concurrency=width``
- ``--tokens`` greedy tokens step by step (one request each) vs ``server_side=True`` (one)

Run: ``.venv/bin/python bench/remote.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # this checkout's inferviz and test helpers

from fake_server import FakeServer  # noqa: E402
from tiny_models import tiny_model, tiny_tokenizer  # noqa: E402

import inferviz as iv  # noqa: E402

PROMPT = "t5 t17 t20"


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=16)
    args = parser.parse_args()
    model, tok = tiny_model("llama"), tiny_tokenizer()
    out: dict = {"latency_s": args.latency, "width": args.width, "tokens": args.tokens}
    with FakeServer(model, tok, delay=args.latency, max_logprobs=97) as server:
        level = {}
        for concurrency in (1, args.width):
            s = iv.Session.connect(server.url, tokenizer=tok, concurrency=concurrency)
            tree = s.tree(PROMPT)
            kids = s.expand(tree, tree.root_id, k=args.width)
            server.max_in_flight = 0
            ids = [c.node_id for c in kids]
            start = time.perf_counter()
            s.expand(tree, ids, k=3)
            level[concurrency] = time.perf_counter() - start
            out[f"level_concurrency_{concurrency}_s"] = round(level[concurrency], 3)
            out[f"level_concurrency_{concurrency}_max_in_flight"] = server.max_in_flight
            s.backend.close()
        out["level_ratio_parallel_over_serial"] = round(level[args.width] / level[1], 3)
        s = iv.Session.connect(server.url, tokenizer=tok)
        stepwise, a = timed(lambda: s.generate(PROMPT, max_new_tokens=args.tokens,
                                               stop_at_eos=False))
        before = s.backend.requests
        fast, b = timed(lambda: s.generate(PROMPT, max_new_tokens=args.tokens,
                                           stop_at_eos=False, server_side=True))
        out.update(greedy_stepwise_s=round(stepwise, 3), greedy_server_side_s=round(fast, 3),
                   greedy_ratio_server_side_over_stepwise=round(fast / stepwise, 3),
                   server_side_requests=s.backend.requests - before,
                   same_tokens=a.token_ids == b.token_ids)
        s.backend.close()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
