"""Constrained greedy decoding vs plain, side by side in one run, alternating.

Sides, each a greedy run of ``--tokens`` tokens after a ``--prompt-tokens``-token prompt into a
fresh tree (one untimed run of each first, so every side's KV cache and llguidance's tokenizer
are warm):

- ``plain``: ``s.generate(prompt, "greedy", stop_at_eos=False)``;
- ``regex``: the same under ``iv.Regex`` of a permissive character class (every step masked,
  the text never complete);
- ``json``: under ``iv.JSONSchema`` of an object with one free string property.

Reported per side: tokens/s, the ratio to plain (target >= 0.8), and the mask time per token
(llguidance's mask plus unpacking it, from the constraint's tracker). Also a batched level:
``bfs`` (k=4, depth=3) constrained vs plain, whose masks are computed a level at a time.

    .venv/bin/python bench/constraints.py [--tokens 64] [--prompt-tokens 64] [--runs 5]
"""

from __future__ import annotations

import argparse

from common import add_device_args, emit, load_session, median, model_label, prompt_of_tokens, timed

REGEX = r"[A-Za-z0-9 ,.;:'\n-]+"
SCHEMA = {"type": "object", "properties": {"story": {"type": "string"}}, "required": ["story"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--runs", type=int, default=5)
    add_device_args(parser)
    args = parser.parse_args()

    import inferviz as iv
    from inferviz.constraint_masks import tracker_for

    session = load_session(args.model, args.device, args.dtype)
    prompt = prompt_of_tokens(session, args.prompt_tokens)
    constraints = {"regex": iv.Regex(REGEX), "json": iv.JSONSchema(SCHEMA)}
    masks: dict[str, list[float]] = {name: [] for name in constraints}

    def run_greedy(name):
        def go():
            res = session.generate(prompt, "greedy", max_new_tokens=args.tokens,
                                   stop_at_eos=False, constraint=constraints.get(name))
            if name in constraints:
                tracker = tracker_for(session, res.tree, constraints[name])
                masks[name].append(tracker.mask_seconds / max(1, tracker.masks_computed))
            return res
        return go

    def run_bfs(name):
        def go():
            return session.generate(prompt, "bfs", k=4, depth=3, max_new_tokens=3,
                                    constraint=constraints.get(name))
        return go

    sides = {"plain": run_greedy("plain"), "regex": run_greedy("regex"),
             "json": run_greedy("json"), "bfs_plain": run_bfs("plain"),
             "bfs_regex": run_bfs("regex")}
    tokens: dict[str, int] = {}
    for name, fn in sides.items():  # warm every side
        res = fn()
        tokens[name] = len(res.tree.nodes) - 1
    for name in masks:
        masks[name].clear()
    seconds: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(args.runs):
        for name, fn in sides.items():
            elapsed, _ = timed(fn)
            seconds[name].append(elapsed)

    def side(name, v):
        base = median(seconds["bfs_plain" if name.startswith("bfs") else "plain"])
        out = {"median_seconds": round(median(v), 4), "seconds": v,
               "time_ratio_to_plain": round(median(v) / base, 3),
               "speed_ratio_to_plain": round(base / median(v), 3)}
        if not name.startswith("bfs"):
            out["tokens_per_second"] = round(args.tokens / median(v), 2)
        if name in masks:
            out["mask_ms_per_token"] = round(1000 * median(masks[name]), 3)
        return out

    emit({
        "benchmark": "constraints",
        "model": model_label(session, args.model),
        "prompt_tokens": args.prompt_tokens,
        "new_tokens": args.tokens,
        "regex": REGEX,
        "json_schema": SCHEMA,
        "runs": args.runs,
        "nodes": tokens,
        "sides": {name: side(name, v) for name, v in seconds.items()},
    }, args.device)


if __name__ == "__main__":
    main()
