// Test helpers: a fake anywidget model and encoders that mirror inferviz/widgets/views/columns.py.

// What TreeWidget sends as `param_schema` (tests/test_sampler_params.py checks it is current).
import PARAM_SCHEMA from "./fixtures/param_schema.json";

export { PARAM_SCHEMA };

/**
 * A stand-in for the anywidget model: get/set/on/off/send/save_changes, plus `sent` (messages
 * sent to the kernel), `saves` and `reply(msg)` to deliver a custom message from the kernel.
 * @param {Record<string, any>} state
 */
export function fakeModel(state) {
  /** @type {Map<string, Set<Function>>} */
  const listeners = new Map();
  const model = {
    state,
    sent: /** @type {any[]} */ ([]),
    saves: 0,
    get: (/** @type {string} */ key) => state[key],
    set(/** @type {string} */ key, /** @type {any} */ value) {
      state[key] = value;
      model.emit(`change:${key}`);
    },
    on(/** @type {string} */ event, /** @type {Function} */ fn) {
      if (!listeners.has(event)) listeners.set(event, new Set());
      listeners.get(event).add(fn);
    },
    off(/** @type {string} */ event, /** @type {Function} */ fn) {
      listeners.get(event)?.delete(fn);
    },
    send(/** @type {any} */ msg) { model.sent.push(msg); },
    save_changes() { model.saves++; },
    emit(/** @type {string} */ event, /** @type {any[]} */ ...args) {
      for (const fn of [...(listeners.get(event) ?? [])]) fn(...args);
    },
    reply(/** @type {any} */ msg) { model.emit("msg:custom", msg, []); },
    listenerCount: () => [...listeners.values()].reduce((n, s) => n + s.size, 0),
  };
  return model;
}

/**
 * Bytes as ipywidgets delivers them: a DataView at an odd offset into a larger buffer.
 * @param {ArrayBufferView} typed
 */
export function asDataView(typed) {
  const bytes = new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
  const big = new Uint8Array(bytes.length + 3);
  big.set(bytes, 3);
  return new DataView(big.buffer, 3, bytes.length);
}

/**
 * Encode plain columns like columns.py does: numbers f64 (null -> NaN), booleans bool, strings str.
 * @param {Record<string, any[]>} columns
 */
export function encodeTable(columns) {
  const names = Object.keys(columns);
  const n = names.length ? columns[names[0]].length : 0;
  /** @type {Record<string, any>} */
  const encoded = {};
  for (const name of names) {
    const values = columns[name];
    const present = values.filter((v) => v !== null);
    if (name === "token" || present.every((v) => typeof v === "string") && present.length) {
      encoded[name] = { dtype: "str", data: values };
    } else if (present.length && present.every((v) => typeof v === "boolean")) {
      encoded[name] = { dtype: "bool", data: asDataView(Uint8Array.from(values, (v) => (v === null ? 2 : v ? 1 : 0))) };
    } else if (present.every((v) => typeof v === "number")) {
      encoded[name] = { dtype: "f64", data: asDataView(Float64Array.from(values, (v) => (v === null ? NaN : v))) };
    } else {
      encoded[name] = { dtype: "json", data: values };
    }
  }
  return { n, names, columns: encoded };
}

/**
 * A small tree: root 0 ("Hi"), children 1 (" there", rank 0) and 2 ("!", rank 1), grandchild 3.
 * @param {Record<string, any[]>} [extra] meta columns
 */
export function sampleColumns(extra = {}) {
  return {
    node_id: [0, 1, 2, 3],
    parent_id: [null, 0, 0, 1],
    depth: [0, 1, 1, 2],
    token_id: [null, 11, 12, 13],
    token: ["Hi", " there", "!", "\n"],
    raw_logprob: [0, -0.3, -1.5, -0.1],
    prob: [1, 0.7, 0.2, 0.9],
    rank: [null, 0, 1, 0],
    entropy: [null, 1.2, 1.2, 0.4],
    cum_logprob: [0, -0.3, -1.5, -0.4],
    ...extra,
  };
}

/** @param {Record<string, any>} [overrides] */
export function treeState(overrides = {}) {
  return {
    nodes: encodeTable(sampleColumns()),
    param_schema: PARAM_SCHEMA,
    k: 5, temperature: 1.0, top_k: null, top_p: null, min_p: null,
    selected: null, selected_text: "", pending: [], error: "", read_only: false,
    ...overrides,
  };
}
