// Fitting the tree to its view, and the rule for when the view re-fits by itself:
//
// - a view opens fitted to the tree;
// - when nodes are added (a click's expansion, a run's steps), the view re-fits, unless the user
//   has panned or zoomed since the last fit; then their view is kept as long as every new node
//   is in it, and re-fits (forgetting their pan/zoom) only when a new node would be out of view;
// - the Fit button (and the `f` key) re-fit at any time.

export const FIT_PADDING = 20;
export const MAX_FIT_SCALE = 1.6;
// Automatic fits never shrink labels (12 px in layout units) below 11 px on screen: a long
// chain is shown at a readable size around its newest nodes, and the rest is a pan away.
// The Fit button (and `f`) shows the whole tree whatever the size.
export const MIN_AUTO_FIT_SCALE = 11 / 12;

/**
 * The zoom transform {k, x, y} that shows `bounds` (layout coordinates) centred in a
 * `width` x `height` view, never magnified beyond `maxScale`.
 * @param {import("./layout.js").Box} bounds
 * @param {number} width
 * @param {number} height
 * @param {{padding?: number, maxScale?: number}} [options]
 */
export function fitTransform(bounds, width, height,
  { padding = FIT_PADDING, maxScale = MAX_FIT_SCALE, minScale = 0, focus = null } = {}) {
  const w = Math.max(1, bounds.x1 - bounds.x0);
  const h = Math.max(1, bounds.y1 - bounds.y0);
  const k = Math.max(minScale, Math.min(maxScale, (width - 2 * padding) / w, (height - 2 * padding) / h));
  // Along each axis: centred when the bounds fit, else the window of the bounds that shows
  // `focus` (a box, default the bounds' far end: the newest tokens), kept inside the bounds.
  const axis = (/** @type {number} */ lo, /** @type {number} */ hi, /** @type {number} */ view,
    /** @type {number} */ want) => {
    const visible = (view - 2 * padding) / k;
    if (hi - lo <= visible) return (view - (hi - lo) * k) / 2 - lo * k;
    const start = Math.max(lo, Math.min(hi - visible, want - visible / 2));
    return padding - start * k;
  };
  const fx = focus ? (focus.x0 + focus.x1) / 2 : bounds.x1;
  const fy = focus ? (focus.y0 + focus.y1) / 2 : (bounds.y0 + bounds.y1) / 2;
  return { k, x: axis(bounds.x0, bounds.x1, width, fx), y: axis(bounds.y0, bounds.y1, height, fy) };
}

/**
 * Whether `box` (layout coordinates) lies inside the view under transform `t`.
 * @param {import("./layout.js").Box} box
 * @param {{k: number, x: number, y: number}} t
 * @param {number} width
 * @param {number} height
 */
export function boxInView(box, t, width, height) {
  return box.x0 * t.k + t.x >= 0 && box.x1 * t.k + t.x <= width
    && box.y0 * t.k + t.y >= 0 && box.y1 * t.k + t.y <= height;
}
