import { describe, expect, it } from "vitest";
import { CONTROLS, parseControl } from "../src/controls.js";

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
