"""Small page helpers shared by the browser tests."""

from __future__ import annotations

from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "img"

NODES = ".inferviz-tree g.inferviz-node[data-node-id]"
LEAVES = ".inferviz-tree g.inferviz-node.leaf"

# Click a node by id and resolve with the milliseconds until the tree shows more nodes.
CLICK_AND_TIME_JS = """
async ([nodeId, timeoutMs]) => {
  const count = () => document.querySelectorAll(".inferviz-tree g.inferviz-node").length;
  const before = count();
  const el = document.querySelector(`.inferviz-tree g.inferviz-node[data-node-id="${nodeId}"]`);
  const t0 = performance.now();
  el.dispatchEvent(new MouseEvent("click", {bubbles: true}));
  return await new Promise((resolve, reject) => {
    const check = () => {
      if (count() > before) resolve(performance.now() - t0);
      else if (performance.now() - t0 > timeoutMs) reject(new Error("no new nodes"));
      else requestAnimationFrame(check);
    };
    check();
  });
}
"""


def node_count(page) -> int:
    return page.locator(NODES).count()


def first_leaf_id(page) -> int:
    return int(page.locator(LEAVES).last.get_attribute("data-node-id"))


def click_leaf_and_time(page, timeout_ms: int = 180_000) -> float:
    """Click the last leaf; milliseconds until its children are drawn."""
    return float(page.evaluate(CLICK_AND_TIME_JS, [first_leaf_id(page), timeout_ms]))
