import { readFileSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { EngineClient, engineMessage, type EngineResponse } from './engine-client.js';
import type { PolicyRule, PolicySelector, StoredPolicy } from '../network/policies/policy-types.js';

const BASE = '/arca/v1/policies';

export const POLICY_USAGE = `Usage: arca [-H unix:///path] policy COMMAND

Network policies of the daemon at -H, else DOCKER_HOST, else unix:///var/run/arca.sock.

Commands:
  apply -f FILE|- [-p PROJECT]   Create or replace every policy in the file (YAML, JSON, or a compose
                                 file's x-arca-policies; -p: the compose project, default as compose's)
  ls [--format json]             List policies
  inspect NAME...                Show policies as JSON, with their counters
  rm NAME...                     Remove policies
  check --from CONTAINER --to CONTAINER|ADDR --port PORT[/PROTO]
                                 Would this connection be allowed? Exit status 0 allowed, 1 denied, 2 error
`;

/** What a command writes and exits with; kept apart from the process so tests can call it. */
export interface CliIo {
  out(s: string): void;
  err(s: string): void;
  /** stdin's whole text (`-f -`). */
  stdin(): string;
}

const processIo: CliIo = {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  stdin: () => readFileSync(0, 'utf8'),
};

class UsageError extends Error {}

function daemonError(r: EngineResponse): Error {
  return new Error(`Error response from daemon: ${engineMessage(r)}`);
}

/** `-p`'s default for a compose file, as docker-compose 1.29 derives it: COMPOSE_PROJECT_NAME, else the folder's name. */
export function defaultProject(file: string): string {
  const env = process.env['COMPOSE_PROJECT_NAME'];
  const dir = file === '-' ? process.cwd() : dirname(resolve(file));
  return (env || basename(dir)).toLowerCase().replace(/[^-_a-z0-9]/g, '');
}

function selectorText(s: PolicySelector | undefined): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(s?.labels ?? {})) parts.push(`${k}=${v}`);
  if (s?.names?.length) parts.push(`names=${s.names.join('|')}`);
  if (s?.service) parts.push(`service=${s.service}`);
  return parts.length ? parts.join(',') : '*';
}

/** `-`: not isolated in that direction; `deny all`: isolated with no rule; else the rule count. */
function rulesText(rules: PolicyRule[] | undefined): string {
  if (!rules) return '-';
  if (!rules.length) return 'deny all';
  return rules.length === 1 ? '1 rule' : `${rules.length} rules`;
}

/** Columns as docker's tabwriter lays them out: each as wide as its longest cell, 3 spaces apart. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]! + 3))).join('').trimEnd() + '\n').join('');
}

async function apply(client: EngineClient, argv: string[], io: CliIo): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { file: { type: 'string', short: 'f' }, project: { type: 'string', short: 'p' } }, strict: true });
  const file = values.file;
  if (!file) throw new UsageError('apply: -f FILE (or -f - for stdin) is required');
  const text = file === '-' ? io.stdin() : readFileSync(file, 'utf8');
  let project = values.project;
  // A compose file's networks are the project's: default the project as docker-compose 1.29 would
  // (a top-level `name:` is the daemon's to read).
  if (!project && /^x-arca-policies\s*:/m.test(text) && !/^name\s*:/m.test(text)) project = defaultProject(file);
  const q = project ? `?project=${encodeURIComponent(project)}` : '';
  const r = await client.call('POST', `${BASE}/apply${q}`, text);
  if (r.status !== 200) throw daemonError(r);
  for (const x of r.body as Array<{ Name: string; Result: string }>) io.out(`policy/${x.Name} ${x.Result}\n`);
  return 0;
}

async function ls(client: EngineClient, argv: string[], io: CliIo): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { format: { type: 'string' }, quiet: { type: 'boolean', short: 'q' } }, strict: true });
  const r = await client.call('GET', BASE);
  if (r.status !== 200) throw daemonError(r);
  const list = r.body as StoredPolicy[];
  if (values.quiet) {
    for (const p of list) io.out(`${p.name}\n`);
  } else if (values.format === 'json') {
    // docker's `--format json`: one object per line.
    for (const p of list) io.out(JSON.stringify(p) + '\n');
  } else if (values.format !== undefined && values.format !== 'table') {
    throw new UsageError(`ls: unsupported --format "${values.format}" (table, json)`);
  } else {
    const rows = [['NAME', 'NETWORK', 'SELECT', 'INGRESS', 'EGRESS']];
    for (const p of list) rows.push([p.name, p.network, selectorText(p.select), rulesText(p.ingress), rulesText(p.egress)]);
    io.out(table(rows));
  }
  return 0;
}

async function inspect(client: EngineClient, names: string[], io: CliIo): Promise<number> {
  if (!names.length) throw new UsageError('inspect: at least one NAME is required');
  const found: unknown[] = [];
  let status = 0;
  for (const name of names) {
    const r = await client.call('GET', `${BASE}/${encodeURIComponent(name)}`);
    if (r.status === 200) found.push(r.body);
    else {
      io.err(r.status === 404 ? `Error: No such policy: ${name}\n` : `${daemonError(r).message}\n`);
      status = 1;
    }
  }
  // docker inspect's layout: an array, 4-space indent, printed even when some names failed.
  io.out(JSON.stringify(found, null, 4) + '\n');
  return status;
}

async function rm(client: EngineClient, names: string[], io: CliIo): Promise<number> {
  if (!names.length) throw new UsageError('rm: at least one NAME is required');
  let status = 0;
  for (const name of names) {
    const r = await client.call('DELETE', `${BASE}/${encodeURIComponent(name)}`);
    if (r.status === 204) io.out(`${name}\n`);
    else {
      io.err(`${daemonError(r).message}\n`);
      status = 1;
    }
  }
  return status;
}

async function check(client: EngineClient, argv: string[], io: CliIo): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { from: { type: 'string' }, to: { type: 'string' }, port: { type: 'string' } }, strict: true });
  if (!values.from || !values.to || !values.port) throw new UsageError('check: --from, --to and --port are required');
  const r = await client.call('POST', `${BASE}/check`, { from: values.from, to: values.to, port: values.port });
  if (r.status !== 200) throw daemonError(r);
  const a = r.body as { Allowed: boolean; DecidedBy: Array<{ Policy: string; Direction: string; Rule?: number }>; Reason: string };
  io.out(`${a.Allowed ? 'allowed' : 'denied'}\n`);
  for (const x of a.DecidedBy) io.out(`  ${x.Policy} (${x.Direction}${x.Rule !== undefined ? ` rule ${x.Rule}` : ''})\n`);
  if (a.Reason) io.out(`  ${a.Reason}\n`);
  return a.Allowed ? 0 : 1;
}

/**
 * `arca policy ...`; returns the exit status. `host` is a `-H` given before `policy`; one given
 * after it wins.
 */
export async function runPolicy(argv: string[], host?: string, io: CliIo = processIo): Promise<number> {
  let args = argv;
  // `-H` may also come right after `policy`, as in `arca policy -H unix:///x ls`.
  while (args[0] === '-H' || args[0] === '--host' || args[0]?.startsWith('--host=')) {
    if (args[0].startsWith('--host=')) {
      host = args[0].slice('--host='.length);
      args = args.slice(1);
    } else {
      host = args[1];
      args = args.slice(2);
    }
  }
  const [sub, ...rest] = args;
  const failStatus = sub === 'check' ? 2 : 1;
  try {
    if (sub === undefined || sub === 'help' || sub === '--help' || sub === '-h') {
      io.out(POLICY_USAGE);
      return 0;
    }
    const client = new EngineClient(host);
    switch (sub) {
      case 'apply':
        return await apply(client, rest, io);
      case 'ls':
      case 'list':
        return await ls(client, rest, io);
      case 'inspect':
        return await inspect(client, rest, io);
      case 'rm':
      case 'remove':
        return await rm(client, rest, io);
      case 'check':
        return await check(client, rest, io);
      default:
        throw new UsageError(`unknown command "${sub}"`);
    }
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    io.err(`${msg.startsWith('Error') ? msg : `arca policy: ${msg}`}\n${e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') ? `\n${POLICY_USAGE}` : ''}`);
    return e instanceof UsageError ? 2 : failStatus;
  }
}
