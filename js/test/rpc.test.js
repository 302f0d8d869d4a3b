import { afterEach, describe, expect, it, vi } from "vitest";
import { createClient, REQUEST_KIND } from "../src/tree/rpc.js";
import { fakeModel } from "./helpers.js";

afterEach(() => vi.useRealTimers());

describe("createClient", () => {
  it("sends a request and resolves with the matching response", async () => {
    const model = fakeModel({});
    const client = createClient(model);
    const pending = client.request("expand", { node_id: 3 });
    const sent = model.sent[0];
    expect(sent).toMatchObject({ kind: REQUEST_KIND, action: "expand", node_id: 3 });
    model.reply({ kind: "inferviz:response", id: "someone-else", ok: true });
    model.reply({ kind: "inferviz:response", id: sent.id, ok: true, child_ids: [4, 5] });
    await expect(pending).resolves.toMatchObject({ ok: true, child_ids: [4, 5] });
    expect(client.waiting).toBe(0);
  });

  it("answers with an error response when the kernel does not reply in time", async () => {
    vi.useFakeTimers();
    const client = createClient(fakeModel({}), { timeoutMs: 60_000 });
    const pending = client.request("expand", { node_id: 1 });
    vi.advanceTimersByTime(60_001);
    await expect(pending).resolves.toMatchObject({ ok: false, error: expect.stringMatching(/60 s/) });
  });

  it("waits at least 60 s by default", async () => {
    vi.useFakeTimers();
    const client = createClient(fakeModel({}));
    let done = false;
    client.request("expand", { node_id: 1 }).then(() => { done = true; });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(done).toBe(false);
    client.dispose();
  });

  it("stops listening when disposed", () => {
    const model = fakeModel({});
    const client = createClient(model);
    client.dispose();
    expect(model.listenerCount()).toBe(0);
  });
});
