"use client";
/**
 * The history of one conversation, windowed: at most MAX rows are in the DOM. The window is
 * kept by seq (not index), so pages prepended by infinite scroll do not move it; moving it
 * keeps the first visible row where it was on screen (an anchor), and while the reader is at
 * the bottom the list sticks to the newest message (also when images load).
 */
import * as React from "react";
import { ArrowDown, Loader2 } from "lucide-react";
import type { ChatEvent, OutgoingMessage } from "@chat/client";
import { Button } from "@/components/ui/button";
import { DayDivider, MessageRow, NewDivider, PendingRow, SystemRow, type Tick } from "@/components/message-row";
import { chat, ROLE_RANK, useChat, type Timeline } from "@/lib/store";
import { dayKey, formatDay, parseTs } from "@/lib/format";

const MAX = 240; // rows in the DOM at most
const STEP = 80; // rows added when the reader nears an edge of the window
const INITIAL = 80;
const EDGE_PX = 800;
const GROUP_MS = 5 * 60_000;
const EMPTY: ChatEvent[] = [];
const NO_OUTBOX: OutgoingMessage[] = [];

/** First index whose seq is >= seq. */
function lowerBound(items: ChatEvent[], seq: number): number {
  let lo = 0;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (items[mid]!.seq < seq) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

interface Win {
  /** Seq of the first rendered row; undefined = not set yet (render from the start). */
  startSeq?: number;
  /** Seq of the last rendered row; null = follow the newest. */
  endSeq: number | null;
}

export function MessageList({ convId }: { convId: string }) {
  const tl = useChat((s) => s.timelines[convId]) as Timeline | undefined;
  const conv = useChat((s) => s.conversations[convId]);
  const meId = useChat((s) => s.me?.id ?? "");
  const outboxAll = useChat((s) => s.outbox);
  const receipts = useChat((s) => s.receipts[convId]);
  const members = useChat((s) => s.members[convId]);
  const jump = useChat((s) => (s.jump?.conv === convId ? s.jump : null));
  const items = tl?.items ?? EMPTY;

  const scrollRef = React.useRef<HTMLDivElement>(null);
  const contentRef = React.useRef<HTMLDivElement>(null);
  const [win, setWin] = React.useState<Win>({ endSeq: null });
  const [atBottom, setAtBottom] = React.useState(true);
  const [flashSeq, setFlashSeq] = React.useState<number | null>(null);
  const stick = React.useRef(true);
  const anchor = React.useRef<{ key: string; top: number } | null>(null);
  const scrollToSeq = React.useRef<number | null>(null);

  const startIdx = win.startSeq === undefined ? 0 : lowerBound(items, win.startSeq);
  const endIdx = win.endSeq === null ? items.length : Math.min(items.length, lowerBound(items, win.endSeq + 1));
  const following = win.endSeq === null && !tl?.hasMoreAfter;

  // Remember which row is first on screen, so a change of the window leaves it in place.
  const captureAnchor = React.useCallback(() => {
    const el = scrollRef.current;
    const content = contentRef.current;
    if (!el || !content) return;
    const top = el.scrollTop;
    for (const child of Array.from(content.children) as HTMLElement[]) {
      if (child.offsetTop + child.offsetHeight > top && child.dataset.key) {
        anchor.current = { key: child.dataset.key, top: child.offsetTop - top };
        return;
      }
    }
  }, []);

  const check = React.useCallback(() => {
    const el = scrollRef.current;
    if (!el || !tl) return;
    const fromBottom = el.scrollHeight - el.scrollTop - el.clientHeight;
    const bottom = fromBottom < 48;
    stick.current = bottom && win.endSeq === null;
    chat.atBottom = bottom && following;
    setAtBottom(bottom);
    if (el.scrollTop < EDGE_PX) {
      if (startIdx > 0) {
        const ns = Math.max(0, startIdx - STEP);
        const next: Win = { startSeq: items[ns]!.seq, endSeq: win.endSeq };
        if (endIdx - ns > MAX) {
          next.endSeq = items[ns + MAX - 1]!.seq;
          stick.current = false;
        }
        captureAnchor();
        setWin(next);
        return;
      }
      if (tl.hasMoreBefore && !tl.loadingBefore && tl.loaded && items.length) void chat.loadOlder(convId);
    }
    if (fromBottom < EDGE_PX) {
      if (win.endSeq !== null) {
        const ne = Math.min(items.length, endIdx + STEP);
        const next: Win = { startSeq: win.startSeq, endSeq: ne >= items.length ? null : items[ne - 1]!.seq };
        if (ne - startIdx > MAX) next.startSeq = items[ne - MAX]!.seq;
        captureAnchor();
        setWin(next);
        return;
      }
      if (tl.hasMoreAfter && !tl.loadingAfter) void chat.loadNewer(convId);
    }
    if (bottom && following) chat.markActiveRead();
  }, [tl, items, startIdx, endIdx, win, following, convId, captureAnchor]);

  // Set the start of the window once there is history; trim the top while following the end.
  React.useLayoutEffect(() => {
    if (!items.length) return;
    if (win.startSeq === undefined) {
      setWin((w) => ({ ...w, startSeq: items[Math.max(0, items.length - INITIAL)]!.seq }));
    } else if (win.endSeq === null && stick.current && endIdx - startIdx > MAX) {
      setWin((w) => ({ ...w, startSeq: items[Math.max(0, items.length - MAX + STEP)]!.seq }));
    }
  }, [items, win.startSeq, win.endSeq, startIdx, endIdx]);

  // After each render: restore the anchor, or stick to the bottom, or show a jump target.
  React.useLayoutEffect(() => {
    const el = scrollRef.current;
    if (!el) return;
    const target = scrollToSeq.current;
    if (target !== null) {
      const row = el.querySelector<HTMLElement>(`[data-key="e${target}"]`);
      if (row) {
        scrollToSeq.current = null;
        anchor.current = null;
        el.scrollTop = Math.max(0, row.offsetTop - el.clientHeight / 2 + row.offsetHeight / 2);
      }
    } else if (anchor.current) {
      const a = anchor.current;
      anchor.current = null;
      const row = el.querySelector<HTMLElement>(`[data-key="${a.key}"]`);
      if (row) el.scrollTop = row.offsetTop - a.top;
    } else if (stick.current) {
      el.scrollTop = el.scrollHeight;
    }
  });

  // Keep pulling history while the reader sits at an edge (a load changes nothing on screen).
  React.useEffect(() => {
    const id = requestAnimationFrame(check);
    return () => cancelAnimationFrame(id);
  }, [check]);

  // Content that grows below (images, a new row) keeps the list at the bottom when it was there.
  React.useEffect(() => {
    const el = scrollRef.current;
    const content = contentRef.current;
    if (!el || !content || typeof ResizeObserver === "undefined") return;
    const ro = new ResizeObserver(() => {
      if (stick.current) el.scrollTop = el.scrollHeight;
    });
    ro.observe(content);
    return () => ro.disconnect();
  }, []);

  // A jump (search result, reply quote): window around the message, scroll it to the middle, flash it.
  React.useEffect(() => {
    if (!jump) return;
    const idx = lowerBound(items, jump.seq);
    if (!items.length || idx >= items.length) return;
    const s = Math.max(0, idx - STEP);
    const e = Math.min(items.length, idx + STEP);
    stick.current = false;
    chat.atBottom = false;
    scrollToSeq.current = items[idx]!.seq;
    setWin({ startSeq: items[s]!.seq, endSeq: e >= items.length && !tl?.hasMoreAfter ? null : items[e - 1]!.seq });
    setFlashSeq(items[idx]!.seq);
    chat.clearJump();
    const t = setTimeout(() => setFlashSeq(null), 2600);
    return () => clearTimeout(t);
  }, [jump, items, tl?.hasMoreAfter]);

  React.useEffect(() => {
    const onVis = () => {
      if (document.visibilityState === "visible") chat.markActiveRead();
    };
    document.addEventListener("visibilitychange", onVis);
    window.addEventListener("focus", onVis);
    return () => {
      document.removeEventListener("visibilitychange", onVis);
      window.removeEventListener("focus", onVis);
    };
  }, []);

  const toLatest = () => {
    stick.current = true;
    if (tl?.hasMoreAfter || win.endSeq !== null) {
      setWin({ endSeq: null });
      if (tl?.hasMoreAfter) void chat.loadLatest(convId);
    } else {
      const el = scrollRef.current;
      if (el) el.scrollTop = el.scrollHeight;
    }
  };

  // Receipt marks for ticks: dm/group → everyone else; channel → anyone else.
  const marks = React.useMemo(() => {
    const others = (members ?? []).map((m) => m.user_id).filter((u) => u !== meId);
    const rs = others.map((u) => receipts?.[u]);
    if (!others.length) return { delivered: 0, read: 0 };
    if (conv?.kind === "channel") {
      return {
        delivered: Math.max(0, ...rs.map((r) => r?.delivered_seq ?? 0)),
        read: Math.max(0, ...rs.map((r) => r?.read_seq ?? 0)),
      };
    }
    return {
      delivered: Math.min(...rs.map((r) => r?.delivered_seq ?? 0)),
      read: Math.min(...rs.map((r) => r?.read_seq ?? 0)),
    };
  }, [members, receipts, meId, conv?.kind]);

  const myRole = conv?.role;
  const canDeleteOthers = conv?.kind !== "dm" && myRole !== undefined && ROLE_RANK[myRole] >= ROLE_RANK.admin;
  const canPost = myRole !== undefined && myRole !== "guest" && !conv?.archived;

  const bySeq = React.useMemo(() => {
    const m = new Map<number, ChatEvent>();
    for (const e of items) if (e.kind === "message") m.set(e.seq, e);
    return m;
  }, [items]);

  const outbox = React.useMemo(() => {
    if (!following) return NO_OUTBOX;
    const last = items[items.length - 1]?.seq ?? 0;
    return outboxAll.filter(
      (m) => m.conv === convId && (m.state !== "sent" || m.seq === undefined || (m.seq > last && !bySeq.has(m.seq))),
    );
  }, [outboxAll, convId, following, items, bySeq]);

  const firstNew = React.useMemo(() => {
    if (!tl) return -1;
    const i = items.findIndex((e) => e.seq > tl.readSeqAtOpen && e.sender !== meId && e.kind === "message");
    return i > 0 || (i === 0 && tl.hasMoreBefore) ? items[i]!.seq : -1;
  }, [items, tl, meId]);

  const rows: React.ReactNode[] = [];
  let prev: ChatEvent | undefined;
  for (let i = startIdx; i < endIdx; i++) {
    const ev = items[i]!;
    const d = parseTs(ev.ts);
    const newDay = !prev || dayKey(parseTs(prev.ts)) !== dayKey(d);
    if (newDay) rows.push(<div key={`d${ev.seq}`} data-key={`d${ev.seq}`}><DayDivider label={formatDay(d)} /></div>);
    if (ev.seq === firstNew) rows.push(<div key="new" data-key="new"><NewDivider /></div>);
    if (ev.kind === "message") {
      const compact =
        !newDay &&
        ev.seq !== firstNew &&
        prev?.kind === "message" &&
        prev.sender === ev.sender &&
        d.getTime() - parseTs(prev.ts).getTime() < GROUP_MS &&
        ev.reply_to == null;
      const mine = ev.sender === meId;
      const tick: Tick | undefined = mine
        ? ev.seq <= marks.read ? "read" : ev.seq <= marks.delivered ? "delivered" : "sent"
        : undefined;
      const patch = tl?.patches[ev.seq];
      const deleted = patch?.deleted || ev.deleted;
      rows.push(
        <div key={`e${ev.seq}`} data-key={`e${ev.seq}`}>
          <MessageRow
            ev={ev}
            patch={patch}
            compact={compact}
            mine={mine}
            tick={tick}
            replyOriginal={ev.reply_to != null ? bySeq.get(ev.reply_to) : undefined}
            replyPatch={ev.reply_to != null ? tl?.patches[ev.reply_to] : undefined}
            canEdit={mine && canPost && !deleted}
            canDelete={!deleted && !conv?.archived && (mine || canDeleteOthers)}
            flash={flashSeq === ev.seq}
          />
        </div>,
      );
    } else {
      rows.push(
        <div key={`e${ev.seq}`} data-key={`e${ev.seq}`}>
          <SystemRow ev={ev} />
        </div>,
      );
    }
    prev = ev;
  }

  const loadingTop = tl?.loadingBefore;
  const showStart = tl?.loaded && !tl.failed && !tl.hasMoreBefore && startIdx === 0;
  return (
    <div className="relative min-h-0 flex-1">
      <div
        ref={scrollRef}
        onScroll={check}
        className="scroll-anchor-none h-full overflow-y-auto overscroll-contain"
        role="region"
        aria-label="Messages"
        tabIndex={0}
      >
        <div ref={contentRef} className="flex min-h-full flex-col justify-end pb-2">
          {loadingTop && (
            <div className="flex justify-center py-3 text-muted-foreground" role="status" aria-label="Loading older messages">
              <Loader2 className="h-5 w-5 animate-spin" aria-hidden="true" />
            </div>
          )}
          {showStart && (
            <p className="px-4 py-6 text-center text-sm text-muted-foreground">This is the beginning of the conversation.</p>
          )}
          {rows}
          {tl?.loadingAfter && (
            <div className="flex justify-center py-3 text-muted-foreground" role="status" aria-label="Loading newer messages">
              <Loader2 className="h-5 w-5 animate-spin" aria-hidden="true" />
            </div>
          )}
          {outbox.map((m) => (
            <div key={`o${m.clientMsgId}`} data-key={`o${m.clientMsgId}`}>
              <PendingRow m={m} meId={meId} />
            </div>
          ))}
          {tl?.failed && items.length === 0 && (
            <div className="flex flex-1 flex-col items-center justify-center gap-2 py-10 text-sm text-muted-foreground">
              Couldn&apos;t load the messages.
              <Button variant="outline" size="sm" onClick={() => void chat.loadLatest(convId)}>
                Try again
              </Button>
            </div>
          )}
          {!tl?.loaded && (
            <div className="flex flex-1 items-center justify-center py-10 text-muted-foreground" role="status">
              <Loader2 className="mr-2 h-5 w-5 animate-spin" aria-hidden="true" /> Loading messages…
            </div>
          )}
        </div>
      </div>
      {(!atBottom || !following) && tl?.loaded && (
        <Button
          size="sm"
          variant="secondary"
          className="absolute bottom-3 right-4 rounded-full shadow-md"
          onClick={toLatest}
        >
          <ArrowDown aria-hidden="true" />
          {conv && conv.unread > 0 ? `${conv.unread} new` : "Latest"}
        </Button>
      )}
    </div>
  );
}
