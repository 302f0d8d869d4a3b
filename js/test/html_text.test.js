// Markup in text that reaches a view (token, prompt, mark, layer name, error) is shown as text
// and never becomes an element: the escape helper itself, and each widget that draws text.
import { afterEach, describe, expect, it } from "vitest";
import { esc } from "../src/shared/html_text.js";
import treeWidget from "../src/tree/tree_widget.js";
import textView from "../src/text/text_view.js";
import lensWidget from "../src/lens/lens_widget.js";
import { asDataView, encodeTable, fakeModel, sampleColumns, treeState } from "./helpers.js";

const IMG = "<img src=x onerror=\"window.__xss=1\">";
const SCRIPT = "<script>window.__xss=1</script>";
const QUOTES = "' onmouseover='window.__xss=1' \"";

const cleanups = [];
afterEach(() => { while (cleanups.length) cleanups.pop()(); document.body.replaceChildren(); });

function mount(widget, state) {
  const el = document.createElement("div");
  document.body.appendChild(el);
  cleanups.push(widget.render({ model: fakeModel(state), el }));
  return el;
}

/** No element the markup could have made, and no attribute it could have broken into. */
function expectNoInjection(el) {
  expect(el.querySelector("img, script:not([type])")).toBeNull();
  expect(el.querySelector("[onerror], [onmouseover]")).toBeNull();
}

describe("esc", () => {
  it("escapes the five characters that can start markup or end an attribute", () => {
    expect(esc(`a&b<c>d"e'f`)).toBe("a&#38;b&#60;c&#62;d&#34;e&#39;f");
  });

  it("turns any value into text, nothing into an empty string", () => {
    expect(esc(3)).toBe("3");
    expect(esc(null)).toBe("");
    expect(esc(undefined)).toBe("");
  });
});

describe("markup in text is shown, not run", () => {
  it("in the tree's node labels and marks", () => {
    const nodes = encodeTable(sampleColumns({ token: [SCRIPT, IMG, QUOTES, "\n"], mark: [null, IMG, null, null] }));
    const el = mount(treeWidget, treeState({ nodes, selected: 1, selected_text: `${SCRIPT}${IMG}` }));
    expectNoInjection(el);
    // Labels show spaces as "·" and may be shortened: the markup's own characters are there.
    expect(el.querySelector('.inferviz-node[data-node-id="1"] .tok').textContent).toMatch(/^<img·src/);
    expect(el.querySelector('.inferviz-node[data-node-id="1"] .inferviz-badge').textContent).toContain("<img");
    expect(el.querySelector('.inferviz-node[data-node-id="2"] .tok').textContent).toMatch(/^'·onm/);
    expect(el.querySelector('.inferviz-node.root .tok').textContent).toContain("<script>");
  });

  it("in the tree's error banner", () => {
    const el = mount(treeWidget, treeState({ error: `ServerError: 500: ${IMG}` }));
    expectNoInjection(el);
    expect(el.querySelector(".inferviz-error").textContent).toContain(IMG);
  });

  it("in the text view's prompt, tokens and alternatives", () => {
    const alternatives = [{ node_id: 1, token: IMG, prob: 0.9, chosen: true }];
    const tokens = [{ node_id: 1, token: IMG, prob: 0.9, processed_prob: 0.9, rank: 0, entropy: 0.4,
      labels: QUOTES, alternatives }];
    const el = mount(textView, { prompt: SCRIPT, tokens, node_id: 1, selected: 1, k: 5 });
    expectNoInjection(el);
    expect(el.textContent).toContain(SCRIPT);
    expect(el.querySelector('.inferviz-text-token[data-node-id="1"]').textContent).toContain("<img");
  });

  it("in the lens's input tokens, layer names, top tokens and error", () => {
    const one = (v) => ({ dtype: "float32", shape: [1, 1], data: asDataView(Float32Array.of(v)) });
    const lens = {
      n_layers: 1, n_positions: 1, k: 1, layer_names: [SCRIPT], input_tokens: [IMG], top_tokens: [QUOTES],
      token_ids: { dtype: "int32", shape: [1, 1, 1], data: asDataView(Int32Array.of(5)) },
      probs: { dtype: "float32", shape: [1, 1, 1], data: asDataView(Float32Array.of(0.5)) },
      entropy: one(1), kl_to_final: one(0),
      final_top_rank: { dtype: "int32", shape: [1, 1], data: asDataView(Int32Array.of(0)) },
    };
    const el = mount(lensWidget, { lens, color_by: "prob", pinned: [0, 0], error: IMG });
    expectNoInjection(el);
    expect(el.textContent).toContain(SCRIPT);
    expect(el.textContent).toContain("<img");
  });
});
