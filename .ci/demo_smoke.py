"""CI smoke check of the README's first command: `make demo` serves a working, quiet dashboard.

Starts `make demo` (its own process group) in the background, waits for the port (bounded),
opens the page in Debian chromium through playwright, and checks that
  - the page says the model is loading within its first second, before the widgets render,
  - the tree widget draws its SVG nodes (the prompt and its expanded children),
  - no stderr / warning / traceback output box is on the page and no error banner shows,
  - the page raised no JavaScript errors;
then saves a screenshot and sends SIGTERM to `inferviz demo` alone (as `kill -TERM PID` would):
Voila and every kernel must be gone and the port closed within the grace period.
Exit status 0 when every check passed, 1 otherwise (the server log tail is printed).

    .venv/bin/python .ci/demo_smoke.py [--port 8866] [--screenshot PATH] [--command CMD]
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
NODES = ".inferviz-tree g.inferviz-node[data-node-id]"
# Output boxes that mean noise: stderr streams (warnings, progress bars) and error outputs.
# Records when the page's loading message first shows (window.__infervizLoading), from the
# first bytes of the page on: the message may be gone by the time a test looks for it.
LOADING_WATCH = """
(() => {
  const look = () => {
    const el = document.getElementById('inferviz-loading-title');
    if (el && !window.__infervizLoading) {
      window.__infervizLoading = {ms: performance.now(), text: el.textContent};
    }
  };
  new MutationObserver(look).observe(document, {childList: true, subtree: true});
  document.addEventListener('DOMContentLoaded', look);
})();
"""
LOADING_WITHIN_MS = 1000
NOISE = ", ".join([
    '[data-mime-type="application/vnd.jupyter.stderr"]',
    ".jp-OutputArea-output.jp-mod-error",
    ".jp-RenderedText.jp-mod-error",
])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8866, help="the port `make demo` serves on")
    parser.add_argument("--command", default=None,
                        help="serve command (default: make demo DEMO_PORT=<port>)")
    parser.add_argument("--screenshot", type=Path,
                        default=Path(tempfile.gettempdir()) / "inferviz-demo-smoke.png")
    parser.add_argument("--port-timeout", type=float, default=600.0,
                        help="seconds to wait for the server's port (make demo sets up first)")
    parser.add_argument("--page-timeout", type=float, default=600.0,
                        help="seconds to wait for the tree (kernel start + first model load)")
    return parser.parse_args(argv)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_for_port(port: int, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited early with status {process.returncode}")
        if port_open(port):
            return
        time.sleep(0.5)
    raise TimeoutError(f"nothing listens on port {port} after {timeout:.0f} s")


def descendants(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (read from /proc; kernels may sit in their own group)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie has exited; its parent just has not reaped it yet


def demo_process(family: set[int]) -> int | None:
    """The `inferviz demo` process among ``family`` (make runs it as python -m inferviz.cli)."""
    for pid in sorted(family):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"inferviz.cli" in argv and b"demo" in argv:
            return pid
    return None


def stop(process: subprocess.Popen, port: int, grace_s: float = 30.0) -> list[str]:
    """SIGTERM to `inferviz demo` alone, as `kill -TERM PID` would; wait until it and every
    descendant (Voila and its kernels, in process groups of their own) have exited and the
    port is closed. Anything left after ``grace_s`` is a problem (and SIGKILLed); the list of
    problems (empty: it stopped cleanly)."""
    family = descendants(process.pid) | {process.pid}
    problems: list[str] = []
    demo = demo_process(family)
    try:
        if demo is None:
            problems.append("no `inferviz demo` process under make: SIGTERM to its group")
            os.killpg(process.pid, signal.SIGTERM)
        else:
            os.kill(demo, signal.SIGTERM)
    except ProcessLookupError:
        pass
    started = time.monotonic()
    if not wait_gone(process, family, port, grace_s):
        left = sorted(pid for pid in family if alive(pid))
        problems.append(f"{left} still running {grace_s:.0f} s after SIGTERM of inferviz demo")
        print(f"demo smoke: {left} still running {grace_s:.0f} s after SIGTERM: SIGKILL",
              flush=True)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if not wait_gone(process, family, port, 15.0):
            left = sorted(pid for pid in family if alive(pid))
            problems.append(f"server processes {left} or port {port} still there after SIGKILL")
    print(f"demo smoke: server stopped in {time.monotonic() - started:.1f} s", flush=True)
    return problems


def wait_gone(process: subprocess.Popen, family: set[int], port: int, timeout: float) -> bool:
    """Wait until every process of ``family`` has exited and nothing listens on ``port``
    (a killed process's socket closes a moment after it dies)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        process.poll()  # reap make
        if not any(alive(pid) for pid in family) and not port_open(port):
            return True
        time.sleep(0.2)
    return False


def check_page(url: str, screenshot: Path, page_timeout_s: float) -> list[str]:
    """Load the dashboard in chromium; the list of problems found (empty: all good)."""
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    timeout_ms = page_timeout_s * 1000
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.add_init_script(LOADING_WATCH)
            js_errors: list[str] = []
            page.on("pageerror", lambda exc: js_errors.append(str(exc)))
            page.goto(url, timeout=timeout_ms, wait_until="commit")
            try:
                page.wait_for_function(
                    f"document.querySelectorAll({NODES!r}).length > 1", timeout=timeout_ms)
            except Exception as exc:  # noqa: BLE001 -- reported with the page's state below
                problems.append(f"no tree drawn: {type(exc).__name__}")
            page.wait_for_timeout(1000)  # let late outputs (warnings) arrive
            loading = page.evaluate("window.__infervizLoading || null")
            print(f"demo smoke: loading message {loading}")
            if not loading or "Loading the model" not in loading["text"]:
                problems.append("the page showed no loading message before the widgets")
            elif loading["ms"] > LOADING_WITHIN_MS:
                problems.append(f"the loading message showed {loading['ms']:.0f} ms after "
                                f"navigation (want <= {LOADING_WITHIN_MS} ms)")
            nodes = page.locator(NODES).count()
            svgs = page.locator(".inferviz-tree svg").count()
            print(f"demo smoke: {nodes} tree nodes in {svgs} svg")
            if nodes < 2 or svgs < 1:
                problems.append(f"tree widget shows {nodes} node(s) in {svgs} svg (want >= 2)")
            for box in page.locator(NOISE).all():
                problems.append(f"output box on the page: {box.inner_text()[:300]!r}")
            for banner in page.locator(".inferviz-error").all():
                if banner.is_visible() and banner.inner_text().strip():
                    problems.append(f"error banner: {banner.inner_text()[:300]!r}")
            problems.extend(f"JavaScript error: {e}" for e in js_errors)
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
            print(f"demo smoke: screenshot {screenshot}")
        finally:
            browser.close()
    return problems


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"demo smoke: {CHROMIUM} is missing (apt-get install chromium)", file=sys.stderr)
        return 1
    if port_open(args.port):
        print(f"demo smoke: port {args.port} is already in use", file=sys.stderr)
        return 1
    command = args.command or f"make demo DEMO_PORT={args.port}"
    log_path = Path(tempfile.mkstemp(prefix="inferviz-demo-smoke-", suffix=".log")[1])
    print(f"demo smoke: starting `{command}` (log {log_path})", flush=True)
    with log_path.open("w") as log:
        process = subprocess.Popen(shlex.split(command), cwd=REPO, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    started = time.monotonic()
    try:
        wait_for_port(args.port, process, args.port_timeout)
        print(f"demo smoke: port {args.port} open after {time.monotonic() - started:.0f} s",
              flush=True)
        problems = check_page(f"http://127.0.0.1:{args.port}/", args.screenshot,
                              args.page_timeout)
    except (RuntimeError, TimeoutError) as exc:
        problems = [str(exc)]
    finally:
        problems_on_stop = stop(process, args.port)
    problems.extend(problems_on_stop)
    if problems:
        print("demo smoke: FAILED\n  " + "\n  ".join(problems), file=sys.stderr)
        print("--- server log (tail) ---\n" + log_path.read_text()[-3000:], file=sys.stderr)
        return 1
    print(f"demo smoke: passed in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
