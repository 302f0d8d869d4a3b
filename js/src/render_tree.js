// Draw a laid-out token tree as SVG: nodes coloured by processed prob, edges as wide as it.
import { cell } from "./columns.js";
import { probColor } from "./color.js";
import { displayToken, truncate } from "./format.js";
import { nodeOverlay } from "./overlays.js";

const SVG = "http://www.w3.org/2000/svg";
const LABEL_CHARS = 14;
const ROOT_LABEL_CHARS = 28;

/**
 * @param {string} tag
 * @param {Record<string, string | number>} attrs
 * @param {Element} [parent]
 */
function svg(tag, attrs, parent) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (parent) parent.appendChild(el);
  return el;
}

/** @param {number | null} p */
export const edgeWidth = (p) => 1 + 6 * Math.max(0, Math.min(1, p ?? 0));

/**
 * Replace the contents of `group` with the tree.
 * @param {SVGGElement} group
 * @param {import("./layout.js").Layout} layout
 * @param {import("./columns.js").Table} table
 * @param {{selected: number | null, path: Set<number>, pending: Set<number>}} state
 */
export function renderTree(group, layout, table, { selected, path, pending }) {
  group.replaceChildren();
  if (!layout.root) return;
  const links = svg("g", { class: "inferviz-links" }, group);
  const nodes = svg("g", { class: "inferviz-nodes" }, group);

  for (const link of layout.root.links()) {
    const { source: s, target: t } = link;
    const row = t.data.row;
    const midY = (s.y + t.y) / 2;
    const { classes } = nodeOverlay(table, row);
    const onPath = path.has(t.data.id);
    svg("path", {
      class: ["inferviz-link", onPath ? "on-path" : "", ...classes].join(" ").trim(),
      "data-target-id": t.data.id,
      d: `M${s.y},${s.x}C${midY},${s.x} ${midY},${t.x} ${t.y},${t.x}`,
      "stroke-width": edgeWidth(cell(table, "prob", row)),
    }, links);
  }

  layout.root.each((node) => {
    const { id, row } = node.data;
    const isRoot = node.parent === null;
    const { classes, badges } = isRoot ? { classes: [], badges: [] } : nodeOverlay(table, row);
    const names = ["inferviz-node", isRoot ? "root" : "", ...classes];
    if (id === selected) names.push("selected");
    if (path.has(id)) names.push("on-path");
    if (pending.has(id)) names.push("pending");
    if (node.data.children.length === 0) names.push("leaf");
    const g = svg("g", {
      class: names.filter(Boolean).join(" "),
      "data-node-id": id,
      transform: `translate(${node.y},${node.x})`,
    }, nodes);
    const prob = isRoot ? 1 : cell(table, "prob", row);
    svg("circle", { r: isRoot ? 7 : 6, fill: probColor(prob ?? 0) }, g);
    const token = cell(table, "token", row) ?? "";
    const label = svg("text", { x: 10, dy: "0.32em", class: "inferviz-label" }, g);
    label.textContent = truncate(displayToken(token), isRoot ? ROOT_LABEL_CHARS : LABEL_CHARS);
    let x = 12 + 7.2 * Array.from(label.textContent).length;
    for (const badge of badges) {
      const b = svg("text", { x, dy: "0.32em", class: "inferviz-badge" }, g);
      b.textContent = badge;
      x += 7 * badge.length + 6;
    }
    const hiddenCount = layout.hidden.get(id);
    if (hiddenCount) {
      const marker = svg("text", { x: -10, dy: "-0.7em", class: "inferviz-collapsed", "text-anchor": "end" }, g);
      marker.textContent = `+${hiddenCount}`;
    }
  });
}
