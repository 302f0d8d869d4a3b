"""The explorer's Compare tab in the real dashboard (Voila, the default model, chromium):
greedy and beam search run into the tree from the root; the table shows both texts and where
beam parts from greedy, and the tree marks the divergence. Screenshot: docs/img/compare_tab.png."""

from __future__ import annotations

import pytest
from e2e_helpers import SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.model]

LOAD_TIMEOUT_MS = 600_000


def test_compare_tab_runs_two_strategies_and_shows_where_they_part(page, voila_server):
    page.goto(voila_server, timeout=LOAD_TIMEOUT_MS)
    page.wait_for_function("document.querySelectorAll('.inferviz-tree g.inferviz-node').length > 1",
                           timeout=LOAD_TIMEOUT_MS)
    page.locator(".lm-TabBar-tab", has_text="Compare").click()
    panel = page.locator(".inferviz-compare-panel")
    panel.wait_for()
    checked = panel.locator("input[type=checkbox]:checked")
    assert checked.count() == 3  # greedy, top-p 0.9, beam 4 by default
    panel.get_by_role("button", name="Compare").click()
    page.wait_for_function("document.querySelector('.inferviz-compare-panel').innerText"
                           ".includes('compared 3 strategies')", timeout=LOAD_TIMEOUT_MS)
    text = panel.inner_text()
    for label in ("greedy", "top-p 0.9", "beam 4", "perplexity"):
        assert label in text, text
    assert "Error" not in text
    rows = panel.locator("table tr")
    assert rows.count() == 4  # the header and one row a strategy
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    panel.screenshot(path=str(SCREENSHOTS / "compare_tab.png"))
    assert not page.js_errors
