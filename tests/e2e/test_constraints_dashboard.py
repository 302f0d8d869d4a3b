"""Constraints in the real dashboard (Voila, the default model, chromium): the constraint row
keeps clicks and runs to a regex; the tree shows the model's likelier tokens that the
constraint cut, struck and greyed beside the legal ones, with legend entries, a cut-share
badge and readable labels; the text view shades by the constrained probability.
Screenshots: docs/img/constraint_tree.png, docs/img/constraint_text_view.png."""

from __future__ import annotations

import re

import pytest
import regex
from e2e_helpers import SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.model]

LOAD_TIMEOUT_MS = 600_000
PATTERN = " (Paris|Lyon|Marseille)[.!]"

GHOSTS_JS = """
() => [...document.querySelectorAll('.inferviz-tree g.inferviz-ghost')].map((g) => {
  const text = g.querySelector('text');
  const style = getComputedStyle(g.querySelector('.tok'));
  const r = text.getBoundingClientRect();
  return {text: text.textContent, deco: style.textDecorationLine, size: parseFloat(style.fontSize),
          height: r.height};
})
"""

LABEL_SIZES_JS = """
() => [...document.querySelectorAll('.inferviz-tree .inferviz-label')]
  .map((el) => el.getBoundingClientRect().height).filter((h) => h > 0)
"""


def test_a_regex_constraint_keeps_clicks_and_runs_and_shows_what_it_cut(page, voila_server):
    page.goto(voila_server, timeout=LOAD_TIMEOUT_MS)
    page.wait_for_function("document.querySelectorAll('.inferviz-tree g.inferviz-node').length > 1",
                           timeout=LOAD_TIMEOUT_MS)
    row = page.locator(".inferviz-constraint-row")
    row.locator("select").select_option("regex")
    box = row.locator("textarea")
    box.fill(PATTERN)
    box.blur()  # the box sends its value on blur
    page.get_by_role("button", name="New tree").click()
    page.wait_for_function("document.querySelectorAll('.inferviz-tree g.inferviz-node').length === 1",
                           timeout=LOAD_TIMEOUT_MS)
    chip = page.locator(".inferviz-constraint-chip")
    chip.wait_for(timeout=60_000)
    assert chip.inner_text() == f"clicks keep to: regex /{PATTERN}/"

    # A click expands the legal tokens only, with the model's likelier illegal ones struck.
    page.locator(".inferviz-tree g.inferviz-node[data-node-id='0']").dispatch_event("click")
    page.wait_for_function("document.querySelectorAll('.inferviz-tree g.inferviz-ghost').length >= 1",
                           timeout=LOAD_TIMEOUT_MS)
    legal = page.evaluate("[...document.querySelectorAll('.inferviz-tree g.inferviz-node:not(.root) .tok')]"
                          ".map((t) => t.textContent)")
    # each legal token can begin a match (the tree shows a space as '·')
    assert legal and all(regex.fullmatch(PATTERN, t.replace("·", " "), partial=True)
                         for t in legal), legal
    ghosts = page.evaluate(GHOSTS_JS)
    assert ghosts and all(g["deco"] == "line-through" for g in ghosts), ghosts
    badges = page.evaluate("[...document.querySelectorAll('.inferviz-node.constrained .inferviz-badge')]"
                           ".map((b) => b.textContent.trim())")
    assert any(re.fullmatch(r"cut \d+%", b) for b in badges), badges
    for kind in ("constrained", "cut"):
        assert page.locator(f".inferviz-legend-item[data-kind='{kind}']").is_visible()

    # Hover a cut token: its card says what the constraint removed, inside the viewport.
    page.locator(".inferviz-tree g.inferviz-ghost").first.hover()
    tip = page.locator(".inferviz-tooltip").filter(has_text="cut by the constraint")
    tip.wait_for(timeout=10_000)
    card = tip.bounding_box()
    view = page.viewport_size
    assert card["x"] >= 0 and card["y"] >= 0 and card["width"] > 100 and card["height"] > 20
    assert card["x"] + card["width"] <= view["width"] and card["y"] + card["height"] <= view["height"]
    page.mouse.move(1, 1)

    # Run greedy under the constraint: its text matches, the run says why it ended.
    page.get_by_role("button", name="Run").click()
    page.wait_for_function("document.body.innerText.includes('done (eos)')"
                           " || document.body.innerText.includes('ended (')",
                           timeout=LOAD_TIMEOUT_MS)
    status = page.locator(".inferviz-explorer").inner_text()
    match = re.search(r"done \(eos\): (.+)", status)
    # (innerText drops the leading space of the text)
    assert match and re.fullmatch(PATTERN.strip(), match.group(1).strip()), status
    sizes = page.evaluate(LABEL_SIZES_JS)
    assert sizes and min(sizes) >= 11, sizes
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator(".inferviz-tree").screenshot(path=str(SCREENSHOTS / "constraint_tree.png"))

    # The Path tab's text: shade by the probability under the constraint.
    shade = page.locator(".inferviz-text-shade select")
    shade.wait_for(timeout=60_000)
    shade.select_option("constrained")
    page.wait_for_function("document.querySelector('.inferviz-text-legend-label')"
                           ".textContent.includes('under the constraint')")
    page.locator(".inferviz-text").first.screenshot(
        path=str(SCREENSHOTS / "constraint_text_view.png"))
    assert not page.js_errors
