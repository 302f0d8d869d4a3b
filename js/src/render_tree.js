// Draw a laid-out token tree as SVG: nodes coloured by processed probability (viridis), edges as
// wide as it and coloured by the strategy that made them; labels `token prob badges`.
import { cell } from "./columns.js";
import { probColor } from "./color.js";
import { LABEL_DX, NODE_RADIUS } from "./layout.js";
import { nodeOverlay } from "./overlays.js";

const SVG = "http://www.w3.org/2000/svg";

/**
 * @param {string} tag
 * @param {Record<string, string | number>} attrs
 * @param {Element | DocumentFragment} [parent]
 */
function svg(tag, attrs, parent) {
  const el = document.createElementNS(SVG, tag);
  for (const k in attrs) el.setAttribute(k, String(attrs[k]));
  if (parent) parent.appendChild(el);
  return el;
}

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
 * Replace the contents of `group` with the tree.
 * @param {SVGGElement} group
 * @param {import("./layout.js").Layout} layout
 * @param {import("./columns.js").Table} table
 * @param {{selected: number | null, path: Set<number>, pending: Set<number>}} state
 */
export function renderTree(group, layout, table, { selected, path, pending }) {
  group.replaceChildren();
  if (!layout.root) return;
  const fragment = document.createDocumentFragment();
  const halos = svg("g", { class: "inferviz-halos" }, fragment);
  const links = svg("g", { class: "inferviz-links" }, fragment);
  const nodes = svg("g", { class: "inferviz-nodes" }, fragment);
  /** @type {Map<number, import("./overlays.js").Overlay>} */
  const overlays = new Map();
  const overlayOf = (/** @type {import("./layout.js").PointNode} */ n) => {
    let o = overlays.get(n.data.id);
    if (!o) {
      o = n.data.fold || n.depth === 0 ? { kind: "", classes: [], badges: [], chosen: false }
        : nodeOverlay(table, n.data.row);
      overlays.set(n.data.id, o);
    }
    return o;
  };

  for (const { source, target } of layout.root.links()) {
    const s = /** @type {import("./layout.js").PointNode} */ (source);
    const t = /** @type {import("./layout.js").PointNode} */ (target);
    const d = edgePath(s, t);
    if (t.data.fold) {
      svg("path", { class: "inferviz-link fold", "data-target-id": t.data.id, d, "stroke-width": 1 }, links);
      continue;
    }
    const width = edgeWidth(cell(table, "prob", t.data.row));
    const onPath = path.has(t.data.id);
    if (onPath) svg("path", { class: "inferviz-halo", d, "stroke-width": width + 7 }, halos);
    svg("path", {
      class: ["inferviz-link", onPath ? "on-path" : "", ...overlayOf(t).classes].join(" ").trim(),
      "data-target-id": t.data.id, d, "stroke-width": width,
    }, links);
  }

  layout.root.each((node) => {
    const n = /** @type {import("./layout.js").PointNode} */ (node);
    const { id, row } = n.data;
    const isRoot = n.depth === 0;
    if (n.data.fold) {
      const g = svg("g", { class: "inferviz-fold", "data-fold-parent": n.data.fold.parentId,
        transform: `translate(${n.y},${n.x})` }, nodes);
      svg("circle", { r: NODE_RADIUS - 1 }, g);
      const label = svg("text", { x: LABEL_DX, dy: "0.32em", class: "inferviz-label" }, g);
      label.textContent = n.label.token;
      return;
    }
    const { classes } = overlayOf(n);
    const names = ["inferviz-node", isRoot ? "root" : "", ...classes];
    if (id === selected) names.push("selected");
    if (path.has(id)) names.push("on-path");
    if (pending.has(id)) names.push("pending");
    if (n.data.children.length === 0) names.push("leaf");
    const g = svg("g", {
      class: names.filter(Boolean).join(" "),
      "data-node-id": id,
      transform: `translate(${n.y},${n.x})`,
    }, nodes);
    const prob = isRoot ? null : cell(table, "prob", row);
    svg("circle", { r: isRoot ? NODE_RADIUS + 1 : NODE_RADIUS, fill: isRoot ? "#3b3b4f" : probColor(prob ?? 0) }, g);
    const label = svg("text", isRoot
      ? { x: -LABEL_DX, dy: "0.32em", class: "inferviz-label", "text-anchor": "end" }
      : { x: LABEL_DX, dy: "0.32em", class: "inferviz-label" }, g);
    const { token, prob: probText, badges, hidden } = n.label;
    const tok = svg("tspan", { class: "tok" }, label);
    tok.textContent = token;
    if (probText) svg("tspan", { class: "prob" }, label).textContent = ` ${probText}`;
    for (const badge of badges) svg("tspan", { class: "inferviz-badge" }, label).textContent = ` ${badge}`;
    if (hidden) svg("tspan", { class: "inferviz-collapsed" }, label).textContent = ` ${hidden}`;
  });
  group.appendChild(fragment);
}
