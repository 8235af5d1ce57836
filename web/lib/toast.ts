"use client";
import { useSyncExternalStore } from "react";

export interface ToastItem {
  id: number;
  title?: string;
  description?: string;
  variant?: "default" | "destructive";
  duration?: number;
}

let items: ToastItem[] = [];
let nextId = 1;
const listeners = new Set<() => void>();
const emit = () => listeners.forEach((l) => l());

export function toast(t: Omit<ToastItem, "id">): number {
  const id = nextId++;
  // At most 4 at once; the same text twice in a row is shown once.
  if (items.some((x) => x.title === t.title && x.description === t.description)) return id;
  items = [...items.slice(-3), { ...t, id }];
  emit();
  return id;
}

export function dismissToast(id: number): void {
  items = items.filter((t) => t.id !== id);
  emit();
}

const subscribe = (l: () => void) => {
  listeners.add(l);
  return () => listeners.delete(l);
};
const EMPTY: ToastItem[] = [];

export function useToasts(): ToastItem[] {
  return useSyncExternalStore(subscribe, () => items, () => EMPTY);
}
