// anywidget entry for inferviz.widgets.TextView: the generated text on one path, each token
// shaded by its raw model probability, a legend, alternatives on hover, click selects the node.
import { createFloatingTip } from "../shared/float_tip.js";
import { probColor, textColorOn } from "../shared/color.js";
import { displayToken, formatProb } from "../shared/format.js";
import "./text_view.css";

/**
 * @typedef {{node_id: number, token: string, prob: number, chosen: boolean}} Alternative
 * @typedef {{node_id: number, token: string, prob: number, processed_prob: number,
 *   rank: number | null, entropy: number | null, labels: string, alternatives: Alternative[]}} TokenRow
 */

/**
 * Background and text colour of a token of probability `p` (same ramp as the tree and lens).
 * @param {number} p
 */
export function shade(p) {
  const t = typeof p === "number" && Number.isFinite(p) ? Math.min(1, Math.max(0, p)) : NaN;
  return { background: probColor(t), color: Number.isNaN(t) ? "#111" : textColorOn(t, "prob") };
}

/**
 * The token's text for the page: real spaces kept (the text reads as text), a newline shown as
 * '↵' before the line break, an empty token as '∅'.
 * @param {string} token
 */
export function tokenText(token) {
  if (token === "") return "∅";
  return token.replace(/\n/g, "↵\n").replace(/\t/g, "→\t");
}

/**
 * The hover card for one token: its numbers, then its alternatives (siblings in the tree).
 * @param {TokenRow} row
 */
export function alternativesCard(row) {
  const card = document.createElement("div");
  const head = document.createElement("div");
  head.className = "inferviz-text-title";
  head.textContent = `${displayToken(row.token)} · p ${formatProb(row.prob)}` +
    (row.rank === null || row.rank === undefined ? "" : ` · rank ${row.rank}`);
  card.appendChild(head);
  const under = /** @type {any} */ (row).constrained_prob;
  if (typeof under === "number") {
    const line = document.createElement("div");
    line.className = "inferviz-text-labels";
    line.textContent = `under ${/** @type {any} */ (row).constraint ?? "the constraint"}: p ${formatProb(under)}`;
    card.appendChild(line);
  }
  if (row.labels) {
    const by = document.createElement("div");
    by.className = "inferviz-text-labels";
    by.textContent = `on the path of: ${row.labels}`;
    card.appendChild(by);
  }
  const table = document.createElement("table");
  table.className = "inferviz-text-alts";
  for (const alt of row.alternatives ?? []) {
    const tr = table.insertRow();
    if (alt.chosen) tr.className = "chosen";
    tr.insertCell().textContent = alt.chosen ? "▸" : "";
    tr.insertCell().textContent = displayToken(alt.token);
    const bar = tr.insertCell();
    const fill = document.createElement("span");
    fill.className = "inferviz-text-bar";
    fill.style.width = `${Math.round(80 * Math.max(0, Math.min(1, alt.prob)))}px`;
    fill.style.background = probColor(alt.prob);
    bar.appendChild(fill);
    tr.insertCell().textContent = formatProb(alt.prob);
  }
  card.appendChild(table);
  const note = document.createElement("div");
  note.className = "inferviz-text-note";
  note.textContent = (row.alternatives ?? []).length > 1
    ? "alternatives: the other children of its parent in the tree"
    : "no other child of its parent in the tree yet (expand the parent to see alternatives)";
  card.appendChild(note);
  return card;
}

/** What each shading shows, for the legend. */
export const SHADE_LABELS = {
  raw: "token probability (raw model)",
  constrained: "token probability under the constraint (p(token | legal))",
};

/**
 * The probability a token is shaded by: the raw model's, or under `shadeBy` "constrained"
 * the probability among the legal tokens (a token grown without a constraint keeps its raw).
 * @param {TokenRow & {constrained_prob?: number | null}} row
 * @param {string} shadeBy
 */
export function shadeProb(row, shadeBy) {
  if (shadeBy === "constrained" && typeof row.constrained_prob === "number") return row.constrained_prob;
  return row.prob;
}

/** The colour legend: a gradient from 0% to 100% on the probability ramp. */
export function legend() {
  const box = document.createElement("div");
  box.className = "inferviz-text-legend";
  const label = document.createElement("span");
  label.className = "inferviz-text-legend-label";
  label.textContent = SHADE_LABELS.raw;
  const bar = document.createElement("span");
  bar.className = "inferviz-text-ramp";
  bar.style.background = `linear-gradient(to right, ${[0, 0.25, 0.5, 0.75, 1].map(probColor).join(", ")})`;
  const lo = document.createElement("span");
  lo.textContent = "0%";
  const hi = document.createElement("span");
  hi.textContent = "100%";
  box.append(label, lo, bar, hi);
  return box;
}

/**
 * @param {{model: any, el: HTMLElement}} ctx
 * @returns {() => void} cleanup
 */
export function renderTextView({ model, el }) {
  const root = document.createElement("div");
  root.className = "inferviz-text";
  const text = document.createElement("div");
  text.className = "inferviz-text-body";
  const tip = createFloatingTip("inferviz-text-tip");
  const key = legend();
  // Shown once a token on the path was grown under a constraint.
  const switcher = document.createElement("label");
  switcher.className = "inferviz-text-shade";
  const select = document.createElement("select");
  for (const [value, text] of [["raw", "raw model"], ["constrained", "under the constraint"]]) {
    const option = document.createElement("option");
    option.value = value;
    option.textContent = text;
    select.appendChild(option);
  }
  switcher.append("shade by ", select);
  key.appendChild(switcher);
  select.addEventListener("change", () => {
    model.set("shade_by", select.value);
    model.save_changes();
  });
  root.append(key, text);
  el.replaceChildren(root);
  /** @type {Map<number, TokenRow>} */
  let rows = new Map();

  function draw() {
    const tokens = /** @type {TokenRow[]} */ (model.get("tokens") ?? []);
    const selected = model.get("selected");
    const constrained = tokens.some((row) => typeof row.constrained_prob === "number");
    const shadeBy = constrained && model.get("shade_by") === "constrained" ? "constrained" : "raw";
    switcher.style.display = constrained ? "" : "none";
    select.value = shadeBy;
    const label = key.querySelector(".inferviz-text-legend-label");
    if (label) label.textContent = SHADE_LABELS[shadeBy];
    rows = new Map(tokens.map((row) => [row.node_id, row]));
    const prompt = document.createElement("span");
    prompt.className = "inferviz-text-prompt";
    prompt.textContent = model.get("prompt") ?? "";
    const spans = tokens.map((row) => {
      const span = document.createElement("span");
      span.className = "inferviz-text-token";
      if (row.node_id === selected) span.classList.add("selected");
      span.dataset.nodeId = String(row.node_id);
      span.textContent = tokenText(row.token);
      const { background, color } = shade(shadeProb(row, shadeBy));
      span.style.background = background;
      span.style.color = color;
      return span;
    });
    text.replaceChildren(prompt, ...spans);
    if (!tokens.length) {
      const hint = document.createElement("span");
      hint.className = "inferviz-text-note";
      hint.textContent = " (no generated tokens on this path yet)";
      text.appendChild(hint);
    }
  }

  /** @param {Event} event */
  const tokenOf = (event) => {
    const target = /** @type {HTMLElement} */ (event.target);
    const span = target?.closest?.(".inferviz-text-token");
    return span ? rows.get(Number(/** @type {HTMLElement} */ (span).dataset.nodeId)) : undefined;
  };
  /** @param {MouseEvent} event */
  const onOver = (event) => {
    const row = tokenOf(event);
    if (!row) return;
    const span = /** @type {HTMLElement} */ (event.target);
    const at = span.getBoundingClientRect();
    tip.show([alternativesCard(row)], at.left, at.bottom, 4, at.height);
  };
  /** @param {MouseEvent} event */
  const onOut = (event) => { if (tokenOf(event)) tip.hide(); };
  /** @param {MouseEvent} event */
  const onClick = (event) => {
    const row = tokenOf(event);
    if (!row) return;
    model.set("selected", row.node_id);
    model.save_changes();
  };
  text.addEventListener("mouseover", onOver);
  text.addEventListener("mouseout", onOut);
  text.addEventListener("click", onClick);
  model.on("change:tokens", draw);
  model.on("change:selected", draw);
  model.on("change:prompt", draw);
  model.on("change:shade_by", draw);
  draw();
  return () => {
    tip.remove();
    model.off("change:tokens", draw);
    model.off("change:selected", draw);
    model.off("change:prompt", draw);
    model.off("change:shade_by", draw);
    text.removeEventListener("mouseover", onOver);
    text.removeEventListener("mouseout", onOut);
    text.removeEventListener("click", onClick);
  };
}

export default { render: renderTextView };
