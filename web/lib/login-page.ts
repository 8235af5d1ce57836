/**
 * The only script of the static login page (pages/login.tsx): no React, no Next.js runtime.
 * It switches the tabs, sends the forms to the gateway's auth routes, sets the session hint and
 * then loads `/` with a full navigation; the app there resumes the session from the refresh
 * cookie that the login answer set (lib/session.ts, getSession).
 *
 * scripts/login-script.mjs compiles this file on its own (TypeScript's transpileModule, no
 * bundler), so it imports nothing at run time. What it repeats, kept to the minimum:
 * - the requests of `ChatClient.register` / `ChatClient.login` in a cookie session
 *   (libs/client-ts/src/client.ts; and, in one rare case, of `ChatClient.resume`) and the
 *   problem+json → code mapping of `errorFromProblem` (errors.ts); no token is kept: `/` gets
 *   its own from the refresh cookie;
 * - the session hint of lib/session-hint.ts (localStorage `chat-session` and cookie
 *   `chat_hint`), the saved theme of lib/theme.ts;
 * - the messages of the React login screen it replaces: `describeError` (lib/errors.ts) with
 *   the login's own wording for a wrong password, a deactivated account and a taken name.
 */

export {}; // a module (the page loads it with type="module"): nothing leaks into window

const HINT = "chat-session"; // lib/session-hint.ts
const HINT_COOKIE = "chat_hint";
const THEME = "chat-theme"; // lib/theme.ts
const REQUEST_TIMEOUT_MS = 30_000; // the client's requestTimeoutMs

// -- the two auth requests -------------------------------------------------------------------

class AuthError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message || code);
  }
}

/** HTTP status → the server's code when the body has none (libs/client-ts/src/errors.ts). */
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

async function post(path: string, body: Record<string, unknown>): Promise<void> {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), REQUEST_TIMEOUT_MS);
  let res: Response;
  try {
    res = await fetch(path, {
      method: "POST",
      headers: { Accept: "application/json", "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "same-origin",
      signal: ctl.signal,
    });
  } catch (err) {
    throw new AuthError("network", `POST ${path}: ${ctl.signal.aborted ? "timed out" : String(err)}`);
  } finally {
    clearTimeout(timer);
  }
  if (!res.ok) throw await problem(res);
}

async function problem(res: Response): Promise<AuthError> {
  let b: Record<string, unknown> = {};
  try {
    const data: unknown = await res.json();
    if (typeof data === "object" && data !== null && !Array.isArray(data)) b = data as Record<string, unknown>;
  } catch {
    /* not JSON: the status says it */
  }
  const text = (k: string): string => (typeof b[k] === "string" ? (b[k] as string) : "");
  const header = res.headers.get("retry-after")?.trim() ?? "";
  const retryAfterMs =
    typeof b.retry_after_ms === "number" ? b.retry_after_ms : /^\d+$/.test(header) ? Number(header) * 1000 : undefined;
  const code = text("code") || STATUS_CODES[res.status] || "internal";
  return new AuthError(code, text("detail") || text("message") || text("title") || `HTTP ${res.status}`, retryAfterMs);
}

/** `ChatClient.register` then `ChatClient.login` (cookie session), as lib/session.ts signUp. */
async function signUp(username: string, password: string, displayName: string | undefined): Promise<void> {
  const body: Record<string, unknown> = { username, password };
  if (displayName !== undefined) body.display_name = displayName;
  await post("/v1/auth/register", body);
  await logIn(username, password);
}

/** `ChatClient.login` in a cookie session: the answer sets the HttpOnly refresh cookie. */
async function logIn(username: string, password: string): Promise<void> {
  await post("/v1/auth/login", { username, password, session: "cookie" });
  setSessionHint(true);
}

// -- hint and theme ----------------------------------------------------------------------------

/** The storage half (what the app at `/` reads). Unlike hasSessionHint(), unreadable
 * storage counts as "no": this page must never send a browser to `/` that `/` sends back. */
function hasSessionHint(): boolean {
  try {
    return localStorage.getItem(HINT) === "1";
  } catch {
    return false;
  }
}

/** The cookie half (what the gateway reads: without it `/` answers 307 to this page). */
function hasHintCookie(): boolean {
  return document.cookie.split(";").some((c) => c.trim().startsWith(`${HINT_COOKIE}=`));
}

/** setSessionHint of lib/session-hint.ts. */
function setSessionHint(on: boolean): void {
  const secure = location.protocol === "https:" ? "; Secure" : "";
  document.cookie = on
    ? `${HINT_COOKIE}=1; Path=/; Max-Age=31536000; SameSite=Strict${secure}`
    : `${HINT_COOKIE}=; Path=/; Max-Age=0; SameSite=Strict${secure}`;
  try {
    if (on) localStorage.setItem(HINT, "1");
    else localStorage.removeItem(HINT);
  } catch {
    /* storage unavailable: the app tries to resume anyway */
  }
}

function applySavedTheme(): void {
  try {
    const t = localStorage.getItem(THEME);
    if (t === "light" || t === "dark") document.documentElement.classList.add(t);
  } catch {
    /* the system's colours */
  }
}

// -- what people read (lib/errors.ts describeError, login-screen's loginMessage) ---------------

function seconds(ms: number | undefined): number {
  return Math.max(1, Math.ceil((ms ?? 1000) / 1000));
}

function detail(e: AuthError): string | null {
  const m = (e.message || "").trim();
  if (!m || m === e.code || m.length > 160 || /^[{[<]/.test(m) || /^HTTP \d+$/.test(m)) return null;
  return m.endsWith(".") ? m : `${m}.`;
}

function describe(e: AuthError): [string, string?] {
  const d = detail(e) ?? undefined;
  switch (e.code) {
    case "rate_limited":
      return e.retryAfterMs !== undefined
        ? [`Slow down — try again in ${seconds(e.retryAfterMs)}s`]
        : ["Slow down — too many requests", "Try again in a moment."];
    case "too_large":
      return ["Too large", d ?? "That message or file is over the size limit."];
    case "unsupported_media_type":
      return ["File type not supported", "Images (JPEG, PNG, GIF, WebP), PDF and plain text can be sent."];
    case "forbidden":
      return ["Not allowed", d ?? "You don't have permission to do that."];
    case "unavailable":
      return ["Service busy", e.retryAfterMs !== undefined ? `Try again in ${seconds(e.retryAfterMs)}s.` : "Try again in a moment."];
    case "not_found":
      return ["Not found", "It may have been deleted, or you no longer have access."];
    case "conflict":
      return ["Conflict", d ?? "That clashes with something that already exists."];
    case "unauthorized":
      return ["Signed out", d ?? "Your session has ended — log in again."];
    case "invalid":
      return ["Not accepted", d ?? "Check what you entered and try again."];
    case "network":
      return ["Can't reach the server", "Check your connection; we'll keep trying."];
    default:
      return ["Something went wrong", d ?? "Please try again."];
  }
}

function loginMessage(err: unknown, signingUp: boolean): string {
  if (!(err instanceof AuthError)) return "Something went wrong: Please try again.";
  if (err.code === "unauthorized") {
    return /deactivat/i.test(err.message) ? "This account has been deactivated." : "Wrong username or password.";
  }
  if (err.code === "conflict" && signingUp) return "That username is taken — pick another one.";
  const [title, description] = describe(err);
  return description ? `${title}: ${description}` : title;
}

// -- the page ------------------------------------------------------------------------------------

function setUpTabs(): void {
  const tabs = [...document.querySelectorAll<HTMLElement>('[role="tab"]')];
  const title = document.querySelector("h1");
  const select = (tab: HTMLElement, focus: boolean): void => {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute("aria-selected", String(on));
      t.dataset.state = on ? "active" : "inactive";
      t.tabIndex = on ? 0 : -1;
      const panel = document.getElementById(t.getAttribute("aria-controls") ?? "");
      if (panel) {
        panel.hidden = !on;
        panel.dataset.state = t.dataset.state;
      }
    }
    if (title && tab.dataset.title) title.textContent = tab.dataset.title;
    if (focus) tab.focus();
  };
  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => select(tab, false));
    // Arrow keys move along the tabs (wrapping) and select as they go, Home/End jump.
    tab.addEventListener("keydown", (e) => {
      const n = tabs.length;
      const to = { ArrowRight: (i + 1) % n, ArrowLeft: (i + n - 1) % n, Home: 0, End: n - 1 }[e.key];
      if (to === undefined || e.altKey || e.ctrlKey || e.metaKey) return;
      e.preventDefault();
      select(tabs[to]!, true);
    });
  });
}

function setUpForm(form: HTMLFormElement, signingUp: boolean): void {
  const field = (name: string): HTMLInputElement => form.elements.namedItem(name) as HTMLInputElement;
  const alert = form.querySelector<HTMLElement>('[role="alert"]');
  const button = form.querySelector<HTMLButtonElement>('button[type="submit"]');
  const spinner = button?.querySelector("svg");
  const busy = (on: boolean): void => {
    if (button) button.disabled = on;
    spinner?.classList.toggle("hidden", !on);
  };
  const show = (error: string | null): void => {
    if (!alert) return;
    alert.textContent = error ?? "";
    alert.hidden = error === null;
  };
  if (signingUp) {
    const username = field("username");
    username.addEventListener("input", () => {
      const { selectionStart: start, selectionEnd: end } = username;
      username.value = username.value.toLowerCase();
      username.setSelectionRange(start, end);
    });
  }
  form.addEventListener("submit", (e) => {
    e.preventDefault(); // the constraints (required, pattern, lengths) were checked by the browser
    if (button?.disabled) return;
    busy(true);
    show(null);
    const username = field("username").value.trim();
    const password = field("password").value;
    const sent = signingUp
      ? signUp(username, password, field("display_name").value.trim() || undefined)
      : logIn(username, password);
    sent.then(
      () => location.replace("/"),
      (err: unknown) => {
        show(loginMessage(err, signingUp));
        busy(false);
      },
    );
  });
}

/**
 * Already signed in: on to the app. With both halves of the hint, straight there without a
 * request: `/` resumes from the refresh cookie (and should the session be gone, clears the
 * hint and comes back here, so no loop). With the storage half alone (a session from before
 * the cookie) `/` would send the browser back, so this asks the gateway once, as the app's
 * resume does. Returns whether the page is being left.
 */
function leaveIfSignedIn(): boolean {
  if (!hasSessionHint()) return false;
  if (hasHintCookie()) {
    location.replace("/");
    return true;
  }
  post("/v1/auth/refresh", {}).then(
    () => {
      setSessionHint(true);
      location.replace("/");
    },
    (err: unknown) => {
      // refused or malformed refresh token: no session (a network error proves nothing)
      if (err instanceof AuthError && (err.code === "unauthorized" || err.code === "invalid")) setSessionHint(false);
    },
  );
  return false;
}

function start(): void {
  if (leaveIfSignedIn()) return;
  applySavedTheme();
  setUpTabs();
  const forms = document.forms;
  const login = forms.namedItem("login");
  const signup = forms.namedItem("signup");
  if (login instanceof HTMLFormElement) setUpForm(login, false);
  if (signup instanceof HTMLFormElement) setUpForm(signup, true);
}

start();
