import { describe, expect, it } from "vitest";
import { cell, decodeArray, decodeTable } from "../src/shared/columns.js";
import { asDataView, encodeTable, sampleColumns } from "./helpers.js";

describe("decodeTable", () => {
  it("reads float64 columns from a DataView at an unaligned offset", () => {
    const table = decodeTable(encodeTable(sampleColumns()));
    expect(table.n).toBe(4);
    expect(Array.from(table.cols.prob)).toEqual([1, 0.7, 0.2, 0.9]);
  });

  it("turns NaN into null (Python None)", () => {
    const table = decodeTable(encodeTable(sampleColumns()));
    expect(cell(table, "parent_id", 0)).toBeNull();
    expect(cell(table, "parent_id", 3)).toBe(1);
  });

  it("keeps -Infinity in float columns", () => {
    const table = decodeTable(encodeTable(sampleColumns({ cd_score: [null, -Infinity, 1.5, 0] })));
    expect(cell(table, "cd_score", 1)).toBe(-Infinity);
  });

  it("decodes bool codes 0/1/2 as false/true/null", () => {
    const table = decodeTable(encodeTable(sampleColumns({ beam_kept: [null, true, false, true] })));
    expect([0, 1, 2].map((i) => cell(table, "beam_kept", i))).toEqual([null, true, false]);
  });

  it("passes string and json columns through and returns undefined for a missing column", () => {
    const table = decodeTable(encodeTable(sampleColumns({ note: [null, { a: 1 }, [1], "x"] })));
    expect(cell(table, "token", 1)).toBe(" there");
    expect(cell(table, "note", 1)).toEqual({ a: 1 });
    expect(cell(table, "nope", 1)).toBeUndefined();
  });

  it("treats an empty payload as an empty table", () => {
    expect(decodeTable(null).n).toBe(0);
    expect(decodeTable({}).n).toBe(0);
  });
});

describe("decodeArray", () => {
  it("decodes float32 and int32 arrays with their shape", () => {
    const probs = decodeArray({ dtype: "float32", shape: [1, 2], data: asDataView(Float32Array.of(0.5, 0.25)) });
    expect(probs.shape).toEqual([1, 2]);
    expect(Array.from(probs.values)).toEqual([0.5, 0.25]);
    const ids = decodeArray({ dtype: "int32", shape: [2], data: asDataView(Int32Array.of(7, -1)) });
    expect(Array.from(ids.values)).toEqual([7, -1]);
  });

  it("refuses an unknown dtype", () => {
    expect(() => decodeArray({ dtype: "complex64", shape: [0], data: new Uint8Array(0) })).toThrow(/dtype/);
  });
});
