"use client";
import * as React from "react";
import { Hash, Loader2, Lock, X } from "lucide-react";
import type { Conversation, User } from "@chat/client";
import { Button } from "@/components/ui/button";
import { Dialog, DialogContent, DialogDescription, DialogFooter, DialogHeader, DialogTitle } from "@/components/ui/dialog";
import { Input } from "@/components/ui/input";
import { Label } from "@/components/ui/label";
import { UserPicker } from "@/components/user-picker";
import { chat, useChat } from "@/lib/store";
import { openPanel, usePanelDialog } from "@/lib/ui";
import { reportError } from "@/lib/errors";

export function CreateChannelDialog() {
  const dialog = usePanelDialog("create-channel");
  const [name, setName] = React.useState("");
  const [priv, setPriv] = React.useState(false);
  const [busy, setBusy] = React.useState(false);
  const nameId = React.useId();

  React.useEffect(() => {
    if (!dialog.open) {
      setName("");
      setPriv(false);
    }
  }, [dialog.open]);

  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    const c = chat.chat;
    const n = name.trim().replace(/\s+/g, " ");
    if (!c || !n) return;
    setBusy(true);
    try {
      const conv = await c.createConversation({ kind: "channel", name: n, private: priv });
      openPanel(null);
      chat.adopt(conv);
    } catch (err) {
      reportError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <Dialog {...dialog}>
      <DialogContent>
        <form onSubmit={submit} className="grid gap-4">
          <DialogHeader>
            <DialogTitle>Create a channel</DialogTitle>
            <DialogDescription>Channels are where a team talks about a topic.</DialogDescription>
          </DialogHeader>
          <div className="grid gap-2">
            <Label htmlFor={nameId}>Name</Label>
            <Input id={nameId} value={name} maxLength={80} required autoFocus onChange={(e) => setName(e.target.value)} placeholder="e.g. design-reviews" />
          </div>
          <fieldset className="grid gap-2">
            <legend className="mb-1 text-sm font-medium">Visibility</legend>
            <label className="flex cursor-pointer items-start gap-2 rounded-md border p-2 text-sm has-[:checked]:border-primary">
              <input type="radio" name="vis" className="mt-1 accent-primary" checked={!priv} onChange={() => setPriv(false)} />
              <span>
                <span className="flex items-center gap-1 font-medium">
                  <Hash className="h-3.5 w-3.5" aria-hidden="true" /> Public
                </span>
                <span className="text-muted-foreground">Anyone can find and join it.</span>
              </span>
            </label>
            <label className="flex cursor-pointer items-start gap-2 rounded-md border p-2 text-sm has-[:checked]:border-primary">
              <input type="radio" name="vis" className="mt-1 accent-primary" checked={priv} onChange={() => setPriv(true)} />
              <span>
                <span className="flex items-center gap-1 font-medium">
                  <Lock className="h-3.5 w-3.5" aria-hidden="true" /> Private
                </span>
                <span className="text-muted-foreground">Only people who are added can see it.</span>
              </span>
            </label>
          </fieldset>
          <DialogFooter>
            <Button variant="outline" onClick={() => openPanel(null)}>
              Cancel
            </Button>
            <Button type="submit" disabled={busy || !name.trim()}>
              {busy && <Loader2 className="animate-spin" aria-hidden="true" />} Create
            </Button>
          </DialogFooter>
        </form>
      </DialogContent>
    </Dialog>
  );
}

type DirectoryEntry = Conversation & { member_count?: number; archived?: boolean };

export function BrowseChannelsDialog() {
  const dialog = usePanelDialog("browse");
  return (
    <Dialog {...dialog}>
      <DialogContent className="max-w-lg">{dialog.open && <BrowseBody />}</DialogContent>
    </Dialog>
  );
}

function BrowseBody() {
  const [q, setQ] = React.useState("");
  const [list, setList] = React.useState<DirectoryEntry[]>([]);
  const [cursor, setCursor] = React.useState<string | null>(null);
  const [busy, setBusy] = React.useState(false);
  const mine = useChat((s) => s.conversations);
  const id = React.useId();

  const load = React.useCallback(async (query: string, more: string | null) => {
    const c = chat.chat;
    if (!c) return;
    setBusy(true);
    try {
      const opts: { q?: string; cursor?: string; limit?: number } = { limit: 50 };
      if (query) opts.q = query;
      if (more) opts.cursor = more;
      const page = await c.channels(opts);
      setList((l) => (more ? [...l, ...(page.channels as DirectoryEntry[])] : (page.channels as DirectoryEntry[])));
      setCursor(page.next_cursor);
    } catch (e) {
      reportError(e);
    } finally {
      setBusy(false);
    }
  }, []);

  React.useEffect(() => {
    const t = setTimeout(() => void load(q.trim(), null), q ? 250 : 0);
    return () => clearTimeout(t);
  }, [q, load]);

  const join = async (ch: DirectoryEntry) => {
    const c = chat.chat;
    if (!c) return;
    try {
      if (!mine[ch.id]) await c.joinConversation(ch.id);
      const conv = await c.conversation(ch.id);
      openPanel(null);
      chat.adopt(conv);
    } catch (e) {
      reportError(e);
    }
  };

  return (
    <div className="grid gap-3">
      <DialogHeader>
        <DialogTitle>Browse channels</DialogTitle>
        <DialogDescription>Public channels you can join.</DialogDescription>
      </DialogHeader>
      <Label htmlFor={id} className="sr-only">
        Filter channels
      </Label>
      <Input id={id} value={q} autoFocus placeholder="Filter by name" onChange={(e) => setQ(e.target.value)} />
      <ul className="max-h-[50dvh] overflow-y-auto" aria-label="Channels" aria-busy={busy}>
        {list.map((ch) => (
          <li key={ch.id} className="flex items-center gap-3 rounded-md px-2 py-2 hover:bg-muted/50">
            <Hash className="h-4 w-4 shrink-0 text-muted-foreground" aria-hidden="true" />
            <div className="min-w-0 flex-1">
              <p className="truncate text-sm font-medium">
                {ch.name}
                {ch.archived ? <span className="ml-1 text-xs text-muted-foreground">(archived)</span> : null}
              </p>
              <p className="truncate text-xs text-muted-foreground">
                {typeof ch.member_count === "number" ? `${ch.member_count} member${ch.member_count === 1 ? "" : "s"}` : ""}
                {typeof ch.topic === "string" && ch.topic ? ` · ${ch.topic}` : ""}
              </p>
            </div>
            <Button size="sm" variant={mine[ch.id] ? "outline" : "default"} disabled={!mine[ch.id] && ch.archived === true} onClick={() => void join(ch)} aria-label={`${mine[ch.id] ? "Open" : "Join"} ${ch.name ?? "channel"}`}>
              {mine[ch.id] ? "Open" : "Join"}
            </Button>
          </li>
        ))}
        {!busy && list.length === 0 && <li className="px-2 py-6 text-center text-sm text-muted-foreground">No channels found.</li>}
        {busy && (
          <li className="flex justify-center py-3" role="status" aria-label="Loading">
            <Loader2 className="h-4 w-4 animate-spin text-muted-foreground" aria-hidden="true" />
          </li>
        )}
      </ul>
      {cursor && (
        <Button variant="ghost" size="sm" disabled={busy} onClick={() => void load(q.trim(), cursor)}>
          More channels
        </Button>
      )}
    </div>
  );
}

/** Start a dm (one person) or a group (two or more). */
export function NewMessageDialog() {
  const dialog = usePanelDialog("new-message");
  return (
    <Dialog {...dialog}>
      <DialogContent>{dialog.open && <NewMessageBody />}</DialogContent>
    </Dialog>
  );
}

function NewMessageBody() {
  const [picked, setPicked] = React.useState<User[]>([]);
  const [busy, setBusy] = React.useState(false);
  const meId = useChat((s) => s.me?.id);

  const start = async () => {
    const c = chat.chat;
    if (!c || !picked.length) return;
    setBusy(true);
    try {
      const conv =
        picked.length === 1
          ? await c.createConversation({ kind: "dm", members: [picked[0]!.id] })
          : await c.createConversation({ kind: "group", members: picked.map((u) => u.id) });
      openPanel(null);
      chat.adopt(conv);
    } catch (e) {
      reportError(e);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="grid gap-4">
      <DialogHeader>
        <DialogTitle>New message</DialogTitle>
        <DialogDescription>Pick one person for a direct message, or several for a group (up to 15).</DialogDescription>
      </DialogHeader>
      {picked.length > 0 && (
        <ul className="flex flex-wrap gap-1.5" aria-label="Selected people">
          {picked.map((u) => (
            <li key={u.id} className="flex items-center gap-1 rounded-full bg-secondary py-0.5 pl-2.5 pr-1 text-sm">
              {u.id === meId ? "You" : u.display_name || u.username}
              <button
                type="button"
                className="rounded-full p-0.5 hover:bg-accent"
                aria-label={`Remove ${u.display_name || u.username}`}
                onClick={() => setPicked((p) => p.filter((x) => x.id !== u.id))}
              >
                <X className="h-3 w-3" aria-hidden="true" />
              </button>
            </li>
          ))}
        </ul>
      )}
      <UserPicker
        autoFocus
        label="To"
        exclude={picked.map((u) => u.id)}
        onPick={(u) => setPicked((p) => (p.length >= 15 ? p : [...p, u]))}
      />
      <DialogFooter>
        <Button variant="outline" onClick={() => openPanel(null)}>
          Cancel
        </Button>
        <Button disabled={!picked.length || busy} onClick={() => void start()}>
          {busy && <Loader2 className="animate-spin" aria-hidden="true" />}
          {picked.length > 1 ? "Start group" : "Start conversation"}
        </Button>
      </DialogFooter>
    </div>
  );
}

export function ShortcutsDialog() {
  const dialog = usePanelDialog("shortcuts");
  const rows: [string, string][] = [
    ["Ctrl / ⌘ + K", "Search messages"],
    ["Alt + Shift + ↓ / ↑", "Next / previous conversation with unread messages"],
    ["Alt + ↓ / ↑", "Next / previous conversation"],
    ["Enter", "Send the message"],
    ["Shift + Enter", "New line"],
    ["↑ in an empty message box", "Edit your last message"],
    ["Esc", "Cancel reply or edit; close dialogs"],
  ];
  return (
    <Dialog {...dialog}>
      <DialogContent className="max-w-md">
        <DialogHeader>
          <DialogTitle>Keyboard shortcuts</DialogTitle>
          <DialogDescription className="sr-only">Keys that work anywhere in the app</DialogDescription>
        </DialogHeader>
        <dl className="grid grid-cols-[auto_1fr] gap-x-4 gap-y-2 text-sm">
          {rows.map(([k, v]) => (
            <React.Fragment key={k}>
              <dt>
                <kbd className="rounded border bg-muted px-1.5 py-0.5 text-xs">{k}</kbd>
              </dt>
              <dd className="text-muted-foreground">{v}</dd>
            </React.Fragment>
          ))}
        </dl>
      </DialogContent>
    </Dialog>
  );
}
