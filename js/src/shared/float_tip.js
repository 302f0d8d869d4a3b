// Hover cards that float above the page: `position: fixed` in document.body, so no
// `overflow: hidden` box around a widget (a Voila/Lab output area, the tree's canvas) clips
// them; placed beside the pointer or under a token, and flipped to stay inside the viewport.

/**
 * Top-left corner for a card of `width` x `height` near the point (`x`, `y`) in a viewport of
 * `vw` x `vh`: right of and below the point by `gap`, flipped left / above when it would
 * leave the viewport, and never off its top-left edge.
 * @param {number} width @param {number} height @param {number} x @param {number} y
 * @param {number} vw @param {number} vh @param {number} [gap]
 * @param {number} [above] how far above `y` the card goes when flipped (the anchor's height)
 */
export function placeInViewport(width, height, x, y, vw, vh, gap = 12, above = 0) {
  let left = x + gap;
  if (left + width > vw - 4) left = x - gap - width;
  let top = y + gap;
  if (top + height > vh - 4) top = y - above - gap - height;
  return { left: Math.max(4, Math.min(left, vw - width - 4)), top: Math.max(4, top) };
}

/**
 * As `placeInViewport`, and off the box `avoid` (viewport coordinates: a panel the card must not
 * cover): a card that would overlap it goes to the pointer's other side, and if that overlaps
 * too (or leaves the viewport), above or below the box.
 * @param {number} width @param {number} height @param {number} x @param {number} y
 * @param {number} vw @param {number} vh
 * @param {{left: number, right: number, top: number, bottom: number} | null} avoid
 * @param {number} [gap]
 */
export function placeAvoiding(width, height, x, y, vw, vh, avoid, gap = 12) {
  const at = placeInViewport(width, height, x, y, vw, vh, gap);
  if (!avoid) return at;
  const overlaps = (/** @type {{left: number, top: number}} */ p) => p.left < avoid.right && p.left + width > avoid.left
    && p.top < avoid.bottom && p.top + height > avoid.top;
  if (!overlaps(at)) return at;
  const options = [
    { left: x - gap - width, top: at.top },
    { left: x + gap, top: at.top },
    { left: at.left, top: avoid.bottom + gap },
    { left: at.left, top: avoid.top - gap - height },
  ].filter((p) => p.left >= 4 && p.left + width <= vw - 4 && p.top >= 4);
  return options.find((p) => !overlaps(p)) ?? at;
}

/**
 * A floating card with `className` (its look comes from the widget's CSS).
 * @param {string} className
 */
export function createFloatingTip(className) {
  const el = document.createElement("div");
  el.className = `inferviz-floating ${className}`;
  el.hidden = true;
  el.setAttribute("role", "tooltip");
  document.body.appendChild(el);
  return {
    el,
    /**
     * Show `nodes` near the viewport point (`x`, `y`); `above`: the anchor's height, to flip
     * over it.
     * @param {Node[]} nodes @param {number} x @param {number} y @param {number} [gap]
     * @param {number} [above]
     * @param {{left: number, right: number, top: number, bottom: number} | null} [avoid] a box
     *   (viewport coordinates) the card must not cover
     */
    show(nodes, x, y, gap = 12, above = 0, avoid = null) {
      el.replaceChildren(...nodes);
      el.hidden = false;
      const { width, height } = el.getBoundingClientRect();
      const at = avoid
        ? placeAvoiding(width, height, x, y, window.innerWidth, window.innerHeight, avoid, gap)
        : placeInViewport(width, height, x, y, window.innerWidth, window.innerHeight, gap, above);
      el.style.left = `${at.left}px`;
      el.style.top = `${at.top}px`;
    },
    hide() { el.hidden = true; },
    remove() { el.remove(); },
  };
}
