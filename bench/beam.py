"""Beam search, inferviz vs transformers, on the default model: same outputs? how fast?

Prints JSON: per prompt the median of ``--repeats`` wall times of each (inferviz's KV cache is
cleared before every run, so nothing is reused across repeats), their ratio
(inferviz / transformers: < 1 means inferviz is faster) and whether the sequences and scores
are identical. Run: ``.venv/bin/python bench/beam.py``, or on a GPU
``python bench/beam.py --device cuda --model qwen2.5-1.5b --num-beams 8``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
from common import add_device_args, load_session, machine, model_label, synchronize

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):",
    "Once upon a time, in a small village,",
    "The three most important things to know about photosynthesis are",
]


def time_median(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--num-beams", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    add_device_args(parser)
    args = parser.parse_args()

    s = load_session(args.model, args.device, args.dtype)
    eos, pad = sorted(s.eos_token_ids), s.tokenizer.pad_token_id
    rows = []
    for prompt in PROMPTS:
        ids = torch.tensor([s.encode(prompt)], device=s.device)

        def ours(prompt=prompt):
            s.engine.clear_cache()
            return s.generate(prompt, strategy="beam", num_beams=args.num_beams,
                              max_new_tokens=args.max_new_tokens)

        def theirs(ids=ids):
            with torch.no_grad():
                out = s.model.generate(
                    ids, attention_mask=torch.ones_like(ids), do_sample=False,
                    num_beams=args.num_beams, max_new_tokens=args.max_new_tokens,
                    eos_token_id=eos, pad_token_id=pad, output_scores=True,
                    return_dict_in_generate=True)
            synchronize(s.device)
            return out

        theirs()  # warm-up (first-call allocations)
        t_ours, res = time_median(ours, args.repeats)
        t_hf, out = time_median(theirs, args.repeats)
        n = ids.shape[1]
        mine = res.tree.token_ids(res.leaf_ids[0])[n:]
        hf = out.sequences[0, n:].tolist()
        fill = pad or eos[0]
        same = hf[: len(mine)] == mine and all(t == fill for t in hf[len(mine):])
        rows.append({
            "prompt": prompt,
            "inferviz_s": round(t_ours, 4),
            "transformers_s": round(t_hf, 4),
            "time_ratio": round(t_ours / t_hf, 3),
            "identical_sequence": same,
            "score_diff": abs(res.scores[0] - float(out.sequences_scores[0])),
            "tree_nodes": len(res.tree),
        })
    print(json.dumps({
        "benchmark": "beam_search",
        "model": model_label(s, args.model), "dtype": str(s.engine.dtype),
        "machine_info": machine(args.device),
        "num_beams": args.num_beams,
        "max_new_tokens": args.max_new_tokens,
        "repeats": args.repeats,
        "device": str(s.device),
        "torch_threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "median_time_ratio": statistics.median(r["time_ratio"] for r in rows),
        "all_identical": all(r["identical_sequence"] for r in rows),
        "prompts": rows,
    }, indent=2))


if __name__ == "__main__":
    main()
