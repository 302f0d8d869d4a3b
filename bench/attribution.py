"""Attribution of one node at the end of a 256-token path: inferviz (``s.attribute``,
integrated gradients, 32 steps) vs inseq (the same method and steps, the same path, only that
last token attributed: ``attr_pos_start``), side by side in one run, alternating.

Both go through captum's ``IntegratedGradients`` on the input embeddings. inferviz splits the
32 interpolation steps into batches of about ``TOKENS_PER_BATCH`` tokens (4 rows of 255
here); inseq is timed with the same ``internal_batch_size`` and with its default (all steps in
one batch). Their baselines differ (inferviz: the pad embedding with the first token kept;
inseq: its own baseline token ids), which does not change the work done.

Each measurement runs in a fresh process (``--side``): after a first large backward the C
allocator keeps its pages, so a second side measured in the same process would show almost no
growth. In it, a short warm-up (captum's import, a first backward on a 2-token path) runs
first; then, on the CPU, the kernel's peak-RSS counter is reset and the growth of the peak over
the RSS before the call is reported (torch allocations are invisible to tracemalloc); on CUDA,
``torch.cuda.max_memory_allocated`` growth over the allocation before it.

    .venv/bin/python bench/attribution.py [--tokens 256] [--steps 32] [--runs 2]
    python bench/attribution.py --device cuda
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys

from common import (
    add_device_args,
    emit,
    load_session,
    median,
    peak_growth_mib,
    prompt_of_tokens,
    synchronize,
    timed,
)

GENERATED = 8  # tokens grown greedily after the prompt; the last one is attributed
SIDES = ("inferviz", "inseq_same_batch", "inseq_default")


def path_node(session, tokens: int):
    """A tree whose greedy path is ``tokens`` long (prompt + generated); its last node."""
    generated = min(GENERATED, tokens - 1)
    tree = session.tree(prompt_of_tokens(session, tokens - generated))
    node_id = tree.root_id
    for _ in range(generated):
        node_id = session.expand(tree, node_id, k=1)[0].node_id
    return tree, node_id


def measure(fn, device: str) -> tuple[float, float]:
    """(seconds, peak memory growth in MiB) of one call."""
    import torch

    if device.startswith("cuda"):
        synchronize(device)
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        seconds, _ = timed(lambda: (fn(), synchronize(device)))
        return seconds, (torch.cuda.max_memory_allocated() - before) / 2**20
    growth, seconds = peak_growth_mib(lambda: timed(fn)[0])
    return seconds, growth


def run_side(args) -> dict:
    """One measurement of one side, in this (fresh) process."""
    from inferviz import attribution

    session = load_session(args.model, args.device, args.dtype)
    tree, node_id = path_node(session, args.tokens)
    warm_tree, warm_id = path_node(session, 2)
    full = tree.token_ids(node_id)
    rows = max(1, min(args.steps, attribution.TOKENS_PER_BATCH // (len(full) - 1)))
    out: dict = {"path_tokens": len(full), "rows_per_batch": rows}
    if args.side == "inferviz":
        def call(t=tree, n=node_id, steps=args.steps):
            return session.attribute(t, n, method="integrated_gradients", steps=steps)

        call(warm_tree, warm_id, 2)
        seconds, mib = measure(call, args.device)
        res = call()  # cached: the result just measured
        out.update(completeness_error=res.completeness_error,
                   target_minus_baseline=res.target - res.baseline_target)
    else:
        import inseq

        # inseq sets the tokenizer's padding side: it gets a copy.
        model = inseq.load_model(session.model, "integrated_gradients",
                                 tokenizer=copy.deepcopy(session.tokenizer))
        batch = rows if args.side == "inseq_same_batch" else None

        def call(t=tree, n=node_id, steps=args.steps):
            ids = t.token_ids(n)
            result = model.attribute(
                t.prompt, t.text(n), n_steps=steps, internal_batch_size=batch,
                attr_pos_start=len(ids) - 1, attributed_fn="probability", logprob=True,
                show_progress=False)
            seq = result.sequence_attributions[0]
            assert [tok.id for tok in seq.target] == ids, "inseq tokenised another path"
            return result

        call(warm_tree, warm_id, 2)
        seconds, mib = measure(call, args.device)
        out["internal_batch_size"] = batch
    out.update(seconds=round(seconds, 3), peak_mib=round(mib, 1))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_device_args(parser)
    parser.add_argument("--tokens", type=int, default=256, help="path length (with the node)")
    parser.add_argument("--steps", type=int, default=32, help="integrated-gradient steps")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--side", choices=SIDES, help="(internal) measure one side and exit")
    args = parser.parse_args()
    if args.side:
        print(json.dumps(run_side(args)))
        return

    passed = [a for a in sys.argv[1:]]
    measured: dict[str, list[dict]] = {side: [] for side in SIDES}
    for _ in range(args.runs):
        for side in SIDES:
            done = subprocess.run([sys.executable, __file__, *passed, "--side", side],
                                  capture_output=True, text=True, check=True)
            measured[side].append(json.loads(done.stdout.strip().splitlines()[-1]))
    sides = {}
    for side, runs in measured.items():
        sides[side] = {"median_seconds": median([r["seconds"] for r in runs]),
                       "median_peak_mib": median([r["peak_mib"] for r in runs]),
                       "seconds": [r["seconds"] for r in runs],
                       "peak_mib": [r["peak_mib"] for r in runs]}
        if side != "inferviz":
            sides[side]["internal_batch_size"] = runs[0]["internal_batch_size"]
    base = sides["inferviz"]
    for side in sides.values():
        side["time_ratio_to_inferviz"] = round(side["median_seconds"] / base["median_seconds"], 3)
        side["memory_ratio_to_inferviz"] = round(side["median_peak_mib"]
                                                 / max(base["median_peak_mib"], 1e-9), 3)
    ours = measured["inferviz"][0]
    emit({
        "benchmark": "attribution",
        "model": "default (SmolLM2-135M-Instruct)" if args.model == "default" else args.model,
        "path_tokens": ours["path_tokens"],
        "method": "integrated_gradients",
        "steps": args.steps,
        "inferviz_rows_per_batch": ours["rows_per_batch"],
        "inferviz_completeness_error": ours["completeness_error"],
        "inferviz_target_minus_baseline": ours["target_minus_baseline"],
        "runs": args.runs,
        "sides": sides,
    }, args.device)


if __name__ == "__main__":
    main()
