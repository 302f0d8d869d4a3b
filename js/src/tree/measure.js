// Label widths in pixels, measured with a canvas in a browser (the font the labels are drawn
// in), estimated from character counts where there is no canvas (happy-dom, node).

export const FONT_SIZE = 12;
const FALLBACK_FONT = `${FONT_SIZE}px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace`;
// Monospace glyphs are ~0.6 em wide; wide (CJK, emoji) characters take two cells.
const CHAR_EM = 0.62;

/**
 * Width estimate for `text` at `FONT_SIZE` px in a monospace font (errs on the wide side).
 * @param {string} text
 */
export function estimateWidth(text) {
  let cells = 0;
  for (const ch of text) {
    const code = ch.codePointAt(0) ?? 0;
    cells += code >= 0x1100 && (code <= 0x115f || (code >= 0x2e80 && code <= 0xa4cf)
      || (code >= 0xac00 && code <= 0xd7a3) || (code >= 0xf900 && code <= 0xfaff)
      || (code >= 0xfe30 && code <= 0xfe4f) || (code >= 0xff00 && code <= 0xff60)
      || (code >= 0x1f300 && code <= 0x1faff) || (code >= 0x20000)) ? 2 : 1;
  }
  return cells * CHAR_EM * FONT_SIZE;
}

/**
 * A measuring function for labels drawn in `font` (a CSS font shorthand); widths are cached.
 * Falls back to {@link estimateWidth} when canvas text metrics are unavailable.
 * @param {string} [font]
 * @returns {(text: string) => number}
 */
export function createMeasurer(font = FALLBACK_FONT) {
  /** @type {CanvasRenderingContext2D | null} */
  let ctx = null;
  try {
    const canvas = typeof document !== "undefined" ? document.createElement("canvas") : null;
    ctx = canvas && typeof canvas.getContext === "function" ? canvas.getContext("2d") : null;
    if (ctx && typeof ctx.measureText === "function") ctx.font = font;
    if (!ctx || typeof ctx.measureText !== "function" || !(ctx.measureText("MM").width > 0)) ctx = null;
  } catch {
    ctx = null;
  }
  /** @type {Map<string, number>} */
  const cache = new Map();
  return (text) => {
    let width = cache.get(text);
    if (width === undefined) {
      // Measured widths get 4% slack for sub-pixel differences between canvas and SVG text.
      width = ctx ? ctx.measureText(text).width * 1.04 : estimateWidth(text);
      cache.set(text, width);
    }
    return width;
  };
}

/**
 * The CSS font of `el` as a canvas font shorthand ("" if the browser does not say).
 * @param {Element} el
 */
export function fontOf(el) {
  try {
    const style = getComputedStyle(el);
    if (!style.fontFamily || !style.fontSize) return "";
    return `${style.fontStyle || "normal"} ${style.fontWeight || "400"} ${style.fontSize} ${style.fontFamily}`;
  } catch {
    return "";
  }
}
