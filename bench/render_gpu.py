"""The GPU section of docs/benchmarks.md, from ``bench/results/cuda/*.json`` (run_all --device
cuda). Every figure is a ratio measured side by side in one process, same model and dtype."""

from __future__ import annotations


def _f(x, digits: int = 2) -> str:
    if x is None:
        return "-"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def render_gpu(results: dict[str, dict]) -> list[str]:
    if not results:
        return ["## GPU (CUDA)", "",
                "No GPU results are recorded yet: the machines these figures come from have no "
                "GPU. On a CUDA machine, `make bench BENCH_ARGS='--device cuda'` (= "
                "`python bench/run_all.py --device cuda`) runs the GPU suite (decode at batch 1 "
                "with `compile=\"reduce-overhead\"` vs HF eager `generate`, tree expansion "
                "P=2048 k=8 d=4, SMC with 256 particles, 8-beam search) on config-built "
                "SmolLM2-135M and Qwen2.5-1.5B shapes, writes `bench/results/cuda/*.json` and "
                "fills this section; see [gpu.md](gpu.md).", ""]
    first = next((r for r in results.values() if "machine" in r or "machine_info" in r), {})
    m = first.get("machine") or first.get("machine_info") or {}
    out = ["## GPU (CUDA)", "",
           f"Device: **{m.get('device', '?')}** ({m.get('gpu_memory_gib', '?')} GiB, "
           f"{m.get('multiprocessors', '?')} SMs), CUDA {m.get('cuda', '?')}, torch "
           f"{m.get('torch', '?')}, transformers {m.get('transformers', '?')}, Python "
           f"{m.get('python', '?')}. Reproduce with `python bench/run_all.py --device cuda` "
           "(`make bench BENCH_ARGS='--device cuda'`). Models are built from the real models' "
           "configs with random weights (`bench/shapes.py`: speed depends on the shapes), in "
           "bfloat16, with the real tokenizers. Each ratio compares inferviz with transformers "
           "(or a naive loop) in the same process, on the same model and dtype.", ""]
    decode = [r for name, r in results.items() if name.startswith("decode") and "error" not in r]
    if decode:
        out += ["### Greedy decoding at batch 1", "",
                "tokens/s (median of runs, all sides alternating); x = ratio vs HF eager "
                "`generate`; BW = fraction of the memory-bandwidth limit (weight bytes x "
                "tokens/s / 3.35 TB/s).", "",
                "| model | new tokens | HF eager | inferviz eager | inferviz compiled "
                "(reduce-overhead) | HF static cache + compile | BW of compiled | same tokens "
                "as HF (eager / compiled) |", "|---|---|---|---|---|---|---|---|"]
        for r in decode:
            tps, bw, same = r["tokens_per_s"], r.get("bandwidth_fraction", {}), \
                r["same_tokens_as_hf"]
            hf = tps["hf_generate"]

            def cell(name, tps=tps, hf=hf):
                if name not in tps:
                    return "-"
                return f"{tps[name]:.0f} ({tps[name] / hf:.2f}x)"

            out.append(
                f"| {r['model']} | {r['new_tokens']} | {hf:.0f} | {cell('inferviz_generate')} "
                f"| {cell('inferviz_generate_compiled')} | {cell('hf_generate_compiled')} | "
                f"{_f(bw.get('inferviz_generate_compiled'), 3)} | "
                f"{same.get('inferviz_generate')} / {same.get('inferviz_generate_compiled')} |")
        out += ["", "Goal: inferviz compiled >= 3x HF eager `generate`.", ""]
    trees = [r for name, r in results.items() if name.startswith("tree") and "error" not in r]
    if trees:
        out += ["### Tree expansion vs a naive per-node forward", "",
                "Every node at depths 0..d-1 expanded to its top k (one batched, packed forward "
                "per level, prefixes cached) vs an HF forward over each node's full path, no "
                "cache (a sample per depth timed and extrapolated).", "",
                "| model | P | k | d | nodes | inferviz s | naive s | speedup | top-k equal on "
                "sample | peak MiB (iv / naive) |", "|---|---|---|---|---|---|---|---|---|---|"]
        for t in trees:
            mem = t["peak_memory"]
            for c in t["configs"]:
                out.append(
                    f"| {t['model']} | {c['prompt_tokens']} | {c['k']} | {c['depth']} | "
                    f"{c['nodes_expanded']} | {_f(c['inferviz_s'], 3)} | "
                    f"{_f(c['naive_s_extrapolated'])} | **{_f(c['speedup'], 1)}x** | "
                    f"{c['topk_equal_on_sample']} | {_f(mem['inferviz_mib'], 0)} / "
                    f"{_f(mem['naive_mib'], 0)} |")
        out.append("")
    smcs = [r for name, r in results.items() if name.startswith("smc") and "error" not in r]
    if smcs:
        out += ["### SMC: batched particles vs a per-particle loop", "",
                "| model | particles | tokens | batched particle-tokens/s | loop | speedup |",
                "|---|---|---|---|---|---|"]
        for m_ in smcs:
            out.append(f"| {m_['model']} | {m_['particles']} | {m_['max_new_tokens']} | "
                       f"{m_['batched_particle_tokens_per_s']} | "
                       f"{m_['loop_particle_tokens_per_s']} | **{m_['speedup']}x** |")
        out.append("")
    beams = [r for name, r in results.items() if name.startswith("beam") and "error" not in r]
    if beams:
        out += ["### Beam search vs transformers' beam search", "",
                "ratio = inferviz time / HF `generate(num_beams)` time (< 1: inferviz faster); "
                "identical = same best sequence (in bfloat16, hypotheses whose scores tie within "
                "rounding may swap).", "",
                "| model | beams | new tokens | median time ratio | identical (prompts) |",
                "|---|---|---|---|---|"]
        for b in beams:
            same = sum(p["identical_sequence"] for p in b["prompts"])
            out.append(f"| {b['model']} | {b['num_beams']} | {b['max_new_tokens']} | "
                       f"**{_f(b['median_time_ratio'])}** | {same} / {len(b['prompts'])} |")
        out.append("")
    for name, r in results.items():
        if "error" in r:
            out += [f"### {name}: failed", "", "```", r["error"][-1500:], "```", ""]
    return out
