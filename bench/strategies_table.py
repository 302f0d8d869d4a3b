"""The Inference Edge table, with code behind it: for each decoding strategy and model, tokens/s,
time to first token, peak memory and the perplexity of the generated text under the model.

Each (model, strategy) runs in a fresh subprocess. Memory, three ways: the process's peak RSS
during the timed run (VmHWM, reset through /proc/self/clear_refs just before it: model weights
included, what a user's machine must hold), its growth over the RSS before the run (the timed run
follows the 1-token TTFT run, so memory the allocator already holds from that warm-up is not
counted again; torch allocations are invisible to tracemalloc), and the exact size of the keys
and values the run cached (tokens in the KV store x bytes per token: what differs most between
strategies).
Time to first token: a run with max_new_tokens=1 on a cold KV cache. Tokens/s: new tokens of the
best sequence / wall time of a run with max_new_tokens=N on a cold KV cache (beam and SMC
compute several sequences per token: their tokens/s counts the returned sequence only).
Perplexity: exp(-mean log p) of the generated tokens under the model, teacher-forced after the
prompt. A strategy that fails to import or run is reported "not available" with the reason.

    .venv/bin/python bench/strategies_table.py [--models default,gemma3-270m,...] [--tokens 64]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from common import ROOT, emit

MODELS = ("default", "gemma3-270m", "qwen2.5-coder-0.5b")
STRATEGIES = {
    "greedy": {},
    "sample": {"temperature": 1.0},
    "top_k": {"top_k": 50},
    "top_p": {"top_p": 0.9},
    "beam": {"num_beams": 4},
    "contrastive": {"amateur_layer": "half"},  # resolved to num_layers // 2 in the child
    "smc": {"particles": 8, "top_k": 50},
}
PROMPT = "Explain in a few sentences why the sky is blue."

CHILD = r"""
import json, math, sys, time
sys.path.insert(0, "bench")
from common import load_session, peak_rss_mib, current_rss_mib, reset_peak_rss
import torch
model_name, strategy, params, n = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4])
s = load_session(model_name)
if params.get("amateur_layer") == "half":
    params["amateur_layer"] = s.adapter.num_layers // 2
kwargs = dict(strategy=strategy, seed=0, stop_at_eos=False, **params)

def run(max_new):
    s.engine.clear_cache()
    start = time.perf_counter()
    res = s.generate(PROMPT, max_new_tokens=max_new, **kwargs)
    return time.perf_counter() - start, res

try:
    ttft, _ = run(1)
    reset_peak_rss()
    base = current_rss_mib()
    seconds, res = run(n)
    peak_abs = peak_rss_mib()
    peak = peak_abs - base
    store = s.engine.store
    kv_mib = store.num_cached * store.bytes_used / (store.capacity + 1) / 2**20
except (ImportError, ModuleNotFoundError) as err:
    print(json.dumps({"available": False, "reason": f"{type(err).__name__}: {err}"}))
    raise SystemExit(0)
gen = res.token_ids
prompt_ids = res.tree.prompt_ids
with torch.no_grad():
    logits = s.model(input_ids=torch.tensor([prompt_ids + gen])).logits[0].float()
logp = torch.log_softmax(logits[len(prompt_ids) - 1 : -1], -1)
nll = -logp[torch.arange(len(gen)), torch.tensor(gen)].mean().item() if gen else float("nan")
print(json.dumps({"available": True, "new_tokens": len(gen), "seconds": seconds,
                  "tokens_per_s": len(gen) / seconds, "ttft_s": ttft,
                  "peak_rss_mib": peak_abs, "peak_rss_growth_mib": peak,
                  "kv_cache_mib": kv_mib, "perplexity": math.exp(nll),
                  "text": res.text[:120]}))
""".replace("PROMPT", repr(PROMPT))


def run_one(model: str, strategy: str, params: dict, tokens: int) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, model, strategy, json.dumps(params),
                           str(tokens)], capture_output=True, text=True, cwd=ROOT)
    lines = done.stdout.strip().splitlines()
    if done.returncode == 0 and lines:
        return json.loads(lines[-1])
    reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return {"available": False, "reason": reason[:300]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args()
    from inferviz import zoo

    rows = []
    for model in args.models.split(","):
        if model != "default" and not zoo.is_installed(model):
            rows.append({"model": model, "available": False,
                         "reason": f"not installed: {zoo.ZOO[model].install_hint}"})
            continue
        for strategy in args.strategies.split(","):
            row = run_one(model, strategy, STRATEGIES[strategy], args.tokens)
            rows.append({"model": model, "strategy": strategy,
                         "params": STRATEGIES[strategy], **row})
            print(json.dumps(rows[-1]), file=sys.stderr)
    emit({"benchmark": "strategies_table", "prompt": PROMPT, "max_new_tokens": args.tokens,
          "seed": 0, "rows": rows})


if __name__ == "__main__":
    main()
