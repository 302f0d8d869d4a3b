"""Depth independence: expanding one node at depth 1 vs at depth 200 (its prefix cached), on the
default model. Ratio = time(depth 200) / time(depth 1); target <= 1.2.

    .venv/bin/python bench/depth.py [--runs 7]
"""

from __future__ import annotations

import argparse

from common import emit, load_session, median, timed

PROMPT = "Tell me everything you know about the history of astronomy."


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--deep", type=int, default=200)
    parser.add_argument("--k", type=int, default=5)
    args = parser.parse_args()
    s = load_session("default")
    tree = s.tree(PROMPT)
    shallow = s.expand(tree, tree.root_id, k=1)[0].node_id
    node = shallow
    for _ in range(args.deep - 1):  # greedy path down to depth `deep`
        node = s.expand(tree, node, k=1)[0].node_id
    deep = node
    times = {"depth_1": [], f"depth_{args.deep}": []}
    tokens = {}
    for _ in range(args.runs):
        for name, node_id in (("depth_1", shallow), (f"depth_{args.deep}", deep)):
            # The prefix is cached; the node's own token is recomputed for its logits (only
            # keys/values are cached): each run is a one-token forward, whatever the depth.
            s.engine.stats.reset()
            seconds, _ = timed(lambda node_id=node_id: s.expand(tree, node_id, k=args.k))
            times[name].append(seconds)
            tokens[name] = s.engine.stats.tokens_computed
    med = {name: median(v) for name, v in times.items()}
    emit({
        "benchmark": "depth",
        "model": "default (SmolLM2-135M-Instruct)",
        "prompt_tokens": len(tree.prompt_ids),
        "runs": args.runs,
        "median_s": med,
        "tokens_computed_per_expansion": tokens,
        "ratio_deep_vs_shallow": med[f"depth_{args.deep}"] / med["depth_1"],
        # Under a noisy shared CPU the fastest run is the least disturbed one.
        "ratio_of_fastest_runs": min(times[f"depth_{args.deep}"]) / min(times["depth_1"]),
        "target_ratio_max": 1.2,
    })


if __name__ == "__main__":
    main()
