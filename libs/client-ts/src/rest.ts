/** REST (`/v1`) over fetch: problem+json → ChatError; a 401 on an authenticated call
 * refreshes the access token once and retries (mirrors chat_sdk.rest). */
import { ChatError, errorFromProblem } from "./errors.js";

export type Query = Record<string, string | number | boolean | undefined | null>;

export interface RequestOptions {
  query?: Query;
  json?: unknown;
  form?: FormData;
  /** Send the bearer token (and refresh once on 401). Default true. */
  auth?: boolean;
  /** fetch's `credentials` (the auth calls of cookie sessions use "same-origin"). */
  credentials?: RequestCredentials;
  /** Abort after this many ms (default: the client's requestTimeoutMs). */
  timeoutMs?: number;
}

export interface Answer<T> {
  status: number;
  data: T;
}

export interface HttpOptions {
  baseUrl: string;
  fetch: typeof fetch;
  timeoutMs: number;
}

export class Http {
  readonly baseUrl: string;
  readonly fetchFn: typeof fetch;
  readonly timeoutMs: number;
  /** The current access token. */
  token: (() => string) | null = null;
  /** Refresh after `stale` was refused; rejects with `unauthorized` when the session is over. */
  refresh: ((stale: string) => Promise<void>) | null = null;

  constructor(opts: HttpOptions) {
    this.baseUrl = opts.baseUrl.replace(/\/+$/, "");
    this.fetchFn = opts.fetch;
    this.timeoutMs = opts.timeoutMs;
  }

  url(path: string, query?: Query): string {
    let qs = "";
    if (query) {
      const p = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null) p.set(k, String(v));
      const s = p.toString();
      if (s) qs = "?" + s;
    }
    return this.baseUrl + path + qs;
  }

  async request<T = unknown>(method: string, path: string, opts: RequestOptions = {}): Promise<Answer<T>> {
    const auth = opts.auth ?? true;
    let token = auth ? this.currentToken() : "";
    let res = await this.once(method, path, opts, token);
    if (res.status === 401 && auth && this.refresh) {
      await drain(res);
      await this.refresh(token); // throws `unauthorized` when the session is over
      token = this.currentToken();
      res = await this.once(method, path, opts, token);
    }
    return parse<T>(res);
  }

  private currentToken(): string {
    if (!this.token) throw new ChatError("unauthorized", "not logged in");
    return this.token();
  }

  private async once(method: string, path: string, opts: RequestOptions, token: string): Promise<Response> {
    const headers: Record<string, string> = { Accept: "application/json" };
    let body: BodyInit | undefined;
    if (opts.form !== undefined) body = opts.form;
    else if (opts.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(opts.json);
    }
    if (token) headers.Authorization = `Bearer ${token}`;
    const ctl = typeof AbortController === "function" ? new AbortController() : undefined;
    const timer = ctl ? setTimeout(() => ctl.abort(), opts.timeoutMs ?? this.timeoutMs) : undefined;
    const init: RequestInit = { method, headers };
    if (body !== undefined) init.body = body;
    if (ctl) init.signal = ctl.signal;
    if (opts.credentials) init.credentials = opts.credentials;
    try {
      return await this.fetchFn(this.url(path, opts.query), init);
    } catch (err) {
      const aborted = ctl?.signal.aborted === true;
      throw new ChatError("network", `${method} ${path}: ${aborted ? "timed out" : String((err as Error)?.message ?? err)}`);
    } finally {
      if (timer !== undefined) clearTimeout(timer);
    }
  }
}

async function drain(res: Response): Promise<void> {
  try {
    await res.text();
  } catch {
    /* nothing to read */
  }
}

/** JSON answer (undefined for 204/empty) or the ChatError of a non-2xx response. */
export async function parse<T>(res: Response): Promise<Answer<T>> {
  let text = "";
  try {
    text = await res.text();
  } catch (err) {
    throw new ChatError("network", `reading the answer failed: ${String(err)}`);
  }
  let data: unknown = undefined;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = undefined;
    }
  }
  if (!res.ok) throw errorFromProblem(res.status, data, res.headers.get("retry-after"));
  return { status: res.status, data: data as T };
}
