// Sum of out/_next/static/**/*.js, raw and gzip (level 9), and the first-load JS of each page.
import { readFileSync, readdirSync, statSync, existsSync } from "node:fs";
import { join, relative } from "node:path";
import { gzipSync } from "node:zlib";

const root = new URL("../out/", import.meta.url).pathname;
const staticDir = join(root, "_next/static");
if (!existsSync(staticDir)) {
  console.error("out/_next/static not found: run `npm run build` first");
  process.exit(1);
}

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

const gz = (buf) => gzipSync(buf, { level: 9 }).length;
const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
const sizes = new Map();
let raw = 0;
let zipped = 0;
for (const f of walk(staticDir).filter((f) => f.endsWith(".js"))) {
  const buf = readFileSync(f);
  const z = gz(buf);
  sizes.set(relative(root, f), z);
  raw += buf.length;
  zipped += z;
}
console.log(`all of out/_next/static/**/*.js: ${sizes.size} files, ${kb(raw)} raw, ${kb(zipped)} gzip`);

// First load per page: the scripts its HTML references.
for (const page of ["index.html", "login/index.html", "admin/index.html"]) {
  const p = join(root, page);
  if (!existsSync(p)) continue;
  const html = readFileSync(p, "utf8");
  // Scripts the page loads in a modern browser (the noModule polyfills are for old ones only).
  const tags = [...html.matchAll(/<script[^>]*src="\/(_next\/static\/[^"]+?\.js)"[^>]*>/g)];
  const srcs = new Set(tags.filter((m) => !/noModule/i.test(m[0])).map((m) => m[1]));
  let sum = 0;
  for (const s of srcs) sum += sizes.get(s) ?? 0;
  console.log(`first load of /${page.replace(/index\.html$/, "")}: ${srcs.size} scripts, ${kb(sum)} gzip`);
}
