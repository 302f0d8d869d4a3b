// No two labels overlap, whatever the tree's shape and whatever strategy made it.
import { describe, expect, it } from "vitest";
import { decodeTable } from "../src/shared/columns.js";
import { foldId, labelBox, layoutTree } from "../src/tree/layout.js";
import { encodeTable } from "./helpers.js";

/** Deterministic PRNG (mulberry32). @param {number} seed */
function rng(seed) {
  return () => {
    seed |= 0; seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = [" the", " Paris", "\n", ".", " extraordinarily", "<0xE2>", "東京", "🙂🙂", " a", ",", "ing", "   ", "supercalifragilistic"];

/**
 * A random tree: `parentOf(i, random)` picks the parent of node i; `meta(i, random)` adds columns.
 * @param {number} n
 * @param {(i: number, random: () => number) => number} parentOf
 * @param {number} seed
 * @param {(i: number, random: () => number) => Record<string, any>} [meta]
 */
function randomTree(n, parentOf, seed, meta = () => ({})) {
  const random = rng(seed);
  /** @type {Record<string, any[]>} */
  const cols = { node_id: [0], parent_id: [null], depth: [0], token_id: [null], token: ["The capital of France is a city that everybody knows about"],
    raw_logprob: [0], prob: [1], rank: [null], entropy: [null], cum_logprob: [0] };
  const extra = /** @type {Record<string, any[]>} */ ({});
  const childCount = new Map();
  for (let i = 1; i < n; i++) {
    const parent = parentOf(i, random);
    const rank = childCount.get(parent) ?? 0;
    childCount.set(parent, rank + 1);
    const p = random() ** 2;
    const row = { node_id: i, parent_id: parent, depth: cols.depth[parent] + 1, token_id: 100 + i,
      token: WORDS[Math.floor(random() * WORDS.length)], raw_logprob: Math.log(p + 1e-9), prob: p,
      rank, entropy: random() * 4, cum_logprob: 0 };
    for (const [k, v] of Object.entries(row)) cols[k].push(v);
    const m = meta(i, random);
    for (const k of new Set([...Object.keys(extra), ...Object.keys(m)])) {
      extra[k] ??= new Array(i).fill(null);
      extra[k].push(m[k] ?? null);
    }
  }
  for (const k of Object.keys(extra)) { cols[k] = extra[k]; cols[k][0] = null; }
  return decodeTable(encodeTable(cols));
}

const SHAPES = {
  chain: (/** @type {number} */ i) => i - 1,
  star: () => 0,
  bushy: (/** @type {number} */ i, /** @type {() => number} */ r) => Math.floor(r() * i),
  deep: (/** @type {number} */ i, /** @type {() => number} */ r) => Math.max(0, i - 1 - Math.floor(r() * 3)),
  beamLike: (/** @type {number} */ i) => (i <= 4 ? 0 : Math.floor((i - 1) / 4) * 1),
};
const STRATEGY_META = {
  greedy: () => ({ strategy: "greedy" }),
  sample: () => ({ strategy: "sample" }),
  beam: (/** @type {number} */ _i, /** @type {() => number} */ r) => ({ strategy: "beam", beam_kept: r() < 0.4, beam_score: -r() * 5 }),
  smc: (/** @type {number} */ _i, /** @type {() => number} */ r) => ({ strategy: "smc", smc_count: 1 + Math.floor(r() * 12), smc_weight: r(), smc_resampled: r() < 0.3 }),
  contrastive: (/** @type {number} */ _i, /** @type {() => number} */ r) => ({ strategy: "contrastive", cd_score: r() * 3, cd_plausible: r() < 0.7, cd_chosen: r() < 0.3 }),
  bfs: () => ({ strategy: "bfs" }),
  click: () => ({}),
};

/**
 * Pairs of overlapping label boxes, found with a sweep over x.
 * @param {import("../src/tree/layout.js").Layout} layout
 */
function overlaps(layout) {
  const boxes = [...layout.byId.values()].map((n) => ({ id: n.data.id, ...labelBox(n) }));
  boxes.sort((a, b) => a.x0 - b.x0);
  const found = [];
  /** @type {typeof boxes} */
  let active = [];
  for (const box of boxes) {
    active = active.filter((a) => a.x1 > box.x0);
    for (const a of active) if (a.y0 < box.y1 && box.y0 < a.y1) found.push([a.id, box.id]);
    active.push(box);
  }
  return found;
}

describe("label spacing", () => {
  for (const [shape, parentOf] of Object.entries(SHAPES)) {
    for (const [strategy, meta] of Object.entries(STRATEGY_META)) {
      it(`no two labels overlap: ${shape} tree made by ${strategy}`, () => {
        for (const seed of [1, 2, 3]) {
          const layout = layoutTree(randomTree(120, parentOf, seed * 7 + shape.length, meta));
          expect(layout.byId.size).toBeGreaterThan(3);
          expect(overlaps(layout)).toEqual([]);
        }
      });
    }
  }

  it("the sweep finds overlaps when there are some (the check is not vacuous)", () => {
    const layout = layoutTree(randomTree(30, SHAPES.bushy, 5));
    const [a, b] = [...layout.byId.values()].filter((n) => n.depth === 2);
    b.x = a.x + 3;
    b.y = a.y;
    expect(overlaps(layout).length).toBeGreaterThan(0);
  });

  it("keeps the root's label clear of its children even for a long prompt", () => {
    const layout = layoutTree(randomTree(12, SHAPES.star, 9));
    const root = labelBox(layout.root);
    for (const child of layout.root.children) expect(labelBox(child).x0).toBeGreaterThan(root.x1);
  });

  it("puts every label inside the layout's bounds", () => {
    const layout = layoutTree(randomTree(200, SHAPES.bushy, 4, STRATEGY_META.smc));
    for (const node of layout.byId.values()) {
      const box = labelBox(node);
      expect(box.x0).toBeGreaterThanOrEqual(layout.bounds.x0);
      expect(box.x1).toBeLessThanOrEqual(layout.bounds.x1);
      expect(box.y0).toBeGreaterThanOrEqual(layout.bounds.y0);
      expect(box.y1).toBeLessThanOrEqual(layout.bounds.y1);
    }
  });

  it("spaces depths by the measured width of their labels", () => {
    const table = randomTree(6, SHAPES.chain, 3);
    const narrow = layoutTree(table, { measure: () => 10 });
    const wide = layoutTree(table, { measure: () => 300 });
    expect(wide.byId.get(5).y).toBeGreaterThan(narrow.byId.get(5).y + 4 * 250);
  });
});

describe("folding", () => {
  const starOf = (/** @type {number[]} */ probs, /** @type {Record<string, any[]>} */ extra = {}) => {
    const n = probs.length + 1;
    /** @type {Record<string, any[]>} */
    const cols = { node_id: [...Array(n).keys()], parent_id: [null, ...probs.map(() => 0)], depth: [0, ...probs.map(() => 1)],
      token_id: [null, ...probs.map((_, i) => i)], token: ["Hi", ...probs.map((_, i) => ` t${i}`)],
      raw_logprob: [0, ...probs.map((p) => Math.log(p + 1e-9))], prob: [1, ...probs], rank: [null, ...probs.map((_, i) => i)],
      entropy: [null, ...probs.map(() => 2)], cum_logprob: [0, ...probs.map(() => 0)], ...extra };
    return decodeTable(encodeTable(cols));
  };
  const probs = [0.5, 0.2, 0.1, 0.05, 0.01, 0.01, 0.005, 0.001];

  it("folds low-probability leaves into one +N more node after the top-ranked ones", () => {
    const layout = layoutTree(starOf(probs));
    const fold = layout.byId.get(foldId(0));
    expect(fold.data.fold.ids).toEqual([6, 7, 8]);
    expect(fold.label.text).toBe("+3 more");
    for (const id of [1, 2, 3, 4, 5]) expect(layout.byId.has(id)).toBe(true);
  });

  it("shows every child once unfolded, and never folds a kept node or a strategy's choice", () => {
    expect(layoutTree(starOf(probs), { unfolded: new Set([0]) }).byId.has(foldId(0))).toBe(false);
    const kept = layoutTree(starOf(probs), { keep: new Set([7]) });
    expect(kept.byId.has(7)).toBe(true);
    const chosen = layoutTree(starOf(probs, { strategy: [null, ...probs.map((_, i) => (i === 6 ? "sample" : null))] }));
    expect(chosen.byId.has(7)).toBe(true);
  });

  it("does not fold a single low-probability leaf, nor the children of a k=5 expansion", () => {
    expect(layoutTree(starOf([0.6, 0.3, 0.05, 0.04, 0.01, 0.01])).byId.has(foldId(0))).toBe(false);
    expect(layoutTree(starOf([0.9, 0.001, 0.001, 0.001, 0.001])).byId.has(foldId(0))).toBe(false);
  });
});
