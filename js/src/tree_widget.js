// anywidget entry for inferviz.widgets.TreeWidget: the interactive token tree.
import { select } from "d3-selection";
import { zoom, zoomIdentity, zoomTransform } from "d3-zoom";
import { cell, decodeTable } from "./columns.js";
import { createControls } from "./controls.js";
import { displayToken } from "./format.js";
import { layoutTree, navigate, pathTo } from "./layout.js";
import { tooltipRows } from "./overlays.js";
import { renderTree } from "./render_tree.js";
import { createClient } from "./rpc.js";
import "./tree.css";

const HEIGHT = 440;
const HINT = "click: select (expands a leaf) · shift-click/Enter: expand · alt-click/c: collapse · arrows: move · drag/wheel: pan/zoom";

/**
 * @param {{model: any, el: HTMLElement, timeoutMs?: number}} ctx
 * @returns {() => void} cleanup
 */
export function renderTreeWidget({ model, el, timeoutMs }) {
  const root = document.createElement("div");
  root.className = "inferviz-tree";
  root.tabIndex = 0;
  // Keys pressed in the tree are for the tree, not JupyterLab's notebook shortcuts.
  root.dataset.lmSuppressShortcuts = "true";
  el.replaceChildren(root);

  const errorEl = document.createElement("div");
  errorEl.className = "inferviz-error";
  errorEl.setAttribute("role", "alert");
  const showError = (/** @type {string} */ message) => { errorEl.textContent = message || ""; };

  const controls = createControls(model, showError);
  const fit = document.createElement("button");
  fit.type = "button";
  fit.className = "inferviz-fit";
  fit.textContent = "fit";
  controls.bar.appendChild(fit);
  const hint = document.createElement("div");
  hint.className = "inferviz-hint";
  hint.textContent = HINT;

  const canvas = document.createElement("div");
  canvas.className = "inferviz-canvas";
  const svgEl = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svgEl.setAttribute("class", "inferviz-svg");
  svgEl.setAttribute("height", String(HEIGHT));
  svgEl.setAttribute("width", "100%");
  const viewport = document.createElementNS("http://www.w3.org/2000/svg", "g");
  viewport.setAttribute("class", "inferviz-viewport");
  svgEl.appendChild(viewport);
  canvas.appendChild(svgEl);

  const tooltip = document.createElement("div");
  tooltip.className = "inferviz-tooltip";
  tooltip.hidden = true;
  canvas.appendChild(tooltip);

  const pathEl = document.createElement("div");
  pathEl.className = "inferviz-path";

  root.append(controls.bar, hint, errorEl, canvas, pathEl);

  const client = createClient(model, timeoutMs ? { timeoutMs } : {});
  /** @type {Set<number>} */
  const collapsed = new Set();
  /** @type {Set<number>} requests this view is waiting on */
  const requested = new Set();
  let table = decodeTable(model.get("nodes"));
  let layout = layoutTree(table, { collapsed });

  function pendingIds() {
    return new Set([...(model.get("pending") ?? []), ...requested]);
  }

  function draw() {
    layout = layoutTree(table, { collapsed });
    const selected = model.get("selected") ?? null;
    const path = new Set(pathTo(layout.data, selected));
    renderTree(/** @type {any} */ (viewport), layout, table, { selected, path, pending: pendingIds() });
    drawPath(selected);
  }

  function drawPath(/** @type {number | null} */ selected) {
    pathEl.replaceChildren();
    if (selected === null || !layout.data.has(selected)) return;
    const text = document.createElement("div");
    text.className = "inferviz-path-text";
    const promptRow = layout.root ? layout.root.data.row : 0;
    const prompt = String(cell(table, "token", promptRow) ?? "");
    const full = model.get("selected_text") || "";
    const promptSpan = document.createElement("span");
    promptSpan.className = "prompt";
    promptSpan.textContent = prompt;
    const completion = document.createElement("span");
    completion.className = "completion";
    completion.textContent = full.startsWith(prompt) ? full.slice(prompt.length) : "";
    text.append(promptSpan, completion);
    const chips = document.createElement("div");
    chips.className = "inferviz-path-tokens";
    for (const id of pathTo(layout.data, selected).slice(1)) {
      const chip = document.createElement("span");
      chip.className = "inferviz-chip";
      chip.dataset.nodeId = String(id);
      chip.textContent = displayToken(cell(table, "token", layout.data.get(id).row));
      chips.appendChild(chip);
    }
    pathEl.append(text, chips);
  }

  function select_(/** @type {number | null} */ id) {
    if (id === null || id === model.get("selected")) return;
    model.set("selected", id);
    model.save_changes();
    draw();
  }

  async function expand(/** @type {number} */ id) {
    if (pendingIds().has(id)) return; // a double click never sends a second request
    if (model.get("read_only")) {
      showError("this tree is read-only: pass session= to TreeWidget to expand nodes");
      return;
    }
    requested.add(id);
    draw();
    const params = {
      k: model.get("k"), temperature: model.get("temperature"),
      top_k: model.get("top_k"), top_p: model.get("top_p"), min_p: model.get("min_p"),
    };
    const response = await client.request("expand", { node_id: id, params });
    requested.delete(id);
    showError(response.ok ? "" : response.error);
    collapsed.delete(id);
    draw();
  }

  function toggleCollapse(/** @type {number} */ id) {
    if (collapsed.has(id)) collapsed.delete(id);
    else if (layout.data.get(id)?.children.length) collapsed.add(id);
    draw();
  }

  /** @param {Event} event */
  function nodeIdOf(event) {
    const target = /** @type {Element} */ (event.target);
    const node = target?.closest?.("[data-node-id]");
    return node ? Number(node.getAttribute("data-node-id")) : null;
  }

  svgEl.addEventListener("click", (event) => {
    const id = nodeIdOf(event);
    if (id === null) return;
    root.focus({ preventScroll: true });
    if (event.altKey) return toggleCollapse(id);
    select_(id);
    const isLeaf = !layout.data.get(id)?.children.length;
    if (isLeaf || event.shiftKey) expand(id);
  });

  svgEl.addEventListener("mousemove", (event) => {
    const id = nodeIdOf(event);
    const datum = id === null ? undefined : layout.data.get(id);
    if (!datum) { tooltip.hidden = true; return; }
    const title = document.createElement("div");
    title.className = "inferviz-tooltip-token";
    title.textContent = displayToken(cell(table, "token", datum.row));
    const body = document.createElement("table");
    for (const [label, value] of tooltipRows(table, datum.row)) {
      const tr = body.insertRow();
      tr.insertCell().textContent = label;
      tr.insertCell().textContent = value;
    }
    tooltip.replaceChildren(title, body);
    const box = canvas.getBoundingClientRect();
    tooltip.style.left = `${event.clientX - box.left + 14}px`;
    tooltip.style.top = `${event.clientY - box.top + 10}px`;
    tooltip.hidden = false;
  });
  svgEl.addEventListener("mouseleave", () => { tooltip.hidden = true; });

  root.addEventListener("keydown", (event) => {
    if (/** @type {Element} */ (event.target)?.closest?.("input, select, button")) return;
    const selected = model.get("selected") ?? null;
    if (event.key.startsWith("Arrow")) {
      const next = navigate(layout, selected, event.key);
      select_(next);
      reveal(next);
    } else if (event.key === "Enter" && selected !== null) {
      expand(selected);
    } else if ((event.key === "c" || event.key === " ") && selected !== null) {
      toggleCollapse(selected);
    } else {
      return;
    }
    event.preventDefault();
    event.stopPropagation();
  });

  // Zoom and pan; a view without layout support (tests) simply keeps the initial transform.
  const zoomBehavior = zoom()
    .scaleExtent([0.15, 4])
    .filter((event) => !event.button && event.type !== "dblclick")
    .on("zoom", (event) => viewport.setAttribute("transform", event.transform.toString()));
  const home = () => zoomIdentity.translate(24, HEIGHT / 2);
  try {
    select(svgEl).call(zoomBehavior).call(zoomBehavior.transform, home());
  } catch {
    viewport.setAttribute("transform", `translate(24,${HEIGHT / 2})`);
  }
  /** Pan so that node `id` is in view (keyboard moves can leave the visible area). */
  function reveal(/** @type {number | null} */ id) {
    const node = id === null ? undefined : layout.byId.get(id);
    const width = svgEl.clientWidth;
    if (!node || !width) return;
    const [px, py] = zoomTransform(svgEl).apply([node.y, node.x]);
    if (px < 20 || px > width - 120 || py < 12 || py > HEIGHT - 12) {
      try { select(svgEl).call(zoomBehavior.translateTo, node.y, node.x); } catch { /* no layout */ }
    }
  }
  fit.addEventListener("click", () => {
    try { select(svgEl).call(zoomBehavior.transform, home()); } catch { /* no layout */ }
  });

  const onNodes = () => { table = decodeTable(model.get("nodes")); draw(); };
  const onError = () => showError(model.get("error"));
  const onControls = () => controls.sync();
  model.on("change:nodes", onNodes);
  model.on("change:selected", draw);
  model.on("change:selected_text", draw);
  model.on("change:pending", draw);
  model.on("change:error", onError);
  for (const name of ["k", "temperature", "top_k", "top_p", "min_p"]) model.on(`change:${name}`, onControls);

  showError(model.get("error"));
  draw();

  return () => {
    client.dispose();
    model.off("change:nodes", onNodes);
    model.off("change:selected", draw);
    model.off("change:selected_text", draw);
    model.off("change:pending", draw);
    model.off("change:error", onError);
    for (const name of ["k", "temperature", "top_k", "top_p", "min_p"]) model.off(`change:${name}`, onControls);
  };
}

export default {
  /** @param {{model: any, el: HTMLElement}} ctx */
  render({ model, el }) {
    return renderTreeWidget({ model, el });
  },
};
