import { describe, expect, it } from "vitest";
import { CONTROLS_LEAD, controlSpec, createControls, parseControl } from "../src/tree/controls.js";
import { fakeModel, PARAM_SCHEMA } from "./helpers.js";

const spec = (name) => controlSpec(PARAM_SCHEMA.find((row) => row.name === name));

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
    const model = fakeModel({ k: 5, temperature: 1, top_k: null, top_p: null, min_p: null,
      param_schema: PARAM_SCHEMA });
    const { bar } = createControls(model, () => {});
    expect(bar.textContent.startsWith(CONTROLS_LEAD)).toBe(true);
    expect(CONTROLS_LEAD).toBe("clicks on a node add:");
    const labels = [...bar.querySelectorAll("label")];
    expect(labels.map((l) => l.textContent)).toEqual(["k", "temperature", "top_k", "top_p", "min_p"]);
    expect(labels.every((l) => l.title.length > 10)).toBe(true);
  });
});

describe("boxes from the kernel's schema", () => {
  it("builds one box per schema row, with its range and an off placeholder when optional", () => {
    const row = { name: "cap", integer: false, default: null, low: 0, high: 2, low_open: true,
      high_open: false, optional: true, help: "clamp logits above cap", step: 0.5 };
    const model = fakeModel({ k: 5, cap: null, param_schema: [PARAM_SCHEMA[0], row] });
    const { bar, inputs } = createControls(model, () => {});
    expect([...bar.querySelectorAll("label")].map((l) => l.textContent)).toEqual(["k", "cap"]);
    const cap = inputs.get("cap");
    expect([cap.min, cap.max, cap.step, cap.placeholder]).toEqual(["0.05", "2", "0.5", "off"]);
    cap.value = "1.5";
    cap.dispatchEvent(new Event("change"));
    expect(model.get("cap")).toBe(1.5);
  });
  it("shows no box without a schema", () => {
    const { bar } = createControls(fakeModel({}), () => {});
    expect(bar.querySelectorAll("label").length).toBe(0);
  });
});
