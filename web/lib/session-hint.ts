/** Whether this browser may hold a session cookie (the cookie is HttpOnly, so it cannot be
 * seen): set at login, cleared at logout or when a resume finds no session. Without it no
 * refresh is tried, so a signed-out visit makes no failing request. Kept apart from
 * session.ts (which pulls in the client) so that the first page can decide what to load. */
const HINT = "chat-session";

export function hasSessionHint(): boolean {
  try {
    return localStorage.getItem(HINT) === "1";
  } catch {
    return true;
  }
}

export function setSessionHint(on: boolean): void {
  try {
    if (on) localStorage.setItem(HINT, "1");
    else localStorage.removeItem(HINT);
  } catch {
    /* storage unavailable: resume is always tried */
  }
}
