/** The shapes of PROTOCOL v1 (plus docs/protocol.md's additions) as the client exposes them. */
import type { ChatError } from "./errors.js";

export type EventKind = "message" | "edit" | "delete" | "member_joined" | "member_left" | "role_changed";

export interface Attachment {
  media_id: string;
  mime: string;
  size: number;
  name: string;
  width?: number;
  height?: number;
  url: string;
  thumbnail_url?: string;
}

/** One entry of a conversation's log. At run time `kind` may also be a kind a newer server
 * added (e.g. "conversation_updated", with `changes`): such events are delivered too (they
 * advance the conversation's seq); ignore kinds you do not know. */
export interface ChatEvent {
  conv: string;
  seq: number;
  kind: EventKind;
  sender: string;
  ts: string;
  client_msg_id?: string;
  body?: string | null;
  deleted?: boolean;
  attachments?: Attachment[];
  reply_to?: number;
  target?: number;
  user_id?: string;
  role?: string;
  /** `conversation_updated` (docs/protocol.md): the fields that changed, with their new values. */
  changes?: { name?: string; topic?: string; description?: string; archived?: boolean; [k: string]: unknown };
}

export interface User {
  id: string;
  username: string;
  display_name: string;
}

export type Role = "owner" | "admin" | "member" | "guest";

export interface Member {
  user_id: string;
  role: Role;
}

export interface Conversation {
  id: string;
  kind: "channel" | "dm" | "group";
  name: string | null;
  private: boolean;
  created_by: string;
  created_at: string;
  last_seq: number;
  role: Role;
  delivered_seq: number;
  read_seq: number;
  unread: number;
  members?: Member[];
  [k: string]: unknown;
}

export interface Receipt {
  conv: string;
  user_id: string;
  delivered_seq: number;
  read_seq: number;
}

export interface Typing {
  conv: string;
  user_id: string;
  expires_in_ms: number;
}

export interface Presence {
  user_id: string;
  status: "online" | "offline";
  last_seen: string | null;
}

export interface SearchHit {
  event: ChatEvent;
  highlight: string;
}

export interface SearchPage {
  hits: SearchHit[];
  next_cursor: string | null;
}

export interface Media {
  media_id: string;
  mime: string;
  size: number;
  name: string;
  width?: number;
  height?: number;
  url: string;
  thumbnail_url?: string;
}

export type ConnectionStatus = "connecting" | "open" | "reconnecting" | "closed";

/** `attempt`: the number of the connection attempt under way or next (1 = the first try
 * after the last good connection); `retryAt`: epoch ms of the next try while reconnecting. */
export interface ConnectionState {
  status: ConnectionStatus;
  attempt: number;
  retryAt?: number /* epoch ms of the next try */;
}

export type OutboxState = "pending" | "sent" | "failed";

export interface OutgoingMessage {
  clientMsgId: string;
  conv: string;
  body: string;
  attachments?: string[];
  replyTo?: number;
  createdAt: number;
  state: OutboxState;
  seq?: number;
  error?: ChatError;
}

/** Where the outbox persists (so it survives a reload). Browser default: IndexedDB
 * (database "chat-outbox", one store keyed by clientMsgId, per user). Tests: memoryOutboxStorage(). */
export interface OutboxStorage {
  load(userId: string): Promise<OutgoingMessage[]>;
  put(userId: string, m: OutgoingMessage): Promise<void>;
  remove(userId: string, clientMsgId: string): Promise<void>;
}

/** The WebSocket surface the client uses (the browser's, `ws`'s, or a test fake). */
export type WebSocketCtor = new (url: string) => WebSocket;

export interface ClientOptions {
  /** Default "" (same origin, browser); REST at `${baseUrl}/v1/...`. */
  baseUrl?: string;
  /** Default derived from baseUrl or location: ws(s)://host/ws. */
  wsUrl?: string;
  /** Injectable for tests. */
  fetch?: typeof fetch;
  /** Injectable for tests (browser global by default). In Node 20 pass e.g. the `ws` package's class. */
  WebSocket?: WebSocketCtor;
  /** Default indexedDbOutboxStorage() when indexedDB exists, else memory. */
  outbox?: OutboxStorage;
  /** "cookie" (browser default): refresh token in the HttpOnly cookie chat_refresh set by
   * the gateway (login body {session:"cookie"}); "body" (default elsewhere): refresh_token
   * kept in memory. */
  session?: "cookie" | "body";
  /** For jitter (tests). */
  random?: () => number;
  /** Date.now (tests use fake timers). */
  now?: () => number;
  /** Default 3 * heartbeat_s from auth_ok: no frame/pong for this long → reconnect. */
  heartbeatTimeoutMs?: number;
  /** Full jitter: delay = random() * min(cap, base * 2^attempt); default 250 / 30000. */
  backoff?: { baseMs: number; capMs: number };

  // ---- additions (not in the original contract; all optional) ----
  /** session "body": a refresh token to resume with (`ChatClient.resume`). */
  refreshToken?: string;
  /** session "body": called with every new refresh token (they rotate), to persist it. */
  onRefreshToken?: (token: string) => void;
  /** `{conv: last seq the app has}` to resume from; default: each conversation's current
   * `last_seq` (GET /v1/conversations) when connect() first runs. */
  positions?: Record<string, number>;
  /** A gap in a conversation's seqs not filled within this is fetched over REST. Default 1000. */
  gapFillAfterMs?: number;
  /** No `ack`/`error` for a send within this → send it again (same client_msg_id). Default 15000. */
  ackTimeoutMs?: number;
  /** Socket open + `auth_ok` must come within this. Default 10000. */
  connectTimeoutMs?: number;
  /** A REST call is aborted (code "network") after this. Default 30000. */
  requestTimeoutMs?: number;
  /** A connection that stayed up this long resets the backoff. Default 5000. */
  backoffResetMs?: number;
  /** Refresh the access token at this share of its lifetime. Default 0.8. */
  refreshFraction?: number;
}

// ---- wire ---------------------------------------------------------------------------------

export type Frame = Record<string, unknown> & { type?: unknown; ref?: unknown };

/** Login / refresh answer. `refresh_token` is absent in cookie sessions. */
export interface TokenAnswer {
  access_token: string;
  refresh_token?: string;
  token_type?: string;
  expires_in: number;
  user?: User;
}
