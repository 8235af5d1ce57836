/** Whether this browser may hold a session cookie (the cookie is HttpOnly, so it cannot be
 * seen): set at login, cleared at logout or when a resume finds no session. Without it no
 * refresh is tried, so a signed-out visit makes no failing request. Kept apart from
 * session.ts (which pulls in the client) so that the first page can decide what to load.
 *
 * The hint is mirrored in the `chat_hint` cookie (not a credential: "1" or absent) so that
 * the gateway can answer a signed-out visit to `/` with the login page straight away.
 * (lib/login-page.ts, the static login page's script, repeats the writing: change both.) */
const HINT = "chat-session";
const COOKIE = "chat_hint";

export function hasSessionHint(): boolean {
  try {
    return localStorage.getItem(HINT) === "1";
  } catch {
    return true;
  }
}

function setHintCookie(on: boolean): void {
  try {
    const secure = location.protocol === "https:" ? "; Secure" : "";
    document.cookie = on
      ? `${COOKIE}=1; Path=/; Max-Age=31536000; SameSite=Strict${secure}`
      : `${COOKIE}=; Path=/; Max-Age=0; SameSite=Strict${secure}`;
  } catch {
    /* no document (tests) */
  }
}

/** Where a signed-out browser goes. The login page is static HTML outside the App Router
 * (pages/login.tsx): a full navigation, as router.replace would first ask for an RSC payload
 * that the page does not have. */
export function goToLogin(): void {
  window.location.replace("/login/");
}

export function setSessionHint(on: boolean): void {
  setHintCookie(on);
  try {
    if (on) localStorage.setItem(HINT, "1");
    else localStorage.removeItem(HINT);
  } catch {
    /* storage unavailable: resume is always tried */
  }
}
