"""The comparison page (table, shaded texts, tree) and the shaded text view, opened in chromium:
every shaded token's text is readable on its background (WCAG contrast ratio), nothing is cut
off, and the screenshots for docs/ are taken here."""

from __future__ import annotations

import pytest
from e2e_helpers import SCREENSHOTS

from inferviz.widgets.export.compare_view import comparison_html

pytestmark = [pytest.mark.browser, pytest.mark.model]

# Relative luminance and contrast ratio (WCAG 2), computed in the page from computed styles.
CONTRASTS = """() => {
  const lum = (css) => {
    const [r, g, b] = css.match(/\\d+/g).slice(0, 3).map(Number).map((c) => {
      c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  return [...document.querySelectorAll('.inferviz-text-view span[style*=background]')]
    .map((el) => {
      const s = getComputedStyle(el);
      const [a, b] = [lum(s.color), lum(s.backgroundColor)].sort((x, y) => y - x);
      return {text: el.textContent, ratio: (a + 0.05) / (b + 0.05)};
    });
}"""


@pytest.fixture(scope="module")
def comparison(default_session):
    return default_session.compare(
        "The capital of France is",
        ["greedy", {"strategy": "beam", "num_beams": 4},
         {"strategy": "top_p", "top_p": 0.9, "seed": 0}], max_new_tokens=16)


def test_shaded_tokens_are_readable_on_their_colour(page, tmp_path, comparison):
    path = tmp_path / "compare.html"
    path.write_text(f"<!doctype html><meta charset='utf-8'><body style='margin:12px;"
                    f"max-width:900px'>{comparison_html(comparison, tree=False)}</body>",
                    encoding="utf-8")
    page.set_viewport_size({"width": 940, "height": 600})
    page.goto(path.as_uri())
    contrasts = page.evaluate(CONTRASTS)
    assert len(contrasts) >= 3 * 10  # three strategies' texts, every token shaded
    worst = min(contrasts, key=lambda c: c["ratio"])
    assert worst["ratio"] >= 4.0, f"token {worst['text']!r} is hard to read: {worst}"
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 940, f"the page is cut off on the right ({width}px)"
    page.locator(".inferviz-compare").screenshot(path=str(SCREENSHOTS / "compare_table.png"))
    assert not page.js_errors


def test_text_view_page_screenshot(page, tmp_path, comparison):
    view = comparison.text_view(comparison.labels[-1])
    path = view.to_html(tmp_path / "text.html")
    page.set_viewport_size({"width": 760, "height": 300})
    page.goto(path.as_uri())
    contrasts = page.evaluate(CONTRASTS)
    assert contrasts and min(c["ratio"] for c in contrasts) >= 4.0
    page.locator("body").screenshot(path=str(SCREENSHOTS / "text_view.png"))
    assert not page.js_errors
