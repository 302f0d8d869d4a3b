"""Decoding under a steering hook vs plain, side by side in one run, alternating.

Decoding: three sides, each a greedy run of ``--tokens`` tokens after a ``--prompt-tokens``-token prompt
into a fresh tree (every side's KV cache is warm: one untimed run each first):

- ``plain``: ``s.generate(prompt, "greedy")``;
- ``steered``: the same under ``Steer(layer, alpha, vector)``, as a user runs it: each step is
  the intervened forward plus the plain forward on the same path, for the KL divergence and
  ``plain_logprob`` every steered node records;
- ``steered_hooks_only``: the intervened forwards alone (the session view of
  ``s.under(...)`` with its plain comparison switched off): the cost of the hooks and of the
  branch's own KV cache, without the divergence.

Expanding one node (``expand_*``): a fresh node of a plain greedy path each run (its prefix
cached), k=5, plain vs under the intervention from that node, with and without the divergence.
Note that an expansion from a new node starts a new branch (its own KV cache, the plain
prefix copied in).

    .venv/bin/python bench/interventions.py [--tokens 32] [--prompt-tokens 64] [--runs 3]
"""

from __future__ import annotations

import argparse

from common import add_device_args, emit, load_session, median, model_label, prompt_of_tokens, timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--layer", type=int, default=6)
    parser.add_argument("--alpha", type=float, default=4.0)
    add_device_args(parser)
    args = parser.parse_args()

    import torch

    from inferviz.interventions import Steer

    session = load_session(args.model, args.device, args.dtype)
    prompt = prompt_of_tokens(session, args.prompt_tokens)
    vector = torch.randn(session.adapter.hidden_size, generator=torch.Generator().manual_seed(0))
    iv = Steer(layer=args.layer, alpha=args.alpha, vector=vector)

    def plain():
        return session.generate(prompt, "greedy", max_new_tokens=args.tokens, stop_at_eos=False)

    def steered():
        return session.generate(prompt, "greedy", max_new_tokens=args.tokens, stop_at_eos=False,
                                intervention=iv)

    def hooks_only():
        tree = session.tree(prompt)
        view = session.under(iv, len(tree.prompt_ids) - 1)
        view._plain = None  # the intervened forwards only: no plain comparison, no marks
        return view.generate(tree, "greedy", max_new_tokens=args.tokens, stop_at_eos=False)

    # Expanding one node (k=5): a fresh leaf of a plain greedy path each time, its prefix
    # cached; plain vs under the intervention from that node (with and without the divergence).
    base = session.generate(prompt, "greedy", max_new_tokens=args.tokens, stop_at_eos=False)
    leaves = iter([n.node_id for n in base.tree.path(base.leaf_ids[0])][1:] * 1000)

    def expand_plain():
        node = next(leaves)
        return session.expand(base.tree, node, k=5)

    def expand_steered():
        node = next(leaves)
        return session.expand(base.tree, node, k=5, intervention=iv)

    def expand_hooks_only():
        node = next(leaves)
        view = session.under(iv, len(base.tree.token_ids(node)) - 1)
        view._plain = None
        return view.expand(base.tree, node, k=5)

    sides = {"plain": plain, "steered": steered, "steered_hooks_only": hooks_only,
             "expand_plain": expand_plain, "expand_steered": expand_steered,
             "expand_hooks_only": expand_hooks_only}
    for fn in sides.values():  # warm every side's cache
        fn()
    seconds: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(args.runs):
        for name, fn in sides.items():
            elapsed, _ = timed(fn)
            seconds[name].append(elapsed)
    decode_base = median(seconds["plain"])
    expand_base = median(seconds["expand_plain"])

    def side(name, v):
        out = {"median_seconds": round(median(v), 4), "seconds": v}
        if name.startswith("expand"):
            out["ms_per_expand"] = round(1000 * median(v), 2)
            out["time_ratio_to_plain"] = round(median(v) / expand_base, 3)
        else:
            out["ms_per_token"] = round(1000 * median(v) / args.tokens, 2)
            out["time_ratio_to_plain"] = round(median(v) / decode_base, 3)
        return out

    emit({
        "benchmark": "interventions",
        "model": model_label(session, args.model),
        "prompt_tokens": args.prompt_tokens,
        "new_tokens": args.tokens,
        "intervention": iv.label,
        "runs": args.runs,
        "sides": {name: side(name, v) for name, v in seconds.items()},
    }, args.device)


if __name__ == "__main__":
    main()
