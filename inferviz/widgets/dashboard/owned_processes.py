"""The dashboard server's processes, owned by ``inferviz demo``: Voila runs in a process group
of its own, and stopping the demo (Ctrl-C, ``kill -TERM``, a closed terminal) stops Voila and
every kernel it started, leaving nothing behind.

Voila starts each kernel in a session of the kernel's own (jupyter_client does, so that a
terminal's Ctrl-C does not reach kernels), so killing Voila's group alone would leave kernels
running. ``stop`` therefore lists Voila's descendants first, asks Voila to stop (it shuts its
kernels down on SIGTERM), and then ends whatever of that list is still running, group by group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

GRACE_S = 20  # for Voila to shut its kernels down before they are killed


def _parents() -> dict[int, int]:
    """``{pid: parent pid}`` of every process: from ``/proc`` on Linux, else ``ps``."""
    proc = Path("/proc")
    table: dict[int, int] = {}
    if proc.is_dir():
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # exited meanwhile
                continue
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses
            table[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        return table
    listing = subprocess.run(["ps", "-A", "-o", "pid=,ppid="], capture_output=True, text=True)
    for line in listing.stdout.splitlines():
        pid, _, ppid = line.strip().partition(" ")
        if pid.isdigit() and ppid.strip().isdigit():
            table[int(pid)] = int(ppid.strip())
    return table


def descendants(pid: int) -> list[int]:
    """Children, grandchildren, ... of ``pid`` now running."""
    children: dict[int, list[int]] = {}
    for child, parent in _parents().items():
        children.setdefault(parent, []).append(child)
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(children.get(child, []))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:  # a zombie has exited; it only waits for its parent to collect it
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _signal_group_or_process(pid: int, signum: int) -> None:
    """``signum`` to ``pid``'s process group when that group is not this process's own (a
    kernel leads its own), else to ``pid`` alone."""
    try:
        group = os.getpgid(pid)
        if group != os.getpgrp():
            os.killpg(group, signum)
        else:
            os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def stop(process: subprocess.Popen, grace_s: float = GRACE_S) -> None:
    """Stop ``process`` (Voila) and everything it started: SIGTERM to Voila, ``grace_s`` for
    it to shut its kernels down, then SIGTERM and (5 s later) SIGKILL to the groups of whatever
    is left. A second Ctrl-C or SIGTERM meanwhile is ignored, so stopping is never cut short."""
    with _stop_signals_ignored():
        _stop(process, grace_s)


def _stop(process: subprocess.Popen, grace_s: float) -> None:
    family = descendants(process.pid) if process.poll() is None else []
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
    for signum, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        left = [pid for pid in [process.pid, *family] if alive(pid)]
        if not left:
            break
        for pid in left:
            _signal_group_or_process(pid, signum)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and any(alive(pid) for pid in left):
            process.poll()  # collect Voila itself once it exits
            time.sleep(0.1)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=1)


@contextlib.contextmanager
def _stop_signals_ignored() -> Iterator[None]:
    names = [name for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)]
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers
        return
    previous = {name: signal.signal(getattr(signal, name), signal.SIG_IGN) for name in names}
    try:
        yield
    finally:
        for name, handler in previous.items():
            signal.signal(getattr(signal, name), handler)


def stop_with_parent() -> None:
    """For ``Popen(preexec_fn=...)``: on Linux the child gets SIGTERM when the process that
    started it dies, even by SIGKILL (``prctl(PR_SET_PDEATHSIG)``), so a killed
    ``inferviz demo`` still stops Voila, which stops its kernels. Elsewhere it does nothing."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


def _interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """While inside: SIGTERM and SIGHUP (``kill``, a closed terminal) raise
    ``KeyboardInterrupt`` like Ctrl-C, so one ``finally`` stops the server on all three."""
    names = [name for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers
        return
    previous = {name: signal.signal(getattr(signal, name), _interrupt) for name in names}
    try:
        yield
    finally:
        for name, handler in previous.items():
            signal.signal(getattr(signal, name), handler)
