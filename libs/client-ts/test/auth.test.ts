import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ChatClient, ChatError } from "../src/index.js";
import { connected, loggedIn, record, seqs, tick, world } from "./helpers.js";

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

const refreshes = (server: ReturnType<typeof world>) => server.rest.filter((r) => r.path === "/v1/auth/refresh");

describe("tokens", () => {
  it("refreshes before expiry and re-authenticates the open socket in place", async () => {
    const server = world();
    server.tokenTtlS = 60;
    const { client, rec } = await connected(server);
    await tick(47_000);
    expect(refreshes(server)).toHaveLength(0);
    await tick(2_000); // 80 % of 60 s
    expect(refreshes(server)).toHaveLength(1);
    const conn = server.allConns[0]!;
    const auths = conn.frames("auth");
    expect(auths).toHaveLength(2);
    expect(auths[1]!.token).not.toBe(auths[0]!.token);
    expect(client.stats.reauths).toBe(1);
    // Long after the first token's expiry the same connection is still up (no 4003).
    await tick(120_000);
    expect(server.allConns).toHaveLength(1);
    expect(refreshes(server).length).toBeGreaterThanOrEqual(3);
    expect(rec.states.map((s) => s.status)).toEqual(["connecting", "open"]);
    await client.close();
  });

  it("a 401 on REST refreshes once and retries", async () => {
    const server = world();
    const { client } = await connected(server);
    server.revokeAccessTokens();
    const p = client.conversations();
    await tick(5);
    await expect(p).resolves.toHaveLength(1);
    expect(server.rest.slice(-3).map((r) => `${r.method} ${r.path}`)).toEqual([
      "GET /v1/conversations",
      "POST /v1/auth/refresh",
      "GET /v1/conversations",
    ]);
    await client.close();
  });

  it("a refused refresh ends the session: unauthorized, state closed", async () => {
    const server = world();
    const { client, rec } = await connected(server);
    server.revokeAccessTokens();
    for (const r of server.refresh.values()) server.revokedFamilies.add(r.family);
    const p = client.conversations().catch((e: unknown) => e);
    await tick(5);
    const err = await p;
    expect(err).toBeInstanceOf(ChatError);
    expect((err as ChatError).code).toBe("unauthorized");
    expect(refreshes(server)).toHaveLength(1);
    expect(client.state.status).toBe("closed");
    expect(rec.errors.map((e) => e.code)).toEqual(["unauthorized"]);
    await tick(60_000);
    expect(server.allConns).toHaveLength(1); // no reconnect loop
  });
});

describe("close codes", () => {
  it.each([4001, 4003])("close %i: refresh, then reconnect with the new token", async (code) => {
    const server = world();
    const { client, rec } = await connected(server);
    const before = server.rest.length;
    server.authed()[0]!.close(code, "token");
    await tick(400);
    expect(server.rest.slice(before).map((r) => r.path)).toEqual(["/v1/auth/refresh"]);
    expect(server.allConns).toHaveLength(2);
    const [a, b] = server.allConns.map((c) => c.frames("auth")[0]!.token);
    expect(b).not.toBe(a);
    expect(server.authed()).toHaveLength(1);
    expect(client.state.status).toBe("open");
    expect(rec.states.map((s) => s.status)).toContain("reconnecting");
    await client.close();
  });

  it("close 4001 with a refused refresh stops for good", async () => {
    const server = world();
    const { client, rec } = await connected(server);
    for (const r of server.refresh.values()) server.revokedFamilies.add(r.family);
    server.authed()[0]!.close(4001, "account deactivated");
    await tick(5_000);
    expect(client.state.status).toBe("closed");
    expect(rec.errors.map((e) => e.code)).toEqual(["unauthorized"]);
    expect(server.allConns).toHaveLength(1);
  });

  it("close 4009: reconnect and sync what was missed", async () => {
    const server = world();
    const { client, rec } = await connected(server);
    server.append("c1", { kind: "message", sender: "u_bob", body: "3" });
    await tick(5);
    server.authed()[0]!.close(4009, "slow consumer");
    server.append("c1", { kind: "message", sender: "u_bob", body: "4" });
    server.append("c1", { kind: "message", sender: "u_bob", body: "5" });
    await tick(400);
    expect(server.allConns).toHaveLength(2);
    expect(server.allConns[1]!.frames("sync")[0]).toMatchObject({ positions: { c1: 3 } });
    expect(seqs(rec.events)).toEqual([3, 4, 5]);
    await client.close();
  });

  it("close 4008 (and a refused connection): reconnect with a growing backoff", async () => {
    const server = world();
    const { client } = await connected(server, "ann", { random: () => 0.999 });
    const waits: { attempt: number; wait: number }[] = [];
    client.on("state", (s) => {
      if (s.status === "reconnecting" && s.retryAt !== undefined) waits.push({ attempt: s.attempt, wait: s.retryAt - Date.now() });
    });
    server.capRefusals = 4; // the next 4 tries are refused: error rate_limited + 4008
    server.authed()[0]!.close(4008, "policy");
    await tick(10_000);
    expect(waits.map((w) => w.attempt)).toEqual([1, 2, 3, 4, 5]);
    expect(waits.map((w) => Math.round(w.wait))).toEqual([250, 500, 999, 1998, 3996]);
    expect(server.allConns).toHaveLength(6);
    expect(client.state.status).toBe("open");
    await client.close();
  });

  it("heartbeat timeout: a silent connection is pinged, then replaced", async () => {
    const server = world();
    const { client, rec } = await connected(server);
    const first = server.allConns[0]!;
    first.silent = true; // the network dies without a close
    await tick(6_500); // a check runs every second: a ping after 5 s (heartbeat_s) of silence
    expect((first.ws.sent as { type: string }[]).filter((f) => f.type === "ping").length).toBeGreaterThanOrEqual(1);
    expect(server.allConns).toHaveLength(1);
    await tick(10_000); // 3 × heartbeat_s = 15 s of silence (+ the check period + backoff)
    expect(server.allConns.length).toBe(2);
    expect(server.authed()).toHaveLength(1);
    expect(rec.states.map((s) => s.status)).toEqual(["connecting", "open", "reconnecting", "open"]);
    await client.close();
  });

  it("a quiet but live connection stays up (its JSON pings are answered)", async () => {
    const server = world();
    const { client } = await connected(server);
    await tick(60_000);
    expect(server.allConns).toHaveLength(1);
    expect(server.allConns[0]!.frames("ping").length).toBeGreaterThan(5);
    await client.close();
  });

  it("heartbeatTimeoutMs overrides 3 × heartbeat_s", async () => {
    const server = world();
    const { client } = await connected(server, "ann", { heartbeatTimeoutMs: 2_000 });
    server.allConns[0]!.silent = true;
    await tick(1_800);
    expect(server.allConns.length).toBe(1);
    await tick(1_400);
    expect(server.allConns.length).toBe(2);
    await client.close();
  });
});

describe("sessions", () => {
  it("cookie session: refresh token only in the HttpOnly cookie; refresh/logout send {}", async () => {
    const server = world();
    const p = ChatClient.login("ann", "password123", server.options({ session: "cookie" }));
    await tick(0);
    const client = await p;
    const login = server.rest.find((r) => r.path === "/v1/auth/login")!;
    expect(login.body).toEqual({ username: "ann", password: "password123", session: "cookie" });
    expect(login.credentials).toBe("same-origin");
    expect(client.user).toEqual({ id: "u_ann", username: "ann", display_name: "ANN" });
    expect(client.refreshToken).toBeUndefined();
    const cookie1 = server.cookie;
    expect(cookie1).toMatch(/^ref_/);
    // a 401 refreshes with the cookie
    server.revokeAccessTokens();
    const c = client.conversations();
    await tick(1);
    await c;
    const r = refreshes(server)[0]!;
    expect(r.body).toEqual({});
    expect(r.credentials).toBe("same-origin");
    expect(server.cookie).not.toBe(cookie1);
    await client.close();

    // after a "reload": resume from the cookie
    const q = ChatClient.resume(server.options({ session: "cookie" }));
    await tick(0);
    const resumed = await q;
    expect(resumed?.user.id).toBe("u_ann");
    const rec = record(resumed!);
    const cp = resumed!.connect();
    await tick(10);
    await cp;
    expect(rec.states.at(-1)?.status).toBe("open");
    // logout revokes the cookie session
    const l = resumed!.close({ logout: true });
    await tick(1);
    await l;
    expect(server.rest.at(-1)).toMatchObject({ method: "POST", path: "/v1/auth/logout", body: {}, credentials: "same-origin" });
    const none = ChatClient.resume(server.options({ session: "cookie" }));
    await tick(0);
    expect(await none).toBeNull();
  });

  it("body session: the rotating refresh token stays in memory and can resume", async () => {
    const server = world();
    const seen: string[] = [];
    const client = await loggedIn(server, "ann", { onRefreshToken: (t) => seen.push(t) });
    expect(client.refreshToken).toMatch(/^ref_/);
    server.revokeAccessTokens();
    const c = client.conversations();
    await tick(1);
    await c;
    expect(refreshes(server)[0]!.body).toEqual({ refresh_token: seen[0] });
    expect(seen).toHaveLength(2);
    await client.close();
    const q = ChatClient.resume(server.options({ refreshToken: seen[1]! }));
    await tick(0);
    expect((await q)?.user.username).toBe("ann");
    // the spent one revokes the family: no session
    const spent = ChatClient.resume(server.options({ refreshToken: seen[0]! }));
    await tick(0);
    expect(await spent).toBeNull();
  });

  it("register answers the new user; a wrong password is unauthorized", async () => {
    const server = world();
    const p = ChatClient.register("cat", "password123", "Cat", server.options());
    await tick(0);
    expect(await p).toMatchObject({ username: "cat", id: "u_cat" });
    const bad = ChatClient.login("cat", "nope-nope", server.options()).catch((e: unknown) => e);
    await tick(0);
    expect(await bad).toMatchObject({ code: "unauthorized", status: 401 });
  });
});
