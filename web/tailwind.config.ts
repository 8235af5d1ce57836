import type { Config } from "tailwindcss";

const v = (name: string) => `hsl(var(--${name}) / <alpha-value>)`;

export default {
  // Colours are CSS variables (app/globals.css): light by default, dark from
  // prefers-color-scheme, and the .light / .dark class on <html> when the user picked one.
  darkMode: ["class", ".dark"],
  content: ["./app/**/*.{ts,tsx}", "./pages/**/*.{ts,tsx}", "./components/**/*.{ts,tsx}", "./lib/**/*.{ts,tsx}"],
  theme: {
    extend: {
      colors: {
        border: v("border"),
        input: v("input"),
        ring: v("ring"),
        background: v("background"),
        foreground: v("foreground"),
        primary: { DEFAULT: v("primary"), foreground: v("primary-foreground") },
        secondary: { DEFAULT: v("secondary"), foreground: v("secondary-foreground") },
        muted: { DEFAULT: v("muted"), foreground: v("muted-foreground") },
        accent: { DEFAULT: v("accent"), foreground: v("accent-foreground") },
        destructive: { DEFAULT: v("destructive"), foreground: v("destructive-foreground") },
        marker: v("marker"),
        popover: { DEFAULT: v("popover"), foreground: v("popover-foreground") },
        card: { DEFAULT: v("card"), foreground: v("card-foreground") },
        sidebar: { DEFAULT: v("sidebar"), foreground: v("sidebar-foreground") },
        highlight: v("highlight"),
        online: v("online"),
        warning: { DEFAULT: v("warning"), foreground: v("warning-foreground") },
      },
      borderRadius: {
        lg: "var(--radius)",
        md: "calc(var(--radius) - 2px)",
        sm: "calc(var(--radius) - 4px)",
      },
      fontFamily: {
        sans: [
          "system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial",
          "Noto Sans", "sans-serif", "Apple Color Emoji", "Segoe UI Emoji",
        ],
        mono: ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "Liberation Mono", "monospace"],
      },
      keyframes: {
        "fade-in": { from: { opacity: "0" }, to: { opacity: "1" } },
        "flash": { "0%, 60%": { backgroundColor: "hsl(var(--highlight) / 0.55)" }, "100%": { backgroundColor: "transparent" } },
      },
      animation: {
        "fade-in": "fade-in 150ms ease-out",
        "flash": "flash 2.5s ease-out",
      },
    },
  },
  plugins: [],
} satisfies Config;
