"use client";
import * as React from "react";
import dynamic from "next/dynamic";
import { Loader2 } from "lucide-react";
import { goToLogin, hasSessionHint } from "@/lib/session-hint";

function Loading() {
  return (
    <div className="h-dvh-safe flex items-center justify-center text-muted-foreground" role="status">
      <Loader2 className="mr-2 h-5 w-5 animate-spin" aria-hidden="true" /> Loading…
    </div>
  );
}

// The chat screen (and the client library) load only for a browser that may be signed in:
// a signed-out visit goes to the login page without downloading them.
const ChatApp = dynamic(() => import("@/components/chat-app").then((m) => m.ChatApp), {
  ssr: false,
  loading: Loading,
});

export default function Home() {
  const [signedIn, setSignedIn] = React.useState(false);
  React.useEffect(() => {
    if (hasSessionHint()) setSignedIn(true);
    else goToLogin();
  }, []);
  return signedIn ? <ChatApp /> : <Loading />;
}
