"use client";
import * as React from "react";
import Link from "next/link";
import {
  Hash,
  Lock,
  LogOut,
  MessageSquarePlus,
  Monitor,
  Moon,
  Plus,
  Search,
  Shield,
  Sun,
  Users,
  Compass,
  Keyboard,
} from "lucide-react";
import type { Conversation } from "@chat/client";
import { Button } from "@/components/ui/button";
import { ScrollArea } from "@/components/ui/scroll-area";
import {
  DropdownMenu,
  DropdownMenuContent,
  DropdownMenuItem,
  DropdownMenuLabel,
  DropdownMenuRadioGroup,
  DropdownMenuRadioItem,
  DropdownMenuSeparator,
  DropdownMenuSub,
  DropdownMenuSubContent,
  DropdownMenuSubTrigger,
  DropdownMenuTrigger,
} from "@/components/ui/dropdown-menu";
import { Tip } from "@/components/ui/tooltip";
import { UserAvatar } from "@/components/user-avatar";
import { chat, convTitle, dmPeer, sameConvShown, sameList, sortConversations, useChat, useChatEq, type State } from "@/lib/store";
import { openPanel } from "@/lib/ui";
import { useTheme, type ThemeChoice } from "@/lib/theme";
import { setCurrentClient } from "@/lib/session";
import { cn } from "@/lib/utils";

/** Sidebar order: channels, then dms and groups, each by name (also used by keyboard navigation). */
export function sidebarOrder(s: Pick<State, "conversations" | "users" | "members" | "me">): {
  channels: Conversation[];
  direct: Conversation[];
  all: Conversation[];
} {
  const list = Object.values(s.conversations);
  const channels = sortConversations(s, list.filter((c) => c.kind === "channel"));
  const direct = sortConversations(s, list.filter((c) => c.kind !== "channel"));
  return { channels, direct, all: [...channels, ...direct] };
}

interface SidebarIds {
  channels: string[];
  direct: string[];
}

const sameIds = (a: SidebarIds, b: SidebarIds) => sameList(a.channels, b.channels) && sameList(a.direct, b.direct);

/** The ids in sidebar order: a new event changes a conversation but not the order, so the
 * sidebar does not re-render for it (its item does, when what it shows changed). */
function useSidebarIds(): SidebarIds {
  return useChatEq((s) => {
    const { channels, direct } = sidebarOrder(s);
    return { channels: channels.map((c) => c.id), direct: direct.map((c) => c.id) };
  }, sameIds);
}

export function Sidebar({ onNavigate, inSheet }: { onNavigate?: () => void; inSheet?: boolean }) {
  const { channels, direct } = useSidebarIds();
  const loaded = useChat((s) => s.convsLoaded);
  return (
    <nav aria-label="Conversations" className="flex h-full min-h-0 flex-col bg-sidebar text-sidebar-foreground">
      <SidebarHeader inSheet={inSheet} />
      <div className="px-3 pb-2">
        <Button
          variant="outline"
          className="w-full justify-start text-muted-foreground"
          onClick={() => {
            onNavigate?.();
            openPanel("search");
          }}
        >
          <Search aria-hidden="true" />
          <span className="flex-1 text-left">Search</span>
          <kbd className="hidden rounded border px-1 text-[10px] sm:inline">Ctrl K</kbd>
        </Button>
      </div>
      <ScrollArea className="min-h-0 flex-1">
        <div className="px-2 pb-4">
          <Section
            title="Channels"
            action={
              <DropdownMenu>
                <Tip label="Add a channel">
                  <DropdownMenuTrigger asChild>
                    <Button variant="ghost" size="icon-sm" aria-label="Add a channel">
                      <Plus aria-hidden="true" />
                    </Button>
                  </DropdownMenuTrigger>
                </Tip>
                <DropdownMenuContent align="end">
                  <DropdownMenuItem onSelect={() => openPanel("create-channel")}>
                    <Hash aria-hidden="true" /> Create a channel
                  </DropdownMenuItem>
                  <DropdownMenuItem onSelect={() => openPanel("browse")}>
                    <Compass aria-hidden="true" /> Browse channels
                  </DropdownMenuItem>
                </DropdownMenuContent>
              </DropdownMenu>
            }
          >
            {channels.map((id) => (
              <ConvItem key={id} id={id} onNavigate={onNavigate} />
            ))}
            {loaded && channels.length === 0 && (
              <li>
                <button
                  type="button"
                  className="w-full rounded-md px-2 py-1.5 text-left text-sm text-muted-foreground hover:bg-accent"
                  onClick={() => openPanel("browse")}
                >
                  Browse channels…
                </button>
              </li>
            )}
          </Section>
          <Section
            title="Direct messages"
            action={
              <Tip label="New message">
                <Button variant="ghost" size="icon-sm" aria-label="New message" onClick={() => openPanel("new-message")}>
                  <MessageSquarePlus aria-hidden="true" />
                </Button>
              </Tip>
            }
          >
            {direct.map((id) => (
              <ConvItem key={id} id={id} onNavigate={onNavigate} />
            ))}
            {loaded && direct.length === 0 && (
              <li className="px-2 py-1.5 text-sm text-muted-foreground">No conversations yet.</li>
            )}
          </Section>
          {!loaded && <p className="px-2 py-3 text-sm text-muted-foreground">Loading…</p>}
        </div>
      </ScrollArea>
    </nav>
  );
}

function Section({ title, action, children }: { title: string; action?: React.ReactNode; children: React.ReactNode }) {
  const id = React.useId();
  return (
    <section aria-labelledby={id} className="mt-3">
      <div className="flex items-center justify-between px-2 pb-1">
        <h2 id={id} className="text-xs font-semibold uppercase tracking-wide text-muted-foreground">
          {title}
        </h2>
        {action}
      </div>
      <ul className="space-y-0.5">{children}</ul>
    </section>
  );
}

function ConvItem({ id, onNavigate }: { id: string; onNavigate?: () => void }) {
  const conv = useChatEq((s) => s.conversations[id], sameConvShown);
  const active = useChat((s) => s.active === id);
  const title = useChat((s) => (conv ? convTitle(s, conv) : ""));
  const peer = useChat((s) => (conv ? dmPeer(s, conv) : undefined));
  if (!conv) return null;
  const unread = conv.unread;
  const label = unread > 0 ? `${title}, ${unread} unread` : title;
  return (
    <li>
      <button
        type="button"
        aria-current={active ? "page" : undefined}
        aria-label={label}
        data-conv={conv.id}
        onClick={() => {
          chat.select(conv.id);
          onNavigate?.();
        }}
        className={cn(
          "group flex w-full items-center gap-2 rounded-md px-2 py-1.5 text-left text-sm transition-colors hover:bg-accent",
          active && "bg-accent font-semibold",
          unread > 0 && !active && "font-semibold",
        )}
      >
        <ConvIcon conv={conv} peer={peer} title={title} />
        <span className="min-w-0 flex-1 truncate">{title}</span>
        {unread > 0 && (
          <span
            aria-hidden="true"
            className="ml-auto min-w-5 rounded-full bg-primary px-1.5 py-0.5 text-center text-[11px] font-semibold leading-none text-primary-foreground"
          >
            {unread > 99 ? "99+" : unread}
          </span>
        )}
      </button>
    </li>
  );
}

export function ConvIcon({ conv, peer, title }: { conv: Conversation; peer?: string; title: string }) {
  if (conv.kind === "channel") {
    const Icon = conv.private ? Lock : Hash;
    return <Icon className="h-4 w-4 shrink-0 text-muted-foreground" aria-hidden="true" />;
  }
  if (conv.kind === "group") return <Users className="h-4 w-4 shrink-0 text-muted-foreground" aria-hidden="true" />;
  return <UserAvatar userId={peer ?? conv.id} name={title} size="sm" presence={!!peer} />;
}

const THEME_ICONS: Record<ThemeChoice, React.ComponentType<{ className?: string }>> = { system: Monitor, light: Sun, dark: Moon };

function SidebarHeader({ inSheet }: { inSheet?: boolean }) {
  const me = useChat((s) => s.me);
  const [theme, setTheme] = useTheme();
  const ThemeIcon = THEME_ICONS[theme];
  const name = me?.display_name || me?.username || "";
  return (
    <div className={cn("flex items-center gap-2 p-3", inSheet && "pr-10")}>
      <DropdownMenu>
        <DropdownMenuTrigger asChild>
          <button
            type="button"
            className="flex min-w-0 flex-1 items-center gap-2 rounded-md p-1 text-left hover:bg-accent"
          >
            {me && <UserAvatar userId={me.id} name={name} />}
            <span className="min-w-0">
              <span className="block truncate text-sm font-semibold">{name}</span>
              {me && <span className="block truncate text-xs text-muted-foreground">@{me.username}</span>}
              {/* the accessible name starts with the visible text (WCAG 2.5.3) */}
              <span className="sr-only">, account menu</span>
            </span>
          </button>
        </DropdownMenuTrigger>
        <DropdownMenuContent align="start" className="w-56">
          <DropdownMenuLabel>Signed in as @{me?.username}</DropdownMenuLabel>
          <DropdownMenuSeparator />
          <DropdownMenuSub>
            <DropdownMenuSubTrigger>
              <ThemeIcon className="h-4 w-4" /> Theme
            </DropdownMenuSubTrigger>
            <DropdownMenuSubContent>
              <DropdownMenuRadioGroup value={theme} onValueChange={(v) => setTheme(v as ThemeChoice)}>
                <DropdownMenuRadioItem value="system">System</DropdownMenuRadioItem>
                <DropdownMenuRadioItem value="light">Light</DropdownMenuRadioItem>
                <DropdownMenuRadioItem value="dark">Dark</DropdownMenuRadioItem>
              </DropdownMenuRadioGroup>
            </DropdownMenuSubContent>
          </DropdownMenuSub>
          <DropdownMenuItem onSelect={() => openPanel("shortcuts")}>
            <Keyboard aria-hidden="true" /> Keyboard shortcuts
          </DropdownMenuItem>
          {me?.admin && (
            <DropdownMenuItem asChild>
              <Link href="/admin/">
                <Shield aria-hidden="true" /> Administration
              </Link>
            </DropdownMenuItem>
          )}
          <DropdownMenuSeparator />
          <DropdownMenuItem onSelect={() => void logoutAndLeave()}>
            <LogOut aria-hidden="true" /> Log out
          </DropdownMenuItem>
        </DropdownMenuContent>
      </DropdownMenu>
      <ThemeToggle theme={theme} setTheme={setTheme} />
    </div>
  );
}

function ThemeToggle({ theme, setTheme }: { theme: ThemeChoice; setTheme: (t: ThemeChoice) => void }) {
  const next: ThemeChoice = theme === "system" ? "light" : theme === "light" ? "dark" : "system";
  const Icon = THEME_ICONS[theme];
  const label = `Theme: ${theme}. Switch to ${next}`;
  return (
    <Tip label={label}>
      <Button variant="ghost" size="icon" aria-label={label} onClick={() => setTheme(next)}>
        <Icon className="h-4 w-4" />
      </Button>
    </Tip>
  );
}

async function logoutAndLeave(): Promise<void> {
  await chat.logout();
  setCurrentClient(null);
  window.location.assign("/login/");
}
