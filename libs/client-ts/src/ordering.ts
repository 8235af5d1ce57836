/** Per-conversation ordering: each `(conv, seq)` is delivered exactly once, in seq order.
 *
 * `Sequencer` is pure bookkeeping (no I/O, no clock). `Delivery` wraps it with the timing:
 * an event after a gap is held; a gap still open `holdMs` (1 s) after it appeared is filled
 * with `GET …/messages?after=last`; only when the log itself has nothing in the gap (REST
 * reached its end, or the conversation is no longer readable) does delivery skip ahead.
 * Conversations being replayed by `sync` are not gap-filled until their `sync_done`.
 * Mirrors chat_sdk.ordering / chat_sdk.delivery. */
import { ChatError, errorFromFrame } from "./errors.js";
import type { ChatEvent, Frame } from "./types.js";

/** One conversation: `last` is the highest seq delivered (everything up to it is done). */
export class ConvOrder {
  last: number;
  readonly pending = new Map<number, ChatEvent>();

  constructor(last = 0) {
    this.last = last;
  }

  /** The events deliverable after receiving `ev` (empty for a duplicate or a held one). */
  offer(ev: ChatEvent): ChatEvent[] {
    if (ev.seq <= this.last || this.pending.has(ev.seq)) return [];
    if (ev.seq !== this.last + 1) {
      this.pending.set(ev.seq, ev);
      return [];
    }
    this.last = ev.seq;
    return [ev, ...this.drain()];
  }

  private drain(): ChatEvent[] {
    const out: ChatEvent[] = [];
    for (let nxt = this.pending.get(this.last + 1); nxt !== undefined; nxt = this.pending.get(this.last + 1)) {
      this.pending.delete(nxt.seq);
      out.push(nxt);
      this.last = nxt.seq;
    }
    return out;
  }

  /** `[last, firstHeld]`: seqs strictly between them are missing; null without a gap. */
  gap(): [number, number] | null {
    if (this.pending.size === 0) return null;
    return [this.last, Math.min(...this.pending.keys())];
  }

  /** Give up on everything below `seq`: deliver the held events from `seq` on. */
  skipTo(seq: number): ChatEvent[] {
    if (seq - 1 > this.last) {
      this.last = seq - 1;
      for (const s of [...this.pending.keys()]) if (s <= this.last) this.pending.delete(s);
    }
    return this.drain();
  }
}

/** All conversations. A conversation not tracked yet starts at its first event seen
 * (e.g. the user's own `member_joined` after being added). */
export class Sequencer {
  readonly convs = new Map<string, ConvOrder>();
  /** Events offered that were already delivered or held (dropped). */
  duplicates = 0;

  positions(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [c, o] of this.convs) out[c] = o.last;
    return out;
  }

  known(conv: string): boolean {
    return this.convs.has(conv);
  }

  position(conv: string): number {
    return this.convs.get(conv)?.last ?? 0;
  }

  /** Track `conv` from `last` (no-op when already tracked). */
  start(conv: string, last: number): void {
    if (!this.convs.has(conv)) this.convs.set(conv, new ConvOrder(last));
  }

  forget(conv: string): void {
    this.convs.delete(conv);
  }

  offer(ev: ChatEvent): ChatEvent[] {
    let order = this.convs.get(ev.conv);
    if (order === undefined) {
      order = new ConvOrder(ev.seq - 1);
      this.convs.set(ev.conv, order);
    }
    if (ev.seq <= order.last || order.pending.has(ev.seq)) {
      this.duplicates += 1;
      return [];
    }
    return order.offer(ev);
  }

  gap(conv: string): [number, number] | null {
    return this.convs.get(conv)?.gap() ?? null;
  }

  skipTo(conv: string, seq: number): ChatEvent[] {
    return this.convs.get(conv)?.skipTo(seq) ?? [];
  }
}

export interface HistoryPage {
  events: ChatEvent[];
  has_more: boolean;
}

export interface DeliveryOptions {
  /** The page of events with seq > after, oldest first (GET …/messages?after=). */
  fetchAfter: (conv: string, after: number) => Promise<HistoryPage>;
  /** Called with each deliverable event, in order. */
  deliver: (ev: ChatEvent) => void;
  onError: (err: ChatError) => void;
  holdMs?: number;
  retryMs?: number;
}

/** (frame, timeout) → the server's answer to it. */
export type Requester = (frame: Frame, timeoutMs: number) => Promise<Frame>;

/** Conversations per `sync` frame (a frame is at most 64 KiB; the gateway takes ≤ 1000). */
export const SYNC_CHUNK = 500;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function isGone(err: unknown): boolean {
  return err instanceof ChatError && (err.code === "not_found" || err.code === "forbidden");
}

export class Delivery {
  readonly order = new Sequencer();
  readonly syncing = new Set<string>();
  readonly stats = { delivered: 0, gapsFilled: 0, gapsSkipped: 0, catchUps: 0, syncs: 0 };
  readonly holdMs: number;
  readonly retryMs: number;
  private readonly fills = new Map<string, ReturnType<typeof setTimeout> | "running">();
  private stopped = false;

  private readonly opts: DeliveryOptions;

  constructor(opts: DeliveryOptions) {
    this.opts = opts;
    this.holdMs = opts.holdMs ?? 1000;
    this.retryMs = opts.retryMs ?? 1000;
  }

  /** A log event from anywhere (live, sync replay, REST). */
  offer(ev: ChatEvent): void {
    this.put(this.order.offer(ev));
    this.check(ev.conv);
  }

  offerAll(evs: ChatEvent[]): void {
    for (const ev of evs) this.put(this.order.offer(ev));
    for (const conv of new Set(evs.map((e) => e.conv))) this.check(conv);
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.fills.values()) if (t !== "running") clearTimeout(t);
    this.fills.clear();
  }

  private put(out: ChatEvent[]): void {
    for (const ev of out) {
      this.stats.delivered += 1;
      this.opts.deliver(ev);
    }
  }

  private offerQuiet(evs: ChatEvent[]): void {
    for (const ev of evs) this.put(this.order.offer(ev));
  }

  // -- gaps -----------------------------------------------------------------------
  /** Start the gap timer of `conv` if it has a gap, is not being synced and has none. */
  check(conv: string): void {
    if (this.stopped || this.order.gap(conv) === null || this.syncing.has(conv) || this.fills.has(conv)) return;
    this.fills.set(
      conv,
      setTimeout(() => {
        this.fills.set(conv, "running");
        void this.fillLoop(conv).finally(() => {
          if (this.fills.get(conv) === "running") this.fills.delete(conv);
          this.check(conv); // a new gap may have opened meanwhile
        });
      }, this.holdMs),
    );
  }

  private async fillLoop(conv: string): Promise<void> {
    for (let gap = this.order.gap(conv); gap !== null && !this.syncing.has(conv) && !this.stopped; gap = this.order.gap(conv)) {
      try {
        await this.fillGap(conv, gap);
      } catch (err) {
        if (isGone(err)) {
          this.skip(conv, gap); // not readable any more: nothing can fill it
        } else {
          this.opts.onError(err instanceof ChatError ? err : new ChatError("internal", String(err)));
          await sleep(this.retryMs); // transient (network, 503): try again
        }
      }
    }
  }

  private async fillGap(conv: string, gap: [number, number]): Promise<void> {
    const page = await this.opts.fetchAfter(conv, gap[0]);
    if (this.stopped) return;
    this.offerQuiet(withConv(page.events, conv));
    const now = this.order.gap(conv);
    if (now === null || now[0] >= gap[1] - 1) {
      this.stats.gapsFilled += 1;
    } else if (!page.has_more || (now[0] === gap[0] && now[1] === gap[1])) {
      this.skip(conv, now); // the log has nothing more in this range
    }
  }

  private skip(conv: string, gap: [number, number]): void {
    this.stats.gapsSkipped += 1;
    this.put(this.order.skipTo(conv, gap[1]));
  }

  // -- catching up ----------------------------------------------------------------
  /** Page `GET …/messages?after=` from the conversation's position to the end of its log
   * (after a truncated `sync`). */
  async catchUp(conv: string, maxPages = 1000): Promise<void> {
    this.stats.catchUps += 1;
    for (let i = 0; i < maxPages && !this.stopped; i++) {
      const order = this.order.convs.get(conv);
      if (order === undefined) return;
      let page: HistoryPage;
      try {
        page = await this.opts.fetchAfter(conv, order.last);
      } catch (err) {
        if (isGone(err)) return;
        throw err;
      }
      this.offerQuiet(withConv(page.events, conv));
      if (!page.has_more || page.events.length === 0) return;
    }
  }

  /** `sync` every tracked conversation from its position (PROTOCOL §4), then page the
   * truncated ones over REST. Gap filling of those conversations waits until done. */
  async sync(request: Requester, timeoutMs: number): Promise<void> {
    const positions = this.order.positions();
    const convs = Object.keys(positions);
    for (const c of convs) this.syncing.add(c);
    const truncated: string[] = [];
    try {
      for (let i = 0; i < convs.length; i += SYNC_CHUNK) {
        const chunk: Record<string, number> = {};
        for (const c of convs.slice(i, i + SYNC_CHUNK)) chunk[c] = positions[c] ?? 0;
        const reply = await request({ type: "sync", positions: chunk }, timeoutMs);
        if (reply.type !== "sync_done") throw errorFromFrame(reply);
        for (const c of asStrings(reply.not_found)) this.order.forget(c); // no longer a member
        truncated.push(...asStrings(reply.truncated));
      }
      for (const c of truncated) await this.catchUp(c);
      this.stats.syncs += 1;
    } finally {
      for (const c of convs) this.syncing.delete(c);
      for (const c of convs) this.check(c);
    }
  }
}

function asStrings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
}

/** History pages carry `conv` on each event; make sure of it. */
function withConv(evs: ChatEvent[], conv: string): ChatEvent[] {
  return evs.map((e) => (typeof e.conv === "string" ? e : { ...e, conv }));
}
