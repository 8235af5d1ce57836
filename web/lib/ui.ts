"use client";
import { useSyncExternalStore } from "react";

/** Which panel or dialog is open (one at a time), shared by the shell, sidebar and header. */
export type Panel = "search" | "create-channel" | "browse" | "new-message" | "members" | "sidebar" | "shortcuts" | null;

let panel: Panel = null;
const listeners = new Set<() => void>();

export function openPanel(p: Panel): void {
  panel = p;
  listeners.forEach((l) => l());
}

export function usePanel(): Panel {
  return useSyncExternalStore(
    (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    () => panel,
    () => null,
  );
}

/** Props for a Radix dialog bound to one panel. */
export function usePanelDialog(p: Exclude<Panel, null>): { open: boolean; onOpenChange: (open: boolean) => void } {
  const cur = usePanel();
  return { open: cur === p, onOpenChange: (open) => openPanel(open ? p : null) };
}
