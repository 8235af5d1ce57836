import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ChatError } from "../src/index.js";
import { connected, loggedIn, record, seqs, tick, world } from "./helpers.js";

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("connect and sync", () => {
  it("authenticates first, then syncs from the known positions", async () => {
    const server = world();
    const client = await loggedIn(server);
    const rec = record(client);
    const p = client.connect();
    await tick(20);
    await p;
    const conn = server.allConns[0]!;
    expect(conn.received[0]).toMatchObject({ type: "auth", token: expect.stringMatching(/^acc_/) });
    // Positions come from GET /v1/conversations (each conversation from its last_seq).
    expect(conn.frames("sync")).toEqual([{ type: "sync", positions: { c1: 2 }, ref: expect.any(String) }]);
    expect(rec.states.map((s) => s.status)).toEqual(["connecting", "open"]);
    expect(client.state).toEqual({ status: "open", attempt: 0 });
    // Live events after that are delivered.
    server.append("c1", { kind: "message", sender: "u_bob", body: "hi" });
    await tick(5);
    expect(seqs(rec.events)).toEqual([3]);
    expect(client.positions()).toEqual({ c1: 3 });
    await client.close();
  });

  it("replays what was missed from the given positions", async () => {
    const server = world();
    server.append("c1", { kind: "message", sender: "u_bob", body: "one" });
    const { client, rec } = await connected(server, "ann", { positions: { c1: 0 } });
    expect(server.allConns[0]!.frames("sync")[0]).toMatchObject({ positions: { c1: 0 } });
    expect(seqs(rec.events)).toEqual([1, 2, 3]);
    await client.close();
  });

  it("pages a truncated sync over REST", async () => {
    const server = world();
    server.syncLimit = 3;
    for (let i = 0; i < 8; i++) server.append("c1", { kind: "message", sender: "u_bob", body: `m${i}` });
    const { client, rec } = await connected(server, "ann", { positions: { c1: 0 } });
    await tick(10);
    expect(seqs(rec.events)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(server.rest.some((r) => r.path.startsWith("/v1/conversations/c1/messages?after=3"))).toBe(true);
    await client.close();
  });
});

describe("ordering", () => {
  it("delivers each (conv, seq) once, in seq order", async () => {
    const server = world();
    const { client, rec } = await connected(server);
    const conn = server.authed()[0]!;
    server.liveFilter = () => false; // the test pushes the frames itself
    const e3 = server.append("c1", { kind: "message", sender: "u_bob", body: "3" });
    const e4 = server.append("c1", { kind: "message", sender: "u_bob", body: "4" });
    const e5 = server.append("c1", { kind: "edit", sender: "u_bob", body: "4'", target: 4 });
    for (const e of [e4, e3, e3, e4, e2(), e5, e5]) conn.push({ type: "event", event: e });
    await tick(5);
    expect(seqs(rec.events)).toEqual([3, 4, 5]);
    expect(client.stats.duplicates).toBe(4);
    // No REST gap fill was needed: the gap closed before 1 s.
    await tick(2000);
    expect(server.rest.filter((r) => r.path.includes("/messages"))).toEqual([]);
    await client.close();

    function e2() {
      return server.convs.get("c1")!.events[1]!;
    }
  });

  it("holds an event after a gap and fills the gap over REST after 1 s", async () => {
    const server = world();
    const { client, rec } = await connected(server);
    server.liveFilter = (_c, ev) => ev.seq !== 3; // seq 3 is lost on the way
    server.append("c1", { kind: "message", sender: "u_bob", body: "3" });
    server.append("c1", { kind: "message", sender: "u_bob", body: "4" });
    await tick(900);
    expect(seqs(rec.events)).toEqual([]); // 4 is held
    expect(server.rest.filter((r) => r.path.includes("/messages"))).toEqual([]);
    await tick(200);
    expect(server.rest.filter((r) => r.path.includes("/messages")).map((r) => r.path)).toEqual([
      "/v1/conversations/c1/messages?after=2&limit=200",
    ]);
    expect(seqs(rec.events)).toEqual([3, 4]);
    expect(client.stats.gapsFilled).toBe(1);
    // 4 arriving again (e.g. a replay) is dropped.
    server.authed()[0]!.push({ type: "event", event: server.convs.get("c1")!.events[3]! });
    await tick(5);
    expect(seqs(rec.events)).toEqual([3, 4]);
    await client.close();
  });
});

describe("sending", () => {
  it("resolves send with the acked seq; the outbox empties once the event is delivered", async () => {
    const server = world();
    const { client, rec } = await connected(server);
    const p = client.send("c1", "hello");
    expect(client.outbox()).toMatchObject([{ conv: "c1", body: "hello", state: "pending" }]);
    await tick(10);
    await expect(p).resolves.toEqual({ seq: 3, ts: expect.any(String) });
    expect(rec.events.at(-1)).toMatchObject({ seq: 3, kind: "message", body: "hello", sender: "u_ann" });
    expect(client.outbox()).toEqual([]);
    expect(server.stored.size).toBe(1);
    await client.close();
  });

  it("resends with the same client_msg_id after a disconnect: stored once", async () => {
    const server = world();
    const { client, rec } = await connected(server);
    const first = server.authed()[0]!;
    let n = 0;
    server.sendHook = () => (n++ === 0 ? "store-and-drop" : undefined); // stored, ack lost
    server.liveFilter = (conn) => conn !== first; // and its event too
    const p = client.send("c1", "once", { clientMsgId: "cm-1" });
    await tick(400);
    await expect(p).resolves.toMatchObject({ seq: 3 });
    const sends = server.allConns.flatMap((c) => c.frames("send"));
    expect(sends.map((f) => f.client_msg_id)).toEqual(["cm-1", "cm-1"]);
    expect(server.allConns.length).toBe(2);
    expect(server.stored.size).toBe(1);
    expect(server.convs.get("c1")!.events.filter((e) => e.kind === "message")).toHaveLength(1);
    expect(seqs(rec.events)).toEqual([3]); // from the sync replay, once
    expect(client.outbox()).toEqual([]);
    await client.close();
  });

  it("waits retry_after_ms after rate_limited, then resends", async () => {
    const server = world();
    const { client } = await connected(server);
    const times: number[] = [];
    server.sendHook = (_c, f) => {
      times.push(Date.now());
      if (times.length === 1) return { type: "error", code: "rate_limited", message: "slow down", retry_after_ms: 2000, conv: f.conv, client_msg_id: f.client_msg_id };
      return undefined;
    };
    const p = client.send("c1", "later");
    await tick(1900);
    expect(times).toHaveLength(1);
    await tick(200);
    expect(times).toHaveLength(2);
    expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(2000);
    await expect(p).resolves.toMatchObject({ seq: 3 });
    await client.close();
  });

  it("retries after an unanswered send (ack timeout) with the same client_msg_id", async () => {
    const server = world();
    const { client } = await connected(server, "ann", { ackTimeoutMs: 3000 });
    let n = 0;
    server.sendHook = () => (n++ === 0 ? "ignore" : undefined);
    const p = client.send("c1", "slow");
    await tick(3100);
    await expect(p).resolves.toMatchObject({ seq: 3 });
    expect(n).toBe(2);
    expect(server.stored.size).toBe(1);
    await client.close();
  });

  it("a refusal like invalid leaves the message failed in the outbox", async () => {
    const server = world();
    const { client } = await connected(server);
    server.sendHook = (_c, f) => ({ type: "error", code: "invalid", message: "too long", conv: f.conv, client_msg_id: f.client_msg_id });
    const p = client.send("c1", "bad", { clientMsgId: "cm-bad" });
    const caught = p.catch((e: unknown) => e);
    await tick(10);
    const err = await caught;
    expect(err).toBeInstanceOf(ChatError);
    expect((err as ChatError).code).toBe("invalid");
    expect(client.outbox()).toMatchObject([{ clientMsgId: "cm-bad", state: "failed", error: { code: "invalid" } }]);
    await tick(5000);
    expect(server.allConns[0]!.frames("send")).toHaveLength(1); // not retried by itself
    // retry() sends it again (the cause went away)
    server.sendHook = null;
    client.retry("cm-bad");
    await tick(10);
    expect(server.stored.size).toBe(1);
    expect(client.outbox()).toEqual([]);
    // removeFromOutbox drops a failed one
    server.sendHook = (_c, f) => ({ type: "error", code: "forbidden", message: "archived", conv: f.conv, client_msg_id: f.client_msg_id });
    client.send("c1", "nope", { clientMsgId: "cm-x" }).catch(() => undefined);
    await tick(10);
    expect(client.outbox()).toMatchObject([{ clientMsgId: "cm-x", state: "failed" }]);
    await client.removeFromOutbox("cm-x");
    expect(client.outbox()).toEqual([]);
    await client.close();
  });

  it("unavailable with retry_after_ms waits, then resends", async () => {
    const server = world();
    const { client } = await connected(server);
    let n = 0;
    server.sendHook = (_c, f) =>
      n++ === 0 ? { type: "error", code: "unavailable", message: "busy", retry_after_ms: 500, conv: f.conv, client_msg_id: f.client_msg_id } : undefined;
    const p = client.send("c1", "x");
    await tick(400);
    expect(n).toBe(1);
    await tick(200);
    await expect(p).resolves.toMatchObject({ seq: 3 });
    await client.close();
  });
});

describe("REST helpers", () => {
  it("users: q asks the directory; ids are looked up once each (cached), unknown ones omitted", async () => {
    const server = world();
    const { client } = await connected(server);
    const q = client.users({ q: "b" });
    await tick(1);
    expect(await q).toEqual([{ id: "u_bob", username: "bob", display_name: "BOB" }]);
    const ids = client.users({ ids: ["u_bob", "u_ann", "u_nobody"] });
    await tick(1);
    expect((await ids).map((u) => u.id)).toEqual(["u_bob", "u_ann"]);
    // bob was seen in the directory and ann is the caller: only the unknown id was asked for
    expect(server.rest.filter((r) => r.path.startsWith("/v1/users")).map((r) => r.path)).toEqual([
      "/v1/users?q=b",
      "/v1/users/u_nobody",
    ]);
    server.addUser("cy");
    const again = client.users({ ids: ["u_cy", "u_cy", "u_bob"] });
    await tick(1);
    expect((await again).map((u) => u.display_name)).toEqual(["CY", "BOB"]);
    const cached = client.users({ ids: ["u_cy"] });
    await tick(1);
    expect((await cached).map((u) => u.id)).toEqual(["u_cy"]);
    expect(server.rest.filter((r) => r.path.startsWith("/v1/users/u_cy"))).toHaveLength(1);
    const h = client.history("c1", { before: 3, limit: 1 });
    await tick(1);
    expect(await h).toMatchObject({ events: [{ seq: 2 }], has_more: true });
    // upload: multipart `file`, bearer token; progress reported at the end with fetch
    server.restHook = (method, path) => {
      if (method !== "POST" || path !== "/v1/media") return undefined;
      return new Response(JSON.stringify({ media_id: "m1", mime: "text/plain", size: 5, name: "a.txt", url: "/v1/media/m1?sig=x" }), { status: 201 });
    };
    const spy = vi.fn();
    const up = client.upload(new Blob(["hello"]), "a.txt", spy);
    await tick(1);
    expect(await up).toMatchObject({ media_id: "m1" });
    expect(spy).toHaveBeenCalledWith(5, 5);
    expect(server.rest.at(-1)).toMatchObject({ method: "POST", path: "/v1/media", auth: expect.stringMatching(/^Bearer acc_/) });
    server.restHook = null;
    const nf = client.history("nope").catch((e: unknown) => e);
    await tick(1);
    expect(await nf).toMatchObject({ code: "not_found", status: 404 });
    await client.close();
  });
});

describe("receipts and typing", () => {
  it("sends read/delivered monotonically, typing at most once a second", async () => {
    const server = world();
    const { client } = await connected(server);
    const conn = server.authed()[0]!;
    client.markRead("c1", 2);
    client.markRead("c1", 1);
    client.markRead("c1", 2);
    client.markDelivered("c1", 2); // implied by read 2
    client.markDelivered("c1", 3);
    client.typing("c1");
    client.typing("c1");
    await tick(500);
    client.typing("c1");
    await tick(600);
    client.typing("c1");
    await tick(5);
    expect(conn.received.filter((f) => f.type !== "auth" && f.type !== "sync")).toEqual([
      { type: "read", conv: "c1", seq: 2 },
      { type: "delivered", conv: "c1", seq: 3 },
      { type: "typing", conv: "c1" },
      { type: "typing", conv: "c1" },
    ]);
    await client.close();
  });

  it("a receipt marked while disconnected is sent after the next auth", async () => {
    const server = world();
    const { client } = await connected(server);
    server.dropAll(1012);
    await tick(2);
    client.markRead("c1", 2);
    await tick(400);
    const second = server.authed()[0]!;
    expect(second).not.toBe(server.allConns[0]);
    expect(second.frames("read")).toEqual([{ type: "read", conv: "c1", seq: 2 }]);
    await client.close();
  });

  it("passes receipt, typing and presence frames to their listeners", async () => {
    const server = world();
    const { client } = await connected(server);
    const got: unknown[] = [];
    client.on("receipt", (r) => got.push(r));
    client.on("typing", (t) => got.push(t));
    const off = client.on("presence", (p) => got.push(p));
    const conn = server.authed()[0]!;
    conn.push({ type: "receipt", conv: "c1", user_id: "u_bob", delivered_seq: 2, read_seq: 1 });
    conn.push({ type: "typing", conv: "c1", user_id: "u_bob", expires_in_ms: 5000 });
    conn.push({ type: "presence", user_id: "u_bob", status: "online", last_seen: "2026-01-01T00:00:00.000Z" });
    await tick(5);
    off();
    conn.push({ type: "presence", user_id: "u_bob", status: "offline", last_seen: null });
    await tick(5);
    expect(got).toEqual([
      { conv: "c1", user_id: "u_bob", delivered_seq: 2, read_seq: 1 },
      { conv: "c1", user_id: "u_bob", expires_in_ms: 5000 },
      { user_id: "u_bob", status: "online", last_seen: "2026-01-01T00:00:00.000Z" },
    ]);
    await client.close();
  });
});
