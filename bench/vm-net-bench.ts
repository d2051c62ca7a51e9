/**
 * `--only filterednat`: `arca vm-net serve` as it runs for a VM, in a process of its own pinned to
 * one core (taskset, when there are two or more), fed by this process playing QEMU: a unix socket
 * it listens on (`server=on`), frames in QEMU's stream framing (4-byte big-endian length, then the
 * frame). Allowlisted UDP goes to a sink on 127.0.0.1 in this process, so the latency of a frame is
 * one clock (hrtime stamped into the payload when written → read at the sink). Three phases:
 * forward path flat out (frames/s the sink received and the engine counted), forward path paced
 * (per-frame latency, no queue building up), drop path flat out (TCP frames: parse, classify,
 * count; the rate from the engine's own stats file). The engine's RSS is a whole Node process;
 * a bare idle Node is measured beside it so what the engine adds shows. Then fnat's in-process
 * benchmark (bench/filterednat-bench.ts: the engine with no socket, its heap per engine) runs as a
 * child on the same core, its JSON under `in_process`.
 *
 * The paced phase's latency ends at the kernel's receive timestamp (SO_TIMESTAMPNS) of a second
 * sink, the native addon's, on its own allowlist entry: the old end, a stamp read in this process,
 * also timed this process waking up on the core it shares with the generator and the rest of the
 * machine, up to 1-2 ms at p99 under load that was not the engine's. That read-side figure stays in
 * the JSON (`latency_at_sink_read_us`); without the addon the read stamp is all there is and
 * `latency_clock` says so. `engine_sched` gives, per phase, the engine's CPU time and how long it
 * sat runnable waiting for its core (/proc/PID/schedstat): other processes on that core show there,
 * not as the engine's fault. `engine_host_sockets` says which host sockets the engine used (the
 * addon's batched sendmmsg, or Node's dgram when the addon is missing).
 *
 * The paced phase runs twice: `forward_paced` as a VM's engine runs (its core shared with whatever
 * else the machine runs: the target is judged on it), then `forward_paced_core_reserved` with the
 * engine's loop thread and this process's at SCHED_FIFO 1 for that phase only (each uses
 * about a tenth of a core at 10k frames/s), so that no other process preempts them: what the
 * engine does with a core of its own, as the target's "on one core" means. The generator stamps
 * one reused batch in place (no allocation between a stamp and its write); `generator_gc` gives
 * this process's collections during each paced phase, which can still delay a write.
 *
 * `--busy-poll MS` (bench.ts) starts the engine with that busy-poll window; the reserved phase then
 * raises only the generator (a spinning FIFO thread is throttled by the kernel). The engine's CPU
 * while idle, connected before any frame and again after the traffic, is `engine_idle_cpu_percent`
 * (busy polling must end with the traffic).
 *
 * All of that runs twice in one run, once per forwarding path (`paths.ts`: --fast-path off, every
 * frame through the TypeScript engine; `paths.fast`: --fast-path on, the native forwarding thread),
 * and `side_by_side` puts their throughput, p50/p99 and memory next to each other. The CPU and
 * run-queue figures are summed over the engine's threads, and the reserved phase raises the thread
 * that forwards (the loop thread, or the `arca-fnat` thread). `rss_per_extra_engine_in_one_process`
 * is what one more engine costs a process that already runs one (bench/filterednat-rss.ts, 10
 * engines each carrying a flow): the daemon runs its VMs' engines in its own process, so that is
 * the per-VM figure for them, beside the CLI process's RSS (a Node of its own).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { PerformanceObserver } from 'node:perf_hooks';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { rssKb } from '../test/e2e/harness.js';
import { writeIpv4Header, PROTO_TCP, PROTO_UDP } from '../src/filterednat/ipv4.js';
import { writeUdpHeader } from '../src/filterednat/udp.js';
import { native, type UdpPortHandle } from '../src/sys/native.js';

const MAIN_JS = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const IN_PROCESS_JS = fileURLToPath(new URL('./filterednat-bench.js', import.meta.url));
const RSS_JS = fileURLToPath(new URL('./filterednat-rss.js', import.meta.url));
/** Omerta's targets (issue 12). */
export const FILTEREDNAT_TARGETS = { forwarded_frames_per_s: 100_000, latency_p99_us: 500, rss_mb_per_vm: 10 };

const GUEST_MAC = Buffer.from('525400123456', 'hex');
const GW_MAC = Buffer.from('02000a4d0001', 'hex');
const GUEST_IP = 0x0a4d0002; // 10.77.0.2 with the default subnet
const GW_IP = 0x0a4d0001; // where the guest reaches an allowlisted 127.0.0.1 destination
const PAYLOAD = 64;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * A framed guest→gateway UDP frame for `dstPort`. Its payload starts with a stamp (8 bytes) and
 * the stamp's complement (8 bytes): each 16-bit word and its complement sum to 0xffff whatever
 * the stamp, so the checksum computed once with a zero stamp stays right, and stamping a frame is
 * two writes, not a checksum (the generator must not be slower than the engine it feeds).
 */
function udpTemplate(dstPort: number): Buffer {
  const f = Buffer.alloc(4 + 14 + 20 + 8 + PAYLOAD);
  f.writeUInt32BE(f.length - 4, 0);
  GW_MAC.copy(f, 4);
  GUEST_MAC.copy(f, 10);
  f.writeUInt16BE(0x0800, 16);
  writeIpv4Header(f, 18, 20 + 8 + PAYLOAD, 0, PROTO_UDP, GUEST_IP, GW_IP);
  f.writeBigUInt64BE(0n, STAMP_AT);
  f.writeBigUInt64BE(0xffffffffffffffffn, STAMP_AT + 8);
  writeUdpHeader(f, 38, GUEST_IP, 40000, GW_IP, dstPort, PAYLOAD);
  return f;
}
const STAMP_AT = 46;
const ALL_ONES = 0xffffffffffffffffn;

/**
 * process.hrtime's clock at performance.now() 0, in ns: stamps from performance.now() allocate no
 * bigint. Read as the midpoint of the tightest of many hrtime/now/hrtime triples, and again before
 * each paced phase: one naive `hrtime - now` read at load erred by 35 µs to 0.9 ms (the first access
 * of `performance` loads a module between the two reads, and the thread can be preempted there),
 * and the two clocks drift apart by about 8 µs in 3 s here. Either error went into every latency.
 */
let HR_ORIGIN_NS = hrOrigin();
function hrOrigin(): number {
  let best = Infinity;
  let origin = 0;
  for (let i = 0; i < 200; i++) {
    const h1 = Number(process.hrtime.bigint());
    const p = performance.now() * 1e6;
    const h2 = Number(process.hrtime.bigint());
    if (h2 - h1 < best) {
      best = h2 - h1;
      origin = (h1 + h2) / 2 - p;
    }
  }
  return origin;
}

/**
 * Stamps, in place, the `count` frames of `batch` (copies of one template) with the hrtime at that
 * moment: no allocation, so no collection of this process's heap can fall between a stamp and the
 * write that follows it (it would count as the engine's latency).
 */
function restamp(batch: Buffer, frameLen: number, count: number): Buffer {
  for (let i = 0; i < count; i++) {
    const at = i * frameLen + STAMP_AT;
    const t = HR_ORIGIN_NS + performance.now() * 1e6;
    const hi = Math.floor(t / 4294967296);
    const lo = Math.floor(t - hi * 4294967296);
    batch.writeUInt32BE(hi, at);
    batch.writeUInt32BE(lo, at + 4);
    batch.writeUInt32BE(~hi >>> 0, at + 8);
    batch.writeUInt32BE(~lo >>> 0, at + 12);
  }
  return batch;
}

/** `count` back-to-back copies of `template`, each stamped with the hrtime at that moment. */
function stampedBatch(template: Buffer, count: number): Buffer {
  const b = Buffer.allocUnsafe(template.length * count);
  for (let i = 0; i < count; i++) {
    const off = i * template.length;
    template.copy(b, off);
    const t = process.hrtime.bigint();
    b.writeBigUInt64BE(t, off + STAMP_AT);
    b.writeBigUInt64BE(ALL_ONES ^ t, off + STAMP_AT + 8);
  }
  return b;
}

function tcpFrame(): Buffer {
  const f = Buffer.alloc(4 + 14 + 20 + 20);
  f.writeUInt32BE(f.length - 4, 0);
  GW_MAC.copy(f, 4);
  GUEST_MAC.copy(f, 10);
  f.writeUInt16BE(0x0800, 16);
  writeIpv4Header(f, 18, 40, 0, PROTO_TCP, GUEST_IP, GW_IP);
  f.writeUInt16BE(40000, 38);
  f.writeUInt16BE(80, 40);
  f[50] = 0x50;
  return f;
}

interface EngineStats {
  hostSockets?: string;
  fastPath?: false | Record<string, number>;
  busyPollMs?: number;
  forwarded: number;
  sendErrors?: number;
  dropped: Record<string, number>;
  updatedAt: string;
  connected?: boolean;
}

function readStats(file: string): EngineStats | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as EngineStats;
  } catch {
    return undefined;
  }
}

/** The next stats snapshot newer than `after` (the file is replaced every 500 ms). */
async function nextStats(file: string, after?: string): Promise<EngineStats> {
  for (let i = 0; i < 100; i++) {
    const s = readStats(file);
    if (s && s.updatedAt !== after) return s;
    await sleep(20);
  }
  throw new Error('the engine\'s stats file stopped changing');
}

async function write(sock: Socket, b: Buffer): Promise<void> {
  if (!sock.write(b)) await once(sock, 'drain');
}

/** The kernel's UDP receive-buffer drops so far (this network namespace: a sink that did not keep up). */
function udpRcvbufErrors(): number {
  try {
    const lines = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp: '));
    const names = lines[0]!.split(/\s+/);
    return Number(lines[1]!.split(/\s+/)[names.indexOf('RcvbufErrors')]);
  } catch {
    return NaN;
  }
}

/**
 * Packets the kernel dropped from its per-CPU input backlogs so far (/proc/net/softnet_stat): a
 * loopback datagram waits there for the receive softirq, and under load, with that softirq pushed
 * to ksoftirqd, a burst of sends can overflow it (net.core.netdev_max_backlog).
 */
function backlogDrops(): number {
  try {
    return readFileSync('/proc/net/softnet_stat', 'utf8')
      .trim()
      .split('\n')
      .reduce((n, l) => n + parseInt(l.split(/\s+/)[1]!, 16), 0);
  } catch {
    return NaN;
  }
}

/**
 * CPU time, time runnable but waiting for the core, and involuntary switches of a process so far,
 * summed over its threads (with the fast path the work is on the forwarding thread, not the main
 * one /proc/PID/schedstat alone describes).
 */
function schedOf(pid: number): { cpuNs: number; waitNs: number; involuntary: number } | undefined {
  try {
    let cpuNs = 0;
    let waitNs = 0;
    let involuntary = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        const [c, w] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').trim().split(/\s+/).map(Number) as [number, number];
        cpuNs += c;
        waitNs += w;
        involuntary += Number(/nonvoluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'))?.[1] ?? 0);
      } catch {
        // A thread that ended meanwhile.
      }
    }
    return { cpuNs, waitNs, involuntary };
  } catch {
    return undefined;
  }
}

/** The threads of `pid` named `comm` (the forwarding thread is "arca-fnat"). */
function threadsNamed(pid: number, comm: string): string[] {
  try {
    return readdirSync(`/proc/${pid}/task`).filter((t) => {
      try {
        return readFileSync(`/proc/${pid}/task/${t}/comm`, 'utf8').trim() === comm;
      } catch {
        return false;
      }
    });
  } catch {
    return [];
  }
}

/** The CPU a process used over the next `ms`, in % of one core (null if it is gone). */
async function cpuPercentOver(pid: number, ms: number): Promise<number | null> {
  const a = schedOf(pid);
  const t0 = performance.now();
  await sleep(ms);
  const b = schedOf(pid);
  if (!a || !b) return null;
  return Math.round(((b.cpuNs - a.cpuNs) / 1e6 / (performance.now() - t0)) * 1000) / 10;
}

/** The engine's share of a phase: its CPU, and how long it sat runnable behind other processes on its core. */
function schedDelta(a: ReturnType<typeof schedOf>, b: ReturnType<typeof schedOf>, frames: number): Record<string, number> | null {
  if (!a || !b) return null;
  return {
    cpu_ms: r1((b.cpuNs - a.cpuNs) / 1e6),
    cpu_us_per_frame: frames ? Math.round(((b.cpuNs - a.cpuNs) / 1e3 / frames) * 100) / 100 : 0,
    runqueue_wait_ms: r1((b.waitNs - a.waitNs) / 1e6),
    involuntary_switches: b.involuntary - a.involuntary,
  };
}

const q = (xs: number[], p: number): number => xs[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;
const r1 = (x: number): number => Math.round(x * 10) / 10;
const r3 = (x: number): number => Math.round(x * 1000) / 1000;

/**
 * Both forwarding paths in one run, one engine process after the other: `ts` (vm-net serve
 * `--fast-path off`: every frame through the TypeScript engine) and `fast` (`--fast-path on`: the
 * native forwarding thread), each with the phases above, then what one more engine costs in one
 * process (bench/filterednat-rss.ts, 10 engines), and the in-process benchmark. `side_by_side`
 * lifts the figures the targets are about out of both. `paths` limits it to one.
 */
export async function benchFilteredNat(seconds: number, progress: (m: string) => void, busyPollMs?: string, paths: readonly ('ts' | 'fast')[] = ['ts', 'fast']): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = { seconds_per_phase: seconds, loadavg_start: os.loadavg().map(r1) };
  const threadBuilt = typeof native()?.fastPathCreate === 'function';
  const results: Record<string, Record<string, unknown>> = {};
  for (const path of paths) {
    if (path === 'fast' && !threadBuilt) {
      results[path] = { skipped: 'the native addon is not built with the forwarding thread (scripts/build-native.sh)' };
      continue;
    }
    progress(`filterednat: the ${path === 'fast' ? 'native forwarding thread (--fast-path on)' : 'TypeScript path (--fast-path off)'}`);
    results[path] = await benchOnePath(seconds, progress, busyPollMs, path === 'fast' ? 'on' : 'off');
  }
  out.paths = results;
  const pin = os.cpus().length >= 2 && spawnSync('taskset', ['--version']).status === 0;
  const onCore = pin ? ['taskset', '-c', String(os.cpus().length - 1)] : [];
  progress('filterednat: RSS per extra engine in one process (10 engines, bench/filterednat-rss.ts)');
  const perEngine: Record<string, unknown> = {};
  for (const path of paths) {
    if (path === 'fast' && !threadBuilt) continue;
    const argv = [...onCore, process.execPath, '--expose-gc', RSS_JS, '--engines', '10', '--fast-path', path === 'fast' ? 'on' : 'off'];
    const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 120_000 });
    try {
      perEngine[path] = JSON.parse(r.stdout) as unknown;
    } catch {
      perEngine[path] = { error: `exit ${r.status}: ${(r.stderr || r.stdout).slice(-300)}` };
    }
  }
  out.rss_per_extra_engine_in_one_process = perEngine;

  progress('filterednat: the in-process benchmark (bench/filterednat-bench.ts)');
  const ip = [...onCore, process.execPath, IN_PROCESS_JS, '--seconds', String(seconds)];
  const r = spawnSync(ip[0]!, ip.slice(1), { encoding: 'utf8', timeout: (seconds * 4 + 30) * 1000 });
  try {
    out.in_process = JSON.parse(r.stdout) as unknown;
  } catch {
    out.in_process = { error: `exit ${r.status}: ${(r.stderr || r.stdout).slice(-300)}` };
  }

  type Paced = { latency_us: { p50: number; p99: number } | null; engine_sched?: { runqueue_wait_ms: number } | null } | undefined;
  const side: Record<string, unknown> = {};
  const within: Record<string, unknown> = {};
  for (const [path, res] of Object.entries(results)) {
    if ('skipped' in res) continue;
    const fwd = res.forward_flat_out as { forwarded_per_s_at_sink: number } | undefined;
    const paced = res.forward_paced as Paced;
    const reserved = res.forward_paced_core_reserved as Paced;
    const rss = res.rss_mb as { engine_process: number; bare_idle_node: number } | undefined;
    const extra = perEngine[path] as { rss_kb_per_extra_engine?: number } | undefined;
    side[path] = {
      forwarded_per_s_at_sink: fwd?.forwarded_per_s_at_sink ?? null,
      paced_p50_us: paced?.latency_us?.p50 ?? null,
      paced_p99_us: paced?.latency_us?.p99 ?? null,
      paced_runqueue_wait_ms: paced?.engine_sched?.runqueue_wait_ms ?? null,
      reserved_p50_us: reserved?.latency_us?.p50 ?? null,
      reserved_p99_us: reserved?.latency_us?.p99 ?? null,
      cli_process_rss_mb: rss?.engine_process ?? null,
      rss_kb_per_extra_engine_in_one_process: extra?.rss_kb_per_extra_engine ?? null,
    };
    within[path] = {
      forwarded_frames_per_s: fwd ? fwd.forwarded_per_s_at_sink >= FILTEREDNAT_TARGETS.forwarded_frames_per_s : false,
      latency_p99_us: paced?.latency_us ? paced.latency_us.p99 <= FILTEREDNAT_TARGETS.latency_p99_us : false,
      // A VM in the daemon costs what one more engine adds to its process, not a Node of its own.
      rss_mb_per_vm_in_one_process: extra?.rss_kb_per_extra_engine !== undefined ? extra.rss_kb_per_extra_engine / 1024 <= FILTEREDNAT_TARGETS.rss_mb_per_vm : false,
      rss_mb_per_vm_over_bare_node: rss ? rss.engine_process - rss.bare_idle_node <= FILTEREDNAT_TARGETS.rss_mb_per_vm : false,
    };
  }
  out.side_by_side = side;
  out.targets = FILTEREDNAT_TARGETS;
  out.within_targets = within;
  out.loadavg_end = os.loadavg().map(r1);
  return out;
}

/** One engine process, `arca vm-net serve --fast-path FAST`, through every phase. */
async function benchOnePath(seconds: number, progress: (m: string) => void, busyPollMs: string | undefined, fast: 'on' | 'off'): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(os.tmpdir(), 'arca-xbench-fnat-'));
  const socketPath = join(dir, 'qemu.sock');
  const statsFile = join(dir, 'stats.json');
  const children: ChildProcess[] = [];
  const sink = createSocket('udp4');
  let tsSink: UdpPortHandle | undefined;
  let restoreMask: string | undefined;
  const out: Record<string, unknown> = { seconds_per_phase: seconds, loadavg_start: os.loadavg().map(r1) };
  try {
    // The sink: counts and, while `latencies` is set, records stamp → arrival.
    let received = 0;
    let latencies: number[] | undefined;
    sink.on('message', (m) => {
      received++;
      if (latencies && m.length >= 8) latencies.push(Number(process.hrtime.bigint() - m.readBigUInt64BE(0)) / 1000);
    });
    sink.bind(0, '127.0.0.1');
    await once(sink, 'listening');
    sink.setRecvBufferSize(8 << 20);
    const port = sink.address().port;

    // The paced phase's sink: the addon's, asking the kernel when each datagram arrived
    // (SO_TIMESTAMPNS). A stamp read in this process would add its own wake-up on the core it
    // shares with the generator and everything else on the machine (measured: p99 1.1-1.9 ms of
    // the total at load 1.1, the engine's part far less); the kernel's stamp is taken as the
    // engine's sendmmsg hands the datagram over. The read time is kept beside it.
    const nat = native();
    let stamped: { rx: number[]; read: number[] } | undefined;
    let pacedPort = port;
    if (nat && typeof nat.udpLocalPort === 'function') {
      const fd = nat.socketIn(null, 'udp', '127.0.0.1', 0);
      tsSink = nat.udpWatch(
        fd,
        (m, _a, _p, rx) => {
          if (!stamped || m.length < 8) return;
          const t = m.readBigUInt64BE(0);
          stamped.read.push(Number(process.hrtime.bigint() - t) / 1000);
          if (rx !== undefined) stamped.rx.push(Number(rx - t) / 1000);
        },
        { timestamps: true },
      );
      pacedPort = nat.udpLocalPort(tsSink);
    }

    const server = createServer();
    const conn = new Promise<Socket>((res) => server.once('connection', res));
    server.listen(socketPath);
    await once(server, 'listening');

    const pin = os.cpus().length >= 2 && spawnSync('taskset', ['--version']).status === 0;
    const argv = [...(pin ? ['taskset', '-c', String(os.cpus().length - 1)] : []), process.execPath, MAIN_JS, 'vm-net', 'serve', '--socket', socketPath, '--allow', `127.0.0.1:${port}/udp`, ...(pacedPort !== port ? ['--allow', `127.0.0.1:${pacedPort}/udp`] : []), '--stats-file', statsFile, '--log-level', 'warn', '--fast-path', fast, ...(busyPollMs !== undefined ? ['--busy-poll', busyPollMs] : [])];
    progress(`filterednat: ${pin ? `engine pinned to cpu ${os.cpus().length - 1}` : 'engine not pinned'}; ${seconds} s per phase`);
    const engine = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'inherit'] });
    if (pin) {
      // This process (generator and sink) keeps off the engine's core for the section.
      restoreMask = /affinity mask:\s*([0-9a-f]+)/.exec(spawnSync('taskset', ['-p', String(process.pid)]).stdout.toString())?.[1];
      spawnSync('taskset', ['-a', '-p', '-c', `0-${os.cpus().length - 2}`, String(process.pid)], { stdio: 'ignore' });
    }
    children.push(engine);
    out.engine_pinned_to_one_core = pin;
    const sock = await Promise.race([conn, sleep(10_000).then(() => Promise.reject(new Error('vm-net serve never connected')))]);
    sock.setNoDelay(true);
    // Before any frame: what the CLI process costs loaded (Node plus the modules main.js imports).
    await sleep(300);
    const idleKb = rssKb(engine.pid!);
    const idleCpu: Record<string, number | null> = { connected_before_traffic: await cpuPercentOver(engine.pid!, 1000) };
    const busyPolling = (await nextStats(statsFile)).busyPollMs ?? 0;
    out.engine_busy_poll_ms = busyPolling;

    // Opens the flow (its host socket) before anything is timed.
    const template = udpTemplate(port);
    await write(sock, stampedBatch(template, 1));
    for (let i = 0; i < 100 && received === 0; i++) await sleep(20);
    if (received === 0) throw new Error('the first allowlisted frame never reached the sink');

    // Forward path flat out: 256 frames a write, as fast as the socket takes them.
    progress('filterednat: forward path flat out');
    {
      const s0 = await nextStats(statsFile);
      const r0 = received;
      const rcvbuf0 = udpRcvbufErrors();
      const backlog0 = backlogDrops();
      const sched0 = schedOf(engine.pid!);
      const t0 = performance.now();
      let sent = 0;
      // One batch written over and over: the stamps are not read in this phase.
      const batch = stampedBatch(template, 512);
      while (performance.now() - t0 < seconds * 1000) {
        await write(sock, batch);
        sent += 512;
      }
      const secs = (performance.now() - t0) / 1000;
      await sleep(300);
      const sched1 = schedOf(engine.pid!);
      const s1 = await nextStats(statsFile, s0.updatedAt);
      const engineSecs = (Date.parse(s1.updatedAt) - Date.parse(s0.updatedAt)) / 1000;
      out.engine_host_sockets = s1.hostSockets ?? 'dgram';
      out.forward_flat_out = {
        frames_sent: sent,
        sent_per_s: Math.round(sent / secs),
        forwarded_per_s_at_sink: Math.round((received - r0) / secs),
        forwarded_by_engine: s1.forwarded - s0.forwarded,
        forwarded_per_s_by_engine: Math.round((s1.forwarded - s0.forwarded) / engineSecs),
        not_at_sink: sent - (received - r0),
        // Where those went: the engine's failed sends (a full socket buffer drops a datagram),
        // the kernel's input backlog (machine-wide), or the sink's receive queue overflowing
        // (this process not reading in time).
        not_at_sink_engine_send_errors: (s1.sendErrors ?? 0) - (s0.sendErrors ?? 0),
        not_at_sink_backlog_drops: backlogDrops() - backlog0,
        not_at_sink_sink_overflow: udpRcvbufErrors() - rcvbuf0,
        engine_sched: schedDelta(sched0, sched1, s1.forwarded - s0.forwarded),
      };
    }

    // Forward path paced: batches every millisecond, each stamped as it is written. Twice: as
    // the engine runs for a VM (its core shared with whatever else this machine runs), then with
    // the core reserved for it (see the doc comment).
    const rate = 10_000;
    const pacedTemplate = pacedPort === port ? template : udpTemplate(pacedPort);
    if (pacedPort !== port) {
      // Its own flow, opened before the clock starts.
      stamped = { rx: [], read: [] };
      await write(sock, stampedBatch(pacedTemplate, 1));
      for (let i = 0; i < 100 && stamped.read.length === 0; i++) await sleep(20);
      if (stamped.read.length === 0) throw new Error('the first frame to the timestamping sink never arrived');
    }
    const summary = (ys: number[]): { p50: number; p90: number; p99: number; max: number } | null => {
      const xs = ys.sort((a, b) => a - b);
      return xs.length ? { p50: r1(q(xs, 0.5)), p90: r1(q(xs, 0.9)), p99: r1(q(xs, 0.99)), max: r1(xs.at(-1)!) } : null;
    };
    let fifoTids: string[] = [];
    for (const reserved of [false, true]) {
      const key = reserved ? 'forward_paced_core_reserved' : 'forward_paced';
      // A busy-polling engine already keeps its core, and at SCHED_FIFO a thread that never
      // sleeps is throttled by the kernel (sched_rt_runtime_us: stopped for the last 50 ms of
      // each second, measured p99 30 ms) and starves its core's kernel threads: only the
      // generator is raised then.
      const engineFifo = busyPolling === 0;
      if (reserved) {
        // SCHED_FIFO for the engine's loop thread and this process's, for this phase only (each
        // uses ~10% of a core here): nothing else on the machine preempts them. Only the loop
        // threads: a helper thread at the same FIFO priority (libuv's pool writing the stats file,
        // V8's collector) would not be preempted by the loop either, and hold it up.
        // With the fast path that is the forwarding thread (the main loop sees no frame of the flow).
        fifoTids = fast === 'on' ? threadsNamed(engine.pid!, 'arca-fnat') : [String(engine.pid)];
        const fifo = (!engineFifo || (fifoTids.length > 0 && fifoTids.every((t) => spawnSync('chrt', ['-f', '-p', '1', t]).status === 0))) && spawnSync('chrt', ['-f', '-p', '1', String(process.pid)]).status === 0;
        if (!fifo) {
          for (const t of fifoTids) spawnSync('chrt', ['-o', '-p', '0', t], { stdio: 'ignore' });
          out[key] = { skipped: 'chrt -f failed (no CAP_SYS_NICE?)' };
          continue;
        }
      }
      progress(`filterednat: forward path paced at ${rate} frames/s (latency${reserved ? ', the core reserved' : ''})`);
      if (pacedPort !== port) stamped = { rx: [], read: [] };
      else latencies = [];
      HR_ORIGIN_NS = hrOrigin();
      const sched0 = schedOf(engine.pid!);
      const per = rate / 1000;
      let batch = stampedBatch(pacedTemplate, per);
      // This process's collections while it paces (they can delay a write after its stamps).
      const gcs: number[] = [];
      const gcWatch = new PerformanceObserver((l) => {
        for (const e of l.getEntries()) gcs.push(e.duration);
      });
      gcWatch.observe({ entryTypes: ['gc'] });
      const t0 = performance.now();
      let tick = 0;
      try {
        while (performance.now() - t0 < seconds * 1000) {
          // One batch buffer, stamped in place, unless a write of it is still queued.
          if (sock.writableLength > 0) batch = stampedBatch(pacedTemplate, per);
          await write(sock, restamp(batch, pacedTemplate.length, per));
          tick++;
          const due = t0 + tick;
          const wait = due - performance.now();
          if (wait > 0.5) await sleep(Math.floor(wait));
          else await new Promise((r) => setImmediate(r));
        }
      } finally {
        gcWatch.disconnect();
        if (reserved) {
          for (const t of fifoTids) spawnSync('chrt', ['-o', '-p', '0', t], { stdio: 'ignore' });
          spawnSync('chrt', ['-o', '-p', '0', String(process.pid)], { stdio: 'ignore' });
        }
      }
      const sched1 = schedOf(engine.pid!);
      await sleep(300);
      const kernel = stamped !== undefined && stamped.rx.length > 0;
      const frames = stamped ? stamped.read.length : latencies!.length;
      out[key] = {
        offered_per_s: rate,
        frames,
        ...(reserved ? { scheduling: engineFifo ? `SCHED_FIFO 1: the generator's loop thread and the engine's ${fast === 'on' ? 'forwarding thread' : 'loop thread'}` : 'SCHED_FIFO 1: the generator\'s loop thread (the engine busy-polls its core)' } : {}),
        latency_clock: kernel ? 'stamp at the write to the socket -> the kernel\'s receive timestamp at the sink (SO_TIMESTAMPNS)' : 'stamp at the write to the socket -> the sink\'s read in this process',
        latency_us: kernel ? summary(stamped!.rx) : summary(stamped ? stamped.read : latencies!),
        ...(stamped ? { latency_at_sink_read_us: summary(stamped.read) } : {}),
        engine_sched: schedDelta(sched0, sched1, frames),
        generator_gc: { count: gcs.length, total_ms: r3(gcs.reduce((a, b) => a + b, 0)), max_ms: r3(Math.max(0, ...gcs)) },
      };
      latencies = undefined;
      stamped = undefined;
    }

    // Once the busy-poll window has passed with no frame, the engine should sleep again.
    await sleep(busyPolling + 50);
    idleCpu.after_traffic = await cpuPercentOver(engine.pid!, 1000);
    out.engine_idle_cpu_percent = idleCpu;

    progress('filterednat: drop path flat out (TCP)');
    {
      const tcp = tcpFrame();
      const batch = Buffer.concat(Array.from({ length: 512 }, () => tcp));
      const s0 = await nextStats(statsFile);
      const t0 = performance.now();
      let sent = 0;
      while (performance.now() - t0 < seconds * 1000) {
        await write(sock, batch);
        sent += 512;
      }
      await sleep(300);
      const s1 = await nextStats(statsFile, s0.updatedAt);
      const secs = (Date.parse(s1.updatedAt) - Date.parse(s0.updatedAt)) / 1000;
      out.drop_path_tcp = { frames_sent: sent, dropped: (s1.dropped.tcp ?? 0) - (s0.dropped.tcp ?? 0), dropped_per_s: Math.round(((s1.dropped.tcp ?? 0) - (s0.dropped.tcp ?? 0)) / secs) };
    }

    out.engine_fast_path_counters = (await nextStats(statsFile)).fastPath ?? false;
    const status = readFileSync(`/proc/${engine.pid}/status`, 'utf8');
    const hwm = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
    const bare = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    children.push(bare);
    await sleep(500);
    out.rss_mb = { engine_process_connected_idle: r1(idleKb / 1024), engine_process: r1(rssKb(engine.pid!) / 1024), engine_process_peak: r1(hwm / 1024), bare_idle_node: r1(rssKb(bare.pid!) / 1024) };
    sock.destroy();
    server.close();
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');

  } finally {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    await sleep(200);
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    sink.close();
    if (tsSink) native()?.udpClose(tsSink);
    if (restoreMask) spawnSync('taskset', ['-a', '-p', restoreMask, String(process.pid)], { stdio: 'ignore' });
    rmSync(dir, { recursive: true, force: true });
  }
  out.engine_fast_path = fast === 'on';
  out.loadavg_end = os.loadavg().map(r1);
  return out;
}
