import { readFileSync } from 'node:fs';
import { logTail as lastLines } from '../../../../sys/proc-files.js';
import { run } from '../../../../sys/runner.js';

/** How one OVS/OVN daemon of the stack is started and recognised. */
export interface StackProcessSpec {
  /** The name shown in status and logs (`ovsdb-server-nb`, `ovs-vswitchd`, ...). */
  name: string;
  /** The binary, looked up on PATH by the runner. */
  bin: string;
  /** Our pidfile: its path in the command line is how a process is known to be ours. */
  pidfile: string;
  /** Its log file (the last lines go into the reason of a failed start). */
  logFile: string;
  /** Arguments after the binary; `--pidfile`, `--detach`, `--no-chdir` and `--log-file` are added. */
  args: string[];
  /** A netns path to run it in (through nsenter, which joins only the network namespace). */
  netns?: string;
}

/** What /proc says about a pid, enough to tell it from a later process that reuses the number. */
interface ProcIdentity {
  pid: number;
  /** Field 22 of /proc/<pid>/stat, in clock ticks since boot. */
  startTime: string;
}

const START_TIMEOUT_MS = 10_000;
const STOP_GRACE_MS = 1500;

/**
 * One daemon of the OVN stack. It is started with OVS's `--detach` (the start command returns once
 * the daemon is ready, and the daemon outlives us), found again through its pidfile plus its
 * command line naming that pidfile, and watched by pid: no child handle is kept, so a new arca
 * daemon watches an adopted process exactly as one it started.
 */
export class StackProcess {
  private identity?: ProcIdentity;
  /** Times the process was brought back. */
  restarts = 0;
  /** Why the last start failed. */
  lastError?: string;
  /** When it was last found dead or failed to start (ms since epoch), newest last. */
  readonly failures: number[] = [];

  constructor(readonly spec: StackProcessSpec) {}

  get name(): string {
    return this.spec.name;
  }

  get pid(): number | undefined {
    return this.identity?.pid;
  }

  /** The full argv of a start. */
  argv(): string[] {
    const s = this.spec;
    const own = [s.bin, ...s.args, `--pidfile=${s.pidfile}`, '--detach', '--no-chdir', `--log-file=${s.logFile}`, '-vconsole:off'];
    return s.netns ? ['nsenter', `--net=${s.netns}`, '--', ...own] : own;
  }

  /**
   * Looks for a running process of ours through the pidfile; remembers it when found. A pidfile
   * left by a dead process, or naming a pid now used by something else, finds nothing.
   */
  adopt(): number | undefined {
    this.identity = undefined;
    const pid = readPidfile(this.spec.pidfile);
    if (pid === undefined) return undefined;
    const id = identify(pid);
    if (!id || !ownedBy(pid, this.spec.pidfile)) return undefined;
    this.identity = id;
    return pid;
  }

  /** Whether the process we know is still the one running (not gone, not a zombie, not a reused pid). */
  alive(): boolean {
    const known = this.identity;
    if (!known) return false;
    const now = identify(known.pid);
    return now !== undefined && now.startTime === known.startTime;
  }

  /** Forgets the process (it died, or we stop watching). */
  forget(): void {
    this.identity = undefined;
  }

  /**
   * Starts it and waits until it reports ready (OVS's `--detach` parent exits then).
   * @param env the OVS_* and OVN_* folders of the stack
   */
  async start(env: NodeJS.ProcessEnv): Promise<number> {
    this.identity = undefined;
    const argv = this.argv();
    const r = await run(argv, { env, allowFailure: true, timeoutMs: START_TIMEOUT_MS, untilExit: true }).catch((e: Error) => ({
      code: -1,
      stdout: '',
      stderr: e.message,
    }));
    const pid = r.code === 0 ? this.adopt() : undefined;
    if (pid === undefined) {
      // The start's own stderr says why (its first line only announces the log file); else the log does.
      const said = r.stderr
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l && !/\|vlog\|INFO\|opened log file/.test(l));
      const why = said.at(-1) || lastLines(this.spec.logFile, 1) || `exit status ${r.code}`;
      this.lastError = why;
      throw new Error(`${this.name} did not start: ${why}`);
    }
    this.lastError = undefined;
    return pid;
  }

  /** Stops whatever process of ours the pidfile names (TERM, then KILL after a grace period). */
  async stop(): Promise<void> {
    const pid = this.alive() ? this.identity!.pid : this.adopt();
    this.identity = undefined;
    if (pid === undefined) return;
    await killAndWait(pid, STOP_GRACE_MS);
  }
}

/** Sends TERM, waits for the process to go, then KILL. Gone already is success. */
export async function killAndWait(pid: number, graceMs: number): Promise<void> {
  const start = identify(pid);
  if (!start) return;
  const same = (): boolean => identify(pid)?.startTime === start.startTime;
  const signal = (sig: NodeJS.Signals): void => {
    try {
      process.kill(pid, sig);
    } catch {
      /* gone */
    }
  };
  signal('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (same() && Date.now() < deadline) await sleep(20);
  if (!same()) return;
  signal('SIGKILL');
  const hard = Date.now() + 2000;
  while (same() && Date.now() < hard) await sleep(10);
}

export function readPidfile(path: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  const pid = Number(text.trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** The pid's start time, or undefined when there is no live (non-zombie) process with that pid. */
function identify(pid: number): ProcIdentity | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: fields are counted after its last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const state = rest[0];
  if (state === 'Z' || state === 'X' || state === 'x') return undefined;
  const startTime = rest[19];
  return startTime === undefined ? undefined : { pid, startTime };
}

/** Whether the process's command line names our pidfile (so it is ours, not a system OVS). */
function ownedBy(pid: number, pidfile: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(`--pidfile=${pidfile}`);
  } catch {
    return false;
  }
}


function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
