"use client";
import * as React from "react";
import { FileText, Paperclip, Pencil, CornerUpLeft, SendHorizontal, X } from "lucide-react";
import type { ChatEvent, Media } from "@chat/client";
import { Button } from "@/components/ui/button";
import { Tip } from "@/components/ui/tooltip";
import { chat, displayName, useChat } from "@/lib/store";
import { reportError } from "@/lib/errors";
import { toast } from "@/lib/toast";
import { codePoints, formatBytes, MAX_BODY } from "@/lib/format";
import { cn } from "@/lib/utils";

export type ComposerMode = { kind: "new" } | { kind: "reply"; ev: ChatEvent } | { kind: "edit"; ev: ChatEvent; body: string };

interface Upload {
  key: string;
  name: string;
  size: number;
  progress: number;
  media?: Media;
}

const MAX_ATTACHMENTS = 10;
const MAX_FILE = 25 * 1024 * 1024;
/** Unsent text per conversation (kept while switching conversations). */
const drafts = new Map<string, string>();
let uploadSeq = 0;

export function Composer({
  convId,
  mode,
  setMode,
  disabledReason,
  onEditLast,
}: {
  convId: string;
  mode: ComposerMode;
  setMode: (m: ComposerMode) => void;
  disabledReason: string | null;
  onEditLast: () => void;
}) {
  const [text, setText] = React.useState(() => drafts.get(convId) ?? "");
  const [uploads, setUploads] = React.useState<Upload[]>([]);
  const ref = React.useRef<HTMLTextAreaElement>(null);
  const fileRef = React.useRef<HTMLInputElement>(null);
  const inputId = React.useId();
  const replyName = useChat((s) => (mode.kind === "reply" ? displayName(s.users, mode.ev.sender) : ""));

  // Entering edit mode loads the message's text; leaving it restores the draft.
  const prevMode = React.useRef<ComposerMode>(mode);
  React.useEffect(() => {
    if (mode.kind === "edit" && prevMode.current !== mode) {
      setText(mode.body);
      requestAnimationFrame(() => {
        const el = ref.current;
        if (el) {
          el.focus();
          el.setSelectionRange(el.value.length, el.value.length);
        }
      });
    } else if (mode.kind !== "edit" && prevMode.current.kind === "edit") {
      setText(drafts.get(convId) ?? "");
    }
    if (mode.kind === "reply") ref.current?.focus();
    prevMode.current = mode;
  }, [mode, convId]);

  React.useEffect(() => {
    if (mode.kind !== "edit") drafts.set(convId, text);
  }, [text, convId, mode.kind]);

  // Grow with the text up to a limit.
  React.useLayoutEffect(() => {
    const el = ref.current;
    if (!el) return;
    el.style.height = "auto";
    el.style.height = `${Math.min(el.scrollHeight, 200)}px`;
  }, [text]);

  const uploading = uploads.some((u) => !u.media);
  const length = codePoints(text.trim());
  const tooLong = length > MAX_BODY;

  const addFiles = (files: FileList | File[]) => {
    const c = chat.chat;
    if (!c) return;
    const list = Array.from(files);
    if (uploads.length + list.length > MAX_ATTACHMENTS) {
      toast({ title: `At most ${MAX_ATTACHMENTS} attachments per message`, variant: "destructive" });
      return;
    }
    for (const file of list) {
      if (file.size > MAX_FILE) {
        toast({ title: "Too large", description: `${file.name} is over ${formatBytes(MAX_FILE)}.`, variant: "destructive" });
        continue;
      }
      const key = `u${++uploadSeq}`;
      setUploads((u) => [...u, { key, name: file.name, size: file.size, progress: 0 }]);
      c.upload(file, file.name, (sent, total) => {
        setUploads((u) => u.map((x) => (x.key === key ? { ...x, progress: total ? sent / total : 0 } : x)));
      })
        .then((media) => setUploads((u) => u.map((x) => (x.key === key ? { ...x, media, progress: 1 } : x))))
        .catch((e: unknown) => {
          setUploads((u) => u.filter((x) => x.key !== key));
          reportError(e);
        });
    }
  };

  const submit = async () => {
    const body = text.trim();
    if (disabledReason) return;
    if (tooLong) {
      toast({ title: "Too long", description: `A message can have at most ${MAX_BODY} characters.`, variant: "destructive" });
      return;
    }
    if (mode.kind === "edit") {
      if (!body) {
        toast({ title: "A message can't be empty", description: "Delete it instead.", variant: "destructive" });
        return;
      }
      const ev = mode.ev;
      setMode({ kind: "new" });
      if (body !== mode.body.trim()) {
        const ok = await chat.edit(convId, ev.seq, body);
        if (!ok) setMode({ kind: "edit", ev, body }); // give the text back to try again
      }
      return;
    }
    if (uploading) {
      toast({ title: "Still uploading", description: "The message can be sent when the uploads finish." });
      return;
    }
    const attachments = uploads.map((u) => u.media!.media_id);
    if (!body && !attachments.length) return;
    const replyTo = mode.kind === "reply" ? mode.ev.seq : undefined;
    setText("");
    drafts.delete(convId);
    setUploads([]);
    setMode({ kind: "new" });
    chat.atBottom = true;
    void chat.send(convId, body, { attachments, replyTo });
  };

  const onKeyDown = (e: React.KeyboardEvent<HTMLTextAreaElement>) => {
    if (e.nativeEvent.isComposing) return;
    if (e.key === "Enter" && !e.shiftKey && !e.altKey && !e.ctrlKey && !e.metaKey) {
      e.preventDefault();
      void submit();
    } else if (e.key === "Escape" && mode.kind !== "new") {
      e.preventDefault();
      setMode({ kind: "new" });
    } else if (e.key === "ArrowUp" && !text && mode.kind === "new") {
      e.preventDefault();
      onEditLast();
    }
  };

  if (disabledReason) {
    return (
      <div className="border-t px-4 py-3 text-center text-sm text-muted-foreground" role="status">
        {disabledReason}
      </div>
    );
  }

  return (
    <div
      className="border-t bg-background px-3 pb-3 pt-2 sm:px-4"
      onDragOver={(e) => {
        if (e.dataTransfer.types.includes("Files")) e.preventDefault();
      }}
      onDrop={(e) => {
        if (e.dataTransfer.files.length) {
          e.preventDefault();
          addFiles(e.dataTransfer.files);
        }
      }}
    >
      {mode.kind !== "new" && (
        <div className="mb-2 flex items-center gap-2 rounded-md bg-muted px-3 py-1.5 text-xs">
          {mode.kind === "reply" ? <CornerUpLeft className="h-3.5 w-3.5" aria-hidden="true" /> : <Pencil className="h-3.5 w-3.5" aria-hidden="true" />}
          <span className="min-w-0 flex-1 truncate">
            {mode.kind === "reply" ? (
              <>
                Replying to <strong>{replyName}</strong>
                {mode.ev.body ? `: ${mode.ev.body}` : ""}
              </>
            ) : (
              "Editing message — Enter to save, Esc to cancel"
            )}
          </span>
          <Button variant="ghost" size="icon-sm" className="h-5 w-5" aria-label={mode.kind === "reply" ? "Cancel reply" : "Cancel editing"} onClick={() => setMode({ kind: "new" })}>
            <X aria-hidden="true" />
          </Button>
        </div>
      )}
      {uploads.length > 0 && (
        <ul className="mb-2 flex flex-wrap gap-2" aria-label="Attachments">
          {uploads.map((u) => (
            <li key={u.key} className="relative flex w-48 items-center gap-2 overflow-hidden rounded-md border bg-card p-1.5 text-xs">
              {u.media?.thumbnail_url ? (
                // eslint-disable-next-line @next/next/no-img-element
                <img src={u.media.thumbnail_url} alt="" className="h-8 w-8 shrink-0 rounded object-cover" />
              ) : (
                <FileText className="h-8 w-8 shrink-0 text-muted-foreground" aria-hidden="true" />
              )}
              <span className="min-w-0 flex-1">
                <span className="block truncate font-medium">{u.media?.name ?? u.name}</span>
                <span className="block text-muted-foreground">{u.media ? formatBytes(u.media.size) : `Uploading ${Math.round(u.progress * 100)}%`}</span>
              </span>
              <Button
                variant="ghost"
                size="icon-sm"
                className="h-5 w-5"
                aria-label={`Remove ${u.name}`}
                onClick={() => setUploads((list) => list.filter((x) => x.key !== u.key))}
              >
                <X aria-hidden="true" />
              </Button>
              {!u.media && (
                <progress
                  className="absolute inset-x-0 bottom-0 h-1 w-full appearance-none overflow-hidden [&::-moz-progress-bar]:bg-primary [&::-webkit-progress-bar]:bg-muted [&::-webkit-progress-value]:bg-primary"
                  value={u.progress}
                  max={1}
                  aria-label={`Uploading ${u.name}`}
                />
              )}
            </li>
          ))}
        </ul>
      )}
      <div className="flex items-end gap-2 rounded-lg border bg-background px-2 py-1.5 focus-within:ring-2 focus-within:ring-ring">
        <input
          ref={fileRef}
          type="file"
          multiple
          className="sr-only"
          tabIndex={-1}
          aria-hidden="true"
          accept="image/jpeg,image/png,image/gif,image/webp,application/pdf,text/plain"
          onChange={(e) => {
            if (e.target.files?.length) addFiles(e.target.files);
            e.target.value = "";
          }}
        />
        {mode.kind !== "edit" && (
          <Tip label="Attach files">
            <Button variant="ghost" size="icon-sm" aria-label="Attach files" onClick={() => fileRef.current?.click()}>
              <Paperclip aria-hidden="true" />
            </Button>
          </Tip>
        )}
        <label htmlFor={inputId} className="sr-only">
          Message
        </label>
        <textarea
          id={inputId}
          ref={ref}
          rows={1}
          value={text}
          placeholder="Message"
          className="max-h-[200px] min-h-7 flex-1 resize-none bg-transparent py-1 text-sm outline-none placeholder:text-muted-foreground focus-visible:ring-0 focus-visible:ring-offset-0"
          onChange={(e) => {
            setText(e.target.value);
            if (e.target.value.trim() && mode.kind !== "edit") chat.typingIn(convId);
          }}
          onKeyDown={onKeyDown}
          onPaste={(e) => {
            const files = Array.from(e.clipboardData.files);
            if (files.length && mode.kind !== "edit") {
              e.preventDefault();
              addFiles(files);
            }
          }}
          aria-describedby={tooLong ? `${inputId}-len` : undefined}
        />
        <Tip label={mode.kind === "edit" ? "Save" : "Send"}>
          <Button
            size="icon-sm"
            aria-label={mode.kind === "edit" ? "Save" : "Send"}
            disabled={(!text.trim() && !uploads.length) || tooLong}
            onClick={() => void submit()}
          >
            <SendHorizontal aria-hidden="true" />
          </Button>
        </Tip>
      </div>
      {length > MAX_BODY - 500 && (
        <p id={`${inputId}-len`} className={cn("mt-1 text-right text-xs", tooLong ? "text-destructive" : "text-muted-foreground")}>
          {length} / {MAX_BODY}
        </p>
      )}
    </div>
  );
}
