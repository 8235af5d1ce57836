import { describe, expect, it } from "vitest";
import { Backoff, ChatError, Sequencer, deriveWsUrl, errorFromProblem, type ChatEvent } from "../src/index.js";
import { seeded } from "./fakes.js";

const ev = (seq: number, conv = "c"): ChatEvent => ({ conv, seq, kind: "message", sender: "u", ts: "" });

describe("Sequencer", () => {
  it("delivers in order, once, holding events after a gap", () => {
    const s = new Sequencer();
    s.start("c", 0);
    expect(s.offer(ev(2))).toEqual([]);
    expect(s.gap("c")).toEqual([0, 2]);
    expect(s.offer(ev(3))).toEqual([]);
    expect(s.offer(ev(1)).map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(s.offer(ev(2))).toEqual([]);
    expect(s.duplicates).toBe(1);
    expect(s.gap("c")).toBeNull();
    expect(s.positions()).toEqual({ c: 3 });
  });

  it("skipTo gives up on a gap the log cannot fill", () => {
    const s = new Sequencer();
    s.start("c", 0);
    s.offer(ev(3));
    s.offer(ev(4));
    s.offer(ev(7));
    expect(s.skipTo("c", 3).map((e) => e.seq)).toEqual([3, 4]);
    expect(s.gap("c")).toEqual([4, 7]);
  });

  it("an unknown conversation starts at its first event", () => {
    const s = new Sequencer();
    expect(s.offer(ev(5, "new")).map((e) => e.seq)).toEqual([5]);
    expect(s.position("new")).toBe(5);
  });
});

describe("Backoff", () => {
  it("full jitter over [0, min(cap, base·2^n))", () => {
    const b = new Backoff(250, 30_000, seeded(1));
    expect([0, 1, 2, 3, 6, 7, 20, 100].map((n) => b.ceiling(n))).toEqual([250, 500, 1000, 2000, 16_000, 30_000, 30_000, 30_000]);
    for (let n = 0; n < 12; n++) {
      const ds = Array.from({ length: 500 }, () => b.delay(n));
      expect(Math.min(...ds)).toBeGreaterThanOrEqual(0);
      expect(Math.max(...ds)).toBeLessThan(b.ceiling(n));
      expect(Math.max(...ds)).toBeGreaterThan(0.95 * b.ceiling(n));
      expect(Math.min(...ds)).toBeLessThan(0.05 * b.ceiling(n));
    }
    expect(() => new Backoff(0, 10)).toThrow();
  });
});

describe("errors and URLs", () => {
  it("maps problem+json and Retry-After", () => {
    const e = errorFromProblem(429, { code: "rate_limited", detail: "slow" }, "3");
    expect(e).toBeInstanceOf(ChatError);
    expect(e).toMatchObject({ code: "rate_limited", status: 429, retryAfterMs: 3000, message: "slow" });
    expect(errorFromProblem(503, null, null)).toMatchObject({ code: "unavailable", status: 503 });
  });

  it("derives the WebSocket URL", () => {
    expect(deriveWsUrl("https://chat.example/")).toBe("wss://chat.example/ws");
    expect(deriveWsUrl("http://h:8080")).toBe("ws://h:8080/ws");
    expect(deriveWsUrl("", "ws://x/ws")).toBe("ws://x/ws");
    expect(() => deriveWsUrl("")).toThrow(ChatError);
  });
});
