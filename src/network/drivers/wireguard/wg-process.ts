/**
 * wireguard-go processes: one per endpoint, in the endpoint's hidden namespace, detached from the
 * daemon so tunnels outlive a daemon restart and are adopted by the next one (pidfile + cmdline +
 * network namespace). Stopped only by the PID we recorded.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cmdlineOf, logTail, readPidFile } from '../../../sys/proc-files.js';
import { accessSync, closeSync, constants, mkdirSync, openSync, readFileSync, readdirSync, readlinkSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { basename, dirname } from 'node:path';
import { logger } from '../../../log.js';
import { which } from '../../../sys/runner.js';
import { loadNative, native } from '../../../sys/native.js';
import { uapiGet, uapiRelease } from './uapi.js';
import { uapiSocketPath } from './wg-names.js';

const log = logger('arca:net:wireguard');

export interface WgProcessSpec {
  /** Interface name (unique machine-wide). */
  ifname: string;
  /** `/run/netns/<hidden>`: wireguard-go runs there (`nsenter --net=`), so its TUN and UDP sockets are made there. */
  netnsPath: string;
  pidFile: string;
  logFile: string;
}

const WIREGUARD_GO = 'wireguard-go';
/** How often a starting process's socket is tried: it answers ~8 ms after the spawn here. */
const READY_POLL_MS = 2;
/** After SIGKILL a process is gone in ~1 ms; this only bounds a wait on an unkillable (D-state) one. */
const KILL_WAIT_MS = 3000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let found = false;

/**
 * The wireguard-go binary: `ARCA_WIREGUARD_GO` (an absolute path, e.g. another build to compare
 * with) when set, else the one on the search path. Its file name must stay `wireguard-go`: a
 * process is recognised as ours by that name.
 */
export function wireguardGoPath(): string | undefined {
  const chosen = process.env.ARCA_WIREGUARD_GO;
  if (!chosen) return which(WIREGUARD_GO);
  try {
    accessSync(chosen, constants.X_OK);
  } catch {
    return undefined;
  }
  return chosen.startsWith('/') && basename(chosen) === WIREGUARD_GO ? chosen : undefined;
}

/** Why wireguard-go cannot run here (names the Debian package), or undefined when it can. */
export function wireguardGoMissing(): string | undefined {
  const chosen = process.env.ARCA_WIREGUARD_GO;
  if (chosen && !wireguardGoPath()) return `ARCA_WIREGUARD_GO=${chosen}: not an executable file named wireguard-go given by an absolute path`;
  // Once found it stays found; a miss is looked up again, so installing needs no daemon restart.
  if (found) return undefined;
  const absent = [WIREGUARD_GO, 'nsenter'].filter((b) => !(b === WIREGUARD_GO ? wireguardGoPath() : which(b)));
  if (!absent.length) {
    found = true;
    return undefined;
  }
  const pkgs = absent.map((b) => (b === 'nsenter' ? 'util-linux' : 'wireguard-go'));
  return `the wireguard driver needs ${absent.join(' and ')}, which is not installed (there is no kernel WireGuard to fall back on): apt-get install ${pkgs.join(' ')} (or run scripts/setup.sh)`;
}

/** wireguard-go's GOMAXPROCS unless `ARCA_WIREGUARD_GOMAXPROCS` says otherwise. */
export const DEFAULT_WIREGUARD_GOMAXPROCS = '1';

let warnedTuning: string | undefined;

/**
 * What the driver's wireguard-go runs with besides the daemon's environment: GOMAXPROCS 1, or
 * `ARCA_WIREGUARD_GOMAXPROCS` (a positive integer; `0` leaves it to Go, or to a GOMAXPROCS in
 * the daemon's environment). One P measured better here (2 cores, both ends on the machine, same
 * run): ~1.0-1.1x bare wireguard-go TCP instead of ~0.77x, and ~1 MiB less idle RSS. Every
 * container is its own wireguard-go, so a host runs many of them: one P each still spreads them
 * over the cores.
 */
export function wireguardGoTuning(): Record<string, string> {
  const chosen = process.env.ARCA_WIREGUARD_GOMAXPROCS;
  if (chosen === undefined || chosen === '') return { GOMAXPROCS: DEFAULT_WIREGUARD_GOMAXPROCS };
  if (chosen === '0') return {};
  if (/^[1-9][0-9]{0,3}$/.test(chosen)) return { GOMAXPROCS: chosen };
  if (warnedTuning !== chosen) {
    warnedTuning = chosen;
    log.warn(`ARCA_WIREGUARD_GOMAXPROCS="${chosen}" is not a count from 0 to 9999: wireguard-go runs with GOMAXPROCS ${DEFAULT_WIREGUARD_GOMAXPROCS}`);
  }
  return { GOMAXPROCS: DEFAULT_WIREGUARD_GOMAXPROCS };
}

let version: string | undefined;

/** `wireguard-go --version` (first line), cached; undefined if missing. */
export function wireguardGoVersion(): string | undefined {
  if (version !== undefined) return version;
  const bin = wireguardGoPath();
  if (!bin) return undefined;
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 5000 });
  const first = (r.stdout ?? '').split('\n')[0]?.trim();
  if (r.status !== 0 || !first) return undefined;
  version = first;
  return version;
}

// ---------------------------------------------------------------------------------------------
// /proc

/** Field 3 (state) and 22 (start time) of /proc/<pid>/stat; undefined when there is no such process. */
function procStat(pid: number): { state: string; startTime: string } | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name may hold spaces and parentheses: count fields after its last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { state: rest[0] ?? '', startTime: rest[19] ?? '' };
}

/** Alive and not a zombie: a dead child of ours stays a zombie until Node reaps it. */
function liveStartTime(pid: number): string | undefined {
  const st = procStat(pid);
  if (!st || st.state === 'Z' || st.state === 'X' || st.state === 'x') return undefined;
  return st.startTime;
}

/** Whether `pid` is still that wireguard-go (`ifname` in its cmdline; a zombie counts as dead). */
export function isWireguardGo(pid: number, ifname: string): boolean {
  if (!Number.isInteger(pid) || pid <= 0 || liveStartTime(pid) === undefined) return false;
  const argv = cmdlineOf(pid);
  // argv[0] must be wireguard-go itself: before nsenter's exec, nsenter's own argv names both too.
  return argv.length > 0 && basename(argv[0]!) === WIREGUARD_GO && argv.slice(1).includes(ifname);
}

function netnsInode(path: string): number | undefined {
  try {
    return statSync(path).ino;
  } catch {
    return undefined;
  }
}

function writePid(path: string, pid: number): void {
  mkdirSync(dirname(path), { recursive: true });
  // A crash mid-write must not leave a truncated number that names some other process.
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${pid}\n`);
  renameSync(tmp, path);
}

function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    /* already gone */
  }
}

// ---------------------------------------------------------------------------------------------
// Children of this daemon. Their handles are kept so a watcher hears their exit at once (Node reaps
// them; polling would find them only at the next tick), and so a stop we asked for is not
// reported as a death the driver should repair.

const children = new Map<number, ChildProcess>();
const stopping = new Set<number>();

/** Whether a socket path is answered by a live process (a dead one's leftover refuses connections). */
function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(path);
    const done = (v: boolean): void => {
      sock.destroy();
      resolve(v);
    };
    sock.setTimeout(500, () => done(true));
    sock.on('connect', () => done(true));
    sock.on('error', () => done(false));
  });
}

/**
 * Starts wireguard-go (WG_PROCESS_FOREGROUND=1, detached, output to logFile, pidfile written) and
 * resolves with its PID once its UAPI socket answers. Rejects (after killing what it started)
 * with the log's tail if it exits or does not answer within `timeoutMs`.
 */
export async function spawnWireguardGo(spec: WgProcessSpec, timeoutMs = 5000): Promise<number> {
  const missing = wireguardGoMissing();
  if (missing) throw new Error(missing);
  const sockPath = uapiSocketPath(spec.ifname);
  // Another live device by that name would answer our readiness poll while ours exits with
  // "unix socket in use": refuse up front rather than mistake it for ours.
  if (await socketAnswers(sockPath)) throw new Error(`wireguard-go ${spec.ifname}: ${sockPath} is already served by a running process`);

  mkdirSync(dirname(spec.logFile), { recursive: true });
  const out = openSync(spec.logFile, 'a');
  let child: ChildProcess;
  try {
    // nsenter execs wireguard-go, so the PID is wireguard-go's; detached, so it outlives us and a
    // signal to our process group does not reach it.
    child = spawn(which('nsenter')!, [`--net=${spec.netnsPath}`, '--', wireguardGoPath()!, spec.ifname], {
      detached: true,
      stdio: ['ignore', out, out],
      env: { ...process.env, ...wireguardGoTuning(), WG_PROCESS_FOREGROUND: '1' },
    });
  } finally {
    closeSync(out);
  }
  const pid = child.pid;
  if (pid === undefined) {
    const err = await new Promise<Error>((r) => child.once('error', r));
    throw new Error(`wireguard-go ${spec.ifname} did not start: ${err.message}`);
  }
  children.set(pid, child);
  child.once('exit', () => setImmediate(() => children.delete(pid)));
  child.unref();
  writePid(spec.pidFile, pid);

  const failed = (why: string): Error => {
    const tail = logTail(spec.logFile, 5);
    return new Error(`wireguard-go ${spec.ifname} did not start: ${why}${tail ? `: ${tail}` : ''}`);
  };
  try {
    await waitReady(child, sockPath, timeoutMs, failed);
  } catch (e) {
    await killChild(child);
    if (readPidFile(spec.pidFile) === pid) removeQuietly(spec.pidFile);
    throw e;
  }
  return pid;
}

async function waitReady(child: ChildProcess, sockPath: string, timeoutMs: number, failed: (why: string) => Error): Promise<void> {
  let exited: string | undefined;
  const onExit = (code: number | null, signal: string | null): void => {
    exited = signal ? `killed by ${signal}` : `exit status ${code}`;
  };
  child.once('exit', onExit);
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (exited) throw failed(exited);
      try {
        await uapiGet(sockPath, Math.max(50, deadline - Date.now()));
        // The answer could only be a stranger's if ours died meanwhile (see the check before spawning).
        if (exited) throw failed(exited);
        return;
      } catch (e) {
        if (exited) throw failed(exited);
        const code = (e as NodeJS.ErrnoException).code;
        // Not there yet (ENOENT), or a dead predecessor's socket not yet replaced (ECONNREFUSED).
        if (code !== 'ENOENT' && code !== 'ECONNREFUSED') throw failed(String((e as Error).message));
      }
      if (Date.now() >= deadline) throw failed(`its UAPI socket did not answer within ${timeoutMs} ms`);
      await sleep(READY_POLL_MS);
    }
  } finally {
    child.off('exit', onExit);
  }
}

async function killChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGKILL');
  await Promise.race([gone, sleep(KILL_WAIT_MS)]);
}

/**
 * The PID of a running wireguard-go for `spec` started earlier (pidfile names a live process whose
 * cmdline is wireguard-go `ifname` and whose netns is `spec.netnsPath`'s), else undefined.
 */
export function adoptWireguardGo(spec: WgProcessSpec): number | undefined {
  const pid = readPidFile(spec.pidFile);
  if (pid === undefined || !isWireguardGo(pid, spec.ifname)) return undefined;
  // The same name in another namespace would be someone else's device (a test's, another daemon's).
  const want = netnsInode(spec.netnsPath);
  const have = netnsInode(`/proc/${pid}/ns/net`);
  return want !== undefined && want === have ? pid : undefined;
}

/**
 * Stops it: SIGTERM, then SIGKILL after `graceMs`; resolves once it is gone. Removes the pidfile
 * and a stale UAPI socket. A PID that is no longer that wireguard-go is left alone. A watcher
 * does not report a process stopped here.
 */
export async function stopWireguardGo(spec: WgProcessSpec, pid: number | undefined, graceMs = 1000): Promise<void> {
  uapiRelease(uapiSocketPath(spec.ifname));
  if (pid !== undefined && isWireguardGo(pid, spec.ifname)) {
    const startTime = liveStartTime(pid);
    const same = (): boolean => startTime !== undefined && liveStartTime(pid) === startTime;
    stopping.add(pid);
    try {
      signal(pid, 'SIGTERM');
      const soft = Date.now() + graceMs;
      while (same() && Date.now() < soft) await sleep(5);
      if (same()) {
        log.warn(`wireguard-go ${spec.ifname} (pid ${pid}) ignored SIGTERM for ${graceMs} ms: killing it`);
        signal(pid, 'SIGKILL');
        const hard = Date.now() + KILL_WAIT_MS;
        while (same() && Date.now() < hard) await sleep(5);
      }
    } finally {
      // A watcher's poll may run after we return: keep the mark until the process is surely reaped.
      setTimeout(() => stopping.delete(pid), 5000).unref();
    }
  }
  const recorded = readPidFile(spec.pidFile);
  // A pidfile naming a live wireguard-go of that name (a newer start, or one that would not die) stays.
  if (recorded === undefined || !isWireguardGo(recorded, spec.ifname)) removeQuietly(spec.pidFile);
  // SIGTERM lets wireguard-go remove its socket; after SIGKILL it stays, and connections to it are
  // refused. One that answers belongs to a live process (maybe not ours): leave it.
  const sockPath = uapiSocketPath(spec.ifname);
  if (exists(sockPath) && !(await socketAnswers(sockPath))) removeQuietly(sockPath);
}

function exists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* gone already */
  }
}

// ---------------------------------------------------------------------------------------------

interface Watched {
  pid: number;
  /** Tells the process from a later one that reuses its PID. */
  startTime: string | undefined;
  child?: ChildProcess;
  onChildExit?: () => void;
}

/**
 * Watches processes and calls `onExit(ifname)` once when one dies (children: their exit event;
 * adopted ones: polled every `pollMs`). The driver re-creates the tunnel from its state.
 * A process stopped with {@link stopWireguardGo} is not reported.
 */
export class WgWatcher {
  private readonly watched = new Map<string, Watched>();
  /** One poll for all adopted processes (after a daemon restart that is every tunnel). */
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly onExit: (ifname: string) => void,
    private readonly pollMs = 250,
  ) {}

  /**
   * Starts watching `pid` as `ifname` (replacing an earlier watch of that name). `child` is found
   * by itself for processes {@link spawnWireguardGo} started in this daemon.
   */
  watch(ifname: string, pid: number, child: ChildProcess | undefined = children.get(pid)): void {
    this.unwatch(ifname);
    const w: Watched = { pid, startTime: liveStartTime(pid) };
    this.watched.set(ifname, w);
    if (!isWireguardGo(pid, ifname) || (child && (child.exitCode !== null || child.signalCode !== null))) {
      setImmediate(() => this.died(ifname, w));
      return;
    }
    // A child's PID cannot be reused before Node reaps it, which is when 'exit' fires: no poll needed.
    if (child && child.pid === pid) {
      w.child = child;
      w.onChildExit = () => this.died(ifname, w);
      child.once('exit', w.onChildExit);
      return;
    }
    this.timer ??= setInterval(() => this.poll(), this.pollMs);
    // The daemon's server keeps the process alive; a watcher alone should not.
    this.timer.unref();
  }

  unwatch(ifname: string): void {
    const w = this.watched.get(ifname);
    if (!w) return;
    this.watched.delete(ifname);
    this.release(w);
  }

  /** Stops every watch. */
  close(): void {
    for (const ifname of [...this.watched.keys()]) this.unwatch(ifname);
  }

  /** The names watched now. */
  names(): string[] {
    return [...this.watched.keys()];
  }

  private poll(): void {
    for (const [ifname, w] of [...this.watched]) {
      // One read of /proc/<pid>/stat (~25 µs): the same start time means the same process.
      if (!w.child && liveStartTime(w.pid) !== w.startTime) this.died(ifname, w);
    }
  }

  private release(w: Watched): void {
    if (w.child && w.onChildExit) w.child.off('exit', w.onChildExit);
    if (this.timer && ![...this.watched.values()].some((x) => !x.child)) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private died(ifname: string, w: Watched): void {
    // Only the watch that is current for the name may report, and only once.
    if (this.watched.get(ifname) !== w) return;
    this.watched.delete(ifname);
    this.release(w);
    if (stopping.has(w.pid)) return;
    try {
      this.onExit(ifname);
    } catch (e) {
      log.error(`wireguard-go ${ifname} exit handler failed: ${(e as Error).message}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// inotify: each wireguard-go holds one instance (it watches its UAPI socket's folder), and the
// limit is per uid over the whole machine: with the default 128 the ~125th process fails with
// "too many open files".

const MAX_INSTANCES = '/proc/sys/fs/inotify/max_user_instances';

function readMax(): number {
  return Number(readFileSync(MAX_INSTANCES, 'utf8').trim());
}

/** `fs.inotify.max_user_instances` now, and how many inotify instances this uid holds (each wireguard-go holds one). */
export function inotifyUsage(): { max: number; used: number } {
  const uid = process.getuid?.() ?? 0;
  let used = 0;
  for (const ent of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(ent)) continue;
    try {
      if (statSync(`/proc/${ent}`).uid !== uid) continue;
      for (const fd of readdirSync(`/proc/${ent}/fd`)) {
        try {
          if (readlinkSync(`/proc/${ent}/fd/${fd}`) === 'anon_inode:inotify') used++;
        } catch {
          /* closed meanwhile */
        }
      }
    } catch {
      /* exited meanwhile, or not ours to read */
    }
  }
  return { max: readMax(), used };
}

/** Raises `fs.inotify.max_user_instances` to at least `min` (logging it); returns the value in force. */
export function ensureInotifyInstances(min: number): number {
  const now = readMax();
  if (now >= min) return now;
  try {
    writeFileSync(MAX_INSTANCES, `${min}\n`);
  } catch (e) {
    log.warn(
      `fs.inotify.max_user_instances is ${now} and could not be raised to ${min} (${(e as Error).message}): each wireguard-go holds one inotify instance, so about that many endpoints fit`,
    );
    return now;
  }
  log.info(`raised fs.inotify.max_user_instances from ${now} to ${min}: each wireguard-go holds one inotify instance`);
  return readMax();
}

/**
 * What each of wireguard-go's UDP sockets should hold at least: Debian 12's wireguard-go never
 * sizes them (4 MiB was enough to see no receive-queue drops at all); Debian 13's asks for 7 MiB
 * itself, so there the raise finds nothing to do.
 */
export const WG_SOCKET_BUFFER_BYTES = 4 << 20;

let buffersUnavailable = false;

/**
 * Gives a wireguard-go's UDP sockets {@link WG_SOCKET_BUFFER_BYTES} (the native addon's
 * raiseUdpBuffers; see there why it has to be done from outside). Idempotent and cheap, so it is
 * called after every configuration and by the audit: wireguard-go re-creates its sockets when its
 * port changes or its link goes down and up. Returns the UDP sockets found and how many of them it
 * had to raise; never throws (a tunnel with small buffers is slower, not broken).
 */
export function raiseSocketBuffers(pid: number, ifname: string): { sockets: number; raised: number } {
  const n = native();
  if (!n) {
    if (!buffersUnavailable) log.info('wireguard-go keeps its default UDP buffers: the native addon is missing', { reason: loadNative().reason });
    buffersUnavailable = true;
    return { sockets: 0, raised: 0 };
  }
  try {
    const [sockets, raised] = n.raiseUdpBuffers(pid, WG_SOCKET_BUFFER_BYTES);
    return { sockets, raised };
  } catch (e) {
    log.debug('raising wireguard-go UDP buffers failed', { interface: ifname, pid, error: (e as Error).message });
    return { sockets: 0, raised: 0 };
  }
}
