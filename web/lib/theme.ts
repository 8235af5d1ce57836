"use client";
import { useEffect, useState } from "react";

export type ThemeChoice = "system" | "light" | "dark";
const KEY = "chat-theme";

export function readTheme(): ThemeChoice {
  try {
    const v = localStorage.getItem(KEY);
    return v === "light" || v === "dark" ? v : "system";
  } catch {
    return "system";
  }
}

/** "system" leaves the colours to prefers-color-scheme (pure CSS); light/dark set a class on <html>. */
export function applyTheme(t: ThemeChoice): void {
  const root = document.documentElement;
  root.classList.remove("light", "dark");
  if (t !== "system") root.classList.add(t);
}

export function useTheme(): [ThemeChoice, (t: ThemeChoice) => void] {
  const [theme, setThemeState] = useState<ThemeChoice>("system");
  useEffect(() => setThemeState(readTheme()), []);
  const setTheme = (t: ThemeChoice) => {
    try {
      if (t === "system") localStorage.removeItem(KEY);
      else localStorage.setItem(KEY, t);
    } catch {
      /* private mode: the choice lasts for this page only */
    }
    applyTheme(t);
    setThemeState(t);
  };
  return [theme, setTheme];
}
