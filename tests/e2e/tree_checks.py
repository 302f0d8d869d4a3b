"""What a reader would check on a drawn tree, measured in the browser: label boxes (SVG text
bounding boxes in screen space) that overlap, and nodes or labels outside the visible view."""

from __future__ import annotations

# Label boxes are compared with a sweep over x; a box must overlap another by more than half a
# pixel both ways to count (anti-aliasing of touching boxes is not an overlap).
TREE_CHECKS_JS = """
() => {
  const tree = document.querySelector(".inferviz-tree");
  const svg = tree.querySelector("svg.inferviz-svg");
  const view = svg.getBoundingClientRect();
  const boxes = [...tree.querySelectorAll("svg .inferviz-label")].map((text) => {
    const r = text.getBoundingClientRect();
    const owner = text.closest("[data-node-id], [data-fold-parent]");
    return {id: owner.getAttribute("data-node-id") ?? `fold-${owner.getAttribute("data-fold-parent")}`,
            x0: r.left, x1: r.right, y0: r.top, y1: r.bottom};
  });
  boxes.sort((a, b) => a.x0 - b.x0);
  const overlaps = [];
  let active = [];
  for (const box of boxes) {
    active = active.filter((a) => a.x1 - 0.5 > box.x0);
    for (const a of active) {
      if (a.y0 + 0.5 < box.y1 && box.y0 + 0.5 < a.y1) overlaps.push([a.id, box.id]);
    }
    active.push(box);
  }
  const drawn = [...tree.querySelectorAll("svg g.inferviz-node circle, svg .inferviz-label")];
  const outside = drawn.filter((el) => {
    const r = el.getBoundingClientRect();
    return r.left < view.left - 0.5 || r.right > view.right + 0.5
      || r.top < view.top - 0.5 || r.bottom > view.bottom + 0.5;
  }).length;
  return {labels: boxes.length, overlaps: overlaps.slice(0, 5), overlapCount: overlaps.length,
          outside, legend: Boolean(tree.querySelector(".inferviz-legend .inferviz-legend-bar")),
          transform: tree.querySelector(".inferviz-viewport").getAttribute("transform")};
}
"""


def check_tree(page) -> dict:
    """Overlaps, out-of-view count and legend of the first tree on the page."""
    return page.evaluate(TREE_CHECKS_JS)
