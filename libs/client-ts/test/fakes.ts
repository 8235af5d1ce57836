/** A fake gateway for the tests: an in-memory model of PROTOCOL v1's WebSocket and REST
 * sides (auth with rotating refresh tokens and the cookie session, per-conversation logs
 * with seqs, idempotent sends, sync with truncation, close codes), plus a FakeWebSocket and
 * a fake fetch that talk to it. Time comes from the (fake) timers: every frame takes
 * `latency` ms each way. */
import type { ChatEvent, ClientOptions, Conversation, User } from "../src/index.js";

type Frame = Record<string, unknown>;

export interface ServerUser extends User {
  password: string;
}

export interface ServerConv {
  id: string;
  kind: "channel" | "dm" | "group";
  name: string | null;
  members: Map<string, string>;
  events: ChatEvent[];
}

/** Run `fn` after `ms` of (fake) time; 0 = a microtask (no timer: cheap for big tests). */
export function later(ms: number, fn: () => void): void {
  if (ms <= 0) queueMicrotask(fn);
  else setTimeout(fn, ms);
}

/** Deterministic PRNG (mulberry32) for jitter in tests. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const OPEN = 1;
const CLOSED = 3;

type Listener = (ev: unknown) => void;

export class ServerConn {
  userId: string | null = null;
  tokenExp = 0;
  readonly received: Frame[] = [];
  readonly lastSent = new Map<string, number>();
  /** Blackholed: the server neither reads nor writes (a dead network). */
  silent = false;
  closed = false;
  expiryTimer: ReturnType<typeof setTimeout> | undefined;

  readonly server: FakeServer;
  readonly ws: FakeWebSocket;

  constructor(server: FakeServer, ws: FakeWebSocket) {
    this.server = server;
    this.ws = ws;
  }

  push(frame: Frame): void {
    if (this.closed || this.silent) return;
    if (frame.type === "event") {
      const ev = frame.event as ChatEvent;
      this.lastSent.set(ev.conv, Math.max(this.lastSent.get(ev.conv) ?? 0, ev.seq));
    }
    const data = JSON.stringify(frame);
    later(this.server.latency, () => this.ws.deliver(data));
  }

  /** The server closes the connection with `code` (after the frames already written). */
  close(code: number, reason = ""): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.expiryTimer);
    this.server.conns.delete(this);
    later(this.server.latency, () => this.ws.remoteClose(code, reason));
  }

  frames(type: string): Frame[] {
    return this.received.filter((f) => f.type === type);
  }
}

export class FakeServer {
  /** One-way delay of every frame, ms (0: a microtask). */
  latency = 1;
  /** Refuse this many next auths like the connection cap does (error + close 4008). */
  capRefusals = 0;
  /** Close connections with 4003 when their token expires (PROTOCOL §4). */
  enforceExpiry = true;
  heartbeatS = 5;
  tokenTtlS = 900;
  syncLimit = 500;
  /** New WebSockets fail (error + close 1006) while false. */
  up = true;
  readonly users = new Map<string, ServerUser>(); // by username
  readonly access = new Map<string, { userId: string; exp: number }>();
  readonly refresh = new Map<string, { userId: string; family: number; spent: boolean }>();
  readonly revokedFamilies = new Set<number>();
  readonly convs = new Map<string, ServerConv>();
  readonly stored = new Map<string, ChatEvent>(); // conv|sender|cmid
  readonly conns = new Set<ServerConn>();
  readonly allConns: ServerConn[] = [];
  readonly rest: { method: string; path: string; body: unknown; credentials: string | undefined; auth: string | null }[] = [];
  /** The browser's cookie jar for the gateway's origin (chat_refresh, Path=/v1/auth). */
  cookie: string | null = null;
  /** Answer a `send` differently: return a frame to send instead, "store-and-drop" to store
   * it and drop the connection before the ack, "ignore" to answer nothing, or undefined. */
  sendHook: ((conn: ServerConn, f: Frame) => Frame | "store-and-drop" | "ignore" | undefined) | null = null;
  /** Whether a new event is pushed live to this connection (false simulates a lost frame). */
  liveFilter: ((conn: ServerConn, ev: ChatEvent) => boolean) | null = null;
  private nextId = 1;
  private family = 1;
  /** Connection times (ms, the fake clock), for the storm test: accepted, and all tries. */
  readonly arrivals: number[] = [];
  readonly attempts: number[] = [];

  // -- setup ----------------------------------------------------------------------
  addUser(username: string, password = "password123"): ServerUser {
    const u: ServerUser = { id: `u_${username}`, username, display_name: username.toUpperCase(), password };
    this.users.set(username, u);
    return u;
  }

  addConv(id: string, memberIds: string[], kind: ServerConv["kind"] = "group"): ServerConv {
    const c: ServerConv = { id, kind, name: kind === "channel" ? id : null, members: new Map(), events: [] };
    this.convs.set(id, c);
    for (const m of memberIds) {
      c.members.set(m, "member");
      this.append(id, { kind: "member_joined", sender: memberIds[0] ?? m, user_id: m, role: "member" });
    }
    return c;
  }

  /** Append an event to a log and push it live to the members' connections. */
  append(conv: string, fields: Partial<ChatEvent> & { kind: ChatEvent["kind"]; sender: string }): ChatEvent {
    const c = this.convs.get(conv);
    if (!c) throw new Error(`no conv ${conv}`);
    const ev: ChatEvent = { conv, seq: c.events.length + 1, ts: new Date(Date.now()).toISOString(), ...fields } as ChatEvent;
    c.events.push(ev);
    for (const conn of this.conns) {
      if (!conn.userId || !c.members.has(conn.userId)) continue;
      if ((conn.lastSent.get(conv) ?? 0) >= ev.seq) continue;
      if (this.liveFilter && !this.liveFilter(conn, ev)) continue;
      conn.push({ type: "event", event: ev });
    }
    return ev;
  }

  userById(id: string): ServerUser | undefined {
    for (const u of this.users.values()) if (u.id === id) return u;
    return undefined;
  }

  // -- tokens ---------------------------------------------------------------------
  issue(userId: string, family = this.family++): { access_token: string; refresh_token: string; expires_in: number } {
    const access = `acc_${this.nextId++}_${userId}`;
    const refresh = `ref_${this.nextId++}_${userId}`;
    this.access.set(access, { userId, exp: Date.now() + this.tokenTtlS * 1000 });
    this.refresh.set(refresh, { userId, family, spent: false });
    return { access_token: access, refresh_token: refresh, expires_in: this.tokenTtlS };
  }

  checkAccess(token: string | null | undefined): string | null {
    if (!token) return null;
    const t = this.access.get(token);
    if (!t || t.exp <= Date.now()) return null;
    return t.userId;
  }

  /** Invalidate every access token (e.g. a key rotation): REST answers 401 until refresh. */
  revokeAccessTokens(): void {
    this.access.clear();
  }

  // -- WebSocket side ---------------------------------------------------------------
  get WebSocket(): new (url: string) => WebSocket {
    const server = this;
    return class extends FakeWebSocket {
      constructor(url: string) {
        super(url, server);
      }
    } as unknown as new (url: string) => WebSocket;
  }

  accept(ws: FakeWebSocket): ServerConn | null {
    this.attempts.push(Date.now());
    if (!this.up) return null;
    const conn = new ServerConn(this, ws);
    this.conns.add(conn);
    this.allConns.push(conn);
    this.arrivals.push(Date.now());
    return conn;
  }

  /** The server drops every connection at once with `code`. */
  dropAll(code: number, reason = ""): void {
    for (const c of [...this.conns]) c.close(code, reason);
  }

  authed(): ServerConn[] {
    return [...this.conns].filter((c) => c.userId !== null && !c.closed);
  }

  handle(conn: ServerConn, raw: string): void {
    if (conn.closed || conn.silent) return;
    const f = JSON.parse(raw) as Frame;
    conn.received.push(f);
    const ref = f.ref;
    const reply = (frame: Frame): void => conn.push(ref === undefined ? frame : { ...frame, ref });
    if (conn.userId === null && this.capRefusals > 0 && f.type === "auth") {
      // the per-user connection cap (docs/protocol.md): error rate_limited, then 4008
      this.capRefusals -= 1;
      conn.push({ type: "error", code: "rate_limited", message: "too many connections" });
      conn.close(4008, "policy");
      return;
    }
    if (conn.userId === null) {
      const uid = f.type === "auth" ? this.checkAccess(f.token as string) : null;
      if (!uid) {
        conn.push({ type: "error", code: "unauthorized", message: "bad token" });
        conn.close(4001, "unauthorized");
        return;
      }
      conn.userId = uid;
      this.armExpiry(conn, f.token as string);
      reply({ type: "auth_ok", user_id: uid, session_id: `s${this.allConns.length}`, heartbeat_s: this.heartbeatS });
      return;
    }
    switch (f.type) {
      case "auth": {
        const uid = this.checkAccess(f.token as string);
        if (uid !== conn.userId) {
          conn.close(4001, "unauthorized");
          return;
        }
        this.armExpiry(conn, f.token as string);
        reply({ type: "auth_ok", user_id: uid, session_id: "same", heartbeat_s: this.heartbeatS });
        return;
      }
      case "ping":
        reply({ type: "pong" });
        return;
      case "sync": {
        const positions = (f.positions ?? {}) as Record<string, number>;
        const truncated: string[] = [];
        const notFound: string[] = [];
        for (const [id, pos] of Object.entries(positions)) {
          const c = this.convs.get(id);
          if (!c || !c.members.has(conn.userId)) {
            notFound.push(id);
            continue;
          }
          const missed = c.events.filter((e) => e.seq > pos && e.seq > (conn.lastSent.get(id) ?? 0));
          for (const e of missed.slice(0, this.syncLimit)) conn.push({ type: "event", event: e });
          if (missed.length > this.syncLimit) truncated.push(id);
        }
        reply({ type: "sync_done", truncated, not_found: notFound });
        return;
      }
      case "send": {
        const hook = this.sendHook?.(conn, f);
        if (hook === "ignore") return;
        if (hook && hook !== "store-and-drop") {
          reply(hook);
          return;
        }
        const conv = this.convs.get(f.conv as string);
        if (!conv || !conv.members.has(conn.userId)) {
          reply({ type: "error", code: "not_found", message: "no such conversation", conv: f.conv, client_msg_id: f.client_msg_id });
          return;
        }
        const key = `${conv.id}|${conn.userId}|${String(f.client_msg_id)}`;
        let ev = this.stored.get(key);
        if (!ev) {
          const fields: Partial<ChatEvent> & { kind: "message"; sender: string } = {
            kind: "message",
            sender: conn.userId,
            body: String(f.body),
            client_msg_id: String(f.client_msg_id),
          };
          if (typeof f.reply_to === "number") fields.reply_to = f.reply_to;
          ev = this.append(conv.id, fields);
          this.stored.set(key, ev);
        }
        if (hook === "store-and-drop") {
          conn.close(1006, "");
          return;
        }
        reply({ type: "ack", conv: conv.id, client_msg_id: f.client_msg_id, seq: ev.seq, ts: ev.ts });
        return;
      }
      default:
        return; // read, delivered, typing: recorded in conn.received
    }
  }

  private armExpiry(conn: ServerConn, token: string): void {
    clearTimeout(conn.expiryTimer);
    if (!this.enforceExpiry) return;
    const t = this.access.get(token);
    if (!t) return;
    conn.tokenExp = t.exp;
    conn.expiryTimer = setTimeout(() => conn.close(4003, "token expired"), Math.max(0, t.exp - Date.now()) + 100);
  }

  // -- REST side ------------------------------------------------------------------
  /** Extra REST behaviour per test: return a Response to answer with. */
  restHook: ((method: string, path: string, body: unknown) => Response | undefined) | null = null;

  get fetch(): typeof fetch {
    return (async (input: RequestInfo | URL, init?: RequestInit) => this.route(String(input), init ?? {})) as typeof fetch;
  }

  private async route(url: string, init: RequestInit): Promise<Response> {
    const u = new URL(url, "http://gateway.test");
    const method = (init.method ?? "GET").toUpperCase();
    const headers = (init.headers ?? {}) as Record<string, string>;
    let body: unknown = undefined;
    if (typeof init.body === "string") body = JSON.parse(init.body);
    const auth = headers.Authorization ?? null;
    this.rest.push({ method, path: u.pathname + u.search, body, credentials: init.credentials, auth });
    const hooked = this.restHook?.(method, u.pathname, body);
    if (hooked) return hooked;
    const b = (body ?? {}) as Record<string, unknown>;
    const p = u.pathname;
    if (method === "POST" && p === "/v1/auth/register") {
      if (this.users.has(String(b.username))) return problem(409, "conflict");
      const su = this.addUser(String(b.username), String(b.password));
      return json(201, { user: pub(su) });
    }
    if (method === "POST" && p === "/v1/auth/login") {
      const su = this.users.get(String(b.username));
      if (!su || su.password !== b.password) return problem(401, "unauthorized");
      const pair = this.issue(su.id);
      if (b.session === "cookie") {
        this.cookie = pair.refresh_token;
        return json(200, { access_token: pair.access_token, token_type: "Bearer", expires_in: pair.expires_in, user: pub(su) });
      }
      return json(200, { ...pair, token_type: "Bearer", user: pub(su) });
    }
    if (method === "POST" && (p === "/v1/auth/refresh" || p === "/v1/auth/logout")) {
      const fromCookie = init.credentials !== "omit" && b.refresh_token === undefined;
      const rt = typeof b.refresh_token === "string" ? b.refresh_token : fromCookie ? this.cookie : null;
      const rec = rt ? this.refresh.get(rt) : undefined;
      if (p === "/v1/auth/logout") {
        if (rec) this.revokedFamilies.add(rec.family);
        if (fromCookie) this.cookie = null;
        return new Response(null, { status: 204 });
      }
      if (!rec) return problem(rt ? 401 : 422, rt ? "unauthorized" : "invalid");
      if (rec.spent || this.revokedFamilies.has(rec.family)) {
        this.revokedFamilies.add(rec.family);
        return problem(401, "unauthorized");
      }
      rec.spent = true;
      const pair = this.issue(rec.userId, rec.family);
      if (fromCookie) {
        this.cookie = pair.refresh_token;
        return json(200, { access_token: pair.access_token, token_type: "Bearer", expires_in: pair.expires_in });
      }
      return json(200, { ...pair, token_type: "Bearer" });
    }
    const uid = this.checkAccess(auth?.replace(/^Bearer /, ""));
    if (!uid) return problem(401, "unauthorized");
    if (method === "GET" && p === "/v1/me") return json(200, pub(this.userById(uid)!));
    if (method === "GET" && p === "/v1/conversations") {
      const list = [...this.convs.values()].filter((c) => c.members.has(uid)).map((c) => this.convObject(c));
      return json(200, { conversations: list });
    }
    const m = /^\/v1\/conversations\/([^/]+)\/messages$/.exec(p);
    if (m && method === "GET") {
      const c = this.convs.get(decodeURIComponent(m[1]!));
      if (!c || !c.members.has(uid)) return problem(404, "not_found");
      const after = u.searchParams.get("after");
      const before = u.searchParams.get("before");
      const limit = Math.min(200, Math.max(1, Number(u.searchParams.get("limit") ?? 50)));
      let evs = c.events.filter((e) => (after === null || e.seq > Number(after)) && (before === null || e.seq < Number(before)));
      let hasMore: boolean;
      if (after !== null) {
        hasMore = evs.length > limit;
        evs = evs.slice(0, limit);
      } else {
        hasMore = evs.length > limit;
        evs = evs.slice(-limit);
      }
      return json(200, { events: evs, has_more: hasMore });
    }
    if (method === "GET" && p === "/v1/users") {
      const q = u.searchParams.get("q") ?? "";
      const list = [...this.users.values()].filter((x) => x.username.startsWith(q)).map(pub);
      return json(200, { users: list, next_cursor: null });
    }
    const byId = /^\/v1\/users\/([^/]+)$/.exec(p);
    if (method === "GET" && byId) {
      const found = [...this.users.values()].find((x) => x.id === decodeURIComponent(byId[1] ?? ""));
      return found ? json(200, pub(found)) : problem(404, "not_found");
    }
    return problem(404, "not_found");
  }

  convObject(c: ServerConv): Conversation {
    return {
      id: c.id,
      kind: c.kind,
      name: c.name,
      private: c.kind !== "channel",
      created_by: "u_x",
      created_at: "2026-01-01T00:00:00.000Z",
      last_seq: c.events.length,
      role: "member",
      delivered_seq: 0,
      read_seq: 0,
      unread: c.events.length,
    };
  }

  /** Options wiring a client to this server. */
  options(extra: ClientOptions = {}): ClientOptions {
    return { baseUrl: "http://gateway.test", fetch: this.fetch, WebSocket: this.WebSocket, session: "body", ...extra };
  }
}

function pub(u: ServerUser): User {
  return { id: u.id, username: u.username, display_name: u.display_name };
}

export function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

export function problem(status: number, code: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify({ type: "about:blank", title: code, status, code, detail: code, ...extra }), {
    status,
    headers: { "Content-Type": "application/problem+json", ...headers },
  });
}

/** A browser-like WebSocket whose other end is the FakeServer. */
export class FakeWebSocket {
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSING = 2;
  static readonly CLOSED = 3;
  readyState = 0;
  readonly sent: Frame[] = [];
  conn: ServerConn | null = null;
  private readonly listeners = new Map<string, Set<Listener>>();

  readonly url: string;
  private readonly server: FakeServer;

  constructor(url: string, server: FakeServer) {
    this.url = url;
    this.server = server;
    later(server.latency, () => {
      if (this.readyState === CLOSED) return;
      this.conn = server.accept(this);
      if (!this.conn) {
        this.readyState = CLOSED;
        this.dispatch("error", { type: "error" });
        this.dispatch("close", { type: "close", code: 1006, reason: "", wasClean: false });
        return;
      }
      this.readyState = OPEN;
      this.dispatch("open", { type: "open" });
    });
  }

  addEventListener(type: string, fn: Listener): void {
    let s = this.listeners.get(type);
    if (!s) this.listeners.set(type, (s = new Set()));
    s.add(fn);
  }

  removeEventListener(type: string, fn: Listener): void {
    this.listeners.get(type)?.delete(fn);
  }

  private dispatch(type: string, ev: unknown): void {
    for (const fn of [...(this.listeners.get(type) ?? [])]) fn(ev);
  }

  send(data: string): void {
    if (this.readyState !== OPEN) throw new Error("InvalidStateError: not open");
    this.sent.push(JSON.parse(data) as Frame);
    const conn = this.conn;
    later(this.server.latency, () => {
      if (conn && !conn.closed) this.server.handle(conn, data);
    });
  }

  close(code = 1000, reason = ""): void {
    if (this.readyState === CLOSED) return;
    this.readyState = CLOSED;
    const conn = this.conn;
    if (conn && !conn.closed) {
      conn.closed = true;
      clearTimeout(conn.expiryTimer);
      this.server.conns.delete(conn);
    }
    later(this.server.latency, () => this.dispatch("close", { type: "close", code, reason, wasClean: true }));
  }

  /** Server → client text frame. */
  deliver(data: string): void {
    if (this.readyState !== OPEN) return;
    this.dispatch("message", { type: "message", data });
  }

  /** The server closed the connection. */
  remoteClose(code: number, reason: string): void {
    if (this.readyState === CLOSED) return;
    this.readyState = CLOSED;
    this.dispatch("close", { type: "close", code, reason, wasClean: code !== 1006 });
  }
}
