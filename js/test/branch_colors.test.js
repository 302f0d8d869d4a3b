// The branch colours of tree.css against the probability scale and the selected-path halo:
// an edge's strategy colour must never read as a node's probability colour, nor as the halo.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { probColor } from "../src/shared/color.js";
import { KIND_LABELS } from "../src/tree/overlays.js";

const css = readFileSync(join(dirname(fileURLToPath(import.meta.url)), "..", "src", "tree", "tree.css"), "utf8");
const NEUTRAL = ["custom", "other", "click"]; // greys on purpose: no strategy hue

/** @param {string} selector */
function stroke(selector) {
  const rule = css.match(new RegExp(`${selector.replace(/\./g, "\\.")}[^{]*\\{[^}]*stroke: (#[0-9a-f]{6})`));
  if (!rule) throw new Error(`no stroke colour for ${selector} in tree.css`);
  return rule[1];
}

/** CIELAB of an sRGB colour, "#rrggbb" or "rgb(r,g,b)". @param {string} colour */
function lab(colour) {
  const rgb = colour.startsWith("#") ? [1, 3, 5].map((i) => parseInt(colour.slice(i, i + 2), 16))
    : colour.match(/\d+/g).map(Number);
  const lin = rgb.map((c) => (c / 255 <= 0.04045 ? c / 255 / 12.92 : ((c / 255 + 0.055) / 1.055) ** 2.4));
  const [r, g, b] = lin;
  const xyz = [(r * 0.4124 + g * 0.3576 + b * 0.1805) / 0.95047, r * 0.2126 + g * 0.7152 + b * 0.0722,
    (r * 0.0193 + g * 0.1192 + b * 0.9505) / 1.08883];
  const [fx, fy, fz] = xyz.map((t) => (t > 0.008856 ? Math.cbrt(t) : 7.787 * t + 16 / 116));
  return [116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)];
}
/** CIE76 colour difference. @param {string} a @param {string} b */
const deltaE = (a, b) => Math.hypot(...lab(a).map((x, i) => x - lab(b)[i]));

const strategyKinds = Object.keys(KIND_LABELS).filter((k) => css.includes(`.inferviz-link.by-${k} `)
  && !NEUTRAL.includes(k) && k !== "beam-pruned");
const viridis = Array.from({ length: 101 }, (_, i) => probColor(i / 100));

describe("branch colours", () => {
  it("covers the strategies the legend names", () => {
    expect(strategyKinds).toEqual(["greedy", "sample", "beam", "smc", "contrastive", "search"]);
  });

  it.each(strategyKinds)("%s is at least 30 ΔE from every viridis colour", (kind) => {
    const colour = stroke(`.inferviz-link.by-${kind}`);
    expect(Math.min(...viridis.map((v) => deltaE(colour, v)))).toBeGreaterThanOrEqual(30);
  });

  it.each(strategyKinds)("%s is at least 40 ΔE from the selected path's halo", (kind) => {
    expect(deltaE(stroke(`.inferviz-link.by-${kind}`), stroke(".inferviz-halo"))).toBeGreaterThanOrEqual(40);
  });

  it("tells every two strategies apart (at least 20 ΔE)", () => {
    for (const a of strategyKinds) {
      for (const b of strategyKinds) {
        if (a < b) expect(deltaE(stroke(`.inferviz-link.by-${a}`), stroke(`.inferviz-link.by-${b}`)), `${a} / ${b}`).toBeGreaterThanOrEqual(20);
      }
    }
  });
});
