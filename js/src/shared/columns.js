// Decode the compact column payloads written by inferviz/widgets/views/columns.py.

/**
 * @typedef {{dtype: "f64"|"bool"|"str"|"json", data: any}} EncodedColumn
 * @typedef {{n: number, names: string[], columns: Record<string, EncodedColumn>}} EncodedTable
 * @typedef {{n: number, names: string[], dtypes: Record<string, string>,
 *            cols: Record<string, ArrayLike<any>>}} Table
 */

/**
 * Copy binary data (DataView, ArrayBuffer, typed array or plain array of bytes) into a fresh
 * ArrayBuffer, so typed arrays can be built on it whatever the source's byte offset.
 * @param {any} data
 * @returns {ArrayBuffer}
 */
export function toArrayBuffer(data) {
  if (data instanceof ArrayBuffer) return data.slice(0);
  if (ArrayBuffer.isView(data)) {
    return data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
  }
  if (Array.isArray(data)) return new Uint8Array(data).buffer;
  throw new TypeError(`expected binary data, got ${typeof data}`);
}

/**
 * A column's values; binary data is inline (`data`) or the message buffer `buffers[buffer]`.
 * @param {EncodedColumn & {buffer?: number}} column
 * @param {any[]} [buffers]
 * @returns {ArrayLike<any>}
 */
export function decodeColumn(column, buffers = []) {
  const data = column.data !== undefined ? column.data : buffers[column.buffer ?? -1];
  switch (column.dtype) {
    case "f64":
      return new Float64Array(toArrayBuffer(data));
    case "bool":
      return new Uint8Array(toArrayBuffer(data));
    case "str":
    case "json":
      return data;
    default:
      throw new Error(`unknown column dtype ${column.dtype}`);
  }
}

/**
 * @param {EncodedTable | null | undefined} payload
 * @returns {Table}
 */
export function decodeTable(payload) {
  if (!payload || !payload.columns) return { n: 0, names: [], dtypes: {}, cols: {} };
  /** @type {Table} */
  const table = { n: payload.n, names: payload.names, dtypes: {}, cols: {} };
  for (const name of payload.names) {
    const column = payload.columns[name];
    table.dtypes[name] = column.dtype;
    table.cols[name] = decodeColumn(column);
  }
  return table;
}

/**
 * Value of column `name` at row `i`, as JS: NaN in an f64 column and code 2 in a bool column
 * are `null` (Python None); a missing column is `undefined`.
 * @param {Table} table
 * @param {string} name
 * @param {number} i
 */
export function cell(table, name, i) {
  const col = table.cols[name];
  if (col === undefined) return undefined;
  const value = col[i];
  switch (table.dtypes[name]) {
    case "f64":
      return Number.isNaN(value) ? null : value;
    case "bool":
      return value === 2 ? null : value === 1;
    default:
      return value;
  }
}

/**
 * A dense array payload {dtype, shape, data} from inferviz/widgets/views/columns.py:array_payload.
 * @param {{dtype: string, shape: number[], data: any}} payload
 */
export function decodeArray(payload) {
  const buffer = toArrayBuffer(payload.data);
  const types = { float32: Float32Array, float64: Float64Array, int32: Int32Array, int64: BigInt64Array, uint8: Uint8Array };
  const Type = types[payload.dtype];
  if (!Type) throw new Error(`unknown array dtype ${payload.dtype}`);
  return { shape: payload.shape, values: new Type(buffer) };
}
