import { spawn, type SpawnOptions } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { SystemError } from '../errors.js';

/** A command that exited non-zero (or could not start). */
export class CommandError extends SystemError {
  constructor(
    readonly argv: readonly string[],
    readonly code: number | null,
    readonly stderr: string,
    readonly stdout = '',
  ) {
    super(`${argv.join(' ')}: ${stderr.trim() || `exit status ${code}`}`);
  }
}

export interface RunOptions {
  /** Bytes written to the child's stdin, which is then closed. */
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Kill the child after this many milliseconds. */
  timeoutMs?: number;
  /** Do not throw on a non-zero exit. */
  allowFailure?: boolean;
  /** Sees the output as it comes (a long build's progress); it is still collected in the result. */
  onStdout?: (chunk: Buffer) => void;
  onStderr?: (chunk: Buffer) => void;
  /** Kills the child (SIGKILL) when aborted, e.g. when the client that asked for it went away. */
  signal?: AbortSignal;
  /**
   * Done when the process exits, not when its output pipes close: for a child that hands its
   * stdio on to a process that outlives it (`crun create` to the created container).
   */
  untilExit?: boolean;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

const PATH_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];
const resolved = new Map<string, string>();

/** Finds a binary once and caches its path. */
export function which(name: string): string | undefined {
  if (name.includes('/')) return name;
  const hit = resolved.get(name);
  if (hit) return hit;
  for (const dir of PATH_DIRS) {
    const p = `${dir}/${name}`;
    try {
      accessSync(p, constants.X_OK);
      resolved.set(name, p);
      return p;
    } catch {
      /* keep looking */
    }
  }
  return undefined;
}

/**
 * The one subprocess runner: argv arrays, never a shell. Tests may swap {@link setRunner}.
 */
export type Runner = (argv: readonly string[], opts?: RunOptions) => Promise<RunResult>;

const defaultRunner: Runner = (argv, opts = {}) =>
  new Promise((resolve, reject) => {
    const bin = which(argv[0]!) ?? argv[0]!;
    const spawnOpts: SpawnOptions = { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] };
    const child = spawn(bin, argv.slice(1), spawnOpts);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    if (opts.timeoutMs) timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.stdout!.on('data', (b: Buffer) => {
      out.push(b);
      opts.onStdout?.(b);
    });
    child.stderr!.on('data', (b: Buffer) => {
      err.push(b);
      opts.onStderr?.(b);
    });
    const abort = (): void => {
      child.kill('SIGKILL');
    };
    if (opts.signal?.aborted) abort();
    opts.signal?.addEventListener('abort', abort, { once: true });
    child.on('close', () => opts.signal?.removeEventListener('abort', abort));
    if (opts.untilExit) {
      // What was written before the exit is read first; then the pipes the survivor holds are let go.
      child.on('exit', () => setImmediate(() => (child.stdout!.destroy(), child.stderr!.destroy())));
    }
    child.on('error', (e) => {
      if (timer) clearTimeout(timer);
      reject(new CommandError(argv, null, e.message));
    });
    child.on('close', (code) => {
      if (timer) clearTimeout(timer);
      const res = { code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
      if (code !== 0 && !opts.allowFailure) reject(new CommandError(argv, code, res.stderr, res.stdout));
      else resolve(res);
    });
    child.stdin!.on('error', () => {});
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    else child.stdin!.end();
  });

let current: Runner = defaultRunner;

export function setRunner(r: Runner | undefined): void {
  current = r ?? defaultRunner;
}

export function run(argv: readonly string[], opts?: RunOptions): Promise<RunResult> {
  return current(argv, opts);
}
