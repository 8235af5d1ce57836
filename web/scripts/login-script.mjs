// @ts-check
// After `next build`: the login page's only script. Compiles lib/login-page.ts on its own
// (TypeScript's transpileModule: no bundler, so the file may import nothing at run time; the
// type check is `npm run typecheck`), writes it to out/_next/static/login/<hash>.js (served as
// immutable like every hashed asset) and puts that name in out/login/index.html in place of the
// placeholder that pages/login.tsx renders. Fails the build if either is not as expected.
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import ts from "typescript";

const web = new URL("..", import.meta.url).pathname;
const SOURCE = join(web, "lib/login-page.ts");
const PAGE = join(web, "out/login/index.html");
const PLACEHOLDER = "/_next/static/login/login-page.js"; // LOGIN_SCRIPT in pages/login.tsx

/** @param {string} msg @returns {never} */
function fail(msg) {
  console.error(`login-script: ${msg}`);
  process.exit(1);
}

const source = readFileSync(SOURCE, "utf8");
const { outputText, diagnostics = [] } = ts.transpileModule(source, {
  fileName: "login-page.ts",
  reportDiagnostics: true,
  compilerOptions: {
    // The browsers of Next's default browserslist (Chrome 64, Safari 12, Firefox 67): `?.`,
    // `??` and class fields are lowered.
    target: ts.ScriptTarget.ES2017,
    module: ts.ModuleKind.ESNext,
    removeComments: true,
    strict: true,
  },
});
if (diagnostics.length) {
  fail(diagnostics.map((d) => ts.flattenDiagnosticMessageText(d.messageText, "\n")).join("\n"));
}
if (/^\s*import\b|\bimport\s*\(|\brequire\s*\(/m.test(outputText)) {
  fail(`${SOURCE} imports at run time: it is compiled alone, so it must not`);
}

const name = `${createHash("sha256").update(outputText).digest("hex").slice(0, 16)}.js`;
const dir = join(web, "out/_next/static/login");
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, name), outputText);

const html = readFileSync(PAGE, "utf8");
const attr = `src="${PLACEHOLDER}"`;
const count = html.split(attr).length - 1;
if (count !== 1) fail(`${PAGE}: expected the placeholder ${attr} once, found it ${count} times`);
writeFileSync(PAGE, html.replace(attr, `src="/_next/static/login/${name}"`));
console.log(`login-script: out/_next/static/login/${name} (${outputText.length} bytes) → out/login/index.html`);
