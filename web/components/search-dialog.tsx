"use client";
import * as React from "react";
import { Loader2, Search } from "lucide-react";
import type { SearchHit } from "@chat/client";
import { Dialog, DialogContent, DialogDescription, DialogTitle } from "@/components/ui/dialog";
import { Button } from "@/components/ui/button";
import { chat, convTitle, displayName, useChat } from "@/lib/store";
import { usePanelDialog, openPanel } from "@/lib/ui";
import { Highlight } from "@/lib/highlight";
import { formatShort, parseTs } from "@/lib/format";
import { reportError } from "@/lib/errors";

export function SearchDialog() {
  const dialog = usePanelDialog("search");
  return (
    <Dialog {...dialog}>
      <DialogContent className="top-[10%] max-w-xl translate-y-0 gap-3 p-0" aria-describedby={undefined}>
        {dialog.open && <SearchBody />}
      </DialogContent>
    </Dialog>
  );
}

function SearchBody() {
  const active = useChat((s) => s.active);
  const activeTitle = useChat((s) => (s.active && s.conversations[s.active] ? convTitle(s, s.conversations[s.active]!) : ""));
  const [q, setQ] = React.useState("");
  const [here, setHere] = React.useState(false);
  const [hits, setHits] = React.useState<SearchHit[]>([]);
  const [cursor, setCursor] = React.useState<string | null>(null);
  const [busy, setBusy] = React.useState(false);
  const [searched, setSearched] = React.useState("");
  const inputId = React.useId();
  const listRef = React.useRef<HTMLUListElement>(null);

  const run = React.useCallback(
    async (query: string, more: string | null) => {
      const c = chat.chat;
      if (!c) return;
      setBusy(true);
      try {
        const opts: { conv?: string; limit?: number; cursor?: string } = { limit: 20 };
        if (here && active) opts.conv = active;
        if (more) opts.cursor = more;
        const page = await c.search(query, opts);
        chat.ensureUsers(page.hits.map((h) => h.event.sender));
        setHits((h) => (more ? [...h, ...page.hits] : page.hits));
        setCursor(page.next_cursor);
        setSearched(query);
      } catch (e) {
        reportError(e);
      } finally {
        setBusy(false);
      }
    },
    [here, active],
  );

  React.useEffect(() => {
    const query = q.trim();
    if (!query) {
      setHits([]);
      setCursor(null);
      setSearched("");
      return;
    }
    const t = setTimeout(() => void run(query.slice(0, 1000), null), 300);
    return () => clearTimeout(t);
  }, [q, run]);

  const open = (h: SearchHit) => {
    openPanel(null);
    void chat.jumpTo(h.event.conv, h.event.seq);
  };

  return (
    <div className="flex max-h-[75dvh] flex-col">
      <DialogTitle className="sr-only">Search messages</DialogTitle>
      <DialogDescription className="sr-only">Results open the message in its conversation.</DialogDescription>
      <div className="flex items-center gap-2 border-b px-3 py-2 pr-10">
        <Search className="h-4 w-4 shrink-0 text-muted-foreground" aria-hidden="true" />
        <label htmlFor={inputId} className="sr-only">
          Search messages
        </label>
        <input
          id={inputId}
          autoFocus
          value={q}
          onChange={(e) => setQ(e.target.value)}
          onKeyDown={(e) => {
            if (e.key === "ArrowDown") {
              e.preventDefault();
              listRef.current?.querySelector<HTMLButtonElement>("button")?.focus();
            } else if (e.key === "Enter" && hits[0]) {
              e.preventDefault();
              open(hits[0]);
            }
          }}
          placeholder="Search messages"
          className="h-9 flex-1 bg-transparent text-sm outline-none placeholder:text-muted-foreground focus-visible:ring-0 focus-visible:ring-offset-0"
          autoComplete="off"
        />
        {busy && <Loader2 className="h-4 w-4 animate-spin text-muted-foreground" aria-hidden="true" />}
      </div>
      {active && (
        <label className="flex items-center gap-2 border-b px-3 py-1.5 text-xs text-muted-foreground">
          <input type="checkbox" checked={here} onChange={(e) => setHere(e.target.checked)} className="accent-primary" />
          Only in {activeTitle}
        </label>
      )}
      <ul
        ref={listRef}
        className="min-h-0 flex-1 overflow-y-auto p-2"
        aria-label="Search results"
        onKeyDown={(e) => {
          const buttons = Array.from(listRef.current?.querySelectorAll<HTMLButtonElement>("button[data-hit]") ?? []);
          const i = buttons.indexOf(document.activeElement as HTMLButtonElement);
          if (e.key === "ArrowDown" && i >= 0 && i < buttons.length - 1) {
            e.preventDefault();
            buttons[i + 1]!.focus();
          } else if (e.key === "ArrowUp" && i >= 0) {
            e.preventDefault();
            if (i === 0) document.getElementById(inputId)?.focus();
            else buttons[i - 1]!.focus();
          }
        }}
      >
        {hits.map((h) => (
          <li key={`${h.event.conv}:${h.event.seq}`}>
            <HitRow hit={h} onOpen={() => open(h)} />
          </li>
        ))}
        {searched && !busy && hits.length === 0 && (
          <li className="px-2 py-6 text-center text-sm text-muted-foreground" role="status">
            No messages match “{searched}”.
          </li>
        )}
        {!searched && !busy && (
          <li className="px-2 py-6 text-center text-sm text-muted-foreground">
            Words or “quoted phrases”. <kbd className="rounded border px-1 text-[10px]">Ctrl K</kbd> opens search anywhere.
          </li>
        )}
        {cursor && (
          <li className="flex justify-center py-2">
            <Button variant="ghost" size="sm" disabled={busy} onClick={() => void run(searched, cursor)}>
              More results
            </Button>
          </li>
        )}
      </ul>
    </div>
  );
}

function HitRow({ hit, onOpen }: { hit: SearchHit; onOpen: () => void }) {
  const conv = useChat((s) => s.conversations[hit.event.conv]);
  const where = useChat((s) => (conv ? convTitle(s, conv) : "Conversation"));
  const who = useChat((s) => displayName(s.users, hit.event.sender));
  return (
    <button
      type="button"
      data-hit
      onClick={onOpen}
      className="w-full rounded-md px-3 py-2 text-left hover:bg-accent focus-visible:bg-accent"
    >
      <div className="flex items-baseline gap-2 text-xs text-muted-foreground">
        <span className="truncate font-semibold text-foreground">{who}</span>
        <span className="truncate">in {conv?.kind === "channel" ? `#${where}` : where}</span>
        <time className="ml-auto shrink-0" dateTime={hit.event.ts}>
          {formatShort(parseTs(hit.event.ts))}
        </time>
      </div>
      <p className="mt-0.5 line-clamp-3 whitespace-pre-wrap break-words text-sm">
        <Highlight html={hit.highlight} />
      </p>
    </button>
  );
}
