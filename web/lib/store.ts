"use client";
/**
 * The app's state: one store fed by the ChatClient's events and REST answers, read by
 * components through `useChat(selector)` (useSyncExternalStore). Every update replaces the
 * objects it changes, so a selector that returns a slice re-renders only when that slice changed.
 */
import { useRef, useSyncExternalStore } from "react";
import {
  ChatError,
  type ChatClient,
  type ChatEvent,
  type ConnectionState,
  type Conversation,
  type Member,
  type OutgoingMessage,
  type Presence,
  type Receipt,
  type Role,
  type Typing,
  type User,
} from "@chat/client";
import { reportError } from "./errors";
import { toast } from "./toast";

export type Me = User & { admin?: boolean };

/** An edit or delete applied to a message (by the message's seq). */
export interface Patch {
  body?: string | null;
  editSeq: number;
  deleted: boolean;
}

export interface Timeline {
  /** Displayable events (messages, membership and conversation changes), ascending seq. */
  items: ChatEvent[];
  patches: Record<number, Patch>;
  hasMoreBefore: boolean;
  /** The window does not reach the newest event (after a jump to an older message). */
  hasMoreAfter: boolean;
  loadingBefore: boolean;
  loadingAfter: boolean;
  loaded: boolean;
  /** read_seq when the conversation was opened: the "New messages" divider goes after it. */
  readSeqAtOpen: number;
  /** After a failed page: no automatic retry before this time (epoch ms). */
  retryAt: number;
  /** The first page failed (the list offers a retry). */
  failed: boolean;
}

export interface Jump {
  conv: string;
  seq: number;
  nonce: number;
}

export interface State {
  phase: "idle" | "starting" | "ready" | "signed-out";
  me: Me | null;
  connection: ConnectionState;
  conversations: Record<string, Conversation>;
  members: Record<string, Member[]>;
  users: Record<string, User>;
  presence: Record<string, Presence>;
  timelines: Record<string, Timeline>;
  receipts: Record<string, Record<string, Receipt>>;
  /** conv → user → epoch ms when the indicator expires. */
  typing: Record<string, Record<string, number>>;
  outbox: OutgoingMessage[];
  active: string | null;
  jump: Jump | null;
  blocks: string[];
  convsLoaded: boolean;
}

const DISPLAY_KINDS = new Set(["message", "member_joined", "member_left", "role_changed", "conversation_updated"]);
const PAGE = 50;

function initial(): State {
  return {
    phase: "idle",
    me: null,
    connection: { status: "connecting", attempt: 0 },
    conversations: {},
    members: {},
    users: {},
    presence: {},
    timelines: {},
    receipts: {},
    typing: {},
    outbox: [],
    active: null,
    jump: null,
    blocks: [],
    convsLoaded: false,
  };
}

/** Where the "New" divider goes when a conversation is opened: after the last read event
 * when there are unread ones, else nowhere (it appears later only for events that arrive
 * while the reader is away). */
function dividerAt(conv: Conversation | undefined): number {
  if (!conv) return 0;
  return conv.unread > 0 ? conv.read_seq : Math.max(conv.last_seq, conv.read_seq);
}

function emptyTimeline(readSeq: number): Timeline {
  return {
    items: [],
    patches: {},
    hasMoreBefore: true,
    hasMoreAfter: false,
    loadingBefore: false,
    loadingAfter: false,
    loaded: false,
    readSeqAtOpen: readSeq,
    retryAt: 0,
    failed: false,
  };
}

/** Merge events into a sorted, de-duplicated list (newer copies of a seq win). */
function mergeItems(items: ChatEvent[], add: ChatEvent[]): ChatEvent[] {
  const extra = add.filter((e) => DISPLAY_KINDS.has(e.kind));
  if (!extra.length) return items;
  const last = items[items.length - 1];
  if (extra.length === 1 && (!last || extra[0]!.seq > last.seq)) return [...items, extra[0]!];
  const bySeq = new Map<number, ChatEvent>();
  for (const e of items) bySeq.set(e.seq, e);
  for (const e of extra) bySeq.set(e.seq, e);
  return [...bySeq.values()].sort((a, b) => a.seq - b.seq);
}

function mergePatches(patches: Record<number, Patch>, events: ChatEvent[]): Record<number, Patch> {
  let out = patches;
  for (const e of events) {
    if ((e.kind !== "edit" && e.kind !== "delete") || e.target === undefined) continue;
    const prev = out[e.target];
    const deleted = e.kind === "delete" || e.deleted === true || prev?.deleted === true;
    if (e.kind === "edit" && prev && prev.editSeq >= e.seq && !deleted) continue;
    const next: Patch = {
      editSeq: e.kind === "edit" ? Math.max(e.seq, prev?.editSeq ?? 0) : (prev?.editSeq ?? 0),
      deleted,
      body: deleted ? null : e.kind === "edit" && (!prev || e.seq >= prev.editSeq) ? (e.body ?? null) : prev?.body,
    };
    if (out === patches) out = { ...patches };
    out[e.target] = next;
  }
  return out;
}

export const ROLE_RANK: Record<Role, number> = { guest: 0, member: 1, admin: 2, owner: 3 };

export class ChatStore {
  state: State = initial();
  private listeners = new Set<() => void>();
  private client: ChatClient | null = null;
  private unsubs: (() => void)[] = [];
  private pendingUsers = new Set<string>();
  private requestedUsers = new Set<string>();
  private userTimer: ReturnType<typeof setTimeout> | null = null;
  private typingTimer: ReturnType<typeof setInterval> | null = null;
  private fetchingConvs = new Set<string>();
  private notified = new Set<string>();
  private wasOpen = false;
  private jumpNonce = 0;
  /** Receipts for the events of one task (a burst after a gap is filled), sent once at its end. */
  private delivered = new Map<string, number>();
  private readActive = false;
  private receiptsQueued = false;
  /** Whether the active conversation is scrolled to its newest message (set by the list). */
  atBottom = true;

  subscribe = (fn: () => void): (() => void) => {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  };

  private set(patch: Partial<State> | ((s: State) => Partial<State>)): void {
    const p = typeof patch === "function" ? patch(this.state) : patch;
    this.state = { ...this.state, ...p };
    for (const l of this.listeners) l();
  }

  get chat(): ChatClient | null {
    return this.client;
  }

  /** Attach a signed-in client: subscribe to it, connect, and load the sidebar. */
  async start(client: ChatClient): Promise<void> {
    if (this.client === client) return;
    this.stop();
    this.client = client;
    this.set({ ...initial(), phase: "starting", me: client.user, connection: client.state, outbox: client.outbox() });
    this.unsubs.push(
      client.on("event", (e) => this.onEvent(e)),
      client.on("receipt", (r) => this.onReceipt(r)),
      client.on("typing", (t) => this.onTyping(t)),
      client.on("presence", (p) => this.onPresence(p)),
      client.on("state", (s) => this.onState(s)),
      client.on("outbox", (list) => this.onOutbox(list)),
      client.on("error", (e) => this.onClientError(e)),
    );
    client
      .me()
      .then((me) => this.set({ me: me as Me }))
      .catch(() => undefined);
    client
      .blocks()
      .then((blocks) => this.set({ blocks }))
      .catch(() => undefined);
    const connected = client.connect().catch((e: unknown) => {
      if (e instanceof ChatError && e.code === "unauthorized") this.set({ phase: "signed-out" });
      else reportError(e);
    });
    await this.loadConversations();
    this.set({ phase: this.state.phase === "signed-out" ? "signed-out" : "ready" });
    await connected;
  }

  stop(): void {
    for (const u of this.unsubs) u();
    this.unsubs = [];
    if (this.typingTimer) clearInterval(this.typingTimer);
    this.typingTimer = null;
    this.client = null;
    this.requestedUsers.clear();
    this.pendingUsers.clear();
    this.fetchingConvs.clear();
    this.wasOpen = false;
    this.state = initial();
    for (const l of this.listeners) l();
  }

  async logout(): Promise<void> {
    const c = this.client;
    this.stop();
    this.set({ phase: "signed-out" });
    await c?.close({ logout: true }).catch(() => undefined);
  }

  // --- loading ----------------------------------------------------------------------------

  async loadConversations(): Promise<void> {
    const c = this.client;
    if (!c) return;
    let list: Conversation[];
    try {
      list = await c.conversations();
    } catch (e) {
      if (e instanceof ChatError && e.code === "unauthorized") this.set({ phase: "signed-out" });
      else reportError(e);
      return;
    }
    if (c !== this.client) return;
    const conversations: Record<string, Conversation> = {};
    for (const conv of list) {
      const old = this.state.conversations[conv.id];
      // Keep a higher local read position (a read sent but not yet reflected).
      if (old && old.read_seq > conv.read_seq) conversations[conv.id] = { ...conv, read_seq: old.read_seq, unread: Math.max(0, conv.last_seq - old.read_seq) };
      else conversations[conv.id] = conv;
    }
    this.set({ conversations, convsLoaded: true });
    // Names of dms and groups come from their members.
    const need = list.filter((x) => x.kind !== "channel" && !this.state.members[x.id]).map((x) => x.id);
    await this.loadMembersOf(need);
    this.refreshPresence();
  }

  private async loadMembersOf(ids: string[]): Promise<void> {
    const queue = [...ids];
    const worker = async () => {
      for (let id = queue.shift(); id !== undefined; id = queue.shift()) await this.loadConversation(id);
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
  }

  /** The conversation object with its members (for names, roles and the member list). */
  async loadConversation(id: string): Promise<Conversation | null> {
    const c = this.client;
    if (!c || this.fetchingConvs.has(id)) return null;
    this.fetchingConvs.add(id);
    try {
      const conv = await c.conversation(id);
      if (c !== this.client) return null;
      const members = conv.members ?? [];
      const old = this.state.conversations[id];
      const merged: Conversation = old
        ? { ...old, ...conv, read_seq: Math.max(old.read_seq, conv.read_seq), last_seq: Math.max(old.last_seq, conv.last_seq) }
        : conv;
      merged.unread = Math.max(0, merged.last_seq - merged.read_seq);
      delete merged.members;
      this.set((s) => ({
        conversations: s.conversations[id] || conv.role ? { ...s.conversations, [id]: merged } : s.conversations,
        members: { ...s.members, [id]: members },
      }));
      this.ensureUsers(members.map((m) => m.user_id));
      return merged;
    } catch (e) {
      if (!(e instanceof ChatError && e.code === "not_found")) reportError(e);
      return null;
    } finally {
      this.fetchingConvs.delete(id);
    }
  }

  /** Fetch the users not known yet (batched: many calls in one tick make one request). */
  ensureUsers(ids: Iterable<string>): void {
    for (const id of ids) {
      if (!id || this.state.users[id] || this.requestedUsers.has(id)) continue;
      this.requestedUsers.add(id);
      this.pendingUsers.add(id);
    }
    if (!this.pendingUsers.size || this.userTimer) return;
    this.userTimer = setTimeout(() => {
      this.userTimer = null;
      void this.flushUsers();
    }, 20);
  }

  private async flushUsers(): Promise<void> {
    const c = this.client;
    const ids = [...this.pendingUsers];
    this.pendingUsers.clear();
    if (!c || !ids.length) return;
    for (let i = 0; i < ids.length; i += 50) {
      const chunk = ids.slice(i, i + 50);
      try {
        const users = await c.users({ ids: chunk });
        if (c !== this.client) return;
        // Ids the directory does not answer (deactivated, or no lookup by id): a placeholder.
        const found = new Set(users.map((u) => u.id));
        const missing = chunk.filter((id) => !found.has(id) && !this.state.users[id]);
        this.addUsers([...users, ...missing.map((id) => ({ id, username: "", display_name: "" }))]);
      } catch {
        for (const id of chunk) this.requestedUsers.delete(id); // asked again when next needed
      }
    }
  }

  addUsers(users: User[]): void {
    if (!users.length) return;
    this.set((s) => {
      const next = { ...s.users };
      for (const u of users) if (u.username || !next[u.id]) next[u.id] = u;
      return { users: next };
    });
  }

  refreshPresence(): void {
    const c = this.client;
    const me = this.state.me?.id;
    if (!c) return;
    const ids = new Set<string>();
    for (const [conv, members] of Object.entries(this.state.members)) {
      if (this.state.conversations[conv]?.kind === "channel" && conv !== this.state.active) continue;
      for (const m of members) if (m.user_id !== me) ids.add(m.user_id);
    }
    const all = [...ids];
    for (let i = 0; i < all.length; i += 100) {
      c.presence(all.slice(i, i + 100))
        .then((list) => {
          if (c !== this.client) return;
          this.set((s) => {
            const next = { ...s.presence };
            for (const p of list) next[p.user_id] = p;
            return { presence: next };
          });
        })
        .catch(() => undefined);
    }
  }

  // --- the active conversation ---------------------------------------------------------

  select(id: string | null): void {
    if (id === this.state.active) return;
    this.atBottom = true;
    this.set({ active: id, jump: null });
    if (!id) return;
    const conv = this.state.conversations[id];
    if (!this.state.members[id]) void this.loadConversation(id);
    else if (conv?.kind === "channel") this.refreshPresence();
    const tl = this.state.timelines[id];
    if (!tl || !tl.loaded || tl.hasMoreAfter) void this.loadLatest(id);
    else this.setTimeline(id, { readSeqAtOpen: dividerAt(conv) });
    void this.loadReceipts(id);
  }

  private setTimeline(id: string, patch: Partial<Timeline> | ((t: Timeline) => Partial<Timeline>)): void {
    this.set((s) => {
      const t = s.timelines[id] ?? emptyTimeline(dividerAt(s.conversations[id]));
      const p = typeof patch === "function" ? patch(t) : patch;
      return { timelines: { ...s.timelines, [id]: { ...t, ...p } } };
    });
  }

  private absorb(id: string, events: ChatEvent[]): void {
    const senders = new Set<string>();
    for (const e of events) {
      senders.add(e.sender);
      if (e.user_id) senders.add(e.user_id);
    }
    this.ensureUsers(senders);
    this.setTimeline(id, (t) => ({ items: mergeItems(t.items, events), patches: mergePatches(t.patches, events) }));
  }

  /** The newest page (the conversation's live end). */
  async loadLatest(id: string): Promise<void> {
    const c = this.client;
    if (!c) return;
    const readSeq = dividerAt(this.state.conversations[id]);
    this.setTimeline(id, (t) => ({
      ...(t.hasMoreAfter ? { items: [], patches: {}, hasMoreAfter: false } : {}),
      loadingBefore: true,
      readSeqAtOpen: readSeq,
    }));
    try {
      const page = await c.history(id, { limit: PAGE });
      if (c !== this.client) return;
      this.absorb(id, page.events);
      this.setTimeline(id, (t) => ({
        loaded: true,
        failed: false,
        loadingBefore: false,
        hasMoreBefore: t.items.length && t.loaded ? t.hasMoreBefore : page.has_more,
      }));
      const last = page.events[page.events.length - 1];
      if (last) this.bumpLastSeq(id, last.seq);
    } catch (e) {
      this.setTimeline(id, { loadingBefore: false, loaded: true, failed: true, retryAt: Date.now() + 5000 });
      reportError(e);
    }
  }

  async loadOlder(id: string): Promise<void> {
    const c = this.client;
    const t = this.state.timelines[id];
    if (!c || !t || t.loadingBefore || !t.hasMoreBefore || Date.now() < t.retryAt) return;
    const first = t.items[0]?.seq;
    if (first === undefined) return;
    this.setTimeline(id, { loadingBefore: true });
    try {
      const page = await c.history(id, { before: first, limit: PAGE });
      if (c !== this.client) return;
      this.absorb(id, page.events);
      this.setTimeline(id, { loadingBefore: false, hasMoreBefore: page.has_more && page.events.length > 0 });
    } catch (e) {
      this.setTimeline(id, { loadingBefore: false, retryAt: Date.now() + 5000 });
      reportError(e);
    }
  }

  /** After a jump: page towards the live end. */
  async loadNewer(id: string): Promise<void> {
    const c = this.client;
    const t = this.state.timelines[id];
    if (!c || !t || t.loadingAfter || !t.hasMoreAfter || Date.now() < t.retryAt) return;
    const last = t.items[t.items.length - 1]?.seq ?? 0;
    this.setTimeline(id, { loadingAfter: true });
    try {
      const page = await c.history(id, { after: last, limit: PAGE });
      if (c !== this.client) return;
      this.absorb(id, page.events);
      this.setTimeline(id, { loadingAfter: false, hasMoreAfter: page.has_more && page.events.length > 0 });
    } catch (e) {
      this.setTimeline(id, { loadingAfter: false, retryAt: Date.now() + 5000 });
      reportError(e);
    }
  }

  /** Show a message in context: load the history around it and ask the list to scroll there. */
  async jumpTo(id: string, seq: number): Promise<void> {
    const c = this.client;
    if (!c) return;
    if (this.state.active !== id) {
      this.atBottom = false;
      this.set({ active: id });
      if (!this.state.members[id]) void this.loadConversation(id);
      void this.loadReceipts(id);
    }
    const t = this.state.timelines[id];
    const have = t?.loaded && t.items.length > 0 && t.items[0]!.seq <= seq && t.items[t.items.length - 1]!.seq >= seq;
    if (!have) {
      try {
        const [before, after] = await Promise.all([
          c.history(id, { before: seq + 1, limit: PAGE }),
          c.history(id, { after: seq, limit: PAGE }),
        ]);
        if (c !== this.client) return;
        const readSeq = dividerAt(this.state.conversations[id]);
        this.set((s) => ({
          timelines: {
            ...s.timelines,
            [id]: {
              ...emptyTimeline(readSeq),
              items: mergeItems([], [...before.events, ...after.events]),
              patches: mergePatches({}, [...before.events, ...after.events]),
              hasMoreBefore: before.has_more,
              hasMoreAfter: after.has_more,
              loaded: true,
            },
          },
        }));
        this.ensureUsers([...before.events, ...after.events].map((e) => e.sender));
      } catch (e) {
        reportError(e);
        return;
      }
    }
    this.set({ jump: { conv: id, seq, nonce: ++this.jumpNonce } });
  }

  private mediaRefreshed = new Map<string, number>();

  /** Attachment URLs are signed for a few minutes: fetch the event again for fresh ones
   * (at most once a minute per message, so a really missing file does not loop). */
  async refreshMedia(id: string, seq: number): Promise<void> {
    const c = this.client;
    const key = `${id}:${seq}`;
    const last = this.mediaRefreshed.get(key) ?? 0;
    if (!c || Date.now() - last < 60_000) return;
    this.mediaRefreshed.set(key, Date.now());
    try {
      const page = await c.history(id, { before: seq + 1, limit: 1 });
      if (c !== this.client) return;
      const ev = page.events.find((e) => e.seq === seq);
      if (ev) this.setTimeline(id, (t) => ({ items: mergeItems(t.items, [ev]) }));
    } catch {
      /* the placeholder stays */
    }
  }

  clearJump(): void {
    if (this.state.jump) this.set({ jump: null });
  }

  async loadReceipts(id: string): Promise<void> {
    const c = this.client;
    if (!c) return;
    try {
      const list = await c.receipts(id);
      if (c !== this.client) return;
      this.set((s) => {
        const cur = { ...(s.receipts[id] ?? {}) };
        for (const r of list) {
          const old = cur[r.user_id];
          cur[r.user_id] = {
            conv: id,
            user_id: r.user_id,
            delivered_seq: Math.max(old?.delivered_seq ?? 0, r.delivered_seq),
            read_seq: Math.max(old?.read_seq ?? 0, r.read_seq),
          };
        }
        return { receipts: { ...s.receipts, [id]: cur } };
      });
    } catch {
      /* ticks stay at "sent" */
    }
  }

  /** Mark the active conversation read up to its newest event (when it is on screen). */
  markActiveRead(): void {
    const id = this.state.active;
    const c = this.client;
    if (!id || !c || typeof document === "undefined" || document.visibilityState !== "visible" || !this.atBottom) return;
    const conv = this.state.conversations[id];
    const t = this.state.timelines[id];
    if (!conv || !t || t.hasMoreAfter) return;
    const last = Math.max(conv.last_seq, t.items[t.items.length - 1]?.seq ?? 0);
    if (last <= conv.read_seq && conv.unread === 0) return;
    if (last > conv.read_seq) c.markRead(id, last);
    this.set((s) => ({ conversations: { ...s.conversations, [id]: { ...conv, read_seq: Math.max(conv.read_seq, last), unread: 0 } } }));
  }

  // --- actions -------------------------------------------------------------------------

  async send(conv: string, body: string, opts: { attachments?: string[]; replyTo?: number } = {}): Promise<void> {
    const c = this.client;
    if (!c) return;
    const o: { attachments?: string[]; replyTo?: number } = {};
    if (opts.attachments?.length) o.attachments = opts.attachments;
    if (opts.replyTo !== undefined) o.replyTo = opts.replyTo;
    try {
      await c.send(conv, body, o);
    } catch (e) {
      reportError(e);
    }
  }

  async edit(conv: string, seq: number, body: string): Promise<boolean> {
    const c = this.client;
    if (!c) return false;
    try {
      const ev = await c.edit(conv, seq, body);
      this.absorb(conv, [ev]);
      return true;
    } catch (e) {
      reportError(e);
      return false;
    }
  }

  async remove(conv: string, seq: number): Promise<void> {
    const c = this.client;
    if (!c) return;
    try {
      const ev = await c.remove(conv, seq);
      this.absorb(conv, [ev]);
    } catch (e) {
      reportError(e);
    }
  }

  /** Add (or replace) a conversation the caller just created or joined, and open it. */
  adopt(conv: Conversation): void {
    const { members, ...rest } = conv;
    this.set((s) => ({
      conversations: { ...s.conversations, [conv.id]: { ...s.conversations[conv.id], ...rest } as Conversation },
      members: members ? { ...s.members, [conv.id]: members } : s.members,
    }));
    if (members) this.ensureUsers(members.map((m) => m.user_id));
    else void this.loadConversation(conv.id);
    this.select(conv.id);
  }

  setBlocks(blocks: string[]): void {
    this.set({ blocks });
  }

  // --- client events -------------------------------------------------------------------

  private bumpLastSeq(id: string, seq: number): void {
    const conv = this.state.conversations[id];
    if (!conv || conv.last_seq >= seq) return;
    this.set((s) => ({ conversations: { ...s.conversations, [id]: { ...conv, last_seq: seq } } }));
  }

  private onEvent(e: ChatEvent): void {
    const me = this.state.me?.id;
    const conv = this.state.conversations[e.conv];
    const kind = e.kind as string;

    if (kind === "member_left" && e.user_id === me) {
      this.set((s) => {
        const { [e.conv]: _gone, ...rest } = s.conversations;
        return { conversations: rest, active: s.active === e.conv ? null : s.active };
      });
      return;
    }
    if (!conv) {
      // A conversation we were just added to (or created elsewhere).
      void this.loadConversation(e.conv);
    }

    if (e.sender !== me && e.kind === "message") this.delivered.set(e.conv, Math.max(e.seq, this.delivered.get(e.conv) ?? 0));
    // Sending implies having read everything before it (also when sent from another device).
    if (e.sender === me && e.kind === "message" && conv && e.seq > conv.read_seq) this.client?.markRead(e.conv, e.seq);

    this.set((s) => {
      const out: Partial<State> = {};
      const c0 = s.conversations[e.conv];
      if (c0) {
        let c1: Conversation = { ...c0, last_seq: Math.max(c0.last_seq, e.seq) };
        const visible = s.active === e.conv && this.atBottom && typeof document !== "undefined" && document.visibilityState === "visible";
        if (e.sender === me && e.kind === "message") {
          // Sending implies having read everything before it.
          c1 = { ...c1, read_seq: Math.max(c1.read_seq, e.seq), unread: 0 };
        } else if (e.seq > c0.read_seq && !visible && e.kind !== "edit" && e.kind !== "delete") {
          c1 = { ...c1, unread: c1.unread + 1 };
        }
        if (kind === "conversation_updated" && e.changes) {
          const ch = e.changes;
          c1 = { ...c1, ...(ch.name !== undefined ? { name: ch.name } : {}), ...(ch.topic !== undefined ? { topic: ch.topic } : {}), ...(ch.description !== undefined ? { description: ch.description } : {}), ...(ch.archived !== undefined ? { archived: ch.archived } : {}) };
        }
        if (kind === "role_changed" && e.user_id === me && e.role) c1 = { ...c1, role: e.role as Role };
        out.conversations = { ...s.conversations, [e.conv]: c1 };
      }
      const members = s.members[e.conv];
      if (members && e.user_id) {
        if (kind === "member_joined" && !members.some((m) => m.user_id === e.user_id)) {
          out.members = { ...s.members, [e.conv]: [...members, { user_id: e.user_id, role: (e.role as Role) ?? "member" }] };
        } else if (kind === "member_left") {
          out.members = { ...s.members, [e.conv]: members.filter((m) => m.user_id !== e.user_id) };
        } else if (kind === "role_changed" && e.role) {
          out.members = { ...s.members, [e.conv]: members.map((m) => (m.user_id === e.user_id ? { ...m, role: e.role as Role } : m)) };
        }
      }
      if (e.kind === "message") {
        const typing = s.typing[e.conv];
        if (typing?.[e.sender]) {
          const { [e.sender]: _t, ...rest } = typing;
          out.typing = { ...s.typing, [e.conv]: rest };
        }
      }
      const t = s.timelines[e.conv];
      if (t && !t.hasMoreAfter) {
        const away = !(s.active === e.conv && this.atBottom && typeof document !== "undefined" && document.visibilityState === "visible");
        const readSeqAtOpen =
          away && e.kind === "message" && e.sender !== me && c0 && t.readSeqAtOpen >= c0.read_seq && t.readSeqAtOpen >= e.seq - 1
            ? Math.min(t.readSeqAtOpen, e.seq - 1)
            : t.readSeqAtOpen;
        out.timelines = { ...s.timelines, [e.conv]: { ...t, readSeqAtOpen, items: mergeItems(t.items, [e]), patches: mergePatches(t.patches, [e]) } };
      } else if (t && (e.kind === "edit" || e.kind === "delete")) {
        out.timelines = { ...s.timelines, [e.conv]: { ...t, patches: mergePatches(t.patches, [e]) } };
      }
      return out;
    });
    this.ensureUsers([e.sender, ...(e.user_id ? [e.user_id] : [])]);
    if (e.conv === this.state.active) this.readActive = true;
    this.queueReceipts();
  }

  /** Mark read (the active conversation, when on screen) and delivered once after the events
   * of this task, not once per event. */
  private queueReceipts(): void {
    if (this.receiptsQueued) return;
    this.receiptsQueued = true;
    queueMicrotask(() => {
      this.receiptsQueued = false;
      if (this.readActive) {
        this.readActive = false;
        this.markActiveRead(); // implies delivered
      }
      const c = this.client;
      for (const [conv, seq] of this.delivered) c?.markDelivered(conv, seq);
      this.delivered.clear();
    });
  }

  private onReceipt(r: Receipt): void {
    const me = this.state.me?.id;
    this.set((s) => {
      const cur = s.receipts[r.conv] ?? {};
      const old = cur[r.user_id];
      const next: Receipt = {
        conv: r.conv,
        user_id: r.user_id,
        delivered_seq: Math.max(old?.delivered_seq ?? 0, r.delivered_seq),
        read_seq: Math.max(old?.read_seq ?? 0, r.read_seq),
      };
      const out: Partial<State> = { receipts: { ...s.receipts, [r.conv]: { ...cur, [r.user_id]: next } } };
      const conv = s.conversations[r.conv];
      if (r.user_id === me && conv && r.read_seq > conv.read_seq) {
        // Read on another device.
        out.conversations = { ...s.conversations, [r.conv]: { ...conv, read_seq: r.read_seq, unread: Math.max(0, conv.last_seq - r.read_seq) } };
      }
      return out;
    });
  }

  private onTyping(t: Typing): void {
    if (t.user_id === this.state.me?.id) return;
    this.set((s) => ({ typing: { ...s.typing, [t.conv]: { ...(s.typing[t.conv] ?? {}), [t.user_id]: Date.now() + t.expires_in_ms } } }));
    this.ensureUsers([t.user_id]);
    this.typingTimer ??= setInterval(() => this.pruneTyping(), 1000);
  }

  private pruneTyping(): void {
    const now = Date.now();
    let changed = false;
    const next: Record<string, Record<string, number>> = {};
    for (const [conv, users] of Object.entries(this.state.typing)) {
      const kept = Object.entries(users).filter(([, exp]) => exp > now);
      if (kept.length !== Object.keys(users).length) changed = true;
      if (kept.length) next[conv] = Object.fromEntries(kept);
    }
    if (changed) this.set({ typing: next });
    if (!Object.keys(next).length && this.typingTimer) {
      clearInterval(this.typingTimer);
      this.typingTimer = null;
    }
  }

  private onPresence(p: Presence): void {
    this.set((s) => ({ presence: { ...s.presence, [p.user_id]: p } }));
  }

  private onState(st: ConnectionState): void {
    this.set({ connection: st });
    if (st.status === "open") {
      // Live events flow from now on; a conversation created or joined between the list
      // fetched at start (or before a break) and this moment is only in a fresh list.
      void this.loadConversations();
      if (this.wasOpen) {
        // Back after a break: what the socket's sync cannot know about.
        for (const [id, t] of Object.entries(this.state.timelines)) {
          if (t.loaded && !t.hasMoreAfter) void this.catchUp(id);
        }
      }
      this.wasOpen = true;
      this.refreshPresence();
    }
  }

  private async catchUp(id: string): Promise<void> {
    const c = this.client;
    const t = this.state.timelines[id];
    if (!c || !t) return;
    let after = t.items[t.items.length - 1]?.seq ?? 0;
    for (let i = 0; i < 10; i++) {
      const page = await c.history(id, { after, limit: 200 }).catch(() => null);
      if (!page || c !== this.client) return;
      this.absorb(id, page.events);
      const last = page.events[page.events.length - 1];
      if (!page.has_more || !last) return;
      after = last.seq;
    }
    // Far behind: start again from the newest page.
    this.setTimeline(id, { items: [], patches: {}, loaded: false, hasMoreBefore: true });
    void this.loadLatest(id);
  }

  private onOutbox(list: OutgoingMessage[]): void {
    this.set({ outbox: list });
    for (const m of list) {
      const code = m.error?.code;
      if (!code) continue;
      const key = `${m.clientMsgId}:${code}:${m.state}`;
      if (this.notified.has(key)) continue;
      this.notified.add(key);
      if (m.state === "failed" || code === "rate_limited") reportError(m.error);
    }
  }

  private onClientError(e: ChatError): void {
    if (e.code === "unauthorized") {
      this.set({ phase: "signed-out" });
      return;
    }
    reportError(e);
  }

  retry(clientMsgId: string): void {
    this.client?.retry(clientMsgId);
  }

  discard(clientMsgId: string): void {
    this.client?.removeFromOutbox(clientMsgId).catch(() => undefined);
  }

  typingIn(conv: string): void {
    try {
      this.client?.typing(conv);
    } catch {
      /* typing is best effort */
    }
  }

  notify(title: string, description?: string): void {
    toast({ title, description });
  }
}

export const chat = new ChatStore();

const SERVER_STATE = initial();

export function useChat<T>(selector: (s: State) => T): T {
  return useSyncExternalStore(
    chat.subscribe,
    () => selector(chat.state),
    () => selector(SERVER_STATE),
  );
}

/** useChat for a selector that builds a new value: while `equal` says it did not change, the
 * previous one is returned (so the component does not re-render). */
export function useChatEq<T>(selector: (s: State) => T, equal: (a: T, b: T) => boolean): T {
  const last = useRef<{ v: T } | null>(null);
  const pick = (s: State) => {
    const v = selector(s);
    if (last.current && equal(last.current.v, v)) return last.current.v;
    last.current = { v };
    return v;
  };
  return useSyncExternalStore(
    chat.subscribe,
    () => pick(chat.state),
    () => selector(SERVER_STATE),
  );
}

const COUNTERS = new Set(["last_seq", "delivered_seq", "read_seq"]);

/** The same conversation but for its seq counters (which change with every event): what a
 * header or a sidebar item shows (the unread count is compared). */
export function sameConvShown(a: Conversation | undefined, b: Conversation | undefined): boolean {
  if (a === b) return true;
  if (!a || !b) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => COUNTERS.has(k) || Object.is(a[k], b[k]));
}

export function sameList<T>(a: readonly T[], b: readonly T[]): boolean {
  return a === b || (a.length === b.length && a.every((x, i) => Object.is(x, b[i])));
}

// --- derived helpers (pure) ----------------------------------------------------------------

export function displayName(users: Record<string, User>, id: string | undefined, meId?: string): string {
  if (!id) return "Someone";
  const u = users[id];
  const name = u ? u.display_name || u.username || `User ${id.slice(0, 6)}` : "…";
  return id === meId ? `${name} (you)` : name;
}

export function convTitle(s: Pick<State, "users" | "members" | "me">, conv: Conversation): string {
  if (conv.kind === "channel") return conv.name ?? "unnamed channel";
  const me = s.me?.id;
  const members = s.members[conv.id];
  if (!members) return conv.kind === "dm" ? "Direct message" : "Group";
  const others = members.filter((m) => m.user_id !== me);
  if (conv.kind === "dm") {
    if (!others.length) return `${displayName(s.users, me)} (you)`;
    return displayName(s.users, others[0]!.user_id);
  }
  const names = others.map((m) => displayName(s.users, m.user_id));
  if (names.length <= 3) return names.join(", ") || "Group";
  return `${names.slice(0, 3).join(", ")} +${names.length - 3}`;
}

/** The other user of a dm (undefined for notes-to-self and other kinds). */
export function dmPeer(s: Pick<State, "members" | "me">, conv: Conversation): string | undefined {
  if (conv.kind !== "dm") return undefined;
  return s.members[conv.id]?.find((m) => m.user_id !== s.me?.id)?.user_id;
}

export function sortConversations(s: Pick<State, "users" | "members" | "me">, list: Conversation[]): Conversation[] {
  const key = (c: Conversation) => convTitle(s, c).toLocaleLowerCase();
  return [...list].sort((a, b) => key(a).localeCompare(key(b)));
}
