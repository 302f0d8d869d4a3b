"""Markup that reaches the real page is shown as text and runs nothing, in Voila and in
JupyterLab: in a run's error message (typed into the extra box), in a prompt, in an inference
server's HTML error page, and in an export file name. Each payload would set ``window.__xss``
and open an alert if it ran; neither may happen, and the markup must be readable as text.

One page per host (module scope) over one notebook with two explorers: a tiny random model in
the kernel (``.xss-local``) and a session connected to a fake server run by this test
(``.xss-remote``) through a stdlib proxy of this test, which it switches to answering
HTTP 500 with an HTML body."""

from __future__ import annotations

import base64
import json
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import nbformat
import pytest
from e2e_helpers import NODES, SCREENSHOTS
from servers import REPO, serve_voila
from test_lab_quickstart import KERNEL_IDLE_JS, run_all_cells

pytestmark = [pytest.mark.browser]

LOAD_TIMEOUT_MS = 300_000  # kernel start, torch import and the tiny model on a busy CPU
PAYLOAD = '<img src=x onerror="window.__xss=1;alert(1)">'
SCRIPT = "<script>window.__xss=2;alert(2)</script>"

CELLS = [
    f"import sys\nsys.path.insert(0, {str(REPO / 'tests')!r})\n"
    "from tiny_models import tiny_session, tiny_tokenizer\n"
    "import inferviz as iv",
    "local = tiny_session().explore('t5 t6', max_new_tokens=3)\n"
    "local.add_class('xss-local')\nlocal",
    "remote_session = iv.Session.connect({url!r}, tokenizer=tiny_tokenizer(), max_retries=0)\n"
    "remote = remote_session.explore('t5 t6', max_new_tokens=2)\n"
    "remote.add_class('xss-remote')\nremote",
]


def notebook(server_url: str):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(src.replace("{url!r}", repr(server_url)))
                for src in CELLS]
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"xss-{i}"
    return nb


class HtmlErrorProxy:
    """A stdlib HTTP server in front of ``upstream`` (the fake inference server): it forwards
    every request while ``broken`` is false and, while it is true, answers every request
    HTTP 500 with an HTML page carrying the payloads, as a misbehaving server or proxy might."""

    BODY = (f"<html><body><h1>500 Internal Server Error</h1>{PAYLOAD}{SCRIPT}</body></html>"
            ).encode()

    def __init__(self, upstream: str) -> None:
        self.upstream, self.broken = upstream.rstrip("/"), False
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                proxy._handle(self, None)

            def do_POST(self) -> None:
                proxy._handle(self, self.rfile.read(int(self.headers.get("Content-Length", 0))))

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def _handle(self, handler, data: bytes | None) -> None:
        if self.broken:
            status, ctype, body = 500, "text/html; charset=utf-8", self.BODY
        else:
            request = urllib.request.Request(
                self.upstream + handler.path, data=data, method=handler.command,
                headers={"Content-Type": handler.headers.get("Content-Type",
                                                             "application/json")})
            try:
                with urllib.request.urlopen(request, timeout=120) as reply:
                    status, body = reply.status, reply.read()
                    ctype = reply.headers.get("Content-Type", "application/json")
            except urllib.error.HTTPError as err:
                status, body = err.code, err.read()
                ctype = err.headers.get("Content-Type", "application/json")
        handler.send_response(status)
        handler.send_header("Content-Type", ctype)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def __enter__(self) -> "HtmlErrorProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture(scope="module")
def fake_server():
    """The fake inference server behind an :class:`HtmlErrorProxy`; the notebook connects to
    the proxy."""
    from fake_server import FakeServer
    from tiny_models import tiny_model, tiny_tokenizer

    with FakeServer(tiny_model("llama"), tiny_tokenizer()) as server, \
            HtmlErrorProxy(server.url) as proxy:
        yield proxy


class XssPage:
    """The page, every dialog it tried to open, and the checks shared by the tests."""

    def __init__(self, page) -> None:
        self.page = page
        self.dialogs: list[str] = []
        page.on("dialog", self._dialog)
        self.local = page.locator(".xss-local")
        self.remote = page.locator(".xss-remote")

    def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def wait_ready(self) -> None:
        for explorer in (".xss-local", ".xss-remote"):
            self.page.wait_for_selector(f"{explorer} {NODES}", timeout=LOAD_TIMEOUT_MS)

    def status_error(self, explorer):
        """The explorer's status line once it shows an error."""
        banner = explorer.locator(".widget-html .inferviz-error")
        banner.wait_for(state="visible", timeout=LOAD_TIMEOUT_MS)
        return banner

    def assert_nothing_ran(self) -> None:
        self.page.wait_for_timeout(500)  # an <img onerror> fires once its load has failed
        assert self.page.evaluate("() => window.__xss") is None
        assert self.dialogs == []
        assert self.page.locator("img[src='x']").count() == 0


@pytest.fixture(scope="module", params=["voila", "lab"])
def xss_page(request, browser, fake_server, tmp_path_factory):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    view = XssPage(page)
    nb = notebook(fake_server.url)
    try:
        if request.param == "voila":
            path = tmp_path_factory.mktemp("xss-voila") / "xss.ipynb"
            nbformat.write(nb, str(path))
            with serve_voila(path) as url:
                page.goto(url, timeout=LOAD_TIMEOUT_MS)
                view.wait_ready()
                yield view
        else:
            lab = request.getfixturevalue("lab_server")
            put_notebook(lab, "xss.ipynb", nb)
            page.goto(f"{lab}lab/tree/xss.ipynb", timeout=LOAD_TIMEOUT_MS)
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=LOAD_TIMEOUT_MS)
            run_all_cells(page)
            view.wait_ready()
            page.wait_for_function(KERNEL_IDLE_JS, timeout=LOAD_TIMEOUT_MS)
            yield view
    finally:
        context.close()


def put_notebook(base: str, name: str, nb) -> None:
    """Write ``nb`` into the Lab server's root through its contents API."""
    body = json.dumps({"type": "notebook", "format": "json",
                       "content": json.loads(nbformat.writes(nb))}).encode()
    request = urllib.request.Request(f"{base}api/contents/{name}", data=body, method="PUT",
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=30).close()


def labelled(explorer, kind: str, label: str):
    """The input of the ipywidgets ``kind`` (text, dropdown, ...) whose label is ``label``."""
    return explorer.locator(f".widget-{kind}:has(> label:text-is('{label}'))").locator(
        "input, select, textarea").first


def new_tree(explorer, prompt: str) -> None:
    explorer.locator("textarea").first.fill(prompt)
    explorer.locator("button:has-text('New tree')").click()
    explorer.locator(".inferviz-text-prompt").filter(has_text=prompt).wait_for()


# ------------------------------------------------------------------ the tests
def test_markup_in_a_run_error_shows_as_text(xss_page, request):
    local = xss_page.local
    labelled(local, "dropdown", "strategy").select_option("sample")
    labelled(local, "text", "extra").fill(f"temperature='{PAYLOAD}{SCRIPT}'")
    local.locator("button.inferviz-run").click()
    banner = xss_page.status_error(local)
    text = banner.inner_text()
    assert "sample failed" in text and PAYLOAD + SCRIPT in text
    xss_page.assert_nothing_ran()
    if "voila" in request.node.callspec.id:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        banner.scroll_into_view_if_needed()
        top = local.bounding_box()
        box = banner.bounding_box()
        xss_page.page.screenshot(path=str(SCREENSHOTS / "xss_error_escaped.png"), clip={
            "x": top["x"], "y": top["y"], "width": top["width"],
            "height": box["y"] + box["height"] - top["y"] + 3})
    labelled(local, "text", "extra").fill("")
    labelled(local, "dropdown", "strategy").select_option("greedy")


def test_markup_in_a_prompt_shows_as_text(xss_page):
    local = xss_page.local
    prompt = f"{PAYLOAD} t5 {SCRIPT}"
    new_tree(local, prompt)
    assert local.locator(".inferviz-text-prompt").inner_text() == prompt
    root = local.locator(".inferviz-node.root .tok")
    assert "<" in root.text_content() or ">" in root.text_content()  # a label may be shortened
    local.locator(".inferviz-node.root").dispatch_event("click")  # expand: children drawn
    xss_page.page.wait_for_function(
        "document.querySelectorAll('.xss-local .inferviz-tree g.inferviz-node').length > 1")
    xss_page.assert_nothing_ran()


def test_markup_in_a_server_error_body_shows_as_text(xss_page, fake_server):
    remote = xss_page.remote
    fake_server.broken = True
    try:
        remote.locator("button.inferviz-run").click()
        text = xss_page.status_error(remote).inner_text()
    finally:
        fake_server.broken = False
    assert "failed" in text and "500" in text
    assert PAYLOAD + SCRIPT in text  # the server's HTML page, shown as its text
    assert remote.locator(".widget-html .inferviz-error *").count() == 0  # no element from it
    xss_page.assert_nothing_ran()


def test_markup_in_an_export_name_runs_nothing(xss_page, tmp_path):
    local = xss_page.local
    new_tree(local, f"{PAYLOAD} t5")
    local.locator(".lm-TabBar-tab:has-text('Export')").click()
    labelled(local, "text", "file stem").fill(PAYLOAD + SCRIPT)
    local.locator("button:has-text('Export HTML')").click()
    links = local.locator(".widget-html:has-text('wrote')")
    links.wait_for(timeout=LOAD_TIMEOUT_MS)
    assert links.locator("a[download]").count() == 1
    assert links.locator("img, script").count() == 0
    xss_page.assert_nothing_ran()

    # The exported page itself, opened from disk: its markup prompt is a label, not markup.
    href = links.locator("a[download]").get_attribute("href")
    exported = Path(tmp_path / "export.html")
    exported.write_bytes(base64.b64decode(href.split(",", 1)[1]))
    opened = XssPage(xss_page.page.context.new_page())
    try:
        opened.page.goto(exported.as_uri())
        opened.page.wait_for_selector(NODES)
        assert "onerror=" in opened.page.locator(".inferviz-node.root .tok").text_content()
        opened.assert_nothing_ran()
    finally:
        opened.page.close()
