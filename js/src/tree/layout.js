// Tree structure and left-to-right layout of a decoded node table (d3-hierarchy), spaced by
// measured label widths so that no two labels overlap; low-probability leaves fold into one
// "+N more" node.
import { hierarchy, tree as d3tree } from "d3-hierarchy";
import { cell } from "../shared/columns.js";
import { displayToken, truncate, truncateStart } from "../shared/format.js";
import { estimateWidth, FONT_SIZE } from "./measure.js";
import { cutAlternatives, nodeOverlay } from "./overlays.js";

/**
 * @typedef {{id: number, row: number, parentId: number | null, children: TreeDatum[],
 *            fold?: {parentId: number, ids: number[]},
 *            ghost?: {parentId: number, index: number, tokenId: number, token: string, prob: number}}} TreeDatum
 * @typedef {{token: string, prob: string, badges: string[], hidden: string, text: string,
 *            width: number}} Label
 * @typedef {import("d3-hierarchy").HierarchyPointNode<TreeDatum> & {label: Label}} PointNode
 * @typedef {{x0: number, x1: number, y0: number, y1: number}} Box  (x horizontal, y vertical)
 * @typedef {{root: PointNode | null, byId: Map<number, PointNode>, data: Map<number, TreeDatum>,
 *            hidden: Map<number, number>, bounds: Box,
 *            overlay: (row: number) => import("./overlays.js").Overlay}} Layout
 */

export const ROW_HEIGHT = 22; // px between neighbouring nodes of one depth
export const LABEL_HEIGHT = Math.ceil(FONT_SIZE * 1.3); // a label's box height
export const LABEL_DX = 10; // px from a node's centre to its label
export const NODE_RADIUS = 6;
export const COLUMN_GAP = 40; // px between the longest label of a depth and the next depth
export const MIN_COLUMN_STEP = 64;
export const TOKEN_CHARS = 16;
export const ROOT_CHARS = 40;
// Folding: leaves below FOLD_BELOW processed probability (or past MAX_SHOWN siblings) that no
// strategy chose and that are not on the selected path fold into one node, when at least
// FOLD_MIN of them would; the first MIN_SHOWN children by rank always show.
export const FOLD_BELOW = 0.02;
export const FOLD_MIN = 2;
export const MIN_SHOWN = 5;
export const MAX_SHOWN = 12;

/** Id of the fold node under `parentId` (negative: never a real node id). */
export const foldId = (/** @type {number} */ parentId) => -(parentId + 1);
/** Id of the `index`-th cut (illegal) token drawn under `parentId` (negative, not whole). */
export const ghostId = (/** @type {number} */ parentId, /** @type {number} */ index) =>
  -(parentId + 1) - (index + 1) / 8;

/**
 * The tokens a constraint cut at `parent` as ghost children (drawn struck, never expanded),
 * placed before its first constrained child: they outranked every legal token.
 * @param {import("../shared/columns.js").Table} table
 * @param {TreeDatum} parent
 * @param {TreeDatum[]} shown
 * @returns {TreeDatum[]}
 */
export function withGhosts(table, parent, shown) {
  const rows = parent.children.filter((c) => typeof cell(table, "constraint", c.row) === "string").map((c) => c.row);
  const cut = rows.length ? cutAlternatives(table, rows) : [];
  if (!cut.length) return shown;
  const ghosts = cut.map((c, index) => ({ id: ghostId(parent.id, index), row: -1, parentId: parent.id,
    children: [], ghost: { parentId: parent.id, index, ...c } }));
  const at = shown.findIndex((c) => !c.fold && !c.ghost && rows.includes(c.row));
  return at < 0 ? [...shown, ...ghosts] : [...shown.slice(0, at), ...ghosts, ...shown.slice(at)];
}

/**
 * Parent/child structure of the table. Siblings are ordered by raw rank, then node id.
 * @param {import("../shared/columns.js").Table} table
 * @returns {{rootId: number | null, data: Map<number, TreeDatum>}}
 */
export function buildStructure(table) {
  /** @type {Map<number, TreeDatum>} */
  const data = new Map();
  for (let i = 0; i < table.n; i++) {
    const id = cell(table, "node_id", i);
    data.set(id, { id, row: i, parentId: cell(table, "parent_id", i), children: [] });
  }
  let rootId = null;
  for (const datum of data.values()) {
    if (datum.parentId === null) rootId = datum.id;
    else data.get(datum.parentId)?.children.push(datum);
  }
  const rank = (/** @type {TreeDatum} */ d) => cell(table, "rank", d.row) ?? Infinity;
  for (const datum of data.values()) {
    if (datum.children.length > 1) datum.children.sort((a, b) => rank(a) - rank(b) || a.id - b.id);
  }
  return { rootId, data };
}

/**
 * Probability as it is printed on a node: `77%`, `3.1%`, `0.4%`, `<0.1%`, `0%`.
 * @param {number | null | undefined} p
 */
export function probLabel(p) {
  if (p === null || p === undefined || Number.isNaN(p)) return "";
  if (p <= 0) return "0%";
  if (p >= 0.095) return `${Math.round(p * 100)}%`;
  if (p >= 0.001) return `${(p * 100).toFixed(1)}%`;
  return "<0.1%";
}

/**
 * The prompt as the root shows it: spaces stay spaces (it is text, not one token), line breaks
 * and other control characters are made visible.
 * @param {string} text
 */
export function promptText(text) {
  return text.split(" ").map((part) => (part ? displayToken(part) : "")).join(" ");
}

/**
 * The text drawn next to a node, in parts, and its measured width.
 * @param {import("../shared/columns.js").Table} table
 * @param {TreeDatum} datum
 * @param {boolean} isRoot
 * @param {number | undefined} hiddenCount descendants hidden by a collapse
 * @param {(text: string) => number} measure
 * @param {(row: number) => import("./overlays.js").Overlay} [overlay]
 * @returns {Label}
 */
export function nodeLabel(table, datum, isRoot, hiddenCount, measure, overlay = (row) => nodeOverlay(table, row)) {
  let token = "";
  let prob = "";
  let badges = [];
  if (datum.fold) token = `+${datum.fold.ids.length} more`;
  else if (datum.ghost) {
    token = truncate(displayToken(datum.ghost.token), TOKEN_CHARS);
    prob = probLabel(datum.ghost.prob);
  }
  else if (isRoot) token = truncateStart(promptText(cell(table, "token", datum.row) ?? ""), ROOT_CHARS);
  else {
    token = truncate(displayToken(cell(table, "token", datum.row) ?? ""), TOKEN_CHARS);
    const { badges: own, probPrefix } = overlay(datum.row);
    prob = probLabel(cell(table, "prob", datum.row));
    if (prob && probPrefix) prob = `${probPrefix} ${prob}`;
    badges = own;
  }
  const hidden = hiddenCount ? `▸+${hiddenCount}` : "";
  const text = [token, prob, ...badges, hidden].filter(Boolean).join(" ");
  return { token, prob, badges, hidden, text, width: measure(text) };
}

/**
 * @param {import("../shared/columns.js").Table} table
 * @param {TreeDatum} parent
 * @param {Set<number>} keep ids that never fold (the selected path, pending nodes)
 * @param {(row: number) => import("./overlays.js").Overlay} overlay
 * @returns {TreeDatum[]}
 */
function foldChildren(table, parent, keep, overlay) {
  const shown = [];
  const folded = [];
  parent.children.forEach((child, i) => {
    const p = cell(table, "prob", child.row) ?? 0;
    const foldable = i >= MIN_SHOWN && child.children.length === 0 && !keep.has(child.id)
      && (p < FOLD_BELOW || i >= MAX_SHOWN) && !overlay(child.row).chosen;
    (foldable ? folded : shown).push(child);
  });
  if (folded.length < FOLD_MIN) return parent.children;
  const fold = { id: foldId(parent.id), row: -1, parentId: parent.id, children: [],
    fold: { parentId: parent.id, ids: folded.map((c) => c.id) } };
  return [...shown, fold];
}

/**
 * Lay the tree out left to right: `y` is horizontal (depth), `x` vertical (siblings). Each
 * depth's column starts after the widest label of the depth before it; the root's label sits
 * to the left of the root. Children of ids in `collapsed` are hidden (`hidden` counts them).
 * @param {import("../shared/columns.js").Table} table
 * @param {{collapsed?: Set<number>, unfolded?: Set<number>, keep?: Set<number>,
 *          measure?: (text: string) => number, showCut?: boolean}} [options] `showCut`: draw
 *          the tokens a constraint cut (ghost children, see withGhosts)
 * @returns {Layout}
 */
export function layoutTree(table, { collapsed = new Set(), unfolded = new Set(), keep = new Set(),
  measure = estimateWidth, showCut = true } = {}) {
  const { rootId, data } = buildStructure(table);
  /** @type {Map<number, number>} */
  const hidden = new Map();
  /** @type {Map<number, PointNode>} */
  const byId = new Map();
  /** @type {Map<number, import("./overlays.js").Overlay>} */
  const overlays = new Map();
  const overlay = (/** @type {number} */ row) => {
    let o = overlays.get(row);
    if (!o) overlays.set(row, (o = nodeOverlay(table, row)));
    return o;
  };
  const empty = { x0: 0, x1: 0, y0: 0, y1: 0 };
  if (rootId === null) return { root: null, byId, data, hidden, bounds: empty, overlay };
  const countDescendants = (/** @type {TreeDatum} */ d) => {
    let count = 0;
    const stack = [...d.children];
    while (stack.length) { const c = stack.pop(); count++; stack.push(...c.children); }
    return count;
  };
  const root = hierarchy(data.get(rootId), (d) => {
    if (d.fold || d.ghost || !d.children.length) return null;
    if (collapsed.has(d.id)) { hidden.set(d.id, countDescendants(d)); return null; }
    const shown = unfolded.has(d.id) ? d.children : foldChildren(table, d, keep, overlay);
    return showCut ? withGhosts(table, d, shown) : shown;
  });
  const separation = (/** @type {any} */ a, /** @type {any} */ b) => (a.parent === b.parent ? 1 : 1.3);
  const pointRoot = /** @type {PointNode} */ (d3tree().nodeSize([ROW_HEIGHT, 1]).separation(separation)(root));
  /** @type {number[]} widest label per depth */
  const widest = [];
  pointRoot.each((node) => {
    const n = /** @type {PointNode} */ (node);
    n.label = nodeLabel(table, n.data, n.depth === 0, hidden.get(n.data.id), measure, overlay);
    if (n.depth > 0) widest[n.depth] = Math.max(widest[n.depth] ?? 0, n.label.width);
    byId.set(n.data.id, n);
  });
  const columnX = [0];
  for (let d = 1; d <= widest.length; d++) {
    const labelEnd = d === 1 ? NODE_RADIUS : LABEL_DX + (widest[d - 1] ?? 0);
    columnX[d] = columnX[d - 1] + Math.max(MIN_COLUMN_STEP, labelEnd + COLUMN_GAP);
  }
  const bounds = { x0: Infinity, x1: -Infinity, y0: Infinity, y1: -Infinity };
  pointRoot.each((node) => {
    node.y = columnX[node.depth];
    const box = labelBox(/** @type {PointNode} */ (node));
    bounds.x0 = Math.min(bounds.x0, box.x0, node.y - NODE_RADIUS);
    bounds.x1 = Math.max(bounds.x1, box.x1, node.y + NODE_RADIUS);
    bounds.y0 = Math.min(bounds.y0, box.y0, node.x - NODE_RADIUS);
    bounds.y1 = Math.max(bounds.y1, box.y1, node.x + NODE_RADIUS);
  });
  return { root: pointRoot, byId, data, hidden, bounds, overlay };
}

/**
 * The box a node's label covers in layout coordinates (x horizontal, y vertical).
 * @param {PointNode} node
 * @returns {Box}
 */
export function labelBox(node) {
  const half = LABEL_HEIGHT / 2;
  if (node.depth === 0) {
    return { x0: node.y - LABEL_DX - node.label.width, x1: node.y - LABEL_DX, y0: node.x - half, y1: node.x + half };
  }
  return { x0: node.y + LABEL_DX, x1: node.y + LABEL_DX + node.label.width, y0: node.x - half, y1: node.x + half };
}

/**
 * Ids from the root down to `id` (both included); empty if `id` is unknown.
 * @param {Map<number, TreeDatum>} data
 * @param {number | null} id
 * @returns {number[]}
 */
export function pathTo(data, id) {
  const out = [];
  let datum = id === null ? undefined : data.get(id);
  while (datum) {
    out.push(datum.id);
    datum = datum.parentId === null ? undefined : data.get(datum.parentId);
  }
  return out.reverse();
}

/**
 * The node keyboard navigation moves to from `id`: ArrowLeft parent, ArrowRight first shown
 * child, ArrowUp/ArrowDown previous/next sibling (fold nodes are skipped). Returns `id` itself
 * when there is nowhere to go.
 * @param {Layout} layout
 * @param {number | null} id
 * @param {string} key
 * @returns {number | null}
 */
export function navigate(layout, id, key) {
  if (!layout.root) return null;
  const node = id === null ? undefined : layout.byId.get(id);
  if (!node) return layout.root.data.id;
  const real = (/** @type {any[]} */ nodes) => nodes.filter((n) => !n.data.fold && !n.data.ghost);
  if (key === "ArrowLeft") return node.parent ? node.parent.data.id : id;
  if (key === "ArrowRight") return node.children?.length ? real(node.children)[0]?.data.id ?? id : id;
  if (key === "ArrowUp" || key === "ArrowDown") {
    const siblings = real(node.parent ? node.parent.children ?? [] : [node]);
    const at = siblings.indexOf(node) + (key === "ArrowUp" ? -1 : 1);
    return at >= 0 && at < siblings.length ? siblings[at].data.id : id;
  }
  return id;
}
