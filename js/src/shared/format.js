// Faithful, readable text for tokens and numbers: whitespace stays visible, bytes stay bytes.

const VISIBLE = { " ": "·", "\n": "↵", "\t": "→", "\r": "␍" };

/**
 * A token's text with whitespace made visible: spaces '·', newlines '↵', tabs '→', carriage
 * returns '␍', other control characters as <0xNN>. Byte tokens like "<0xE2>" are kept as is.
 * @param {string | null | undefined} text
 * @returns {string}
 */
export function displayToken(text) {
  if (text === null || text === undefined) return "";
  if (text === "") return "∅";
  let out = "";
  for (const ch of text) {
    if (ch in VISIBLE) out += VISIBLE[ch];
    else if (ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f) {
      out += `<0x${ch.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}>`;
    } else out += ch;
  }
  return out;
}

/**
 * Shorten to at most `max` characters (by code point), with an ellipsis in the middle.
 * @param {string} text
 * @param {number} max
 */
export function truncate(text, max) {
  const chars = Array.from(text);
  if (chars.length <= max) return text;
  const head = Math.ceil((max - 1) / 2);
  const tail = Math.floor((max - 1) / 2);
  return chars.slice(0, head).join("") + "…" + chars.slice(chars.length - tail).join("");
}

/**
 * @param {any} value
 * @param {number} [digits]
 * @returns {string}
 */
export function formatNumber(value, digits = 3) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (typeof value === "string") {
    // Non-finite floats arrive as strings in JSON columns.
    if (value === "inf") return "∞";
    if (value === "-inf") return "-∞";
    return value;
  }
  if (typeof value !== "number") return JSON.stringify(value);
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "∞";
  if (value === -Infinity) return "-∞";
  if (Number.isInteger(value)) return String(value);
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e5)) return value.toExponential(2);
  return value.toFixed(digits);
}

/**
 * @param {number | null} p
 */
export function formatProb(p) {
  if (p === null || p === undefined || Number.isNaN(p)) return "—";
  if (p === 0) return "0";
  if (p < 0.001) return p.toExponential(1);
  return `${(p * 100).toFixed(p >= 0.1 ? 1 : 2)}%`;
}

/**
 * Keep the end of `text` (at most `max` characters, by code point), with a leading ellipsis:
 * for prompts, whose last words lead into the tree.
 * @param {string} text
 * @param {number} max
 */
export function truncateStart(text, max) {
  const chars = Array.from(text);
  if (chars.length <= max) return text;
  return "…" + chars.slice(chars.length - max + 1).join("");
}
