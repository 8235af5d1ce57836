"use client";
import * as React from "react";
import Link from "next/link";
import { ArrowLeft, Loader2, Shield, UserX } from "lucide-react";
import type { ChatClient, User } from "@chat/client";
import { Button } from "@/components/ui/button";
import { Input } from "@/components/ui/input";
import { Label } from "@/components/ui/label";
import { UserAvatar } from "@/components/user-avatar";
import { ConfirmDialog, type ConfirmRequest } from "@/components/confirm-dialog";
import { getSession } from "@/lib/session";
import { goToLogin } from "@/lib/session-hint";
import { describeError, reportError } from "@/lib/errors";
import { toast } from "@/lib/toast";

type Me = User & { admin?: boolean };

export function AdminScreen() {
  const [client, setClient] = React.useState<ChatClient | null>(null);
  const [me, setMe] = React.useState<Me | null>(null);
  const [error, setError] = React.useState<string | null>(null);

  React.useEffect(() => {
    let live = true;
    (async () => {
      try {
        const c = await getSession();
        if (!live) return;
        if (!c) {
          goToLogin();
          return;
        }
        setClient(c);
        setMe((await c.me()) as Me);
      } catch (e) {
        if (live) setError(describeError(e).title);
      }
    })();
    return () => {
      live = false;
    };
  }, []);

  return (
    <main className="mx-auto flex min-h-screen w-full max-w-2xl flex-col gap-6 p-4 sm:p-8">
      <div className="flex items-center gap-3">
        <Button variant="ghost" size="icon" asChild>
          <Link href="/" aria-label="Back to chat">
            <ArrowLeft aria-hidden="true" />
          </Link>
        </Button>
        <Shield className="h-5 w-5 text-primary" aria-hidden="true" />
        <h1 className="text-xl font-semibold">Administration</h1>
      </div>
      {error && <p role="alert" className="text-sm text-destructive">{error}</p>}
      {!me && !error && (
        <p role="status" className="flex items-center gap-2 text-sm text-muted-foreground">
          <Loader2 className="h-4 w-4 animate-spin" aria-hidden="true" /> Loading…
        </p>
      )}
      {me && !me.admin && <p className="text-sm text-muted-foreground">Only administrators can use this page.</p>}
      {me?.admin && client && <UserAdmin client={client} meId={me.id} />}
    </main>
  );
}

function UserAdmin({ client, meId }: { client: ChatClient; meId: string }) {
  const [q, setQ] = React.useState("");
  const [users, setUsers] = React.useState<User[]>([]);
  const [busy, setBusy] = React.useState(false);
  const [gone, setGone] = React.useState<Set<string>>(new Set());
  const [confirm, setConfirm] = React.useState<ConfirmRequest | null>(null);
  const id = React.useId();

  React.useEffect(() => {
    const query = q.trim().toLowerCase().slice(0, 32);
    if (!query) {
      setUsers([]);
      return;
    }
    let live = true;
    const t = setTimeout(async () => {
      setBusy(true);
      try {
        const list = await client.users({ q: query });
        if (live) setUsers(list);
      } catch (e) {
        if (live) reportError(e);
      } finally {
        if (live) setBusy(false);
      }
    }, 250);
    return () => {
      live = false;
      clearTimeout(t);
    };
  }, [q, client]);

  const deactivate = (u: User) =>
    setConfirm({
      title: `Deactivate @${u.username}?`,
      description: "They are signed out everywhere within seconds and can no longer log in. Their messages stay.",
      action: "Deactivate",
      destructive: true,
      run: async () => {
        try {
          await client.deactivateUser(u.id);
          setGone((g) => new Set(g).add(u.id));
          toast({ title: `@${u.username} was deactivated` });
        } catch (e) {
          reportError(e);
        }
      },
    });

  return (
    <section className="grid gap-3" aria-labelledby={`${id}-h`}>
      <h2 id={`${id}-h`} className="text-base font-semibold">
        Users
      </h2>
      <Label htmlFor={id}>Find a user by username</Label>
      <Input id={id} value={q} onChange={(e) => setQ(e.target.value)} placeholder="Username starts with…" autoComplete="off" />
      <ul className="divide-y rounded-md border" aria-busy={busy} aria-label="Users found">
        {users.map((u) => (
          <li key={u.id} className="flex items-center gap-3 p-3">
            <UserAvatar userId={u.id} name={u.display_name || u.username} />
            <div className="min-w-0 flex-1">
              <p className="truncate text-sm font-medium">{u.display_name || u.username}</p>
              <p className="truncate text-xs text-muted-foreground">@{u.username}</p>
            </div>
            {gone.has(u.id) ? (
              <span className="text-xs text-muted-foreground">Deactivated</span>
            ) : (
              <Button variant="outline" size="sm" disabled={u.id === meId} onClick={() => deactivate(u)} aria-label={`Deactivate @${u.username}`}>
                <UserX aria-hidden="true" /> Deactivate
              </Button>
            )}
          </li>
        ))}
        {!users.length && (
          <li className="p-3 text-sm text-muted-foreground">{q.trim() ? (busy ? "Searching…" : "Nobody found.") : "Type a username to search."}</li>
        )}
      </ul>
      <ConfirmDialog req={confirm} onClose={() => setConfirm(null)} />
    </section>
  );
}
