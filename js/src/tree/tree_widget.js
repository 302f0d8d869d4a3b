// anywidget entry for inferviz.widgets.TreeWidget: the interactive token tree.
import { cell } from "../shared/columns.js";
import { controlSpecs, createControls } from "./controls.js";
import { displayToken } from "../shared/format.js";
import { ghostId, layoutTree, navigate, pathTo, probLabel } from "./layout.js";
import { createLegend } from "./legend.js";
import { createMeasurer, fontOf } from "./measure.js";
import { createFloatingTip } from "../shared/float_tip.js";
import { tooltipRows } from "./overlays.js";
import { renderTree } from "./render_tree.js";
import { createClient } from "./rpc.js";
import { acquireStore } from "./store.js";
import { createViewControl } from "./view_control.js";
import "./tree.css";

const DEFAULT_MAX_HEIGHT = 560;
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
  // The settings a click sends: the bar's boxes (the kernel's param_schema).
  const settings = controlSpecs(model).map((spec) => spec.name);
  const bar = controls ? controls.bar : div("div", "inferviz-controls");
  const fit = div("button", "inferviz-fit", "Fit");
  /** @type {HTMLButtonElement} */ (fit).type = "button";
  fit.title = "fit the whole tree in the view (f)";
  bar.appendChild(fit);
  // Said while the view shows part of the tree (an automatic fit keeps labels readable).
  const offView = div("button", "inferviz-offview", "part of the tree is out of view: Fit shows all");
  /** @type {HTMLButtonElement} */ (offView).type = "button";
  offView.hidden = true;
  bar.appendChild(offView);
  // Constrained trees: what clicks keep to, and a switch for the tokens the constraint cut.
  const chip = div("span", "inferviz-constraint-chip");
  chip.title = "clicks expand the legal tokens of this constraint";
  const cutToggle = div("label", "inferviz-cut-toggle");
  const cutBox = document.createElement("input");
  cutBox.type = "checkbox";
  cutBox.checked = true;
  cutToggle.append(cutBox, "show cut tokens");
  cutToggle.title = "draw the model's likelier tokens that the constraint made illegal (struck)";
  bar.append(chip);
  const legend = createLegend();
  const canvas = div("div", "inferviz-canvas");
  const svgEl = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svgEl.setAttribute("class", "inferviz-svg");
  svgEl.setAttribute("width", "100%");
  const viewport = document.createElementNS("http://www.w3.org/2000/svg", "g");
  viewport.setAttribute("class", "inferviz-viewport");
  svgEl.appendChild(viewport);
  canvas.appendChild(svgEl);
  const tooltip = createFloatingTip("inferviz-tooltip");
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
  /** @type {import("./layout.js").Layout} */
  let layout = layoutTree(store.table);

  const pendingIds = () => new Set([...(model.get("pending") ?? []), ...requested]);
  const control = createViewControl({
    svg: /** @type {any} */ (svgEl), group: /** @type {any} */ (viewport),
    maxHeight: Number(model.get("height")) || DEFAULT_MAX_HEIGHT, layout: () => layout,
    onCoverage: (partial) => { offView.hidden = !partial; },
  });

  function draw() {
    control.readWidth();
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
    const label = model.get("constraint_label") || "";
    chip.textContent = label ? `clicks keep to: ${label}` : "";
    chip.style.display = label ? "" : "none";
    const constrainedTree = store.table.names.includes("constraint");
    if (constrainedTree && !cutToggle.isConnected) bar.append(cutToggle);
    if (!constrainedTree && cutToggle.isConnected) cutToggle.remove();
    layout = layoutTree(store.table, { collapsed, unfolded, keep: new Set([...path, ...pending]), measure,
      showCut: cutBox.checked });
    const onPath = new Set(pathTo(layout.data, selected));
    renderTree(/** @type {any} */ (viewport), layout, store.table, { selected, path: onPath, pending });
    const kinds = new Set();
    let folds = false;
    layout.byId.forEach((node) => {
      if (node.data.fold) folds = true;
      else if (node.data.ghost) kinds.add("cut");
      else if (node.depth > 0) {
        const overlay = layout.overlay(node.data.row);
        kinds.add(overlay.kind);
        if (overlay.intervened) kinds.add("intervened");
        if (overlay.constrained) kinds.add("constrained");
      }
    });
    legend.update(kinds, { folds, path: onPath.size > 1 });
    drawPath(selected);
    control.coverage();
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
    const params = Object.fromEntries(settings.map((name) => [name, model.get(name) ?? null]));
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
    control.afterGrowth([...layout.byId.keys()].filter((id) => !before.has(id)));
  }

  /** @param {Event} event */
  function targetOf(event) {
    const target = /** @type {Element} */ (event.target);
    const fold = target?.closest?.("[data-fold-parent]");
    if (fold) return { fold: Number(fold.getAttribute("data-fold-parent")), id: null, ghost: null };
    const ghost = target?.closest?.("[data-ghost-parent]");
    if (ghost) {
      const at = ghostId(Number(ghost.getAttribute("data-ghost-parent")), Number(ghost.getAttribute("data-ghost-index")));
      return { fold: null, id: null, ghost: layout.byId.get(at)?.data.ghost ?? null };
    }
    const node = target?.closest?.("[data-node-id]");
    return { fold: null, id: node ? Number(node.getAttribute("data-node-id")) : null, ghost: null };
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
    const { fold: foldParent, id, ghost } = targetOf(event);
    const datum = id === null ? undefined : layout.data.get(id);
    if (!datum && foldParent === null && !ghost) { tooltip.hide(); return; }
    /** @type {Node[]} */
    let content = [];
    if (ghost) {
      content = [div("div", "inferviz-tooltip-token", displayToken(ghost.token)),
        div("div", "", `cut by the constraint: the model gave it ${probLabel(ghost.prob)} (raw), `
          + "more than the best legal token"),
        div("div", "", `token_id ${ghost.tokenId}`)];
    } else if (foldParent !== null) {
      const count = layout.byId.get(-(foldParent + 1))?.data.fold?.ids.length ?? 0;
      content = [div("div", "inferviz-tooltip-token",
        `${count} low-probability leaves folded: click to show them`)];
    } else if (datum) {
      const body = document.createElement("table");
      for (const [label, value] of tooltipRows(store.table, datum.row)) {
        const tr = body.insertRow();
        tr.insertCell().textContent = label;
        tr.insertCell().textContent = value;
      }
      content = [div("div", "inferviz-tooltip-token", displayToken(cell(store.table, "token", datum.row))), body];
    }
    tooltip.show(content, event.clientX, event.clientY);
  });
  svgEl.addEventListener("mouseleave", () => tooltip.hide());
  // A click redraws the tree under the pointer (new children): the card would cover them.
  svgEl.addEventListener("click", () => tooltip.hide(), true);

  root.addEventListener("keydown", (event) => {
    if (/** @type {Element} */ (event.target)?.closest?.("input, select, button")) return;
    const selected = model.get("selected") ?? null;
    if (event.key.startsWith("Arrow")) {
      const next = navigate(layout, selected, event.key);
      select_(next);
      control.reveal(next);
    } else if (event.key === "Enter" && selected !== null) {
      expand(selected);
    } else if ((event.key === "c" || event.key === " ") && selected !== null) {
      toggleCollapse(selected);
    } else if (event.key === "f") {
      control.fit();
    } else {
      return;
    }
    event.preventDefault();
    event.stopPropagation();
  });

  fit.addEventListener("click", () => control.fit());
  offView.addEventListener("click", () => control.fit());
  cutBox.addEventListener("change", () => draw());

  const unsubscribe = store.subscribe((change) => {
    draw();
    if (change.reset) control.fit({ auto: true });
    else if (change.newIds.length) control.afterGrowth(change.newIds);
  });
  const onError = () => showError(model.get("error"));
  const onControls = () => controls?.sync();
  model.on("change:selected", draw);
  model.on("change:selected_text", draw);
  model.on("change:pending", draw);
  model.on("change:error", onError);
  model.on("change:constraint_label", draw);
  for (const name of settings) model.on(`change:${name}`, onControls);

  showError(model.get("error"));
  draw();
  control.fit({ auto: true });
  // The first fit may run before the page has laid the view out.
  const frame = typeof requestAnimationFrame === "function"
    ? requestAnimationFrame(() => {
      if (!fontKnown) draw();
      if (control.wantsFit()) control.fit({ auto: true });
    }) : 0;

  return () => {
    tooltip.remove();
    if (frame && typeof cancelAnimationFrame === "function") cancelAnimationFrame(frame);
    control.dispose();
    unsubscribe();
    held.release();
    client.dispose();
    model.off("change:selected", draw);
    model.off("change:selected_text", draw);
    model.off("change:pending", draw);
    model.off("change:error", onError);
    model.off("change:constraint_label", draw);
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
