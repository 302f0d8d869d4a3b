"""Memory one step of next-token distributions will take, estimated before it is asked for.

A step over ``rows`` sequences holds several ``[rows, vocab]`` blocks at once: on the host the
float32 logits, their finiteness mask, the processed logits and probabilities, the raw
log-probabilities and the entropy's temporaries (a beam step adds its candidate scores); on the
model's device the logits in the model's dtype, their gathered copy and the float32 copy; and
each row's new token adds keys and values to the KV cache. Each node added to the tree costs
about ``NODE_BYTES`` of Python objects. ``expand(k=...)``, ``num_beams``, ``bfs`` and
``threshold`` check their largest step here, so an argument that would ask the allocator for
gigabytes is refused at once with a ``StepMemoryError`` (a ``ValueError``) naming the argument,
the estimate and the budget, instead of dying in the allocator (or swapping) half-way.

The budget (a documented knob): ``session.step_memory_budget`` bytes when set; otherwise
``STEP_MEMORY_FRACTION`` of the memory available now, on the host (psutil, else
``/proc/meminfo`` MemAvailable, else ``os.sysconf``) and, for a CUDA model, on its GPU
(``torch.cuda.mem_get_info`` plus what torch's allocator holds unused). Steps estimated below
``SMALL_STEP_BYTES`` are never refused and cost no system query.
"""

from __future__ import annotations

import os
from typing import Any

HOST_BYTES_PER_ENTRY = 32    # 8 float32 [rows, vocab] blocks alive at the peak (measured ~6)
DEVICE_COPIES = 3            # logits in the model dtype, the gathered rows, their float32 copy
NODE_BYTES = 1024            # a Node with its dicts and a small meta, measured ~0.7 KB
STEP_MEMORY_FRACTION = 0.5   # of the memory available when the step is checked
SMALL_STEP_BYTES = 64 << 20  # below this, no check


class StepMemoryError(ValueError):
    """A step would need more memory than ``session.step_memory_budget`` (or the default
    share of the free memory) allows; nothing was allocated and the tree is unchanged."""


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def available_host_bytes() -> int | None:
    """Memory the system can give this process now (bytes), or None if unknown."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # not installed, or no /proc
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _available_device_bytes(device: Any) -> int | None:
    if getattr(device, "type", "cpu") != "cuda":
        return None  # CPU: the host figure covers it; MPS: unified memory, likewise
    import torch

    free, _total = torch.cuda.mem_get_info(device)
    return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))


def estimate_step_bytes(session: Any, rows: int, new_nodes: int = 0) -> tuple[int, int]:
    """(host bytes, device bytes) a step over ``rows`` sequences adding ``new_nodes`` nodes
    needs at its peak; device bytes are 0 for a model on the CPU or a server."""
    vocab = int(session.vocab_size)
    host = rows * vocab * HOST_BYTES_PER_ENTRY + new_nodes * NODE_BYTES
    engine = getattr(session, "engine", None)
    store = getattr(engine, "store", None)
    device_bytes = 0
    if store is not None and getattr(store, "keys", None) is not None:
        keys = store.keys  # [layers, slots, heads, head_dim]
        kv_per_token = 2 * keys.element_size() * keys.shape[0] * keys.shape[2] * keys.shape[3]
        logits = rows * vocab * engine.dtype.itemsize * DEVICE_COPIES
        if engine.device.type == "cpu":
            host += logits + rows * kv_per_token
        else:
            device_bytes = logits + rows * kv_per_token
    return host, device_bytes


def step_budget(session: Any) -> tuple[int | None, int | None, str]:
    """(host budget, device budget, how it was set) in bytes; None where unknown."""
    budget = getattr(session, "step_memory_budget", None)
    if budget is not None:
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
            raise TypeError(f"session.step_memory_budget must be None or an int of bytes "
                            f">= 1; got {budget!r}")
        return budget, budget, "session.step_memory_budget"
    host = available_host_bytes()
    engine = getattr(session, "engine", None)
    device = _available_device_bytes(getattr(engine, "device", None)) if engine else None
    scale = STEP_MEMORY_FRACTION
    return (None if host is None else int(host * scale),
            None if device is None else int(device * scale),
            f"{scale:.0%} of the memory available now")


def check_step_memory(session: Any, rows: int, new_nodes: int = 0, what: str = "this step",
                      advice: str = "do less in one step") -> None:
    """StepMemoryError if a step over ``rows`` sequences adding ``new_nodes`` nodes is
    estimated above the budget; ``what`` names the arguments, ``advice`` what to change."""
    host, device = estimate_step_bytes(session, rows, new_nodes)
    if max(host, device) < SMALL_STEP_BYTES and \
            getattr(session, "step_memory_budget", None) is None:
        return
    host_budget, device_budget, how = step_budget(session)
    for need, limit, where in ((host, host_budget, "memory"), (device, device_budget,
                                                                "GPU memory")):
        if limit is not None and need > limit:
            raise StepMemoryError(
                f"{what} needs about {_gib(need)} of {where} ({rows} row(s) of logits over "
                f"the {session.vocab_size}-token vocabulary in one forward, {new_nodes} new "
                f"node(s)), more than the step memory budget of {_gib(limit)} ({how}); "
                f"{advice}, or raise session.step_memory_budget (bytes) if the memory is there")
