// Parses docs/asyncapi.yaml (or the file given) with the official AsyncAPI parser, prints its
// diagnostics, and checks every message example against its payload schema (the v3 ruleset
// of the parser does not). Run by tests/contract/test_asyncapi.py.
//
//   npm ci --prefix tools/asyncapi --ignore-scripts
//   node tools/asyncapi/validate.mjs [--strict] [path/to/asyncapi.yaml]
//   node tools/asyncapi/validate.mjs --print-json [path]   # the YAML as JSON, nothing else
//
// Exit status: 0 valid; 1 an error-severity diagnostic or an example its schema refuses
// (--strict: also any warning); 2 the file cannot be read.

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { DiagnosticSeverity, Parser } from '@asyncapi/parser';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import yaml from 'js-yaml';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const strict = args.includes('--strict');
const printJson = args.includes('--print-json');
const positional = args.filter((a) => !a.startsWith('--'));
const file = path.resolve(positional[0] ?? path.join(here, '..', '..', 'docs', 'asyncapi.yaml'));
const shown = path.relative(process.cwd(), file) || file;

let text;
try {
  text = await readFile(file, 'utf8');
} catch (err) {
  console.error(`cannot read ${file}: ${err.message}`);
  process.exit(2);
}

if (printJson) {
  process.stdout.write(JSON.stringify(yaml.load(text)));
  process.exit(0);
}

const SEVERITY = {
  [DiagnosticSeverity.Error]: 'error',
  [DiagnosticSeverity.Warning]: 'warning',
  [DiagnosticSeverity.Information]: 'info',
  [DiagnosticSeverity.Hint]: 'hint',
};

const parser = new Parser();
const { document, diagnostics } = await parser.parse(text, { source: file });

for (const d of diagnostics) {
  const where = d.path && d.path.length ? d.path.join('.') : '(document)';
  const line = d.range ? `:${d.range.start.line + 1}` : '';
  const sev = SEVERITY[d.severity] ?? String(d.severity);
  console.log(`${shown}${line} ${sev} ${d.code}: ${d.message} [${where}]`);
}

// Examples: AsyncAPI schemas are JSON Schema draft-07 plus a few annotation keywords.
let badExamples = 0;
if (document !== undefined) {
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats(ajv);
  for (const message of document.allMessages()) {
    const payload = message.payload();
    if (payload === undefined) continue;
    const validate = ajv.compile(payload.json());
    for (const example of message.examples()) {
      if (!example.hasPayload()) continue;
      if (!validate(example.payload())) {
        badExamples += 1;
        const why = ajv.errorsText(validate.errors, { dataVar: 'payload' });
        console.log(`${shown} error example: message ${message.id()} example ${example.name() ?? '?'}: ${why}`);
      }
    }
  }
}

const count = (sev) => diagnostics.filter((d) => d.severity === sev).length;
const errors = count(DiagnosticSeverity.Error) + badExamples;
const warnings = count(DiagnosticSeverity.Warning);
const failed = errors > 0 || document === undefined || (strict && warnings > 0);

if (document !== undefined) {
  console.log(
    `${failed ? 'INVALID' : 'OK'}: AsyncAPI ${document.version()}, ${document.channels().length} channel(s), ` +
      `${document.operations().length} operation(s), ${document.allMessages().length} message(s); ` +
      `${errors} error(s), ${warnings} warning(s)`,
  );
} else {
  console.log(`INVALID: not parsed; ${errors} error(s), ${warnings} warning(s)`);
}
process.exit(failed ? 1 : 0);
