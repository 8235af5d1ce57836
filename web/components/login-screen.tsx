"use client";
import * as React from "react";
import { useRouter } from "next/navigation";
import { Loader2, MessageSquare } from "lucide-react";
import { ChatError } from "@chat/client";
import { Button } from "@/components/ui/button";
import { Input } from "@/components/ui/input";
import { Label } from "@/components/ui/label";
import { Tabs, TabsContent, TabsList, TabsTrigger } from "@/components/ui/tabs";
import { getSession, logIn, signUp } from "@/lib/session";
import { describeError } from "@/lib/errors";

function loginMessage(e: unknown, signingUp: boolean): string {
  if (e instanceof ChatError) {
    if (e.code === "unauthorized") {
      return /deactivat/i.test(e.message) ? "This account has been deactivated." : "Wrong username or password.";
    }
    if (e.code === "conflict" && signingUp) return "That username is taken — pick another one.";
  }
  const { title, description } = describeError(e);
  return description ? `${title}: ${description}` : title;
}

export function LoginScreen() {
  const router = useRouter();
  const [tab, setTab] = React.useState("login");

  // Already signed in (a live refresh cookie): go straight to the app.
  React.useEffect(() => {
    let live = true;
    getSession()
      .then((c) => {
        if (live && c) router.replace("/");
      })
      .catch(() => undefined);
    return () => {
      live = false;
    };
  }, [router]);

  const done = () => router.replace("/");

  return (
    <main className="flex min-h-screen items-center justify-center bg-muted/40 p-4">
      <div className="w-full max-w-sm rounded-xl border bg-card p-6 shadow-sm">
        <div className="mb-6 flex flex-col items-center gap-2 text-center">
          <MessageSquare className="h-8 w-8 text-primary" aria-hidden="true" />
          <h1 className="text-xl font-semibold">{tab === "login" ? "Welcome back" : "Create your account"}</h1>
        </div>
        <Tabs value={tab} onValueChange={setTab}>
          <TabsList aria-label="Log in or sign up">
            <TabsTrigger value="login">Log in</TabsTrigger>
            <TabsTrigger value="signup">Sign up</TabsTrigger>
          </TabsList>
          <TabsContent value="login">
            <LoginForm onDone={done} />
          </TabsContent>
          <TabsContent value="signup">
            <SignupForm onDone={done} />
          </TabsContent>
        </Tabs>
      </div>
    </main>
  );
}

function LoginForm({ onDone }: { onDone: () => void }) {
  const [username, setUsername] = React.useState("");
  const [password, setPassword] = React.useState("");
  const [busy, setBusy] = React.useState(false);
  const [error, setError] = React.useState<string | null>(null);
  const uid = React.useId();

  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await logIn(username.trim(), password);
      onDone();
    } catch (err) {
      setError(loginMessage(err, false));
      setBusy(false);
    }
  };

  return (
    <form onSubmit={submit} className="grid gap-4" aria-label="Log in">
      <div className="grid gap-2">
        <Label htmlFor={`${uid}-u`}>Username</Label>
        <Input id={`${uid}-u`} name="username" autoComplete="username" autoCapitalize="none" spellCheck={false} required value={username} onChange={(e) => setUsername(e.target.value)} />
      </div>
      <div className="grid gap-2">
        <Label htmlFor={`${uid}-p`}>Password</Label>
        <Input id={`${uid}-p`} name="password" type="password" autoComplete="current-password" required value={password} onChange={(e) => setPassword(e.target.value)} />
      </div>
      {error && (
        <p role="alert" className="text-sm text-destructive">
          {error}
        </p>
      )}
      <Button type="submit" disabled={busy}>
        {busy && <Loader2 className="animate-spin" aria-hidden="true" />}
        Log in
      </Button>
    </form>
  );
}

function SignupForm({ onDone }: { onDone: () => void }) {
  const [username, setUsername] = React.useState("");
  const [displayName, setDisplayName] = React.useState("");
  const [password, setPassword] = React.useState("");
  const [busy, setBusy] = React.useState(false);
  const [error, setError] = React.useState<string | null>(null);
  const uid = React.useId();

  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await signUp(username.trim(), password, displayName.trim() || undefined);
      onDone();
    } catch (err) {
      setError(loginMessage(err, true));
      setBusy(false);
    }
  };

  return (
    <form onSubmit={submit} className="grid gap-4" aria-label="Sign up">
      <div className="grid gap-2">
        <Label htmlFor={`${uid}-u`}>Username</Label>
        <Input id={`${uid}-u`} name="username" autoComplete="username" autoCapitalize="none" spellCheck={false} required minLength={3} maxLength={32} pattern="[a-z0-9_.\-]{3,32}" value={username} onChange={(e) => setUsername(e.target.value.toLowerCase())} aria-describedby={`${uid}-uh`} />
        <p id={`${uid}-uh`} className="text-xs text-muted-foreground">
          3–32 characters: lowercase letters, digits, dots, dashes and underscores.
        </p>
      </div>
      <div className="grid gap-2">
        <Label htmlFor={`${uid}-d`}>Display name</Label>
        <Input id={`${uid}-d`} name="display_name" autoComplete="name" value={displayName} onChange={(e) => setDisplayName(e.target.value)} placeholder="Optional" />
      </div>
      <div className="grid gap-2">
        <Label htmlFor={`${uid}-p`}>Password</Label>
        <Input id={`${uid}-p`} name="password" type="password" autoComplete="new-password" required minLength={8} maxLength={128} value={password} onChange={(e) => setPassword(e.target.value)} aria-describedby={`${uid}-ph`} />
        <p id={`${uid}-ph`} className="text-xs text-muted-foreground">
          At least 8 characters.
        </p>
      </div>
      {error && (
        <p role="alert" className="text-sm text-destructive">
          {error}
        </p>
      )}
      <Button type="submit" disabled={busy}>
        {busy && <Loader2 className="animate-spin" aria-hidden="true" />}
        Sign up
      </Button>
    </form>
  );
}
