"use client";
import * as React from "react";
import {
  AlertCircle,
  Check,
  CheckCheck,
  Clock,
  CornerUpLeft,
  FileText,
  MoreHorizontal,
  Pencil,
  RotateCw,
  Trash2,
} from "lucide-react";
import type { Attachment, ChatEvent, OutgoingMessage } from "@chat/client";
import { Button } from "@/components/ui/button";
import {
  DropdownMenu,
  DropdownMenuContent,
  DropdownMenuItem,
  DropdownMenuTrigger,
} from "@/components/ui/dropdown-menu";
import { Tip } from "@/components/ui/tooltip";
import { UserAvatar } from "@/components/user-avatar";
import { chat, displayName, useChat, type Patch } from "@/lib/store";
import { formatBytes, formatFull, formatTime, parseTs } from "@/lib/format";
import { Linkified } from "@/lib/linkify";
import { cn } from "@/lib/utils";

export type Tick = "pending" | "sent" | "delivered" | "read" | "failed";

/** What a row can ask of its conversation view (reply, edit, delete, open an image). */
export interface RowActions {
  reply(ev: ChatEvent): void;
  edit(ev: ChatEvent, body: string): void;
  askDelete(ev: ChatEvent): void;
  openImage(att: Attachment): void;
  jumpTo(seq: number): void;
}

export const RowActionsContext = React.createContext<RowActions | null>(null);

function useRowActions(): RowActions {
  const a = React.useContext(RowActionsContext);
  if (!a) throw new Error("RowActionsContext missing");
  return a;
}

export function DayDivider({ label }: { label: string }) {
  return (
    <div className="relative my-3 flex items-center justify-center" role="separator" aria-label={label}>
      <div className="absolute inset-x-0 top-1/2 h-px bg-border" />
      <span className="relative rounded-full border bg-background px-3 py-0.5 text-xs font-medium text-muted-foreground">{label}</span>
    </div>
  );
}

export function NewDivider() {
  return (
    <div className="relative my-2 flex items-center" role="separator" aria-label="New messages">
      <div className="h-px flex-1 bg-destructive/60" />
      <span className="px-2 text-xs font-semibold text-marker">New</span>
    </div>
  );
}

export function TickIcon({ tick }: { tick: Tick }) {
  const label = { pending: "Sending", sent: "Sent", delivered: "Delivered", read: "Read", failed: "Not sent" }[tick];
  const cls = "h-3.5 w-3.5";
  const icon =
    tick === "pending" ? <Clock className={cls} /> :
    tick === "sent" ? <Check className={cls} /> :
    tick === "delivered" ? <CheckCheck className={cls} /> :
    tick === "read" ? <CheckCheck className={cn(cls, "text-primary")} /> :
    <AlertCircle className={cn(cls, "text-destructive")} />;
  return (
    <span role="img" aria-label={label} title={label} className="inline-flex text-muted-foreground">
      {icon}
    </span>
  );
}

function SenderName({ id }: { id: string }) {
  const name = useChat((s) => displayName(s.users, id));
  return <>{name}</>;
}

function systemText(ev: ChatEvent, name: (id: string | undefined) => string): string {
  const actor = name(ev.sender);
  const target = name(ev.user_id);
  const self = ev.sender === ev.user_id;
  switch (ev.kind as string) {
    case "member_joined":
      return self ? `${target} joined` : `${actor} added ${target}`;
    case "member_left":
      return self ? `${target} left` : `${actor} removed ${target}`;
    case "role_changed":
      return `${actor} made ${target} ${ev.role === "admin" ? "an admin" : ev.role === "owner" ? "the owner" : `a ${ev.role ?? "member"}`}`;
    case "conversation_updated": {
      const ch = ev.changes ?? {};
      const parts: string[] = [];
      if (ch.name !== undefined) parts.push(`renamed the channel to “${ch.name}”`);
      if (ch.topic !== undefined) parts.push(ch.topic ? `set the topic to “${ch.topic}”` : "cleared the topic");
      if (ch.description !== undefined) parts.push("changed the description");
      if (ch.archived !== undefined) parts.push(ch.archived ? "archived the conversation" : "unarchived the conversation");
      return `${actor} ${parts.join(", ") || "updated the conversation"}`;
    }
    default:
      return "";
  }
}

export const SystemRow = React.memo(function SystemRow({ ev }: { ev: ChatEvent }) {
  const users = useChat((s) => s.users);
  const text = systemText(ev, (id) => displayName(users, id));
  if (!text) return null;
  return (
    <div className="px-4 py-1 text-center text-xs text-muted-foreground" data-seq={ev.seq}>
      {text} · <time dateTime={ev.ts}>{formatTime(parseTs(ev.ts))}</time>
    </div>
  );
});

function AttachmentView({ att, conv, seq }: { att: Attachment; conv: string; seq: number }) {
  const actions = useRowActions();
  const [broken, setBroken] = React.useState(false);
  const onError = () => {
    setBroken(true);
    void chat.refreshMedia(conv, seq); // an expired signed URL: a fresh copy re-renders this
  };
  if (att.mime.startsWith("image/") && !broken) {
    const w = att.width ?? 320;
    const h = att.height ?? 240;
    const scale = Math.min(1, 320 / w, 240 / h);
    return (
      <button
        type="button"
        className="block overflow-hidden rounded-md border bg-muted focus-visible:ring-2 focus-visible:ring-ring"
        onClick={() => actions.openImage(att)}
        aria-label={`Open image ${att.name}`}
      >
        {/* eslint-disable-next-line @next/next/no-img-element */}
        <img
          src={att.thumbnail_url ?? att.url}
          alt={att.name}
          width={Math.round(w * scale)}
          height={Math.round(h * scale)}
          loading="lazy"
          decoding="async"
          className="block max-w-full object-cover"
          onError={onError}
        />
      </button>
    );
  }
  return (
    <a
      href={att.url}
      download={att.name}
      rel="noopener noreferrer"
      className="flex max-w-xs items-center gap-3 rounded-md border bg-card p-2 text-sm hover:bg-accent"
    >
      <FileText className="h-8 w-8 shrink-0 text-muted-foreground" aria-hidden="true" />
      <span className="min-w-0">
        <span className="block truncate font-medium">{att.name}</span>
        <span className="block text-xs text-muted-foreground">
          {broken ? "Preview unavailable · " : ""}
          {formatBytes(att.size)} · Download
        </span>
      </span>
    </a>
  );
}

function ReplyQuote({ seq, original, patch }: { seq: number; original?: ChatEvent; patch?: Patch }) {
  const actions = useRowActions();
  const deleted = patch?.deleted || original?.deleted;
  const body = deleted ? "Message deleted" : (patch?.body ?? original?.body ?? "");
  return (
    <button
      type="button"
      onClick={() => actions.jumpTo(seq)}
      className="mb-1 flex max-w-full items-center gap-1.5 rounded border-l-2 border-primary/60 bg-muted/60 px-2 py-1 text-left text-xs text-muted-foreground hover:bg-muted"
      aria-label="Go to the message this replies to"
    >
      <CornerUpLeft className="h-3 w-3 shrink-0" aria-hidden="true" />
      {original ? (
        <span className="min-w-0 truncate">
          <span className="font-semibold">
            <SenderName id={original.sender} />
          </span>
          : {body || (original.attachments?.length ? "Attachment" : "")}
        </span>
      ) : (
        <span>Reply to an earlier message</span>
      )}
    </button>
  );
}

export interface MessageRowProps {
  ev: ChatEvent;
  patch?: Patch;
  compact: boolean;
  mine: boolean;
  tick?: Tick;
  replyOriginal?: ChatEvent;
  replyPatch?: Patch;
  canDelete: boolean;
  canEdit: boolean;
  flash: boolean;
}

export const MessageRow = React.memo(function MessageRow({
  ev,
  patch,
  compact,
  mine,
  tick,
  replyOriginal,
  replyPatch,
  canDelete,
  canEdit,
  flash,
}: MessageRowProps) {
  const actions = useRowActions();
  const deleted = patch?.deleted === true || ev.deleted === true;
  const body = deleted ? null : (patch?.body ?? ev.body ?? "");
  const edited = !deleted && patch !== undefined && patch.editSeq > 0;
  const date = parseTs(ev.ts);
  const senderName = useChat((s) => displayName(s.users, ev.sender));
  return (
    <article
      data-seq={ev.seq}
      tabIndex={-1}
      aria-label={`${senderName}, ${formatTime(date)}`}
      className={cn(
        "group relative flex gap-3 px-4 outline-none hover:bg-muted/40 focus-within:bg-muted/40",
        compact ? "py-0.5" : "mt-2 pt-1.5 pb-0.5",
        flash && "animate-flash",
      )}
    >
      <div className="w-8 shrink-0">
        {!compact ? (
          <UserAvatar userId={ev.sender} name={senderName} />
        ) : (
          <time
            dateTime={ev.ts}
            className="invisible absolute left-1 top-1 whitespace-nowrap text-[10px] leading-5 text-muted-foreground group-focus-within:visible group-hover:visible"
          >
            {formatTime(date)}
          </time>
        )}
      </div>
      <div className={cn("min-w-0 flex-1", mine && "pr-5")}>
        {!compact && (
          <div className="flex items-baseline gap-2">
            <span className="truncate text-sm font-semibold">{senderName}</span>
            <time dateTime={ev.ts} title={formatFull(date)} className="shrink-0 text-xs text-muted-foreground">
              {formatTime(date)}
            </time>
          </div>
        )}
        {ev.reply_to !== undefined && ev.reply_to !== null && (
          <ReplyQuote seq={ev.reply_to} original={replyOriginal} patch={replyPatch} />
        )}
        {deleted ? (
          <p className="text-sm italic text-muted-foreground">This message was deleted.</p>
        ) : (
          <>
            {body ? (
              <p className="whitespace-pre-wrap break-words text-sm leading-relaxed">
                <Linkified text={body} />
                {edited && <span className="ml-1 text-xs text-muted-foreground">(edited)</span>}
              </p>
            ) : null}
            {ev.attachments && ev.attachments.length > 0 && (
              <div className="mt-1 flex flex-wrap gap-2">
                {ev.attachments.map((a) => (
                  <AttachmentView key={`${a.media_id}:${a.thumbnail_url ?? a.url}`} att={a} conv={ev.conv} seq={ev.seq} />
                ))}
              </div>
            )}
          </>
        )}
      </div>
      {mine && tick && (
        <div className="absolute bottom-0.5 right-3">
          <TickIcon tick={tick} />
        </div>
      )}
      {!deleted && ev.kind === "message" && (
        <div className="absolute -top-3 right-3 flex gap-0.5 rounded-md border bg-popover p-0.5 opacity-0 shadow-sm transition-opacity focus-within:opacity-100 group-hover:opacity-100">
          <Tip label="Reply">
            <Button variant="ghost" size="icon-sm" aria-label="Reply" onClick={() => actions.reply(ev)}>
              <CornerUpLeft aria-hidden="true" />
            </Button>
          </Tip>
          {(canEdit || canDelete) && (
            <DropdownMenu>
              <Tip label="More actions">
                <DropdownMenuTrigger asChild>
                  <Button variant="ghost" size="icon-sm" aria-label="More actions">
                    <MoreHorizontal aria-hidden="true" />
                  </Button>
                </DropdownMenuTrigger>
              </Tip>
              <DropdownMenuContent align="end">
                {canEdit && (
                  <DropdownMenuItem onSelect={() => actions.edit(ev, body ?? "")}>
                    <Pencil aria-hidden="true" /> Edit
                  </DropdownMenuItem>
                )}
                {canDelete && (
                  <DropdownMenuItem destructive onSelect={() => actions.askDelete(ev)}>
                    <Trash2 aria-hidden="true" /> Delete
                  </DropdownMenuItem>
                )}
              </DropdownMenuContent>
            </DropdownMenu>
          )}
        </div>
      )}
    </article>
  );
});

/** A message still in the outbox (optimistic): shown at the end until its event arrives. */
export function PendingRow({ m, meId }: { m: OutgoingMessage; meId: string }) {
  const name = useChat((s) => displayName(s.users, meId));
  const failed = m.state === "failed";
  return (
    <article
      className="flex gap-3 px-4 pt-1.5 pb-0.5"
      aria-label={`${name}, ${failed ? "not sent" : "sending"}`}
      data-client-msg-id={m.clientMsgId}
    >
      <div className="w-8 shrink-0">
        <UserAvatar userId={meId} name={name} />
      </div>
      <div className="min-w-0 flex-1">
        <div className="flex items-baseline gap-2">
          <span className="text-sm font-semibold">{name}</span>
          <time className="text-xs text-muted-foreground">{formatTime(new Date(m.createdAt))}</time>
        </div>
        <p className={cn("whitespace-pre-wrap break-words text-sm leading-relaxed", !failed && "opacity-70")}>
          <Linkified text={m.body} />
        </p>
        {m.attachments && m.attachments.length > 0 && (
          <p className="text-xs text-muted-foreground">
            {m.attachments.length} attachment{m.attachments.length > 1 ? "s" : ""}
          </p>
        )}
        <div className="flex items-center justify-end gap-2">
          {failed && (
            <>
              <span className="text-xs text-destructive">Not sent</span>
              <Button variant="ghost" size="sm" className="h-6 px-2" onClick={() => chat.retry(m.clientMsgId)}>
                <RotateCw aria-hidden="true" /> Retry
              </Button>
              <Button variant="ghost" size="sm" className="h-6 px-2" onClick={() => chat.discard(m.clientMsgId)}>
                <Trash2 aria-hidden="true" /> Discard
              </Button>
            </>
          )}
          <TickIcon tick={failed ? "failed" : m.state === "sent" ? "sent" : "pending"} />
        </div>
      </div>
    </article>
  );
}
