// anywidget entry for inferviz.widgets.TreeWidget: the interactive token tree.
import { select } from "d3-selection";
import { zoom, zoomIdentity } from "d3-zoom";
import { cell } from "./columns.js";
import { createControls } from "./controls.js";
import { boxInView, fitTransform } from "./fit.js";
import { displayToken } from "./format.js";
import { labelBox, layoutTree, navigate, pathTo } from "./layout.js";
import { createLegend } from "./legend.js";
import { createMeasurer, fontOf } from "./measure.js";
import { tooltipRows } from "./overlays.js";
import { renderTree } from "./render_tree.js";
import { createClient } from "./rpc.js";
import { acquireStore } from "./store.js";
import "./tree.css";

const MIN_HEIGHT = 220;
const DEFAULT_MAX_HEIGHT = 560;
const FAR_SCALE = 0.28;
const BIG_TREE = 1500; // nodes drawn above which a gesture moves a composited picture // below this zoom, labels are too small to read and are not drawn
const HINT = "click: select (expands a leaf) · shift-click/Enter: expand · alt-click/c: collapse · arrows: move · drag/wheel: pan/zoom · f: fit";
const STATIC_HINT = "click: select · alt-click/c: collapse · arrows: move · drag/wheel: pan/zoom · f: fit";

/** @param {string} tag @param {string} className @param {string} [text] */
function div(tag, className, text) {
  const el = document.createElement(tag);
  el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

/**
 * @param {{model: any, el: HTMLElement, timeoutMs?: number}} ctx
 * @returns {() => void} cleanup
 */
export function renderTreeWidget({ model, el, timeoutMs }) {
  const isStatic = Boolean(model.get("static"));
  const root = div("div", "inferviz-tree");
  root.tabIndex = 0;
  // Keys pressed in the tree are for the tree, not JupyterLab's notebook shortcuts.
  root.dataset.lmSuppressShortcuts = "true";
  el.replaceChildren(root);

  const errorEl = div("div", "inferviz-error");
  errorEl.setAttribute("role", "alert");
  const showError = (/** @type {string} */ message) => { errorEl.textContent = message || ""; };

  const controls = isStatic ? null : createControls(model, showError);
  const bar = controls ? controls.bar : div("div", "inferviz-controls");
  const fit = div("button", "inferviz-fit", "Fit");
  /** @type {HTMLButtonElement} */ (fit).type = "button";
  fit.title = "fit the whole tree in the view (f)";
  bar.appendChild(fit);
  const legend = createLegend();
  const canvas = div("div", "inferviz-canvas");
  const svgEl = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svgEl.setAttribute("class", "inferviz-svg");
  svgEl.setAttribute("width", "100%");
  const viewport = document.createElementNS("http://www.w3.org/2000/svg", "g");
  viewport.setAttribute("class", "inferviz-viewport");
  svgEl.appendChild(viewport);
  canvas.appendChild(svgEl);
  const tooltip = div("div", "inferviz-tooltip");
  tooltip.hidden = true;
  canvas.appendChild(tooltip);
  const pathEl = div("div", "inferviz-path");
  root.append(bar, div("div", "inferviz-hint", isStatic ? STATIC_HINT : HINT), errorEl, legend.el, canvas, pathEl);

  const client = createClient(model, timeoutMs ? { timeoutMs } : {});
  const held = acquireStore(model);
  const store = held.store;
  /** @type {Set<number>} */
  const collapsed = new Set();
  /** @type {Set<number>} parents whose folded leaves are shown */
  const unfolded = new Set();
  /** @type {Set<number>} requests this view is waiting on */
  const requested = new Set();
  let measure = createMeasurer();
  let fontKnown = false;
  const maxHeight = Number(model.get("height")) || DEFAULT_MAX_HEIGHT;
  let height = MIN_HEIGHT;
  svgEl.setAttribute("height", String(height));
  /** @type {{k: number, x: number, y: number}} */
  let view = { k: 1, x: 24, y: height / 2 };
  let userMoved = false;
  let needsFit = true;
  /** @type {import("./layout.js").Layout} */
  let layout = layoutTree(store.table);

  const pendingIds = () => new Set([...(model.get("pending") ?? []), ...requested]);
  // The view's width, read before the tree is redrawn: reading it after would force the browser
  // to lay out every new node synchronously.
  let viewWidth = 0;
  const width = () => viewWidth || (viewWidth = svgEl.clientWidth || 0);

  function draw() {
    viewWidth = svgEl.clientWidth || viewWidth;
    if (!fontKnown && root.isConnected) {
      // Measure labels in the font they are drawn in (known once the view is in the page).
      const probe = document.createElementNS("http://www.w3.org/2000/svg", "text");
      probe.setAttribute("class", "inferviz-label");
      viewport.appendChild(probe);
      const font = fontOf(probe);
      probe.remove();
      if (font) measure = createMeasurer(font);
      fontKnown = true;
    }
    const selected = model.get("selected") ?? null;
    const path = new Set(pathTo(store.table.n ? layout.data : new Map(), selected));
    const pending = pendingIds();
    layout = layoutTree(store.table, { collapsed, unfolded, keep: new Set([...path, ...pending]), measure });
    const onPath = new Set(pathTo(layout.data, selected));
    renderTree(/** @type {any} */ (viewport), layout, store.table, { selected, path: onPath, pending });
    const kinds = new Set();
    let folds = false;
    layout.byId.forEach((node) => {
      if (node.data.fold) folds = true;
      else if (node.depth > 0) kinds.add(layout.overlay(node.data.row).kind);
    });
    legend.update(kinds, { folds, path: onPath.size > 1 });
    drawPath(selected);
  }

  function drawPath(/** @type {number | null} */ selected) {
    pathEl.replaceChildren();
    if (selected === null || !layout.data.has(selected)) return;
    const text = div("div", "inferviz-path-text");
    const promptRow = layout.root ? layout.root.data.row : 0;
    const prompt = String(cell(store.table, "token", promptRow) ?? "");
    const full = model.get("selected_text") || "";
    text.append(div("span", "prompt", prompt),
      div("span", "completion", full.startsWith(prompt) ? full.slice(prompt.length) : ""));
    const chips = div("div", "inferviz-path-tokens");
    for (const id of pathTo(layout.data, selected).slice(1)) {
      const chip = div("span", "inferviz-chip", displayToken(cell(store.table, "token", layout.data.get(id).row)));
      chip.dataset.nodeId = String(id);
      chips.appendChild(chip);
    }
    pathEl.append(div("div", "inferviz-path-title", "selected path"), text, chips);
  }

  // ---------------------------------------------------------------- zoom and fit
  // Large trees pan and zoom as one composited picture (a CSS transform of the whole svg) while
  // a gesture lasts, and are redrawn at the new transform when it ends: re-rendering tens of
  // thousands of SVG elements on every frame is what makes big trees stutter.
  let committed = view;
  let gesture = false;
  const zoomBehavior = zoom()
    // The extent is known here; d3's default reads the svg's size, forcing a synchronous layout.
    .extent(() => [[0, 0], [width() || 1, height]])
    .scaleExtent([0.01, 4])
    .filter((event) => !event.button && event.type !== "dblclick")
    .on("start", () => {
      committed = view;
      gesture = layout.byId.size > BIG_TREE;
      if (gesture) svgEl.style.willChange = "transform";
    })
    .on("zoom", (event) => {
      const t = event.transform;
      view = { k: t.k, x: t.x, y: t.y };
      if (event.sourceEvent) userMoved = true;
      if (!gesture) { applyView(); return; }
      const s = view.k / committed.k;
      svgEl.style.transform = `translate(${view.x - s * committed.x}px,${view.y - s * committed.y}px) scale(${s})`;
    })
    .on("end", () => {
      if (!gesture) return;
      gesture = false;
      svgEl.style.transform = "";
      svgEl.style.willChange = "";
      applyView();
    });
  let zoomReady = true;
  try { select(svgEl).call(zoomBehavior); } catch { zoomReady = false; }

  function applyView() {
    viewport.setAttribute("transform", `translate(${view.x},${view.y}) scale(${view.k})`);
    svgEl.classList.toggle("far", view.k < FAR_SCALE);
  }

  /** @param {{k: number, x: number, y: number}} t */
  function setView(t) {
    view = t;
    if (zoomReady) {
      try {
        zoomBehavior.scaleExtent([Math.min(0.01, t.k / 2), 4]);
        select(svgEl).call(zoomBehavior.transform, zoomIdentity.translate(t.x, t.y).scale(t.k));
        return;
      } catch { zoomReady = false; }
    }
    applyView();
  }

  /** Fit the whole tree in the view; grows the canvas (up to its maximum height) first. */
  function fitView() {
    const w = width();
    const b = layout.bounds;
    const want = Math.min(maxHeight, Math.max(MIN_HEIGHT, Math.ceil(b.y1 - b.y0 + 48)));
    if (want > height) {
      height = want;
      svgEl.setAttribute("height", String(height));
    }
    if (!w || !layout.root) { needsFit = true; applyView(); return; }
    needsFit = false;
    userMoved = false;
    setView(fitTransform(b, w, height));
  }

  /** After nodes appeared: re-fit unless the user moved the view and all of them are in it. */
  function afterGrowth(/** @type {number[]} */ ids) {
    if (!userMoved || needsFit) { fitView(); return; }
    const w = width();
    const outside = ids.some((id) => {
      const node = layout.byId.get(id);
      return node && !boxInView(labelBox(node), view, w, height);
    });
    if (outside) fitView();
  }

  // ---------------------------------------------------------------- actions
  function select_(/** @type {number | null} */ id) {
    if (id === null || id < 0 || id === model.get("selected")) return;
    model.set("selected", id);
    model.save_changes();
    draw();
  }

  async function expand(/** @type {number} */ id) {
    if (pendingIds().has(id)) return; // a double click never sends a second request
    if (model.get("read_only")) {
      showError(model.get("static")
        ? "this is a static export: expanding a node needs a running kernel (read-only)"
        : "this tree is read-only: pass session= to TreeWidget to expand nodes");
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

  function unfold(/** @type {number} */ parentId) {
    const before = new Set(layout.byId.keys());
    unfolded.add(parentId);
    draw();
    afterGrowth([...layout.byId.keys()].filter((id) => !before.has(id)));
  }

  /** @param {Event} event */
  function targetOf(event) {
    const target = /** @type {Element} */ (event.target);
    const fold = target?.closest?.("[data-fold-parent]");
    if (fold) return { fold: Number(fold.getAttribute("data-fold-parent")), id: null };
    const node = target?.closest?.("[data-node-id]");
    return { fold: null, id: node ? Number(node.getAttribute("data-node-id")) : null };
  }

  svgEl.addEventListener("click", (event) => {
    const { fold: foldParent, id } = targetOf(event);
    if (foldParent !== null) { unfold(foldParent); return; }
    if (id === null) return;
    root.focus({ preventScroll: true });
    if (event.altKey) return toggleCollapse(id);
    select_(id);
    const isLeaf = !layout.data.get(id)?.children.length;
    if (isLeaf || event.shiftKey) expand(id);
  });

  svgEl.addEventListener("mousemove", (event) => {
    const { fold: foldParent, id } = targetOf(event);
    const datum = id === null ? undefined : layout.data.get(id);
    if (!datum && foldParent === null) { tooltip.hidden = true; return; }
    if (foldParent !== null) {
      const count = layout.byId.get(-(foldParent + 1))?.data.fold?.ids.length ?? 0;
      tooltip.replaceChildren(div("div", "inferviz-tooltip-token",
        `${count} low-probability leaves folded: click to show them`));
    } else if (datum) {
      const body = document.createElement("table");
      for (const [label, value] of tooltipRows(store.table, datum.row)) {
        const tr = body.insertRow();
        tr.insertCell().textContent = label;
        tr.insertCell().textContent = value;
      }
      tooltip.replaceChildren(div("div", "inferviz-tooltip-token", displayToken(cell(store.table, "token", datum.row))), body);
    }
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
    } else if (event.key === "f") {
      fitView();
    } else {
      return;
    }
    event.preventDefault();
    event.stopPropagation();
  });

  /** Pan so that node `id` is in view (keyboard moves can leave the visible area). */
  function reveal(/** @type {number | null} */ id) {
    const node = id === null ? undefined : layout.byId.get(id);
    const w = width();
    if (!node || !w || boxInView(labelBox(node), view, w, height)) return;
    setView({ k: view.k, x: w / 2 - node.y * view.k, y: height / 2 - node.x * view.k });
  }
  fit.addEventListener("click", () => fitView());

  // A view created while hidden (a Voila tab, a collapsed output) fits once it has a size.
  /** @type {ResizeObserver | null} */
  let resizer = null;
  if (typeof ResizeObserver !== "undefined") {
    resizer = new ResizeObserver((entries) => {
      viewWidth = entries[0]?.contentRect.width || viewWidth;
      if (needsFit && width()) fitView();
    });
    resizer.observe(svgEl);
  }

  const unsubscribe = store.subscribe((change) => {
    draw();
    if (change.reset) fitView();
    else if (change.newIds.length) afterGrowth(change.newIds);
  });
  const onError = () => showError(model.get("error"));
  const onControls = () => controls?.sync();
  const settings = ["k", "temperature", "top_k", "top_p", "min_p"];
  model.on("change:selected", draw);
  model.on("change:selected_text", draw);
  model.on("change:pending", draw);
  model.on("change:error", onError);
  for (const name of settings) model.on(`change:${name}`, onControls);

  showError(model.get("error"));
  draw();
  fitView();
  // The first fit may run before the page has laid the view out.
  const frame = typeof requestAnimationFrame === "function"
    ? requestAnimationFrame(() => {
      if (!fontKnown) draw();
      if (needsFit || !userMoved) fitView();
    }) : 0;

  return () => {
    if (frame && typeof cancelAnimationFrame === "function") cancelAnimationFrame(frame);
    resizer?.disconnect();
    unsubscribe();
    held.release();
    client.dispose();
    model.off("change:selected", draw);
    model.off("change:selected_text", draw);
    model.off("change:pending", draw);
    model.off("change:error", onError);
    for (const name of settings) model.off(`change:${name}`, onControls);
  };
}

export default {
  /**
   * Once per model: hold its node store for the model's lifetime, so that delta messages that
   * arrive while no view is shown are not lost.
   * @param {{model: any}} ctx
   */
  initialize({ model }) {
    const held = acquireStore(model, { pin: true });
    return () => held.release();
  },
  /** @param {{model: any, el: HTMLElement}} ctx */
  render({ model, el }) {
    return renderTreeWidget({ model, el });
  },
};
