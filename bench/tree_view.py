"""The tree view in a real browser (Debian chromium through playwright), in one run:

- bytes per click: a 5,000-node tree in a TreeWidget; what one click that adds 5 nodes sends to
  the browser (a delta) vs the whole snapshot;
- first draw of static exports of synthetic 5,000- and 20,000-node trees: the render call, all
  nodes in the DOM from navigation start, and one zoom step per frame (30 wheel steps);
- click -> children drawn in the Voila explorer on the default model (kernel forward included).

Median of ``--runs`` page loads. Prints JSON. Run: ``.venv/bin/python bench/tree_view.py``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "e2e")]

def large_trees(browser, sizes: list[int], runs: int, folder: Path) -> list[dict]:
    from e2e_helpers import NODES
    from test_static_export import open_offline, synthetic_tree
    from test_tree_view import MEASURE_PAN_ZOOM_JS

    from inferviz.widgets.export.tree_page import write_tree_html

    out = []
    for n in sizes:
        path = write_tree_html(folder / f"tree{n}.html", synthetic_tree(n), selected=5)
        render, dom, frame, drawn = [], [], [], 0
        for _ in range(runs):
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            open_offline(page, path)
            page.wait_for_function(f"document.querySelectorAll({NODES!r}).length > 0",
                                   timeout=300_000)
            marks = page.evaluate("() => ({render: window.inferviz.renderEnd - "
                                  "window.inferviz.renderStart, dom: performance.now()})")
            render.append(marks["render"])
            dom.append(marks["dom"])
            drawn = page.locator(NODES).count()
            frame.append(page.evaluate(MEASURE_PAN_ZOOM_JS, 30))
            page.close()
        out.append({"nodes": n, "file_kib": round(path.stat().st_size / 1024),
                    "nodes_in_dom": drawn, "render_ms": round(statistics.median(render)),
                    "dom_ready_ms": round(statistics.median(dom)),
                    "zoom_frame_ms": round(statistics.median(frame), 1),
                    "render_ms_runs": [round(x) for x in render]})
    return out


def voila_clicks(browser, clicks: int, folder: Path) -> dict:
    import shutil
    import subprocess

    from e2e_helpers import NODES, click_leaf_and_time, node_count
    from servers import free_port, server_env, stop_process_group, wait_for_port

    from inferviz.widgets.dashboard.launcher import voila_command

    notebook = Path(shutil.copy(ROOT / "notebooks" / "dashboard.ipynb", folder / "dash.ipynb"))
    port = free_port()
    log = folder / "voila.log"
    with open(log, "w") as stream:
        process = subprocess.Popen(voila_command(notebook, "127.0.0.1", port), cwd=folder,
                                   stdout=stream, stderr=subprocess.STDOUT, env=server_env(),
                                   start_new_session=True)
    try:
        wait_for_port(port, process, log)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        start = time.perf_counter()
        page.goto(f"http://127.0.0.1:{port}/", timeout=600_000)
        page.wait_for_function(f"document.querySelectorAll({NODES!r}).length > 1",
                               timeout=600_000)
        first_tree_s = time.perf_counter() - start
        times = []
        for _ in range(clicks):
            before = node_count(page)
            times.append(click_leaf_and_time(page))
            page.wait_for_function(f"document.querySelectorAll({NODES!r}).length >= "
                                   f"{before + 5}")
        page.close()
        return {"clicks": clicks, "click_to_children_ms": round(statistics.median(times)),
                "click_ms_runs": [round(t) for t in times],
                "page_load_to_first_tree_s": round(first_tree_s, 1)}
    finally:
        stop_process_group(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="5000,20000")
    parser.add_argument("--clicks", type=int, default=5, help="Voila clicks (0: skip Voila)")
    args = parser.parse_args()
    from e2e_helpers import CHROMIUM, CHROMIUM_ARGS
    from test_widget_state import bytes_per_click

    out: dict = {"runs": args.runs, "delta": bytes_per_click()}
    if not Path(CHROMIUM).exists():
        out["browser_error"] = f"{CHROMIUM} is not installed (apt-get install chromium)"
        print(json.dumps(out, indent=2))
        return
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            out["large_trees"] = large_trees(browser, [int(s) for s in args.sizes.split(",")],
                                             args.runs, Path(tmp))
            if args.clicks:
                out["voila"] = voila_clicks(browser, args.clicks, Path(tmp))
        finally:
            browser.close()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
