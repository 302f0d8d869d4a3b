import { describe, expect, it } from "vitest";
import { decodeTable } from "../src/shared/columns.js";
import { nodeOverlay, tooltipRows } from "../src/tree/overlays.js";
import { encodeTable, sampleColumns } from "./helpers.js";

const withMeta = (extra) => decodeTable(encodeTable(sampleColumns(extra)));

describe("nodeOverlay", () => {
  it("marks pruned and kept beams", () => {
    const table = withMeta({ beam_kept: [null, true, false, true], beam_score: [null, -0.3, -1.5, -0.4] });
    expect(nodeOverlay(table, 1).classes).toContain("beam-kept");
    expect(nodeOverlay(table, 2).classes).toContain("beam-pruned");
  });

  it("badges SMC particle counts and greys extinct particles", () => {
    const table = withMeta({ smc_count: [null, 12, 0, 4], smc_resampled: [null, true, false, false] });
    expect(nodeOverlay(table, 1).badges).toEqual(["×12"]);
    expect(nodeOverlay(table, 1).classes).toContain("smc-resampled");
    expect(nodeOverlay(table, 2).classes).toContain("smc-extinct");
  });

  it("greys implausible contrastive tokens and badges plausible scores with their sign", () => {
    const table = withMeta({ cd_plausible: [null, true, false, true], cd_score: [null, 0.75, -Infinity, -1.3] });
    expect(nodeOverlay(table, 1).badges).toEqual(["cd +0.75"]);
    expect(nodeOverlay(table, 3).badges).toEqual(["cd −1.30"]);
    expect(nodeOverlay(table, 2).classes).toContain("cd-implausible");
    expect(nodeOverlay(table, 2).badges).toEqual([]);
  });

  it("says a contrastive node's probability is the pick probability, not the model's", () => {
    const table = withMeta({ strategy: [null, "contrastive", "contrastive", null],
      cd_plausible: [null, true, false, null], cd_score: [null, 0.75, -Infinity, null] });
    expect(nodeOverlay(table, 1).probPrefix).toBe("pick");
    expect(nodeOverlay(table, 2).probPrefix).toBe("pick");
    expect(nodeOverlay(table, 3).probPrefix).toBeUndefined();
  });

  it("marks intervened nodes, badges their KL and never folds them", () => {
    const table = withMeta({ intervention: [null, "steer L6 α=4", null, "steer L6 α=4"], kl: [null, 0.123, null, 2] });
    const steered = nodeOverlay(table, 1);
    expect(steered.classes).toContain("intervened");
    expect(steered.intervened).toBe(true);
    expect(steered.chosen).toBe(true);
    expect(steered.badges).toEqual(["KL 0.12"]);
    expect(nodeOverlay(table, 2).classes).not.toContain("intervened");
  });

  it("adds nothing without strategy columns", () => {
    expect(nodeOverlay(withMeta({}), 1)).toEqual({ kind: "click", classes: [], badges: [], chosen: false });
  });
});

describe("tooltipRows", () => {
  it("lists the core numbers then every meta column", () => {
    const rows = Object.fromEntries(tooltipRows(withMeta({ smc_weight: [null, -1.25, null, 0] }), 1));
    expect(rows.prob).toBe("0.7000");
    expect(rows.raw_logprob).toBe("-0.3000");
    expect(rows.rank).toBe("0");
    expect(rows.entropy).toBe("1.200");
    expect(rows.smc_weight).toBe("-1.2500");
  });

  it("explains a contrastive node's numbers: pick prob, cd score, expert and amateur probs", () => {
    const table = withMeta({ strategy: [null, "contrastive", null, null], cd_plausible: [null, true, null, null],
      cd_score: [null, 2, null, null], cd_expert_logprob: [null, Math.log(0.5), null, null],
      cd_amateur_logprob: [null, Math.log(0.5) - 2, null, null] });
    const rows = Object.fromEntries(tooltipRows(table, 1));
    expect(rows["pick prob (softmax of cd scores)"]).toBe("0.7000");
    expect(rows.prob).toBeUndefined();
    expect(rows["cd score"]).toBe("+2.00 nats (log p_expert − log p_amateur)");
    expect(rows["expert prob"]).toBe("0.5000");
    expect(rows["amateur prob"]).toBe("0.0677");
    expect(rows.cd_score).toBeUndefined();
  });
});
