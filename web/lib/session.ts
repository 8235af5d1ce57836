"use client";
import { ChatClient, type ClientOptions } from "@chat/client";
import { hasSessionHint as hasHint, setSessionHint as setHint } from "@/lib/session-hint";

/** Options for every ChatClient: the defaults — same origin (REST /v1, WebSocket /ws on the
 * page's host) and the cookie session. `next dev` proxies both to a local backend. */
export function clientOptions(): ClientOptions {
  return {};
}

let current: ChatClient | null = null;

let resuming: Promise<ChatClient | null> | null = null;

/** The signed-in client of this tab (kept across client-side navigation). */
export function currentClient(): ChatClient | null {
  return current;
}

export function setCurrentClient(c: ChatClient | null): void {
  current = c;
  if (!c) setHint(false);
}

/** The session: the current client, or one resumed from the refresh cookie; null when signed out.
 * Network and server errors are thrown (the caller shows them and offers a retry). */
export async function getSession(): Promise<ChatClient | null> {
  if (current) return current;
  if (!hasHint()) return null;
  resuming ??= ChatClient.resume(clientOptions()).finally(() => {
    resuming = null;
  });
  const c = await resuming;
  current = c ?? current;
  setHint(current !== null); // (a session from before the hint cookie gets it now)
  return current;
}
