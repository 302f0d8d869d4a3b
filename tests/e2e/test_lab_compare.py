"""Session.compare's widget in JupyterLab in a real chromium: the text view renders shaded
tokens with a legend, hover shows alternatives, and a click on a token selects its node in the
tree widget through the kernel (TextView.selected -> TreeWidget.selected)."""

from __future__ import annotations

import json
import urllib.request

import pytest
from e2e_helpers import NODES, SCREENSHOTS
from test_lab_quickstart import KERNEL_IDLE_JS, RUN_TIMEOUT_MS, run_all_cells

pytestmark = [pytest.mark.browser, pytest.mark.model]

CELLS = [
    "import inferviz as iv\ns = iv.Session.from_pretrained('default')",
    "cmp = s.compare('The capital of France is', strategies=['greedy', "
    "{'strategy': 'top_p', 'top_p': 0.9, 'seed': 0}], max_new_tokens=8)\n"
    "s.expand(cmp.tree, cmp.tree.root_id, k=5)\nbox = cmp.widget()\nbox",
]


def put_notebook(base: str, name: str) -> None:
    """Write a notebook into the Lab server's root through its contents API."""
    notebook = {"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}},
        "cells": [{"cell_type": "code", "metadata": {}, "source": src, "outputs": [],
                   "execution_count": None, "id": f"c{i}"} for i, src in enumerate(CELLS)]}
    body = json.dumps({"type": "notebook", "format": "json", "content": notebook}).encode()
    request = urllib.request.Request(f"{base}api/contents/{name}", data=body, method="PUT",
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=30).close()


def test_compare_text_view_click_selects_the_node_in_the_tree(page, lab_server):
    put_notebook(lab_server, "compare_e2e.ipynb")
    page.goto(f"{lab_server}lab/tree/compare_e2e.ipynb", timeout=RUN_TIMEOUT_MS)
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=RUN_TIMEOUT_MS)
    run_all_cells(page)
    page.wait_for_selector(".inferviz-text-token", timeout=RUN_TIMEOUT_MS)
    page.wait_for_selector(NODES, timeout=RUN_TIMEOUT_MS)
    page.wait_for_function(KERNEL_IDLE_JS, timeout=RUN_TIMEOUT_MS)

    page.locator(".inferviz-compare").first.scroll_into_view_if_needed()
    text = page.locator(".inferviz-text").first
    assert "token probability" in text.locator(".inferviz-text-legend").inner_text()
    tokens = text.locator(".inferviz-text-token")
    assert tokens.count() == 8
    backgrounds = {tokens.nth(i).evaluate("e => e.style.background") for i in range(8)}
    assert len(backgrounds) > 1  # shaded by probability, not one colour

    # The divergence marker, set on the tree widget before it was displayed, reached the page.
    marked = page.locator(".inferviz-tree g.inferviz-node.marked")
    marked.first.wait_for(timeout=60_000)
    assert "splits" in page.locator(".inferviz-tree").first.inner_text()

    first = tokens.first  # the root's child: the tree holds its siblings (k=5 expansion)
    first.hover()
    # the card floats in the page's body (no output area clips it)
    alternatives = page.locator(".inferviz-text-tip:not([hidden]) .inferviz-text-alts tr")
    alternatives.first.wait_for()
    assert alternatives.count() >= 5
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    # A clip of the page, not an element screenshot: that would scroll and end the hover.
    box = page.locator(".inferviz-compare").first.bounding_box()
    page.screenshot(path=str(SCREENSHOTS / "compare_lab.png"), clip={
        "x": box["x"], "y": max(0, box["y"]), "width": box["width"],
        "height": min(box["height"], 1000 - max(0, box["y"]))})

    node_id = tokens.nth(3).get_attribute("data-node-id")
    tokens.nth(3).click()
    page.wait_for_selector(f".inferviz-tree g.inferviz-node.selected[data-node-id='{node_id}']",
                           timeout=60_000)
    assert "selected" in (tokens.nth(3).get_attribute("class") or "")
    assert not page.js_errors
