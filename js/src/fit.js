// Fitting the tree to its view, and the rule for when the view re-fits by itself:
//
// - a view opens fitted to the tree;
// - when nodes are added (a click's expansion, a run's steps), the view re-fits, unless the user
//   has panned or zoomed since the last fit; then their view is kept as long as every new node
//   is in it, and re-fits (forgetting their pan/zoom) only when a new node would be out of view;
// - the Fit button (and the `f` key) re-fit at any time.

export const FIT_PADDING = 20;
export const MAX_FIT_SCALE = 1.6;

/**
 * The zoom transform {k, x, y} that shows `bounds` (layout coordinates) centred in a
 * `width` x `height` view, never magnified beyond `maxScale`.
 * @param {import("./layout.js").Box} bounds
 * @param {number} width
 * @param {number} height
 * @param {{padding?: number, maxScale?: number}} [options]
 */
export function fitTransform(bounds, width, height, { padding = FIT_PADDING, maxScale = MAX_FIT_SCALE } = {}) {
  const w = Math.max(1, bounds.x1 - bounds.x0);
  const h = Math.max(1, bounds.y1 - bounds.y0);
  const k = Math.min(maxScale, (width - 2 * padding) / w, (height - 2 * padding) / h);
  const x = (width - w * k) / 2 - bounds.x0 * k;
  const y = (height - h * k) / 2 - bounds.y0 * k;
  return { k, x, y };
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
