import { describe, expect, it } from "vitest";
import { displayToken, formatNumber, formatProb, truncate } from "../src/shared/format.js";

describe("displayToken", () => {
  it("shows spaces as middle dots", () => expect(displayToken(" the")).toBe("·the"));
  it("shows newlines and tabs", () => expect(displayToken("\n\tx")).toBe("↵→x"));
  it("keeps byte tokens as they are", () => expect(displayToken("<0xE2>")).toBe("<0xE2>"));
  it("shows other control characters as bytes", () => expect(displayToken("\u0001")).toBe("<0x01>"));
  it("marks the empty token", () => expect(displayToken("")).toBe("∅"));
  it("keeps non-ASCII text", () => expect(displayToken(" café 東京")).toBe("·café·東京"));
});

describe("formatting numbers", () => {
  it("formats infinities and missing values", () => {
    expect(formatNumber(-Infinity)).toBe("-∞");
    expect(formatNumber(null)).toBe("—");
    expect(formatNumber("-inf")).toBe("-∞");
    expect(formatNumber(true)).toBe("yes");
  });
  it("formats probabilities as percentages", () => {
    expect(formatProb(0.5)).toBe("50.0%");
    expect(formatProb(0)).toBe("0");
  });
  it("truncates by code point with an ellipsis", () => {
    expect(truncate("abcdefghij", 5)).toBe("ab…ij");
    expect(truncate("abc", 5)).toBe("abc");
  });
});
