/**
 * The side-by-side data-path measurement the `ovn` and `wireguard` bench sections share: a bare
 * reference and arca's path, each two network namespaces, measured with the host's busybox ping
 * and iperf3 entered into them with nsenter, the sides taking turns round by round so both see
 * the same machine load.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { run } from '../src/sys/runner.js';
import { combinePings, gbit, iperfClient, nsexec, quietPingRound, ratio, type PingResult } from './net-bench.js';
import { stats } from './sample-stats.js';

/** A network namespace (a name under /run/netns or a path) and its address. */
export interface Endpoint {
  ns: string;
  ip: string;
}

/** One side of the data-path comparison: two endpoints, measured a→b and b→a. */
export interface Side {
  a: Endpoint;
  b: Endpoint;
  /** Scratch file for the quiet ping's per-packet lines. */
  pingOut: string;
  /**
   * Processes that carry the path (for WireGuard: the two wireguard-go): their CPU time and
   * their namespaces' UDP receive-buffer drops are reported per iperf3 round, which is where
   * a tunnel's throughput goes (CPU-bound, and a receiver's socket overflowing).
   */
  carriers?: () => number[];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Ping rounds and iperf3 rounds over every side in turn, each round both ways; each side reports
 * the median of its rounds, and of each direction (`<side>_ping`, `<side>_iperf_gbit`). Both ways,
 * because on one OVS switch one direction was measured ~0.1 ms slower than the other, on the bare
 * switch and arca's alike, and which one changes with the ports (likely vswitchd's one thread
 * polling its non-PMD ports in a fixed order): one direction alone would compare port numbering,
 * not switches. The warm-up pings also do what a first packet costs (ARP, WireGuard's handshake).
 * iperf3 runs the host's binary in both namespaces, so only the network path differs.
 */
export async function dataPath(
  sides: Array<[string, Side]>,
  servers: ChildProcess[],
  progress: (m: string) => void,
  rounds: { ping: number; iperf: number },
): Promise<Record<string, unknown>> {
  const names = sides.map(([k]) => k).join(' and ');
  const ways = (s: Side): Array<[string, Endpoint, Endpoint]> => [
    ['a_to_b', s.a, s.b],
    ['b_to_a', s.b, s.a],
  ];
  for (const [, s] of sides) for (const [, from, to] of ways(s)) await run(nsexec(from.ns, ['/bin/busybox', 'ping', '-c', '3', '-i', '0.01', to.ip]), { timeoutMs: 10_000 });
  progress(`ping: ${rounds.ping} round(s) × 200 at 0.01 s each way, ${names} in turn`);
  const pings = new Map<string, PingResult[]>();
  const add = <T>(m: Map<string, T[]>, k: string, v: T): void => void (m.get(k) ?? m.set(k, []).get(k)!).push(v);
  for (let i = 0; i < rounds.ping; i++) {
    for (const [k, s] of sides) {
      for (const [way, from, to] of ways(s)) {
        const r = await quietPingRound(from.ns, to.ip, s.pingOut);
        add(pings, k, r);
        add(pings, `${k} ${way}`, r);
      }
    }
  }

  progress(`iperf3: ${rounds.iperf} round(s) × 5 s each way, ${names} in turn`);
  const bps = new Map<string, number[]>();
  const cpu = new Map<string, number[]>();
  const drops = new Map<string, number[]>();
  for (let i = 0; i < rounds.iperf; i++) {
    for (const [k, s] of sides) {
      for (const [way, from, to] of ways(s)) {
        const pids = s.carriers?.() ?? [];
        const before = pids.map(carrierCounters);
        add(bps, k, await iperfRound(from, to, servers));
        add(bps, `${k} ${way}`, bps.get(k)!.at(-1)!);
        if (pids.length) {
          const after = pids.map(carrierCounters);
          // A carrier gone meanwhile reads as zeros: it adds nothing rather than a negative.
          add(cpu, k, Math.round(after.reduce((a, c, j) => a + Math.max(0, c.cpuS - before[j]!.cpuS), 0) * 100) / 100);
          add(drops, k, after.reduce((a, c, j) => a + Math.max(0, c.rcvbufErrors - before[j]!.rcvbufErrors), 0));
        }
      }
    }
  }
  const out: Record<string, unknown> = {};
  for (const [k, s] of sides) {
    if (rounds.ping > 0) out[`${k}_ping`] = { ...combinePings(pings.get(k)!), by_direction: Object.fromEntries(ways(s).map(([w]) => [w, combinePings(pings.get(`${k} ${w}`)!)])) };
    const gb = (xs: number[]): { median: number; rounds: number[] } => ({ median: gbit(stats(xs).median), rounds: xs.map(gbit) });
    if (rounds.iperf > 0) out[`${k}_iperf_gbit`] = { ...gb(bps.get(k)!), by_direction: Object.fromEntries(ways(s).map(([w]) => [w, gb(bps.get(`${k} ${w}`)!)])) };
    if (cpu.has(k)) {
      out[`${k}_carriers_per_iperf_round`] = { cpu_s: cpu.get(k), udp_rcvbuf_errors: drops.get(k) };
    }
  }
  return out;
}

/** One iperf3 TCP run from `from` to a one-off server at `to`: received bits per second. */
export async function iperfRound(from: Endpoint, to: Endpoint, servers: ChildProcess[]): Promise<number> {
  const argv = nsexec(to.ns, ['iperf3', '-s', '-1', '-B', to.ip]);
  const server = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore' });
  const exited = new Promise<void>((r) => server.once('close', () => r()));
  server.on('error', () => {});
  servers.push(server);
  const bps = await iperfClient((extra) => run(nsexec(from.ns, ['iperf3', '-c', to.ip, ...extra]), { allowFailure: true, timeoutMs: 60_000 }));
  // A one-off server outlives its client by a moment; the next round's would find the port taken.
  const timer = setTimeout(() => server.kill('SIGKILL'), 5000);
  await Promise.race([exited, sleep(6000)]);
  clearTimeout(timer);
  return bps;
}

/**
 * Pings `ip` from netns `ns` (a name or a path) every 2 ms until the first reply, for at most
 * `deadlineS` seconds; resolves with the `performance.now()` at which the reply was seen, or
 * undefined if none came. busybox's ping stops sending after `-c`, so the first reply is read from
 * its output and the ping is killed then.
 */
export function firstReply(ns: string, ip: string, deadlineS: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const argv = nsexec(ns, ['/bin/busybox', 'ping', '-i', '0.002', '-w', String(deadlineS), ip]);
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'ignore'] });
    let seen: number | undefined;
    let buf = '';
    child.stdout.on('data', (c: Buffer) => {
      if (seen !== undefined) return;
      buf += c.toString();
      if (/bytes from/.test(buf)) {
        seen = performance.now();
        child.kill('SIGKILL');
      }
    });
    child.on('error', () => resolve(undefined));
    child.on('close', () => resolve(seen));
  });
}

/**
 * A process's CPU seconds (user + system) and the UDP receive-buffer drops of its network
 * namespace (/proc/<pid>/net/snmp is that namespace's); zeros once it is gone.
 */
export function carrierCounters(pid: number): { cpuS: number; rcvbufErrors: number } {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const cpuS = (Number(f[11]) + Number(f[12])) / CLOCK_TICKS;
    const udp = readFileSync(`/proc/${pid}/net/snmp`, 'utf8').split('\n').filter((l) => l.startsWith('Udp:'));
    const names = udp[0]?.split(/\s+/) ?? [];
    const values = udp[1]?.split(/\s+/) ?? [];
    const at = names.indexOf('RcvbufErrors');
    return { cpuS, rcvbufErrors: at > 0 ? Number(values[at]) : 0 };
  } catch {
    return { cpuS: 0, rcvbufErrors: 0 };
  }
}

/** USER_HZ: /proc/<pid>/stat times are in 1/100 s on x86 and arm (`getconf CLK_TCK`). */
const CLOCK_TICKS = 100;

/**
 * Moves the raw data-path figures of a section (`bare_ping`, `arca_ping`, `bare_iperf_gbit`,
 * `arca_iperf_gbit`) into the side-by-side shape every bench section reports, with ratios against
 * `targets`; returns the two ratios for the section's `within_targets`.
 */
export function summarizeDataPath(
  section: Record<string, unknown>,
  targets: { rtt_ratio_max: number; throughput_ratio_min: number },
): { rtt: number | null; throughput: number | null } {
  const bp = section.bare_ping as PingResult | undefined;
  const ap = section.arca_ping as PingResult | undefined;
  const bi = (section.bare_iperf_gbit as { median: number } | undefined)?.median;
  const ai = (section.arca_iperf_gbit as { median: number } | undefined)?.median;
  const rr = (x: number | undefined, y: number | undefined): number | null => (x === undefined || y === undefined ? null : ratio(x, y));
  section.ping_rtt_ms = {
    bare: bp ?? null,
    arca: ap ?? null,
    ratio_median: rr(ap?.median_ms, bp?.median_ms),
    ratio_p95: rr(ap?.p95_ms, bp?.p95_ms),
    ratio_avg: rr(ap?.avg_ms, bp?.avg_ms),
    target_ratio_max: targets.rtt_ratio_max,
  };
  section.iperf3_container_to_container_gbit = {
    bare: section.bare_iperf_gbit ?? null,
    arca: section.arca_iperf_gbit ?? null,
    ratio: rr(ai, bi),
    target_ratio_min: targets.throughput_ratio_min,
  };
  for (const k of ['bare_ping', 'arca_ping', 'bare_iperf_gbit', 'arca_iperf_gbit']) delete section[k];
  return { rtt: rr(ap?.median_ms, bp?.median_ms), throughput: rr(ai, bi) };
}
