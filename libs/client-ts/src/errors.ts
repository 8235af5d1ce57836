/** Every REST problem (RFC 9457 body with `code`), WebSocket `error` frame and transport
 * failure surfaces as a {@link ChatError} with the server's stable `code`. */

/** HTTP status → the code the server uses for it (PROTOCOL: Errors). */
const STATUS_CODES: Record<number, string> = {
  400: "invalid",
  401: "unauthorized",
  403: "forbidden",
  404: "not_found",
  409: "conflict",
  413: "too_large",
  415: "unsupported_media_type",
  422: "invalid",
  429: "rate_limited",
  503: "unavailable",
};

export interface ChatErrorInit {
  status?: number;
  retryAfterMs?: number;
  /** The problem+json body or the `error` frame as received. */
  body?: Record<string, unknown>;
}

/** Every REST problem (RFC 9457 body with `code`) and WS `error` frame becomes this. */
export class ChatError extends Error {
  /** "unauthorized" | "forbidden" | "not_found" | "conflict" | "too_large" |
   * "unsupported_media_type" | "invalid" | "rate_limited" | "unavailable" | "network" |
   * "closed" | "internal" | any code a newer server adds. */
  readonly code: string;
  /** HTTP status (REST). */
  readonly status?: number;
  /** Retry-After / retry_after_ms. */
  readonly retryAfterMs?: number;
  readonly body?: Record<string, unknown>;

  constructor(code: string, message?: string, init: ChatErrorInit = {}) {
    super(message || code);
    this.name = "ChatError";
    this.code = code;
    if (init.status !== undefined) this.status = init.status;
    if (init.retryAfterMs !== undefined) this.retryAfterMs = init.retryAfterMs;
    if (init.body !== undefined) this.body = init.body;
  }

  /** A plain object (for storage: IndexedDB keeps no class identity). */
  toJSON(): { code: string; message: string; status?: number; retryAfterMs?: number } {
    const out: { code: string; message: string; status?: number; retryAfterMs?: number } = {
      code: this.code,
      message: this.message,
    };
    if (this.status !== undefined) out.status = this.status;
    if (this.retryAfterMs !== undefined) out.retryAfterMs = this.retryAfterMs;
    return out;
  }

  static fromJSON(v: unknown): ChatError {
    if (v instanceof ChatError) return v;
    const o = isRecord(v) ? v : {};
    const init: ChatErrorInit = {};
    if (typeof o.status === "number") init.status = o.status;
    if (typeof o.retryAfterMs === "number") init.retryAfterMs = o.retryAfterMs;
    return new ChatError(typeof o.code === "string" ? o.code : "internal", typeof o.message === "string" ? o.message : "", init);
  }
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Codes after which resending the same message can never succeed by itself. */
export const PERMANENT_SEND_CODES: ReadonlySet<string> = new Set([
  "invalid",
  "forbidden",
  "too_large",
  "not_found",
  "unsupported_media_type",
  "conflict",
]);

/** A WebSocket `{type:"error", code, message, retry_after_ms?}` frame as a ChatError. */
export function errorFromFrame(frame: Record<string, unknown>): ChatError {
  const init: ChatErrorInit = { body: frame };
  if (typeof frame.retry_after_ms === "number") init.retryAfterMs = frame.retry_after_ms;
  const code = typeof frame.code === "string" ? frame.code : "internal";
  const message = typeof frame.message === "string" ? frame.message : "";
  return new ChatError(code, message, init);
}

/** A non-2xx response as a ChatError (RFC 9457 body when there is one). */
export function errorFromProblem(status: number, body: unknown, retryAfterHeader: string | null): ChatError {
  const b = isRecord(body) ? body : {};
  const init: ChatErrorInit = { status, body: b };
  if (typeof b.retry_after_ms === "number") init.retryAfterMs = b.retry_after_ms;
  else if (retryAfterHeader && /^\d+$/.test(retryAfterHeader.trim())) init.retryAfterMs = Number(retryAfterHeader.trim()) * 1000;
  const code = typeof b.code === "string" ? b.code : (STATUS_CODES[status] ?? "internal");
  const message =
    (typeof b.detail === "string" && b.detail) ||
    (typeof b.message === "string" && b.message) ||
    (typeof b.title === "string" && b.title) ||
    `HTTP ${status}`;
  return new ChatError(code, message, init);
}
