/** Access-token lifetime: when to refresh, and refreshing with rotation (mirrors
 * chat_sdk.tokens). The access token lives in memory only. The refresh token is either the
 * gateway's HttpOnly cookie `chat_refresh` (session "cookie": never visible here) or kept in
 * memory (session "body"). A refused refresh (401) ends the session for good. */
import { ChatError } from "./errors.js";
import type { Http } from "./rest.js";
import type { TokenAnswer } from "./types.js";

export interface TokenOptions {
  session: "cookie" | "body";
  now: () => number;
  fraction?: number;
  onRefreshToken?: ((token: string) => void) | undefined;
}

/** Ms from `now` until a token received at `receivedAt` living `ttlMs` is due a refresh:
 * at `fraction` of its life, but at least min(2 s, ttl/2) before its end. */
export function refreshDelay(receivedAt: number, ttlMs: number, now: number, fraction = 0.8): number {
  const ttl = Math.max(0, ttlMs);
  const margin = Math.min(2000, ttl / 2);
  const at = receivedAt + Math.min(fraction * ttl, ttl - margin);
  return Math.max(0, at - now);
}

export async function requestRefresh(http: Http, session: "cookie" | "body", refreshToken: string | undefined): Promise<TokenAnswer> {
  if (session === "body" && !refreshToken) throw new ChatError("unauthorized", "no refresh token");
  try {
    const { data } = await http.request<TokenAnswer>("POST", "/v1/auth/refresh", {
      auth: false,
      // Cookie sessions send {} (the HttpOnly cookie chat_refresh carries the token).
      json: refreshToken ? { refresh_token: refreshToken } : {},
      credentials: "same-origin",
    });
    return checkAnswer(data);
  } catch (err) {
    // A malformed or missing refresh token can never work: the session is over.
    if (err instanceof ChatError && err.status === 422) throw new ChatError("unauthorized", err.message, { status: 422 });
    throw err;
  }
}

export function checkAnswer(data: unknown): TokenAnswer {
  const d = data as TokenAnswer | undefined;
  if (!d || typeof d.access_token !== "string" || typeof d.expires_in !== "number") {
    throw new ChatError("internal", "the gateway's token answer has no access_token/expires_in");
  }
  return d;
}

export class TokenManager {
  private access = "";
  private receivedAt = 0;
  private ttlMs = 0;
  private refreshToken: string | undefined;
  private inflight: Promise<void> | null = null;
  refreshes = 0;
  /** Called after every new access token (login, refresh). */
  onChange: (() => void) | null = null;
  /** Set once a refresh was refused: the session is over. */
  dead: ChatError | null = null;

  private readonly http: Http;
  private readonly opts: TokenOptions;

  constructor(http: Http, opts: TokenOptions) {
    this.http = http;
    this.opts = opts;
  }

  get accessToken(): string {
    return this.access;
  }

  get session(): "cookie" | "body" {
    return this.opts.session;
  }

  /** The refresh token of a "body" session (undefined for cookie sessions). */
  get currentRefreshToken(): string | undefined {
    return this.refreshToken;
  }

  set(answer: TokenAnswer): void {
    this.access = answer.access_token;
    this.receivedAt = this.opts.now();
    this.ttlMs = answer.expires_in * 1000;
    // Cookie sessions get no refresh_token in the body; a gateway that sends one anyway
    // (no cookie support) is followed in memory, like a "body" session.
    if (typeof answer.refresh_token === "string" && answer.refresh_token) {
      this.refreshToken = answer.refresh_token;
      this.opts.onRefreshToken?.(answer.refresh_token);
    }
    this.onChange?.();
  }

  setRefreshToken(token: string | undefined): void {
    this.refreshToken = token;
  }

  /** Ms until the next refresh is due. */
  delay(): number {
    return refreshDelay(this.receivedAt, this.ttlMs, this.opts.now(), this.opts.fraction ?? 0.8);
  }

  due(): boolean {
    return this.delay() <= 0;
  }

  /** The access token is (about to be) unusable: within a second of its end. */
  expired(): boolean {
    return this.opts.now() >= this.receivedAt + this.ttlMs - 1000;
  }

  /** Exchange the refresh token for a new pair. `stale`: the access token the caller found
   * wanting; if the pair changed since, nothing is requested. Concurrent callers share one
   * request. Rejects with `unauthorized` (for good) when the gateway refuses it. */
  async refresh(stale?: string): Promise<void> {
    if (this.dead) throw this.dead;
    if (stale !== undefined && stale !== this.access) return;
    if (this.inflight === null) {
      this.inflight = (async () => {
        try {
          const answer = await requestRefresh(this.http, this.opts.session, this.refreshToken);
          this.refreshes += 1;
          this.set(answer);
        } catch (err) {
          if (err instanceof ChatError && err.code === "unauthorized") {
            this.dead = new ChatError("unauthorized", `session over: refresh refused (${err.message})`, { status: err.status ?? 401 });
            throw this.dead;
          }
          throw err;
        } finally {
          this.inflight = null;
        }
      })();
    }
    return this.inflight;
  }

  /** The access token, refreshed first when due; when that refresh fails transiently, the
   * current token as long as it is still valid. */
  async ensureFresh(): Promise<string> {
    if (this.due()) {
      try {
        await this.refresh(this.access);
      } catch (err) {
        if (this.dead || this.expired() || !(err instanceof ChatError)) throw err;
      }
    }
    return this.access;
  }
}
