import { describe, expect, it } from "vitest";
import { CONTROLS, CONTROLS_LEAD, createControls, parseControl } from "../src/controls.js";
import { fakeModel } from "./helpers.js";

const spec = (name) => CONTROLS.find((c) => c.name === name);

describe("parseControl", () => {
  it("reads integers and numbers", () => {
    expect(parseControl("5", spec("k"))).toBe(5);
    expect(parseControl("0.7", spec("temperature"))).toBe(0.7);
  });
  it("turns an empty optional field into null (off)", () => {
    expect(parseControl(" ", spec("top_p"))).toBeNull();
    expect(parseControl("", spec("k"))).toBeUndefined();
  });
  it("rejects text and non-integers for integer settings", () => {
    expect(parseControl("abc", spec("temperature"))).toBeUndefined();
    expect(parseControl("2.5", spec("top_k"))).toBeUndefined();
  });
});

describe("the click settings row", () => {
  it("says the boxes shape what a click adds, and explains each box", () => {
    const model = fakeModel({ k: 5, temperature: 1, top_k: null, top_p: null, min_p: null });
    const { bar } = createControls(model, () => {});
    expect(bar.textContent.startsWith(CONTROLS_LEAD)).toBe(true);
    expect(CONTROLS_LEAD).toBe("clicks on a node add:");
    const labels = [...bar.querySelectorAll("label")];
    expect(labels.map((l) => l.textContent)).toEqual(["k", "temperature", "top_k", "top_p", "min_p"]);
    expect(labels.every((l) => l.title.length > 10)).toBe(true);
  });
});
