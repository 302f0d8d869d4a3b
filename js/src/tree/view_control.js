// Pan, zoom and fit for the tree's svg, with the re-fit rule of fit.js. Large trees move as one
// composited picture (a CSS transform of the whole svg) while a gesture lasts and are redrawn at
// the new transform when it ends: re-rendering tens of thousands of SVG elements on every frame
// is what makes big trees stutter.
import { select } from "d3-selection";
import { zoom, zoomIdentity } from "d3-zoom";
import { boxInView, fitTransform, MIN_AUTO_FIT_SCALE } from "./fit.js";
import { labelBox } from "./layout.js";

export const MIN_HEIGHT = 220;
export const FAR_SCALE = 0.28; // below this zoom labels are too small to read and are not drawn
export const BIG_TREE = 1500; // nodes drawn above which a gesture moves a composited picture

/**
 * @typedef {{k: number, x: number, y: number}} View
 */

/**
 * Whether nodes that just appeared should re-fit the view: always, unless the user panned or
 * zoomed since the last fit; then only when one of the new nodes' label boxes is out of view.
 * @param {{userMoved: boolean, boxes: import("./layout.js").Box[], view: View, width: number, height: number}} state
 */
export function refitAfterGrowth({ userMoved, boxes, view, width, height }) {
  if (!userMoved) return true;
  return boxes.some((box) => !boxInView(box, view, width, height));
}

/**
 * Whether the view shows only part of a tree whose bounds are `bounds` (1 px of slack).
 * @param {import("./layout.js").Box} bounds
 * @param {View} t
 * @param {number} width
 * @param {number} height
 */
export function showsPart(bounds, t, width, height) {
  const slack = 1 / t.k;
  return !boxInView({ x0: bounds.x0 + slack, x1: bounds.x1 - slack, y0: bounds.y0 + slack,
    y1: bounds.y1 - slack }, t, width, height);
}

/**
 * `onCoverage(partial)`: told whenever the view goes from showing the whole tree to part of
 * it or back (an automatic fit keeps labels readable and may leave the root out of view).
 * @param {{svg: SVGSVGElement, group: SVGGElement, maxHeight: number,
 *          layout: () => import("./layout.js").Layout,
 *          onCoverage?: (partial: boolean) => void}} options
 */
export function createViewControl({ svg, group, maxHeight, layout, onCoverage = () => {} }) {
  let height = MIN_HEIGHT;
  svg.setAttribute("height", String(height));
  /** @type {View} */
  let view = { k: 1, x: 24, y: height / 2 };
  let committed = view;
  let gesture = false;
  let userMoved = false;
  let needsFit = true;
  // The svg's width, read before the tree is redrawn: reading it after would force the browser
  // to lay out every new node synchronously.
  let viewWidth = 0;
  const width = () => viewWidth || (viewWidth = svg.clientWidth || 0);

  /** @type {boolean | null} */
  let partial = null;
  function coverage() {
    const { bounds, root } = layout();
    const w = width();
    const now = Boolean(root && w && showsPart(bounds, view, w, height));
    if (now !== partial) onCoverage(partial = now);
  }

  function apply() {
    group.setAttribute("transform", `translate(${view.x},${view.y}) scale(${view.k})`);
    svg.classList.toggle("far", view.k < FAR_SCALE);
    coverage();
  }

  const behavior = zoom()
    // The extent is known here; d3's default reads the svg's size, forcing a synchronous layout.
    .extent(() => [[0, 0], [width() || 1, height]])
    .scaleExtent([0.01, 4])
    .filter((event) => !event.button && event.type !== "dblclick")
    .on("start", () => {
      committed = view;
      gesture = layout().byId.size > BIG_TREE;
      if (gesture) svg.style.willChange = "transform";
    })
    .on("zoom", (event) => {
      const t = event.transform;
      view = { k: t.k, x: t.x, y: t.y };
      if (event.sourceEvent) userMoved = true;
      if (!gesture) { apply(); return; }
      const s = view.k / committed.k;
      svg.style.transform = `translate(${view.x - s * committed.x}px,${view.y - s * committed.y}px) scale(${s})`;
    })
    .on("end", () => {
      if (!gesture) return;
      gesture = false;
      svg.style.transform = "";
      svg.style.willChange = "";
      apply();
    });
  let zoomReady = true;
  try { select(svg).call(behavior); } catch { zoomReady = false; } // no layout engine (tests)

  /** @param {View} t */
  function setView(t) {
    view = t;
    if (zoomReady) {
      try {
        behavior.scaleExtent([Math.min(0.01, t.k / 2), 4]);
        select(svg).call(behavior.transform, zoomIdentity.translate(t.x, t.y).scale(t.k));
        return;
      } catch { zoomReady = false; }
    }
    apply();
  }

  /**
   * Fit the tree in the view; grows the canvas (up to its maximum height) first. `auto`: a fit
   * the view makes by itself (a new tree, new nodes) keeps labels readable
   * (`MIN_AUTO_FIT_SCALE`), showing `focus` (default: the tree's newest end) when the whole
   * tree does not fit; trees over `BIG_TREE` nodes, and the Fit button, show everything.
   * @param {{auto?: boolean, focus?: import("./layout.js").Box | null}} [options]
   */
  function fit({ auto = false, focus = null } = {}) {
    const { bounds, root } = layout();
    const want = Math.min(maxHeight, Math.max(MIN_HEIGHT, Math.ceil(bounds.y1 - bounds.y0 + 48)));
    if (want > height) {
      height = want;
      svg.setAttribute("height", String(height));
    }
    const w = width();
    if (!w || !root) { needsFit = true; apply(); return; }
    needsFit = false;
    userMoved = false;
    const minScale = auto && layout().byId.size <= BIG_TREE ? MIN_AUTO_FIT_SCALE : 0;
    setView(fitTransform(bounds, w, height, { minScale, focus }));
  }

  /** After nodes `ids` appeared (see {@link refitAfterGrowth}). @param {number[]} ids */
  function afterGrowth(ids) {
    const byId = layout().byId;
    const boxes = ids.flatMap((id) => (byId.has(id) ? [labelBox(byId.get(id))] : []));
    if (needsFit || refitAfterGrowth({ userMoved, boxes, view, width: width(), height })) {
      const focus = boxes.length ? {
        x0: Math.min(...boxes.map((b) => b.x0)), x1: Math.max(...boxes.map((b) => b.x1)),
        y0: Math.min(...boxes.map((b) => b.y0)), y1: Math.max(...boxes.map((b) => b.y1)),
      } : null;
      fit({ auto: true, focus });
    }
  }

  /** Pan so that node `id` is in view (keyboard moves can leave the visible area). */
  function reveal(/** @type {number | null} */ id) {
    const node = id === null ? undefined : layout().byId.get(id);
    const w = width();
    if (!node || !w || boxInView(labelBox(node), view, w, height)) return;
    setView({ k: view.k, x: w / 2 - node.y * view.k, y: height / 2 - node.x * view.k });
  }

  // A view created while hidden (a Voila tab, a collapsed output) fits once it has a size.
  /** @type {ResizeObserver | null} */
  let resizer = null;
  if (typeof ResizeObserver !== "undefined") {
    resizer = new ResizeObserver((entries) => {
      viewWidth = entries[0]?.contentRect.width || viewWidth;
      if (needsFit && width()) fit({ auto: true });
      else coverage(); // a narrower view may now show only part of the tree
    });
    resizer.observe(svg);
  }

  return {
    fit,
    afterGrowth,
    reveal,
    /** Tell `onCoverage` again if the tree changed under the view (after a redraw). */
    coverage,
    /** Read the svg's width now (call before redrawing). */
    readWidth() { viewWidth = svg.clientWidth || viewWidth; },
    /** Whether the view should still fit itself (not fitted yet, or the user has not moved it). */
    wantsFit: () => needsFit || !userMoved,
    dispose() { resizer?.disconnect(); },
  };
}
