"use client";
import * as React from "react";
import { TooltipProvider } from "@/components/ui/tooltip";
import { Toaster } from "@/components/ui/toast";
import { applyTheme, readTheme } from "@/lib/theme";

export function Providers({ children }: { children: React.ReactNode }) {
  // The theme chosen in an earlier visit (system preference needs nothing: it is CSS).
  React.useEffect(() => applyTheme(readTheme()), []);
  return (
    <TooltipProvider delayDuration={400} skipDelayDuration={200}>
      {children}
      <Toaster />
    </TooltipProvider>
  );
}
