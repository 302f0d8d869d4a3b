"""A reloaded or closed dashboard page gives its kernel back at once, in chromium.

Voila's page, when it unloads, posts ``/voila/api/shutdown/<kernel>`` with the ``_xsrf``
cookie's value; the dashboard's page handler sets that cookie, so the post is accepted and the
kernel (a copy of the model, in the real dashboard) ends. Before, the cookie was never set, each
post got 403, and a user who reloaded the page ``max_sessions`` times met "The dashboard is
full" until the idle culler ran (10 minutes). Here the server holds one session and culls after
an hour, so only the page's own shutdown can free the kernel for the next load."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from servers import one_cell_notebook as _notebook
from servers import server_env, stop_process_group, wait_for_port

pytest.importorskip("voila")
psutil = pytest.importorskip("psutil")

from inferviz.widgets.dashboard import launcher as dashboard  # noqa: E402


def _kernels(server: psutil.Process) -> list[int]:
    """The process ids of the server's kernels."""
    kernels = []
    for child in server.children(recursive=True):
        try:
            if "ipykernel_launcher" in " ".join(child.cmdline()):
                kernels.append(child.pid)
        except psutil.NoSuchProcess:
            continue
    return kernels


@pytest.fixture()
def one_session_server(tmp_path):
    process = dashboard.start(port=0, notebook=_notebook(tmp_path), max_sessions=1,
                              idle_timeout=3600, export_dir=tmp_path / "out",
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=server_env(), start_new_session=True)
    try:
        port = dashboard.port_of(process)
        wait_for_port(port, process, Path(os.devnull))
        yield port, psutil.Process(process.pid)
    finally:
        stop_process_group(process)


def _wait_for_one_kernel_other_than(server: psutil.Process, old: int | None) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        kernels = _kernels(server)
        if len(kernels) == 1 and kernels[0] != old:
            return kernels[0]
        time.sleep(0.25)
    raise AssertionError(f"kernels after a reload: {_kernels(server)} (the old one: {old})")


def test_reloading_the_page_frees_its_kernel_so_one_user_never_fills_the_dashboard(
        page, one_session_server):
    port, server = one_session_server
    url = f"http://127.0.0.1:{port}/"
    response = page.goto(url)
    assert response.status == 200
    page.get_by_text("kernel up").wait_for()
    assert "_xsrf" in {c["name"] for c in page.context.cookies()}
    kernel = _wait_for_one_kernel_other_than(server, None)
    for _ in range(3):  # more loads than the dashboard holds sessions
        response = page.reload()
        assert response.status == 200, "a reload got the 'dashboard is full' page"
        assert "The dashboard is full" not in page.content()
        page.get_by_text("kernel up").wait_for()
        kernel = _wait_for_one_kernel_other_than(server, kernel)
    other = page.context.new_page()  # closing a tab frees its kernel, too
    page.close(run_before_unload=True)
    deadline = time.monotonic() + 30
    while _kernels(server) and time.monotonic() < deadline:
        time.sleep(0.25)
    assert _kernels(server) == []
    assert other.goto(url).status == 200
    other.get_by_text("kernel up").wait_for()
