// Tree structure and left-to-right layout of a decoded node table (d3-hierarchy).
import { hierarchy, tree as d3tree } from "d3-hierarchy";
import { cell } from "./columns.js";

/**
 * @typedef {{id: number, row: number, parentId: number | null, children: TreeDatum[]}} TreeDatum
 * @typedef {import("d3-hierarchy").HierarchyPointNode<TreeDatum>} PointNode
 * @typedef {{root: PointNode | null, byId: Map<number, PointNode>, data: Map<number, TreeDatum>,
 *            hidden: Map<number, number>}} Layout
 */

export const NODE_HEIGHT = 26; // px between siblings
export const LEVEL_WIDTH = 130; // px between depths

/**
 * Parent/child structure of the table. Siblings are ordered by raw rank, then node id.
 * @param {import("./columns.js").Table} table
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
    datum.children.sort((a, b) => rank(a) - rank(b) || a.id - b.id);
  }
  return { rootId, data };
}

/**
 * Lay the tree out left to right: `y` is horizontal (depth), `x` vertical (siblings).
 * Children of ids in `collapsed` are hidden; `hidden` counts the descendants each hides.
 * @param {import("./columns.js").Table} table
 * @param {{collapsed?: Set<number>}} [options]
 * @returns {Layout}
 */
export function layoutTree(table, { collapsed = new Set() } = {}) {
  const { rootId, data } = buildStructure(table);
  /** @type {Map<number, number>} */
  const hidden = new Map();
  if (rootId === null) return { root: null, byId: new Map(), data, hidden };
  const countDescendants = (/** @type {TreeDatum} */ d) =>
    d.children.reduce((sum, c) => sum + 1 + countDescendants(c), 0);
  const root = hierarchy(data.get(rootId), (d) => {
    if (collapsed.has(d.id) && d.children.length) {
      hidden.set(d.id, countDescendants(d));
      return null;
    }
    return d.children;
  });
  const pointRoot = d3tree().nodeSize([NODE_HEIGHT, LEVEL_WIDTH])(root);
  /** @type {Map<number, PointNode>} */
  const byId = new Map();
  pointRoot.each((node) => byId.set(node.data.id, node));
  return { root: pointRoot, byId, data, hidden };
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
 * child, ArrowUp/ArrowDown previous/next sibling. Returns `id` itself when there is nowhere to go.
 * @param {Layout} layout
 * @param {number | null} id
 * @param {string} key
 * @returns {number | null}
 */
export function navigate(layout, id, key) {
  if (!layout.root) return null;
  const node = id === null ? undefined : layout.byId.get(id);
  if (!node) return layout.root.data.id;
  if (key === "ArrowLeft") return node.parent ? node.parent.data.id : id;
  if (key === "ArrowRight") return node.children?.length ? node.children[0].data.id : id;
  if (key === "ArrowUp" || key === "ArrowDown") {
    const siblings = node.parent ? node.parent.children ?? [] : [node];
    const at = siblings.indexOf(node) + (key === "ArrowUp" ? -1 : 1);
    return at >= 0 && at < siblings.length ? siblings[at].data.id : id;
  }
  return id;
}
