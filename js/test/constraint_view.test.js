import { afterEach, describe, expect, it } from "vitest";
import { decodeTable } from "../src/shared/columns.js";
import { ghostId, layoutTree } from "../src/tree/layout.js";
import { cutAlternatives, nodeOverlay, tooltipRows } from "../src/tree/overlays.js";
import { renderTextView, shadeProb } from "../src/text/text_view.js";
import widget from "../src/tree/tree_widget.js";
import { encodeTable, fakeModel, sampleColumns, treeState } from "./helpers.js";

// Nodes 1 and 2 grown under a regex; the model's likelier "oken" (raw 30%) and "<0x9B>" were cut.
const CUT = [[283, "oken", Math.log(0.3)], [250, "<0x9B>", Math.log(0.05)]];
const constrained = () => ({
  constraint: [null, "regex /[a-z]+/", "regex /[a-z]+/", null],
  log_legal_mass: [null, Math.log(0.4), Math.log(0.4), null],
  legal_rank: [null, 0, 1, null],
  best_illegal_token: [null, "oken", "oken", null],
  constraint_margin: [null, 0.9, 0.9, null],
  cut_alternatives: [null, CUT, CUT, null],
});
const table = () => decodeTable(encodeTable(sampleColumns(constrained())));

const cleanups = [];
afterEach(() => { while (cleanups.length) cleanups.pop()(); document.body.replaceChildren(); });

describe("constrained nodes", () => {
  it("badge the share the constraint cut on the best legal sibling only", () => {
    const t = table();
    expect(nodeOverlay(t, 1).constrained).toBe(true);
    expect(nodeOverlay(t, 1).classes).toContain("constrained");
    expect(nodeOverlay(t, 1).badges).toEqual(["cut 60%"]);
    expect(nodeOverlay(t, 2).badges).toEqual([]);
    expect(nodeOverlay(t, 3).constrained).toBeFalsy();
  });

  it("say the legal mass and the model's best illegal token on hover", () => {
    const rows = Object.fromEntries(tooltipRows(table(), 1));
    expect(rows["legal mass at parent"]).toMatch(/^40(\.0+)?% \(the constraint cut the rest\)$/);
    expect(rows["model's best (illegal)"]).toBe("oken · margin 0.900 nats");
    expect(rows.cut_alternatives).toBeUndefined();
  });

  it("read the cut tokens of a parent, best first, as raw probabilities", () => {
    const cut = cutAlternatives(table(), [1, 2]);
    expect(cut.map((c) => c.token)).toEqual(["oken", "<0x9B>"]);
    expect(cut[0].prob).toBeCloseTo(0.3);
  });

  it("draw the cut tokens as ghost children before the legal ones, and hide them on request", () => {
    const shown = layoutTree(table());
    const ghosts = [...shown.byId.values()].filter((n) => n.data.ghost);
    expect(ghosts.map((g) => g.data.ghost.token)).toEqual(["oken", "<0x9B>"]);
    expect(ghosts.every((g) => g.parent.data.id === 0)).toBe(true);
    expect(shown.byId.get(ghostId(0, 0)).x).toBeLessThan(shown.byId.get(1).x);
    expect(shown.data.has(ghostId(0, 0))).toBe(false); // never a node of the tree itself
    const hidden = layoutTree(table(), { showCut: false });
    expect([...hidden.byId.values()].some((n) => n.data.ghost)).toBe(false);
  });

  it("are drawn struck with a legend entry and a toggle, and a ghost click expands nothing", () => {
    const model = fakeModel(treeState({ nodes: encodeTable(sampleColumns(constrained())), constraint_label: "regex /[a-z]+/" }));
    const el = document.createElement("div");
    document.body.appendChild(el);
    cleanups.push(widget.render({ model, el }));
    const ghost = el.querySelector(".inferviz-ghost");
    expect(ghost).not.toBeNull();
    expect(ghost.textContent).toContain("oken");
    const kinds = [...el.querySelectorAll(".inferviz-legend-item")].map((i) => i.dataset.kind);
    expect(kinds).toEqual(expect.arrayContaining(["constrained", "cut"]));
    expect(el.querySelector(".inferviz-constraint-chip").textContent).toBe("clicks keep to: regex /[a-z]+/");
    const before = model.sent.length;
    ghost.dispatchEvent(new MouseEvent("click", { bubbles: true }));
    expect(model.sent.length).toBe(before);
    expect(model.get("selected")).toBeNull();
    const toggle = el.querySelector(".inferviz-cut-toggle input");
    toggle.checked = false;
    toggle.dispatchEvent(new Event("change"));
    expect(el.querySelector(".inferviz-ghost")).toBeNull();
  });
});

describe("text view under a constraint", () => {
  const rows = [
    { node_id: 1, token: "a", prob: 0.02, processed_prob: 0.5, rank: 3, entropy: 1, labels: "",
      alternatives: [], constrained_prob: 0.5, constraint: "regex /a/" },
  ];

  it("shades by the raw or the constrained probability", () => {
    expect(shadeProb(rows[0], "raw")).toBe(0.02);
    expect(shadeProb(rows[0], "constrained")).toBe(0.5);
    expect(shadeProb({ ...rows[0], constrained_prob: null }, "constrained")).toBe(0.02);
  });

  it("offers the switch only for a constrained path and sends the choice", () => {
    const model = fakeModel({ prompt: "Hi", tokens: rows, selected: null, shade_by: "raw" });
    const el = document.createElement("div");
    document.body.appendChild(el);
    cleanups.push(renderTextView({ model, el }));
    const select = el.querySelector(".inferviz-text-shade select");
    expect(select.closest("label").style.display).toBe("");
    const before = el.querySelector(".inferviz-text-token").style.background;
    select.value = "constrained";
    select.dispatchEvent(new Event("change"));
    expect(model.get("shade_by")).toBe("constrained");
    expect(el.querySelector(".inferviz-text-legend-label").textContent).toContain("under the constraint");
    expect(el.querySelector(".inferviz-text-token").style.background).not.toBe(before);
    model.set("tokens", [{ ...rows[0], constrained_prob: null }]);
    expect(select.closest("label").style.display).toBe("none");
  });
});
