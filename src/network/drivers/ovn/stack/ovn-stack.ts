import { EventEmitter } from 'node:events';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { Unavailable } from '../../../../errors.js';
import { logger } from '../../../../log.js';
import { run, which } from '../../../../sys/runner.js';
import { SCHEMAS, ensureDbFile, replaceDb, type DbFileState, type DbName } from './db-files.js';
import { StackLayout, type OvnStackOptions } from './stack-layout.js';
import { StackProcess } from './stack-process.js';
import { logTail as lastLines } from '../../../../sys/proc-files.js';
import { BRIDGE, answers, configureSwitch, countFlows, waitForChassis } from './switch-config.js';

export { stackOptionsFor, type OvnStackOptions } from './stack-layout.js';

const log = logger('arca:net:ovn:stack');

export type OvnStackState = 'stopped' | 'starting' | 'running' | 'restarting' | 'down';

export interface OvnStackStatus {
  state: OvnStackState;
  reason?: string;
  processes: Array<{ name: string; pid?: number; restarts: number }>;
}

export interface OvnStackReport {
  versions: Record<string, string>;
  status: OvnStackStatus;
  flows?: { openflow: number; logical: number };
}

/** A crash must be noticed within 2 s (issue 9): pids are polled this often. */
const WATCH_INTERVAL_MS = 500;
/** This many failures (deaths or failed starts) of one process within the window: the stack is down. */
const MAX_FAILURES = 5;
const FAILURE_WINDOW_MS = 60_000;
const MAX_BACKOFF_MS = 5000;
/** While down, the watcher tries again this often, and ensure() refuses at once in between. */
const DOWN_RETRY_MS = 10_000;
const READY_TIMEOUT_MS = 10_000;

/** The binaries the stack runs, and the Debian package of each. */
const BINARIES: Array<[bin: string, pkg: string]> = [
  ['ovsdb-server', 'openvswitch-common'],
  ['ovsdb-tool', 'openvswitch-common'],
  ['ovs-vswitchd', 'openvswitch-switch'],
  ['ovn-northd', 'ovn-central'],
  ['ovn-controller', 'ovn-host'],
  ['nsenter', 'util-linux'],
];
const SCHEMA_PACKAGE: Record<DbName, string> = {
  OVN_Northbound: 'ovn-central',
  OVN_Southbound: 'ovn-central',
  Open_vSwitch: 'openvswitch-switch',
};

type ProcessKey = 'nb' | 'sb' | 'ovs' | 'northd' | 'vswitchd' | 'controller';
/** Start order: the database servers first, the daemons that connect to them after. */
const ORDER: ProcessKey[] = ['nb', 'sb', 'ovs', 'northd', 'vswitchd', 'controller'];
const DB_SERVERS: Partial<Record<ProcessKey, { db: DbName; file: (l: StackLayout) => string; socket: (l: StackLayout) => string; base: string }>> = {
  nb: { db: 'OVN_Northbound', file: (l) => l.nbDb, socket: (l) => l.nbSocket, base: 'ovnnb_db' },
  sb: { db: 'OVN_Southbound', file: (l) => l.sbDb, socket: (l) => l.sbSocket, base: 'ovnsb_db' },
  ovs: { db: 'Open_vSwitch', file: (l) => l.ovsDb, socket: (l) => l.ovsSocket, base: 'ovsdb-server' },
};

/**
 * The OVN stack arca runs for the `ovn` driver: ovsdb-server for the northbound, southbound and
 * Open_vSwitch databases, ovn-northd, ovs-vswitchd (userspace datapath, in its own netns) and
 * ovn-controller, each with its pidfile, control socket and log under arca's folders.
 *
 * The processes are detached daemons: they outlive the arca daemon (containers keep their network
 * across a daemon restart), and a new daemon adopts them by pidfile. While supervised, each one is
 * polled; a dead one is restarted with backoff, and the stack is `down` (ovn operations answer
 * 503) only when one keeps failing.
 *
 * Events: `nb-reset` when the northbound database was (re)created empty (at the first start, or
 * because it was missing or unreadable): the driver replays its networks into it. Emitted once
 * the northbound server answers, with the stack running. `ovs-reset` when the switch lost its
 * ports (conf.db recreated, or the switch netns made anew): the driver re-plugs its endpoints.
 * `restarted` (name) after a process was brought back.
 */
export class OvnStack extends EventEmitter {
  readonly nbSocket: string;
  readonly sbSocket: string;
  readonly ovsSocket: string;
  readonly switchNetns: string;
  readonly bridge = BRIDGE;
  private static installed = false;

  private readonly layout: StackLayout;
  private readonly procs: Record<ProcessKey, StackProcess>;
  private state: OvnStackState = 'stopped';
  private reason?: string;
  /** Start-ups, restarts and teardown run one at a time, in this chain. */
  private work: Promise<unknown> = Promise.resolve();
  private starting?: Promise<void>;
  private healing?: Promise<void>;
  private timer?: NodeJS.Timeout;
  private lastAttempt = 0;

  constructor(readonly opts: OvnStackOptions) {
    super();
    const l = (this.layout = new StackLayout(opts));
    this.nbSocket = l.nbSocket;
    this.sbSocket = l.sbSocket;
    this.ovsSocket = l.ovsSocket;
    this.switchNetns = opts.switchNetns;
    const dbServer = (name: string, key: ProcessKey): StackProcess => {
      const s = DB_SERVERS[key]!;
      return new StackProcess({
        name,
        bin: 'ovsdb-server',
        pidfile: l.run(`${s.base}.pid`),
        logFile: l.log(name),
        args: [`--remote=punix:${s.socket(l)}`, `--unixctl=${l.run(`${s.base}.ctl`)}`, s.file(l)],
      });
    };
    this.procs = {
      nb: dbServer('ovsdb-server-nb', 'nb'),
      sb: dbServer('ovsdb-server-sb', 'sb'),
      ovs: dbServer('ovsdb-server-ovs', 'ovs'),
      northd: new StackProcess({
        name: 'ovn-northd',
        bin: 'ovn-northd',
        pidfile: l.run('ovn-northd.pid'),
        logFile: l.log('ovn-northd'),
        args: [`--ovnnb-db=unix:${l.nbSocket}`, `--ovnsb-db=unix:${l.sbSocket}`, `--unixctl=${l.run('ovn-northd.ctl')}`],
      }),
      vswitchd: new StackProcess({
        name: 'ovs-vswitchd',
        bin: 'ovs-vswitchd',
        pidfile: l.run('ovs-vswitchd.pid'),
        logFile: l.log('ovs-vswitchd'),
        // No --mlockall (ovs-ctl's default): it would pin every page and inflate RSS.
        args: [`unix:${l.ovsSocket}`, `--unixctl=${l.run('ovs-vswitchd.ctl')}`],
        netns: l.netnsPath,
      }),
      // ovn-controller 23.03 has no --unixctl: its control socket is $OVN_RUNDIR/ovn-controller.<pid>.ctl.
      controller: new StackProcess({
        name: 'ovn-controller',
        bin: 'ovn-controller',
        pidfile: l.run('ovn-controller.pid'),
        logFile: l.log('ovn-controller'),
        args: [`unix:${l.ovsSocket}`],
      }),
    };
  }

  /** Undefined when the stack's binaries and schemas are installed; else a message naming the Debian packages. */
  static missing(): string | undefined {
    // Called by the driver on every operation: once everything was found, it stays found. A miss
    // is looked up again each time, so installing the packages needs no daemon restart.
    if (OvnStack.installed) return undefined;
    const absent = BINARIES.filter(([bin]) => !which(bin));
    const schemas = (Object.keys(SCHEMAS) as DbName[]).filter((db) => !existsSync(SCHEMAS[db]));
    if (!absent.length && !schemas.length) {
      OvnStack.installed = true;
      return undefined;
    }
    const what = [...absent.map(([bin]) => bin), ...schemas.map((db) => SCHEMAS[db])];
    const pkgs = new Set([...absent.map(([, pkg]) => pkg), ...schemas.map((db) => SCHEMA_PACKAGE[db])]);
    // openvswitch-common comes with openvswitch-switch, one of the three packages set-up installs.
    const install = [...new Set([...pkgs].map((p) => (p === 'openvswitch-common' ? 'openvswitch-switch' : p)))];
    return `the ovn driver needs Open vSwitch and OVN, which are not installed (missing ${what.join(', ')}): apt-get install ${install.join(' ')} (or run scripts/setup.sh)`;
  }

  /**
   * Starts or adopts every process, and resolves when the NB, SB and Open_vSwitch sockets answer,
   * br-int exists and ovn-controller registered its Chassis. Idempotent and safe to call
   * concurrently; cheap once running. Throws {@link Unavailable} with the reason when it cannot.
   */
  ensure(): Promise<void> {
    if (this.state === 'running') return Promise.resolve();
    if (this.starting) return this.starting;
    if (this.state === 'down' && Date.now() - this.lastAttempt < DOWN_RETRY_MS) {
      return Promise.reject(new Unavailable(`the OVN stack is down: ${this.reason ?? 'unknown reason'}`));
    }
    // One start at a time: concurrent callers share it (it clears itself once settled).
    this.starting ??= this.serial(() => this.startAll()).finally(() => (this.starting = undefined));
    return this.starting;
  }

  status(): OvnStackStatus {
    return {
      state: this.state,
      ...(this.reason !== undefined && { reason: this.reason }),
      processes: ORDER.map((k) => this.procs[k]).map((p) => ({ name: p.name, ...(p.pid !== undefined && { pid: p.pid }), restarts: p.restarts })),
    };
  }

  /** Daemon shutdown: stop watching and leave the processes running, for the next daemon to adopt. */
  async detach(): Promise<void> {
    this.stopWatch();
    await this.serial(async () => {
      for (const p of Object.values(this.procs)) p.forget();
      this.state = 'stopped';
      this.reason = undefined;
    });
  }

  /** Kills our processes (found by pidfile even when not adopted), removes the switch netns and the run dir. */
  async destroy(): Promise<void> {
    this.stopWatch();
    await this.serial(async () => {
      const errors: unknown[] = [];
      // The clients first, so none logs a reconnect storm against servers going away.
      for (const keys of [['controller', 'northd'], ['vswitchd'], ['nb', 'sb', 'ovs']] as ProcessKey[][]) {
        const rs = await Promise.allSettled(keys.map((k) => this.procs[k].stop()));
        for (const r of rs) if (r.status === 'rejected') errors.push(r.reason);
      }
      if (existsSync(this.layout.netnsPath)) {
        const r = await run(['ip', 'netns', 'delete', this.switchNetns], { allowFailure: true });
        if (r.code !== 0 && existsSync(this.layout.netnsPath)) errors.push(new Error(`ip netns delete ${this.switchNetns}: ${r.stderr.trim()}`));
      }
      try {
        rmSync(this.opts.runDir, { recursive: true, force: true });
      } catch (e) {
        errors.push(e);
      }
      this.state = 'stopped';
      this.reason = undefined;
      if (errors.length) throw new AggregateError(errors, 'the OVN stack was not fully removed');
    });
  }

  /** Versions, health and flow counts, for `arca doctor`. Starts nothing; reads pidfiles when not supervising. */
  async report(): Promise<OvnStackReport> {
    const versions: Record<string, string> = {};
    await Promise.all(
      ['ovsdb-server', 'ovs-vswitchd', 'ovn-northd', 'ovn-controller'].map(async (bin) => {
        if (!which(bin)) return;
        const r = await run([bin, '--version'], { allowFailure: true, timeoutMs: 5000 }).catch(() => undefined);
        const v = /([0-9]+\.[0-9]+\.[0-9]+)/.exec(r?.stdout.split('\n')[0] ?? '');
        if (v) versions[bin] = v[1]!;
      }),
    );
    let status = this.status();
    if (this.state === 'stopped') {
      // Not supervised by us (a doctor without the daemon): what the pidfiles say.
      const procs = ORDER.map((k) => this.procs[k]);
      const pids = procs.map((p) => p.adopt());
      const up = procs.filter((_, i) => pids[i] !== undefined);
      const down = procs.filter((_, i) => pids[i] === undefined);
      status = {
        state: up.length === 0 ? 'stopped' : down.length === 0 ? 'running' : 'down',
        ...(up.length && down.length ? { reason: `not running: ${down.map((p) => p.name).join(', ')}` } : {}),
        processes: procs.map((p, i) => ({ name: p.name, ...(pids[i] !== undefined && { pid: pids[i] }), restarts: p.restarts })),
      };
      for (const p of procs) p.forget();
    }
    const out: OvnStackReport = { versions, status };
    if (status.state === 'running' || status.state === 'restarting') {
      out.flows = await countFlows(this.layout).catch(() => undefined);
      if (!out.flows) delete out.flows;
    }
    return out;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.work.then(fn, fn);
    this.work = next.catch(() => {});
    return next;
  }

  private env(): NodeJS.ProcessEnv {
    return this.layout.env();
  }

  /** The whole start-up: adopt what runs, start what does not, wait until the stack is usable. */
  private async startAll(): Promise<void> {
    if (this.state !== 'restarting') this.state = 'starting';
    this.lastAttempt = Date.now();
    const t0 = Date.now();
    try {
      const missing = OvnStack.missing();
      if (missing) throw new Error(missing);
      mkdirSync(this.opts.runDir, { recursive: true, mode: 0o700 });
      mkdirSync(this.layout.logDir, { recursive: true, mode: 0o700 });
      const freshNetns = await this.ensureNetns();
      for (const k of ORDER) this.procs[k].adopt();
      if (this.procs.vswitchd.pid !== undefined && !this.inSwitchNetns(this.procs.vswitchd.pid)) {
        log.warn('ovs-vswitchd runs outside the switch netns: restarting it');
        await this.procs.vswitchd.stop();
      }
      const adopted = ORDER.filter((k) => this.procs[k].alive());
      const dbStates = await Promise.all((['nb', 'sb', 'ovs'] as const).map((k) => (this.procs[k].alive() ? 'ok' : this.startDbServer(k))));
      await configureSwitch(this.layout, this.opts.chassis);
      await Promise.all((['northd', 'vswitchd', 'controller'] as const).filter((k) => !this.procs[k].alive()).map((k) => this.startDaemon(k)));
      await this.waitReady();
      this.state = 'running';
      this.reason = undefined;
      this.startWatch();
      log.info('OVN stack running', { ms: Date.now() - t0, adopted });
      if (dbStates[0] !== 'ok') this.emit('nb-reset');
      if (dbStates[2] !== 'ok' || freshNetns) this.emit('ovs-reset');
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      this.state = 'down';
      this.reason = msg;
      log.error('OVN stack did not start', { error: msg });
      throw new Unavailable(`the OVN stack is not available: ${msg}`, { cause: e });
    }
  }

  /** Makes the switch netns (loopback up) unless it exists. True when it was made now. */
  private async ensureNetns(): Promise<boolean> {
    if (existsSync(this.layout.netnsPath)) return false;
    await run(['ip', 'netns', 'add', this.switchNetns]);
    await run(['ip', '-n', this.switchNetns, 'link', 'set', 'lo', 'up']);
    return true;
  }

  private inSwitchNetns(pid: number): boolean {
    try {
      return statSync(`/proc/${pid}/ns/net`).ino === statSync(this.layout.netnsPath).ino;
    } catch {
      return false;
    }
  }

  /**
   * Starts one database server, after making sure its file is usable. A file whose header reads
   * but that the server still cannot load is replaced once more, empty.
   */
  private async startDbServer(k: ProcessKey): Promise<DbFileState> {
    const s = DB_SERVERS[k]!;
    const file = s.file(this.layout);
    let state = await ensureDbFile(file, s.db);
    if (state === 'recreated') log.warn('database file was unreadable: replaced by an empty one', { file, kept: `${file}.bad` });
    try {
      await this.procs[k].start(this.env());
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      if (!/ovsdb error|syntax error|I\/O error|unexpected file format/i.test(msg)) throw e;
      log.warn('database file cannot be loaded: replaced by an empty one', { file, error: msg });
      await replaceDb(file, s.db);
      state = 'recreated';
      await this.procs[k].start(this.env());
    }
    return state;
  }

  private async startDaemon(k: ProcessKey): Promise<void> {
    if (k === 'controller') this.removeStaleControllerSockets();
    await this.procs[k].start(this.env());
  }

  /** ovn-controller names its control socket after its pid; dead ones' stay behind. */
  private removeStaleControllerSockets(): void {
    let names: string[] = [];
    try {
      names = readdirSync(this.opts.runDir);
    } catch {
      return;
    }
    for (const n of names) {
      const m = /^ovn-controller\.([0-9]+)\.ctl$/.exec(n);
      if (!m || existsSync(`/proc/${m[1]}`)) continue;
      try {
        unlinkSync(this.layout.run(n));
      } catch {
        /* gone */
      }
    }
  }

  /** NB answers, br-int's OpenFlow socket exists (vswitchd made the bridge) and the Chassis row is in SB. */
  private async waitReady(): Promise<void> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    if (!(await answers(this.nbSocket))) throw new Error(`the northbound database does not answer on ${this.nbSocket}`);
    while (!existsSync(this.layout.bridgeMgmt)) {
      if (Date.now() > deadline) throw new Error(`ovs-vswitchd did not create ${BRIDGE}: ${lastLines(this.procs.vswitchd.spec.logFile)}`);
      await sleep(10);
    }
    try {
      await waitForChassis(this.layout, this.opts.chassis, Math.max(1000, deadline - Date.now()));
    } catch (e) {
      throw new Error(`ovn-controller did not register chassis ${this.opts.chassis}: ${lastLines(this.procs.controller.spec.logFile)}`, { cause: e });
    }
  }

  private startWatch(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), WATCH_INTERVAL_MS);
    this.timer.unref();
  }

  private stopWatch(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private tick(): void {
    if (this.healing || this.starting || this.state === 'stopped') return;
    if (this.state === 'down' && Date.now() - this.lastAttempt < DOWN_RETRY_MS) return;
    const dead = ORDER.filter((k) => !this.procs[k].alive());
    if (!dead.length && this.state !== 'down') return;
    this.healing = this.serial(() => this.heal()).finally(() => (this.healing = undefined));
  }

  /** Brings back every dead process, in start order, with backoff; gives up (down) on one that keeps failing. */
  private async heal(): Promise<void> {
    if (this.state === 'stopped') return;
    const wasDown = this.state === 'down';
    this.lastAttempt = Date.now();
    let nbReset = false;
    let ovsReset = false;
    for (const k of ORDER) {
      const p = this.procs[k];
      if (p.alive()) continue;
      if (!wasDown) {
        log.warn(`${p.name} died: restarting it`, { pid: p.pid });
        this.recordFailure(p);
      }
      this.state = 'restarting';
      for (;;) {
        const recent = p.failures.length;
        if (recent >= MAX_FAILURES && !wasDown) {
          const why = p.lastError ?? (lastLines(p.spec.logFile, 1) || 'no log');
          return this.giveUp(`${p.name} failed ${recent} times within ${FAILURE_WINDOW_MS / 1000} s: ${why}`);
        }
        if (recent > 1) await sleep(Math.min(MAX_BACKOFF_MS, 200 * 2 ** (recent - 2)));
        if (this.isStopped()) return;
        try {
          if (DB_SERVERS[k]) {
            const st = await this.startDbServer(k);
            if (k === 'nb' && st !== 'ok') nbReset = true;
            if (k === 'ovs') {
              if (st !== 'ok') ovsReset = true;
              await configureSwitch(this.layout, this.opts.chassis);
            }
          } else {
            await this.startDaemon(k);
          }
          p.restarts++;
          // Back from down: its old failures no longer count against it.
          if (wasDown) p.failures.length = 0;
          log.info(`${p.name} restarted`, { pid: p.pid, restarts: p.restarts });
          this.emit('restarted', p.name);
          break;
        } catch (e) {
          this.recordFailure(p);
          log.error(`${p.name} did not restart`, { error: e instanceof Error ? e.message : String(e) });
          if (wasDown) return this.giveUp(`${p.name} cannot be started: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
    }
    this.state = 'running';
    this.reason = undefined;
    if (nbReset) this.emit('nb-reset');
    if (ovsReset) this.emit('ovs-reset');
  }

  /** A read TypeScript does not narrow: detach() may have stopped us while a backoff slept. */
  private isStopped(): boolean {
    return this.state === 'stopped';
  }

  private recordFailure(p: StackProcess): void {
    const now = Date.now();
    p.failures.push(now);
    while (p.failures.length && p.failures[0]! < now - FAILURE_WINDOW_MS) p.failures.shift();
  }

  private giveUp(reason: string): void {
    this.state = 'down';
    this.reason = reason;
    this.lastAttempt = Date.now();
    log.error('OVN stack is down', { reason });
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
