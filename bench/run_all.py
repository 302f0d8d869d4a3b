"""Run every benchmark and write docs/benchmarks.md (``make bench``).

    .venv/bin/python bench/run_all.py [--quick] [--only decode,depth,...] [--from DIR]
    python bench/run_all.py --device cuda [--big] [--only decode-smollm2-135m,...]

Each benchmark runs in its own process and prints JSON; the raw JSON is kept in the page.
Each result is also saved to ``bench/results/<name>.json`` (``bench/results/cuda/`` for
``--device cuda``, which runs the GPU suite of ``CUDA_BENCHES`` on config-built models); the
page always shows both the CPU results and the GPU section from those files. ``--from DIR``
renders the page from ``DIR/<name>.json`` files instead of running.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT
from render_gpu import render_gpu

RESULTS = ROOT / "bench" / "results"

BENCHES = {
    "decode": ["--runs", "3", "--profile", "10"],
    "depth": ["--runs", "15"],
    "tree_expansion": ["--runs", "3", "--sample", "6"],
    "smc": ["--particles", "32", "--tokens", "32", "--repeats", "3"],
    "beam": ["--repeats", "3"],
    "strategies_table": ["--tokens", "64"],
    "remote": ["--repeats", "3"],
    "tree_view": ["--runs", "3", "--clicks", "5"],
    "attribution": ["--runs", "1"],
    "interventions": ["--runs", "3"],
    "constraints": ["--runs", "5"],
}
QUICK = {
    "decode": ["--runs", "1", "--tokens", "64", "--profile", "10"],
    "depth": ["--runs", "3"],
    "tree_expansion": ["--runs", "1", "--sample", "4", "--quick"],
    "smc": ["--particles", "32", "--tokens", "8", "--repeats", "1"],
    "beam": ["--repeats", "1", "--max-new-tokens", "8"],
    "strategies_table": ["--tokens", "16", "--models", "default"],
    "remote": ["--repeats", "1", "--tokens", "16"],
    "tree_view": ["--runs", "1", "--clicks", "2"],
    "attribution": ["--runs", "1", "--tokens", "64", "--steps", "8"],
    "interventions": ["--runs", "1", "--tokens", "8"],
    "constraints": ["--runs", "1", "--tokens", "16"],
}

_GPU = ["--device", "cuda", "--dtype", "bfloat16"]
_DECODE = ["--tokens", "128", "--runs", "3", "--compile", "reduce-overhead", "--hf-compiled"]
_TREE = ["--configs", "2048,8,4", "--runs", "3", "--sample", "8"]
_BEAM = ["--num-beams", "8", "--max-new-tokens", "32", "--repeats", "3"]
# name -> (script, arguments): the GPU suite, on shapes from bench/shapes.py.
CUDA_BENCHES = {
    "decode-smollm2-135m": ("decode", [*_GPU, "--model", "smollm2-135m", *_DECODE]),
    "decode-qwen2.5-1.5b": ("decode", [*_GPU, "--model", "qwen2.5-1.5b", *_DECODE]),
    "tree-smollm2-135m": ("tree_expansion", [*_GPU, "--model", "smollm2-135m", *_TREE]),
    "tree-qwen2.5-1.5b": ("tree_expansion", [*_GPU, "--model", "qwen2.5-1.5b", *_TREE]),
    "smc-smollm2-135m": ("smc", [*_GPU, "--model", "smollm2-135m", "--particles", "256",
                                 "--tokens", "16", "--repeats", "1"]),
    "beam-smollm2-135m": ("beam", [*_GPU, "--model", "smollm2-135m", *_BEAM]),
    "beam-qwen2.5-1.5b": ("beam", [*_GPU, "--model", "qwen2.5-1.5b", *_BEAM]),
}
CUDA_BIG = {  # --big: the Llama-3-8B shape (16 GB of weights)
    "decode-llama3-8b": ("decode", [*_GPU, "--model", "llama3-8b", *_DECODE]),
}


def run(name: str, args: list[str], timeout: float | None = None) -> dict:
    start = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, str(ROOT / "bench" / f"{name}.py"), *args],
                              capture_output=True, text=True, cwd=ROOT, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        tail = (err.stderr or b"")[-2000:]
        return {"benchmark": name, "error": f"timed out after {timeout} s\n"
                + (tail.decode(errors="replace") if isinstance(tail, bytes) else str(tail))}
    if done.returncode != 0:
        return {"benchmark": name, "error": done.stderr.strip()[-2000:]}
    result = json.loads(done.stdout)
    result["wall_s"] = time.perf_counter() - start
    return result


def load_results(folder: Path, names) -> dict[str, dict]:
    return {name: json.loads((folder / f"{name}.json").read_text()) for name in names
            if (folder / f"{name}.json").is_file()}


def fmt(x, digits: int = 2) -> str:
    if isinstance(x, bool) or x is None:
        return str(x)
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def render(results: dict[str, dict], command: str, gpu: dict[str, dict] | None = None) -> str:
    out = ["# Benchmarks", "",
           f"Reproduce with `make bench` (= `{command}`). Every ratio is measured side by side in",
           "one process (the two sides alternate) and is a median of several runs. CPU-only",
           "figures from a shared 2-core machine: absolute times are noisy, ratios less so.", ""]
    machine = next((r.get("machine") for r in results.values() if "machine" in r), None)
    if machine:
        out += ["Machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()), ""]
    out += render_decode(results.get("decode"))
    out += render_tree_expansion(results.get("tree_expansion"))
    p = results.get("depth")
    if p and "error" not in p:
        names = list(p["median_s"])
        out += ["## Depth independence (default model)", "",
                f"One-node expansion (k=5) at {names[0]} vs {names[1]} (prefix cached): "
                f"{fmt(p['median_s'][names[0]] * 1e3, 1)} ms vs "
                f"{fmt(p['median_s'][names[1]] * 1e3, 1)} ms, ratio "
                f"**{fmt(p['ratio_deep_vs_shallow'])}** (target <= 1.2; ratio of the fastest runs "
                f"{fmt(p.get('ratio_of_fastest_runs'))}); tokens computed per "
                f"expansion: {p['tokens_computed_per_expansion']}.", ""]
    m = results.get("smc")
    if m and "error" not in m:
        out += ["## SMC: batched particles vs a per-particle loop (default model)", "",
                f"{m['particles']} particles, {m['max_new_tokens']} tokens, proposal top_k="
                f"{m['top_k']}, median of {m['repeats']} repeats (the sides alternate). Batched = "
                "`Session.generate(strategy='smc')` (every live particle in one forward per step); "
                "loop = the same algorithm stepping each particle with its own forward.", "",
                "| side | particle-tokens/s | wall s per run |", "|---|---|---|",
                f"| batched | {fmt(m['batched_particle_tokens_per_s'], 1)} | "
                f"{', '.join(fmt(w) for w in m['batched_wall_s'])} |",
                f"| per-particle loop | {fmt(m['loop_particle_tokens_per_s'], 1)} | "
                f"{', '.join(fmt(w) for w in m['loop_wall_s'])} |", "",
                f"Speedup **{fmt(m['speedup'])}x** (target >= 10x).", ""]
    b = results.get("beam")
    if b and "error" not in b:
        out += ["## Beam search vs transformers (default model)", "",
                f"{b['num_beams']} beams, {b['max_new_tokens']} new tokens, median of "
                f"{b['repeats']} runs per prompt; ratio = inferviz time / HF `generate(num_beams)` "
                "time (< 1: inferviz faster).", "",
                "| prompt | inferviz s | transformers s | ratio | same sequence | score diff |",
                "|---|---|---|---|---|---|"]
        for r in b["prompts"]:
            out.append(f"| {r['prompt']} | {fmt(r['inferviz_s'])} | {fmt(r['transformers_s'])} "
                       f"| {fmt(r['time_ratio'])} | {r['identical_sequence']} | "
                       f"{r['score_diff']:.1e} |")
        out += ["", f"Median ratio **{fmt(b['median_time_ratio'])}** (target <= 1.1); all "
                f"identical: {b['all_identical']}.", ""]
    s = results.get("strategies_table")
    if s and "error" not in s:
        out += ["## Strategies (Inference Edge's table, with the code behind it)", "",
                f"Prompt {s['prompt']!r}, {s['max_new_tokens']} new tokens, seed 0, cold KV cache "
                "per run, fresh process per row. Peak RSS: the process's peak resident memory "
                "during the timed run (model weights included); +MiB: its growth over the RSS "
                "before the run (after a 1-token warm-up, so the allocator's cache hides most "
                "of it); KV MiB: keys and values the run cached (exact). Tokens/s counts the "
                "returned sequence only (beam and SMC compute several per token).", "",
                "| model | strategy | tokens/s | TTFT s | peak RSS MiB | +MiB | KV MiB | "
                "perplexity |",
                "|---|---|---|---|---|---|---|---|"]
        for r in s["rows"]:
            if not r.get("available"):
                out.append(f"| {r['model']} | {r.get('strategy', '-')} | not available: "
                           f"{r.get('reason', '')[:80]} | | | | | |")
                continue
            out.append(f"| {r['model']} | {r['strategy']} | {fmt(r['tokens_per_s'], 1)} | "
                       f"{fmt(r['ttft_s'], 3)} | {fmt(r.get('peak_rss_mib'), 0)} | "
                       f"{fmt(r['peak_rss_growth_mib'], 0)} | {fmt(r.get('kv_cache_mib'), 1)} | "
                       f"{fmt(r['perplexity'])} |")
        out.append("")
    out += render_tree_view(results.get("tree_view"))
    out += render_remote(results.get("remote"))
    out += render_attribution(results.get("attribution"))
    out += render_interventions(results.get("interventions"))
    out += render_constraints(results.get("constraints"))
    out += render_hand_run("demo_load")
    out += render_gpu(gpu or {})
    out += ["## Notes", "",
            "- Timings come from a shared 2-core CPU where other jobs run at the same time; the "
            "two sides of each ratio alternate run by run so that load drifts hit both, but a "
            "burst during one run still moves a median. Re-run before quoting a figure.",
            "- Tree expansion: inferviz computes each token once (the tokens column) and runs "
            "each level as one packed row with a tree attention mask, so the shared prompt's "
            "keys/values are read once per layer, not once per node; the speedup grows with P "
            "and with the tree. What is left of inferviz's time is mostly the prompt's own "
            "forward.",
            "- Peak memory is resident-set growth, which includes allocator caching; it is an "
            "upper bound on what the operation itself needed, not an exact tensor count. The "
            "KV store column is exact (cached tokens x bytes per token).", ""]
    for name, r in results.items():
        if "error" in r:
            out += [f"## {name}: failed", "", "```", r["error"][-1500:], "```", ""]
    out += ["## Raw results", ""]
    for name, r in [*results.items(), *((f"cuda/{n}", r) for n, r in (gpu or {}).items())]:
        out += [f"<details><summary>{name}</summary>", "", "```json",
                json.dumps(r, indent=1, default=float), "```", "", "</details>", ""]
    return "\n".join(out)


def _under_load(d: dict, key: str, name: str) -> str:
    load = d.get("under_load")
    if not load:
        return "-"
    return f"{fmt(load['tokens_per_s'][name], 1)} ({fmt(load[key]) if key else '1.00'})"


def render_decode(d: dict | None) -> list[str]:
    """Greedy decoding vs HF generate, idle and under the benchmark's own load."""
    if not d or "error" in d:
        return []
    tps, load = d["tokens_per_s"], d.get("second_load")
    busy = (d.get("under_load") or {}).get("busy_processes", 0)
    out = ["## Greedy decoding (default model, %d new tokens)" % d["new_tokens"], "",
           f"Idle: the sides alternate, median of {d['runs']} runs. Under load: the same again "
           f"while {busy} busy-loop processes started by the benchmark compete for the CPU "
           "(tokens/s, and in brackets the ratio vs HF measured under the same load).", "",
           "| path | tokens/s | ratio vs HF generate | under load: tokens/s (ratio) | "
           "same tokens as HF |", "|---|---|---|---|---|",
           f"| HF `model.generate(do_sample=False)` | {fmt(tps['hf_generate'], 1)} | 1.00 | "
           f"{_under_load(d, '', 'hf_generate')} | - |",
           f"| `Session.expand(k=1)` node by node | {fmt(tps['inferviz_expand'], 1)} | "
           f"{fmt(d['ratio_expand_vs_hf'])} | "
           f"{_under_load(d, 'ratio_expand_vs_hf', 'inferviz_expand')} | "
           f"{d['same_tokens_as_hf']['inferviz_expand']} |",
           f"| `Session.generate(strategy='greedy')` | {fmt(tps['inferviz_generate'], 1)} | "
           f"**{fmt(d['ratio_generate_vs_hf'])}** | "
           f"{_under_load(d, 'ratio_generate_vs_hf', 'inferviz_generate')} | "
           f"{d['same_tokens_as_hf']['inferviz_generate']} |", "",
           "Targets: `generate` >= 1.0 idle, >= 0.95 under load. Why load mattered: between "
           "two forwards a step does a dozen small operations over a vocabulary-sized row; each "
           "above torch's parallel grain opens an OpenMP region that, on an oversubscribed CPU, "
           "waits for a descheduled worker thread (milliseconds each). Greedy now runs those on "
           "one thread and the forwards on the configured count (`inferviz/threads.py`); a path "
           "decoded token by token writes its keys/values into the KV store in place and "
           "attends to a view of its slots (no per-layer gather, concatenation or copy).", ""]
    out += render_profiles(d.get("profile"), RESULTS / "decode-before-issue20.json")
    if load:
        out += ["Second load of the default model in a fresh process (cache warm): "
                f"process wall {fmt(load['process_wall_s'])} s; `import torch, transformers` "
                f"{fmt(load['import_torch_transformers_s'])} s; the rest (import inferviz + "
                f"`Session.from_pretrained`) "
                f"{fmt(load['load_excluding_torch_transformers_import_s'])} s (target < 3 s); "
                f"`from_pretrained` alone {fmt(load['from_pretrained_s'])} s.", ""]
    return out


def render_profiles(after: dict | None, before_path: Path) -> list[str]:
    """cProfile top entries of one ``Session.generate`` run, before issue 20's changes (a
    saved run of the earlier engine) and now, idle and under load."""
    if not after:
        return []
    before = json.loads(before_path.read_text()).get("profile") if before_path.is_file() \
        else None
    out = ["Profile of one `Session.generate` run (cProfile, the functions with the most own "
           "time; share = own time / wall time of the run, comparable across runs of different "
           "lengths):", ""]
    for label, prof in (("before (engine of 8f9514a)", before), ("now", after)):
        if not prof:
            continue
        for cond in ("idle", "under_load"):
            rows = prof.get(cond)
            if not rows:
                continue
            out += [f"*{label}, {cond.replace('_', ' ')}, {prof['tokens']} tokens:*", "",
                    "| function | calls | own s | share |", "|---|---|---|---|"]
            out += [f"| `{r['function']}` | {r['calls']} | {fmt(r['own_s'], 3)} | "
                    f"{fmt(100 * r['share_of_wall'], 1)} % |" for r in rows[:8]]
            out.append("")
    return out


def render_tree_expansion(t: dict | None) -> list[str]:
    """Tree expansion vs a naive per-node forward, idle and under load."""
    if not t or "error" in t:
        return []
    out = ["## Tree expansion (default model)", "",
           "Every node at depths 0..d-1 expanded to its top k; inferviz batches each level "
           "into one call and reuses cached prefixes; naive = HF forward over the node's full "
           "path per node, no cache. " + t["naive_method"] + ". vs default: the same nodes "
           "through HF's default forward, which unembeds every position (the naive side until "
           "25 Nov; the 66.6x recorded then was against it). Not model: the share of "
           "inferviz's time outside the model's forwards (planning, masks, KV store, "
           "distributions, the tree). Bound: naive time / the root's naive time (the prompt's "
           "own forward, which inferviz must run once too): no expansion can beat it.", "",
           "| P | k | d | nodes | inferviz s | naive s | speedup | bound | vs default | "
           "not model | forwards (iv / naive) | tokens (iv / naive) | KV store MiB | "
           "top-k equal |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def row(r: dict, label: str = "") -> str:
        return (f"| {r['prompt_tokens']}{label} | {r['k']} | {r['depth']} | "
                f"{r['nodes_expanded']} | {fmt(r['inferviz_s'])} | "
                f"{fmt(r['naive_s_extrapolated'], 1)}{'*' if r['naive_extrapolated'] else ''} | "
                f"{fmt(r['speedup'], 1)}x | "
                f"{fmt(r['speedup_bound'], 1) + 'x' if 'speedup_bound' in r else '-'} | "
                f"{fmt(r['speedup_vs_default_forward'], 1) + 'x' if 'speedup_vs_default_forward' in r else '-'} | "
                f"{fmt(100 * r['inferviz_not_model_share'], 1) + ' %' if 'inferviz_not_model_share' in r else '-'} | "
                f"{r['forwards']['inferviz']} / {r['forwards']['naive']} | "
                f"{r['tokens_processed']['inferviz']} / {r['tokens_processed']['naive']} | "
                f"{fmt(r['kv_store_mib'], 1)} | {r['topk_equal_on_sample']} |")

    out += [row(r) for r in t["configs"]]
    load = t.get("under_load")
    if load:
        out.append(row(load, f" (under load, {load['busy_processes']} busy processes)"))
    mem = t["peak_memory"]
    head = t["headline"]
    out += ["", "\\* extrapolated from the timed sample.", "",
            f"Headline (P=512, k=4, d=4): {fmt(head['speedup'], 1)}x, target >= "
            f"{head['target_speedup']}x"
            + (f"; under load {fmt(load['speedup'], 1)}x" if load else "")
            + (f"; against HF's default forward {fmt(head['speedup_vs_default_forward'], 1)}x"
               if "speedup_vs_default_forward" in head else "") + ".", "",
            *_tree_target_note(t), f"Peak memory ({mem['method']}): inferviz +{fmt(mem['inferviz_mib'], 0)} MiB, "
            f"naive +{fmt(max(mem['naive_mib'], 0.0), 0)} MiB.", ""]
    return out


def _tree_target_note(t: dict) -> list[str]:
    """Why the headline speedup stops where it does: the bound (the prompt's own forward) and
    what the model's forwards alone allow (naive time / inferviz's time inside the model)."""
    conf = t["headline"]["config"]
    head = next((r for r in t["configs"] if r["prompt_tokens"] == conf["prompt_tokens"]
                 and r["k"] == conf["k"] and r["depth"] == conf["depth"]), None)
    if not head or "speedup_bound" not in head or not head.get("inferviz_model_s"):
        return []
    model_only = head["naive_s_extrapolated"] / head["inferviz_model_s"]
    return [f"What limits it: the naive side runs {head['forwards']['naive']} forwards over "
            f"the {head['prompt_tokens']}-token prompt and its path; inferviz runs the prompt "
            f"once and then one forward per level ({head['forwards']['inferviz']} in all), and "
            f"each level's forward, however few its tokens, reads every weight of the model. "
            f"In this run the prompt's forward alone bounds the speedup at "
            f"{fmt(head['speedup_bound'], 1)}x, and inferviz's time inside the model's "
            f"forwards ({fmt(head['inferviz_model_s'])} s) at {fmt(model_only, 1)}x even with "
            f"nothing outside the model ({fmt(100 * head['inferviz_not_model_share'], 1)} % "
            f"now). A target above those figures is not reachable by removing overhead. "
            + (f"Against HF's default forward, which also unembeds all "
               f"{head['prompt_tokens']} positions at every node (the naive side when 66.6x "
               f"was recorded), the speedup is {fmt(head['speedup_vs_default_forward'], 1)}x. "
               if "speedup_vs_default_forward" in head else "")
            + "The under-load row rests on a few naive forwards timed while busy processes hold "
            "the cores, each a long parallel region waiting for descheduled threads: it swings "
            "widely from run to run and says only that contention hurts the naive side more.", ""]


def render_tree_view(r: dict | None) -> list[str]:
    """The section on the tree view in chromium (bench/tree_view.py)."""
    if not r or "error" in r:
        return []
    d = r["delta"]
    out = ["## Tree view in the browser (headless chromium)", "",
           f"One click that adds 5 nodes to a {d['nodes']:,}-node tree sends "
           f"**{d['bytes_per_click']:,} bytes** (a delta) instead of the {d['snapshot_bytes']:,}-"
           f"byte snapshot ({fmt(d['ratio_snapshot_over_click'], 0)}x less); the kernel side "
           f"takes {fmt(d['kernel_ms_per_click'])} ms a click.", ""]
    if r.get("browser_error"):
        return out + [f"Browser figures not taken: {r['browser_error']}.", ""]
    out += [f"Static exports of synthetic trees, median of {r['runs']} page loads: the render "
            "call (layout with measured labels + SVG), all nodes in the DOM from navigation "
            "start, and one wheel zoom step per frame (30 steps).", "",
            "| nodes | file KiB | nodes in DOM | render call ms | in DOM from navigation ms | "
            "zoom ms per frame |", "|---|---|---|---|---|---|"]
    for t in r.get("large_trees", []):
        out.append(f"| {t['nodes']:,} | {t['file_kib']:,} | {t['nodes_in_dom']:,} | "
                   f"{t['render_ms']} | {t['dom_ready_ms']} | {fmt(t['zoom_frame_ms'], 1)} |")
    out += ["", "Targets: 5,000 nodes drawn in < 1 s, a 5,000-node export open in < 0.5 s (the "
            "render call), 20,000 nodes usable with pan and zoom.", ""]
    v = r.get("voila")
    if v:
        out += [f"Voila explorer on the default model: click on a leaf -> its 5 children drawn "
                f"**{v['click_to_children_ms']} ms** (median of {v['clicks']} clicks: "
                f"{', '.join(map(str, v['click_ms_runs']))}; the kernel's forward, the token "
                f"table of the selected path and the delta included); page load to the first "
                f"tree {fmt(v['page_load_to_first_tree_s'], 1)} s (kernel start and model load).",
                ""]
    return out


def render_attribution(r: dict | None) -> list[str]:
    """Attribution of one node at the end of a long path, vs inseq (bench/attribution.py)."""
    if not r or "error" in r:
        return []
    sides = r["sides"]
    out = [f"## Attribution vs inseq: {r['model']}", "",
           f"One node at the end of a {r['path_tokens']}-token path, {r['method']} with "
           f"{r['steps']} steps, each side in a fresh process; peak = growth of the resident "
           "set over the call. Both go through captum on the input embeddings.", "",
           "| side | seconds | peak MiB | time ratio | memory ratio |", "|---|---|---|---|---|"]
    names = {"inferviz": "`s.attribute` (batches of ~1024 tokens)",
             "inseq_same_batch": "inseq, same internal batch",
             "inseq_default": "inseq, its default (all steps at once)"}
    for key, label in names.items():
        side = sides.get(key)
        if side:
            out.append(f"| {label} | {fmt(side['median_seconds'], 1)} | "
                       f"{fmt(side['median_peak_mib'], 0)} | {fmt(side['time_ratio_to_inferviz'])}"
                       f" | {fmt(side['memory_ratio_to_inferviz'])} |")
    out += ["", f"inferviz's completeness error at these steps: "
            f"{fmt(100 * r['inferviz_completeness_error'], 1)} % (64+ steps on long paths; "
            "docs/why.md).", ""]
    return out


def render_interventions(r: dict | None) -> list[str]:
    """Greedy decoding under a steering hook vs plain (bench/interventions.py)."""
    if not r or "error" in r:
        return []
    sides = r["sides"]
    out = [f"## Decoding under an intervention: {r['model']}", "",
           f"Greedy, {r['new_tokens']} tokens after a {r['prompt_tokens']}-token prompt, "
           f"`{r['intervention']}`, warm caches, median of {r['runs']} alternating runs.", "",
           "| side | time | ratio to plain |", "|---|---|---|"]
    names = {"plain": "greedy: plain `generate`",
             "steered": "greedy: steered, KL and plain_logprob recorded (intervened + plain "
                        "forward)",
             "steered_hooks_only": "greedy: the intervened forwards alone (hooks, own KV "
                                   "cache)",
             "expand_plain": "expand one node (k=5): plain",
             "expand_steered": "expand one node: steered, KL recorded",
             "expand_hooks_only": "expand one node: the intervened forward alone"}
    for key, label in names.items():
        side = sides.get(key)
        if side:
            per = side.get("ms_per_token", side.get("ms_per_expand"))
            unit = "token" if "ms_per_token" in side else "expand"
            out.append(f"| {label} | {fmt(per, 1)} ms / {unit} | "
                       f"**{fmt(side['time_ratio_to_plain'])}** |")
    out += ["", "Target: <= 1.2x for the hooks. Recording the divergence (`kl`, "
            "`plain_logprob`) runs the plain forward on the same paths too, a second model call "
            "a step; fusing both into one batch would still cost a 2-row forward, 1.32x a "
            "1-row one on this CPU (docs/why.md).", ""]
    return out


def render_hand_run(name: str) -> list[str]:
    """A benchmark run by hand, not by ``make bench`` (it needs a browser and minutes of a
    live server): its section as written after its last run, ``bench/results/<name>.md``."""
    path = RESULTS / f"{name}.md"
    return path.read_text().rstrip("\n").splitlines() + [""] if path.exists() else []


def render_constraints(r: dict | None) -> list[str]:
    """Constrained greedy decoding vs plain (bench/constraints.py)."""
    if not r or "error" in r:
        return []
    sides = r["sides"]
    out = [f"## Decoding under a constraint: {r['model']}", "",
           f"Greedy, {r['new_tokens']} tokens after a {r['prompt_tokens']}-token prompt, warm "
           f"caches, median of {r['runs']} alternating runs; masks by llguidance "
           f"(docs/constraints.md).", "",
           "| side | tokens/s | speed ratio to plain | mask time per token |",
           "|---|---|---|---|"]
    names = {"plain": "greedy: plain",
             "regex": f"greedy: `iv.Regex` of a character class (`{r['regex']}`)",
             "json": "greedy: `iv.JSONSchema` (an object with one free string)",
             "bfs_plain": "bfs k=4 depth=3: plain",
             "bfs_regex": "bfs k=4 depth=3: the regex (masks a level at a time)"}
    for key, label in names.items():
        side = sides.get(key)
        if side:
            mask = side.get("mask_ms_per_token")
            speed = side.get("tokens_per_second")
            out.append(f"| {label} | {'-' if speed is None else fmt(speed, 1)} | "
                       f"**{fmt(side['speed_ratio_to_plain'])}** | "
                       f"{'' if mask is None else fmt(mask, 3) + ' ms'} |")
    out += ["", "Target: >= 0.8x plain for constrained greedy. bfs rows are times of the "
            "whole search (its node count is the same on both sides).", ""]
    return out


def render_remote(r: dict | None) -> list[str]:
    """The section on sessions over a server (bench/remote.py)."""
    if not r or "error" in r:
        return []
    out = ["## Over an inference server (`Session.connect`)", "",
           "Tree expansion (every node at depths 0..d-1 to its top k): a level's requests in "
           "flight together (`concurrency=16`) vs one at a time; greedy: `server_side=True` "
           "(one streamed request) vs client-side stepping (one request a token). Median of "
           f"{r['repeats']} alternating runs.", "",
           "| server | k | d | requests | serial s | concurrent s | ratio | greedy tokens/s "
           "stepping | server-side | speedup | same tokens |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in ("llama", "fake"):
        row = r.get(name)
        if not row:
            continue
        if "error" in row:
            out.append(f"| {name}: {row['error'][:100]} | | | | | | | | | | |")
            continue
        e, g = row["expansion"], row["greedy"]
        out.append(f"| {row['server']} | {e['k']} | {e['depth']} | {e['requests']} | "
                   f"{fmt(e['serial_s'])} | {fmt(e['concurrent_s'])} | "
                   f"**{fmt(e['ratio_concurrent_over_serial'])}** | "
                   f"{fmt(g['stepwise_tokens_per_s'], 1)} | {fmt(g['server_side_tokens_per_s'], 1)}"
                   f" | **{fmt(g['speedup_server_side'])}x** | {g['same_tokens']} |")
    out += ["", "The llama.cpp server runs on the same 2 CPU cores as the client, so its gain "
            "from concurrent requests is its batching of slots, not spare hardware; on a GPU "
            "server the batch is nearly free and the ratio falls further. The fake server's "
            "fixed latency shows what overlapping requests saves when the network and queue "
            "dominate.", ""]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                        help="cuda: run the GPU suite (CUDA_BENCHES) into bench/results/cuda")
    parser.add_argument("--big", action="store_true", help="cuda: add the Llama-3-8B shape")
    parser.add_argument("--only", default=None)
    parser.add_argument("--timeout", type=float, default=None, help="seconds per benchmark")
    parser.add_argument("--from", dest="source", default=None,
                        help="render from DIR/<name>.json instead of running")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    cuda = args.device == "cuda"
    if cuda and not args.source:
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda: torch sees no CUDA device here (torch "
                         f"{torch.__version__}); run on a machine with a GPU and a CUDA build")
    suite = {**CUDA_BENCHES, **(CUDA_BIG if args.big else {})} if cuda else \
        {name: (name, (QUICK if args.quick else BENCHES)[name]) for name in BENCHES}
    folder = RESULTS / "cuda" if cuda else RESULTS
    names = args.only.split(",") if args.only else list(suite)
    results = {}
    for name in names:
        if args.source:
            results.update(load_results(Path(args.source), [name]))
            continue
        print(f"running {name} ...", file=sys.stderr, flush=True)
        script, script_args = suite[name]
        results[name] = run(script, script_args, args.timeout)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.json").write_text(json.dumps(results[name], indent=1, default=float))
    if cuda:  # the page shows both: the CPU results from their files
        gpu = {**load_results(folder, [*CUDA_BENCHES, *CUDA_BIG]), **results}
        results = load_results(RESULTS, BENCHES)
    else:  # --only: the other sections from their saved files
        results = {**load_results(RESULTS, [n for n in BENCHES if n not in results]), **results}
        results = {name: results[name] for name in BENCHES if name in results}
        gpu = load_results(RESULTS / "cuda", [*CUDA_BENCHES, *CUDA_BIG])
    Path(args.out).write_text(render(results, ".venv/bin/python bench/run_all.py", gpu))
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
