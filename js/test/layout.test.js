import { describe, expect, it } from "vitest";
import { decodeTable } from "../src/shared/columns.js";
import { buildStructure, layoutTree, navigate, pathTo } from "../src/tree/layout.js";
import { encodeTable, sampleColumns } from "./helpers.js";

const table = () => decodeTable(encodeTable(sampleColumns()));

describe("layoutTree", () => {
  it("orders siblings by raw rank, not by id", () => {
    const cols = sampleColumns();
    cols.rank = [null, 1, 0, 0]; // node 2 is now the top-ranked child
    const { data } = buildStructure(decodeTable(encodeTable(cols)));
    expect(data.get(0).children.map((c) => c.id)).toEqual([2, 1]);
  });

  it("lays the tree out left to right, one column per depth", () => {
    const layout = layoutTree(table());
    const [root, child, grandchild] = [0, 1, 3].map((id) => layout.byId.get(id));
    expect(child.y).toBeGreaterThan(root.y);
    expect(grandchild.y).toBeGreaterThan(child.y);
    expect(layout.byId.get(1).y).toBe(layout.byId.get(2).y);
    expect(layout.byId.get(1).x).not.toBe(layout.byId.get(2).x);
  });

  it("hides the children of collapsed nodes and counts them", () => {
    const layout = layoutTree(table(), { collapsed: new Set([1]) });
    expect(layout.byId.has(3)).toBe(false);
    expect(layout.hidden.get(1)).toBe(1);
  });

  it("labels a contrastive node 'token pick N% cd ±score'", () => {
    const cols = sampleColumns({ strategy: [null, "contrastive", null, null],
      cd_plausible: [null, true, null, null], cd_score: [null, 56.02, null, null] });
    cols.prob = [null, 1, 0.3, 0.5];
    const layout = layoutTree(decodeTable(encodeTable(cols)));
    const label = layout.byId.get(1).label;
    expect(label.prob).toBe("pick 100%");
    expect(label.badges).toEqual(["cd +56.02"]);
    expect(layout.byId.get(2).label.prob).toBe("30%");
  });

  it("returns an empty layout for an empty table", () => {
    expect(layoutTree(decodeTable(null)).root).toBeNull();
  });
});

describe("paths and navigation", () => {
  it("pathTo runs from the root to the node", () => {
    expect(pathTo(layoutTree(table()).data, 3)).toEqual([0, 1, 3]);
    expect(pathTo(layoutTree(table()).data, 99)).toEqual([]);
  });

  it("arrow keys move to parent, first child and siblings", () => {
    const layout = layoutTree(table());
    expect(navigate(layout, 3, "ArrowLeft")).toBe(1);
    expect(navigate(layout, 0, "ArrowRight")).toBe(1);
    expect(navigate(layout, 1, "ArrowDown")).toBe(2);
    expect(navigate(layout, 2, "ArrowUp")).toBe(1);
    expect(navigate(layout, 2, "ArrowDown")).toBe(2);
    expect(navigate(layout, 0, "ArrowLeft")).toBe(0);
    expect(navigate(layout, null, "ArrowRight")).toBe(0);
  });
});
