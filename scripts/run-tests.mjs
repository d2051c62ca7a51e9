#!/usr/bin/env node
// Runs the compiled tests with node's own runner: unit tests first (in parallel), then kernel tests
// (real nft/ip in throwaway namespaces, one file at a time), then end-to-end tests one file at a
// time (each starts a daemon). Output is streamed in TAP, which ends with the
// runner's summary lines (`# pass N`, `# fail N`); the summary names each failed or cancelled
// test (with its file and line, and its error's first line), and a last line `N passed, N failed`
// adds up all tiers. The exit status is non-zero if anything failed.
//
// Each test file's process loads scripts/test-exit-guard.mjs: a file whose process is still held
// open a few seconds after its tests ended (a handle a failed test never closed) fails then,
// naming what was open, instead of hanging until the 10-minute timeout cancels it.
//
// Usage: node scripts/run-tests.mjs [unit|kernel|e2e] [PATTERN...]
//   unit|kernel|e2e   run only that tier
//   PATTERN    run only files whose path contains one of the patterns (e.g. `smoke`)
// Build first (`npx tsc -p .`); this script runs what is in dist/.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DIST_TEST = join(REPO_ROOT, 'dist', 'test');
const EXIT_GUARD = join(REPO_ROOT, 'scripts', 'test-exit-guard.mjs');
/** A hung test must not eat CI's whole budget. */
const TEST_TIMEOUT_MS = 10 * 60 * 1000;

const tiers = [
  { name: 'unit', dir: join(DIST_TEST, 'unit'), flags: [`--import=${EXIT_GUARD}`] },
  { name: 'kernel', dir: join(DIST_TEST, 'kernel'), flags: ['--test-concurrency=1'] },
  { name: 'e2e', dir: join(DIST_TEST, 'e2e'), flags: ['--test-concurrency=1'] },
];

let args = process.argv.slice(2);
let only;
if (args[0] === 'unit' || args[0] === 'kernel' || args[0] === 'e2e') {
  only = args[0];
  args = args.slice(1);
}
const patterns = args;

/**
 * Node 20's `node --test` takes file paths, not globs: walk the folder ourselves. A compiled test
 * whose .ts source is gone (renamed or deleted; tsc never removes outputs) is left out.
 */
function testFiles(dir) {
  if (!existsSync(dir)) return [];
  const out = [];
  for (const ent of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, ent.name);
    if (ent.isDirectory()) out.push(...testFiles(p));
    else if (ent.isFile() && ent.name.endsWith('.test.js')) {
      const source = join(REPO_ROOT, relative(join(REPO_ROOT, 'dist'), p)).replace(/\.js$/, '.ts');
      if (existsSync(source)) out.push(p);
      else process.stderr.write(`run-tests: skipping ${relative(REPO_ROOT, p)}: no ${relative(REPO_ROOT, source)}\n`);
    }
  }
  return out.sort();
}

/**
 * Picks the failed and cancelled tests out of node's TAP: each `not ok` with the names of the
 * suites around it (`# Subtest:` lines, 4 spaces a level) and, from its YAML block, its location,
 * failure type and the first line of its error. Suites that failed only because a test in them did
 * (`subtestsFailed`) are left out: the test is named.
 */
class TapFailures {
  failed = [];
  cancelled = [];
  #stack = [];
  #open; // the `not ok` whose YAML block is being read
  line(line) {
    const sub = /^( *)# Subtest: (.*)$/.exec(line);
    if (sub) {
      this.#end();
      const depth = sub[1].length / 4;
      this.#stack.length = depth;
      this.#stack[depth] = sub[2];
      return;
    }
    const notOk = /^( *)not ok [0-9]+ - (.*?)(?: # (?:SKIP|TODO)\b.*)?$/.exec(line);
    if (notOk) {
      this.#end();
      const depth = notOk[1].length / 4;
      this.#open = { name: [...this.#stack.slice(0, depth), notOk[2]].join(' > '), indent: notOk[1] + '  ', type: '', location: '', error: '', errorBlock: false };
      return;
    }
    const t = this.#open;
    if (!t) return;
    if (line === `${t.indent}...`) return this.#end();
    if (!line.startsWith(t.indent)) return;
    const rest = line.slice(t.indent.length);
    if (t.errorBlock) {
      // The first line of an `error: |-` block.
      t.error = rest.trim();
      t.errorBlock = false;
      return;
    }
    const field = /^(location|failureType|error): (.*)$/.exec(rest);
    if (!field) return;
    const v = field[2].replace(/^'(.*)'$/, '$1').replace(/^"(.*)"$/, '$1');
    if (field[1] === 'location') t.location = v;
    else if (field[1] === 'failureType') t.type = v;
    else if (v === '|-' || v === '>-' || v === '|' || v === '>') t.errorBlock = true;
    else t.error = v;
  }
  #end() {
    const t = this.#open;
    this.#open = undefined;
    if (!t || t.type === 'subtestsFailed') return;
    const where = t.location ? relative(REPO_ROOT, t.location.replace(/^file:\/\//, '')) : '';
    const name = t.name.startsWith('/') ? relative(REPO_ROOT, t.name) : t.name;
    const text = `${name}${where && where !== relative(REPO_ROOT, t.name) + ':1:1' ? ` (${where})` : ''}${t.error ? `: ${t.error.slice(0, 300)}` : ''}`;
    (t.type === 'cancelledByParent' || t.type === 'testTimeoutFailure' ? this.cancelled : this.failed).push(text);
  }
  finish() {
    this.#end();
  }
}

/** Runs one tier, echoing its output and picking the counts and the failures out of the summary. */
function runTier(tier, files) {
  return new Promise((resolveRun) => {
    const argv = ['--test', '--test-reporter=tap', `--test-timeout=${TEST_TIMEOUT_MS}`, ...tier.flags, ...files];
    process.stderr.write(`\n== ${tier.name}: ${files.length} file(s)\n`);
    const child = spawn(process.execPath, argv, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    const counts = { pass: 0, fail: 0, cancelled: 0 };
    const failures = new TapFailures();
    let partial = '';
    child.stdout.on('data', (chunk) => {
      process.stdout.write(chunk);
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        const m = /^# (pass|fail|cancelled) ([0-9]+)$/.exec(line);
        if (m) counts[m[1]] = Number(m[2]);
        failures.line(line);
      }
    });
    child.on('close', (code, signal) => {
      if (partial) failures.line(partial);
      failures.finish();
      resolveRun({ code: code ?? (signal ? 1 : 0), counts, failures });
    });
    child.on('error', (err) => {
      process.stderr.write(`run-tests: ${err.message}\n`);
      failures.finish();
      resolveRun({ code: 1, counts, failures });
    });
  });
}

if (!existsSync(DIST_TEST)) {
  process.stderr.write(`run-tests: ${relative(REPO_ROOT, DIST_TEST)} is missing: build first with "npx tsc -p ."\n`);
  process.exit(1);
}

const summary = [];
const total = { pass: 0, fail: 0 };
let failed = false;
for (const tier of tiers) {
  if (only && tier.name !== only) continue;
  let files = testFiles(tier.dir);
  if (patterns.length) files = files.filter((f) => patterns.some((p) => relative(REPO_ROOT, f).includes(p)));
  if (!files.length) {
    summary.push(`${tier.name}: no test files`);
    continue;
  }
  const { code, counts, failures } = await runTier(tier, files);
  if (code !== 0) failed = true;
  total.pass += counts.pass;
  total.fail += counts.fail + counts.cancelled;
  summary.push(
    `${tier.name}: pass ${counts.pass}, fail ${counts.fail}` +
      (counts.cancelled ? `, cancelled ${counts.cancelled}` : '') +
      (code !== 0 ? ` (exit ${code})` : ''),
  );
  for (const t of failures.failed) summary.push(`  failed: ${t}`);
  // A file cancelled by its timeout after all its tests reported had its process held open (by a
  // handle a test left, typically one whose cleanup a failure skipped).
  for (const t of failures.cancelled) summary.push(`  cancelled: ${t}`);
}

process.stderr.write(`\n== summary\n${summary.map((s) => `  ${s}`).join('\n')}\n`);
// One plain closing line over both tiers (a tier that crashed without a summary counts as a failure).
if (failed && total.fail === 0) total.fail = 1;
process.stdout.write(`${total.pass} passed, ${total.fail} failed\n`);
process.exit(failed ? 1 : 0);
