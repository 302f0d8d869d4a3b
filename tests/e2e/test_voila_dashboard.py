"""The Voila dashboard in a real chromium: the explorer opens with a tree, a click expands a
leaf, a bad setting is refused with a visible error, and Run grows the tree."""

from __future__ import annotations

import pytest
from e2e_helpers import NODES, SCREENSHOTS, click_leaf_and_time, node_count

pytestmark = [pytest.mark.browser, pytest.mark.model]

LOAD_TIMEOUT_MS = 600_000  # kernel start + model load + first expansion on a busy CPU


def test_dashboard_explorer_end_to_end(page, voila_server):
    page.goto(voila_server, timeout=LOAD_TIMEOUT_MS)
    page.wait_for_selector(NODES, timeout=LOAD_TIMEOUT_MS)
    page.wait_for_function("document.querySelectorAll('.inferviz-tree g.inferviz-node').length > 1",
                           timeout=LOAD_TIMEOUT_MS)
    start = node_count(page)
    assert start == 6  # the prompt, expanded one level (k=5)

    # A click on a leaf expands it: its children appear.
    elapsed_ms = click_leaf_and_time(page)
    page.wait_for_function(f"document.querySelectorAll({NODES!r}).length >= {start + 5}")
    expanded = node_count(page)
    assert expanded == start + 5
    print(f"\n[measure] voila: click -> children drawn {elapsed_ms:.0f} ms (default model)")

    # A bad setting through the UI (k=0) is refused: an error shows, the tree is unchanged.
    k_box = page.locator(".inferviz-tree .inferviz-controls input[name=k]")
    k_box.fill("0")
    k_box.dispatch_event("change")
    error = page.locator(".inferviz-tree .inferviz-error")
    error.wait_for(state="visible")
    assert "k must be" in error.inner_text()
    page.wait_for_function("document.querySelector('.inferviz-tree input[name=k]').value === '5'")
    assert node_count(page) == expanded

    # Run greedy from the root: the tree grows and the status reports the result.
    page.locator("button.inferviz-run").click()
    page.wait_for_function(
        "document.querySelector('.inferviz-explorer').innerText.includes('greedy done')",
        timeout=LOAD_TIMEOUT_MS)
    page.wait_for_function(f"document.querySelectorAll({NODES!r}).length > {expanded}")
    page.wait_for_function("!document.querySelector('button.inferviz-run').disabled")
    assert page.locator(".inferviz-token-table tbody tr").count() >= 1
    # The run worked: the earlier refusal's banner is gone (it is not in the screenshot).
    page.wait_for_function(
        "document.querySelector('.inferviz-tree .inferviz-error').innerText.trim() === ''")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "explorer_voila.png"), full_page=True)
    assert not page.js_errors
