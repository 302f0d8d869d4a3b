"""The explorer's Why tab in the real dashboard (Voila, the default model, chromium): a
selected node is attributed (the context shaded, with its legend, no two tokens overlapping),
and a steered branch grown from it is drawn dashed with its legend entry and KL badges.
Screenshots: docs/img/why_attribution.png, docs/img/why_steered_branch.png."""

from __future__ import annotations

import pytest
from e2e_helpers import NODES, SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.model]

LOAD_TIMEOUT_MS = 600_000  # kernel start + model load + first expansion on a busy CPU

OVERLAPS_JS = """
() => {
  const boxes = [...document.querySelectorAll('.inferviz-attribution-token')]
    .map((el) => el.getBoundingClientRect());
  let overlaps = 0;
  for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
    const a = boxes[i], b = boxes[j];
    const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
    const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
    if (w > 1 && h > 1) overlaps++;
  }
  const small = boxes.filter((r) => r.height < 12).length;
  return {count: boxes.length, overlaps, small};
}
"""


def test_why_tab_attributes_a_node_and_grows_a_steered_branch(page, voila_server):
    page.goto(voila_server, timeout=LOAD_TIMEOUT_MS)
    page.wait_for_function("document.querySelectorAll('.inferviz-tree g.inferviz-node').length > 1",
                           timeout=LOAD_TIMEOUT_MS)
    # Select the most likely first token (a click selects and expands it).
    first = page.locator(".inferviz-tree g.inferviz-node[data-node-id='1']")
    first.dispatch_event("click")
    page.wait_for_function(f"document.querySelectorAll({NODES!r}).length >= 11",
                           timeout=LOAD_TIMEOUT_MS)

    page.locator(".lm-TabBar-tab", has_text="Why").click()
    page.get_by_role("button", name="Attribute").click()
    page.wait_for_selector(".inferviz-attribution", timeout=LOAD_TIMEOUT_MS)
    view = page.locator(".inferviz-attribution")
    assert page.locator(".inferviz-attribution-legend").is_visible()
    tokens = page.evaluate(OVERLAPS_JS)
    assert tokens["count"] == 5  # "The capital of France is": the context of node 1
    assert tokens["overlaps"] == 0 and tokens["small"] == 0, tokens
    assert page.locator(".inferviz-attribution-target").is_visible()
    assert "attributed in" in page.locator(".inferviz-why").inner_text()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    view.scroll_into_view_if_needed()
    page.locator(".inferviz-why").screenshot(path=str(SCREENSHOTS / "why_attribution.png"))

    # Grow a steered branch (the defaults: steer with 'Love' - 'Hate' at the middle layer).
    page.get_by_role("button", name="Grow branch").click()
    page.wait_for_function(
        "document.querySelector('.inferviz-why').innerText.includes('KL from the plain model')",
        timeout=LOAD_TIMEOUT_MS)
    page.wait_for_function(
        "document.querySelectorAll('.inferviz-tree g.inferviz-node.intervened').length >= 8")
    assert page.locator(".inferviz-legend-item[data-kind='intervened']").is_visible()
    assert page.locator(".inferviz-link.intervened").count() >= 8
    badges = page.evaluate("[...document.querySelectorAll("
                           "'.inferviz-node.intervened .inferviz-badge')].map(e => e.textContent)")
    assert badges and all(b.strip().startswith("KL ") for b in badges), badges
    assert "error" not in page.locator(".inferviz-why").inner_text().lower()
    page.locator(".inferviz-tree").screenshot(path=str(SCREENSHOTS / "why_steered_branch.png"))
    assert not page.js_errors


TIP_BOX_JS = """
(selector) => {
  const tip = [...document.querySelectorAll(selector)].find((el) => !el.hidden);
  if (!tip) return null;
  const r = tip.getBoundingClientRect();
  return {left: r.left, top: r.top, right: r.right, bottom: r.bottom, width: r.width,
          height: r.height, inBody: tip.parentElement === document.body,
          vw: window.innerWidth, vh: window.innerHeight, text: tip.textContent};
}
"""


def _fully_visible(box):
    assert box is not None, "no hover card shown"
    assert box["inBody"]  # floats above every overflow:hidden box of the page
    assert box["width"] > 80 and box["height"] > 30, box
    assert 0 <= box["left"] and box["right"] <= box["vw"], box
    assert 0 <= box["top"] and box["bottom"] <= box["vh"], box


def test_hover_cards_are_fully_visible_at_the_canvas_edge_and_in_the_text_view(page,
                                                                               voila_server):
    """Issue 16: the tree's card was clipped at the canvas bottom, the text view's to 1 px.
    And the page asks nothing of any server but the dashboard's own (no CDN), and logs no
    error."""
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(
        ("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")) else None)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.set_viewport_size({"width": 1200, "height": 700})
    page.goto(voila_server, timeout=LOAD_TIMEOUT_MS)
    page.wait_for_function("document.querySelectorAll('.inferviz-tree g.inferviz-node').length > 1",
                           timeout=LOAD_TIMEOUT_MS)
    nodes = page.locator(".inferviz-tree g.inferviz-node:not(.root) circle")
    lowest = max(range(nodes.count()), key=lambda i: nodes.nth(i).bounding_box()["y"])
    nodes.nth(lowest).hover()
    box = page.evaluate(TIP_BOX_JS, ".inferviz-tooltip")
    _fully_visible(box)
    assert "raw_logprob" in box["text"]
    page.locator(".inferviz-tree g.inferviz-node[data-node-id='1']").dispatch_event("click")
    page.wait_for_function("[...document.querySelectorAll('.inferviz-tooltip')]"
                           ".every((el) => el.hidden)")  # a click hides the card
    token = page.locator(".inferviz-text-token").last
    token.scroll_into_view_if_needed()
    token.hover()
    box = page.evaluate(TIP_BOX_JS, ".inferviz-text-tip")
    _fully_visible(box)
    page.screenshot(path=str(SCREENSHOTS / "text_view_hover.png"))
    assert not page.js_errors
    assert outside == [], outside
    assert errors == [], errors
