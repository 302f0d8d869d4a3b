// One way to put text into markup: `esc(value)`, the JS twin of inferviz/html_text.py. Views
// set text with `textContent` where they can; where markup is written as a string (the tree's
// SVG, parsed once for speed), every piece of text in it goes through here, so markup in a
// token, prompt or mark is shown, never run.

/**
 * `String(value)` with `& < > " '` written as numeric character references: safe in element
 * text and in quoted attributes, in HTML and in SVG alike.
 * @param {unknown} value
 * @returns {string}
 */
export const esc = (value) => String(value ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
