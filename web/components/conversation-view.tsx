"use client";
import * as React from "react";
import { Archive, LogOut, Menu, MoreVertical, Search, Users } from "lucide-react";
import type { Attachment, ChatEvent } from "@chat/client";
import { Button } from "@/components/ui/button";
import {
  DropdownMenu,
  DropdownMenuContent,
  DropdownMenuItem,
  DropdownMenuTrigger,
} from "@/components/ui/dropdown-menu";
import { Tip } from "@/components/ui/tooltip";
import { MessageList } from "@/components/message-list";
import { RowActionsContext, type RowActions } from "@/components/message-row";
import { Composer, type ComposerMode } from "@/components/composer";
import { Lightbox } from "@/components/lightbox";
import { ConfirmDialog, type ConfirmRequest } from "@/components/confirm-dialog";
import { ConvIcon } from "@/components/sidebar";
import { MembersSheet } from "@/components/members-panel";
import { chat, convTitle, displayName, dmPeer, sameConvShown, useChat, useChatEq } from "@/lib/store";
import { openPanel } from "@/lib/ui";
import { formatLastSeen } from "@/lib/format";
import { reportError } from "@/lib/errors";

export function ConversationView({ convId }: { convId: string }) {
  // What this needs of the conversation, not the object (it changes with every event).
  const exists = useChat((s) => s.conversations[convId] !== undefined);
  const archived = useChat((s) => s.conversations[convId]?.archived === true);
  const role = useChat((s) => s.conversations[convId]?.role);
  const [mode, setMode] = React.useState<ComposerMode>({ kind: "new" });
  const [image, setImage] = React.useState<Attachment | null>(null);
  const [confirm, setConfirm] = React.useState<ConfirmRequest | null>(null);

  const actions = React.useMemo<RowActions>(
    () => ({
      reply: (ev) => setMode({ kind: "reply", ev }),
      edit: (ev, body) => setMode({ kind: "edit", ev, body }),
      askDelete: (ev) =>
        setConfirm({
          title: "Delete this message?",
          description: "It will be removed for everyone in the conversation, with its attachments.",
          action: "Delete",
          destructive: true,
          run: () => chat.remove(convId, ev.seq),
        }),
      openImage: (att) => setImage(att),
      jumpTo: (seq) => void chat.jumpTo(convId, seq),
    }),
    [convId],
  );

  const editLast = React.useCallback(() => {
    const s = chat.state;
    const t = s.timelines[convId];
    const me = s.me?.id;
    if (!t) return;
    for (let i = t.items.length - 1; i >= 0; i--) {
      const ev: ChatEvent = t.items[i]!;
      if (ev.kind === "message" && ev.sender === me) {
        const p = t.patches[ev.seq];
        if (p?.deleted || ev.deleted) return;
        setMode({ kind: "edit", ev, body: p?.body ?? ev.body ?? "" });
        return;
      }
    }
  }, [convId]);

  if (!exists) {
    return (
      <div className="flex flex-1 flex-col">
        <MobileTopBar title="Conversation" />
        <div className="flex flex-1 items-center justify-center p-6 text-sm text-muted-foreground">
          This conversation is not available.
        </div>
      </div>
    );
  }

  const disabledReason = archived
    ? "This conversation is archived: it is read-only."
    : role === "guest"
      ? "Guests can read but not post here."
      : null;

  return (
    <RowActionsContext.Provider value={actions}>
      <section className="flex min-h-0 min-w-0 flex-1 flex-col" aria-label="Conversation">
        <Header convId={convId} />
        <MessageList key={`list-${convId}`} convId={convId} />
        <TypingIndicator convId={convId} />
        <Announcer convId={convId} />
        <Composer
          key={`composer-${convId}`}
          convId={convId}
          mode={mode}
          setMode={setMode}
          disabledReason={disabledReason}
          onEditLast={editLast}
        />
        <Lightbox att={image} onClose={() => setImage(null)} />
        <ConfirmDialog req={confirm} onClose={() => setConfirm(null)} />
        <MembersSheet convId={convId} />
      </section>
    </RowActionsContext.Provider>
  );
}

export function MobileTopBar({ title }: { title: string }) {
  return (
    <div className="flex h-14 items-center gap-2 border-b px-2 md:hidden">
      <Button variant="ghost" size="icon" aria-label="Open conversations" onClick={() => openPanel("sidebar")}>
        <Menu aria-hidden="true" />
      </Button>
      <h1 className="truncate font-semibold">{title}</h1>
    </div>
  );
}

function Header({ convId }: { convId: string }) {
  const conv = useChatEq((s) => s.conversations[convId], sameConvShown)!;
  const title = useChat((s) => convTitle(s, conv));
  const peer = useChat((s) => dmPeer(s, conv));
  const presence = useChat((s) => (peer ? s.presence[peer] : undefined));
  const memberCount = useChat((s) => s.members[convId]?.length);
  const me = useChat((s) => s.me?.id);
  const blocked = useChat((s) => (peer ? s.blocks.includes(peer) : false));
  const topic = typeof conv.topic === "string" ? conv.topic : "";
  const sub = peer
    ? presence?.status === "online"
      ? "Online"
      : presence
        ? formatLastSeen(presence.last_seen)
        : ""
    : topic;

  const leave = async () => {
    if (!me) return;
    try {
      await chat.chat?.removeMember(convId, me);
      chat.select(null);
    } catch (e) {
      reportError(e);
    }
  };
  const toggleBlock = async () => {
    const c = chat.chat;
    if (!c || !peer) return;
    try {
      if (blocked) await c.unblock(peer);
      else await c.block(peer);
      chat.setBlocks(await c.blocks());
      chat.notify(blocked ? "Unblocked" : "Blocked", blocked ? undefined : "They can no longer message you here or see your presence.");
    } catch (e) {
      reportError(e);
    }
  };

  return (
    <header className="flex h-14 shrink-0 items-center gap-2 border-b px-2 sm:px-4">
      <Button variant="ghost" size="icon" className="md:hidden" aria-label="Open conversations" onClick={() => openPanel("sidebar")}>
        <Menu aria-hidden="true" />
      </Button>
      <ConvIcon conv={conv} peer={peer} title={title} />
      <div className="min-w-0 flex-1">
        <h1 className="flex items-center gap-1.5 truncate text-base font-semibold">
          <span className="truncate">{title}</span>
          {conv.archived === true && <Archive className="h-4 w-4 shrink-0 text-muted-foreground" aria-label="Archived" />}
        </h1>
        {sub && <p className="truncate text-xs text-muted-foreground">{sub}</p>}
      </div>
      <Tip label="Search">
        <Button variant="ghost" size="icon" aria-label="Search messages" onClick={() => openPanel("search")}>
          <Search aria-hidden="true" />
        </Button>
      </Tip>
      <Tip label="Members">
        <Button variant="ghost" size={memberCount ? "default" : "icon"} className="px-2" onClick={() => openPanel("members")}>
          <Users aria-hidden="true" />
          <span className="sr-only">Members</span>
          {memberCount ? <span className="text-xs">{memberCount}</span> : null}
        </Button>
      </Tip>
      {(conv.kind !== "dm" || peer) && (
        <DropdownMenu>
          <Tip label="Conversation menu">
            <DropdownMenuTrigger asChild>
              <Button variant="ghost" size="icon" aria-label="Conversation menu">
                <MoreVertical aria-hidden="true" />
              </Button>
            </DropdownMenuTrigger>
          </Tip>
          <DropdownMenuContent align="end">
            {peer && (
              <DropdownMenuItem onSelect={() => void toggleBlock()} destructive={!blocked}>
                {blocked ? "Unblock" : "Block"} {title}
              </DropdownMenuItem>
            )}
            {conv.kind !== "dm" && (
              <DropdownMenuItem destructive onSelect={() => void leave()}>
                <LogOut aria-hidden="true" /> Leave {conv.kind === "channel" ? "channel" : "group"}
              </DropdownMenuItem>
            )}
          </DropdownMenuContent>
        </DropdownMenu>
      )}
    </header>
  );
}

function TypingIndicator({ convId }: { convId: string }) {
  const typing = useChat((s) => s.typing[convId]);
  const users = useChat((s) => s.users);
  const ids = typing ? Object.keys(typing) : [];
  const names = ids.map((id) => displayName(users, id));
  const text =
    names.length === 0
      ? ""
      : names.length === 1
        ? `${names[0]} is typing…`
        : names.length === 2
          ? `${names[0]} and ${names[1]} are typing…`
          : "Several people are typing…";
  return (
    <div className="h-5 shrink-0 truncate px-4 text-xs text-muted-foreground" aria-live="polite" role="status">
      {text}
    </div>
  );
}

/** Tells screen readers about messages that arrive from others while the conversation is open. */
function Announcer({ convId }: { convId: string }) {
  const last = useChat((s) => {
    const items = s.timelines[convId]?.items;
    return items?.[items.length - 1];
  });
  const me = useChat((s) => s.me?.id);
  const name = useChat((s) => (last ? displayName(s.users, last.sender) : ""));
  const seen = React.useRef<number | null>(null);
  const [text, setText] = React.useState("");
  React.useEffect(() => {
    if (!last) return;
    if (seen.current === null) {
      seen.current = last.seq; // what was there when the conversation opened is not news
      return;
    }
    if (last.seq <= seen.current) return;
    seen.current = last.seq;
    if (last.kind === "message" && last.sender !== me) {
      // Not the text itself: a second copy of it in the page would confuse find-in-page and tests.
      setText(`New message from ${name}`);
    }
  }, [last, me, name]);
  return (
    <div className="sr-only" aria-live="polite" aria-atomic="true">
      {text}
    </div>
  );
}
