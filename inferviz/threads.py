"""Torch's intra-op threads for the model's forward only, during a decoding loop on the CPU.

Between two forwards a decoding step does a dozen small operations over one vocabulary-sized
row (finiteness checks, log-softmax, entropy, ranks, the processors, argmax). At 49k-150k
entries each is above torch's parallel grain, so each opens an OpenMP parallel region whose
end waits for every worker thread. On an idle machine that costs microseconds; on a busy one
(more runnable threads than cores) a worker that was descheduled holds the region until the
scheduler runs it again, milliseconds per region, and those regions made greedy decoding
2-3x slower than HF ``generate`` under load. Inside :func:`forward_threads_only` such work
runs on the calling thread alone (one thread is as fast for a row this size), while every
forward of the model still runs with the threads the user configured: a forward pre-hook
raises the count, a forward hook lowers it again. The count is restored on exit, exception
or not (``torch.set_num_threads`` is per calling thread under OpenMP, and cheap: ~0.2 us).
"""

from __future__ import annotations

import contextlib
import sys
import threading
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    import torch

_active = threading.local()  # .threads: the count forwards run with, on this thread


def _model_of(session: Any) -> torch.nn.Module | None:
    """The session's local CPU model when its forwards go through an uncompiled engine."""
    import torch

    engine = getattr(getattr(session, "backend", None), "engine", None)
    model = getattr(engine, "model", None)
    if not isinstance(model, torch.nn.Module) or getattr(engine, "compiled", False) \
            or getattr(engine, "device", torch.device("cpu")).type != "cpu":
        return None
    return model


@contextlib.contextmanager
def forward_threads_only(session: Any) -> Iterator[None]:
    """Run the block with one torch thread except inside the model's forwards (which get the
    count in force on entry). A no-op off the CPU, for a server, a compiled engine, a single
    thread, or when already inside such a block on this thread."""
    if "torch" not in sys.modules:  # no local model in this process: a server's session
        yield
        return
    import torch

    model = _model_of(session)
    threads = torch.get_num_threads()
    if model is None or threads == 1 or getattr(_active, "threads", None):
        yield
        return

    def before(module, args):
        if getattr(_active, "threads", None):
            torch.set_num_threads(_active.threads)

    def after(module, args, output):
        if getattr(_active, "threads", None):
            torch.set_num_threads(1)

    handles = [model.register_forward_pre_hook(before), model.register_forward_hook(after)]
    _active.threads = threads
    torch.set_num_threads(1)
    try:
        yield
    finally:
        _active.threads = None
        torch.set_num_threads(threads)
        for handle in handles:
            handle.remove()
