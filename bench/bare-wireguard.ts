/**
 * Bare wireguard-go between two network namespaces over one veth: the reference the `wireguard`
 * section of `npm run bench` measures arca's driver against (issue 11, "Speed"), built as
 * ../shared/reference/wireguard-userspace.md §2 built its case (b). Namespaces `<tag>-a` and
 * `<tag>-b` share a veth `v0` (the underlay, UNDERLAY/30); each runs wireguard-go on interface
 * `<tag>a` / `<tag>b` (MTU 1420, the overlay address on it, the other side its one peer).
 *
 * Keys come from node:crypto and the configuration goes over the UAPI socket from Node (wg-keys.ts,
 * uapi.ts), as the driver hands them over; neither touches the data path measured. Then `uapiGet`
 * checks what was set (a `set` is not atomic). Interface names carry the random tag:
 * wireguard-go's UAPI socket path is global, so a name must be unique machine-wide, and the tag
 * never matches the driver's `wg<12 hex>` (its sweep would take it for its own).
 *
 * Both wireguard-go processes are our children, started in the foreground and stopped by pid;
 * their logs live in /tmp/<tag>. {@link BareWireguard.destroy} removes it all (also a socket
 * file a killed wireguard-go left), and an exit hook does the same if the process ends first.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { run } from '../src/sys/runner.js';
import { logTail } from '../src/sys/proc-files.js';
import { uapiGet, uapiSet } from '../src/network/drivers/wireguard/uapi.js';
import { generateKeyPair, type WgKeyPair } from '../src/network/drivers/wireguard/wg-keys.js';
import { uapiSocketPath } from '../src/network/drivers/wireguard/wg-names.js';
import { raiseSocketBuffers, wireguardGoPath, wireguardGoTuning } from '../src/network/drivers/wireguard/wg-process.js';
import { rssKb } from '../test/e2e/harness.js';
import { firstReply } from './data-path.js';
import { nsexec } from './net-bench.js';

/** Inside the benchmark range 198.18.0.0/15, apart from the other sections' subnets. */
const UNDERLAY = '198.19.96';
const OVERLAY = '198.19.97';
const PORT = 51820;
const MTU = 1420;
const START_TIMEOUT_MS = 5000;

/** One side of the bare pair. */
export interface BareWgEndpoint {
  netns: string;
  ifname: string;
  /** Overlay address (on the WireGuard interface). */
  ip: string;
  /** Underlay address (on `v0`). */
  underlay: string;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const r1 = (x: number): number => Math.round(x * 10) / 10;
const socketPath = uapiSocketPath;


/** Two netns over one veth, wireguard-go in each, peered with each other. */
export class BareWireguard {
  readonly dir: string;
  readonly a: BareWgEndpoint;
  readonly b: BareWgEndpoint;
  /** Milliseconds from the first `ip netns add` to the first ping answered through the tunnel. */
  upMs?: number;
  /** UDP sockets whose buffers a tuned pair raised (0: this wireguard-go sizes its own). */
  buffersRaised = 0;
  private readonly procs = new Map<string, ChildProcess>();
  private readonly netns: string[] = [];
  private readonly exitHook = (): void => this.killSync();
  private destroyed?: Promise<void>;

  private constructor(readonly tag: string) {
    this.dir = `/tmp/${tag}`;
    this.a = { netns: `${tag}-a`, ifname: `${tag}a`, ip: `${OVERLAY}.1`, underlay: `${UNDERLAY}.1` };
    this.b = { netns: `${tag}-b`, ifname: `${tag}b`, ip: `${OVERLAY}.2`, underlay: `${UNDERLAY}.2` };
  }

  /** Builds the pair and waits until a pings b through the tunnel. On failure everything made so far is removed first. */
  static async build(tag: string, progress: (m: string) => void, opts: { tuned?: boolean } = {}): Promise<BareWireguard> {
    if (tag.length + 1 > 15) throw new Error(`bare wireguard: tag ${tag} makes interface names longer than 15 characters`);
    const bare = new BareWireguard(tag);
    process.on('exit', bare.exitHook);
    try {
      await bare.setUp(progress, opts.tuned ?? false);
      // The driver's tunings of wireguard-go (its environment, then its UDP buffers where it
      // leaves them small), applied to a bare pair too, so the report can tell what the tuning
      // buys from what the driver's layout costs.
      if (opts.tuned) {
        for (const [name, p] of bare.procs) {
          if (!p.pid) continue;
          const r = raiseSocketBuffers(p.pid, name);
          if (r.sockets === 0) throw new Error(`bare wireguard: ${name}'s UDP sockets were not found`);
          bare.buffersRaised += r.raised;
        }
      }
      return bare;
    } catch (err) {
      await bare.destroy();
      throw err;
    }
  }

  private async setUp(progress: (m: string) => void, tuned: boolean): Promise<void> {
    if (existsSync(this.dir)) throw new Error(`${this.dir} exists already`);
    for (const ep of [this.a, this.b]) {
      if (existsSync(socketPath(ep.ifname))) throw new Error(`${socketPath(ep.ifname)} exists already`);
      if (existsSync(`/run/netns/${ep.netns}`)) throw new Error(`netns ${ep.netns} exists already`);
    }
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const t0 = performance.now();
    progress(`bare wireguard: netns ${this.a.netns} and ${this.b.netns} over one veth, wireguard-go in each`);
    for (const ep of [this.a, this.b]) {
      await run(['ip', 'netns', 'add', ep.netns]);
      this.netns.push(ep.netns);
      await run(['ip', '-n', ep.netns, 'link', 'set', 'lo', 'up']);
    }
    await run(['ip', '-n', this.a.netns, 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v0', 'netns', this.b.netns]);
    for (const ep of [this.a, this.b]) {
      await run(['ip', '-n', ep.netns, 'addr', 'add', `${ep.underlay}/30`, 'dev', 'v0']);
      await run(['ip', '-n', ep.netns, 'link', 'set', 'v0', 'up']);
      this.start(ep, tuned);
    }
    await Promise.all([this.a, this.b].map((ep) => this.waitForSocket(ep)));

    const keys = new Map<BareWgEndpoint, WgKeyPair>([
      [this.a, generateKeyPair()],
      [this.b, generateKeyPair()],
    ]);
    for (const [ep, peer] of [
      [this.a, this.b],
      [this.b, this.a],
    ] as const) {
      const sock = socketPath(ep.ifname);
      const peerKey = keys.get(peer)!.publicKey;
      await uapiSet(sock, {
        privateKey: keys.get(ep)!.privateKey,
        listenPort: PORT,
        replacePeers: true,
        peers: [{ publicKey: peerKey, endpoint: `${peer.underlay}:${PORT}`, allowedIps: [`${peer.ip}/32`] }],
      });
      const got = await uapiGet(sock);
      if (got.listenPort !== PORT || got.peers.length !== 1 || got.peers[0]!.publicKey !== peerKey) {
        throw new Error(`bare wireguard: ${ep.ifname} did not take its configuration: ${JSON.stringify({ ...got, privateKey: undefined })}`);
      }
      await run(['ip', '-n', ep.netns, 'link', 'set', ep.ifname, 'mtu', String(MTU), 'up']);
      await run(['ip', '-n', ep.netns, 'addr', 'add', `${ep.ip}/24`, 'dev', ep.ifname]);
    }
    const first = await firstReply(this.a.netns, this.b.ip, 10);
    if (first === undefined) throw new Error(`bare wireguard: ${this.a.ip} never got a reply from ${this.b.ip}. ${this.logTail()}`);
    this.upMs = r1(first - t0);
  }

  /** The pids of the two wireguard-go processes. */
  pids(): number[] {
    return [...this.procs.values()].flatMap((p) => (p.pid ? [p.pid] : []));
  }

  /** VmRSS of each wireguard-go, in kB, by interface name. */
  rssKb(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, p] of this.procs) if (p.pid) out[name] = rssKb(p.pid);
    return out;
  }

  /** Stops both processes by pid (TERM, then KILL after 2 s), deletes the netns, the folder and stale sockets. Idempotent. */
  destroy(): Promise<void> {
    this.destroyed ??= (async () => {
      const live = [...this.procs.values()].filter((p) => p.pid && p.exitCode === null && p.signalCode === null);
      const exited = live.map((p) => new Promise<void>((r) => p.once('exit', () => r())));
      for (const p of live) p.kill('SIGTERM');
      await Promise.race([Promise.all(exited), sleep(2000)]);
      for (const p of live) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
      await Promise.race([Promise.all(exited), sleep(2000)]);
      for (const ns of [...this.netns].reverse()) await run(['ip', 'netns', 'del', ns], { allowFailure: true }).catch(() => {});
      this.removeSockets();
      rmSync(this.dir, { recursive: true, force: true });
      process.off('exit', this.exitHook);
    })();
    return this.destroyed;
  }

  /** A SIGKILLed wireguard-go leaves its socket file; ours are removed once their process is gone. */
  private removeSockets(): void {
    for (const [name, p] of this.procs) if (p.exitCode !== null || p.signalCode !== null) rmSync(socketPath(name), { force: true });
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
    for (const name of this.procs.keys()) rmSync(socketPath(name), { force: true });
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** wireguard-go in the foreground (so the pid is its own: nsenter execs it), in the endpoint's netns. */
  private start(ep: BareWgEndpoint, tuned: boolean): void {
    const fd = openSync(join(this.dir, `${ep.ifname}.log`), 'a');
    try {
      // The same binary the daemon runs (ARCA_WIREGUARD_GO when the bench was given one).
      const argv = nsexec(ep.netns, [wireguardGoPath() ?? 'wireguard-go', ep.ifname]);
      const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', fd, fd], env: { ...process.env, ...(tuned ? wireguardGoTuning() : {}), WG_PROCESS_FOREGROUND: '1' } });
      child.on('error', () => {});
      this.procs.set(ep.ifname, child);
    } finally {
      closeSync(fd);
    }
  }

  private async waitForSocket(ep: BareWgEndpoint): Promise<void> {
    const deadline = Date.now() + START_TIMEOUT_MS;
    const p = this.procs.get(ep.ifname)!;
    for (;;) {
      if (p.exitCode !== null || p.signalCode !== null) throw new Error(`bare wireguard: wireguard-go ${ep.ifname} exited (${p.exitCode ?? p.signalCode}). ${this.logTail()}`);
      if (await socketAnswers(socketPath(ep.ifname))) return;
      if (Date.now() > deadline) throw new Error(`bare wireguard: no UAPI socket for ${ep.ifname} after ${START_TIMEOUT_MS / 1000} s. ${this.logTail()}`);
      await sleep(5);
    }
  }

  private logTail(): string {
    const parts: string[] = [];
    for (const name of this.procs.keys()) {
      const tail = logTail(join(this.dir, `${name}.log`));
      if (tail) parts.push(`${name}: ${tail}`);
    }
    return parts.length ? `Logs: ${parts.join('; ')}` : '';
  }
}

/** Does a unix socket accept a connection? */
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
