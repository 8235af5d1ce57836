import type { AppProps } from "next/app";
import "@/app/globals.css";

/** The Pages Router holds one page, /login/ (see login.tsx); everything else is in app/. */
export default function LoginApp({ Component, pageProps }: AppProps) {
  return <Component {...pageProps} />;
}
