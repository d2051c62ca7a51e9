/**
 * A bare OVN switch built by hand with the Debian CLI tools, the reference the `ovn` section of
 * `npm run bench` measures arca's driver against (issue 9, "Speed"). It follows
 * ../shared/reference/ovn-on-userspace-datapath.md: its own ovsdb-servers (NB, SB, Open_vSwitch),
 * ovn-northd, ovs-vswitchd in its own netns on the userspace datapath with userspace TSO on (set
 * before vswitchd starts: without it TCP over veths is silently dropped), ovn-controller; one
 * logical switch with a router port holding the gateway (as arca's networks have), and two
 * "container" netns whose veths' outer ends are OVS ports carrying `iface-id`.
 *
 * Every process is a child of ours, started in the foreground, and is stopped by its pid; every
 * folder and socket is under /tmp/<tag>, with OVS_RUNDIR/OVN_RUNDIR/... pointed there so nothing
 * reaches a system OVS. Namespaces are `<tag>-sw`, `<tag>-a`, `<tag>-b`. {@link BareOvn.destroy}
 * removes it all, and an exit hook does the same if the process ends first.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { run } from '../src/sys/runner.js';
import { rssKb } from '../test/e2e/harness.js';
import { firstReply } from './data-path.js';
import { nsexec } from './net-bench.js';

const NB_SCHEMA = '/usr/share/ovn/ovn-nb.ovsschema';
const SB_SCHEMA = '/usr/share/ovn/ovn-sb.ovsschema';
const OVS_SCHEMA = '/usr/share/openvswitch/vswitch.ovsschema';
/** Inside the benchmark range 198.18.0.0/15, apart from net-bench's 198.19.77.0/24. */
const SUBNET = '198.19.78';
const START_TIMEOUT_MS = 10_000;

/** The two "containers" of the bare switch. */
export interface BareEndpoint {
  netns: string;
  ip: string;
}

/** Milliseconds from the first `ovsdb-tool create` to each step of the build. */
export interface BareTimeline {
  central_up_ms: number;
  stack_ready_ms: number;
  plugged_ms: number;
  first_ping_ms: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const r1 = (x: number): number => Math.round(x * 10) / 10;

/** A bare OVN stack with one logical switch and two plugged netns. */
export class BareOvn {
  readonly dir: string;
  readonly sw: string;
  readonly a: BareEndpoint;
  readonly b: BareEndpoint;
  timeline?: BareTimeline;
  /** Ports added by {@link addIdlePorts} so far. */
  idlePorts = 0;
  private readonly procs = new Map<string, ChildProcess>();
  private readonly netns: string[] = [];
  private readonly env: NodeJS.ProcessEnv;
  private readonly exitHook = (): void => this.killSync();
  private destroyed?: Promise<void>;

  private constructor(readonly tag: string) {
    this.dir = `/tmp/${tag}`;
    this.sw = `${tag}-sw`;
    this.a = { netns: `${tag}-a`, ip: `${SUBNET}.2` };
    this.b = { netns: `${tag}-b`, ip: `${SUBNET}.3` };
    const run = join(this.dir, 'run');
    const log = join(this.dir, 'log');
    const db = join(this.dir, 'db');
    this.env = {
      ...process.env,
      OVS_RUNDIR: run,
      OVS_LOGDIR: log,
      OVS_DBDIR: db,
      OVS_SYSCONFDIR: join(this.dir, 'etc'),
      OVN_RUNDIR: run,
      OVN_LOGDIR: log,
      OVN_DBDIR: db,
      OVN_SYSCONFDIR: join(this.dir, 'etc'),
    };
  }

  private path(...p: string[]): string {
    return join(this.dir, ...p);
  }

  private get nbDb(): string {
    return `unix:${this.path('run', 'nb.sock')}`;
  }
  private get sbDb(): string {
    return `unix:${this.path('run', 'sb.sock')}`;
  }
  private get ovsDb(): string {
    return `unix:${this.path('run', 'db.sock')}`;
  }

  /**
   * Builds the stack, the switch and the two endpoints, and waits until a pings b. On failure
   * everything made so far is removed before the error is thrown.
   */
  static async build(tag: string, progress: (m: string) => void): Promise<BareOvn> {
    const bare = new BareOvn(tag);
    process.on('exit', bare.exitHook);
    try {
      await bare.setUp(progress);
      return bare;
    } catch (err) {
      await bare.destroy();
      throw err;
    }
  }

  private async setUp(progress: (m: string) => void): Promise<void> {
    if (existsSync(this.dir)) throw new Error(`${this.dir} exists already`);
    for (const sub of ['run', 'log', 'db', 'etc']) mkdirSync(this.path(sub), { recursive: true });
    const t0 = performance.now();
    const since = (): number => r1(performance.now() - t0);

    progress('bare ovn: databases, ovn-northd, ovs-vswitchd, ovn-controller');
    await Promise.all([
      run(['ovsdb-tool', 'create', this.path('db', 'nb.db'), NB_SCHEMA]),
      run(['ovsdb-tool', 'create', this.path('db', 'sb.db'), SB_SCHEMA]),
      run(['ovsdb-tool', 'create', this.path('db', 'conf.db'), OVS_SCHEMA]),
    ]);
    for (const [name, db] of [
      ['nb', 'nb.db'],
      ['sb', 'sb.db'],
      ['db', 'conf.db'],
    ] as const) {
      this.start(`ovsdb-server-${name}`, [
        'ovsdb-server',
        this.path('db', db),
        `--remote=punix:${this.path('run', `${name}.sock`)}`,
        `--unixctl=${this.path('run', `ovsdb-${name}.ctl`)}`,
        `--pidfile=${this.path('run', `ovsdb-${name}.pid`)}`,
        `--log-file=${this.path('log', `ovsdb-${name}.log`)}`,
      ]);
    }
    await Promise.all(['nb', 'sb', 'db'].map((s) => this.waitFor(`${s}.sock`, () => socketAnswers(this.path('run', `${s}.sock`)))));
    this.start('ovn-northd', [
      'ovn-northd',
      `--ovnnb-db=${this.nbDb}`,
      `--ovnsb-db=${this.sbDb}`,
      `--unixctl=${this.path('run', 'ovn-northd.ctl')}`,
      `--pidfile=${this.path('run', 'ovn-northd.pid')}`,
      `--log-file=${this.path('log', 'ovn-northd.log')}`,
    ]);
    const centralUp = since();

    // userspace-tso-enable is read only when vswitchd starts; br-int must exist as netdev before
    // ovn-controller looks for it, or it makes one on the kernel datapath, which is absent here.
    await this.vsctl([
      '--no-wait', 'init',
      '--', 'set', 'Open_vSwitch', '.',
      'other_config:userspace-tso-enable=true',
      `external_ids:system-id=${this.tag}`,
      `external_ids:ovn-remote=${this.sbDb}`,
      'external_ids:ovn-encap-type=geneve',
      'external_ids:ovn-encap-ip=127.0.0.1',
      'external_ids:ovn-bridge=br-int',
      'external_ids:ovn-bridge-datapath-type=netdev',
      '--', 'add-br', 'br-int',
      '--', 'set', 'Bridge', 'br-int', 'datapath_type=netdev', 'fail_mode=secure',
    ]);
    await this.ip(['netns', 'add', this.sw]);
    this.netns.push(this.sw);
    await this.ip(['-n', this.sw, 'link', 'set', 'lo', 'up']);
    this.start(
      'ovs-vswitchd',
      [
        'ovs-vswitchd',
        this.ovsDb,
        `--unixctl=${this.path('run', 'ovs-vswitchd.ctl')}`,
        `--pidfile=${this.path('run', 'ovs-vswitchd.pid')}`,
        `--log-file=${this.path('log', 'ovs-vswitchd.log')}`,
      ],
      this.sw,
    );
    // ovn-controller 23.03 has no --unixctl: its control socket lands in OVN_RUNDIR, and it finds
    // br-int.mgmt through OVS_RUNDIR, the same as vswitchd's (both in this.env).
    this.start('ovn-controller', [
      'ovn-controller',
      this.ovsDb,
      `--pidfile=${this.path('run', 'ovn-controller.pid')}`,
      `--log-file=${this.path('log', 'ovn-controller.log')}`,
    ]);
    await this.waitFor('the chassis in the southbound database', async () => {
      const r = await run(['ovn-sbctl', `--db=${this.sbDb}`, '--timeout=5', '--bare', '--columns=name', 'find', 'Chassis', `name=${this.tag}`], {
        env: this.env,
        allowFailure: true,
      });
      return r.code === 0 && r.stdout.trim() === this.tag;
    });
    await this.waitFor('br-int in vswitchd', async () => {
      const r = await run(['ovs-vsctl', `--db=${this.ovsDb}`, '--timeout=5', 'get', 'Bridge', 'br-int', 'datapath_id'], { env: this.env, allowFailure: true });
      return r.code === 0 && /[0-9a-f]{16}/.test(r.stdout);
    });
    const stackReady = since();

    progress('bare ovn: logical switch, router port, two plugged netns');
    const macA = '02:0b:00:00:00:02';
    const macB = '02:0b:00:00:00:03';
    await this.nbctl([
      '--', 'ls-add', 'sw',
      ...lsp('pa', macA, this.a.ip),
      ...lsp('pb', macB, this.b.ip),
      '--', 'lr-add', 'lr',
      '--', 'lrp-add', 'lr', 'lr-sw', '02:0b:00:00:00:01', `${SUBNET}.1/24`,
      '--', 'lsp-add', 'sw', 'sw-lr',
      '--', 'lsp-set-type', 'sw-lr', 'router',
      '--', 'lsp-set-addresses', 'sw-lr', 'router',
      '--', 'lsp-set-options', 'sw-lr', 'router-port=lr-sw',
    ]);
    for (const [ep, mac, port, suffix] of [
      [this.a, macA, 'pa', 'a'],
      [this.b, macB, 'pb', 'b'],
    ] as const) {
      const outer = `${this.tag}${suffix}`;
      await this.ip(['netns', 'add', ep.netns]);
      this.netns.push(ep.netns);
      await this.ip(['-n', ep.netns, 'link', 'set', 'lo', 'up']);
      await this.ip(['-n', this.sw, 'link', 'add', outer, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ep.netns]);
      await this.ip(['-n', ep.netns, 'link', 'set', 'eth0', 'address', mac]);
      await this.ip(['-n', ep.netns, 'addr', 'add', `${ep.ip}/24`, 'dev', 'eth0']);
      await this.ip(['-n', ep.netns, 'link', 'set', 'eth0', 'up']);
      await this.ip(['-n', ep.netns, 'route', 'add', 'default', 'via', `${SUBNET}.1`]);
      await this.ip(['-n', this.sw, 'link', 'set', outer, 'up']);
      await this.vsctl(['add-port', 'br-int', outer, '--', 'set', 'Interface', outer, `external_ids:iface-id=${port}`]);
    }
    await this.nbctl(['--wait=hv', 'sync']);
    const plugged = since();
    const first = await firstReply(this.a.netns, this.b.ip, 10);
    if (first === undefined) throw new Error(`bare ovn: ${this.a.ip} never got a reply from ${this.b.ip}. ${this.logTail()}`);
    this.timeline = { central_up_ms: centralUp, stack_ready_ms: stackReady, plugged_ms: plugged, first_ping_ms: r1(first - t0) };
  }

  /**
   * The bare counterpart of arca's connect-until-ping: netns `<tag>-c<i>` is plugged first (veth,
   * OVS port with iface-id, untimed), then its Logical_Switch_Port is added by `ovn-nbctl` and the
   * clock runs until it pings b. Returns the milliseconds, or undefined if no reply came in 5 s.
   */
  async lspAddUntilPing(i: number): Promise<number | undefined> {
    const ns = `${this.tag}-c${i}`;
    const outer = `${this.tag}c${i}`;
    const port = `pc${i}`;
    const ip = `${SUBNET}.${10 + i}`;
    const mac = `02:0b:00:00:01:${(10 + i).toString(16).padStart(2, '0')}`;
    await this.ip(['netns', 'add', ns]);
    this.netns.push(ns);
    await this.ip(['-n', this.sw, 'link', 'add', outer, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    await this.ip(['-n', ns, 'link', 'set', 'eth0', 'address', mac]);
    await this.ip(['-n', ns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
    await this.ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
    await this.ip(['-n', this.sw, 'link', 'set', outer, 'up']);
    await this.vsctl(['add-port', 'br-int', outer, '--', 'set', 'Interface', outer, `external_ids:iface-id=${port}`]);
    const t0 = performance.now();
    await this.nbctl(lsp(port, mac, ip));
    const t = await firstReply(ns, this.b.ip, 5);
    return t === undefined ? undefined : t - t0;
  }

  /**
   * Grows the switch by `count` idle ports, for figures at the size arca's scale run reaches:
   * veth pairs wholly inside the switch netns (the OVS end is polled by vswitchd like a
   * container's; the other end, IPv6 off, sends nothing), each a Logical_Switch_Port with a MAC
   * and port security. Made in batches (`ip -batch`, one ovs-vsctl and one ovn-nbctl per 200).
   */
  async addIdlePorts(count: number): Promise<void> {
    await run(nsexec(this.sw, ['sysctl', '-qw', 'net.ipv6.conf.default.disable_ipv6=1']));
    const names = Array.from({ length: count }, (_, k) => this.idlePorts + k).map((i) => ({ i, outer: `${this.tag}i${i}`, inner: `${this.tag}j${i}`, port: `pi${i}` }));
    this.idlePorts += count;
    const mac = (i: number): string => `02:0c:00:${((i >> 16) & 255).toString(16).padStart(2, '0')}:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
    for (let k = 0; k < names.length; k += 200) {
      const chunk = names.slice(k, k + 200);
      const batch = chunk.flatMap(({ outer, inner }) => [`link add ${outer} type veth peer name ${inner}`, `link set ${outer} up`, `link set ${inner} up`]);
      await run(['ip', '-n', this.sw, '-batch', '-'], { input: batch.join('\n') + '\n', timeoutMs: 120_000 });
      await this.vsctl(chunk.flatMap(({ outer, port }) => ['--', 'add-port', 'br-int', outer, '--', 'set', 'Interface', outer, `external_ids:iface-id=${port}`]));
      await this.nbctl(chunk.flatMap(({ i, port }) => ['--', 'lsp-add', 'sw', port, '--', 'lsp-set-addresses', port, mac(i), '--', 'lsp-set-port-security', port, mac(i)]));
    }
    await this.nbctl(['--wait=hv', 'sync']);
  }

  /** The pids of its OVN/OVS processes. */
  pids(): number[] {
    return [...this.procs.values()].flatMap((p) => (p.pid ? [p.pid] : []));
  }

  /** VmRSS of each OVN/OVS process, in kB. */
  rssKb(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, p] of this.procs) if (p.pid) out[name] = rssKb(p.pid);
    return out;
  }

  /** Stops every process by pid (TERM, then KILL after 2 s), deletes the netns and the folder. Idempotent. */
  destroy(): Promise<void> {
    this.destroyed ??= (async () => {
      const live = [...this.procs.values()].filter((p) => p.pid && p.exitCode === null && p.signalCode === null);
      const exited = live.map((p) => new Promise<void>((r) => p.once('exit', () => r())));
      for (const p of live) p.kill('SIGTERM');
      const timer = new Promise<void>((r) => setTimeout(r, 2000).unref());
      await Promise.race([Promise.all(exited), timer]);
      for (const p of live) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
      await Promise.race([Promise.all(exited), new Promise<void>((r) => setTimeout(r, 2000).unref())]);
      for (const ns of [...this.netns].reverse()) await run(['ip', 'netns', 'del', ns], { allowFailure: true }).catch(() => {});
      rmSync(this.dir, { recursive: true, force: true });
      process.off('exit', this.exitHook);
    })();
    return this.destroyed;
  }

  /** The exit hook: synchronous, never throws. */
  private killSync(): void {
    for (const p of this.procs.values()) {
      if (p.pid && p.exitCode === null && p.signalCode === null) {
        try {
          process.kill(p.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    for (const ns of this.netns) spawnSync('ip', ['netns', 'del', ns]);
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Starts a daemon in the foreground (so its pid is the child's), in netns `ns` if given. */
  private start(name: string, argv: string[], ns?: string): void {
    const fd = openSync(this.path('log', `${name}.out`), 'a');
    try {
      // nsenter execs the daemon: the child's pid is the daemon's.
      const full = ns ? nsexec(ns, argv) : argv;
      const child = spawn(full[0]!, full.slice(1), { stdio: ['ignore', fd, fd], env: this.env });
      child.on('error', () => {});
      this.procs.set(name, child);
    } finally {
      closeSync(fd);
    }
  }

  private async waitFor(what: string, ready: () => boolean | Promise<boolean>): Promise<void> {
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      for (const [name, p] of this.procs) {
        if (p.exitCode !== null || p.signalCode !== null) throw new Error(`bare ovn: ${name} exited (${p.exitCode ?? p.signalCode}). ${this.logTail()}`);
      }
      if (await ready()) return;
      if (Date.now() > deadline) throw new Error(`bare ovn: no ${what} after ${START_TIMEOUT_MS / 1000} s. ${this.logTail()}`);
      await sleep(10);
    }
  }

  private logTail(): string {
    const parts: string[] = [];
    for (const name of this.procs.keys()) {
      for (const f of [this.path('log', `${name}.out`), this.path('log', `${name.replace(/^ovsdb-server-/, 'ovsdb-')}.log`)]) {
        try {
          const lines = readFileSync(f, 'utf8').trim().split('\n').filter((l) => /ERR|WARN|EMER/.test(l)).slice(-3);
          if (lines.length) parts.push(`${name}: ${lines.join(' | ')}`);
        } catch {
          /* no log */
        }
      }
    }
    return parts.length ? `Logs: ${parts.join('; ')}` : '';
  }

  private vsctl(args: string[]): Promise<unknown> {
    return run(['ovs-vsctl', `--db=${this.ovsDb}`, '--timeout=60', ...args], { env: this.env, timeoutMs: 90_000 });
  }

  private nbctl(args: string[]): Promise<unknown> {
    return run(['ovn-nbctl', `--db=${this.nbDb}`, '--timeout=60', ...args], { env: this.env, timeoutMs: 90_000 });
  }

  private ip(args: string[]): Promise<unknown> {
    return run(['ip', ...args]);
  }
}

/** Does a unix socket accept a connection? (Its file appears at bind(), a moment before listen().) */
function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    if (!existsSync(path)) return resolve(false);
    const c = createConnection(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

/** ovn-nbctl commands for a port with its address and port security, as arca's endpoints have. */
function lsp(name: string, mac: string, ip: string): string[] {
  return ['--', 'lsp-add', 'sw', name, '--', 'lsp-set-addresses', name, `${mac} ${ip}`, '--', 'lsp-set-port-security', name, `${mac} ${ip}`];
}
