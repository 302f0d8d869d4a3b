// The tree view as a reader sees it: legend, fold nodes, fit, static export mode.
import { afterEach, describe, expect, it } from "vitest";
import { boxInView, fitTransform } from "../src/tree/fit.js";
import { refitAfterGrowth, showsPart } from "../src/tree/view_control.js";
import widget from "../src/tree/tree_widget.js";
import { encodeTable, fakeModel, sampleColumns, treeState } from "./helpers.js";

/** @type {(() => void)[]} */
const cleanups = [];
afterEach(() => { while (cleanups.length) cleanups.pop()(); document.body.replaceChildren(); });

function mount(overrides = {}) {
  const model = fakeModel(treeState(overrides));
  const el = document.createElement("div");
  document.body.appendChild(el);
  cleanups.push(widget.render({ model, el }));
  return { model, el };
}
const click = (/** @type {Element} */ target) => target.dispatchEvent(new MouseEvent("click", { bubbles: true }));

/** Root "Hi" with ten children, the last five unlikely leaves past the first five. */
function wideColumns() {
  const probs = [0.5, 0.2, 0.1, 0.05, 0.01, 0.01, 0.005, 0.004, 0.002, 0.001];
  return {
    node_id: [0, ...probs.map((_, i) => i + 1)], parent_id: [null, ...probs.map(() => 0)],
    depth: [0, ...probs.map(() => 1)], token_id: [null, ...probs.map((_, i) => 50 + i)],
    token: ["Hi", ...probs.map((_, i) => ` w${i}`)], raw_logprob: [0, ...probs.map(Math.log)],
    prob: [1, ...probs], rank: [null, ...probs.map((_, i) => i)], entropy: [null, ...probs.map(() => 2)],
    cum_logprob: [0, ...probs.map(Math.log)],
  };
}

describe("legend", () => {
  it("always shows the probability colour scale", () => {
    const { el } = mount();
    const bar = el.querySelector(".inferviz-legend .inferviz-legend-bar");
    expect(bar).not.toBeNull();
    expect(el.querySelector(".inferviz-legend").textContent).toContain("probability");
  });

  it("names the kinds of branch present, and only those", () => {
    const nodes = encodeTable(sampleColumns({ strategy: [null, "beam", "beam", "smc"], beam_kept: [null, true, false, null], smc_count: [null, null, null, 3], smc_weight: [null, null, null, 0.4] }));
    const { el } = mount({ nodes, selected: 3, selected_text: "Hi there\n" });
    const kinds = [...el.querySelectorAll(".inferviz-legend-item")].map((i) => /** @type {HTMLElement} */ (i).dataset.kind);
    expect(kinds).toEqual(["beam", "beam-pruned", "smc", "path"]);
    const smc = el.querySelector('.inferviz-node[data-node-id="3"]');
    expect(smc.textContent).toContain("×3");
    expect(smc.textContent).toContain("w0.40");
    expect(el.querySelector('.inferviz-link[data-target-id="2"]').classList.contains("by-beam-pruned")).toBe(true);
  });
});

describe("node labels", () => {
  it("print the probability next to the token", () => {
    const { el } = mount();
    expect(el.querySelector('.inferviz-node[data-node-id="1"]').textContent).toBe("·there 70%");
    expect(el.querySelector('.inferviz-node[data-node-id="3"] .prob').textContent.trim()).toBe("90%");
  });

  it("show a node's marks from the mark column", () => {
    const { el } = mount({ nodes: encodeTable(sampleColumns({ mark: [null, null, "diverges", null] })) });
    const node = el.querySelector('.inferviz-node[data-node-id="2"]');
    expect(node.textContent).toContain("◆diverges");
    expect(node.classList.contains("marked")).toBe(true);
  });
});

describe("fold node", () => {
  it("folds unlikely leaves into +N more, and a click shows them", () => {
    const { el } = mount({ nodes: encodeTable(wideColumns()) });
    const fold = el.querySelector(".inferviz-fold");
    expect(fold.textContent).toBe("+5 more");
    expect(el.querySelectorAll(".inferviz-node").length).toBe(6);
    click(fold);
    expect(el.querySelector(".inferviz-fold")).toBeNull();
    expect(el.querySelectorAll(".inferviz-node").length).toBe(11);
  });

  it("never folds the selected node", () => {
    const { el } = mount({ nodes: encodeTable(wideColumns()), selected: 8, selected_text: "Hi w7" });
    expect(el.querySelector('.inferviz-node[data-node-id="8"]')).not.toBeNull();
    expect(el.querySelector(".inferviz-fold").textContent).toBe("+4 more");
  });
});

describe("fit", () => {
  it("fitTransform puts the whole bounds inside the view", () => {
    const bounds = { x0: -200, x1: 900, y0: -300, y1: 260 };
    const t = fitTransform(bounds, 800, 400);
    expect(boxInView(bounds, t, 800, 400)).toBe(true);
    expect(t.k).toBeLessThan(1);
    expect(fitTransform({ x0: 0, x1: 10, y0: 0, y1: 10 }, 800, 400).k).toBe(1.6); // never blown up
  });

  it("an automatic fit keeps labels >= 11 px and shows the focus; a full fit shows all", () => {
    const chain = { x0: 0, x1: 4000, y0: -10, y1: 10 }; // a long greedy chain
    const auto = fitTransform(chain, 800, 300, { minScale: 11 / 12 });
    expect(auto.k * 12).toBeGreaterThanOrEqual(11);
    // default focus: the far end (the newest tokens) is in view, the root is a pan away
    expect(boxInView({ x0: 3900, x1: 4000, y0: -10, y1: 10 }, auto, 800, 300)).toBe(true);
    expect(boxInView({ x0: 0, x1: 50, y0: -10, y1: 10 }, auto, 800, 300)).toBe(false);
    const atRoot = fitTransform(chain, 800, 300, { minScale: 11 / 12, focus: { x0: 0, x1: 40, y0: -5, y1: 5 } });
    expect(boxInView({ x0: 0, x1: 40, y0: -5, y1: 5 }, atRoot, 800, 300)).toBe(true);
    expect(fitTransform(chain, 800, 300).k * 12).toBeLessThan(3); // the Fit button: all of it
    // a tree that fits is centred and never shrunk by the minimum
    const small = fitTransform({ x0: 0, x1: 300, y0: -50, y1: 50 }, 800, 300, { minScale: 11 / 12 });
    expect(boxInView({ x0: 0, x1: 300, y0: -50, y1: 50 }, small, 800, 300)).toBe(true);
  });

  it("re-fits after growth unless the user moved the view and the new nodes are in it", () => {
    const view = { k: 1, x: 0, y: 0 };
    const inside = { x0: 10, x1: 50, y0: 10, y1: 20 };
    const outside = { x0: 10, x1: 50, y0: 900, y1: 910 };
    expect(refitAfterGrowth({ userMoved: false, boxes: [inside], view, width: 800, height: 400 })).toBe(true);
    expect(refitAfterGrowth({ userMoved: true, boxes: [inside], view, width: 800, height: 400 })).toBe(false);
    expect(refitAfterGrowth({ userMoved: true, boxes: [inside, outside], view, width: 800, height: 400 })).toBe(true);
  });

  it("showsPart tells when an automatic fit left part of the tree out of view", () => {
    const chain = { x0: 0, x1: 4000, y0: -10, y1: 10 };
    expect(showsPart(chain, fitTransform(chain, 800, 300, { minScale: 11 / 12 }), 800, 300)).toBe(true);
    expect(showsPart(chain, fitTransform(chain, 800, 300), 800, 300)).toBe(false); // Fit: all
    const small = { x0: 0, x1: 300, y0: -50, y1: 50 };
    expect(showsPart(small, fitTransform(small, 800, 300, { minScale: 11 / 12 }), 800, 300)).toBe(false);
  });

  it("boxInView tells a box outside the view", () => {
    expect(boxInView({ x0: 10, x1: 20, y0: 500, y1: 510 }, { k: 1, x: 0, y: 0 }, 800, 400)).toBe(false);
  });
});

describe("static export mode", () => {
  it("has a Fit button and no sampler inputs", () => {
    const { el } = mount({ static: true, read_only: true });
    expect(el.querySelector("input")).toBeNull();
    expect(el.querySelector("button.inferviz-fit")).not.toBeNull();
    expect(el.querySelector(".inferviz-legend")).not.toBeNull();
  });
});

describe("fitting the view", () => {
  const scaleOf = (/** @type {Element} */ el) => Number(/scale\(([^)]+)\)/.exec(el.querySelector(".inferviz-viewport").getAttribute("transform"))?.[1]);

  it("opens fitted and re-fits when a delta adds nodes", () => {
    const spy = Object.getOwnPropertyDescriptor(Element.prototype, "clientWidth");
    Object.defineProperty(Element.prototype, "clientWidth", { configurable: true, get: () => 600 });
    try {
      const { model, el } = mount();
      const first = scaleOf(el);
      expect(first).toBeGreaterThan(0);
      // A long chain arrives: the view re-fits around the new nodes at a readable size
      // (labels >= 11 px), panned along the chain, rather than shrinking it all into view.
      const n = 40;
      const cols = { node_id: [], parent_id: [], depth: [], token_id: [], token: [], raw_logprob: [], prob: [], rank: [], entropy: [], cum_logprob: [] };
      for (let i = 0; i < n; i++) {
        const row = { node_id: 4 + i, parent_id: i === 0 ? 3 : 3 + i, depth: 3 + i, token_id: 90, token: " long-token", raw_logprob: -1, prob: 0.4, rank: 0, entropy: 1, cum_logprob: -1 };
        for (const [k, v] of Object.entries(row)) cols[k].push(v);
      }
      const encoded = encodeTable(cols);
      const buffers = [new Float64Array(cols.node_id.map((id) => id)).buffer];
      const columns = {};
      for (const [name, col] of Object.entries(encoded.columns)) {
        if (col.dtype === "f64") { buffers.push(col.data); columns[name] = { dtype: "f64", buffer: buffers.length - 1 }; } else columns[name] = col;
      }
      model.emit("msg:custom", { kind: "inferviz:delta", base: 0, version: 1, n: 4 + n, rows: { dtype: "f64", buffer: 0 }, names: encoded.names, columns }, buffers);
      expect(el.querySelectorAll(".inferviz-node").length).toBe(4 + n);
      expect(scaleOf(el) * 12).toBeGreaterThanOrEqual(11);
      const x = Number(/translate\(([^,]+),/.exec(el.querySelector(".inferviz-viewport").getAttribute("transform"))?.[1]);
      expect(x).toBeLessThan(0); // panned: the chain's far end is what is in view
      el.querySelector(".inferviz-fit").click(); // the Fit button shows all of it
      expect(scaleOf(el)).toBeLessThan(first / 4);
    } finally {
      if (spy) Object.defineProperty(Element.prototype, "clientWidth", spy);
      else delete (/** @type {any} */ (Element.prototype)).clientWidth;
    }
  });
});
