/** `ChatClient`: the app-facing API (mirrors chat_sdk.client, plus a persistent outbox).
 *
 *   const client = await ChatClient.login("ann", "secret…");      // browser: cookie session
 *   client.on("event", (e) => render(e));                            // per conv in seq order, once
 *   await client.connect();
 *   const { seq } = await client.send(conv, "hello");
 */
import { Backoff } from "./backoff.js";
import { ChatError, errorFromFrame, errorFromProblem, isRecord } from "./errors.js";
import { type HistoryPage, Delivery } from "./ordering.js";
import { memoryOutboxStorage, indexedDbOutboxStorage, Outbox } from "./outbox.js";
import { Http, type Query } from "./rest.js";
import { Link } from "./socket.js";
import { checkAnswer, requestRefresh, TokenManager } from "./tokens.js";
import type {
  ChatEvent,
  ClientOptions,
  ConnectionState,
  Conversation,
  Frame,
  Media,
  OutboxStorage,
  OutgoingMessage,
  Presence,
  Receipt,
  Role,
  SearchPage,
  TokenAnswer,
  Typing,
  User,
  WebSocketCtor,
} from "./types.js";

interface Resolved {
  baseUrl: string;
  wsUrl: string | undefined;
  fetch: typeof fetch;
  fetchInjected: boolean;
  WebSocket: WebSocketCtor | undefined;
  outbox: OutboxStorage;
  session: "cookie" | "body";
  random: () => number;
  now: () => number;
  heartbeatTimeoutMs: number | undefined;
  backoff: { baseMs: number; capMs: number };
  refreshToken: string | undefined;
  onRefreshToken: ((token: string) => void) | undefined;
  positions: Record<string, number> | undefined;
  gapFillAfterMs: number;
  ackTimeoutMs: number;
  connectTimeoutMs: number;
  requestTimeoutMs: number;
  backoffResetMs: number;
  refreshFraction: number;
  syncTimeoutMs: number;
}

let sharedMemoryOutbox: OutboxStorage | null = null;
let sharedIndexedDbOutbox: OutboxStorage | null = null;

function isBrowser(): boolean {
  return typeof window !== "undefined" && typeof document !== "undefined";
}

function resolve(opts: ClientOptions = {}): Resolved {
  const g = globalThis as { fetch?: typeof fetch; WebSocket?: WebSocketCtor; indexedDB?: unknown };
  const f = opts.fetch ?? (g.fetch ? g.fetch.bind(globalThis) : undefined);
  let outbox = opts.outbox;
  if (!outbox) {
    if (typeof g.indexedDB !== "undefined") outbox = sharedIndexedDbOutbox ??= indexedDbOutboxStorage();
    else outbox = sharedMemoryOutbox ??= memoryOutboxStorage();
  }
  return {
    baseUrl: (opts.baseUrl ?? "").replace(/\/+$/, ""),
    wsUrl: opts.wsUrl,
    fetch: f ?? (() => Promise.reject(new TypeError("no fetch: pass options.fetch"))),
    fetchInjected: opts.fetch !== undefined,
    WebSocket: opts.WebSocket ?? g.WebSocket,
    outbox,
    session: opts.session ?? (isBrowser() ? "cookie" : "body"),
    random: opts.random ?? Math.random,
    now: opts.now ?? (() => Date.now()),
    heartbeatTimeoutMs: opts.heartbeatTimeoutMs,
    backoff: opts.backoff ?? { baseMs: 250, capMs: 30_000 },
    refreshToken: opts.refreshToken,
    onRefreshToken: opts.onRefreshToken,
    positions: opts.positions,
    gapFillAfterMs: opts.gapFillAfterMs ?? 1000,
    ackTimeoutMs: opts.ackTimeoutMs ?? 15_000,
    connectTimeoutMs: opts.connectTimeoutMs ?? 10_000,
    requestTimeoutMs: opts.requestTimeoutMs ?? 30_000,
    backoffResetMs: opts.backoffResetMs ?? 5000,
    refreshFraction: opts.refreshFraction ?? 0.8,
    syncTimeoutMs: 30_000,
  };
}

/** ws(s)://host/ws from an absolute baseUrl, else from the page's location. */
export function deriveWsUrl(baseUrl: string, wsUrl?: string): string {
  if (wsUrl) return wsUrl;
  if (/^https?:\/\//i.test(baseUrl)) return baseUrl.replace(/^http/i, "ws").replace(/\/+$/, "") + "/ws";
  const loc = (globalThis as { location?: { protocol: string; host: string } }).location;
  if (loc) return `${loc.protocol === "https:" ? "wss:" : "ws:"}//${loc.host}${baseUrl.replace(/\/+$/, "")}/ws`;
  throw new ChatError("invalid", "give options.wsUrl or an absolute options.baseUrl outside a browser");
}

function randomId(): string {
  const c = (globalThis as { crypto?: Crypto }).crypto;
  if (c && typeof c.randomUUID === "function") return c.randomUUID();
  const b = new Uint8Array(16);
  if (c && typeof c.getRandomValues === "function") c.getRandomValues(b);
  else for (let i = 0; i < b.length; i++) b[i] = Math.floor(Math.random() * 256);
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
}

function session(r: Resolved): { http: Http; tokens: TokenManager } {
  const http = new Http({ baseUrl: r.baseUrl, fetch: r.fetch, timeoutMs: r.requestTimeoutMs });
  const tokens = new TokenManager(http, {
    session: r.session,
    now: r.now,
    fraction: r.refreshFraction,
    onRefreshToken: r.onRefreshToken,
  });
  http.token = () => tokens.accessToken;
  if (r.refreshToken) tokens.setRefreshToken(r.refreshToken);
  return { http, tokens };
}

async function fetchMe(http: Http): Promise<User> {
  const { data } = await http.request<User>("GET", "/v1/me");
  return data;
}

interface EventMap {
  event: ChatEvent;
  receipt: Receipt;
  typing: Typing;
  presence: Presence;
  state: ConnectionState;
  outbox: OutgoingMessage[];
  error: ChatError;
}
type EventName = keyof EventMap;

const PRESENCE_CHUNK = 100;
/** Uploads may be large (25 MiB by default): they get longer than other requests. */
const UPLOAD_TIMEOUT_MS = 10 * 60_000;

export class ChatClient {
  private readonly o: Resolved;
  private readonly http: Http;
  private readonly tokens: TokenManager;
  private readonly backoffs: Backoff;
  private readonly delivery: Delivery;
  private readonly link: Link;
  private readonly box: Outbox;
  private readonly listeners = new Map<EventName, Set<(v: never) => void>>();
  private readonly userCache = new Map<string, User>();
  private readonly readSeq = new Map<string, number>();
  private readonly deliveredSeq = new Map<string, number>();
  private readonly unsentReceipts = new Set<string>();
  private readonly typingAt = new Map<string, number>();
  private _user: User;
  private _state: ConnectionState = { status: "closed", attempt: 0 };
  private connecting: Promise<void> | null = null;
  private seeded = false;
  private finished = false;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  private syncRun = 0;

  private constructor(o: Resolved, http: Http, tokens: TokenManager, user: User) {
    this.o = o;
    this.http = http;
    this.tokens = tokens;
    this._user = user;
    this.userCache.set(user.id, user);
    this.backoffs = new Backoff(o.backoff.baseMs, o.backoff.capMs, o.random);
    http.refresh = async (stale) => {
      try {
        await this.tokens.refresh(stale);
      } catch (err) {
        if (err instanceof ChatError && err.code === "unauthorized") this.fail(err);
        throw err;
      }
    };
    tokens.onChange = () => this.tokensChanged();
    this.delivery = new Delivery({
      fetchAfter: (conv, after) => this.history(conv, { after, limit: 200 }),
      deliver: (ev) => this.deliver(ev),
      onError: (err) => this.emit("error", err),
      holdMs: o.gapFillAfterMs,
    });
    this.link = new Link({
      url: () => deriveWsUrl(o.baseUrl, o.wsUrl),
      WebSocket: o.WebSocket ?? (class {} as unknown as WebSocketCtor),
      backoff: this.backoffs,
      now: o.now,
      connectTimeoutMs: o.connectTimeoutMs,
      backoffResetMs: o.backoffResetMs,
      heartbeatTimeoutMs: o.heartbeatTimeoutMs,
      prepare: () => this.prepare(),
      refreshAfterClose: (stale) => this.tokens.refresh(stale),
      onReady: () => this.ready(),
      onFrame: (f) => this.onFrame(f),
      onState: (s) => {
        this._state = s;
        this.emit("state", s);
      },
      onDown: () => this.box.connectionLost(),
      onFatal: (err) => this.fail(err),
    });
    this.box = new Outbox({
      storage: o.outbox,
      userId: user.id,
      request: (f, t) => this.link.request(f, t),
      canSend: () => this.link.ready,
      now: o.now,
      backoff: this.backoffs,
      ackTimeoutMs: o.ackTimeoutMs,
      position: (conv) => this.delivery.order.position(conv),
      onChange: (list) => this.emit("outbox", list),
      onError: (err) => this.emit("error", err),
    });
    this.scheduleRefresh();
  }

  // -- construction ---------------------------------------------------------------
  static async register(username: string, password: string, displayName?: string, opts?: ClientOptions): Promise<User> {
    const r = resolve(opts);
    const http = new Http({ baseUrl: r.baseUrl, fetch: r.fetch, timeoutMs: r.requestTimeoutMs });
    const body: Record<string, unknown> = { username, password };
    if (displayName !== undefined) body.display_name = displayName;
    const { data } = await http.request<{ user: User }>("POST", "/v1/auth/register", { auth: false, json: body });
    return data.user;
  }

  static async login(username: string, password: string, opts?: ClientOptions): Promise<ChatClient> {
    const r = resolve(opts);
    const { http, tokens } = session(r);
    const { data } = await http.request<TokenAnswer>("POST", "/v1/auth/login", {
      auth: false,
      json: { username, password, session: r.session },
      credentials: "same-origin",
    });
    const answer = checkAnswer(data);
    tokens.set(answer);
    const user = answer.user ?? (await fetchMe(http));
    return new ChatClient(r, http, tokens, user);
  }

  /** After a page reload: refresh with the cookie (session "cookie", or with
   * options.refreshToken in session "body"); null when there is no session. */
  static async resume(opts?: ClientOptions): Promise<ChatClient | null> {
    const r = resolve(opts);
    if (r.session === "body" && !r.refreshToken) return null;
    const { http, tokens } = session(r);
    let answer: TokenAnswer;
    try {
      answer = await requestRefresh(http, r.session, tokens.currentRefreshToken);
    } catch (err) {
      if (err instanceof ChatError && err.code === "unauthorized") return null;
      throw err;
    }
    tokens.set(answer);
    const user = answer.user ?? (await fetchMe(http));
    return new ChatClient(r, http, tokens, user);
  }

  // -- state ----------------------------------------------------------------------
  get user(): User {
    return this._user;
  }

  get state(): ConnectionState {
    return this._state;
  }

  /** The current refresh token of a "body" session (persist it to resume; it rotates). */
  get refreshToken(): string | undefined {
    return this.tokens.currentRefreshToken;
  }

  /** Counters for diagnostics and tests. */
  get stats(): Record<string, number> {
    return {
      ...this.delivery.stats,
      duplicates: this.delivery.order.duplicates,
      connects: this.link.connects,
      reauths: this.link.reauths,
      refreshes: this.tokens.refreshes,
      sendDispatches: this.box.dispatches,
    };
  }

  /** Last seq seen per conversation (what sync sends). */
  positions(): Record<string, number> {
    return this.delivery.order.positions();
  }

  // -- connection -----------------------------------------------------------------
  /** Open the WebSocket (auth, then sync from the last known positions) and keep it open.
   * Resolves when first authenticated; rejects when the session is over. */
  connect(): Promise<void> {
    if (this.finished) return Promise.reject(new ChatError("closed", "client closed"));
    if (!this.o.WebSocket) return Promise.reject(new ChatError("invalid", "no WebSocket: pass options.WebSocket (Node 20)"));
    if (this.connecting) return this.connecting;
    this.connecting = (async () => {
      await this.box.load();
      if (this.finished) throw new ChatError("closed", "client closed");
      this.link.start();
      await this.link.whenReady();
    })();
    return this.connecting;
  }

  /** Close for good; with logout, revoke the session (POST /v1/auth/logout). */
  async close(opts: { logout?: boolean } = {}): Promise<void> {
    if (!this.finished) {
      this.finished = true;
      clearTimeout(this.refreshTimer);
      const err = new ChatError("closed", "client closed");
      this.link.stop();
      this.box.stop(err);
      this.delivery.stop();
      this._state = { status: "closed", attempt: 0 };
    }
    if (opts.logout) {
      const rt = this.tokens.currentRefreshToken;
      try {
        await this.http.request("POST", "/v1/auth/logout", {
          auth: false,
          json: rt ? { refresh_token: rt } : {},
          credentials: "same-origin",
        });
      } catch {
        /* best effort: the session ends here anyway */
      }
    }
  }

  /** Before each connection attempt: positions known, a fresh token. */
  private async prepare(): Promise<string> {
    if (!this.seeded) {
      if (this.o.positions) for (const [c, s] of Object.entries(this.o.positions)) this.delivery.order.start(c, s);
      else await this.conversations();
      this.seeded = true;
    }
    return this.tokens.ensureFresh();
  }

  private ready(): void {
    if (this.tokens.accessToken !== this.link.authToken) void this.link.reauth(this.tokens.accessToken);
    this.flushReceipts();
    this.box.pump();
    void this.syncLoop();
  }

  private async syncLoop(): Promise<void> {
    const run = ++this.syncRun;
    const connects = this.link.connects;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.delivery.sync((f, t) => this.link.request(f, t), this.o.syncTimeoutMs);
        return;
      } catch (err) {
        if (this.finished || run !== this.syncRun || !this.link.ready || this.link.connects !== connects) return; // the next auth syncs
        this.emit("error", err instanceof ChatError ? err : new ChatError("internal", String(err)));
        await new Promise((r) => setTimeout(r, Math.max(100, this.backoffs.delay(attempt))));
        if (this.finished || run !== this.syncRun || !this.link.ready || this.link.connects !== connects) return;
      }
    }
  }

  private fail(err: ChatError): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.refreshTimer);
    this.emit("error", err);
    this.link.stop(err);
    this.box.stop(err);
    this.delivery.stop();
  }

  // -- tokens ---------------------------------------------------------------------
  private tokensChanged(): void {
    this.scheduleRefresh();
    if (this.link.ready && this.link.authToken !== this.tokens.accessToken) void this.link.reauth(this.tokens.accessToken);
  }

  private scheduleRefresh(delay = this.tokens.delay()): void {
    clearTimeout(this.refreshTimer);
    if (this.finished) return;
    this.refreshTimer = setTimeout(() => {
      this.tokens.refresh(this.tokens.accessToken).then(
        () => undefined, // tokensChanged reschedules and re-auths in place
        (err: unknown) => {
          if (err instanceof ChatError && err.code === "unauthorized") this.fail(err);
          else this.scheduleRefresh(1000); // transient: try again soon
        },
      );
    }, Math.min(delay, 2 ** 31 - 1));
  }

  // -- events ---------------------------------------------------------------------
  on(name: "event", fn: (e: ChatEvent) => void): () => void;
  on(name: "receipt", fn: (r: Receipt) => void): () => void;
  on(name: "typing", fn: (t: Typing) => void): () => void;
  on(name: "presence", fn: (p: Presence) => void): () => void;
  on(name: "state", fn: (s: ConnectionState) => void): () => void;
  on(name: "outbox", fn: (list: OutgoingMessage[]) => void): () => void;
  on(name: "error", fn: (e: ChatError) => void): () => void;
  on(name: EventName, fn: (v: never) => void): () => void {
    let set = this.listeners.get(name);
    if (!set) this.listeners.set(name, (set = new Set()));
    const f = fn;
    set.add(f);
    return () => {
      set.delete(f);
    };
  }

  private emit<K extends EventName>(name: K, value: EventMap[K]): void {
    const set = this.listeners.get(name);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        (fn as (v: EventMap[K]) => void)(value);
      } catch (err) {
        console.error(`@chat/client: a "${name}" listener threw`, err);
      }
    }
  }

  private deliver(ev: ChatEvent): void {
    this.emit("event", ev);
    this.box.delivered(ev);
  }

  private onFrame(f: Frame): void {
    switch (f.type) {
      case "event": {
        const ev = f.event;
        if (isRecord(ev) && typeof ev.conv === "string" && typeof ev.seq === "number") this.delivery.offer(ev as unknown as ChatEvent);
        return;
      }
      case "receipt": {
        if (typeof f.conv !== "string" || typeof f.user_id !== "string") return;
        const r: Receipt = { conv: f.conv, user_id: f.user_id, delivered_seq: num(f.delivered_seq), read_seq: num(f.read_seq) };
        if (r.user_id === this._user.id) {
          this.raise(this.readSeq, r.conv, r.read_seq);
          this.raise(this.deliveredSeq, r.conv, Math.max(r.delivered_seq, r.read_seq));
        }
        this.emit("receipt", r);
        return;
      }
      case "typing":
        if (typeof f.conv === "string" && typeof f.user_id === "string")
          this.emit("typing", { conv: f.conv, user_id: f.user_id, expires_in_ms: typeof f.expires_in_ms === "number" ? f.expires_in_ms : 5000 });
        return;
      case "presence":
        if (typeof f.user_id === "string")
          this.emit("presence", {
            user_id: f.user_id,
            status: f.status === "online" ? "online" : "offline",
            last_seen: typeof f.last_seen === "string" ? f.last_seen : null,
          });
        return;
      case "ack":
        // An ack whose request timed out (its ref is no longer awaited) still proves the send.
        if (typeof f.conv === "string" && typeof f.client_msg_id === "string" && typeof f.seq === "number")
          this.box.acked(f.conv, f.client_msg_id, f.seq, typeof f.ts === "string" ? f.ts : "");
        return;
      case "error":
        this.emit("error", errorFromFrame(f));
        return;
      default:
        return; // unknown frame types are ignored (newer servers)
    }
  }

  // -- sending --------------------------------------------------------------------
  /** Queue a message in the persistent outbox and send it; resolves with the acked
   * event's seq and ts. See OutboxStorage for persistence. */
  send(
    conv: string,
    body: string,
    opts: { attachments?: string[]; replyTo?: number; clientMsgId?: string } = {},
  ): Promise<{ seq: number; ts: string }> {
    if (this.finished) return Promise.reject(new ChatError("closed", "client closed"));
    const m: OutgoingMessage = {
      clientMsgId: opts.clientMsgId ?? randomId(),
      conv,
      body,
      createdAt: this.o.now(),
      state: "pending",
    };
    if (opts.attachments && opts.attachments.length > 0) m.attachments = [...opts.attachments];
    if (opts.replyTo !== undefined) m.replyTo = opts.replyTo;
    return this.box.add(m);
  }

  outbox(): OutgoingMessage[] {
    return this.box.list();
  }

  retry(clientMsgId: string): void {
    this.box.retry(clientMsgId);
  }

  removeFromOutbox(clientMsgId: string): Promise<void> {
    return this.box.remove(clientMsgId);
  }

  // -- receipts and typing --------------------------------------------------------
  private raise(map: Map<string, number>, conv: string, seq: number): boolean {
    if (seq <= (map.get(conv) ?? 0)) return false;
    map.set(conv, seq);
    return true;
  }

  /** WS `read` (monotonic: a local no-op when not higher; implies delivered). */
  markRead(conv: string, seq: number): void {
    const s = Math.floor(seq);
    if (!this.raise(this.readSeq, conv, s)) return;
    this.raise(this.deliveredSeq, conv, s);
    this.unsentReceipts.delete(`delivered\u0000${conv}`);
    this.sendReceipt("read", conv);
  }

  /** WS `delivered` (monotonic: a local no-op when not higher). */
  markDelivered(conv: string, seq: number): void {
    if (!this.raise(this.deliveredSeq, conv, Math.floor(seq))) return;
    this.sendReceipt("delivered", conv);
  }

  private sendReceipt(kind: "read" | "delivered", conv: string): void {
    const seq = (kind === "read" ? this.readSeq : this.deliveredSeq).get(conv) ?? 0;
    const key = `${kind}\u0000${conv}`;
    if (this.link.sendFrame({ type: kind, conv, seq })) this.unsentReceipts.delete(key);
    else this.unsentReceipts.add(key); // sent after the next auth
  }

  private flushReceipts(): void {
    for (const key of [...this.unsentReceipts]) {
      const [kind, conv] = key.split("\u0000") as ["read" | "delivered", string];
      this.sendReceipt(kind, conv);
    }
  }

  /** WS `typing`: at most one per conversation per second; dropped when not connected. */
  typing(conv: string): void {
    const now = this.o.now();
    if (now - (this.typingAt.get(conv) ?? -Infinity) < 1000) return;
    if (this.link.sendFrame({ type: "typing", conv })) this.typingAt.set(conv, now);
  }

  // -- REST -----------------------------------------------------------------------
  private async call<T>(method: string, path: string, opts: { query?: Query; json?: unknown } = {}): Promise<T> {
    return (await this.http.request<T>(method, path, opts)).data;
  }

  private seedConversation(c: Conversation): void {
    this.delivery.order.start(c.id, typeof c.last_seq === "number" ? c.last_seq : 0);
    if (typeof c.read_seq === "number") this.raise(this.readSeq, c.id, c.read_seq);
    if (typeof c.delivered_seq === "number") this.raise(this.deliveredSeq, c.id, c.delivered_seq);
  }

  async me(): Promise<User> {
    const u = await fetchMe(this.http);
    this.userCache.set(u.id, u);
    if (u.id === this._user.id) this._user = u;
    return u;
  }

  /** GET /v1/conversations. Conversations not followed yet are followed from their last_seq. */
  async conversations(): Promise<Conversation[]> {
    const data = await this.call<{ conversations?: Conversation[] }>("GET", "/v1/conversations");
    const list = data.conversations ?? [];
    for (const c of list) this.seedConversation(c);
    return list;
  }

  conversation(id: string): Promise<Conversation> {
    return this.call<Conversation>("GET", `/v1/conversations/${enc(id)}`);
  }

  async createConversation(req: { kind: "channel" | "dm" | "group"; name?: string; private?: boolean; members?: string[] }): Promise<Conversation> {
    const body: Record<string, unknown> = { kind: req.kind, members: req.members ?? [] };
    if (req.name !== undefined) body.name = req.name;
    if (req.private !== undefined) body.private = req.private;
    const { status, data } = await this.http.request<Conversation>("POST", "/v1/conversations", { json: body });
    // A new conversation is followed from its start; an existing dm (200) from its end.
    this.delivery.order.start(data.id, status === 201 ? 0 : data.last_seq);
    return data;
  }

  async joinConversation(id: string): Promise<void> {
    const c = await this.call<Conversation | undefined>("POST", `/v1/conversations/${enc(id)}/join`);
    // Follow it from the own member_joined on (also when it arrives after a reconnect).
    if (c && typeof c.last_seq === "number") this.delivery.order.start(id, Math.max(0, c.last_seq - 1));
  }

  async addMember(conv: string, userId: string, role?: Role): Promise<void> {
    await this.call("POST", `/v1/conversations/${enc(conv)}/members`, { json: role ? { user_id: userId, role } : { user_id: userId } });
  }

  async removeMember(conv: string, userId: string): Promise<void> {
    await this.call("DELETE", `/v1/conversations/${enc(conv)}/members/${enc(userId)}`);
  }

  async setRole(conv: string, userId: string, role: Role): Promise<void> {
    await this.call("PUT", `/v1/conversations/${enc(conv)}/members/${enc(userId)}/role`, { json: { role } });
  }

  /** PATCH /v1/conversations/{id} (docs/protocol.md): rename, topic, description. */
  updateConversation(id: string, changes: { name?: string; topic?: string | null; description?: string | null }): Promise<Conversation> {
    return this.call<Conversation>("PATCH", `/v1/conversations/${enc(id)}`, { json: changes });
  }

  /** POST …/archive or …/unarchive (docs/protocol.md). */
  archiveConversation(id: string, archived = true): Promise<Conversation> {
    return this.call<Conversation>("POST", `/v1/conversations/${enc(id)}/${archived ? "archive" : "unarchive"}`);
  }

  /** POST …/hide (docs/protocol.md): out of conversations() until its next event. */
  async hideConversation(id: string): Promise<void> {
    await this.call("POST", `/v1/conversations/${enc(id)}/hide`);
  }

  async channels(opts: { q?: string; cursor?: string; limit?: number } = {}): Promise<{ channels: Conversation[]; next_cursor: string | null }> {
    const data = await this.call<{ channels?: Conversation[]; next_cursor?: string | null }>("GET", "/v1/channels", {
      query: { q: opts.q || undefined, cursor: opts.cursor, limit: opts.limit },
    });
    return { channels: data.channels ?? [], next_cursor: data.next_cursor ?? null };
  }

  /** GET /v1/users?q= (username prefix; first page) and, for `ids`, GET /v1/users/{id}
   * (cached; at most 8 at a time; unknown ids are omitted, as GET /v1/presence omits them).
   * With both, `q`'s results filtered to `ids`. */
  async users(opts: { q?: string; ids?: string[]; limit?: number; cursor?: string }): Promise<User[]> {
    if (opts.q) {
      const data = await this.call<{ users?: User[] }>("GET", "/v1/users", { query: { q: opts.q, limit: opts.limit, cursor: opts.cursor } });
      let list = data.users ?? [];
      for (const u of list) this.userCache.set(u.id, u);
      if (opts.ids) {
        const want = new Set(opts.ids);
        list = list.filter((u) => want.has(u.id));
      }
      return list;
    }
    const ids = [...new Set(opts.ids ?? [])];
    const missing = ids.filter((id) => !this.userCache.has(id));
    for (let i = 0; i < missing.length; i += 8) {
      await Promise.all(
        missing.slice(i, i + 8).map(async (id) => {
          try {
            this.userCache.set(id, await this.call<User>("GET", `/v1/users/${enc(id)}`));
          } catch (e) {
            if (!(e instanceof ChatError && e.code === "not_found")) throw e;
          }
        }),
      );
    }
    return ids.map((id) => this.userCache.get(id)).filter((u): u is User => u !== undefined);
  }

  async history(conv: string, opts: { before?: number; after?: number; limit?: number } = {}): Promise<{ events: ChatEvent[]; has_more: boolean }> {
    const data = await this.call<Partial<HistoryPage>>("GET", `/v1/conversations/${enc(conv)}/messages`, {
      query: { before: opts.before, after: opts.after, limit: opts.limit },
    });
    return { events: data.events ?? [], has_more: data.has_more === true };
  }

  edit(conv: string, seq: number, body: string): Promise<ChatEvent> {
    return this.call<ChatEvent>("PATCH", `/v1/conversations/${enc(conv)}/messages/${seq}`, { json: { body } });
  }

  remove(conv: string, seq: number): Promise<ChatEvent> {
    return this.call<ChatEvent>("DELETE", `/v1/conversations/${enc(conv)}/messages/${seq}`);
  }

  async receipts(conv: string): Promise<Receipt[]> {
    const data = await this.call<{ receipts?: Omit<Receipt, "conv">[] }>("GET", `/v1/conversations/${enc(conv)}/receipts`);
    return (data.receipts ?? []).map((r) => ({ ...r, conv }));
  }

  /** GET /v1/presence (in chunks of 100 ids); unknown ids and strangers are omitted. */
  async presence(userIds: string[]): Promise<Presence[]> {
    const ids = [...new Set(userIds)];
    const out: Presence[] = [];
    for (let i = 0; i < ids.length; i += PRESENCE_CHUNK) {
      const data = await this.call<{ presence?: Presence[] }>("GET", "/v1/presence", {
        query: { user_ids: ids.slice(i, i + PRESENCE_CHUNK).join(",") },
      });
      out.push(...(data.presence ?? []));
    }
    return out;
  }

  async search(q: string, opts: { conv?: string; limit?: number; cursor?: string } = {}): Promise<SearchPage> {
    const data = await this.call<Partial<SearchPage>>("GET", "/v1/search", {
      query: { q, conv: opts.conv, limit: opts.limit, cursor: opts.cursor },
    });
    return { hits: data.hits ?? [], next_cursor: data.next_cursor ?? null };
  }

  /** POST /v1/media (multipart `file`). In a browser (with the default fetch) XHR reports
   * upload progress; elsewhere fetch, with one progress call at the end. */
  async upload(file: Blob, name: string, onProgress?: (sent: number, total: number) => void): Promise<Media> {
    const form = (): FormData => {
      const f = new FormData();
      f.append("file", file, name);
      return f;
    };
    if (!this.o.fetchInjected && typeof XMLHttpRequest !== "undefined") {
      let token = this.tokens.accessToken;
      let res = await this.xhrUpload(form(), token, onProgress);
      if (res.status === 401) {
        await this.http.refresh?.(token);
        token = this.tokens.accessToken;
        res = await this.xhrUpload(form(), token, onProgress);
      }
      let data: unknown;
      try {
        data = res.text ? JSON.parse(res.text) : undefined;
      } catch {
        data = undefined;
      }
      if (res.status < 200 || res.status >= 300) throw errorFromProblem(res.status, data, res.retryAfter);
      return data as Media;
    }
    const { data } = await this.http.request<Media>("POST", "/v1/media", {
      form: form(),
      timeoutMs: Math.max(this.o.requestTimeoutMs, UPLOAD_TIMEOUT_MS),
    });
    onProgress?.(file.size, file.size);
    return data;
  }

  private xhrUpload(
    body: FormData,
    token: string,
    onProgress?: (sent: number, total: number) => void,
  ): Promise<{ status: number; text: string; retryAfter: string | null }> {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", this.http.url("/v1/media"));
      xhr.setRequestHeader("Authorization", `Bearer ${token}`);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.timeout = Math.max(this.o.requestTimeoutMs, UPLOAD_TIMEOUT_MS);
      if (onProgress) xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : e.loaded);
      xhr.onload = () => resolve({ status: xhr.status, text: xhr.responseText, retryAfter: xhr.getResponseHeader("Retry-After") });
      xhr.onerror = () => reject(new ChatError("network", "upload failed"));
      xhr.ontimeout = () => reject(new ChatError("network", "upload timed out"));
      xhr.send(body);
    });
  }

  /** GET /v1/me/blocks → the blocked users' ids. */
  async blocks(): Promise<string[]> {
    const data = await this.call<{ blocks?: { user_id: string }[] }>("GET", "/v1/me/blocks");
    return (data.blocks ?? []).map((b) => b.user_id);
  }

  async block(userId: string): Promise<void> {
    await this.call("POST", "/v1/me/blocks", { json: { user_id: userId } });
  }

  async unblock(userId: string): Promise<void> {
    await this.call("DELETE", `/v1/me/blocks/${enc(userId)}`);
  }

  /** Admin: POST /v1/admin/users/{id}/deactivate. */
  async deactivateUser(userId: string): Promise<void> {
    await this.call("POST", `/v1/admin/users/${enc(userId)}/deactivate`);
  }
}

function enc(s: string): string {
  return encodeURIComponent(s);
}

function num(v: unknown): number {
  return typeof v === "number" && Number.isFinite(v) ? v : 0;
}
