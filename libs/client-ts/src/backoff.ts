/** Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff And
 * Jitter"): retry number `attempt` (0-based) waits a uniformly random time in
 * `[0, min(cap, base * 2^attempt))`. Mirrors chat_sdk.backoff. */
export class Backoff {
  readonly baseMs: number;
  readonly capMs: number;
  private readonly random: () => number;

  constructor(baseMs = 250, capMs = 30_000, random: () => number = Math.random) {
    if (!(baseMs > 0) || capMs < baseMs) throw new RangeError("backoff needs 0 < base <= cap");
    this.baseMs = baseMs;
    this.capMs = capMs;
    this.random = random;
  }

  /** The upper bound of the wait before retry number `attempt` (0-based). */
  ceiling(attempt: number): number {
    if (attempt >= 62) return this.capMs;
    return Math.min(this.capMs, this.baseMs * 2 ** Math.max(0, attempt));
  }

  delay(attempt: number): number {
    const r = this.random();
    const u = r >= 0 && r < 1 ? r : 0;
    return u * this.ceiling(attempt);
  }
}
