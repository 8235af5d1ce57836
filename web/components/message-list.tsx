"use client";
/**
 * The history of one conversation, windowed: at most MAX rows are in the DOM. The window is
 * kept by seq (not index), so pages prepended by infinite scroll do not move it; moving it
 * keeps the first visible row where it was on screen (an anchor), and while the reader follows
 * the newest message the list stays pinned to the bottom (also when images load).
 *
 * "Follow the newest" is state of its own, changed only by the reader's intent: scrolling up
 * away from the bottom (a scroll that follows a wheel, key, touch or scrollbar drag) ends it,
 * reaching the bottom of the newest window or "Latest" starts it again, a jump ends it. It is
 * never re-derived from the scroll position after a render: that position lags the render by
 * up to a frame while rows arrive. Pinning writes the scroll position at most once per frame
 * (in an animation frame, and in the ResizeObserver after layout), never in the render path,
 * so a burst of messages does not force one synchronous layout of the window per message.
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
const BOTTOM_PX = 48; // this close to the end counts as "at the bottom"
const INTENT_MS = 1000; // a scroll this soon after an input that scrolls up is the reader's
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

/** The message with this seq, if loaded (items are sorted by seq). */
function messageAt(items: ChatEvent[], seq: number): ChatEvent | undefined {
  const e = items[lowerBound(items, seq)];
  return e && e.seq === seq && e.kind === "message" ? e : undefined;
}

const UP_KEYS = new Set(["ArrowUp", "PageUp", "Home"]);

/** An event's time and day, parsed once per event (the list is rendered for every new message). */
const TIMES = new WeakMap<ChatEvent, { ms: number; day: string }>();
function timeOf(ev: ChatEvent): { ms: number; day: string } {
  let t = TIMES.get(ev);
  if (!t) {
    const d = parseTs(ev.ts);
    t = { ms: d.getTime(), day: dayKey(d) };
    TIMES.set(ev, t);
  }
  return t;
}

interface CachedRow {
  deps: unknown[];
  el: React.ReactElement;
}

function sameDeps(a: unknown[], b: unknown[]): boolean {
  return a.length === b.length && a.every((x, i) => Object.is(x, b[i]));
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
  const [pinned, setPinned] = React.useState(true);
  const [flashSeq, setFlashSeq] = React.useState<number | null>(null);
  /** Follow the newest message (see the top of this file). */
  const follow = React.useRef(true);
  /** When the reader last asked to scroll up (wheel, key, touch), and whether a pointer holds the scrollbar or a finger the list. */
  const upIntent = React.useRef(-Infinity);
  const held = React.useRef(false);
  /** scrollTop at the last scroll event or pin: a smaller one means the list moved up. */
  const lastTop = React.useRef(0);
  const frame = React.useRef(0);
  const anchor = React.useRef<{ key: string; top: number } | null>(null);
  const scrollToSeq = React.useRef<number | null>(null);
  /** The row elements of the last render: one whose inputs did not change is the same element,
   * which React skips without comparing its props (a new message re-renders only its own row). */
  const rowCache = React.useRef(new Map<string, CachedRow>());

  const setFollow = React.useCallback((v: boolean) => {
    follow.current = v;
    setPinned(v);
  }, []);

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

  // Where the reader is: follow or not, pull history at an edge, mark read. `scrolled`: from a
  // scroll event (else from the frame after a render, when the list was just pinned).
  const check = React.useCallback((scrolled: boolean) => {
    const el = scrollRef.current;
    if (!el || !tl) return;
    const up = performance.now() - upIntent.current < INTENT_MS;
    // A scroll the list made itself (pinning, a trimmed window) while following: nothing to
    // decide, and no layout to read (the frame after the render checks the edges).
    if (scrolled && follow.current && !up && !held.current) return;
    const top = el.scrollTop;
    const fromBottom = el.scrollHeight - top - el.clientHeight;
    const bottom = fromBottom < BOTTOM_PX;
    const movedUp = top < lastTop.current - 1;
    lastTop.current = top;
    if (follow.current) {
      // The reader scrolled up (a drag or a finger: away from the bottom, too).
      if (scrolled && movedUp && (up || (held.current && !bottom))) setFollow(false);
    } else if (following && (up ? fromBottom <= 1 : bottom)) {
      setFollow(true); // back at the bottom of the newest messages
    }
    chat.atBottom = follow.current && following;
    if (top < EDGE_PX) {
      if (startIdx > 0) {
        const ns = Math.max(0, startIdx - STEP);
        const next: Win = { startSeq: items[ns]!.seq, endSeq: win.endSeq };
        if (endIdx - ns > MAX) {
          next.endSeq = items[ns + MAX - 1]!.seq;
          setFollow(false);
          chat.atBottom = false;
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
    if (chat.atBottom) chat.markActiveRead();
  }, [tl, items, startIdx, endIdx, win, following, convId, captureAnchor, setFollow]);

  // Once per animation frame after renders: pin to the bottom while following (one layout per
  // frame, however many messages arrived), then check where the reader is.
  const checkRef = React.useRef(check);
  React.useLayoutEffect(() => {
    checkRef.current = check;
  }, [check]);
  const schedule = React.useCallback(() => {
    if (frame.current) return;
    frame.current = requestAnimationFrame(() => {
      frame.current = 0;
      const el = scrollRef.current;
      if (el && follow.current && scrollToSeq.current === null) {
        el.scrollTop = el.scrollHeight;
        lastTop.current = el.scrollTop;
      }
      checkRef.current(false);
    });
  }, []);
  React.useEffect(() => () => cancelAnimationFrame(frame.current), []);

  // Set the start of the window once there is history; trim the top while following the end.
  React.useLayoutEffect(() => {
    if (!items.length) return;
    if (win.startSeq === undefined) {
      setWin((w) => ({ ...w, startSeq: items[Math.max(0, items.length - INITIAL)]!.seq }));
    } else if (win.endSeq === null && follow.current && endIdx - startIdx > MAX) {
      setWin((w) => ({ ...w, startSeq: items[Math.max(0, items.length - MAX + STEP)]!.seq }));
    }
  }, [items, win.startSeq, win.endSeq, startIdx, endIdx]);

  // After each render: show a jump target, or restore the anchor; then (in a frame) pin and check.
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
    }
    // Also keeps pulling history while the reader sits at an edge (a load changes nothing on screen).
    schedule();
  });

  // Content that changes size (images, rows) or a list that does: stay at the bottom while
  // following (after layout, so this write forces none).
  React.useEffect(() => {
    const el = scrollRef.current;
    const content = contentRef.current;
    if (!el || !content || typeof ResizeObserver === "undefined") return;
    const ro = new ResizeObserver(() => {
      if (follow.current && scrollToSeq.current === null) {
        el.scrollTop = el.scrollHeight;
        lastTop.current = el.scrollTop;
      }
    });
    ro.observe(content);
    ro.observe(el);
    return () => ro.disconnect();
  }, []);

  // The reader's intent to scroll up: only a scroll that follows one ends following.
  React.useEffect(() => {
    const el = scrollRef.current;
    if (!el) return;
    const up = () => {
      upIntent.current = performance.now();
    };
    const onWheel = (e: WheelEvent) => {
      if (e.deltaY < 0) up();
    };
    const onKey = (e: KeyboardEvent) => {
      if (UP_KEYS.has(e.key) || (e.key === " " && e.shiftKey)) up();
    };
    const onPointerDown = (e: PointerEvent) => {
      if (e.target === el) held.current = true; // the scrollbar
    };
    const onTouchStart = () => {
      held.current = true;
    };
    const release = () => {
      if (held.current) up(); // a fling goes on after the finger lifts
      held.current = false;
    };
    el.addEventListener("wheel", onWheel, { passive: true });
    el.addEventListener("keydown", onKey);
    el.addEventListener("pointerdown", onPointerDown);
    el.addEventListener("touchstart", onTouchStart, { passive: true });
    window.addEventListener("pointerup", release);
    window.addEventListener("pointercancel", release);
    el.addEventListener("touchend", release);
    el.addEventListener("touchcancel", release);
    return () => {
      el.removeEventListener("wheel", onWheel);
      el.removeEventListener("keydown", onKey);
      el.removeEventListener("pointerdown", onPointerDown);
      el.removeEventListener("touchstart", onTouchStart);
      window.removeEventListener("pointerup", release);
      window.removeEventListener("pointercancel", release);
      el.removeEventListener("touchend", release);
      el.removeEventListener("touchcancel", release);
    };
  }, []);

  // A jump (search result, reply quote): window around the message, scroll it to the middle, flash it.
  React.useEffect(() => {
    if (!jump) return;
    const idx = lowerBound(items, jump.seq);
    if (!items.length || idx >= items.length) return;
    const s = Math.max(0, idx - STEP);
    const e = Math.min(items.length, idx + STEP);
    setFollow(false);
    chat.atBottom = false;
    scrollToSeq.current = items[idx]!.seq;
    setWin({ startSeq: items[s]!.seq, endSeq: e >= items.length && !tl?.hasMoreAfter ? null : items[e - 1]!.seq });
    setFlashSeq(items[idx]!.seq);
    chat.clearJump();
    const t = setTimeout(() => setFlashSeq(null), 2600);
    return () => clearTimeout(t);
  }, [jump, items, tl?.hasMoreAfter, setFollow]);

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
    setFollow(true);
    if (tl?.hasMoreAfter || win.endSeq !== null) {
      setWin({ endSeq: null });
      if (tl?.hasMoreAfter) void chat.loadLatest(convId);
    } else {
      schedule();
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

  // The last item's seq is the highest: a sent message above it is not in the list yet.
  const outbox = React.useMemo(() => {
    if (!following) return NO_OUTBOX;
    const last = items[items.length - 1]?.seq ?? 0;
    const mine = outboxAll.filter(
      (m) => m.conv === convId && (m.state !== "sent" || m.seq === undefined || m.seq > last),
    );
    return mine.length ? mine : NO_OUTBOX;
  }, [outboxAll, convId, following, items]);

  // Searched from the read position (a binary search), not through the whole history.
  const hasTl = tl !== undefined;
  const readSeqAtOpen = tl?.readSeqAtOpen ?? 0;
  const hasMoreBefore = tl?.hasMoreBefore ?? false;
  const firstNew = React.useMemo(() => {
    if (!hasTl) return -1;
    let i = lowerBound(items, Math.floor(readSeqAtOpen) + 1);
    while (i < items.length && (items[i]!.sender === meId || items[i]!.kind !== "message")) i++;
    if (i >= items.length) return -1;
    return i > 0 || hasMoreBefore ? items[i]!.seq : -1;
  }, [items, readSeqAtOpen, hasMoreBefore, meId, hasTl]);

  const rows: React.ReactNode[] = [];
  const cache = rowCache.current;
  const nextCache = new Map<string, CachedRow>();
  const row = (key: string, deps: unknown[], make: () => React.ReactElement) => {
    const old = cache.get(key);
    const hit = old !== undefined && sameDeps(old.deps, deps);
    const entry = hit ? old : { deps, el: make() };
    nextCache.set(key, entry);
    rows.push(entry.el);
  };
  const archived = conv?.archived === true;
  let prev: ChatEvent | undefined;
  let prevTime: { ms: number; day: string } | undefined;
  for (let i = startIdx; i < endIdx; i++) {
    const ev = items[i]!;
    const time = timeOf(ev);
    const newDay = !prevTime || prevTime.day !== time.day;
    if (newDay) {
      const label = formatDay(new Date(time.ms));
      row(`d${ev.seq}`, [label], () => (
        <div key={`d${ev.seq}`} data-key={`d${ev.seq}`}>
          <DayDivider label={label} />
        </div>
      ));
    }
    if (ev.seq === firstNew) {
      row("new", [], () => (
        <div key="new" data-key="new">
          <NewDivider />
        </div>
      ));
    }
    if (ev.kind === "message") {
      const compact =
        !newDay &&
        ev.seq !== firstNew &&
        prev?.kind === "message" &&
        prev.sender === ev.sender &&
        time.ms - prevTime!.ms < GROUP_MS &&
        ev.reply_to == null;
      const mine = ev.sender === meId;
      const tick: Tick | undefined = mine
        ? ev.seq <= marks.read ? "read" : ev.seq <= marks.delivered ? "delivered" : "sent"
        : undefined;
      const patch = tl?.patches[ev.seq];
      const deleted = patch?.deleted || ev.deleted;
      const replyOriginal = ev.reply_to != null ? messageAt(items, ev.reply_to) : undefined;
      const replyPatch = ev.reply_to != null ? tl?.patches[ev.reply_to] : undefined;
      const canEdit = mine && canPost && !deleted;
      const canDelete = !deleted && !archived && (mine || canDeleteOthers);
      const flash = flashSeq === ev.seq;
      row(`e${ev.seq}`, [ev, patch, compact, mine, tick, replyOriginal, replyPatch, canEdit, canDelete, flash], () => (
        <div key={`e${ev.seq}`} data-key={`e${ev.seq}`}>
          <MessageRow
            ev={ev}
            patch={patch}
            compact={compact}
            mine={mine}
            tick={tick}
            replyOriginal={replyOriginal}
            replyPatch={replyPatch}
            canEdit={canEdit}
            canDelete={canDelete}
            flash={flash}
          />
        </div>
      ));
    } else {
      row(`e${ev.seq}`, [ev], () => (
        <div key={`e${ev.seq}`} data-key={`e${ev.seq}`}>
          <SystemRow ev={ev} />
        </div>
      ));
    }
    prev = ev;
    prevTime = time;
  }
  rowCache.current = nextCache;

  const onScroll = () => check(true);
  const loadingTop = tl?.loadingBefore;
  const showStart = tl?.loaded && !tl.failed && !tl.hasMoreBefore && startIdx === 0;
  return (
    <div className="relative min-h-0 flex-1">
      <div
        ref={scrollRef}
        onScroll={onScroll}
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
      {(!pinned || !following) && tl?.loaded && (
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
