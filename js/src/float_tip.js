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
     */
    show(nodes, x, y, gap = 12, above = 0) {
      el.replaceChildren(...nodes);
      el.hidden = false;
      const { width, height } = el.getBoundingClientRect();
      const at = placeInViewport(width, height, x, y, window.innerWidth, window.innerHeight, gap, above);
      el.style.left = `${at.left}px`;
      el.style.top = `${at.top}px`;
    },
    hide() { el.hidden = true; },
    remove() { el.remove(); },
  };
}
