import { afterEach, describe, expect, it, vi } from "vitest";
import { IDBFactory } from "fake-indexeddb";
import { ChatClient, ChatError, indexedDbOutboxStorage, memoryOutboxStorage, type OutgoingMessage } from "../src/index.js";
import { record, tick, world } from "./helpers.js";

afterEach(() => {
  vi.useRealTimers();
});

describe("persistent outbox", () => {
  it("is re-sent after a reload (a new client over the same storage), stored once", async () => {
    vi.useFakeTimers();
    const server = world();
    const storage = memoryOutboxStorage();
    server.up = false; // the WebSocket cannot connect: messages wait in the outbox
    const p1 = ChatClient.login("ann", "password123", server.options({ outbox: storage }));
    await tick(0);
    const first = await p1;
    const c1 = first.connect().catch((e: unknown) => e);
    const s1 = first.send("c1", "written offline", { clientMsgId: "cm-offline" }).catch((e: unknown) => e);
    await tick(3_000);
    expect(first.state.status).toBe("reconnecting");
    expect(first.outbox()).toMatchObject([{ clientMsgId: "cm-offline", state: "pending" }]);
    await first.close(); // the page goes away
    expect(await c1).toMatchObject({ code: "closed" });
    expect(await s1).toMatchObject({ code: "closed" });
    expect(await storage.load("u_ann")).toMatchObject([{ clientMsgId: "cm-offline", body: "written offline", state: "pending" }]);

    server.up = true;
    const p2 = ChatClient.login("ann", "password123", server.options({ outbox: storage }));
    await tick(0);
    const second = await p2;
    const rec = record(second);
    const c2 = second.connect();
    await tick(20);
    await c2;
    expect(rec.outbox[0]).toMatchObject([{ clientMsgId: "cm-offline", state: "pending" }]);
    expect(server.stored.size).toBe(1);
    expect(server.allConns.flatMap((c) => c.frames("send")).map((f) => f.client_msg_id)).toEqual(["cm-offline"]);
    expect(rec.events.filter((e) => e.kind === "message")).toMatchObject([{ client_msg_id: "cm-offline", body: "written offline" }]);
    expect(second.outbox()).toEqual([]);
    expect(await storage.load("u_ann")).toEqual([]);
    await second.close();
  });

  it("a send stored before the reload (ack lost) is not stored twice", async () => {
    vi.useFakeTimers();
    const server = world();
    const storage = memoryOutboxStorage();
    const p1 = ChatClient.login("ann", "password123", server.options({ outbox: storage }));
    await tick(0);
    const first = await p1;
    const c1 = first.connect();
    await tick(20);
    await c1;
    server.sendHook = (conn, f) => {
      // the network dies: the message is stored, but neither its ack nor its event arrive
      conn.silent = true;
      const key = `c1|u_ann|${String(f.client_msg_id)}`;
      server.stored.set(key, server.append("c1", { kind: "message", sender: "u_ann", body: String(f.body), client_msg_id: String(f.client_msg_id) }));
      return "ignore";
    };
    first.send("c1", "maybe", { clientMsgId: "cm-maybe" }).catch(() => undefined);
    await tick(5);
    await first.close();
    expect(await storage.load("u_ann")).toHaveLength(1);

    server.sendHook = null;
    const p2 = ChatClient.login("ann", "password123", server.options({ outbox: storage, positions: { c1: 2 } }));
    await tick(0);
    const second = await p2;
    const rec = record(second);
    const c2 = second.connect();
    await tick(20);
    await c2;
    expect(server.stored.size).toBe(1);
    expect(server.convs.get("c1")!.events.filter((e) => e.kind === "message")).toHaveLength(1);
    expect(rec.events.map((e) => e.seq)).toEqual([3]);
    expect(second.outbox()).toEqual([]);
    expect(await storage.load("u_ann")).toEqual([]);
    await second.close();
  });
});

describe("indexedDbOutboxStorage", () => {
  it("keeps each user's messages by clientMsgId, errors included", async () => {
    const g = globalThis as { indexedDB?: IDBFactory };
    g.indexedDB = new IDBFactory();
    try {
      const store = indexedDbOutboxStorage("test-outbox");
      const m: OutgoingMessage = { clientMsgId: "a", conv: "c1", body: "hi", createdAt: 1, state: "pending", attachments: ["m1"], replyTo: 2 };
      await store.put("u1", m);
      await store.put("u1", { ...m, clientMsgId: "b", createdAt: 2, state: "failed", error: new ChatError("invalid", "nope", { status: 422 }) });
      await store.put("u2", { ...m, clientMsgId: "c" });
      const got = (await store.load("u1")).sort((x, y) => x.createdAt - y.createdAt);
      expect(got.map((x) => x.clientMsgId)).toEqual(["a", "b"]);
      expect(got[0]).toEqual(m);
      expect(got[1]!.error).toBeInstanceOf(ChatError);
      expect(got[1]!.error).toMatchObject({ code: "invalid", message: "nope", status: 422 });
      await store.remove("u2", "a"); // another user's id: untouched
      await store.remove("u1", "a");
      expect((await store.load("u1")).map((x) => x.clientMsgId)).toEqual(["b"]);
      // a second handle on the same database (a reload) sees the same rows
      expect((await indexedDbOutboxStorage("test-outbox").load("u2")).map((x) => x.clientMsgId)).toEqual(["c"]);
    } finally {
      delete g.indexedDB;
    }
  });
});
