// Request/response over anywidget custom messages (see inferviz/widgets/views/protocol.py).

export const REQUEST_KIND = "inferviz:request";
export const RESPONSE_KIND = "inferviz:response";
export const DEFAULT_TIMEOUT_MS = 120_000; // a forward pass on a big model on CPU can be slow

/**
 * @typedef {{kind: string, id: string | number | null, ok: boolean, action: string | null,
 *            node_id: number | null, child_ids: number[], error: string}} Response
 */

let counter = 0;

/**
 * A client that sends requests on `model` and resolves each with its response (or with an
 * error response after `timeoutMs`). Responses for other views' requests are ignored.
 * @param {{on: Function, off: Function, send: Function}} model
 * @param {{timeoutMs?: number}} [options]
 */
export function createClient(model, { timeoutMs = DEFAULT_TIMEOUT_MS } = {}) {
  const prefix = `v${Math.random().toString(36).slice(2, 8)}`;
  /** @type {Map<string, {resolve: (r: Response) => void, timer: any}>} */
  const waiting = new Map();

  /** @param {any} msg */
  function onMessage(msg) {
    if (!msg || msg.kind !== RESPONSE_KIND) return;
    const entry = waiting.get(msg.id);
    if (!entry) return;
    waiting.delete(msg.id);
    clearTimeout(entry.timer);
    entry.resolve(msg);
  }
  model.on("msg:custom", onMessage);

  return {
    /**
     * @param {string} action
     * @param {Record<string, any>} fields
     * @returns {Promise<Response>}
     */
    request(action, fields) {
      const id = `${prefix}-${++counter}`;
      return new Promise((resolve) => {
        const timer = setTimeout(() => {
          waiting.delete(id);
          resolve({
            kind: RESPONSE_KIND, id, ok: false, action, node_id: fields.node_id ?? null,
            child_ids: [], error: `no answer from the kernel after ${timeoutMs / 1000} s (is it busy or stopped?)`,
          });
        }, timeoutMs);
        waiting.set(id, { resolve, timer });
        model.send({ kind: REQUEST_KIND, id, action, ...fields });
      });
    },
    get waiting() {
      return waiting.size;
    },
    dispose() {
      model.off("msg:custom", onMessage);
      for (const { timer } of waiting.values()) clearTimeout(timer);
      waiting.clear();
    },
  };
}
