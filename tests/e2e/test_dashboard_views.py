"""What a newcomer reads on the dashboard (issue 16), checked in chromium on the Voila page with
the default model: contrastive labels say what their numbers are, an SMC potential chosen
without code makes the ESS chart move and its badges stay readable, the path chart names its
tokens, charts never throw in the page, the token table is a table, branch colours match their
legend, and the lens's hover card leaves the pinned panel visible.
Screenshots: docs/img/dashboard_contrastive.png, dashboard_smc_potential.png,
dashboard_token_table.png (and _narrow, a 900 px window), tree_part_out_of_view.png,
lens_pinned_hover.png."""

from __future__ import annotations

import time

import pytest
from e2e_helpers import SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.model]

LOAD_TIMEOUT_MS = 600_000  # kernel start + model load + first expansion on a busy CPU

# Rendered size of badge text (font size times the view's zoom), in screen pixels.
BADGE_SIZES_JS = """
() => [...document.querySelectorAll('.inferviz-tree .inferviz-badge')].map((el) => {
  const scale = el.closest('svg').querySelector('.inferviz-viewport').getScreenCTM().a;
  return parseFloat(getComputedStyle(el).fontSize) * scale;
})
"""


def open_dashboard(page, voila_server):
    console = []
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    page.goto(voila_server, timeout=LOAD_TIMEOUT_MS)
    page.wait_for_function("document.querySelectorAll('.inferviz-tree g.inferviz-node').length > 1",
                           timeout=LOAD_TIMEOUT_MS)
    return console


def run(page, strategy: str) -> None:
    page.locator(".inferviz-explorer select").first.select_option(strategy)
    page.locator("button.inferviz-run").click()
    page.wait_for_function(
        f"document.querySelector('.inferviz-explorer').innerText.includes('{strategy} done')",
        timeout=LOAD_TIMEOUT_MS)
    page.wait_for_function("!document.querySelector('button.inferviz-run').disabled")


def test_contrastive_nodes_say_what_their_numbers_are(page, voila_server):
    open_dashboard(page, voila_server)
    run(page, "contrastive")
    chosen = page.locator(".inferviz-tree g.inferviz-node.cd-chosen .inferviz-label").first
    text = chosen.text_content()
    assert " pick " in text and " cd +" in text, text
    legend = page.locator(".inferviz-legend [data-kind=contrastive]").inner_text()
    assert "pick %: softmax of the cd scores" in legend and "log p_expert − log p_amateur" in legend
    chosen.hover()
    card = page.locator(".inferviz-floating.inferviz-tooltip")
    card.wait_for(state="visible")
    assert "pick prob (softmax of cd scores)" in card.inner_text()
    assert "nats (log p_expert − log p_amateur)" in card.inner_text()
    page.mouse.move(5, 5)
    page.locator(".inferviz-tree").screenshot(path=str(SCREENSHOTS / "dashboard_contrastive.png"))


def test_an_smc_potential_without_code_moves_the_ess_chart(page, voila_server):
    console = open_dashboard(page, voila_server)
    page.locator(".lm-TabBar-tab", has_text="Charts").click()
    page.wait_for_selector(".js-plotly-plot .main-svg", timeout=LOAD_TIMEOUT_MS)
    page.locator(".inferviz-explorer select").first.select_option("smc")
    row = page.locator(".inferviz-potential-row")
    row.locator("select").select_option("shorter text")
    strength = row.locator("input").nth(1)
    strength.fill("5")
    strength.press("Enter")
    time.sleep(0.5)  # the box's value reaches the kernel
    run(page, "smc")
    assert "shorter_text(strength=5.0)" not in page.inner_text("body")  # the status stays short
    ess_chart = page.locator(".js-plotly-plot", has_text="SMC effective sample size")
    ess_chart.wait_for(state="visible")
    ess = page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')]
        .find((gd) => (gd.layout.title.text || '').includes('effective sample size'))
        .data[0].y""")
    assert min(ess) < 0.99 * max(ess), ess  # weights differ: the chart is not flat
    sizes = page.evaluate(BADGE_SIZES_JS)
    assert sizes and min(sizes) >= 11, sizes  # ×count / w weight badges readable
    # The path chart names tokens on its x axis, not positions.
    ticks = page.locator(".js-plotly-plot", has_text="Probability and entropy")\
        .locator(".xtick text").all_text_contents()
    assert ticks and not all(t.strip().isdigit() for t in ticks), ticks
    ess_chart.scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "dashboard_smc_potential.png"), full_page=True)
    # A new tree hides the ESS chart; the next run shows it again: nothing throws in the page.
    page.get_by_role("button", name="New tree").click()
    page.wait_for_function("document.querySelectorAll('.inferviz-tree g.inferviz-node').length == 1")
    run(page, "smc")
    time.sleep(1)
    assert not [c for c in console if "gd.data" in c or "Error setting state" in c], console


def test_token_table_and_edge_colours_read_as_their_legend_says(page, voila_server):
    open_dashboard(page, voila_server)
    run(page, "greedy")
    body = page.inner_text("body")
    assert "s.expand" not in body and "s.generate" not in body  # a page without code
    # The tree's own settings row says what it shapes (the explorer's boxes are for Run).
    assert page.locator(".inferviz-tree .inferviz-controls").inner_text().startswith(
        "clicks on a node add:")
    headers = page.locator(".inferviz-token-table th").all_inner_texts()
    assert headers == ["pos", "token", "probability", "rank (0 = top)", "entropy (nats)",
                       "model's top 5"]
    first_row = page.locator(".inferviz-token-table tbody tr").first.inner_text()
    assert "%" in first_row and "'" not in first_row  # percentages, no Python repr quotes
    colours = page.evaluate("""() => ({
      edge: getComputedStyle(document.querySelector('.inferviz-tree path.inferviz-link.by-greedy')).stroke,
      legend: getComputedStyle(document.querySelector('.inferviz-legend [data-kind=greedy] path')).stroke,
      halo: getComputedStyle(document.querySelector('.inferviz-tree path.inferviz-halo')).stroke})""")
    assert colours["edge"] == colours["legend"] == "rgb(214, 39, 40)"
    assert colours["halo"] != colours["edge"]
    page.locator(".lm-TabBar-tab", has_text="Path").click()
    table = page.locator(".inferviz-token-table")
    table.scroll_into_view_if_needed()
    page.locator(".inferviz-explorer .lm-TabPanel, .inferviz-explorer .widget-tab-contents").first\
        .screenshot(path=str(SCREENSHOTS / "dashboard_token_table.png"))
    # On a narrow window the table wraps its top-5 column instead of running off the tab.
    page.set_viewport_size({"width": 900, "height": 1000})
    page.wait_for_timeout(500)
    edges = page.evaluate("""() => {
      const table = document.querySelector('.inferviz-token-table');
      const panel = table.closest('.lm-TabPanel, .widget-tab-contents');
      const note = document.querySelector('.inferviz-token-table-note');
      return {table: table.getBoundingClientRect().right, panel: panel.getBoundingClientRect().right,
              scroll: panel.scrollWidth - panel.clientWidth, window: window.innerWidth,
              noteLine: parseFloat(getComputedStyle(note).lineHeight),
              noteFont: parseFloat(getComputedStyle(note).fontSize)};
    }""")
    assert edges["table"] <= edges["panel"] + 1 and edges["scroll"] <= 1, edges
    assert edges["panel"] <= edges["window"], edges
    assert edges["noteFont"] >= 11 and edges["noteLine"] <= 2 * edges["noteFont"], edges
    page.locator(".inferviz-explorer .lm-TabPanel, .inferviz-explorer .widget-tab-contents").first\
        .screenshot(path=str(SCREENSHOTS / "dashboard_token_table_narrow.png"))
    # The greedy chain no longer fits the narrower tree view: the view says so, and its button
    # fits the whole tree (the prompt's node back in view), after which the notice goes.
    notice = page.locator(".inferviz-tree .inferviz-offview")
    notice.wait_for(state="visible")
    assert "out of view" in notice.inner_text()
    page.locator(".inferviz-tree").screenshot(path=str(SCREENSHOTS / "tree_part_out_of_view.png"))
    notice.click()
    notice.wait_for(state="hidden")
    root_in_view = page.evaluate("""() => {
      const svg = document.querySelector('.inferviz-tree svg.inferviz-svg').getBoundingClientRect();
      const labels = [...document.querySelectorAll('.inferviz-tree text.inferviz-label')]
        .map((el) => el.getBoundingClientRect());
      const left = Math.min(...labels.map((r) => r.left)), right = Math.max(...labels.map((r) => r.right));
      return left >= svg.left - 1 && right <= svg.right + 1;
    }""")
    assert root_in_view


def test_lens_hover_card_leaves_the_pinned_panel_visible(page, voila_server):
    open_dashboard(page, voila_server)
    page.locator(".lm-TabBar-tab", has_text="Logit lens").click()
    page.wait_for_selector(".inferviz-lens-cell", timeout=LOAD_TIMEOUT_MS)
    cells = page.locator(".inferviz-lens-cell")
    cells.last.click()  # pin the rightmost cell of the lowest layer
    page.wait_for_selector(".inferviz-lens-panel table")
    assert [t.strip() for t in page.locator(".inferviz-lens-panel th").all_inner_texts()] == [
        "top tokens", "", "prob", "token id"]
    # Hover the top-right cell: the one nearest the panel.
    right_top = page.locator(".inferviz-lens-cell").nth(
        page.evaluate("document.querySelector('.inferviz-lens-grid').style.gridTemplateColumns"
                      ".match(/repeat\\((\\d+)/)[1] - 1"))
    right_top.hover()
    card = page.locator(".inferviz-lens-tip")
    card.wait_for(state="visible")
    a = card.bounding_box()
    b = page.locator(".inferviz-lens-panel").bounding_box()
    overlap_w = min(a["x"] + a["width"], b["x"] + b["width"]) - max(a["x"], b["x"])
    overlap_h = min(a["y"] + a["height"], b["y"] + b["height"]) - max(a["y"], b["y"])
    assert overlap_w <= 0 or overlap_h <= 0, (a, b)
    labels = page.evaluate("[...document.querySelectorAll('.inferviz-lens-cell')]"
                           ".map((c) => c.getAttribute('aria-label'))")
    assert all(label and label.startswith("layer ") for label in labels)
    page.locator(".inferviz-lens").screenshot(path=str(SCREENSHOTS / "lens_pinned_hover.png"))
