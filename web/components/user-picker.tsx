"use client";
import * as React from "react";
import { Loader2 } from "lucide-react";
import type { User } from "@chat/client";
import { Input } from "@/components/ui/input";
import { Label } from "@/components/ui/label";
import { UserAvatar } from "@/components/user-avatar";
import { chat } from "@/lib/store";
import { reportError } from "@/lib/errors";

/** Search the user directory by username prefix (GET /v1/users?q=) and pick people. */
export function UserPicker({
  onPick,
  exclude = [],
  label = "Find people",
  autoFocus,
}: {
  onPick: (u: User) => void;
  exclude?: string[];
  label?: string;
  autoFocus?: boolean;
}) {
  const [q, setQ] = React.useState("");
  const [results, setResults] = React.useState<User[]>([]);
  const [busy, setBusy] = React.useState(false);
  const id = React.useId();

  React.useEffect(() => {
    const query = q.trim().replace(/^@/, "").toLowerCase().slice(0, 32);
    if (!query) {
      setResults([]);
      return;
    }
    let live = true;
    const t = setTimeout(async () => {
      const c = chat.chat;
      if (!c) return;
      setBusy(true);
      try {
        const users = await c.users({ q: query });
        if (!live) return;
        chat.addUsers(users);
        setResults(users);
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
  }, [q]);

  const shown = results.filter((u) => !exclude.includes(u.id));
  return (
    <div className="grid gap-2">
      <Label htmlFor={id}>{label}</Label>
      <div className="relative">
        <Input
          id={id}
          value={q}
          autoFocus={autoFocus}
          autoComplete="off"
          placeholder="Start typing a username"
          onChange={(e) => setQ(e.target.value)}
          aria-controls={`${id}-results`}
        />
        {busy && <Loader2 className="absolute right-2 top-2.5 h-4 w-4 animate-spin text-muted-foreground" aria-hidden="true" />}
      </div>
      <ul id={`${id}-results`} className="max-h-56 overflow-y-auto" aria-label="People found">
        {shown.map((u) => (
          <li key={u.id}>
            <button
              type="button"
              className="flex w-full items-center gap-2 rounded-md px-2 py-1.5 text-left text-sm hover:bg-accent"
              onClick={() => {
                onPick(u);
                setQ("");
              }}
            >
              <UserAvatar userId={u.id} name={u.display_name || u.username} size="sm" />
              <span className="min-w-0 flex-1 truncate">{u.display_name || u.username}</span>
              <span className="text-xs text-muted-foreground">@{u.username}</span>
            </button>
          </li>
        ))}
        {q.trim() && !busy && shown.length === 0 && <li className="px-2 py-1.5 text-sm text-muted-foreground">Nobody found.</li>}
      </ul>
    </div>
  );
}
