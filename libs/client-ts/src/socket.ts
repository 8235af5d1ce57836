/** The WebSocket link: connect, authenticate, detect a dead connection, reconnect
 * (mirrors chat_sdk.link).
 *
 * - Reconnects after ANY drop (network error, close 1001/1006/1012/4008/4009, a silent
 *   connection) with exponential backoff and full jitter; a connection that lived
 *   `backoffResetMs` resets the backoff.
 * - Close 4001/4003 refresh the tokens first; a refused refresh ends the link for good.
 * - Liveness: every frame received counts (and, with the `ws` package in Node, pings and
 *   pongs too). Browsers hide WebSocket pings, so after `heartbeat_s` of silence the link
 *   sends the JSON `{type:"ping"}` (answered `pong`); after `heartbeatTimeoutMs`
 *   (default 3 × heartbeat_s) of silence the connection is dropped and replaced.
 * - `request()` sends a frame with a fresh `ref` and resolves with the answer carrying it. */
import type { Backoff } from "./backoff.js";
import { ChatError, errorFromFrame, isRecord } from "./errors.js";
import type { ConnectionState, Frame, WebSocketCtor } from "./types.js";

export const CLOSE_UNAUTHORIZED = 4001;
export const CLOSE_TOKEN_EXPIRED = 4003;
/** What the link records when it drops a silent connection itself. */
export const CLOSE_DEAD = 4000;

export interface LinkOptions {
  url: () => string;
  WebSocket: WebSocketCtor;
  backoff: Backoff;
  now: () => number;
  connectTimeoutMs: number;
  backoffResetMs: number;
  /** Fixed silence limit; default 3 × heartbeat_s of the auth_ok. */
  heartbeatTimeoutMs?: number | undefined;
  /** Before each attempt: the (fresh) access token to authenticate with. Rejecting with
   * `unauthorized` ends the link; any other rejection counts as a failed attempt. */
  prepare: () => Promise<string>;
  /** After close 4001/4003: refresh (given the token the server refused). */
  refreshAfterClose: (stale: string) => Promise<void>;
  /** Authenticated (first time and after every reconnect). */
  onReady: () => void;
  /** Any frame that is not the answer to a request. */
  onFrame: (frame: Frame) => void;
  onState: (s: ConnectionState) => void;
  /** An authenticated connection went down. */
  onDown: () => void;
  /** The link stopped for good (refused refresh, …). */
  onFatal: (err: ChatError) => void;
}

interface Waiter {
  resolve: (f: Frame) => void;
  reject: (e: ChatError) => void;
  timer: ReturnType<typeof setTimeout>;
}

/** What the caller can see of a drop, for tests and diagnostics. */
export interface Disconnect {
  code: number;
  reason: string;
  at: number;
  wasReady: boolean;
}

type Listener = (ev: unknown) => void;
interface EmitterLike {
  on?: (name: string, fn: () => void) => unknown;
}

export class Link {
  ready = false;
  heartbeatS = 5;
  sessionId: string | undefined;
  /** The token the current connection authenticated with. */
  authToken = "";
  connects = 0;
  reauths = 0;
  readonly disconnects: Disconnect[] = [];

  private ws: WebSocket | null = null;
  private gen = 0; // bumped per socket: callbacks of older sockets are ignored
  private failures = 0;
  private started = false;
  private closing = false;
  private fatal: ChatError | null = null;
  private readyAt = 0;
  private lastRx = 0;
  private lastPing = 0;
  private attemptToken = "";
  private authError: ChatError | null = null;
  private connectTimer: ReturnType<typeof setTimeout> | undefined;
  private watchTimer: ReturnType<typeof setTimeout> | undefined;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private refs = 0;
  private readonly waiters = new Map<string, Waiter>();
  private readyWaiters: { resolve: () => void; reject: (e: ChatError) => void }[] = [];

  private readonly opts: LinkOptions;

  constructor(opts: LinkOptions) {
    this.opts = opts;
  }

  // -- public ---------------------------------------------------------------------
  start(): void {
    if (this.started || this.closing) return;
    this.started = true;
    this.opts.onState({ status: "connecting", attempt: 1 });
    void this.attempt();
  }

  /** Until authenticated (now or later); rejects when the link stops for good. */
  whenReady(): Promise<void> {
    if (this.ready) return Promise.resolve();
    if (this.fatal) return Promise.reject(this.fatal);
    if (this.closing) return Promise.reject(new ChatError("closed", "client closed"));
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
  }

  /** Send `frame` with a new `ref`; the server's answer with that `ref` (an `error` frame
   * too: the caller looks at `type`). Rejects with `network` when the connection drops
   * first, `timeout` after `timeoutMs`, `closed` after close(). */
  request(frame: Frame, timeoutMs: number): Promise<Frame> {
    if (this.fatal) return Promise.reject(this.fatal);
    if (this.closing) return Promise.reject(new ChatError("closed", "client closed"));
    const ws = this.ws;
    if (!this.ready || ws === null) return Promise.reject(new ChatError("network", "not connected"));
    const ref = `r${++this.refs}`;
    return new Promise<Frame>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(ref);
        reject(new ChatError("timeout", `no answer to ${String(frame.type)} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.set(ref, { resolve, reject, timer });
      try {
        ws.send(JSON.stringify({ ...frame, ref }));
      } catch (err) {
        clearTimeout(timer);
        this.waiters.delete(ref);
        reject(new ChatError("network", `send failed: ${String(err)}`));
      }
    });
  }

  /** Send a frame that gets no answer (receipts, typing); false when not connected. */
  sendFrame(frame: Frame): boolean {
    if (!this.ready || this.ws === null) return false;
    try {
      this.ws.send(JSON.stringify(frame));
      return true;
    } catch {
      return false;
    }
  }

  /** Re-authenticate the open connection in place (PROTOCOL §4). False when not connected
   * or not answered `auth_ok`. */
  async reauth(token: string): Promise<boolean> {
    if (!this.ready) return false;
    try {
      const reply = await this.request({ type: "auth", token }, this.opts.connectTimeoutMs);
      if (reply.type !== "auth_ok") return false;
    } catch {
      return false;
    }
    this.authToken = token;
    this.reauths += 1;
    return true;
  }

  /** Stop for good: with `err` the link reports it as fatal. */
  stop(err?: ChatError): void {
    if (this.closing) return;
    this.closing = true;
    if (err) this.fatal = err;
    clearTimeout(this.retryTimer);
    const ws = this.ws;
    this.teardown(err ?? new ChatError("closed", "client closed"));
    if (ws) {
      try {
        ws.close(1000, "client closing");
      } catch {
        /* already closed */
      }
    }
    const rw = this.readyWaiters;
    this.readyWaiters = [];
    for (const w of rw) w.reject(err ?? new ChatError("closed", "client closed"));
    this.opts.onState({ status: "closed", attempt: 0 });
    if (err) this.opts.onFatal(err);
  }

  // -- one attempt ----------------------------------------------------------------
  private async attempt(): Promise<void> {
    if (this.closing) return;
    const gen = ++this.gen;
    this.authError = null;
    let token: string;
    try {
      token = await this.opts.prepare();
    } catch (err) {
      if (this.closing || gen !== this.gen) return;
      const e = err instanceof ChatError ? err : new ChatError("internal", String(err));
      if (e.code === "unauthorized") return this.stop(e);
      this.retry({ code: 0, reason: `prepare failed: ${e.code}: ${e.message}`, at: this.opts.now(), wasReady: false });
      return;
    }
    if (this.closing || gen !== this.gen) return;
    this.attemptToken = token;
    let ws: WebSocket;
    try {
      ws = new this.opts.WebSocket(this.opts.url());
    } catch (err) {
      this.retry({ code: 0, reason: `connect failed: ${String(err)}`, at: this.opts.now(), wasReady: false });
      return;
    }
    this.ws = ws;
    const onOpen: Listener = () => {
      if (gen !== this.gen) return;
      this.lastRx = this.opts.now();
      try {
        ws.send(JSON.stringify({ type: "auth", token }));
      } catch {
        /* the close event follows */
      }
    };
    const onMessage: Listener = (ev) => {
      if (gen !== this.gen) return;
      this.onMessage((ev as MessageEvent).data);
    };
    const onClose: Listener = (ev) => {
      if (gen !== this.gen) return;
      const ce = ev as CloseEvent;
      this.down(typeof ce.code === "number" ? ce.code : 1006, typeof ce.reason === "string" ? ce.reason : "");
    };
    const onError: Listener = () => {
      // Browsers follow every error with a close event; fakes and some libraries may not.
      if (gen !== this.gen) return;
      setTimeout(() => {
        if (gen === this.gen) this.down(1006, "socket error");
      }, 0);
    };
    ws.addEventListener("open", onOpen);
    ws.addEventListener("message", onMessage);
    ws.addEventListener("close", onClose);
    ws.addEventListener("error", onError);
    const em = ws as unknown as EmitterLike;
    if (typeof em.on === "function") {
      // The `ws` package (Node) exposes control frames: the server's pings prove life.
      const touch = (): void => {
        if (gen === this.gen) this.lastRx = this.opts.now();
      };
      em.on("ping", touch);
      em.on("pong", touch);
    }
    this.connectTimer = setTimeout(() => {
      if (gen !== this.gen || this.ready) return;
      this.abort(ws, 4000, "no auth_ok in time");
    }, this.opts.connectTimeoutMs);
  }

  private onMessage(data: unknown): void {
    this.lastRx = this.opts.now();
    if (typeof data !== "string") return; // the server sends text frames only
    let frame: unknown;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (!isRecord(frame)) return;
    const f = frame as Frame;
    if (!this.ready) {
      if (f.type === "auth_ok") this.authenticated(f);
      else if (f.type === "error") this.authError = errorFromFrame(f);
      return;
    }
    if (typeof f.ref === "string") {
      const w = this.waiters.get(f.ref);
      if (w) {
        this.waiters.delete(f.ref);
        clearTimeout(w.timer);
        w.resolve(f);
        return;
      }
    }
    if (f.type === "pong") return;
    this.opts.onFrame(f);
  }

  private authenticated(f: Frame): void {
    clearTimeout(this.connectTimer);
    this.ready = true;
    this.readyAt = this.opts.now();
    this.authToken = this.attemptToken;
    this.heartbeatS = typeof f.heartbeat_s === "number" && f.heartbeat_s > 0 ? f.heartbeat_s : 5;
    this.sessionId = typeof f.session_id === "string" ? f.session_id : undefined;
    this.connects += 1;
    this.lastPing = 0;
    this.opts.onState({ status: "open", attempt: 0 });
    this.watch(this.gen);
    const rw = this.readyWaiters;
    this.readyWaiters = [];
    for (const w of rw) w.resolve();
    this.opts.onReady();
  }

  /** The liveness timer: wakes when something can be due (a ping after `heartbeat_s` of
   * silence, the drop after `heartbeatTimeoutMs`), not on a fixed poll. */
  private watch(gen: number): void {
    const hbMs = this.heartbeatS * 1000;
    const limit = this.opts.heartbeatTimeoutMs ?? 3 * hbMs;
    const check = (): void => {
      if (gen !== this.gen || !this.ready || this.ws === null) return;
      const now = this.opts.now();
      const silent = now - this.lastRx;
      if (silent > limit) {
        this.abort(this.ws, CLOSE_DEAD, `nothing received for ${silent} ms`);
        return;
      }
      if (silent >= hbMs && now - this.lastPing >= hbMs) {
        this.lastPing = now;
        this.sendFrame({ type: "ping" });
      }
      const nextPing = silent >= hbMs ? this.lastPing + hbMs : this.lastRx + hbMs;
      const next = Math.min(this.lastRx + limit + 1, nextPing);
      this.watchTimer = setTimeout(check, Math.max(1, next - now));
    };
    this.watchTimer = setTimeout(check, Math.max(1, Math.min(hbMs, limit + 1)));
  }

  /** Drop `ws` now (without waiting for a close handshake a dead network never finishes). */
  private abort(ws: WebSocket, code: number, reason: string): void {
    try {
      ws.close(code, reason);
    } catch {
      /* already closing */
    }
    this.down(code, reason);
  }

  private teardown(err: ChatError): void {
    this.gen += 1; // ignore anything the old socket still reports
    clearTimeout(this.connectTimer);
    clearTimeout(this.watchTimer);
    const wasReady = this.ready;
    this.ready = false;
    this.ws = null;
    const ws = [...this.waiters.values()];
    this.waiters.clear();
    for (const w of ws) {
      clearTimeout(w.timer);
      w.reject(err);
    }
    if (wasReady) this.opts.onDown();
  }

  private down(code: number, reason: string): void {
    if (this.closing) return;
    const wasReady = this.ready;
    const lived = wasReady ? this.opts.now() - this.readyAt : 0;
    const token = this.attemptToken;
    const authError = this.authError;
    this.teardown(new ChatError("network", `connection lost (${code}${reason ? " " + reason : ""})`));
    if (wasReady && lived >= this.opts.backoffResetMs) this.failures = 0;
    const d: Disconnect = { code, reason: reason || authError?.message || "", at: this.opts.now(), wasReady };
    if (code === CLOSE_UNAUTHORIZED || code === CLOSE_TOKEN_EXPIRED) {
      // Refresh first; a refused refresh ends the session here.
      this.opts.onState({ status: "reconnecting", attempt: this.failures + 1 });
      this.opts.refreshAfterClose(token).then(
        () => this.retry(d),
        (err: unknown) => {
          if (err instanceof ChatError && err.code === "unauthorized") this.stop(err);
          else this.retry(d); // transient: the next attempt refreshes again when due
        },
      );
      return;
    }
    this.retry(d);
  }

  private retry(d: Disconnect): void {
    if (this.closing) return;
    this.disconnects.push(d);
    if (this.disconnects.length > 100) this.disconnects.splice(0, this.disconnects.length - 100);
    const delay = this.opts.backoff.delay(this.failures);
    this.failures += 1;
    const retryAt = this.opts.now() + delay;
    this.opts.onState({ status: "reconnecting", attempt: this.failures, retryAt });
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => void this.attempt(), delay);
  }
}
