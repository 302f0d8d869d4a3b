"""``inferviz demo`` owns its processes and tells the truth: it prints the URL it serves once it
serves it, shows a loading message in the page before the notebook has run, converts the model
before the server starts, and Ctrl-C, SIGTERM or SIGHUP leaves no Voila and no kernel behind.

The server tests run the real ``inferviz demo`` on one-cell notebooks (``--notebook``), so a
kernel starts in seconds and no model is loaded."""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("voila")
pytest.importorskip("ipywidgets")
psutil = pytest.importorskip("psutil")

from servers import one_cell_notebook as _notebook  # noqa: E402
from servers import server_env  # noqa: E402

from inferviz.cli import main  # noqa: E402
from inferviz.widgets.dashboard import launcher as dashboard  # noqa: E402
from inferviz.widgets.dashboard import model_warmup, owned_processes  # noqa: E402

URL_LINE = re.compile(r"inferviz dashboard: (http://127\.0\.0\.1:(\d+)/)")
START_TIMEOUT_S = 120


def _start_demo(tmp_path: Path, code: str = "print('kernel up')", *args: str):
    """``inferviz demo --port 0 --notebook ...`` in a session of its own (as a terminal would
    run it); returns ``(process, url, port)`` once it printed its URL."""
    log = tmp_path / "demo.log"
    command = [sys.executable, "-m", "inferviz.cli", "demo", "--port", "0", "--notebook",
               str(_notebook(tmp_path, code)), "--export-dir", str(tmp_path / "exports"), *args]
    with open(log, "w") as out:
        process = subprocess.Popen(command, env=server_env(), stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        found = URL_LINE.search(log.read_text())
        if found:
            return process, found.group(1), int(found.group(2))
        if process.poll() is not None:
            break
        time.sleep(0.2)
    _kill_group(process)
    raise AssertionError(f"inferviz demo printed no URL:\n{log.read_text()}")


def _kill_group(process: subprocess.Popen) -> None:
    for pid in [process.pid, *owned_processes.descendants(process.pid)]:
        try:
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    process.wait(timeout=10)


def _get(port: int, path: str = "/") -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", path, headers={"Host": f"localhost:{port}"})
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        conn.close()


# ------------------------------------------------------------------ the URL
def test_the_printed_url_is_the_port_that_serves_and_answers_at_once(tmp_path):
    process, url, port = _start_demo(tmp_path)
    try:
        assert port != 0
        status, body = _get(port)  # printed only once the server listens
        assert status == 200 and "kernel up" in body
    finally:
        _kill_group(process)


# ------------------------------------------------------------------ stopping
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP],
                         ids=["SIGTERM", "SIGINT", "SIGHUP"])
def test_stopping_inferviz_demo_leaves_no_process_behind(tmp_path, signum):
    process, _url, port = _start_demo(tmp_path)
    try:
        assert _get(port)[0] == 200  # a kernel runs now
        family = psutil.Process(process.pid).children(recursive=True)
        assert len(family) >= 2, "expected Voila and a kernel"
        # Voila has a process group of its own: a terminal's Ctrl-C reaches inferviz demo,
        # which stops Voila and the kernels in order.
        assert os.getpgid(family[0].pid) != os.getpgid(process.pid)
        process.send_signal(signum)  # to inferviz demo only, as kill PID does
        assert process.wait(timeout=60) == 0
        _gone, alive = psutil.wait_procs(family, timeout=10)
        assert not alive, f"still running: {[p.cmdline() for p in alive]}"
        with pytest.raises(OSError):
            _get(port)
    finally:
        if process.poll() is None:
            _kill_group(process)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG)")
def test_a_killed_inferviz_demo_still_stops_voila_and_its_kernels(tmp_path):
    """SIGKILL cannot be handled: Voila learns of it from the kernel (PDEATHSIG) instead."""
    process, _url, port = _start_demo(tmp_path)
    family = []
    try:
        assert _get(port)[0] == 200
        family = psutil.Process(process.pid).children(recursive=True)
        assert len(family) >= 2
        process.kill()
        process.wait(timeout=10)
        _gone, alive = psutil.wait_procs(family, timeout=30)
        assert not alive, f"still running: {[p.cmdline() for p in alive]}"
    finally:
        for proc in family:  # reparented once inferviz demo died
            if proc.is_running():
                proc.kill()


def test_stop_ends_a_server_and_kernels_that_ignore_sigterm(tmp_path):
    """What stop() does when the server does not shut its kernels down: a server ignoring
    SIGTERM, with a 'kernel' in a session of its own that ignores it too."""
    script = tmp_path / "stubborn.py"
    script.write_text(
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "subprocess.Popen([sys.executable, '-c', 'import signal, time; "
        "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)'], "
        "start_new_session=True)\n"
        "print('ready', flush=True)\n"
        "time.sleep(600)\n")
    server = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                              start_new_session=True)
    assert server.stdout.readline() == b"ready\n"
    family = psutil.Process(server.pid).children(recursive=True)
    assert len(family) == 1
    started = time.monotonic()
    owned_processes.stop(server, grace_s=1)
    assert server.poll() is not None
    _gone, alive = psutil.wait_procs(family, timeout=5)
    assert not alive
    assert time.monotonic() - started < 20


def test_descendants_lists_children_and_grandchildren(tmp_path):
    parent = subprocess.Popen([sys.executable, "-c",
                               "import subprocess, sys, time; subprocess.Popen([sys.executable, "
                               "'-c', 'import time; time.sleep(60)']); print('ok', flush=True); "
                               "time.sleep(60)"], stdout=subprocess.PIPE)
    try:
        assert parent.stdout.readline() == b"ok\n"
        expected = {p.pid for p in psutil.Process(parent.pid).children(recursive=True)}
        assert len(expected) == 1
        assert set(owned_processes.descendants(parent.pid)) == expected
    finally:
        owned_processes.stop(parent, grace_s=2)


# ------------------------------------------------------------------ the loading message
def test_the_page_says_the_model_is_loading_before_the_notebook_has_run(tmp_path):
    """The page's first bytes (Voila streams it while the kernel runs) say what is loading and
    how long it takes, long before the cell (here a 30 s sleep) finishes."""
    process = dashboard.start(port=0, notebook=_notebook(tmp_path, "import time\n"
                                                         "time.sleep(30)\nprint('cell done')"),
                              export_dir=tmp_path / "exports", env=server_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        port = dashboard.port_of(process)
        assert dashboard.wait_until_serving(process, "127.0.0.1", port)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", "/", headers={"Host": f"localhost:{port}"})
        asked = time.monotonic()
        response = conn.getresponse()
        received = b""
        while b"inferviz-loading-hint" not in received and time.monotonic() - asked < 25:
            chunk = response.read1(65536)
            if not chunk:
                break
            received += chunk
        waited = time.monotonic() - asked
        page = received.decode("utf-8", "replace")
        assert "Loading the model…" in page and "about a minute" in page
        assert "cell done" not in page
        assert waited < 20, f"the loading message came after {waited:.1f} s"
        conn.close()
    finally:
        owned_processes.stop(process)


# ------------------------------------------------------------------ the model, before the URL
def test_the_default_dashboard_converts_the_model_before_the_server_starts(tmp_path,
                                                                          monkeypatch):
    steps = []
    monkeypatch.setattr(model_warmup, "prepare", lambda name="default": steps.append("convert"))

    def popen(command, **_kwargs):
        steps.append("server")
        raise KeyboardInterrupt  # as if Ctrl-C came at once

    monkeypatch.setattr(dashboard.subprocess, "Popen", popen)
    assert dashboard.serve(port=0, export_dir=tmp_path) == 0
    assert steps == ["convert", "server"]


def test_another_notebook_or_a_server_converts_nothing(tmp_path, monkeypatch):
    steps = []
    monkeypatch.setattr(model_warmup, "prepare", lambda name="default": steps.append("convert"))
    monkeypatch.setattr(dashboard.subprocess, "Popen",
                        lambda *_a, **_k: (_ for _ in ()).throw(KeyboardInterrupt))
    dashboard.serve(port=0, notebook=_notebook(tmp_path, "1"), export_dir=tmp_path)
    dashboard.serve(port=0, server={"base_url": "http://127.0.0.1:9/"}, export_dir=tmp_path)
    assert steps == []


def test_a_cached_model_needs_no_conversion(monkeypatch, capsys):
    monkeypatch.setattr(model_warmup, "pending", lambda name: None)
    assert model_warmup.prepare("default") is False
    assert capsys.readouterr().out == ""


def test_conversion_progress_is_a_line_per_quarter_in_a_log():
    import io

    out = io.StringIO()
    progress = model_warmup.LineProgress(out)
    for done in range(0, 273):
        progress("converting GGUF tensors", done, 272)
    progress("loading weights", 1, 1)
    lines = out.getvalue().splitlines()
    assert [line.split(": ", 2)[-1] for line in lines] == ["0/272", "68/272", "136/272",
                                                           "204/272", "272/272"]


@pytest.mark.model
def test_a_cold_start_converts_the_default_model_once_with_progress(tmp_path):
    env = {**server_env(), "INFERVIZ_CACHE": str(tmp_path / "cache")}
    pending = [sys.executable, "-c", "from inferviz.widgets.dashboard.model_warmup import pending; "
               "print(pending('default'))"]
    assert subprocess.run(pending, env=env, capture_output=True, text=True).stdout != "None\n"
    done = subprocess.run([sys.executable, "-c", "from inferviz.widgets.dashboard.model_warmup import "
                           "prepare; prepare('default')"], env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    assert "converting the model once" in done.stdout and "model ready" in done.stdout
    assert "converting GGUF tensors: " in done.stdout  # progress in a log, not a terminal
    assert "RuntimeWarning" not in done.stderr, done.stderr  # (runpy's, from python -m)
    assert subprocess.run(pending, env=env, capture_output=True, text=True).stdout == "None\n"


# ------------------------------------------------------------------ options
def test_max_kernels_is_another_name_for_max_sessions(monkeypatch):
    seen = {}
    monkeypatch.setattr(dashboard, "serve", lambda **kwargs: seen.update(kwargs) or 0)
    assert main(["demo", "--max-kernels", "2", "--idle-timeout", "30"]) == 0
    assert seen["max_sessions"] == 2 and seen["idle_timeout"] == 30


def test_notebook_and_server_together_are_refused(capsys):
    assert main(["demo", "--notebook", "x.ipynb", "--server", "http://127.0.0.1:9/"]) == 2
    assert "--notebook and --server cannot be combined" in capsys.readouterr().err
