// Draw a laid-out token tree as SVG: nodes coloured by processed probability (viridis), edges as
// wide as it and coloured by the strategy that made them; labels `token prob badges`.
import { cell } from "../shared/columns.js";
import { probColor } from "../shared/color.js";
import { esc } from "../shared/html_text.js";
import { LABEL_DX, NODE_RADIUS } from "./layout.js";

/** @param {number | null} p */
export const edgeWidth = (p) => 1 + 5 * Math.max(0, Math.min(1, p ?? 0));

/**
 * SVG path of the edge from `s` to `t`: it leaves `s` after its label and enters `t`'s node.
 * @param {import("./layout.js").PointNode} s
 * @param {import("./layout.js").PointNode} t
 */
function edgePath(s, t) {
  const x0 = s.depth === 0 ? s.y + NODE_RADIUS + 1 : s.y + LABEL_DX + s.label.width + 3;
  const x1 = t.y - NODE_RADIUS - 1;
  const mid = (x0 + x1) / 2;
  return `M${x0},${s.x}C${mid},${s.x} ${mid},${t.x} ${x1},${t.x}`;
}

/**
 * Replace the contents of `group` with the tree. The SVG is written as one markup string and
 * parsed once: for thousands of nodes that is several times faster than creating each element.
 * @param {SVGGElement} group
 * @param {import("./layout.js").Layout} layout
 * @param {import("../shared/columns.js").Table} table
 * @param {{selected: number | null, path: Set<number>, pending: Set<number>}} state
 */
export function renderTree(group, layout, table, { selected, path, pending }) {
  group.replaceChildren();
  if (!layout.root) return;
  const none = { kind: "", classes: [], badges: [], chosen: false };
  const overlayOf = (/** @type {import("./layout.js").PointNode} */ n) =>
    (n.data.fold || n.data.ghost || n.depth === 0 ? none : layout.overlay(n.data.row));
  const halos = [];
  const links = [];
  const nodes = [];
  for (const { source, target } of layout.root.links()) {
    const s = /** @type {import("./layout.js").PointNode} */ (source);
    const t = /** @type {import("./layout.js").PointNode} */ (target);
    const d = edgePath(s, t);
    if (t.data.fold) {
      links.push(`<path class="inferviz-link fold" data-target-id="${t.data.id}" d="${d}" stroke-width="1"/>`);
      continue;
    }
    if (t.data.ghost) {
      links.push(`<path class="inferviz-link cut" d="${d}" stroke-width="${edgeWidth(t.data.ghost.prob)}"/>`);
      continue;
    }
    const width = edgeWidth(cell(table, "prob", t.data.row));
    const onPath = path.has(t.data.id);
    if (onPath) halos.push(`<path class="inferviz-halo" d="${d}" stroke-width="${width + 7}"/>`);
    const classes = ["inferviz-link", onPath ? "on-path" : "", ...overlayOf(t).classes].join(" ").trim();
    links.push(`<path class="${classes}" data-target-id="${t.data.id}" d="${d}" stroke-width="${width}"/>`);
  }

  layout.root.each((node) => {
    const n = /** @type {import("./layout.js").PointNode} */ (node);
    const { id, row } = n.data;
    const isRoot = n.depth === 0;
    const at = `transform="translate(${n.y},${n.x})"`;
    if (n.data.fold) {
      nodes.push(`<g class="inferviz-fold" data-fold-parent="${n.data.fold.parentId}" ${at}>`
        + `<circle r="${NODE_RADIUS - 1}"/><text x="${LABEL_DX}" dy="0.32em" class="inferviz-label">${esc(n.label.token)}</text></g>`);
      return;
    }
    if (n.data.ghost) {
      const { parentId, index } = n.data.ghost;
      nodes.push(`<g class="inferviz-ghost" data-ghost-parent="${parentId}" data-ghost-index="${index}" ${at}>`
        + `<circle r="${NODE_RADIUS - 1}"/><text x="${LABEL_DX}" dy="0.32em" class="inferviz-label">`
        + `<tspan class="tok">${esc(n.label.token)}</tspan><tspan class="prob"> ${esc(n.label.prob)}</tspan></text></g>`);
      return;
    }
    const names = ["inferviz-node", isRoot ? "root" : "", ...overlayOf(n).classes];
    if (id === selected) names.push("selected");
    if (path.has(id)) names.push("on-path");
    if (pending.has(id)) names.push("pending");
    if (n.data.children.length === 0) names.push("leaf");
    const fill = isRoot ? "#3b3b4f" : probColor(cell(table, "prob", row) ?? 0);
    const { token, prob, badges, hidden } = n.label;
    let text = `<tspan class="tok">${esc(token)}</tspan>`;
    if (prob) text += `<tspan class="prob"> ${esc(prob)}</tspan>`;
    for (const badge of badges) text += `<tspan class="inferviz-badge"> ${esc(badge)}</tspan>`;
    if (hidden) text += `<tspan class="inferviz-collapsed"> ${esc(hidden)}</tspan>`;
    const labelAt = isRoot ? `x="${-LABEL_DX}" text-anchor="end"` : `x="${LABEL_DX}"`;
    nodes.push(`<g class="${names.filter(Boolean).join(" ")}" data-node-id="${id}" ${at}>`
      + `<circle r="${isRoot ? NODE_RADIUS + 1 : NODE_RADIUS}" fill="${fill}"/>`
      + `<text ${labelAt} dy="0.32em" class="inferviz-label">${text}</text></g>`);
  });
  const markup = `<g class="inferviz-halos">${halos.join("")}</g><g class="inferviz-links">${links.join("")}</g>`
    + `<g class="inferviz-nodes">${nodes.join("")}</g>`;
  group.innerHTML = markup;
}
