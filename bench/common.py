"""Shared helpers for the benchmarks: timing, memory, sessions, JSON output.

Every benchmark prints one JSON object on stdout. Ratios are always measured side by side in the
same process, alternating the two sides, and reported as medians of several runs.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def maxrss_mib() -> float:
    """Peak resident set size of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) of this process (Linux >= 4.0: write 5 to
    /proc/self/clear_refs), so ``peak_rss_mib`` afterwards is the peak of what follows."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float:
    """VmHWM of this process, MiB (ru_maxrss where /proc is missing)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return maxrss_mib()


def current_rss_mib() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def peak_growth_mib(fn) -> tuple[float, object]:
    """Run ``fn``; return (peak RSS during it minus RSS before it, MiB; fn's result)."""
    reset_peak_rss()
    before = current_rss_mib()
    out = fn()
    return peak_rss_mib() - before, out


def machine(device: str = "cpu") -> dict[str, Any]:
    import torch
    import transformers

    info = {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "device": "cpu",
            "load_average_1min": round(os.getloadavg()[0], 2)}
    if device.startswith("cuda") and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(device)
        info.update(device=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                    gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    multiprocessors=props.multi_processor_count)
    return info


def add_device_args(parser) -> None:
    """``--device`` (cpu, cuda), ``--model`` (the real default, or a config-built shape from
    ``bench/shapes.py`` with random weights) and ``--dtype`` (for the shapes)."""
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--model", default="default",
                        help="'default' (the embedded SmolLM2-135M-Instruct) or a shape: "
                             "smollm2-135m, qwen2.5-0.5b, qwen2.5-1.5b, llama3-8b")
    parser.add_argument("--dtype", default="bfloat16", help="dtype of a shape's random weights")


def load_session(name: str = "default", device: str = "cpu", dtype: str = "bfloat16",
                 **kwargs: Any):
    """The real model ``name`` (on the CPU by default), or a config-built shape."""
    from shapes import SHAPES, random_session

    if name in SHAPES:
        return random_session(name, device, dtype, **kwargs)
    import inferviz

    return inferviz.Session.from_pretrained(name, device=device, **kwargs)


def model_label(session, name: str) -> str:
    return "default (SmolLM2-135M-Instruct)" if name == "default" else session.name


def synchronize(device) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def emit(result: dict[str, Any], device: str = "cpu") -> None:
    result.setdefault("machine", machine(device))
    print(json.dumps(result, indent=2, default=float))


def prompt_of_tokens(session, n_tokens: int) -> str:
    """A natural-ish English prompt that encodes to exactly ``n_tokens`` tokens (with BOS)."""
    base = ("The history of the river valley is long and varied. Farmers settled along its banks, "
            "traders followed the water south, and towns grew where the roads met the fords. ")
    text = base
    while len(session.encode(text)) < n_tokens:
        text += base
    ids = session.encode(text)[:n_tokens]
    bos = 1 if session.tokenizer.bos_token_id is not None and \
        ids[0] == session.tokenizer.bos_token_id else 0
    prompt = session.tokenizer.decode(ids[bos:])
    # Decoding and re-encoding can shift a boundary by a token; trim until it fits.
    while len(session.encode(prompt)) > n_tokens:
        prompt = prompt[:-1]
    return prompt


class cpu_load:
    """``with cpu_load(n):`` keeps ``n`` busy-loop processes (pure Python, no sleep) running:
    the "under load" column, where the benchmark makes its own contention so that the figure
    does not depend on what else the machine runs."""

    def __init__(self, processes: int = 2) -> None:
        self.processes = processes
        self._procs: list = []

    def __enter__(self) -> "cpu_load":
        import subprocess

        # Each spins until it is killed or its parent is gone (a benchmark killed mid-run
        # leaves no spinner behind).
        spin = "import os\nparent = os.getppid()\nwhile os.getppid() == parent: pass"
        self._procs = [subprocess.Popen([sys.executable, "-c", spin])
                       for _ in range(self.processes)]
        time.sleep(0.3)  # let them start spinning
        return self

    def __exit__(self, *exc) -> None:
        for proc in self._procs:
            proc.kill()
            proc.wait()
        self._procs = []


def profile_top(fn: Callable[[], Any], entries: int = 12) -> list[dict[str, Any]]:
    """The ``entries`` functions with the most own time (cProfile ``tottime``) while ``fn``
    runs, each with its calls, own and cumulative seconds, and share of the total."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    fn()
    profiler.disable()
    wall = time.perf_counter() - start
    stats = pstats.Stats(profiler).stats  # (file, line, name) -> (cc, calls, tottime, cumtime, _)
    rows = sorted(stats.items(), key=lambda item: -item[1][2])[:entries]
    root = str(ROOT) + "/"
    return [{"function": f"{file.replace(root, '').split('site-packages/')[-1]}:{line}({name})"
             if file != "~" else name, "calls": calls, "own_s": round(own, 4),
             "cumulative_s": round(cum, 4), "share_of_wall": round(own / wall, 4)}
            for (file, line, name), (_cc, calls, own, cum, _callers) in rows]
