import { afterEach, beforeEach, expect, it, vi } from "vitest";
import { Backoff, ChatClient, memoryOutboxStorage, type ChatEvent, type ConnectionState } from "../src/index.js";
import { FakeServer, seeded } from "./fakes.js";
import { tick } from "./helpers.js";

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

/** The most entries of sorted `times` inside any window of `width` ms. */
function densest(times: number[], width: number): number {
  const t = [...times].sort((a, b) => a - b);
  let best = 0;
  for (let i = 0, j = 0; i < t.length; i++) {
    while (t[i]! - t[j]! >= width) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

it("a reconnect storm: 200 clients dropped at once spread their retries and lose nothing", async () => {
  const N = 200;
  const ROOMS = 10;
  const BASE = 250;
  const CAP = 30_000;
  const server = new FakeServer();
  server.latency = 0; // frames as microtasks: fewer fake timers to step through
  server.enforceExpiry = false;
  const sys = server.addUser("sys");
  const users = Array.from({ length: N }, (_, i) => server.addUser(`user${i}`));
  for (let k = 0; k < ROOMS; k++) {
    server.addConv(`room${k}`, [sys.id, ...users.filter((_, i) => i % ROOMS === k).map((u) => u.id)]);
  }

  interface Seen {
    client: ChatClient;
    room: string;
    events: ChatEvent[];
    states: { at: number; s: ConnectionState }[];
    start: number;
  }
  const seen: Seen[] = [];
  for (let i = 0; i < N; i++) {
    const p = ChatClient.login(`user${i}`, "password123", server.options({ random: seeded(1000 + i), outbox: memoryOutboxStorage() }));
    await tick(0);
    const client = await p;
    const s: Seen = { client, room: `room${i % ROOMS}`, events: [], states: [], start: 0 };
    client.on("event", (e) => s.events.push(e));
    client.on("state", (st) => s.states.push({ at: Date.now(), s: st }));
    seen.push(s);
  }
  const connects = seen.map((s) => s.client.connect());
  await tick(50);
  await Promise.all(connects);
  for (const s of seen) s.start = s.client.positions()[s.room]!;
  expect(server.authed()).toHaveLength(N);

  // The outage: every connection drops at once and the gateway stays away for 20 s.
  const t0 = Date.now();
  server.up = false;
  server.dropAll(1012, "service restart");
  await tick(5);
  // Meanwhile the logs move on, and every client writes a message.
  for (let k = 0; k < ROOMS; k++) for (let j = 0; j < 3; j++) server.append(`room${k}`, { kind: "message", sender: sys.id, body: `news ${j}` });
  const sends = seen.map((s, i) => s.client.send(s.room, `hello from ${i}`, { clientMsgId: `cm-${i}` }));
  await tick(20_000);
  server.up = true;
  const tUp = Date.now();
  await tick(31_000); // the longest wait is the cap, 30 s

  // 1. Every delay is full jitter over [0, min(cap, base·2^(attempt-1))).
  const backoff = new Backoff(BASE, CAP);
  const byAttempt = new Map<number, number[]>();
  for (const s of seen) {
    for (const { at, s: st } of s.states) {
      if (st.status !== "reconnecting" || st.retryAt === undefined) continue;
      const delay = st.retryAt - at;
      const ceiling = backoff.ceiling(st.attempt - 1);
      expect(delay).toBeGreaterThanOrEqual(0);
      expect(delay).toBeLessThan(ceiling);
      byAttempt.set(st.attempt, [...(byAttempt.get(st.attempt) ?? []), delay / ceiling]);
    }
  }
  // 2. Spread over the whole range at each attempt, and the cap grows exponentially.
  let prevMax = 0;
  for (let attempt = 1; attempt <= 7; attempt++) {
    const fractions = byAttempt.get(attempt) ?? [];
    expect(fractions.length).toBe(N); // everyone went through attempts 1..7 during the outage
    const deciles = Array.from({ length: 10 }, (_, d) => fractions.filter((f) => f >= d / 10 && f < (d + 1) / 10).length);
    for (const n of deciles) {
      expect(n).toBeGreaterThanOrEqual(N / 10 / 3);
      expect(n).toBeLessThanOrEqual((N / 10) * 2);
    }
    const maxDelay = Math.max(...fractions) * backoff.ceiling(attempt - 1);
    if (attempt > 1) expect(maxDelay).toBeGreaterThan(1.5 * prevMax);
    prevMax = maxDelay;
  }
  // 3. Not synchronized: once the caps have grown (8 s in: caps of 4..16 s), no 100 ms
  //    holds more than 7.5 % of the clients' tries, nor more than 5 % of the reconnections
  //    when the gateway is back (they spread over more than 10 s).
  const later = server.attempts.filter((t) => t >= t0 + 8_000);
  expect(later.length).toBeGreaterThan(N * 2);
  expect(densest(later, 100)).toBeLessThanOrEqual(N * 0.075);
  const back = server.arrivals.filter((t) => t >= tUp);
  expect(back).toHaveLength(N);
  expect(densest(back, 100)).toBeLessThanOrEqual(N * 0.05);
  expect(Math.max(...back) - Math.min(...back)).toBeGreaterThan(10_000);

  // 4. Everyone is back, nothing lost, nothing doubled.
  for (const s of seen) expect(s.client.state.status).toBe("open");
  expect(server.authed()).toHaveLength(N);
  expect(server.stored.size).toBe(N);
  const results = await Promise.all(sends);
  for (let i = 0; i < N; i++) {
    const s = seen[i]!;
    const log = server.convs.get(s.room)!.events;
    const mine = log.filter((e) => e.client_msg_id === `cm-${i}`);
    expect(mine).toHaveLength(1);
    expect(results[i]!.seq).toBe(mine[0]!.seq);
    // exactly the log after the start position, in order, once
    expect(s.events.map((e) => e.seq)).toEqual(log.filter((e) => e.seq > s.start).map((e) => e.seq));
    expect(s.client.outbox()).toEqual([]);
  }
  await Promise.all(seen.map((s) => s.client.close()));
});
