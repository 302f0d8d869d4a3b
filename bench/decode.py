"""Greedy decoding speed: inferviz (node by node, and ``generate``) vs HF ``model.generate``,
and the time of a second load of the default model in a fresh process.

    .venv/bin/python bench/decode.py [--tokens 128] [--runs 3]
    python bench/decode.py --device cuda --model qwen2.5-1.5b --compile reduce-overhead

Under load: the same sides again, alternating, while ``--load`` busy-loop processes (2 by
default, one per core of the 2-core machine the CPU figures come from) compete for the CPU, so
that the column does not depend on what else the machine runs. ``--profile``: the top entries of
a cProfile of one ``Session.generate`` run, idle and under load (what docs/benchmarks.md shows).

On CUDA (batch 1) it adds ``Session(compile=...)`` (torch.compile; "reduce-overhead" replays
CUDA graphs), optionally HF ``generate`` with a static cache compiled the same way
(``--hf-compiled``), and the fraction of the memory-bandwidth limit: weight bytes x tokens/s /
the device's peak bandwidth (``--peak-bandwidth``, bytes/s; H100 SXM: 3.35e12).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from common import (
    ROOT,
    add_device_args,
    cpu_load,
    emit,
    load_session,
    median,
    model_label,
    profile_top,
    timed,
)

PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."

LOAD_SNIPPET = """
import json, time
t0 = time.perf_counter()
import torch, transformers
t1 = time.perf_counter()
import inferviz
s = inferviz.Session.from_pretrained("default")
t2 = time.perf_counter()
print(json.dumps({"import_torch_transformers_s": t1 - t0, "after_imports_s": t2 - t1,
                  "from_pretrained_s": s.load_seconds, "source": s.source}))
"""


def inferviz_expand(session, n: int) -> list[int]:
    session.engine.clear_cache()
    tree = session.tree(PROMPT)
    node = tree.root_id
    for _ in range(n):
        node = session.expand(tree, node, k=1)[0].node_id
    return tree.token_ids(node)[len(tree.prompt_ids):]


def inferviz_generate(session, n: int) -> list[int]:
    session.engine.clear_cache()
    res = session.generate(PROMPT, strategy="greedy", max_new_tokens=n, stop_at_eos=False)
    return res.token_ids


def hf_generate(session, n: int) -> list[int]:
    import copy

    import torch

    # No EOS: decode exactly n tokens, like inferviz with stop_at_eos=False (min_new_tokens
    # would instead mask EOS out of the logits and change the greedy path).
    # (eos None is replaced by the model's default, so name an id no token has.)
    config = copy.deepcopy(session.model.generation_config)
    config.update(eos_token_id=-1, pad_token_id=session.tokenizer.pad_token_id or 0,
                  do_sample=False, num_beams=1, max_new_tokens=n)
    ids = torch.tensor([session.encode(PROMPT)], device=session.device)
    out = session.model.generate(ids, attention_mask=torch.ones_like(ids),
                                 generation_config=config)
    return out[0, ids.shape[1]:].tolist()


def hf_generate_compiled(session, n: int) -> list[int]:
    """HF's own fast path: a static cache, the forward compiled (CUDA graphs)."""
    import copy

    import torch

    config = copy.deepcopy(session.model.generation_config)
    config.update(eos_token_id=-1, pad_token_id=session.tokenizer.pad_token_id or 0,
                  do_sample=False, num_beams=1, max_new_tokens=n,
                  cache_implementation="static")
    ids = torch.tensor([session.encode(PROMPT)], device=session.device)
    out = session.model.generate(ids, attention_mask=torch.ones_like(ids),
                                 generation_config=config)
    return out[0, ids.shape[1]:].tolist()


def second_load(runs: int) -> dict:
    walls, inner = [], []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", LOAD_SNIPPET], capture_output=True,
                              text=True, cwd=ROOT, check=True)
        walls.append(time.perf_counter() - start)
        inner.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {
        "process_wall_s": median(walls),
        "import_torch_transformers_s": median([r["import_torch_transformers_s"] for r in inner]),
        "load_excluding_torch_transformers_import_s": median([r["after_imports_s"] for r in inner]),
        "from_pretrained_s": median([r["from_pretrained_s"] for r in inner]),
        "source": inner[-1]["source"],
        "target_excluding_imports_s": 3.0,
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--compile", default=None,
                        help="also time Session(compile=MODE), e.g. reduce-overhead")
    parser.add_argument("--hf-compiled", action="store_true",
                        help="also time HF generate with a static compiled cache")
    parser.add_argument("--peak-bandwidth", type=float, default=3.35e12)
    parser.add_argument("--load", type=int, default=2,
                        help="busy-loop processes for the under-load column (0: none)")
    parser.add_argument("--profile", type=int, default=0,
                        help="top N cProfile entries of one Session.generate run (0: none)")
    parser.add_argument("--no-second-load", action="store_true")
    add_device_args(parser)
    args = parser.parse_args()
    session = load_session(args.model, args.device, args.dtype)
    n = args.tokens
    sides = [("hf_generate", hf_generate, session), ("inferviz_expand", inferviz_expand, session),
             ("inferviz_generate", inferviz_generate, session)]
    if args.compile:
        import inferviz

        compiled = inferviz.Session(session.model, session.tokenizer, name=session.name,
                                    compile=args.compile)
        sides.append(("inferviz_generate_compiled", inferviz_generate, compiled))
    if args.hf_compiled:
        sides.append(("hf_generate_compiled", hf_generate_compiled, session))
    warmup_s = {}
    for name, fn, sess in sides:  # warm up every path (compiled ones: every shape they meet)
        seconds, _ = timed(lambda fn=fn, sess=sess: [fn(sess, n) for _ in range(2)])
        warmup_s[name] = seconds
    tokens = {}

    def alternate() -> dict[str, float]:
        """Tokens/s of each side, median of ``runs`` rounds in which the sides alternate (so
        load drifts hit both alike)."""
        times = {name: [] for name, _, _ in sides}
        for _ in range(args.runs):
            for name, fn, sess in sides:
                seconds, out = timed(lambda fn=fn, sess=sess: fn(sess, n))
                times[name].append(seconds)
                if tokens.setdefault(name, out) != out:
                    tokens[name] = None  # not the same tokens every run
        return {name: n / median(values) for name, values in times.items()}

    tps = alternate()
    tps_load = None
    if args.load:
        with cpu_load(args.load):
            tps_load = alternate()
    result = {
        "benchmark": "decode",
        "model": model_label(session, args.model),
        "device": str(session.device), "dtype": str(session.engine.dtype),
        "new_tokens": n,
        "runs": args.runs,
        "tokens_per_s": tps,
        "ratio_expand_vs_hf": tps["inferviz_expand"] / tps["hf_generate"],
        "ratio_generate_vs_hf": tps["inferviz_generate"] / tps["hf_generate"],
        "target_ratio": 1.0,
        "under_load": None if tps_load is None else {
            "busy_processes": args.load, "tokens_per_s": tps_load,
            "ratio_expand_vs_hf": tps_load["inferviz_expand"] / tps_load["hf_generate"],
            "ratio_generate_vs_hf": tps_load["inferviz_generate"] / tps_load["hf_generate"],
            "target_ratio": 0.95},
        "same_tokens_as_hf": {name: tokens[name] is not None
                              and tokens[name] == tokens["hf_generate"]
                              for name in tokens if name != "hf_generate"},
        "warmup_s": warmup_s,
    }
    if args.compile:
        result["compile_mode"] = args.compile
        result["ratio_compiled_vs_hf"] = tps["inferviz_generate_compiled"] / tps["hf_generate"]
    if args.device != "cpu":
        from shapes import weight_bytes

        result["weight_bytes"] = weight_bytes(session.model)
        result["peak_bandwidth_bytes_per_s"] = args.peak_bandwidth
        result["bandwidth_fraction"] = {
            name: result["weight_bytes"] * value / args.peak_bandwidth
            for name, value in tps.items()}
    if args.profile:
        result["profile"] = {"tokens": n, "idle": profile_top(
            lambda: inferviz_generate(session, n), args.profile)}
        if args.load:
            with cpu_load(args.load):
                result["profile"]["under_load"] = profile_top(
                    lambda: inferviz_generate(session, n), args.profile)
    if args.model == "default" and not args.no_second_load:
        result["second_load"] = second_load(args.runs)
    emit(result, args.device)


if __name__ == "__main__":
    main()
