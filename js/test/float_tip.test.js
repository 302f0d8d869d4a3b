import { describe, expect, it } from "vitest";
import { createFloatingTip, placeInViewport } from "../src/shared/float_tip.js";

describe("placeInViewport", () => {
  it("puts the card right of and below the point when it fits", () => {
    expect(placeInViewport(100, 50, 10, 10, 800, 600)).toEqual({ left: 22, top: 22 });
  });

  it("flips left and above near the right and bottom edges, never off the top-left", () => {
    expect(placeInViewport(100, 50, 790, 590, 800, 600)).toEqual({ left: 678, top: 528 });
    expect(placeInViewport(300, 700, 100, 100, 800, 600)).toEqual({ left: 112, top: 4 });
    // flipped above an anchor of height 20 (a token): above its top, not over it
    expect(placeInViewport(100, 50, 10, 590, 800, 600, 4, 20).top).toBe(516);
  });
});

describe("createFloatingTip", () => {
  it("lives in document.body, shows content and is removed with its widget", () => {
    const tip = createFloatingTip("x-tip");
    const text = document.createElement("span");
    text.textContent = "hello";
    tip.show([text], 5, 5);
    expect(tip.el.parentElement).toBe(document.body);
    expect(tip.el.hidden).toBe(false);
    expect(tip.el.textContent).toBe("hello");
    tip.hide();
    expect(tip.el.hidden).toBe(true);
    tip.remove();
    expect(document.querySelector(".x-tip")).toBeNull();
  });
});
