import { afterEach, describe, expect, it } from "vitest";
import { cell, decodeTable } from "../src/shared/columns.js";
import { acquireStore, applyDelta } from "../src/tree/store.js";
import widget from "../src/tree/tree_widget.js";
import { asDataView, encodeTable, fakeModel, sampleColumns, treeState } from "./helpers.js";

/**
 * A delta message as inferviz/widgets/views/columns.py:encode_delta writes it: binary columns in buffers.
 * @param {Record<string, any[]>} rowsColumns values of the changed rows only
 * @param {number[]} rows
 * @param {{base: number, version: number, n: number}} header
 */
function delta(rowsColumns, rows, { base, version, n }) {
  const encoded = encodeTable(rowsColumns);
  const buffers = [asDataView(Float64Array.from(rows))];
  /** @type {Record<string, any>} */
  const columns = {};
  for (const [name, col] of Object.entries(encoded.columns)) {
    if (col.dtype === "f64" || col.dtype === "bool") {
      buffers.push(col.data);
      columns[name] = { dtype: col.dtype, buffer: buffers.length - 1 };
    } else columns[name] = col;
  }
  return { msg: { kind: "inferviz:delta", base, version, n, rows: { dtype: "f64", buffer: 0 }, names: encoded.names, columns }, buffers };
}

const newRow = { node_id: [4], parent_id: [2], depth: [2], token_id: [14], token: [" new"], raw_logprob: [-2], prob: [0.1], rank: [0], entropy: [2], cum_logprob: [-3.5] };

describe("applyDelta", () => {
  const table = () => decodeTable(encodeTable(sampleColumns()));

  it("appends new rows and replaces changed ones", () => {
    const changed = Object.fromEntries(Object.entries(sampleColumns()).map(([k, v]) => [k, [v[1], newRow[k][0]]]));
    changed.prob = [0.25, 0.1];
    const { msg, buffers } = delta(changed, [1, 4], { base: 0, version: 1, n: 5 });
    const out = applyDelta(table(), msg, buffers);
    expect(out.n).toBe(5);
    expect(cell(out, "prob", 1)).toBe(0.25);
    expect(cell(out, "token", 4)).toBe(" new");
    expect(cell(out, "prob", 2)).toBe(0.2); // untouched rows keep their values
    expect(cell(out, "parent_id", 0)).toBeNull();
  });

  it("adds a column that first appears in a delta, empty on older rows", () => {
    const { msg, buffers } = delta({ ...newRow, beam_kept: [true] }, [4], { base: 0, version: 1, n: 5 });
    const out = applyDelta(table(), msg, buffers);
    expect(cell(out, "beam_kept", 4)).toBe(true);
    expect(cell(out, "beam_kept", 1)).toBeNull();
  });

  it("keeps values when a column's dtype changes between snapshot and delta", () => {
    const base = decodeTable(encodeTable(sampleColumns({ label: [null, "a", "b", null] })));
    const { msg, buffers } = delta({ ...newRow, label: [3] }, [4], { base: 0, version: 1, n: 5 });
    const out = applyDelta(base, msg, buffers);
    expect(cell(out, "label", 1)).toBe("a");
    expect(cell(out, "label", 4)).toBe(3);
  });
});

describe("the model's node store", () => {
  /** @type {(() => void)[]} */
  const cleanups = [];
  afterEach(() => { while (cleanups.length) cleanups.pop()(); document.body.replaceChildren(); });
  const mount = (/** @type {any} */ model) => {
    const el = document.createElement("div");
    document.body.appendChild(el);
    cleanups.push(widget.render({ model, el }));
    return el;
  };

  it("draws nodes that arrive as a delta message", () => {
    const model = fakeModel(treeState());
    const el = mount(model);
    const { msg, buffers } = delta(newRow, [4], { base: 0, version: 1, n: 5 });
    model.emit("msg:custom", msg, buffers);
    expect(el.querySelector('.inferviz-node[data-node-id="4"]')).not.toBeNull();
  });

  it("asks for the snapshot when it missed a delta, and takes it when it comes", () => {
    const model = fakeModel(treeState());
    const el = mount(model);
    const { msg, buffers } = delta(newRow, [4], { base: 1, version: 2, n: 5 });
    model.emit("msg:custom", msg, buffers);
    expect(el.querySelector('.inferviz-node[data-node-id="4"]')).toBeNull();
    expect(model.sent.at(-1)).toMatchObject({ kind: "inferviz:request", action: "snapshot" });
    const cols = sampleColumns();
    for (const [k, v] of Object.entries(newRow)) cols[k] = [...cols[k], v[0]];
    model.set("nodes", { ...encodeTable(cols), version: 2 });
    expect(el.querySelector('.inferviz-node[data-node-id="4"]')).not.toBeNull();
  });

  it("is shared by the views of one model and kept by initialize while none is shown", () => {
    const model = fakeModel(treeState());
    const stop = widget.initialize({ model });
    const { msg, buffers } = delta(newRow, [4], { base: 0, version: 1, n: 5 });
    model.emit("msg:custom", msg, buffers); // no view yet
    const el = mount(model);
    expect(el.querySelector('.inferviz-node[data-node-id="4"]')).not.toBeNull();
    const held = acquireStore(model);
    expect(held.store.version).toBe(1);
    held.release();
    stop();
  });
});
