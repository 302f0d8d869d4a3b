import { afterEach, describe, expect, it } from "vitest";
import widget, { alternativesCard, shade, tokenText } from "../src/text/text_view.js";
import { probColor } from "../src/shared/color.js";
import { fakeModel } from "./helpers.js";

function tokens() {
  return [
    { node_id: 1, token: " Paris", prob: 0.9, processed_prob: 0.9, rank: 0, entropy: 0.4, labels: "greedy, beam",
      alternatives: [
        { node_id: 1, token: " Paris", prob: 0.9, chosen: true },
        { node_id: 4, token: " Lyon", prob: 0.05, chosen: false },
      ] },
    { node_id: 2, token: ".\n", prob: 0.02, processed_prob: 0.02, rank: 3, entropy: 2.1, labels: "",
      alternatives: [{ node_id: 2, token: ".\n", prob: 0.02, chosen: true }] },
  ];
}

const cleanups = [];
afterEach(() => { while (cleanups.length) cleanups.pop()(); });

function mount(state = {}) {
  const model = fakeModel({ prompt: "The capital is", tokens: tokens(), node_id: 2, selected: null, k: 5, ...state });
  const el = document.createElement("div");
  cleanups.push(widget.render({ model, el }));
  const span = (id) => el.querySelector(`.inferviz-text-token[data-node-id="${id}"]`);
  return { model, el, span };
}

describe("TextView shading", () => {
  it("shades each token by its probability on the shared probability ramp", () => {
    const { span } = mount();
    expect(span(1).style.background).toBe(probColor(0.9).replace(/,/g, ", "));
    expect(span(2).style.background).toBe(probColor(0.02).replace(/,/g, ", "));
    expect(span(1).style.background).not.toBe(span(2).style.background);
  });

  it("uses light text on dark (probable) tokens and dark text on light ones", () => {
    expect(shade(0.9).color).toBe("#111"); // dark text on viridis' light end
    expect(shade(0.1).color).toBe("#fff"); // light text on its dark end
    expect(shade(NaN).background).toBe("rgb(220,220,220)");
  });

  it("shows the prompt, the tokens' real text with visible newlines, and a legend", () => {
    const { el, span } = mount();
    expect(el.querySelector(".inferviz-text-prompt").textContent).toBe("The capital is");
    expect(span(1).textContent).toBe(" Paris");
    expect(span(2).textContent).toBe(".↵\n");
    expect(tokenText("")).toBe("∅");
    const legend = el.querySelector(".inferviz-text-legend");
    expect(legend.textContent).toContain("token probability");
    expect(legend.textContent).toContain("0%");
    expect(legend.textContent).toContain("100%");
  });

  it("redraws when the tokens change", () => {
    const { model, el } = mount();
    model.set("tokens", tokens().slice(0, 1));
    expect(el.querySelectorAll(".inferviz-text-token")).toHaveLength(1);
  });
});

describe("TextView hover", () => {
  it("hovering a token shows its alternatives with probabilities, the chosen one marked", () => {
    const { el, span } = mount();
    span(1).dispatchEvent(new MouseEvent("mouseover", { bubbles: true }));
    // the card floats in document.body (position: fixed), out of any clipping box
    expect(el.querySelector(".inferviz-text-tip")).toBeNull();
    const tip = document.body.querySelector(".inferviz-floating.inferviz-text-tip:not([hidden])");
    expect(tip).not.toBeNull();
    expect(tip.parentElement).toBe(document.body);
    const rows = [...tip.querySelectorAll(".inferviz-text-alts tr")];
    expect(rows.map((r) => r.cells[1].textContent)).toEqual(["·Paris", "·Lyon"]);
    expect(rows[0].classList.contains("chosen")).toBe(true);
    expect(rows[1].cells[3].textContent).toBe("5.00%");
    expect(tip.textContent).toContain("greedy, beam");
    span(1).dispatchEvent(new MouseEvent("mouseout", { bubbles: true }));
    expect(tip.hidden).toBe(true);
  });

  it("says when the tree holds no alternative yet", () => {
    const card = alternativesCard(tokens()[1]);
    expect(card.textContent).toContain("expand the parent");
  });
});

describe("TextView click", () => {
  it("clicking a token sets selected to its node id and saves", () => {
    const { model, span } = mount();
    span(2).dispatchEvent(new MouseEvent("click", { bubbles: true }));
    expect(model.get("selected")).toBe(2);
    expect(model.saves).toBe(1);
    expect(span(2).classList.contains("selected")).toBe(true);
  });

  it("clicking outside a token changes nothing", () => {
    const { model, el } = mount();
    el.querySelector(".inferviz-text-prompt").dispatchEvent(new MouseEvent("click", { bubbles: true }));
    expect(model.get("selected")).toBe(null);
    expect(model.saves).toBe(0);
  });

  it("cleanup removes its model listeners", () => {
    const model = fakeModel({ prompt: "", tokens: tokens(), selected: null });
    const cleanup = widget.render({ model, el: document.createElement("div") });
    expect(model.listenerCount()).toBeGreaterThan(0);
    cleanup();
    expect(model.listenerCount()).toBe(0);
  });
});

describe("built bundle", () => {
  it("inferviz/static/text_view.js renders shaded tokens (run `npm run build` first)", async () => {
    const { existsSync } = await import("node:fs");
    const url = new URL("../../inferviz/static/text_view.js", import.meta.url);
    if (!existsSync(url)) return;
    const { default: built } = await import(url.href);
    const model = fakeModel({ prompt: "Hi", tokens: tokens(), selected: null });
    const el = document.createElement("div");
    cleanups.push(built.render({ model, el }));
    expect(el.querySelectorAll(".inferviz-text-token")).toHaveLength(2);
  });
});
