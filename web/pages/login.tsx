import * as React from "react";
import Head from "next/head";
import { Loader2, MessageSquare } from "lucide-react";
import { Button } from "@/components/ui/button";
import { Input } from "@/components/ui/input";
import { Label } from "@/components/ui/label";
import { tabsContentClass, tabsListClass, tabsTriggerClass } from "@/components/ui/tabs";

/**
 * /login/ (log in / sign up) as static HTML: the export has no React or Next.js script on this
 * page (`unstable_runtimeJS: false` drops them all, with their preloads), only
 * lib/login-page.ts — tabs, the two auth requests, the session hint, then a full navigation
 * to `/` — compiled on its own by scripts/login-script.mjs after `next build`, which also
 * writes its hashed name in place of LOGIN_SCRIPT. The markup (classes, labels, field
 * constraints) is the app's: the same ui/ components, rendered at build time only.
 *
 * It is the only Pages Router page (pages/_app.tsx, pages/_document.tsx); app/ has the rest.
 */
export const config = { unstable_runtimeJS: false };

const LOGIN_SCRIPT = "/_next/static/login/login-page.js";

const TABS = [
  { id: "login", label: "Log in", title: "Welcome back" },
  { id: "signup", label: "Sign up", title: "Create your account" },
] as const;

export default function LoginPage() {
  useScriptInDev();
  return (
    <>
      <Head>
        <title>Log in · Chat</title>
        <meta name="viewport" content="width=device-width, initial-scale=1" />
      </Head>
      <main className="flex min-h-screen items-center justify-center bg-muted/40 p-4">
        <div className="w-full max-w-sm rounded-xl border bg-card p-6 shadow-sm">
          <div className="mb-6 flex flex-col items-center gap-2 text-center">
            <MessageSquare className="h-8 w-8 text-primary" aria-hidden="true" />
            <h1 className="text-xl font-semibold">{TABS[0].title}</h1>
          </div>
          {/* lib/login-page.ts: click or ←/→/Home/End switch tabs (roving tabindex), and the
              title follows the selected tab's data-title */}
          <div role="tablist" aria-label="Log in or sign up" aria-orientation="horizontal" className={tabsListClass}>
            {TABS.map((t, i) => (
              <button
                key={t.id}
                type="button"
                role="tab"
                id={`tab-${t.id}`}
                aria-controls={`panel-${t.id}`}
                aria-selected={i === 0}
                tabIndex={i === 0 ? 0 : -1}
                data-state={i === 0 ? "active" : "inactive"}
                data-title={t.title}
                className={tabsTriggerClass}
              >
                {t.label}
              </button>
            ))}
          </div>
          <Panel id="login" active>
            <LoginForm />
          </Panel>
          <Panel id="signup">
            <SignupForm />
          </Panel>
        </div>
      </main>
      {process.env.NODE_ENV === "production" && <script type="module" src={LOGIN_SCRIPT} />}
    </>
  );
}

/** `next dev` ignores `unstable_runtimeJS` (the page hydrates) and has no compiled script:
 * there the same module is loaded through webpack. Removed from the production build. */
function useScriptInDev(): void {
  React.useEffect(() => {
    if (process.env.NODE_ENV !== "production") void import("@/lib/login-page");
  }, []);
}

function Panel({ id, active = false, children }: { id: string; active?: boolean; children: React.ReactNode }) {
  return (
    <div
      role="tabpanel"
      id={`panel-${id}`}
      aria-labelledby={`tab-${id}`}
      tabIndex={0}
      hidden={!active}
      data-state={active ? "active" : "inactive"}
      className={tabsContentClass}
    >
      {children}
    </div>
  );
}

// method="post": should a form be sent before the script runs, the password never lands in
// a URL (the gateway refuses the POST); the script sends the forms itself.

function LoginForm() {
  return (
    <form name="login" method="post" className="grid gap-4" aria-label="Log in">
      <div className="grid gap-2">
        <Label htmlFor="login-username">Username</Label>
        <Input id="login-username" name="username" autoComplete="username" autoCapitalize="none" spellCheck={false} required />
      </div>
      <div className="grid gap-2">
        <Label htmlFor="login-password">Password</Label>
        <Input id="login-password" name="password" type="password" autoComplete="current-password" required />
      </div>
      <FormEnd label="Log in" />
    </form>
  );
}

function SignupForm() {
  return (
    <form name="signup" method="post" className="grid gap-4" aria-label="Sign up">
      <div className="grid gap-2">
        <Label htmlFor="signup-username">Username</Label>
        {/* lowercased as typed by lib/login-page.ts */}
        <Input id="signup-username" name="username" autoComplete="username" autoCapitalize="none" spellCheck={false} required minLength={3} maxLength={32} pattern="[a-z0-9_.\-]{3,32}" aria-describedby="signup-username-hint" />
        <p id="signup-username-hint" className="text-xs text-muted-foreground">
          3–32 characters: lowercase letters, digits, dots, dashes and underscores.
        </p>
      </div>
      <div className="grid gap-2">
        <Label htmlFor="signup-display-name">Display name</Label>
        <Input id="signup-display-name" name="display_name" autoComplete="name" placeholder="Optional" />
      </div>
      <div className="grid gap-2">
        <Label htmlFor="signup-password">Password</Label>
        <Input id="signup-password" name="password" type="password" autoComplete="new-password" required minLength={8} maxLength={128} aria-describedby="signup-password-hint" />
        <p id="signup-password-hint" className="text-xs text-muted-foreground">
          At least 8 characters.
        </p>
      </div>
      <FormEnd label="Sign up" />
    </form>
  );
}

/** The error and the submit button with its busy spinner (both shown by the script). */
function FormEnd({ label }: { label: string }) {
  return (
    <>
      <p role="alert" className="text-sm text-destructive" hidden />
      <Button type="submit">
        <Loader2 className="hidden animate-spin" aria-hidden="true" />
        {label}
      </Button>
    </>
  );
}
