// The built, minified bundles in inferviz/static render too (run `npm run build` first).
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { fakeModel, treeState } from "./helpers.js";

const STATIC = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "inferviz", "static");
const built = existsSync(join(STATIC, "tree.js")) && existsSync(join(STATIC, "lens.js"));

describe.skipIf(!built)("built bundles", () => {
  it("tree.js renders a tree from a fake model", async () => {
    const { default: widget } = await import("../../inferviz/static/tree.js");
    const model = fakeModel(treeState());
    const el = document.createElement("div");
    const cleanup = widget.render({ model, el });
    expect(el.querySelectorAll(".inferviz-tree [data-node-id]").length).toBeGreaterThanOrEqual(4);
    cleanup();
  });

  it("lens.js exports an anywidget render function", async () => {
    const { default: widget } = await import("../../inferviz/static/lens.js");
    expect(typeof widget.render).toBe("function");
  });
});
