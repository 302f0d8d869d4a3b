// The tree's legend, always shown: the probability colour scale (viridis, the same scale the
// lens uses), what edge width means, and a key for each kind of branch present in the tree.
import { probGradient } from "../shared/color.js";
import { KIND_LABELS } from "./overlays.js";

const SVG = "http://www.w3.org/2000/svg";

/**
 * A short line sample drawn like an edge of `kind` (same CSS classes as the tree's edges).
 * @param {string} className
 */
function lineSample(className) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("width", "26");
  svg.setAttribute("height", "10");
  const line = document.createElementNS(SVG, "path");
  line.setAttribute("d", "M2,5 L24,5");
  line.setAttribute("class", className);
  line.setAttribute("stroke-width", "3");
  svg.appendChild(line);
  return svg;
}

/** A node drawn as a constrained node is (a green ring), for the legend. */
function nodeSample() {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("width", "14");
  svg.setAttribute("height", "14");
  const g = document.createElementNS(SVG, "g");
  g.setAttribute("class", "inferviz-node constrained");
  const circle = document.createElementNS(SVG, "circle");
  circle.setAttribute("cx", "7");
  circle.setAttribute("cy", "7");
  circle.setAttribute("r", "5");
  circle.setAttribute("fill", "#fde725");
  g.appendChild(circle);
  svg.appendChild(g);
  return svg;
}

/** @param {string} text @param {string} [className] */
function span(text, className) {
  const el = document.createElement("span");
  if (className) el.className = className;
  el.textContent = text;
  return el;
}

/**
 * @returns {{el: HTMLElement, update: (kinds: Set<string>, options: {folds: boolean, path: boolean}) => void}}
 */
export function createLegend() {
  const el = document.createElement("div");
  el.className = "inferviz-legend";
  const scale = document.createElement("div");
  scale.className = "inferviz-legend-scale";
  const bar = document.createElement("span");
  bar.className = "inferviz-legend-bar";
  bar.style.background = probGradient();
  bar.setAttribute("role", "img");
  bar.setAttribute("aria-label", "probability colour scale from 0% (dark purple) to 100% (yellow)");
  scale.append(span("node colour: probability", "inferviz-legend-title"), span("0%"), bar, span("100%"),
    span("· edge width: probability · label: token, probability", "inferviz-legend-note"));
  const kinds = document.createElement("div");
  kinds.className = "inferviz-legend-kinds";
  el.append(scale, kinds);
  let key = "";
  return {
    el,
    update(present, { folds, path }) {
      const order = Object.keys(KIND_LABELS).filter((kind) => present.has(kind));
      const next = `${order.join(",")}|${folds}|${path}`;
      if (next === key) return;
      key = next;
      kinds.replaceChildren();
      if (order.length) kinds.append(span("branches:", "inferviz-legend-title"));
      for (const kind of order) {
        const item = span("", "inferviz-legend-item");
        item.dataset.kind = kind;
        const own = { intervened: "inferviz-link intervened", cut: "inferviz-link cut" };
        const sample = own[/** @type {keyof typeof own} */ (kind)] ?? `inferviz-link by-${kind}`;
        item.append(kind === "constrained" ? nodeSample() : lineSample(sample), span(KIND_LABELS[kind]));
        kinds.append(item);
      }
      if (path) {
        const item = span("", "inferviz-legend-item");
        item.dataset.kind = "path";
        item.append(lineSample("inferviz-halo"), span("selected path"));
        kinds.append(item);
      }
      if (folds) {
        const item = span("", "inferviz-legend-item");
        item.dataset.kind = "fold";
        item.append(span("+N more", "inferviz-legend-fold"), span("low-probability leaves, click to show"));
        kinds.append(item);
      }
    },
  };
}
