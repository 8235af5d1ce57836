import { ChatError } from "@chat/client";
import { toast } from "./toast";

function seconds(ms: number | undefined): number {
  return Math.max(1, Math.ceil((ms ?? 1000) / 1000));
}

/** A server-written detail worth showing: short plain text (never a JSON blob). */
function detail(e: ChatError): string | null {
  const m = (e.message || "").trim();
  if (!m || m === e.code || m.length > 160 || /^[{[<]/.test(m) || /^HTTP \d+$/.test(m)) return null;
  return m.endsWith(".") ? m : `${m}.`;
}

/** What a person should read for an error: never raw JSON or a stack. (The static login page's
 * script, lib/login-page.ts, repeats this table: it imports nothing. Change both.) */
export function describeError(err: unknown): { title: string; description?: string } {
  const e = err instanceof ChatError ? err : null;
  if (!e) {
    if (err instanceof TypeError) return { title: "Can't reach the server", description: "Check your connection and try again." };
    return { title: "Something went wrong", description: "Please try again." };
  }
  const d = detail(e) ?? undefined;
  switch (e.code) {
    case "rate_limited":
      return e.retryAfterMs !== undefined
        ? { title: `Slow down — try again in ${seconds(e.retryAfterMs)}s` }
        : { title: "Slow down — too many requests", description: "Try again in a moment." };
    case "too_large":
      return { title: "Too large", description: d ?? "That message or file is over the size limit." };
    case "unsupported_media_type":
      return { title: "File type not supported", description: "Images (JPEG, PNG, GIF, WebP), PDF and plain text can be sent." };
    case "forbidden":
      return { title: "Not allowed", description: d ?? "You don't have permission to do that." };
    case "unavailable":
      return {
        title: "Service busy",
        description: e.retryAfterMs !== undefined ? `Try again in ${seconds(e.retryAfterMs)}s.` : "Try again in a moment.",
      };
    case "not_found":
      return { title: "Not found", description: "It may have been deleted, or you no longer have access." };
    case "conflict":
      return { title: "Conflict", description: d ?? "That clashes with something that already exists." };
    case "unauthorized":
      return { title: "Signed out", description: d ?? "Your session has ended — log in again." };
    case "invalid":
      return { title: "Not accepted", description: d ?? "Check what you entered and try again." };
    case "network":
      return { title: "Can't reach the server", description: "Check your connection; we'll keep trying." };
    default:
      return { title: "Something went wrong", description: d ?? "Please try again." };
  }
}

export function reportError(err: unknown): void {
  const { title, description } = describeError(err);
  toast({ title, description, variant: "destructive" });
}

export function errorCode(err: unknown): string | null {
  return err instanceof ChatError ? err.code : null;
}
