"""`inferviz demo --server URL` against a real llama.cpp server in chromium: the dashboard
connects instead of loading a model, draws the prompt's first level, and a click on a leaf
expands it through the server; no stderr box, no error banner, no console error."""

from __future__ import annotations

import subprocess
import sys

import pytest
from e2e_helpers import NODES, SCREENSHOTS, click_leaf_and_time, node_count
from llama_server import LlamaServer, require_binary
from servers import free_port, server_env, stop_process_group, wait_for_port

pytestmark = [pytest.mark.browser, pytest.mark.model]

LOAD_TIMEOUT_MS = 300_000
NOISE = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"


@pytest.fixture(scope="module")
def remote_dashboard(tmp_path_factory):
    pytest.importorskip("voila")
    require_binary()
    workdir = tmp_path_factory.mktemp("remote-demo")
    with LlamaServer(parallel=4) as llama:
        port = free_port()
        log = workdir / "demo.log"
        with open(log, "w") as out:
            demo = subprocess.Popen(
                [sys.executable, "-m", "inferviz.cli", "demo", "--server", llama.url,
                 "--port", str(port)], cwd=workdir, stdout=out, stderr=subprocess.STDOUT,
                env=server_env(), start_new_session=True)
        try:
            wait_for_port(port, demo, log)
            yield f"http://127.0.0.1:{port}/"
        finally:
            stop_process_group(demo)
            print(f"\n--- demo log (tail) ---\n{log.read_text()[-2000:]}")


def test_remote_dashboard_expands_a_node_through_the_llamacpp_server(page, remote_dashboard):
    page.goto(remote_dashboard, timeout=LOAD_TIMEOUT_MS)
    page.wait_for_function(f"document.querySelectorAll({NODES!r}).length > 1",
                           timeout=LOAD_TIMEOUT_MS)
    start = node_count(page)
    assert start == 6  # the prompt and its top 5, from the server
    elapsed_ms = click_leaf_and_time(page)
    page.wait_for_function(f"document.querySelectorAll({NODES!r}).length >= {start + 5}")
    assert node_count(page) == start + 5
    print(f"\n[measure] remote voila (llama-server): click -> children drawn {elapsed_ms:.0f} ms")
    assert page.locator(NOISE).count() == 0
    banner = page.locator(".inferviz-tree .inferviz-error")
    assert banner.count() == 0 or not banner.first.inner_text().strip()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "explorer_remote_llamacpp.png"), full_page=True)
    assert not page.js_errors
