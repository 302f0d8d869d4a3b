// anywidget entry for inferviz.widgets.LensWidget: logit-lens heatmap, layers x positions.
import { entropyColor, probColor, textColorOn } from "../shared/color.js";
import { displayToken, formatNumber, formatProb, truncate } from "../shared/format.js";
import { createFloatingTip } from "../shared/float_tip.js";
import { cellStats, decodeLens, topK } from "./lens_data.js";
import "./lens.css";

/**
 * Background colour and ramp position of a cell under the current colouring.
 * @param {import("./lens_data.js").Lens} lens
 * @param {number} layer
 * @param {number} pos
 * @param {"prob" | "entropy"} colorBy
 */
export function cellColor(lens, layer, pos, colorBy) {
  const stats = cellStats(lens, layer, pos);
  if (colorBy === "entropy") {
    const t = lens.maxEntropy > 0 ? stats.entropy / lens.maxEntropy : 0;
    return { background: entropyColor(t), t };
  }
  return { background: probColor(stats.topProb), t: stats.topProb };
}

/**
 * The colour legend of the grid under the current colouring: what a cell's colour means, the
 * scale and its ends (probability 0-100%; entropy 0 to the highest entropy in this lens, nats).
 * @param {HTMLElement} el
 * @param {import("./lens_data.js").Lens | null} lens
 * @param {"prob" | "entropy"} colorBy
 */
export function drawLegend(el, lens, colorBy) {
  const ramp = colorBy === "entropy" ? entropyColor : probColor;
  const stops = [0, 0.25, 0.5, 0.75, 1].map((t) => `${ramp(t)} ${t * 100}%`).join(", ");
  const span = (text, className) => Object.assign(document.createElement("span"), { textContent: text, className });
  const bar = span("", "inferviz-lens-legend-bar");
  bar.style.background = `linear-gradient(to right, ${stops})`;
  const [title, low, high] = colorBy === "entropy"
    ? ["cell colour: entropy (nats)", "0", formatNumber(lens ? lens.maxEntropy : 0)]
    : ["cell colour: top-1 probability", "0%", "100%"];
  el.replaceChildren(span(title, "inferviz-lens-legend-title"), span(low, ""), bar, span(high, ""),
    span("· cell text: the layer's top token (· space, ↵ newline, → tab) · hover or click a cell for its top-k",
      "inferviz-lens-legend-note"));
}

const WHITESPACE_NAMES = { " ": "space", "\n": "newline", "\t": "tab", "\r": "carriage return" };

/**
 * What a token is, in words, when its shown form alone does not say: `a space`, `2 newlines`,
 * `a space + newline`; "" for a token with any other character.
 * @param {string} token
 */
export function whitespaceName(token) {
  const chars = Array.from(token ?? "");
  if (!chars.length || !chars.every((c) => c in WHITESPACE_NAMES)) return "";
  if (chars.every((c) => c === chars[0])) {
    const name = WHITESPACE_NAMES[/** @type {keyof typeof WHITESPACE_NAMES} */ (chars[0])];
    return chars.length === 1 ? `a ${name}` : `${chars.length} ${name}s`;
  }
  return chars.map((c) => WHITESPACE_NAMES[/** @type {keyof typeof WHITESPACE_NAMES} */ (c)]).join(" + ");
}

/**
 * The hover title of a grid cell: the layer, the input it reads, its top token named.
 * @param {import("./lens_data.js").Lens} lens @param {number} layer @param {number} pos
 */
export function cellTitle(lens, layer, pos) {
  const { token, prob } = topK(lens, layer, pos)[0];
  const named = whitespaceName(token);
  return `layer ${lens.layerNames[layer]}, after ${displayToken(lens.inputTokens[pos])}: top token `
    + `${displayToken(token)}${named ? ` (${named})` : ""} ${formatProb(prob)}`;
}

/**
 * @param {import("./lens_data.js").Lens} lens
 * @param {number} layer
 * @param {number} pos
 */
function describeCell(lens, layer, pos) {
  const box = document.createElement("div");
  const title = document.createElement("div");
  title.className = "inferviz-lens-title";
  title.textContent = `layer ${lens.layerNames[layer]} · position ${pos} (after ${displayToken(lens.inputTokens[pos])})`;
  const stats = cellStats(lens, layer, pos);
  const facts = document.createElement("div");
  facts.className = "inferviz-lens-facts";
  facts.textContent = `entropy ${formatNumber(stats.entropy)} · KL to final ${formatNumber(stats.klToFinal)} · final top token's rank ${formatNumber(stats.finalTopRank)}`;
  const list = document.createElement("table");
  const head = list.createTHead().insertRow();
  for (const text of ["top tokens", "", "prob", "token id"]) {
    head.appendChild(Object.assign(document.createElement("th"), { textContent: text }));
  }
  const rows = list.createTBody();
  for (const { token, tokenId, prob } of topK(lens, layer, pos)) {
    const tr = rows.insertRow();
    const named = whitespaceName(token);
    tr.insertCell().textContent = displayToken(token) + (named ? ` (${named})` : "");
    const bar = tr.insertCell();
    const fill = document.createElement("span");
    fill.className = "inferviz-lens-bar";
    fill.style.width = `${Math.round(100 * Math.max(0, Math.min(1, prob)))}px`;
    bar.appendChild(fill);
    tr.insertCell().textContent = formatProb(prob);
    tr.insertCell().textContent = String(tokenId);
  }
  box.append(title, facts, list);
  return box;
}

/**
 * @param {{model: any, el: HTMLElement}} ctx
 * @returns {() => void} cleanup
 */
export function renderLensWidget({ model, el }) {
  const root = document.createElement("div");
  root.className = "inferviz-lens";
  el.replaceChildren(root);

  const bar = document.createElement("div");
  bar.className = "inferviz-lens-controls";
  const label = document.createElement("label");
  label.textContent = "colour by ";
  const picker = document.createElement("select");
  picker.name = "color_by";
  for (const value of ["prob", "entropy"]) {
    const option = document.createElement("option");
    option.value = value;
    option.textContent = value === "prob" ? "top-1 probability" : "entropy";
    picker.appendChild(option);
  }
  picker.addEventListener("change", () => {
    model.set("color_by", picker.value);
    model.save_changes();
  });
  label.appendChild(picker);
  const legendEl = document.createElement("div");
  legendEl.className = "inferviz-lens-legend";
  bar.append(label, legendEl);

  const errorEl = document.createElement("div");
  errorEl.className = "inferviz-error";
  const body = document.createElement("div");
  body.className = "inferviz-lens-body";
  const grid = document.createElement("div");
  grid.className = "inferviz-lens-grid";
  const panel = document.createElement("div");
  panel.className = "inferviz-lens-panel";
  // The hover card floats above the page (no output area clips it) and never covers the
  // pinned panel beside the grid.
  const tooltip = createFloatingTip("inferviz-lens-tip");
  body.append(grid, panel);
  root.append(bar, errorEl, body);

  let lens = decodeLens(model.get("lens"));

  function drawGrid() {
    grid.replaceChildren();
    if (!lens) return;
    const colorBy = model.get("color_by") === "entropy" ? "entropy" : "prob";
    picker.value = colorBy;
    drawLegend(legendEl, lens, colorBy);
    grid.style.gridTemplateColumns = `max-content repeat(${lens.nPositions}, minmax(48px, max-content))`;
    grid.appendChild(Object.assign(document.createElement("div"), { className: "inferviz-lens-corner", textContent: "layer \\ input" }));
    for (let pos = 0; pos < lens.nPositions; pos++) {
      const head = document.createElement("div");
      head.className = "inferviz-lens-input";
      head.dataset.pos = String(pos);
      head.textContent = truncate(displayToken(lens.inputTokens[pos]), 10);
      head.title = displayToken(lens.inputTokens[pos]);
      grid.appendChild(head);
    }
    const pinned = model.get("pinned");
    for (let layer = lens.nLayers - 1; layer >= 0; layer--) {
      const name = document.createElement("div");
      name.className = "inferviz-lens-layer";
      name.textContent = lens.layerNames[layer];
      grid.appendChild(name);
      for (let pos = 0; pos < lens.nPositions; pos++) {
        const cellEl = document.createElement("div");
        cellEl.className = "inferviz-lens-cell";
        cellEl.dataset.layer = String(layer);
        cellEl.dataset.pos = String(pos);
        const { background, t } = cellColor(lens, layer, pos, colorBy);
        cellEl.style.background = background;
        cellEl.style.color = textColorOn(t, colorBy);
        if (cellStats(lens, layer, pos).finalTopRank === 0) cellEl.classList.add("matches-final");
        if (pinned && pinned[0] === layer && pinned[1] === pos) cellEl.classList.add("pinned");
        cellEl.textContent = truncate(displayToken(lens.topTokens[(layer * lens.nPositions + pos) * lens.k]), 10);
        cellEl.setAttribute("aria-label", cellTitle(lens, layer, pos));
        grid.appendChild(cellEl);
      }
    }
  }

  function drawPanel() {
    panel.replaceChildren();
    const pinned = model.get("pinned");
    if (!lens || !pinned) {
      panel.textContent = "click a cell to pin its distribution";
      return;
    }
    panel.appendChild(describeCell(lens, pinned[0], pinned[1]));
  }

  /** @param {Event} event */
  function cellOf(event) {
    const target = /** @type {HTMLElement} */ (event.target)?.closest?.(".inferviz-lens-cell");
    if (!target) return null;
    return [Number(target.getAttribute("data-layer")), Number(target.getAttribute("data-pos"))];
  }

  grid.addEventListener("click", (event) => {
    const at = cellOf(event);
    if (!at) return;
    const pinned = model.get("pinned");
    const same = pinned && pinned[0] === at[0] && pinned[1] === at[1];
    model.set("pinned", same ? null : at);
    model.save_changes();
    drawGrid();
    drawPanel();
  });
  grid.addEventListener("mousemove", (event) => {
    const at = cellOf(event);
    if (!at || !lens) { tooltip.hide(); return; }
    const avoid = model.get("pinned") ? panel.getBoundingClientRect() : null;
    tooltip.show([describeCell(lens, at[0], at[1])], event.clientX, event.clientY, 12, 0, avoid);
  });
  grid.addEventListener("mouseleave", () => tooltip.hide());

  const redraw = () => { drawGrid(); drawPanel(); };
  const onLens = () => { lens = decodeLens(model.get("lens")); redraw(); };
  const onError = () => { errorEl.textContent = model.get("error") || ""; };
  model.on("change:lens", onLens);
  model.on("change:color_by", drawGrid);
  model.on("change:pinned", redraw);
  model.on("change:error", onError);
  onError();
  redraw();
  return () => {
    tooltip.remove();
    model.off("change:lens", onLens);
    model.off("change:color_by", drawGrid);
    model.off("change:pinned", redraw);
    model.off("change:error", onError);
  };
}

export default {
  /** @param {{model: any, el: HTMLElement}} ctx */
  render({ model, el }) {
    return renderLensWidget({ model, el });
  },
};
