"use client";
import * as React from "react";
import { Loader2, WifiOff } from "lucide-react";
import { Button } from "@/components/ui/button";
import { useChat } from "@/lib/store";

/** "Reconnecting… retry in Ns" from the client's connection state, counting down. */
export function ConnectionBanner() {
  const st = useChat((s) => s.connection);
  const phase = useChat((s) => s.phase);
  const [now, setNow] = React.useState(() => Date.now());
  const [showConnecting, setShowConnecting] = React.useState(false);

  React.useEffect(() => {
    if (st.status !== "reconnecting") return;
    setNow(Date.now());
    const t = setInterval(() => setNow(Date.now()), 250);
    return () => clearInterval(t);
  }, [st.status, st.retryAt]);

  // A first connection that takes a moment is shown only after a second (no flicker).
  React.useEffect(() => {
    setShowConnecting(false);
    if (st.status !== "connecting") return;
    const t = setTimeout(() => setShowConnecting(true), 1000);
    return () => clearTimeout(t);
  }, [st.status]);

  if (phase !== "ready" && phase !== "starting") return null;
  let text: string | null = null;
  let spinning = true;
  let reload = false;
  if (st.status === "reconnecting") {
    const secs = st.retryAt ? Math.ceil((st.retryAt - now) / 1000) : 0;
    text = secs > 0 ? `Reconnecting… retry in ${secs}s` : "Reconnecting…";
    spinning = secs <= 0;
  } else if (st.status === "connecting" && showConnecting) {
    text = "Connecting…";
  } else if (st.status === "closed") {
    text = "Disconnected.";
    spinning = false;
    reload = true;
  }
  if (!text) return <div role="status" aria-live="polite" className="sr-only" />;
  return (
    <div
      role="status"
      aria-live="polite"
      className="flex shrink-0 items-center justify-center gap-2 bg-warning px-3 py-1.5 text-sm font-medium text-warning-foreground"
    >
      {spinning ? <Loader2 className="h-4 w-4 animate-spin" aria-hidden="true" /> : <WifiOff className="h-4 w-4" aria-hidden="true" />}
      <span>{text}</span>
      {reload && (
        <Button size="sm" variant="outline" className="h-6 border-warning-foreground/40 bg-transparent px-2" onClick={() => window.location.reload()}>
          Reload
        </Button>
      )}
    </div>
  );
}
