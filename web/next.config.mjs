// @ts-check
import { PHASE_DEVELOPMENT_SERVER } from "next/constants.js";

/** Static export: `next build` writes plain files to out/, served by the gateway at "/". */
/** @type {import("next").NextConfig} */
const base = {
  output: "export",
  trailingSlash: true, // /login/ → out/login/index.html (plain directory layout for any static server)
  images: { unoptimized: true },
  reactStrictMode: true,
  poweredByHeader: false,
  productionBrowserSourceMaps: false,
  experimental: {
    // @chat/client is bundled from ../libs/client-ts/src (outside this folder).
    externalDir: true,
    // The client library is ESM TypeScript importing "./x.js" for "./x.ts".
    extensionAlias: { ".js": [".ts", ".tsx", ".js"] },
  },
};

/**
 * `next dev` only: no static export, and /v1 and /ws are proxied to a local backend
 * (`.venv/bin/chat-run`, 127.0.0.1:8080 unless CHAT_BACKEND says otherwise; start it with
 * GATEWAY_ALLOWED_ORIGINS=http://localhost:3000, see README). Nothing here reaches the export.
 * @param {string} phase
 * @returns {import("next").NextConfig}
 */
export default function config(phase) {
  if (phase !== PHASE_DEVELOPMENT_SERVER) return base;
  const backend = process.env.CHAT_BACKEND ?? "http://127.0.0.1:8080";
  const { output: _output, ...dev } = base;
  return {
    ...dev,
    // /v1/... must reach the backend as written (no /v1/me → /v1/me/ redirect).
    skipTrailingSlashRedirect: true,
    async rewrites() {
      return [
        { source: "/v1/:path*", destination: `${backend}/v1/:path*` },
        { source: "/ws", destination: `${backend}/ws` },
      ];
    },
  };
}
