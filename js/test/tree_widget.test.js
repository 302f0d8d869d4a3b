import { afterEach, describe, expect, it } from "vitest";
import widget, { renderTreeWidget } from "../src/tree/tree_widget.js";
import { encodeTable, fakeModel, sampleColumns, treeState } from "./helpers.js";

/** @type {(() => void)[]} */
const cleanups = [];
afterEach(() => { while (cleanups.length) cleanups.pop()(); document.body.replaceChildren(); });

function mount(overrides = {}) {
  const model = fakeModel(treeState(overrides));
  const el = document.createElement("div");
  document.body.appendChild(el);
  cleanups.push(widget.render({ model, el }));
  return { model, el, node: (id) => el.querySelector(`.inferviz-node[data-node-id="${id}"]`) };
}

const click = (target, init = {}) => target.dispatchEvent(new MouseEvent("click", { bubbles: true, ...init }));
const key = (target, k) => target.dispatchEvent(new KeyboardEvent("keydown", { key: k, bubbles: true }));
const flush = () => new Promise((resolve) => setTimeout(resolve, 0));

describe("TreeWidget view", () => {
  it("renders a root with class inferviz-tree and one element per node", () => {
    const { el } = mount();
    expect(el.querySelector(".inferviz-tree")).not.toBeNull();
    const ids = [...el.querySelectorAll(".inferviz-node")].map((n) => n.getAttribute("data-node-id"));
    expect(ids.sort()).toEqual(["0", "1", "2", "3"]);
    expect(el.querySelector(".inferviz-error")).not.toBeNull();
  });

  it("labels tokens faithfully", () => {
    const { node } = mount();
    expect(node(1).textContent).toContain("·there");
    expect(node(3).textContent).toContain("↵");
  });

  it("draws edges as wide as the processed probability", () => {
    const { el } = mount();
    const width = (id) => Number(el.querySelector(`.inferviz-link[data-target-id="${id}"]`).getAttribute("stroke-width"));
    expect(width(1)).toBeGreaterThan(width(2));
  });

  it("clicking a leaf selects it and sends one expand request with the current settings", () => {
    const { model, node } = mount({ k: 3, temperature: 0.7, top_p: 0.9 });
    click(node(2));
    click(node(2)); // a double click
    expect(model.get("selected")).toBe(2);
    const requests = model.sent.filter((m) => m.kind === "inferviz:request" && m.action === "expand");
    expect(requests).toHaveLength(1);
    expect(requests[0]).toMatchObject({
      action: "expand", node_id: 2,
      params: { k: 3, temperature: 0.7, top_k: null, top_p: 0.9, min_p: null },
    });
    expect(node(2).classList.contains("pending")).toBe(true);
  });

  it("shows the kernel's error response in .inferviz-error", async () => {
    const { model, el, node } = mount();
    click(node(2));
    const { id } = model.sent.find((m) => m.action === "expand");
    model.reply({ kind: "inferviz:response", id, ok: false, action: "expand", node_id: 2, child_ids: [], error: "k must be an integer in 1..50, got 0" });
    await flush();
    expect(el.querySelector(".inferviz-error").textContent).toMatch(/k must be/);
    expect(node(2).classList.contains("pending")).toBe(false);
  });

  it("shows new nodes when the nodes trait changes", () => {
    const { model, node } = mount();
    const cols = sampleColumns();
    for (const [name, value] of Object.entries({ node_id: 4, parent_id: 2, depth: 2, token_id: 14, token: "<0xE2>", raw_logprob: -2, prob: 0.1, rank: 0, entropy: 2, cum_logprob: -3.5 })) {
      cols[name] = [...cols[name], value];
    }
    model.set("nodes", encodeTable(cols));
    expect(node(4)).not.toBeNull();
    expect(node(4).textContent).toContain("<0xE2>");
  });

  it("highlights the path to the selected node and shows its text", () => {
    const { model, el, node } = mount({ selected: 3, selected_text: "Hi there\n" });
    for (const id of [0, 1, 3]) expect(node(id).classList.contains("on-path")).toBe(true);
    expect(node(2).classList.contains("on-path")).toBe(false);
    expect(el.querySelector(".inferviz-path .completion").textContent).toBe(" there\n");
    expect([...el.querySelectorAll(".inferviz-chip")].map((c) => c.textContent)).toEqual(["·there", "↵"]);
    model.set("selected", 2);
    expect(node(3).classList.contains("on-path")).toBe(false);
  });

  it("moves the selection with arrow keys and expands with Enter", () => {
    const { model, el } = mount({ selected: 0 });
    const root = el.querySelector(".inferviz-tree");
    key(root, "ArrowRight");
    expect(model.get("selected")).toBe(1);
    key(root, "ArrowDown");
    expect(model.get("selected")).toBe(2);
    key(root, "ArrowLeft");
    expect(model.get("selected")).toBe(0);
    key(root, "Enter");
    expect(model.sent.at(-1)).toMatchObject({ action: "expand", node_id: 0 });
  });

  it("keeps its keys from notebook shortcuts and ignores keys typed in the controls", () => {
    const { model, el } = mount({ selected: 0 });
    document.body.appendChild(el);
    let reachedDocument = 0;
    const spy = () => { reachedDocument++; };
    document.addEventListener("keydown", spy);
    key(el.querySelector(".inferviz-tree"), "ArrowRight");
    key(el.querySelector('input[name="k"]'), "ArrowDown");
    document.removeEventListener("keydown", spy);
    expect(reachedDocument).toBe(1); // only the key typed into the input bubbles on
    expect(model.get("selected")).toBe(1);
    expect(el.querySelector(".inferviz-tree").dataset.lmSuppressShortcuts).toBe("true");
  });

  it("alt-click collapses and re-expands a subtree", () => {
    const { node } = mount();
    click(node(1), { altKey: true });
    expect(node(3)).toBeNull();
    expect(node(1).textContent).toContain("+1");
    click(node(1), { altKey: true });
    expect(node(3)).not.toBeNull();
  });

  it("says which snapshot version it holds when it opens, once per model", () => {
    const { model } = mount();
    const opens = model.sent.filter((m) => m.action === "snapshot");
    expect(opens).toHaveLength(1);
    expect(opens[0]).toMatchObject({ kind: "inferviz:request", version: model.get("nodes").version ?? 0 });
  });

  it("says the tree is read-only instead of sending a request", () => {
    const { model, el, node } = mount({ read_only: true });
    click(node(2));
    expect(model.sent.filter((m) => m.action === "expand")).toHaveLength(0);
    expect(el.querySelector(".inferviz-error").textContent).toMatch(/read-only: pass session=/);
  });

  it("shows the error trait", () => {
    const { model, el } = mount({ error: "boom" });
    expect(el.querySelector(".inferviz-error").textContent).toBe("boom");
    model.set("error", "");
    expect(el.querySelector(".inferviz-error").textContent).toBe("");
  });

  it("hover shows token, numbers and strategy meta columns", () => {
    const model = fakeModel(treeState({ nodes: encodeTable(sampleColumns({ beam_kept: [null, true, false, true], beam_score: [null, -0.3, -1.5, -0.4] })) }));
    const el = document.createElement("div");
    document.body.appendChild(el);
    cleanups.push(renderTreeWidget({ model, el }));
    const target = el.querySelector('.inferviz-node[data-node-id="2"] circle');
    target.dispatchEvent(new MouseEvent("mousemove", { bubbles: true, clientX: 5, clientY: 5 }));
    const tip = document.body.querySelector(".inferviz-floating.inferviz-tooltip:not([hidden])");
    expect(tip.parentElement).toBe(document.body);
    for (const text of ["!", "prob", "raw_logprob", "rank", "entropy", "beam_score", "-1.5000"]) {
      expect(tip.textContent).toContain(text);
    }
    expect(el.querySelector('.inferviz-node[data-node-id="2"]').classList.contains("beam-pruned")).toBe(true);
    target.dispatchEvent(new MouseEvent("click", { bubbles: true }));
    expect(tip.hidden).toBe(true); // a click hides it: it would cover the new children
  });

  it("writes control changes to the model and follows model changes", () => {
    const { model, el } = mount();
    const input = el.querySelector('input[name="top_k"]');
    input.value = "40";
    input.dispatchEvent(new Event("change"));
    expect(model.get("top_k")).toBe(40);
    expect(model.saves).toBeGreaterThan(0);
    input.value = "";
    input.dispatchEvent(new Event("change"));
    expect(model.get("top_k")).toBeNull();
    model.set("k", 9);
    expect(el.querySelector('input[name="k"]').value).toBe("9");
    const k = el.querySelector('input[name="k"]');
    k.value = "2.5";
    k.dispatchEvent(new Event("change"));
    expect(model.get("k")).toBe(9);
    expect(el.querySelector(".inferviz-error").textContent).toMatch(/k:/);
  });

  it("removes its listeners on cleanup", () => {
    const model = fakeModel(treeState());
    const cleanup = renderTreeWidget({ model, el: document.createElement("div") });
    cleanup();
    expect(model.listenerCount()).toBe(0);
  });
});
