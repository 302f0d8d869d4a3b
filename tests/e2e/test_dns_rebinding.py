"""DNS rebinding against the dashboard, in a real chromium: a page whose host name resolves to
127.0.0.1 (chromium's --host-resolver-rules stands in for a rebound DNS answer) gets 403 for the
page, its scripts and the kernel API, so it can neither start a kernel nor drive the widgets; the
same server answers http://localhost:PORT/ as usual."""

from __future__ import annotations

import pytest
from e2e_helpers import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS
from servers import serve_voila

pytestmark = pytest.mark.browser


@pytest.fixture()
def dashboard_port(tmp_path):
    pytest.importorskip("voila")
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells.append(nbformat.v4.new_code_cell("print('kernel ' + 'answered')"))
    path = tmp_path / "rebinding.ipynb"
    nbformat.write(nb, str(path))
    with serve_voila(path) as url:
        yield int(url.rstrip("/").rsplit(":", 1)[1])


def test_a_rebound_host_name_gets_no_page_no_kernel_and_no_api(playwright_driver,
                                                                dashboard_port):
    # A browser of its own (the host rule is a launch flag), from the session's one driver:
    # a second sync_playwright() would fail after any test that used the shared browser.
    rules = "--host-resolver-rules=MAP evil.example 127.0.0.1"
    browser = playwright_driver.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                args=[*CHROMIUM_ARGS, rules])
    try:
        page = browser.new_page(viewport={"width": 900, "height": 300})
        response = page.goto(f"http://evil.example:{dashboard_port}/")
        assert response.status == 403
        assert "does not answer requests for the host name evil.example" in \
            page.inner_text("body")
        assert "kernel answered" not in page.content()
        page.screenshot(path=str(SCREENSHOTS / "dashboard_rebinding_refused.png"))
        # Same-origin requests the attacker's script could make: all refused.
        statuses = page.evaluate("""async () => {
          const paths = ["/", "/voila/static/voila.js", "/api/kernels/x/channels",
                         "/voila/api/shutdown/x"];
          const out = [];
          for (const p of paths) out.push((await fetch(p)).status);
          return out;
        }""")
        assert statuses == [403, 403, 403, 403]
        response = page.goto(f"http://localhost:{dashboard_port}/")
        assert response.status == 200
        page.wait_for_selector("text=kernel answered", timeout=60_000)
    finally:
        browser.close()
