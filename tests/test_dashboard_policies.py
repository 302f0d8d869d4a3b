"""The dashboard's server policies (docs/reliability.md, "Security"): it answers only its own host
names (DNS rebinding), holds at most ``max_sessions`` kernels and culls those of closed pages,
stops its kernels on SIGTERM, and the Export buttons write only into the session's own folder.

The server tests run the real dashboard server (``inferviz.widgets.dashboard.voila_app``) on a one-cell
notebook, so a kernel starts in a second and no model is loaded."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("voila")
pytest.importorskip("ipywidgets")
psutil = pytest.importorskip("psutil")

from servers import free_port, server_env, stop_process_group, wait_for_port  # noqa: E402
from servers import one_cell_notebook as _notebook  # noqa: E402

from inferviz.widgets.dashboard import launcher as dashboard  # noqa: E402
from inferviz.widgets.dashboard.voila_app import full_page, host_allowed  # noqa: E402
from inferviz.widgets.export import policy as export_policy  # noqa: E402


# ------------------------------------------------------------------ host names
@pytest.mark.parametrize("host, allowed, ok", [
    ("localhost:8866", (), True),
    ("LOCALHOST", (), True),
    ("127.0.0.1:8866", (), True),
    ("[::1]:8866", (), True),
    ("10.1.2.3:8866", (), True),  # an IP literal cannot be rebound
    ("evil.example:8866", (), False),
    ("localhost.evil.example", (), False),
    ("", (), False),
    ("lab.example:80", ("lab.example",), True),
    ("Lab.Example.", ("lab.example",), True),
    ("other.example", ("lab.example",), False),
    ("anything.example", ("*",), True),
])
def test_host_names_other_than_localhost_and_ip_literals_are_refused(host, allowed, ok):
    assert host_allowed(host, allowed) is ok


def test_the_full_page_escapes_what_it_shows():
    page = full_page(3, 3, 600)
    assert "The dashboard is full" in page and "at most 3" in page and "10 minute" in page


# ------------------------------------------------------------------ exports
@pytest.mark.parametrize("typed, stem", [
    ("results", "results"),
    ("my tree (v2)", "my_tree_v2"),
    ("/etc/passwd", "etc_passwd"),
    ("../../outside", "outside"),
    ("..\\..\\win", "win"),
    ("<img src=x onerror=alert(1)>", "img_src_x_onerror_alert_1"),
    ("a\x00b", "a_b"),
    (".hidden", "hidden"),
    ("x" * 300, "x" * export_policy.MAX_STEM),
])
def test_export_names_typed_in_the_page_become_one_plain_file_name(typed, stem):
    assert export_policy.safe_stem(typed) == stem


@pytest.mark.parametrize("typed", ["", "  ", "../..", "///", "<>"])
def test_an_export_name_with_no_letter_or_digit_is_refused(typed):
    with pytest.raises(ValueError, match="file stem must contain a letter or a digit"):
        export_policy.safe_stem(typed)


def test_export_buttons_never_write_outside_the_export_folder(tiny_session, tmp_path,
                                                               monkeypatch):
    monkeypatch.chdir(tmp_path)
    victim = tmp_path / "victim.json"
    victim.write_text("keep me")
    explorer = tiny_session.explore("Hello", export_dir=tmp_path / "exports")
    for typed in (str(victim.with_suffix("")), "../victim", "../../../../tmp/x"):
        explorer.export_stem.value = typed
        explorer.export_buttons["json"].click()
    assert victim.read_text() == "keep me"
    written = sorted(p.name for p in (tmp_path / "exports").iterdir())
    assert len(written) == 3 and "tmp_x.json" in written and "victim.json" in written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exports", "victim.json"]
    assert "wrote <code>tmp_x.json</code>" in explorer.export_links.value


def test_a_refused_export_name_is_reported_and_writes_nothing(tiny_session, tmp_path):
    explorer = tiny_session.explore("Hello", export_dir=tmp_path / "exports")
    explorer.export_stem.value = "../.."
    explorer.export_buttons["csv"].click()
    assert "file stem must contain a letter or a digit" in explorer.status.value
    assert not (tmp_path / "exports").exists() or not any((tmp_path / "exports").iterdir())


def test_notebook_exports_go_outside_the_working_directory(tiny_session, tmp_path,
                                                           monkeypatch):
    """A notebook's working directory is often a repository's notebooks/ folder."""
    monkeypatch.delenv(export_policy.EXPORT_DIR_ENV, raising=False)
    monkeypatch.delenv(export_policy.PER_SESSION_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    explorer = tiny_session.explore("Hello")
    explorer.export_buttons["json"].click()
    assert (tmp_path / "home" / "inferviz-exports" / "inferviz_tree.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]
    assert str(tmp_path / "home" / "inferviz-exports") in explorer.export_links.value


def test_inferviz_export_dir_chooses_the_notebook_export_folder(tiny_session, tmp_path,
                                                                monkeypatch):
    monkeypatch.setenv(export_policy.EXPORT_DIR_ENV, str(tmp_path / "mine"))
    monkeypatch.delenv(export_policy.PER_SESSION_ENV, raising=False)
    explorer = tiny_session.explore("Hello")
    explorer.export_buttons["csv"].click()
    assert explorer.export_dir == tmp_path / "mine"
    assert (tmp_path / "mine" / "inferviz_tree.csv").is_file()


def test_two_dashboard_sessions_export_into_folders_of_their_own(tiny_session, tmp_path,
                                                                 monkeypatch):
    monkeypatch.setenv(export_policy.EXPORT_DIR_ENV, str(tmp_path / "dash"))
    monkeypatch.setenv(export_policy.PER_SESSION_ENV, "1")  # what the dashboard server sets
    first, second = tiny_session.explore("Hello"), tiny_session.explore("World")
    for explorer in (first, second):
        explorer.export_buttons["json"].click()
    assert first.export_dir != second.export_dir
    assert first.export_dir.parent == second.export_dir.parent == tmp_path / "dash"
    assert (first.export_dir / "inferviz_tree.json").read_text() != \
        (second.export_dir / "inferviz_tree.json").read_text()
    assert oct(first.export_dir.stat().st_mode & 0o777) == "0o700"
    # the page is not told where on the server the file is
    assert str(tmp_path) not in first.export_links.value
    assert "this session's export folder" in first.export_links.value


def test_the_dashboard_tells_its_kernels_where_exports_go(tmp_path):
    notebook = _notebook(tmp_path, "import os; print(os.environ['INFERVIZ_EXPORT_DIR'], "
                                   "os.environ['INFERVIZ_EXPORT_PER_SESSION'])")
    process = dashboard.start(port=0, notebook=notebook, export_dir=tmp_path / "out",
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port = dashboard.port_of(process)
        wait_for_port(port, process, Path(os.devnull))
        status, body = _get(port, "/")
        assert status == 200 and f"{(tmp_path / 'out').resolve()} 1" in body
    finally:
        _stop(process)


# ------------------------------------------------------------------ the server
def _get(port: int, path: str, host: str | None = None,
         headers: dict | None = None) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", path, headers={"Host": host or f"localhost:{port}", **(headers or {})})
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        conn.close()


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture()
def server(tmp_path):
    """The dashboard server on a one-cell notebook, one session at most, kernels with no page
    culled after 10 s (longer than the 5 s a page at the cap waits for a closing page)."""
    process = dashboard.start(port=0, notebook=_notebook(tmp_path), allowed_hosts=["lab.example"],
                              max_sessions=1, idle_timeout=10, export_dir=tmp_path / "out",
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=server_env(), start_new_session=True)
    try:
        port = dashboard.port_of(process)
        wait_for_port(port, process, Path(os.devnull))
        yield port
    finally:
        stop_process_group(process)


def test_a_page_asked_for_under_a_rebound_host_name_is_refused(server):
    kernel_path = "/api/kernels/0d5b5e8a-1111-2222-3333-444455556666/channels"
    for path in ("/", "/voila/static/voila.js", kernel_path, "/voila/api/shutdown/x"):
        status, body = _get(server, path, host=f"evil.example:{server}")
        assert status == 403, (path, status)
    status, body = _get(server, "/", host=f"evil.example:{server}")
    assert "does not answer requests for the host name <code>evil.example" in body
    assert _get(server, "/voila/static/voila.js")[0] == 200  # the same file for localhost


def test_localhost_ip_literals_and_allowed_names_are_served(server):
    status, body = _get(server, "/", host=f"lab.example:{server}")
    assert status == 200 and "one_cell" in body


def test_a_page_beyond_the_session_limit_gets_the_full_page_until_a_kernel_is_culled(server):
    status, body = _get(server, "/")  # session 1: a kernel, no page keeps it connected
    assert status == 200 and "kernel up" in body
    status, body = _get(server, "/", host=f"127.0.0.1:{server}")
    assert status == 503 and "The dashboard is full" in body and "at most 1" in body
    deadline = time.monotonic() + 40  # the culler: idle 10 s with no connection
    while time.monotonic() < deadline:
        status, body = _get(server, "/")
        if status == 200:
            break
        time.sleep(0.5)
    assert status == 200 and "kernel up" in body


def test_start_refuses_a_busy_port_instead_of_moving_to_another(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(OSError, match=f"port {port} on 127.0.0.1 is in use"):
            dashboard.start(port=port, notebook=_notebook(tmp_path))


@pytest.mark.parametrize("kwargs, message", [
    ({"max_sessions": -1}, "max_sessions must be an int >= 0"),
    ({"idle_timeout": 1.5}, "idle_timeout must be an int >= 0"),
    ({"allowed_hosts": "lab.example"}, "allowed_hosts must be a list"),
    ({"allowed_hosts": ["a b"]}, "allowed_hosts must hold host names"),
])
def test_bad_dashboard_limits_are_refused_naming_the_argument(tmp_path, kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        dashboard.start(port=0, notebook=_notebook(tmp_path), **kwargs)


def test_sigterm_stops_the_dashboard_and_its_kernels(tmp_path):
    notebook = _notebook(tmp_path)
    port = free_port()
    code = ("from inferviz.widgets.dashboard import serve; "
            f"serve(port={port}, notebook={str(notebook)!r}, idle_timeout=0)")
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-c", code], env=server_env(), stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_port(port, process, log)
        assert _get(port, "/")[0] == 200  # a kernel is running now
        family = psutil.Process(process.pid).children(recursive=True)
        assert len(family) >= 2, "expected Voila and a kernel"
        process.send_signal(signal.SIGTERM)  # to serve() only, not to its group
        process.wait(timeout=30)
        gone, alive = psutil.wait_procs(family, timeout=30)
        assert not alive, f"still running after SIGTERM: {[p.cmdline() for p in alive]}"
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0
    finally:
        stop_process_group(process)
