/**
 * The end-to-end harness: one throwaway daemon per test file, in its own "host" network namespace,
 * driven with the stock `docker` CLI over a unix socket.
 *
 * Everything a daemon makes is swept by {@link TestDaemon.cleanup}, which also runs when the test
 * process exits or is interrupted, so a crashed test leaves no netns, mount or process behind.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const TEST_IMAGE = 'arca-test/busybox:latest';

/** Address of the host netns on the veth into the "outside" netns (when `outside` is set). */
export const OUTSIDE_HOST_ADDR = '198.18.0.1';
/** Address of the "outside" netns on that veth; the host netns routes by default through it. */
export const OUTSIDE_ADDR = '198.18.0.2';

export interface DockerResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface TestDaemon {
  /** Short unique name; the netns are `<name>-h` (host) and `<name>-o` (outside). */
  name: string;
  /** The netns the daemon runs in: it plays the machine's host network. */
  hostNs: string;
  /** A second netns linked to `hostNs` by a veth, when `outside` was asked for. */
  outsideNs?: string;
  root: string;
  execRoot: string;
  socket: string;
  /** The daemon's log (stdout and stderr, `--log-level debug`). */
  logPath: string;
  /** `process.env` plus `DOCKER_HOST=unix://<socket>` and a private `DOCKER_CONFIG`. */
  env: NodeJS.ProcessEnv;
  /** The current daemon's pid. */
  pid(): number;
  /** Runs the docker CLI; never throws on a non-zero exit. Default timeout 60 s. */
  docker(args: string[], opts?: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv }): Promise<DockerResult>;
  /** Runs the docker CLI; throws with the arguments and stderr on a non-zero exit; returns trimmed stdout. */
  dockerOk(args: string[], opts?: { input?: string; timeoutMs?: number }): Promise<string>;
  /**
   * Stops the daemon (default SIGTERM), waits for it to exit, runs `whileStopped` (to plant what a
   * crash would leave), starts it again on the same root and socket.
   */
  restart(opts?: { signal?: 'SIGKILL' | 'SIGTERM'; whileStopped?: () => void | Promise<void> }): Promise<void>;
  /** Removes everything this daemon and its containers made. Idempotent, best effort. */
  cleanup(): Promise<void>;
}

/** dist/test/e2e/harness.js → the repository root. */
const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const MAIN_JS = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
const TEST_IMAGE_TAR = join(REPO_ROOT, '.cache', 'test-image.tar');
const START_TIMEOUT_MS = 10_000;

/** Daemons not cleaned up yet, swept synchronously if the process exits first. */
const live = new Set<Harness>();
let exitHooksInstalled = false;

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on('exit', () => {
    for (const h of live) h.emergencyCleanup();
  });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      for (const h of live) h.emergencyCleanup();
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  }
}

/** Runs a command synchronously; returns its result without throwing. */
function sh(argv: string[], input?: string): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(argv[0]!, argv.slice(1), { input, encoding: 'utf8', timeout: 30_000 });
  return {
    code: r.status ?? (r.error ? 127 : 1),
    stdout: r.stdout ?? '',
    stderr: (r.stderr ?? '') + (r.error ? String(r.error) : ''),
  };
}

/** Runs a command synchronously; throws with its stderr on failure. */
function shOk(argv: string[]): string {
  const r = sh(argv);
  if (r.code !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr.trim() || `exit status ${r.code}`}`);
  return r.stdout;
}

/** Is a process (still) there? */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function tail(path: string, lines = 40): string {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Mount points from /proc/self/mountinfo (field 5, with its octal escapes undone). */
function mountPoints(): string[] {
  const text = readFileSync('/proc/self/mountinfo', 'utf8');
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => line.split(' ')[4]!.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
}

function netnsNames(): string[] {
  const r = sh(['ip', '-j', 'netns', 'list']);
  if (r.code !== 0 || !r.stdout.trim()) return [];
  try {
    return (JSON.parse(r.stdout) as Array<{ name: string }>).map((n) => n.name);
  } catch {
    return [];
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** `GET /_ping` on the socket; resolves true on a 200. */
function ping(socket: string): Promise<boolean> {
  return new Promise((resolvePing) => {
    const req = request({ socketPath: socket, path: '/_ping', method: 'GET', timeout: 1000 }, (res) => {
      res.resume();
      resolvePing(res.statusCode === 200);
    });
    req.on('error', () => resolvePing(false));
    req.on('timeout', () => {
      req.destroy();
      resolvePing(false);
    });
    req.end();
  });
}

class Harness implements TestDaemon {
  readonly hostNs: string;
  readonly outsideNs?: string;
  readonly dir: string;
  readonly root: string;
  readonly execRoot: string;
  readonly socket: string;
  readonly logPath: string;
  readonly env: NodeJS.ProcessEnv;
  /** How the daemon names its container netns: `arca-<first 6 hex of sha256(root)>-...`. */
  readonly tag: string;
  private child?: ChildProcess;
  private exited?: Promise<void>;
  private cleaning?: Promise<void>;

  constructor(
    readonly name: string,
    outside: boolean,
    private readonly daemonArgs: string[] = [],
  ) {
    this.hostNs = `${name}-h`;
    if (outside) this.outsideNs = `${name}-o`;
    this.dir = `/tmp/arca-e2e-${name}`;
    this.root = join(this.dir, 'root');
    this.execRoot = join(this.dir, 'exec');
    this.socket = join(this.dir, 'docker.sock');
    this.logPath = join(this.dir, 'daemon.log');
    this.tag = daemonTag(this.root);
    this.env = {
      ...process.env,
      DOCKER_HOST: `unix://${this.socket}`,
      // A private client config: no contexts, credential helpers or hints from the machine's ~/.docker.
      DOCKER_CONFIG: join(this.dir, 'docker-config'),
      DOCKER_CLI_HINTS: 'false',
    };
    delete this.env.DOCKER_CONTEXT;
  }

  pid(): number {
    if (!this.child?.pid) throw new Error(`daemon ${this.name} is not running`);
    return this.child.pid;
  }

  /** Makes the folders and namespaces. Each step is undone by cleanup(), which tolerates partial set-up. */
  setUp(): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o711 });
    mkdirSync(this.env.DOCKER_CONFIG!, { recursive: true });
    shOk(['ip', 'netns', 'add', this.hostNs]);
    shOk(['ip', '-n', this.hostNs, 'link', 'set', 'lo', 'up']);
    if (this.outsideNs) {
      const o = this.outsideNs;
      const hv = `${this.name}-hv`;
      const ov = `${this.name}-ov`;
      shOk(['ip', 'netns', 'add', o]);
      shOk(['ip', '-n', o, 'link', 'set', 'lo', 'up']);
      shOk(['ip', 'link', 'add', hv, 'netns', this.hostNs, 'type', 'veth', 'peer', 'name', ov, 'netns', o]);
      shOk(['ip', '-n', this.hostNs, 'addr', 'add', `${OUTSIDE_HOST_ADDR}/30`, 'dev', hv]);
      shOk(['ip', '-n', o, 'addr', 'add', `${OUTSIDE_ADDR}/30`, 'dev', ov]);
      shOk(['ip', '-n', this.hostNs, 'link', 'set', hv, 'up']);
      shOk(['ip', '-n', o, 'link', 'set', ov, 'up']);
      // Like a real machine: the default route leads "out", here to a namespace the test owns.
      shOk(['ip', '-n', this.hostNs, 'route', 'add', 'default', 'via', OUTSIDE_ADDR]);
    }
  }

  /** Starts the daemon inside the host netns and waits until `/_ping` answers. */
  async launch(): Promise<void> {
    const fd = openSync(this.logPath, 'a');
    let child: ChildProcess;
    try {
      // nsenter joins only the network namespace. `ip netns exec` would also remount /sys, which hides
      // the cgroup hierarchy from runc.
      child = spawn(
        'nsenter',
        [
          `--net=/run/netns/${this.hostNs}`,
          '--',
          process.execPath,
          // As bin/arca and scripts/start.sh run it.
          '--max-semi-space-size=1',
          MAIN_JS,
          'daemon',
          '--host',
          `unix://${this.socket}`,
          '--root',
          this.root,
          '--exec-root',
          this.execRoot,
          '--log-level',
          'debug',
          ...this.daemonArgs,
        ],
        { stdio: ['ignore', fd, fd], cwd: REPO_ROOT, env: process.env },
      );
    } finally {
      closeSync(fd);
    }
    // The daemon must not keep the test process alive; exit hooks sweep it if a test forgets cleanup().
    child.unref();
    this.child = child;
    let exitInfo: string | undefined;
    this.exited = new Promise<void>((res) => {
      child.once('exit', (code, signal) => {
        exitInfo = signal ? `signal ${signal}` : `exit status ${code}`;
        res();
      });
      child.once('error', (err) => {
        exitInfo = String(err);
        res();
      });
    });
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (exitInfo) break;
      if (await ping(this.socket)) return;
      await sleep(50);
    }
    const why = exitInfo ? `the daemon died (${exitInfo})` : `/_ping did not answer within ${START_TIMEOUT_MS / 1000} s`;
    throw new Error(`daemon ${this.name} failed to start: ${why}. Log tail (${this.logPath}):\n${tail(this.logPath)}`);
  }

  async loadTestImage(): Promise<void> {
    if (!existsSync(TEST_IMAGE_TAR)) {
      throw new Error(`${TEST_IMAGE_TAR} is missing: build it with "node scripts/build-test-image.mjs"`);
    }
    const r = await this.docker(['load', '-i', TEST_IMAGE_TAR], { timeoutMs: 120_000 });
    if (r.code !== 0) {
      throw new Error(
        `loading the test image failed: "docker load -i ${TEST_IMAGE_TAR}" exited ${r.code}: ${r.stderr.trim()}\n` +
          `(docker load is POST /images/load: is it implemented yet? startDaemon({ loadTestImage: false }) skips it.) ` +
          `Daemon log tail:\n${tail(this.logPath, 20)}`,
      );
    }
  }

  docker(
    args: string[],
    opts: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
  ): Promise<DockerResult> {
    const timeoutMs = opts.timeoutMs ?? 60_000;
    return new Promise((resolveRun) => {
      const child = spawn('docker', args, { env: opts.env ?? this.env, stdio: ['pipe', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, timeoutMs);
      child.stdout.on('data', (c: Buffer) => out.push(c));
      child.stderr.on('data', (c: Buffer) => err.push(c));
      child.stdin.on('error', () => {});
      child.stdin.end(opts.input ?? '');
      const finish = (code: number, extra = ''): void => {
        clearTimeout(timer);
        resolveRun({
          code,
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: Buffer.concat(err).toString('utf8') + extra,
        });
      };
      child.once('error', (e) => finish(127, `\n${String(e)}`));
      child.once('close', (code, signal) => {
        if (timedOut) finish(124, `\ndocker ${args.join(' ')}: timed out after ${timeoutMs} ms`);
        else finish(code ?? (signal ? 128 : 1));
      });
    });
  }

  async dockerOk(args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<string> {
    const r = await this.docker(args, opts);
    if (r.code !== 0) {
      throw new Error(`docker ${args.join(' ')} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
    }
    return r.stdout.trim();
  }

  /** Signals the daemon and waits for it to exit; SIGKILL after `graceMs`. */
  private async stopDaemon(signal: 'SIGTERM' | 'SIGKILL', graceMs: number): Promise<void> {
    const child = this.child;
    if (!child?.pid || !this.exited) return;
    if (child.exitCode !== null || child.signalCode !== null) return;
    // While we wait for it, the child must hold the event loop open, or node:test sees an idle loop
    // with a pending promise and cancels the test.
    child.ref();
    child.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      this.exited.then(() => false),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(true), graceMs))),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      child.kill('SIGKILL');
      await this.exited;
    }
  }

  async restart(opts: { signal?: 'SIGKILL' | 'SIGTERM'; whileStopped?: () => void | Promise<void> } = {}): Promise<void> {
    await this.stopDaemon(opts.signal ?? 'SIGTERM', 10_000);
    await opts.whileStopped?.();
    await this.launch();
  }

  cleanup(): Promise<void> {
    this.cleaning ??= this.doCleanup();
    return this.cleaning;
  }

  private async doCleanup(): Promise<void> {
    const errors: unknown[] = [];
    if (this.child?.pid && this.child.exitCode === null && this.child.signalCode === null) {
      const ids = await this.docker(['ps', '-aq'], { timeoutMs: 20_000 });
      const list = ids.stdout.split('\n').map((s) => s.trim()).filter(Boolean);
      if (ids.code === 0 && list.length) await this.docker(['rm', '-f', ...list], { timeoutMs: 60_000 });
    }
    try {
      await this.stopDaemon('SIGTERM', 3000);
    } catch (e) {
      errors.push(e);
    }
    errors.push(...this.sweep());
    live.delete(this);
    if (errors.length) throw new AggregateError(errors, `cleanup of test daemon ${this.name} had ${errors.length} error(s)`);
  }

  /** Called from the process exit hook: synchronous, never throws. */
  emergencyCleanup(): void {
    const pid = this.child?.pid;
    if (pid && alive(pid)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    const errors = this.sweep();
    for (const e of errors) process.stderr.write(`arca harness cleanup (${this.name}): ${String(e)}\n`);
    live.delete(this);
  }

  /**
   * Removes what the daemon may have left behind, in dependency order: container processes, shims,
   * mounts, container netns, the test's own netns, the folder. Returns the errors instead of stopping.
   */
  private sweep(): unknown[] {
    const errors: unknown[] = [];
    const attempt = (what: string, fn: () => void): void => {
      try {
        fn();
      } catch (e) {
        errors.push(new Error(`${what}: ${e instanceof Error ? e.message : String(e)}`));
      }
    };

    // 1. Containers still known to the OCI runtimes.
    for (const rt of ['runc', 'crun']) {
      const rtRoot = join(this.execRoot, rt);
      if (!existsSync(rtRoot)) continue;
      const r = sh([rt, '--root', rtRoot, 'list', '--format', 'json']);
      let list: Array<{ id: string; pid?: number }> = [];
      try {
        list = (JSON.parse(r.stdout || 'null') as typeof list | null) ?? [];
      } catch {
        /* unreadable list: nothing to do */
      }
      for (const c of list) {
        if (c.pid && c.pid > 0 && alive(c.pid)) {
          try {
            process.kill(c.pid, 'SIGKILL');
          } catch {
            /* gone */
          }
        }
        const d = sh([rt, '--root', rtRoot, 'delete', '-f', c.id]);
        if (d.code !== 0 && !/not exist|not found/i.test(d.stderr)) {
          errors.push(new Error(`${rt} delete -f ${c.id}: ${d.stderr.trim()}`));
        }
      }
    }

    // 2. Shims and any other process of ours still pointing into the test folder.
    attempt('kill conmon processes', () => {
      for (const pid of [...conmonPids(this.execRoot), ...conmonPids(this.root)]) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    });

    // The OVN stack a daemon leaves running by design (its pidfiles are under exec-root/ovn): gone
    // before the netns sweep below removes the switch's `arca-<tag>-ovs`.
    attempt('kill OVN stack processes', () => {
      for (const pid of ovnStackPids(this.dir)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    });

    // The wireguard driver's tunnels outlive the daemon by design (pidfiles under exec-root/wireguard);
    // a process keeps its namespace alive after `ip netns del`, so they go first.
    attempt('kill wireguard-go processes', () => {
      for (const { pid, ifname } of wireguardGoPids(this.execRoot, this.tag)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
        // SIGKILL leaves wireguard-go's UAPI socket behind; the path is global, the name ours.
        rmSync(`/run/wireguard/${ifname}.sock`, { force: true });
      }
    });

    // 3. Mounts under root/exec-root (overlay rootfs, volumes, netns bind mounts), deepest first.
    attempt('unmount', () => {
      const prefix = this.dir + '/';
      const mine = mountPoints().filter((m) => m === this.dir || m.startsWith(prefix));
      const unique = [...new Set(mine)].sort((a, b) => b.split('/').length - a.split('/').length || b.length - a.length);
      for (const m of unique) {
        const r = sh(['umount', '-l', m]);
        if (r.code !== 0 && !/not mounted|no mount point/i.test(r.stderr)) {
          errors.push(new Error(`umount -l ${m}: ${r.stderr.trim()}`));
        }
      }
    });

    // 4. Network namespaces: the daemon's container netns, then the test's own.
    attempt('delete netns', () => {
      const names = netnsNames();
      const doomed = names.filter((n) => n.startsWith(`arca-${this.tag}-`));
      if (this.outsideNs && names.includes(this.outsideNs)) doomed.push(this.outsideNs);
      if (names.includes(this.hostNs)) doomed.push(this.hostNs);
      for (const n of doomed) {
        const r = sh(['ip', 'netns', 'del', n]);
        if (r.code !== 0 && !/No such file/i.test(r.stderr)) errors.push(new Error(`ip netns del ${n}: ${r.stderr.trim()}`));
      }
    });

    // 5. The folder (its daemon log kept first where ARCA_E2E_KEEP_LOGS names a folder, for post-mortems).
    attempt(`rm -rf ${this.dir}`, () => {
      const keep = process.env.ARCA_E2E_KEEP_LOGS;
      if (keep && existsSync(this.logPath)) {
        mkdirSync(keep, { recursive: true });
        copyFileSync(this.logPath, join(keep, `${this.name}-${Date.now()}.log`));
      }
      rmSync(this.dir, { recursive: true, force: true, maxRetries: 3 });
    });
    return errors;
  }
}

/**
 * Starts a throwaway daemon in a fresh netns and (by default) loads {@link TEST_IMAGE} into it.
 * On failure everything made so far is removed before the error is thrown.
 */
export async function startDaemon(
  opts: { loadTestImage?: boolean; outside?: boolean; /** extra `arca daemon` flags, e.g. `--runtime crun` */ daemonArgs?: string[] } = {},
): Promise<TestDaemon> {
  if (!existsSync(MAIN_JS)) throw new Error(`${MAIN_JS} is missing: build first with "npx tsc -p ."`);
  installExitHooks();
  let name: string;
  do name = `at${randomBytes(3).toString('hex')}`;
  while (existsSync(`/tmp/arca-e2e-${name}`) || existsSync(`/run/netns/${name}-h`));
  const h = new Harness(name, opts.outside ?? false, opts.daemonArgs ?? []);
  live.add(h);
  try {
    h.setUp();
    await h.launch();
    if (opts.loadTestImage ?? true) await h.loadTestImage();
  } catch (err) {
    await h.cleanup().catch(() => {});
    throw err;
  }
  return h;
}

/** Reads a process's resident set size in kB from /proc/<pid>/status (0 if it is gone). */
export function rssKb(pid: number): number {
  try {
    const m = /^VmRSS:\s+([0-9]+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Pids of conmon processes whose command line mentions `dir` (a daemon's exec-root). */
export function conmonPids(dir: string): number[] {
  const out: number[] = [];
  for (const ent of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(ent)) continue;
    try {
      const cmdline = readFileSync(`/proc/${ent}/cmdline`, 'utf8');
      if ((cmdline.split('\0')[0] ?? '').endsWith('conmon') && cmdline.includes(dir)) out.push(Number(ent));
    } catch {
      /* gone */
    }
  }
  return out;
}

/** The daemons of arca's OVN stack (ovn driver). */
const OVN_STACK_BINARIES = ['ovsdb-server', 'ovs-vswitchd', 'ovn-northd', 'ovn-controller'];

/** Pids of OVN stack processes whose command line mentions `dir` (their pidfiles, sockets and logs live there). */
export function ovnStackPids(dir: string): number[] {
  const out: number[] = [];
  for (const ent of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(ent)) continue;
    try {
      const cmdline = readFileSync(`/proc/${ent}/cmdline`, 'utf8');
      const bin = (cmdline.split('\0')[0] ?? '').split('/').pop() ?? '';
      if (OVN_STACK_BINARIES.includes(bin) && cmdline.includes(dir)) out.push(Number(ent));
    } catch {
      /* gone */
    }
  }
  return out;
}

/**
 * wireguard-go processes of a daemon: those its pidfiles under `<execRoot>/wireguard` name, and any
 * other running in one of its hidden namespaces (`arca-<tag>-w…`), e.g. started before a crash
 * wrote the pidfile. Each with its interface name (its argument).
 */
export function wireguardGoPids(execRoot: string, tag: string): Array<{ pid: number; ifname: string }> {
  const found = new Map<number, string>();
  const dir = join(execRoot, 'wireguard');
  const ifnameOf = (pid: number): string | undefined => {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if ((argv[0] ?? '').split('/').pop() !== 'wireguard-go') return undefined;
      // A zombie has an empty cmdline and is not counted.
      return argv.slice(1).find((a) => a && !a.startsWith('-'));
    } catch {
      return undefined;
    }
  };
  if (existsSync(dir)) {
    for (const f of readdirSync(dir)) {
      if (!f.endsWith('.pid')) continue;
      const pid = Number(readFileSync(join(dir, f), 'utf8').trim());
      const ifname = pid > 0 ? ifnameOf(pid) : undefined;
      if (ifname && ifname === f.slice(0, -4)) found.set(pid, ifname);
    }
  }
  const hidden = new Set<string>();
  for (const n of netnsNames()) {
    if (!new RegExp(`^arca-${tag}-w[0-9a-f]{10}$`).test(n)) continue;
    try {
      hidden.add(String(statSync(`/run/netns/${n}`).ino));
    } catch {
      /* gone */
    }
  }
  if (hidden.size) {
    for (const ent of readdirSync('/proc')) {
      if (!/^[0-9]+$/.test(ent) || found.has(Number(ent))) continue;
      const ifname = ifnameOf(Number(ent));
      if (!ifname) continue;
      try {
        // /proc/<pid>/ns/net reads as "net:[<inode>]": the inode of the namespace's bind mount.
        const ino = /\[([0-9]+)\]/.exec(readlinkSync(`/proc/${ent}/ns/net`))?.[1];
        if (ino && hidden.has(ino)) found.set(Number(ent), ifname);
      } catch {
        /* gone */
      }
    }
  }
  return [...found].map(([pid, ifname]) => ({ pid, ifname }));
}

/** The tag a daemon puts in machine-global names (`arca-<tag>-...` netns): sha256 of its root path. */
export function daemonTag(root: string): string {
  return createHash('sha256').update(root).digest('hex').slice(0, 6);
}
