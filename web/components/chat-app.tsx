"use client";
import * as React from "react";
import { Loader2, MessageSquare } from "lucide-react";
import { Button } from "@/components/ui/button";
import { Sheet, SheetContent, SheetDescription, SheetTitle } from "@/components/ui/sheet";
import { Sidebar, sidebarOrder } from "@/components/sidebar";
import { ConversationView, MobileTopBar } from "@/components/conversation-view";
import { ConnectionBanner } from "@/components/connection-banner";
import { SearchDialog } from "@/components/search-dialog";
import { BrowseChannelsDialog, CreateChannelDialog, NewMessageDialog, ShortcutsDialog } from "@/components/new-conversation";
import { chat, useChat } from "@/lib/store";
import { getSession, setCurrentClient } from "@/lib/session";
import { goToLogin } from "@/lib/session-hint";
import { describeError } from "@/lib/errors";
import { openPanel, usePanel, usePanelDialog } from "@/lib/ui";

const ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

export function ChatApp() {
  const phase = useChat((s) => s.phase);
  const [bootError, setBootError] = React.useState<unknown>(null);
  const [attempt, setAttempt] = React.useState(0);

  React.useEffect(() => {
    let live = true;
    setBootError(null);
    getSession()
      .then((c) => {
        if (!live) return;
        if (!c) goToLogin();
        else void chat.start(c);
      })
      .catch((e: unknown) => live && setBootError(e));
    return () => {
      live = false;
    };
  }, [attempt]);

  React.useEffect(() => {
    if (phase === "signed-out") {
      setCurrentClient(null);
      goToLogin();
    }
  }, [phase]);

  if (bootError) {
    const { title, description } = describeError(bootError);
    return (
      <div className="h-dvh-safe flex flex-col items-center justify-center gap-3 p-6 text-center">
        <h1 className="text-lg font-semibold">{title}</h1>
        {description && <p className="text-sm text-muted-foreground">{description}</p>}
        <Button onClick={() => setAttempt((a) => a + 1)}>Try again</Button>
      </div>
    );
  }
  if (phase !== "ready" && phase !== "starting") {
    return (
      <div className="h-dvh-safe flex items-center justify-center text-muted-foreground" role="status">
        <Loader2 className="mr-2 h-5 w-5 animate-spin" aria-hidden="true" /> Loading…
      </div>
    );
  }
  return <Shell />;
}

function Shell() {
  // Not the conversations themselves: they change with every event, and this renders the whole app.
  const active = useChat((s) => s.active);
  const loaded = useChat((s) => s.convsLoaded);
  const sidebar = usePanelDialog("sidebar");
  const panel = usePanel();

  // ?c=<conversation> in the address bar: restored on load, kept in sync after.
  const restored = React.useRef(false);
  React.useEffect(() => {
    if (!loaded || restored.current) return;
    restored.current = true;
    const want = new URLSearchParams(window.location.search).get("c");
    const first = sidebarOrder(chat.state).all[0];
    if (want && ID_RE.test(want)) {
      if (!chat.state.conversations[want]) {
        void chat.loadConversation(want).then((c) => (c ? chat.select(want) : undefined));
      } else chat.select(want);
    } else if (window.matchMedia("(min-width: 768px)").matches && first) {
      chat.select(first.id);
    }
  }, [loaded]);

  React.useEffect(() => {
    if (!restored.current) return;
    const url = active ? `?c=${encodeURIComponent(active)}` : window.location.pathname;
    window.history.replaceState(window.history.state, "", url);
  }, [active]);

  // Unread total in the tab title.
  const unread = useChat((s) => {
    let n = 0;
    for (const id in s.conversations) if (s.conversations[id]!.unread > 0) n++;
    return n;
  });
  React.useEffect(() => {
    document.title = unread ? `(${unread}) Chat` : "Chat";
  }, [unread]);

  // Global keys: Ctrl/Cmd+K search; Alt(+Shift)+↑/↓ previous/next (unread) conversation.
  React.useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if ((e.ctrlKey || e.metaKey) && !e.altKey && e.key.toLowerCase() === "k") {
        e.preventDefault();
        openPanel(panel === "search" ? null : "search");
        return;
      }
      if (e.altKey && !e.ctrlKey && !e.metaKey && (e.key === "ArrowDown" || e.key === "ArrowUp")) {
        const list = sidebarOrder(chat.state).all;
        if (!list.length) return;
        e.preventDefault();
        const dir = e.key === "ArrowDown" ? 1 : -1;
        const cur = list.findIndex((c) => c.id === chat.state.active);
        for (let step = 1; step <= list.length; step++) {
          const c = list[(((cur + dir * step) % list.length) + list.length) % list.length]!;
          if (!e.shiftKey || (c.unread > 0 && c.id !== chat.state.active)) {
            chat.select(c.id);
            requestAnimationFrame(() => document.querySelector<HTMLElement>(`[data-conv="${c.id}"]`)?.scrollIntoView({ block: "nearest" }));
            return;
          }
        }
        if (e.shiftKey) chat.notify("No unread conversations");
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [panel]);

  return (
    <div className="h-dvh-safe flex flex-col">
      <a
        href="#main"
        className="sr-only z-50 rounded bg-primary px-3 py-2 text-primary-foreground focus:not-sr-only focus:absolute focus:left-2 focus:top-2"
      >
        Skip to conversation
      </a>
      <ConnectionBanner />
      <div className="flex min-h-0 flex-1">
        <aside className="hidden w-72 shrink-0 border-r md:flex md:flex-col">
          <Sidebar />
        </aside>
        <Sheet {...sidebar}>
          <SheetContent side="left" className="p-0 md:hidden">
            <SheetTitle className="sr-only">Conversations</SheetTitle>
            <SheetDescription className="sr-only">Channels and direct messages</SheetDescription>
            <Sidebar inSheet onNavigate={() => openPanel(null)} />
          </SheetContent>
        </Sheet>
        <main id="main" className="flex min-w-0 flex-1 flex-col">
          {active ? <ConversationView convId={active} /> : <Empty />}
        </main>
      </div>
      <SearchDialog />
      <CreateChannelDialog />
      <BrowseChannelsDialog />
      <NewMessageDialog />
      <ShortcutsDialog />
    </div>
  );
}

function Empty() {
  return (
    <div className="flex flex-1 flex-col">
      <MobileTopBar title="Chat" />
      <div className="flex flex-1 flex-col items-center justify-center gap-3 p-6 text-center">
        <MessageSquare className="h-10 w-10 text-muted-foreground" aria-hidden="true" />
        <h1 className="text-lg font-semibold">Pick a conversation</h1>
        <p className="max-w-xs text-sm text-muted-foreground">Choose a channel or a direct message, or start a new one.</p>
        <div className="flex flex-wrap justify-center gap-2">
          <Button variant="outline" className="md:hidden" onClick={() => openPanel("sidebar")}>
            Conversations
          </Button>
          <Button variant="outline" onClick={() => openPanel("browse")}>
            Browse channels
          </Button>
          <Button onClick={() => openPanel("new-message")}>New message</Button>
        </div>
      </div>
    </div>
  );
}
