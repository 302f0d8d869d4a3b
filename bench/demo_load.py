"""Load test of ``inferviz demo``: N browser users at once, each clicking leaves for a while.

    .venv/bin/python bench/demo_load.py [--users 8] [--seconds 60] [--port 0]

Starts the real ``inferviz demo`` (``--max-kernels`` = users), opens one page in headless
chromium and measures the server's memory, then opens the other pages at once; every user then
clicks the last leaf of its tree again and again (each click expands it: a model step in that
user's kernel) for ``--seconds``. Reported: click -> children drawn latency (p50 / p95 / max, ms,
over every click of every user), errors (page errors, console errors, error banners, clicks
that drew nothing in 180 s), memory (PSS, so libraries shared between processes count once)
of the whole process family with no page, one page and all pages -> per extra user, and
whether anything is left running after SIGTERM. Prints one JSON object (bench/common.py style).

Needs chromium at /usr/bin/chromium and the Python playwright package (no browser download).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from e2e_helpers import CHROMIUM, CHROMIUM_ARGS, CLICK_AND_TIME_JS, LEAVES  # noqa: E402
from servers import server_env  # noqa: E402

URL_LINE = re.compile(r"inferviz dashboard: (http://127\.0\.0\.1:(\d+)/)")
LOAD_TIMEOUT_MS = 900_000  # every kernel loads its own model on 2 busy cores
CLICK_TIMEOUT_MS = 180_000
TREE_READY = "document.querySelectorAll('.inferviz-tree g.inferviz-node').length > 1"


def family_pss_mib(pid: int) -> float:
    """PSS of ``pid`` and every descendant, MiB (shared pages split between their users)."""
    total = 0
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    for proc in procs:
        try:
            total += proc.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total / 2**20


def start_demo(users: int, port: int, workdir: Path) -> tuple[subprocess.Popen, str, Path]:
    log = workdir / "demo.log"
    command = [sys.executable, "-m", "inferviz.cli", "demo", "--port", str(port),
               "--max-kernels", str(users), "--export-dir", str(workdir / "exports")]
    with open(log, "w") as out:
        process = subprocess.Popen(command, env=server_env(), stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        found = URL_LINE.search(log.read_text())
        if found:
            return process, found.group(1), log
        if process.poll() is not None:
            break
        time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"inferviz demo printed no URL:\n{log.read_text()[-3000:]}")


class User:
    """One browser context on the dashboard: its clicks' latencies and the errors it saw."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.latencies_ms: list[float] = []
        self.errors: list[str] = []
        self.load_s = float("nan")

    async def open(self, browser, url: str):
        context = await browser.new_context(viewport={"width": 1400, "height": 1000})
        page = await context.new_page()
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on("console", lambda m: self.errors.append(f"console: {m.text}")
                if m.type == "error" else None)
        start = time.perf_counter()
        await page.goto(url, timeout=LOAD_TIMEOUT_MS)
        await page.wait_for_function(TREE_READY, timeout=LOAD_TIMEOUT_MS)
        self.load_s = time.perf_counter() - start
        return page

    async def click_for(self, page, seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            leaf = int(await page.locator(LEAVES).last.get_attribute("data-node-id"))
            try:
                ms = await page.evaluate(CLICK_AND_TIME_JS, [leaf, CLICK_TIMEOUT_MS])
            except Exception as exc:  # noqa: BLE001 -- a click that drew nothing is an error
                self.errors.append(f"click on node {leaf}: {exc}")
                continue
            self.latencies_ms.append(float(ms))
            banner = await page.locator(".inferviz-tree .inferviz-error").first.inner_text()
            if banner.strip():
                self.errors.append(f"banner: {banner.strip()}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def load_test(url: str, demo_pid: int, users: int, seconds: float) -> dict:
    from playwright.async_api import async_playwright

    memory = {"no_page_mib": family_pss_mib(demo_pid)}
    people = [User(i) for i in range(users)]
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                           args=CHROMIUM_ARGS)
        first = await people[0].open(browser, url)
        await asyncio.sleep(2)
        memory["one_page_mib"] = family_pss_mib(demo_pid)
        start = time.perf_counter()
        rest = await asyncio.gather(*(u.open(browser, url) for u in people[1:]))
        all_open_s = time.perf_counter() - start
        await asyncio.sleep(2)
        memory["all_pages_mib"] = family_pss_mib(demo_pid)
        pages = [first, *rest]
        await asyncio.gather(*(u.click_for(p, seconds) for u, p in zip(people, pages)))
        memory["after_clicks_mib"] = family_pss_mib(demo_pid)
        kernels = len([p for p in psutil.Process(demo_pid).children(recursive=True)
                       if "ipykernel" in " ".join(p.cmdline())])
        await browser.close()
    latencies = [ms for u in people for ms in u.latencies_ms]
    errors = [f"user {u.index}: {e}" for u in people for e in u.errors]
    return {
        "users": users, "seconds": seconds, "kernels_seen": kernels,
        "page_load_s": {"first": round(people[0].load_s, 1),
                        "others_all_at_once": round(all_open_s, 1),
                        "slowest": round(max(u.load_s for u in people), 1)},
        "clicks": len(latencies),
        "clicks_per_user": [len(u.latencies_ms) for u in people],
        "click_to_children_ms": {
            "p50": round(statistics.median(latencies), 0) if latencies else None,
            "p95": round(percentile(latencies, 0.95), 0) if latencies else None,
            "max": round(max(latencies), 0) if latencies else None},
        "errors": len(errors), "error_samples": errors[:10],
        "memory_pss_mib": {k: round(v) for k, v in memory.items()},
        "memory_per_extra_user_mib": round(
            (memory["all_pages_mib"] - memory["one_page_mib"]) / max(1, users - 1)),
    }


def stop_and_check(process: subprocess.Popen) -> dict:
    """SIGTERM ``inferviz demo`` (as ``kill PID`` would) and list what is still running."""
    family = psutil.Process(process.pid).children(recursive=True)
    start = time.perf_counter()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=120)
    _gone, alive = psutil.wait_procs(family, timeout=60)
    left = [f"{p.pid} {' '.join(p.cmdline())[:80]}" for p in alive if p.is_running()]
    for proc in alive:  # leave nothing behind even when the check fails
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return {"stop_s": round(time.perf_counter() - start, 1),
            "processes_stopped": len(family), "left_running": left}


def port_closed(url: str) -> bool:
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    if args.users < 2:
        parser.error(f"--users must be at least 2 (one page, then the rest), got {args.users}")
    with tempfile.TemporaryDirectory(prefix="inferviz-load-") as tmp:
        process, url, log = start_demo(args.users, args.port, Path(tmp))
        try:
            result = asyncio.run(load_test(url, process.pid, args.users, args.seconds))
        finally:
            stopped = stop_and_check(process)
        stopped["port_closed"] = port_closed(url)
        result["stop"] = stopped
        result["cpus"] = os.cpu_count()
        print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
