import { afterEach, describe, expect, it } from "vitest";
import { placeAvoiding } from "../src/shared/float_tip.js";
import widget, { cellColor, cellTitle, whitespaceName } from "../src/lens/lens_widget.js";
import { decodeLens, topK } from "../src/lens/lens_data.js";
import { asDataView, fakeModel } from "./helpers.js";

// 3 layers (embed, 1, final) x 2 positions x k=2
function lensPayload() {
  const probs = Float32Array.of(0.1, 0.05, 0.2, 0.1, 0.4, 0.3, 0.5, 0.2, 0.9, 0.05, 0.6, 0.3);
  const ids = Int32Array.of(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12);
  return {
    n_layers: 3, n_positions: 2, k: 2,
    layer_names: ["embed", "1", "final"],
    input_tokens: ["The", " cat"],
    top_tokens: ["a", "b", "c", "d", " Paris", "e", "f", "g", " Paris", "h", "\n", "i"],
    token_ids: { dtype: "int32", shape: [3, 2, 2], data: asDataView(ids) },
    probs: { dtype: "float32", shape: [3, 2, 2], data: asDataView(probs) },
    entropy: { dtype: "float32", shape: [3, 2], data: asDataView(Float32Array.of(4, 3, 2, 2.5, 0.5, 1)) },
    kl_to_final: { dtype: "float32", shape: [3, 2], data: asDataView(Float32Array.of(3, 2, 1, 1, 0, 0)) },
    final_top_rank: { dtype: "int32", shape: [3, 2], data: asDataView(Int32Array.of(50, 7, 0, 3, 0, 0)) },
  };
}

const cleanups = [];
afterEach(() => { while (cleanups.length) cleanups.pop()(); });

function mount(state = {}) {
  const model = fakeModel({ lens: lensPayload(), color_by: "prob", pinned: null, error: "", ...state });
  const el = document.createElement("div");
  cleanups.push(widget.render({ model, el }));
  const cellAt = (layer, pos) => el.querySelector(`.inferviz-lens-cell[data-layer="${layer}"][data-pos="${pos}"]`);
  return { model, el, cellAt };
}

describe("lens data", () => {
  it("reads a cell's top-k in order", () => {
    const lens = decodeLens(lensPayload());
    expect(topK(lens, 2, 0).map((t) => t.token)).toEqual([" Paris", "h"]);
    expect(topK(lens, 2, 0)[0].tokenId).toBe(9);
  });
});

describe("LensWidget view", () => {
  it("renders one cell per layer and position with data attributes", () => {
    const { el, cellAt } = mount();
    expect(el.querySelector(".inferviz-lens")).not.toBeNull();
    expect(el.querySelectorAll(".inferviz-lens-cell")).toHaveLength(6);
    expect(cellAt(2, 0).textContent).toBe("·Paris");
    expect(cellAt(2, 1).textContent).toBe("↵");
  });

  it("puts the final layer on top", () => {
    const { el } = mount();
    expect(el.querySelector(".inferviz-lens-cell").getAttribute("data-layer")).toBe("2");
  });

  it("colours by probability or entropy", () => {
    const lens = decodeLens(lensPayload());
    expect(cellColor(lens, 2, 0, "prob").t).toBeCloseTo(0.9);
    expect(cellColor(lens, 0, 0, "entropy").t).toBeCloseTo(1);
    const { model, cellAt } = mount();
    const before = cellAt(0, 0).style.background;
    model.set("color_by", "entropy");
    expect(cellAt(0, 0).style.background).not.toBe(before);
  });

  it("marks cells whose top token is the final layer's", () => {
    const { cellAt } = mount();
    expect(cellAt(1, 0).classList.contains("matches-final")).toBe(true);
    expect(cellAt(0, 0).classList.contains("matches-final")).toBe(false);
  });

  it("click pins the cell and shows its distribution; a second click unpins", () => {
    const { model, el, cellAt } = mount();
    cellAt(1, 1).dispatchEvent(new MouseEvent("click", { bubbles: true }));
    expect(model.get("pinned")).toEqual([1, 1]);
    expect(model.saves).toBe(1);
    const panel = el.querySelector(".inferviz-lens-panel");
    expect(panel.textContent).toContain("layer 1");
    expect(panel.textContent).toContain("f");
    expect(panel.textContent).toContain("50.0%");
    cellAt(1, 1).dispatchEvent(new MouseEvent("click", { bubbles: true }));
    expect(model.get("pinned")).toBeNull();
  });

  it("hover shows the top-k in a floating card with labelled columns", () => {
    const { cellAt } = mount();
    cellAt(2, 0).dispatchEvent(new MouseEvent("mousemove", { bubbles: true }));
    const tip = document.body.querySelector(".inferviz-lens-tip");
    expect(tip.hidden).toBe(false);
    expect(tip.textContent).toContain("·Paris");
    expect(tip.textContent).toContain("KL to final");
    expect([...tip.querySelectorAll("th")].map((th) => th.textContent)).toEqual(["top tokens", "", "prob", "token id"]);
    expect(tip.textContent).not.toContain("#");
  });

  it("names whitespace tokens in words: in the card and in each cell's label", () => {
    const { cellAt } = mount();
    expect(cellAt(2, 1).textContent).toBe("↵");
    expect(cellAt(2, 1).getAttribute("aria-label")).toBe("layer final, after ·cat: top token ↵ (a newline) 60.0%");
    cellAt(2, 1).dispatchEvent(new MouseEvent("mousemove", { bubbles: true }));
    expect(document.body.querySelector(".inferviz-lens-tip").textContent).toContain("↵ (a newline)");
  });

  it("the colour switch writes color_by", () => {
    const { model, el } = mount();
    const picker = el.querySelector('select[name="color_by"]');
    picker.value = "entropy";
    picker.dispatchEvent(new Event("change"));
    expect(model.get("color_by")).toBe("entropy");
  });
});

describe("whitespace names and cell titles", () => {
  it("says what a token of only whitespace is", () => {
    expect(whitespaceName(" ")).toBe("a space");
    expect(whitespaceName("  ")).toBe("2 spaces");
    expect(whitespaceName(" \n")).toBe("space + newline");
    expect(whitespaceName(",")).toBe("");
    expect(whitespaceName(" Paris")).toBe("");
  });

  it("titles a punctuation cell with its layer, input and probability", () => {
    expect(cellTitle(decodeLens(lensPayload()), 0, 0)).toBe("layer embed, after The: top token a 10.0%");
  });
});

describe("the hover card beside a pinned panel", () => {
  const panel = { left: 600, right: 900, top: 100, bottom: 400 };
  it("goes to the pointer's other side rather than cover the panel", () => {
    const at = placeAvoiding(250, 150, 500, 200, 1400, 1000, panel);
    expect(at.left + 250).toBeLessThanOrEqual(panel.left);
  });

  it("stays where it is when it does not touch the panel", () => {
    expect(placeAvoiding(250, 150, 100, 200, 1400, 1000, panel)).toEqual({ left: 112, top: 212 });
  });
});

describe("lens legend", () => {
  it("always shows what a cell's colour means, with the scale's ends", () => {
    const { el } = mount();
    const legend = el.querySelector(".inferviz-lens-legend");
    expect(legend.textContent).toContain("cell colour: top-1 probability");
    expect(legend.textContent).toContain("0%");
    expect(legend.textContent).toContain("100%");
    expect(legend.textContent).toContain("· space, ↵ newline");
    expect(legend.querySelector(".inferviz-lens-legend-bar").style.background).toContain("linear-gradient");
  });

  it("follows the colouring: entropy runs from 0 to the lens's highest entropy", () => {
    const { el } = mount({ color_by: "entropy" });
    const legend = el.querySelector(".inferviz-lens-legend");
    expect(legend.textContent).toContain("cell colour: entropy (nats)");
    expect(legend.textContent).toContain("4"); // the highest entropy in lensPayload()
  });
});
