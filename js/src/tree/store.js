// The node table a TreeWidget model holds, kept current from a full snapshot (the `nodes` trait,
// the source of truth for views rendered late) plus delta messages (only the rows that changed
// travel on each change). One store per model, shared by all of its views.
import { cell, decodeColumn, decodeTable } from "../shared/columns.js";

export const DELTA_KIND = "inferviz:delta";

/**
 * @typedef {import("../shared/columns.js").Table} Table
 * @typedef {{kind: "inferviz:delta", base: number, version: number, n: number,
 *            rows: any, names: string[], columns: Record<string, any>}} Delta
 * @typedef {{reset: boolean, newIds: number[]}} Change
 */

/** @param {string} dtype @param {number} n */
function emptyColumn(dtype, n) {
  if (dtype === "f64") return new Float64Array(n).fill(NaN);
  if (dtype === "bool") return new Uint8Array(n).fill(2);
  return new Array(n).fill(null);
}

/**
 * A new table: `table` with the delta's rows written in (new rows appended, changed rows
 * replaced, new columns added; a column whose dtype changes becomes plain JS values).
 * @param {Table} table
 * @param {Delta} delta
 * @param {any[]} [buffers]
 * @returns {Table}
 */
export function applyDelta(table, delta, buffers = []) {
  const rows = decodeColumn(delta.rows, buffers);
  const n = Math.max(delta.n, table.n);
  const names = [...table.names, ...delta.names.filter((name) => !table.names.includes(name))];
  /** @type {Table} */
  const out = { n, names, dtypes: {}, cols: {} };
  for (const name of names) {
    const oldType = table.dtypes[name];
    const encoded = delta.columns[name];
    const fresh = encoded ? decodeColumn(encoded, buffers) : null;
    const newType = encoded?.dtype;
    const dtype = oldType && newType && oldType !== newType ? "json" : (oldType ?? newType ?? "json");
    const col = emptyColumn(dtype, n);
    if (oldType === dtype) {
      if (ArrayBuffer.isView(col)) /** @type {any} */ (col).set(table.cols[name]);
      else for (let i = 0; i < table.n; i++) col[i] = table.cols[name][i];
    } else if (oldType) {
      for (let i = 0; i < table.n; i++) col[i] = cell(table, name, i);
    }
    if (fresh) {
      const view = { n: rows.length, names: [name], dtypes: { [name]: newType }, cols: { [name]: fresh } };
      for (let j = 0; j < rows.length; j++) {
        col[rows[j]] = newType === dtype ? fresh[j] : cell(/** @type {any} */ (view), name, j);
      }
    }
    out.dtypes[name] = dtype;
    out.cols[name] = col;
  }
  return out;
}

/**
 * A model's store: `table`, `version`, `subscribe(fn)`; `fn(change)` runs after each change.
 * @param {any} model
 */
function createStore(model) {
  const snapshot = model.get("nodes");
  const store = {
    table: decodeTable(snapshot),
    version: snapshot?.version ?? 0,
    users: 0,
    pinned: false,
    /** @type {Set<(change: Change) => void>} */
    listeners: new Set(),
    requested: -1,
    /** @param {(change: Change) => void} fn */
    subscribe(fn) { store.listeners.add(fn); return () => store.listeners.delete(fn); },
    /** @param {Change} change */
    emit(change) { for (const fn of [...store.listeners]) fn(change); },
    onSnapshot() {
      const next = model.get("nodes");
      if ((next?.version ?? 0) < store.version) return; // older than the deltas applied
      store.table = decodeTable(next);
      store.version = next?.version ?? 0;
      store.emit({ reset: true, newIds: [] });
    },
    /** @param {any} msg @param {any[]} buffers */
    onMessage(msg, buffers) {
      if (!msg || msg.kind !== DELTA_KIND) return;
      if (msg.version <= store.version) return;
      if (msg.base !== store.version) {
        // A delta was missed (a view loaded mid-stream): ask the kernel for the full snapshot.
        if (store.requested !== msg.version) {
          store.requested = msg.version;
          model.send({ kind: "inferviz:request", id: `snapshot-${msg.version}`, action: "snapshot", node_id: 0 });
        }
        return;
      }
      const before = store.table.n;
      store.table = applyDelta(store.table, msg, buffers);
      store.version = msg.version;
      const newIds = [];
      for (let i = before; i < store.table.n; i++) newIds.push(cell(store.table, "node_id", i));
      store.emit({ reset: false, newIds });
    },
  };
  return store;
}

/** @type {WeakMap<object, ReturnType<typeof createStore>>} */
const stores = new WeakMap();

/**
 * The model's store (created on first use); `release()` drops this user's hold, and the store
 * stops listening when no view and no `initialize` holds it.
 * @param {any} model
 * @param {{pin?: boolean}} [options] pin: held for the model's lifetime (anywidget initialize)
 */
export function acquireStore(model, { pin = false } = {}) {
  let store = stores.get(model);
  if (!store) {
    store = createStore(model);
    stores.set(model, store);
    model.on("change:nodes", store.onSnapshot);
    model.on("msg:custom", store.onMessage);
    // Say which version this page holds: the kernel re-sends the snapshot if it has moved on
    // (changes made after the widget was created but before the page listened for deltas).
    model.send({ kind: "inferviz:request", id: "snapshot-open", action: "snapshot", node_id: 0, version: store.version });
  }
  if (pin) store.pinned = true;
  store.users++;
  const held = store;
  let released = false;
  return {
    store: held,
    release() {
      if (released) return;
      released = true;
      if (pin) held.pinned = false;
      held.users--;
      if (held.users === 0 && !held.pinned) {
        model.off("change:nodes", held.onSnapshot);
        model.off("msg:custom", held.onMessage);
        stores.delete(model);
      }
    },
  };
}
