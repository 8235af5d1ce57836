/** The persistent outbox: messages the user sent that the server has not acknowledged yet.
 *
 * Each message keeps its `client_msg_id` from the moment it is queued, through reconnects
 * and page reloads, so a resend can never store it twice (the server's idempotency key is
 * (sender, conv, client_msg_id)). `rate_limited` / `unavailable` wait `retry_after_ms`;
 * a refusal that cannot succeed by retrying (invalid, forbidden, too_large, not_found, …)
 * leaves the message "failed" in the outbox for the UI (retry() or remove()). */
import type { Backoff } from "./backoff.js";
import { ChatError, errorFromFrame, isRecord, PERMANENT_SEND_CODES } from "./errors.js";
import type { ChatEvent, Frame, OutboxStorage, OutgoingMessage } from "./types.js";

// ---- storage ------------------------------------------------------------------------------

function copy(m: OutgoingMessage): OutgoingMessage {
  const out: OutgoingMessage = { ...m };
  if (m.attachments) out.attachments = [...m.attachments];
  if (m.error) out.error = ChatError.fromJSON(m.error.toJSON());
  return out;
}

/** In memory (tests; Node). Copies on the way in and out, like a real store. */
export function memoryOutboxStorage(): OutboxStorage {
  const users = new Map<string, Map<string, OutgoingMessage>>();
  return {
    async load(userId) {
      return [...(users.get(userId)?.values() ?? [])].map(copy);
    },
    async put(userId, m) {
      let u = users.get(userId);
      if (!u) users.set(userId, (u = new Map()));
      u.set(m.clientMsgId, copy(m));
    },
    async remove(userId, clientMsgId) {
      users.get(userId)?.delete(clientMsgId);
    },
  };
}

const STORE = "outbox";

function req<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

function done(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error("transaction aborted"));
  });
}

/** IndexedDB: database `dbName` (default "chat-outbox"), one object store "outbox" keyed by
 * clientMsgId, each record tagged with its user (index "userId"). */
export function indexedDbOutboxStorage(dbName = "chat-outbox"): OutboxStorage {
  let db: Promise<IDBDatabase> | null = null;
  const open = (): Promise<IDBDatabase> => {
    if (db) return db;
    db = new Promise<IDBDatabase>((resolve, reject) => {
      const r = indexedDB.open(dbName, 1);
      r.onupgradeneeded = () => {
        const store = r.result.createObjectStore(STORE, { keyPath: "clientMsgId" });
        store.createIndex("userId", "userId", { unique: false });
      };
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    });
    db.catch(() => (db = null));
    return db;
  };
  return {
    async load(userId) {
      const d = await open();
      const tx = d.transaction(STORE, "readonly");
      const rows = await req(tx.objectStore(STORE).index("userId").getAll(userId));
      return (rows as unknown[]).map(fromRecord).filter((m): m is OutgoingMessage => m !== null);
    },
    async put(userId, m) {
      const d = await open();
      const tx = d.transaction(STORE, "readwrite");
      tx.objectStore(STORE).put(toRecord(userId, m));
      await done(tx);
    },
    async remove(userId, clientMsgId) {
      const d = await open();
      const tx = d.transaction(STORE, "readwrite");
      const store = tx.objectStore(STORE);
      const row: unknown = await req(store.get(clientMsgId));
      if (isRecord(row) && row.userId === userId) store.delete(clientMsgId);
      await done(tx);
    },
  };
}

function toRecord(userId: string, m: OutgoingMessage): Record<string, unknown> {
  const rec: Record<string, unknown> = { ...m, userId };
  if (m.attachments) rec.attachments = [...m.attachments];
  if (m.error) rec.error = m.error.toJSON(); // structured clone keeps no class
  else delete rec.error;
  return rec;
}

function fromRecord(v: unknown): OutgoingMessage | null {
  if (!isRecord(v) || typeof v.clientMsgId !== "string" || typeof v.conv !== "string" || typeof v.body !== "string") return null;
  const m: OutgoingMessage = {
    clientMsgId: v.clientMsgId,
    conv: v.conv,
    body: v.body,
    createdAt: typeof v.createdAt === "number" ? v.createdAt : 0,
    state: v.state === "sent" || v.state === "failed" ? v.state : "pending",
  };
  if (Array.isArray(v.attachments)) m.attachments = v.attachments.filter((a): a is string => typeof a === "string");
  if (typeof v.replyTo === "number") m.replyTo = v.replyTo;
  if (typeof v.seq === "number") m.seq = v.seq;
  if (v.error !== undefined && v.error !== null) m.error = ChatError.fromJSON(v.error);
  return m;
}

// ---- the outbox ---------------------------------------------------------------------------

export interface SendResult {
  seq: number;
  ts: string;
}

export interface OutboxDeps {
  storage: OutboxStorage;
  userId: string;
  /** Send a frame with a ref; the answer (rejects network / timeout / closed). */
  request: (frame: Frame, timeoutMs: number) => Promise<Frame>;
  /** An authenticated connection is up. */
  canSend: () => boolean;
  now: () => number;
  backoff: Backoff;
  ackTimeoutMs: number;
  /** Last delivered seq of a conversation. */
  position: (conv: string) => number;
  onChange: (list: OutgoingMessage[]) => void;
  onError: (err: ChatError) => void;
  /** At most this many sends awaiting their answer at once. */
  maxInFlight?: number;
}

interface Entry {
  msg: OutgoingMessage;
  inFlight: boolean;
  /** Bumped per dispatch: answers to an older dispatch are ignored. */
  dispatch: number;
  /** No resend before (epoch ms). */
  notBefore: number;
  failures: number;
  ts?: string;
  waiters: { resolve: (r: SendResult) => void; reject: (e: ChatError) => void }[];
}

export class Outbox {
  private readonly items = new Map<string, Entry>();
  private pausedUntil = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private timerAt = Infinity;
  private stopped = false;
  private loaded: Promise<void> | null = null;
  /** Sends dispatched, including resends (stats/tests). */
  dispatches = 0;

  private readonly d: OutboxDeps;

  constructor(d: OutboxDeps) {
    this.d = d;
  }

  /** Merge what storage holds (once; later calls share the first). */
  load(): Promise<void> {
    if (this.loaded) return this.loaded;
    this.loaded = (async () => {
      let stored: OutgoingMessage[] = [];
      try {
        stored = await this.d.storage.load(this.d.userId);
      } catch (err) {
        this.d.onError(new ChatError("internal", `outbox storage: ${String(err)}`));
      }
      stored.sort((a, b) => a.createdAt - b.createdAt);
      let changed = false;
      for (const m of stored) {
        if (this.items.has(m.clientMsgId)) continue;
        if (m.state === "sent") {
          void this.unstore(m.clientMsgId);
          continue;
        }
        this.items.set(m.clientMsgId, { msg: m, inFlight: false, dispatch: 0, notBefore: 0, failures: 0, waiters: [] });
        changed = true;
      }
      if (changed) this.changed();
    })();
    return this.loaded;
  }

  list(): OutgoingMessage[] {
    return [...this.items.values()].map((e) => ({ ...e.msg })).sort((a, b) => a.createdAt - b.createdAt);
  }

  /** Queue and send; resolves with the stored event's seq and ts. */
  async add(m: OutgoingMessage): Promise<SendResult> {
    if (this.stopped) throw new ChatError("closed", "client closed");
    const existing = this.items.get(m.clientMsgId);
    if (existing) {
      if (existing.msg.state === "sent" && existing.msg.seq !== undefined) return { seq: existing.msg.seq, ts: existing.ts ?? "" };
      return new Promise((resolve, reject) => existing.waiters.push({ resolve, reject }));
    }
    const e: Entry = { msg: m, inFlight: false, dispatch: 0, notBefore: 0, failures: 0, waiters: [] };
    this.items.set(m.clientMsgId, e);
    const p = new Promise<SendResult>((resolve, reject) => e.waiters.push({ resolve, reject }));
    this.changed();
    await this.store(m);
    this.pump();
    return p;
  }

  /** Send a failed (or waiting) message again now, with its client_msg_id. */
  retry(clientMsgId: string): void {
    const e = this.items.get(clientMsgId);
    if (!e || e.msg.state === "sent") return;
    e.notBefore = 0;
    if (e.msg.state === "failed") {
      e.msg.state = "pending";
      delete e.msg.error;
      e.failures = 0;
      void this.store(e.msg);
      this.changed();
    }
    this.pump();
  }

  async remove(clientMsgId: string): Promise<void> {
    const e = this.items.get(clientMsgId);
    if (e) {
      this.items.delete(clientMsgId);
      const err = new ChatError("cancelled", "removed from the outbox");
      for (const w of e.waiters.splice(0)) w.reject(err);
      this.changed();
    }
    await this.unstore(clientMsgId);
  }

  /** Stop sending; pending sends reject with `err` (they stay in storage for next time). */
  stop(err: ChatError): void {
    this.stopped = true;
    clearTimeout(this.timer);
    for (const e of this.items.values()) for (const w of e.waiters.splice(0)) w.reject(err);
  }

  /** The connection went down: answers to in-flight sends will not come. */
  connectionLost(): void {
    for (const e of this.items.values()) e.inFlight = false;
  }

  /** A delivered log event: the user's own message proves its send was stored, and a
   * sent message leaves the list once its event was delivered. */
  delivered(ev: ChatEvent): void {
    if (ev.kind === "message" && ev.sender === this.d.userId && typeof ev.client_msg_id === "string") {
      const e = this.items.get(ev.client_msg_id);
      if (e && e.msg.conv === ev.conv && e.msg.state !== "sent") this.sent(e, ev.seq, ev.ts);
    }
    let changed = false;
    for (const [id, e] of this.items) {
      if (e.msg.state === "sent" && e.msg.conv === ev.conv && (e.msg.seq ?? Infinity) <= this.d.position(ev.conv)) {
        this.items.delete(id);
        changed = true;
      }
    }
    if (changed) this.changed();
  }

  /** An `ack` that arrived without a waiting request (its request timed out). */
  acked(conv: string, clientMsgId: string, seq: number, ts: string): void {
    const e = this.items.get(clientMsgId);
    if (e && e.msg.conv === conv && e.msg.state !== "sent") {
      this.sent(e, seq, ts);
      this.pump();
    }
  }

  /** Send what is due (called after every auth, and by timers). */
  pump(): void {
    if (this.stopped || !this.d.canSend()) return;
    const now = this.d.now();
    if (now < this.pausedUntil) return this.wakeAt(this.pausedUntil);
    const max = this.d.maxInFlight ?? 32;
    let inFlight = 0;
    for (const e of this.items.values()) if (e.inFlight) inFlight += 1;
    for (const e of [...this.items.values()].sort((a, b) => a.msg.createdAt - b.msg.createdAt)) {
      if (inFlight >= max) break;
      if (e.inFlight || e.msg.state !== "pending") continue;
      if (e.notBefore > now) {
        this.wakeAt(e.notBefore);
        continue;
      }
      inFlight += 1;
      this.dispatch(e);
    }
  }

  private dispatch(e: Entry): void {
    e.inFlight = true;
    const id = ++e.dispatch;
    this.dispatches += 1;
    const m = e.msg;
    const frame: Frame = { type: "send", conv: m.conv, client_msg_id: m.clientMsgId, body: m.body };
    if (m.attachments && m.attachments.length > 0) frame.attachments = m.attachments;
    if (m.replyTo !== undefined) frame.reply_to = m.replyTo;
    this.d.request(frame, this.d.ackTimeoutMs).then(
      (reply) => this.answered(e, id, reply),
      (err: unknown) => this.notAnswered(e, id, err),
    );
  }

  private current(e: Entry, id: number): boolean {
    return !this.stopped && this.items.get(e.msg.clientMsgId) === e && e.dispatch === id && e.msg.state === "pending";
  }

  private answered(e: Entry, id: number, reply: Frame): void {
    if (!this.current(e, id)) return;
    e.inFlight = false;
    if (reply.type === "ack" && typeof reply.seq === "number") {
      this.sent(e, reply.seq, typeof reply.ts === "string" ? reply.ts : "");
      this.pump();
      return;
    }
    const err = reply.type === "error" ? errorFromFrame(reply) : new ChatError("internal", `unexpected answer ${String(reply.type)}`);
    const now = this.d.now();
    if (err.code === "rate_limited") {
      // The bucket is the user's: hold every send until it refills.
      this.pausedUntil = Math.max(this.pausedUntil, now + (err.retryAfterMs ?? 1000));
    } else if (err.code === "unavailable" && err.retryAfterMs !== undefined) {
      this.pausedUntil = Math.max(this.pausedUntil, now + err.retryAfterMs);
    } else if (PERMANENT_SEND_CODES.has(err.code)) {
      this.fail(e, err);
      this.pump();
      return;
    } else {
      e.notBefore = now + Math.max(1, this.d.backoff.delay(e.failures));
      e.failures += 1;
    }
    this.pump();
  }

  private notAnswered(e: Entry, id: number, err: unknown): void {
    if (!this.current(e, id)) return;
    e.inFlight = false;
    // timeout: send the same client_msg_id again now; network: pump() runs after the next auth.
    if (err instanceof ChatError && err.code === "timeout") this.pump();
  }

  private sent(e: Entry, seq: number, ts: string): void {
    e.inFlight = false;
    e.msg.state = "sent";
    e.msg.seq = seq;
    e.ts = ts;
    delete e.msg.error;
    void this.unstore(e.msg.clientMsgId);
    for (const w of e.waiters.splice(0)) w.resolve({ seq, ts });
    if (this.d.position(e.msg.conv) >= seq) this.items.delete(e.msg.clientMsgId);
    this.changed();
  }

  private fail(e: Entry, err: ChatError): void {
    e.msg.state = "failed";
    e.msg.error = err;
    void this.store(e.msg);
    for (const w of e.waiters.splice(0)) w.reject(err);
    this.changed();
  }

  private wakeAt(at: number): void {
    if (this.stopped || at >= this.timerAt) return;
    clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(
      () => {
        this.timerAt = Infinity;
        this.pump();
      },
      Math.max(0, at - this.d.now()),
    );
  }

  private changed(): void {
    this.d.onChange(this.list());
  }

  private async store(m: OutgoingMessage): Promise<void> {
    try {
      await this.d.storage.put(this.d.userId, m);
    } catch (err) {
      this.d.onError(new ChatError("internal", `outbox storage: ${String(err)}`));
    }
  }

  private async unstore(id: string): Promise<void> {
    try {
      await this.d.storage.remove(this.d.userId, id);
    } catch (err) {
      this.d.onError(new ChatError("internal", `outbox storage: ${String(err)}`));
    }
  }
}
