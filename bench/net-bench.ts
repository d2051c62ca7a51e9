/**
 * The network half of `npm run bench` (issue 3, "Speed"): one run measures a raw-kernel baseline,
 * built by hand in throwaway namespaces, and the same workload through arca, and reports both with
 * their ratio. Targets are reported next to the figures, never asserted.
 *
 * Raw baseline: netns `nb<rand>-h` holds a Linux bridge; `nb<rand>-a` and `nb<rand>-b` hang off it
 * by veths (198.19.77.0/24, inside the benchmark range 198.18.0.0/15). The raw reference for the
 * host→published-port path is h→b over that bridge (the same kernel path, no NAT); `nb<rand>-l`, a
 * fresh netns, gives loopback as a second reference (no veth at all, 64 KiB MTU).
 * Network create/rm and connect/disconnect are timed through the API (as docker-py and compose
 * call it) and through the docker CLI, whose own start-up (`cli_floor_ms`) is most of that figure.
 * Through arca: two containers on a user network, exec'd into with the docker CLI; the published
 * port is reached from the daemon's "host" netns; DNS load runs in container a's netns against
 * 127.0.0.11. Everything is removed in `finally`, also on failure.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { run } from '../src/sys/runner.js';
import { TEST_IMAGE, type TestDaemon } from '../test/e2e/harness.js';
import { stats, type Stats } from './sample-stats.js';

export const NET_TARGETS = {
  rtt_ratio_max: 1.1,
  throughput_ratio_min: 0.9,
  network_create_ms: 20,
  network_rm_ms: 20,
  connect_ms: 25,
  disconnect_ms: 35,
  dns_qps: 20_000,
};

const PING_COUNT = 200;
export const PING_ROUNDS = 7;
const IPERF_SECONDS = 5;
const DNS_RUNS = 3;
const DNS_DURATION_MS = 3000;
const DNS_CONCURRENCY = 64;
const RAW_SUBNET = '198.19.77';

export interface PingResult {
  sent: number;
  received: number;
  avg_ms: number;
  median_ms?: number;
  p95_ms?: number;
}

const r3 = (x: number): number => Math.round(x * 1000) / 1000;
export const gbit = (bps: number): number => Math.round(bps / 1e7) / 100;
export const ratio = (a: number, b: number): number | null => (b > 0 ? Math.round((a / b) * 1000) / 1000 : null);

function quantile(sorted: number[], q: number): number {
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
}

/** Parses busybox/iputils ping output: per-packet `time=` values and the summary line. */
export function parsePing(out: string): PingResult {
  const times = [...out.matchAll(/time=([0-9.]+) ?ms/g)].map((m) => Number(m[1]));
  const tx = /([0-9]+) packets transmitted, ([0-9]+) (?:packets )?received/.exec(out);
  const summary = /= [0-9.]+\/([0-9.]+)\/[0-9.]+/.exec(out);
  const sent = tx ? Number(tx[1]) : times.length;
  const received = tx ? Number(tx[2]) : times.length;
  if (!times.length && !summary) throw new Error(`no RTT in ping output: ${out.slice(-300)}`);
  const avg = summary ? Number(summary[1]) : times.reduce((a, b) => a + b, 0) / times.length;
  const res: PingResult = { sent, received, avg_ms: r3(avg) };
  if (times.length) {
    const s = [...times].sort((a, b) => a - b);
    res.median_ms = r3(median(s));
    res.p95_ms = r3(quantile(s, 0.95));
  }
  return res;
}

/** Rounds of one ping workload → one result whose RTT figures are medians over the rounds. */
export function combinePings(rounds: PingResult[]): PingResult & { rounds: number; round_medians_ms: number[] } {
  const med = (xs: Array<number | undefined>): number => r3(median(xs.filter((x): x is number => typeof x === 'number')));
  return {
    sent: rounds.reduce((a, r) => a + r.sent, 0),
    received: rounds.reduce((a, r) => a + r.received, 0),
    avg_ms: med(rounds.map((r) => r.avg_ms)),
    median_ms: med(rounds.map((r) => r.median_ms ?? r.avg_ms)),
    p95_ms: med(rounds.map((r) => r.p95_ms)),
    rounds: rounds.length,
    round_medians_ms: rounds.map((r) => r.median_ms ?? r.avg_ms),
  };
}

/** `iperf3 -J` → received bits per second. */
export function parseIperf(out: string): number {
  const j = JSON.parse(out) as { error?: string; end?: { sum_received?: { bits_per_second?: number } } };
  if (j.error) throw new Error(`iperf3: ${j.error}`);
  const bps = j.end?.sum_received?.bits_per_second;
  if (typeof bps !== 'number') throw new Error('iperf3: no end.sum_received.bits_per_second');
  return bps;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Runs an iperf3 client (argv up to and including `-c HOST`), retrying while the server is not listening yet. */
export async function iperfClient(runClient: (extra: string[]) => Promise<{ code: number | null; stdout: string; stderr: string }>): Promise<number> {
  let last = '';
  for (let attempt = 0; attempt < 20; attempt++) {
    const r = await runClient(['-t', String(IPERF_SECONDS), '-J']);
    // iperf3 -J may exit 0 with the failure only in its JSON.
    if (r.code === 0) {
      try {
        return parseIperf(r.stdout);
      } catch (e) {
        last = e instanceof Error ? e.message : String(e);
      }
    } else last = r.stdout + r.stderr;
    if (!/refused|unable to connect|busy/i.test(last)) break;
    await sleep(200);
  }
  throw new Error(`iperf3 client failed: ${last.slice(-400)}`);
}

/**
 * One Engine API request over the daemon's socket, as docker-py or compose would make it; rejects
 * after `timeoutMs` if given (a long series must not hang on one stuck request).
 */
export function api(d: TestDaemon, method: string, path: string, body?: unknown, timeoutMs?: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = request(
      {
        socketPath: d.socket,
        method,
        path: `/v1.50${path}`,
        headers: data ? { 'Content-Type': 'application/json', 'Content-Length': data.length } : {},
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      },
    );
    req.on('error', reject);
    if (timeoutMs) req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${path}: no answer after ${timeoutMs} ms`)));
    req.end(data);
  });
}

export async function apiOk(d: TestDaemon, method: string, path: string, body?: unknown, timeoutMs?: number): Promise<string> {
  const r = await api(d, method, path, body, timeoutMs);
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${r.body}`);
  return r.body;
}

/**
 * A ping whose per-packet lines go to a file and are read after: streamed output would wake the
 * reader (for arca: the daemon and the docker CLI relaying exec output) between packets, on the
 * same two cores, and that shows up in RTTs of a few tens of µs.
 */
export function quietPing(ip: string, ping: string): string {
  return `${ping} -c ${PING_COUNT} -i 0.01 ${ip}`;
}

/**
 * One round of {@link quietPing} from network namespace `ns` (a name or a path) with the host's
 * busybox, its per-packet lines parked in `outFile` until the round is over.
 */
export async function quietPingRound(ns: string, ip: string, outFile: string): Promise<PingResult> {
  const script = `${quietPing(ip, '/bin/busybox ping')} > ${outFile}; cat ${outFile}; rm -f ${outFile}`;
  return parsePing((await run(nsexec(ns, ['/bin/busybox', 'sh', '-c', script]), { timeoutMs: 60_000 })).stdout);
}

/** argv that runs `argv` in a network namespace: a name under /run/netns, or a path (a container's SandboxKey). */
export const nsexec = (ns: string, argv: string[]): string[] => ['nsenter', `--net=${ns.startsWith('/') ? ns : `/run/netns/${ns}`}`, '--', ...argv];

/** Builds the raw baseline, measures it, tears it down. */
interface RawHandle {
  /** One round of pings a→b on the raw bridge (namespaces still up). */
  ping?: () => Promise<PingResult>;
  teardown?: () => Promise<void>;
}

async function rawBaseline(tag: string, progress: (m: string) => void, keep: RawHandle): Promise<Record<string, unknown>> {
  const H = `${tag}-h`;
  const A = `${tag}-a`;
  const B = `${tag}-b`;
  const L = `${tag}-l`;
  const made: string[] = [];
  const servers: ChildProcess[] = [];
  const ipA = `${RAW_SUBNET}.2`;
  const ipB = `${RAW_SUBNET}.3`;
  const out: Record<string, unknown> = {};
  const startServer = (ns: string, bind: string): void => {
    const child = spawn('nsenter', [`--net=/run/netns/${ns}`, '--', 'iperf3', '-s', '-1', '-B', bind], { stdio: 'ignore' });
    child.on('error', () => {});
    servers.push(child);
  };
  try {
    for (const ns of [H, A, B, L]) {
      await run(['ip', 'netns', 'add', ns]);
      made.push(ns);
      await run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    }
    await run(['ip', '-n', H, 'link', 'add', 'br0', 'type', 'bridge']);
    await run(['ip', '-n', H, 'addr', 'add', `${RAW_SUBNET}.1/24`, 'dev', 'br0']);
    await run(['ip', '-n', H, 'link', 'set', 'br0', 'up']);
    for (const [ns, ip, peer] of [
      [A, ipA, 'vetha'],
      [B, ipB, 'vethb'],
    ] as const) {
      await run(['ip', '-n', H, 'link', 'add', peer, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      await run(['ip', '-n', H, 'link', 'set', peer, 'master', 'br0', 'up']);
      await run(['ip', '-n', ns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
      await run(['ip', '-n', ns, 'link', 'set', 'eth0', 'up']);
    }

    await run(nsexec(A, ['/bin/busybox', 'ping', '-c', '3', '-i', '0.01', ipB]), { timeoutMs: 10_000 }); // warm-up (ARP)
    const pingOut = `/tmp/${tag}-ping.out`;
    keep.ping = () => quietPingRound(A, ipB, pingOut);

    progress(`raw: iperf3 a→b ${IPERF_SECONDS} s`);
    startServer(B, ipB);
    out.iperf_c2c_bps = await iperfClient((extra) => run(nsexec(A, ['iperf3', '-c', ipB, ...extra]), { allowFailure: true, timeoutMs: 60_000 }));

    progress(`raw: iperf3 host→b over the bridge ${IPERF_SECONDS} s`);
    startServer(B, ipB);
    out.iperf_host_bps = await iperfClient((extra) => run(nsexec(H, ['iperf3', '-c', ipB, ...extra]), { allowFailure: true, timeoutMs: 60_000 }));

    progress(`raw: iperf3 over loopback in a fresh netns ${IPERF_SECONDS} s`);
    startServer(L, '127.0.0.1');
    out.iperf_loopback_bps = await iperfClient((extra) => run(nsexec(L, ['iperf3', '-c', '127.0.0.1', ...extra]), { allowFailure: true, timeoutMs: 60_000 }));
    return out;
  } finally {
    const teardown = async (): Promise<void> => {
      for (const s of servers) if (s.exitCode === null && s.pid) {
      try {
        process.kill(s.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
      for (const ns of made.reverse()) {
        await run(['ip', 'netns', 'del', ns], { allowFailure: true }).catch(() => {});
      }
    };
    // The bridge stays up for the ping rounds interleaved with arca's; the caller tears it down.
    if (keep.ping) keep.teardown = teardown;
    else await teardown();
  }
}

/** Measures the same workload through arca on daemon `d`; removes every object it made. */
async function throughArca(d: TestDaemon, tag: string, n: number, progress: (m: string) => void, raw: RawHandle): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  const networks = new Set<string>();
  const containers = new Set<string>();
  const net = `${tag}-net`;
  const net2 = `${tag}-net2`;
  const a = `${tag}-a`;
  const b = `${tag}-b`;
  const pub = `${tag}-pub`;
  const script = join(os.tmpdir(), `${tag}-dns.mjs`);
  const timed = async (fn: () => Promise<unknown>): Promise<number> => {
    const t0 = performance.now();
    await fn();
    return performance.now() - t0;
  };
  try {
    // The floor every CLI-timed figure below stands on (docker's own start-up and one request).
    const floorMs: number[] = [];
    for (let i = 0; i < n; i++) floorMs.push(await timed(() => d.dockerOk(['version', '-f', '{{.Server.Version}}'])));
    out.cli_floor_ms = stats(floorMs);

    progress(`arca: network create / rm × ${n}, through the API and through the CLI`);
    const warm = `${tag}-warm`;
    networks.add(warm);
    await d.dockerOk(['network', 'create', warm]);
    await d.dockerOk(['network', 'rm', warm]);
    networks.delete(warm);
    const createMs: number[] = [];
    const rmMs: number[] = [];
    const createCliMs: number[] = [];
    const rmCliMs: number[] = [];
    const names = Array.from({ length: n }, (_, i) => `${tag}-n${i}`);
    for (const name of names) {
      networks.add(name);
      createMs.push(await timed(() => apiOk(d, 'POST', '/networks/create', { Name: name })));
    }
    for (const name of names) {
      rmMs.push(await timed(() => apiOk(d, 'DELETE', `/networks/${name}`)));
      networks.delete(name);
    }
    for (const name of names) {
      networks.add(name);
      createCliMs.push(await timed(() => d.dockerOk(['network', 'create', name])));
    }
    for (const name of names) {
      rmCliMs.push(await timed(() => d.dockerOk(['network', 'rm', name])));
      networks.delete(name);
    }
    out.network_create_ms = stats(createMs);
    out.network_rm_ms = stats(rmMs);
    out.network_create_cli_ms = stats(createCliMs);
    out.network_rm_cli_ms = stats(rmCliMs);

    progress('arca: two containers on a user network');
    for (const nw of [net, net2]) {
      networks.add(nw);
      await d.dockerOk(['network', 'create', nw]);
    }
    for (const c of [a, b]) {
      containers.add(c);
      await d.dockerOk(['run', '-d', '--network', net, '--name', c, TEST_IMAGE, 'sleep', '1000']);
    }
    const ipB = await d.dockerOk(['inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, b]);
    if (!/^[0-9.]+$/.test(ipB)) throw new Error(`no IPv4 address for ${b}: ${ipB}`);

    // RTTs of a few tens of µs drift with whatever else the machine does, so raw and arca take
    // turns, round by round, and each side reports the median of its round medians. Both run the
    // same busybox ping from the host's filesystem, entered into the sender's network namespace,
    // so only the network path differs; a `docker exec` round is reported beside it (it adds the
    // container's process context, not the network's).
    const sandboxA = await d.dockerOk(['inspect', '-f', '{{.NetworkSettings.SandboxKey}}', a]);
    const pingOut = `/tmp/${tag}-arca-ping.out`;
    const arcaPing = (): Promise<PingResult> => quietPingRound(sandboxA, ipB, pingOut);
    progress(`ping: ${PING_ROUNDS} rounds × ${PING_COUNT}, raw a→b and arca a→b (${ipB}) in turn`);
    await d.dockerOk(['exec', a, 'ping', '-c', '3', '-i', '0.01', ipB]);
    const rawRounds: PingResult[] = [];
    const arcaRounds: PingResult[] = [];
    const execRounds: PingResult[] = [];
    for (let i = 0; i < PING_ROUNDS; i++) {
      if (raw.ping) rawRounds.push(await raw.ping());
      arcaRounds.push(await arcaPing());
      if (i < 3) execRounds.push(parsePing(await d.dockerOk(['exec', a, 'sh', '-c', `${quietPing(ipB, 'ping')} > /tmp/ping.out; cat /tmp/ping.out`], { timeoutMs: 60_000 })));
    }
    out.ping_rtt = combinePings(arcaRounds);
    out.ping_rtt_docker_exec = combinePings(execRounds);
    if (rawRounds.length) out.raw_ping_rtt = combinePings(rawRounds);

    progress(`arca: iperf3 a→b ${IPERF_SECONDS} s`);
    await d.dockerOk(['exec', '-d', b, 'iperf3', '-s']);
    out.iperf_c2c_bps = await iperfClient((extra) => d.docker(['exec', a, 'iperf3', '-c', ipB, ...extra], { timeoutMs: 60_000 }));

    progress(`arca: iperf3 host → 127.0.0.1:5201 (published) ${IPERF_SECONDS} s`);
    containers.add(pub);
    await d.dockerOk(['run', '-d', '--name', pub, '--network', net, '-p', '127.0.0.1:5201:5201', TEST_IMAGE, 'iperf3', '-s']);
    out.iperf_published_bps = await iperfClient((extra) =>
      run(nsexec(d.hostNs, ['iperf3', '-c', '127.0.0.1', '-p', '5201', ...extra]), { allowFailure: true, timeoutMs: 60_000 }),
    );

    progress(`arca: network connect / disconnect × ${n} on a running container, through the API and the CLI`);
    await d.dockerOk(['network', 'connect', net2, a]); // warm-up
    await d.dockerOk(['network', 'disconnect', net2, a]);
    const connectMs: number[] = [];
    const disconnectMs: number[] = [];
    const connectCliMs: number[] = [];
    const disconnectCliMs: number[] = [];
    for (let i = 0; i < n; i++) {
      connectMs.push(await timed(() => apiOk(d, 'POST', `/networks/${net2}/connect`, { Container: a })));
      disconnectMs.push(await timed(() => apiOk(d, 'POST', `/networks/${net2}/disconnect`, { Container: a })));
    }
    for (let i = 0; i < n; i++) {
      connectCliMs.push(await timed(() => d.dockerOk(['network', 'connect', net2, a])));
      disconnectCliMs.push(await timed(() => d.dockerOk(['network', 'disconnect', net2, a])));
    }
    out.connect_ms = stats(connectMs);
    out.disconnect_ms = stats(disconnectMs);
    out.connect_cli_ms = stats(connectCliMs);
    out.disconnect_cli_ms = stats(disconnectCliMs);

    progress(`arca: DNS against 127.0.0.11 from ${a}'s netns, ${DNS_RUNS} × ${DNS_DURATION_MS} ms`);
    const sandbox = await d.dockerOk(['inspect', '-f', '{{.NetworkSettings.SandboxKey}}', a]);
    if (!sandbox.startsWith('/')) throw new Error(`no SandboxKey for ${a}: ${sandbox}`);
    const dnsBenchJs = join(dirname(fileURLToPath(import.meta.url)), 'dns-bench.js');
    writeFileSync(
      script,
      [
        `import { benchDns } from ${JSON.stringify(dnsBenchJs)};`,
        `const [name, ms, conc] = process.argv.slice(2);`,
        `const r = await benchDns('127.0.0.11', 53, Number(ms), Number(conc), { name });`,
        `process.stdout.write(JSON.stringify(r) + '\\n');`,
      ].join('\n') + '\n',
    );
    const dnsRun = async (ms: number): Promise<{ qps: number; errors: number; timeouts: number }> => {
      const res = await run(['nsenter', `--net=${sandbox}`, '--', process.execPath, script, b, String(ms), String(DNS_CONCURRENCY)], { timeoutMs: ms + 30_000 });
      return JSON.parse(res.stdout) as { qps: number; errors: number; timeouts: number };
    };
    await dnsRun(500); // warm-up
    const dnsRuns: Array<{ qps: number; errors: number; timeouts: number }> = [];
    for (let i = 0; i < DNS_RUNS; i++) dnsRuns.push(await dnsRun(DNS_DURATION_MS));
    out.dns = {
      runs: dnsRuns,
      median_qps: median(dnsRuns.map((x) => x.qps)),
      query: `A ${b}`,
      concurrency: DNS_CONCURRENCY,
      duration_ms: DNS_DURATION_MS,
    };
    return out;
  } finally {
    rmSync(script, { force: true });
    for (const c of containers) await d.docker(['rm', '-f', c]).catch(() => undefined);
    for (const nw of networks) await d.docker(['network', 'rm', nw]).catch(() => undefined);
  }
}

/**
 * The `network` section of the benchmark report. Never throws for a failed measurement: what was
 * measured is kept and the failure is recorded under `error`.
 */
export async function benchNetwork(d: TestDaemon, n: number, progress: (m: string) => void): Promise<Record<string, unknown>> {
  const tag = `nb${randomBytes(3).toString('hex')}`;
  const la = (): number[] => os.loadavg().map((x) => Math.round(x * 100) / 100);
  const section: Record<string, unknown> = { loadavg_start: la(), n };
  const errors: string[] = [];
  let raw: Record<string, unknown> = {};
  let arca: Record<string, unknown> = {};
  const handle: RawHandle = {};
  try {
    try {
      raw = await rawBaseline(tag, progress, handle);
    } catch (e) {
      errors.push(`raw: ${e instanceof Error ? e.message : String(e)}`);
    }
    try {
      arca = await throughArca(d, tag, n, progress, handle);
    } catch (e) {
      errors.push(`arca: ${e instanceof Error ? e.message : String(e)}`);
    }
  } finally {
    await handle.teardown?.();
  }
  section.loadavg_end = la();

  const rawPing = arca.raw_ping_rtt as PingResult | undefined;
  const arcaPing = arca.ping_rtt as PingResult | undefined;
  const rtt = (p?: PingResult): number | undefined => p?.median_ms ?? p?.avg_ms;
  const num = (x: unknown): number | undefined => (typeof x === 'number' ? x : undefined);
  const tp = (bps: number | undefined): number | null => (bps === undefined ? null : gbit(bps));
  const rr = (x: number | undefined, y: number | undefined): number | null => (x === undefined || y === undefined ? null : ratio(x, y));
  const st = (k: string): Stats | undefined => arca[k] as Stats | undefined;
  const rawC2c = num(raw.iperf_c2c_bps);
  const rawLo = num(raw.iperf_loopback_bps);
  const rawHost = num(raw.iperf_host_bps);
  const arcaC2c = num(arca.iperf_c2c_bps);
  const arcaPub = num(arca.iperf_published_bps);
  const dns = arca.dns as { median_qps: number } | undefined;

  section.ping_rtt_ms = {
    raw: rawPing ?? null,
    arca: arcaPing ?? null,
    ratio_median: rr(rtt(arcaPing), rtt(rawPing)),
    ratio_avg: rr(arcaPing?.avg_ms, rawPing?.avg_ms),
    arca_docker_exec: arca.ping_rtt_docker_exec ?? null,
    target_ratio_max: NET_TARGETS.rtt_ratio_max,
  };
  section.iperf3_container_to_container_gbit = {
    raw: tp(rawC2c),
    arca: tp(arcaC2c),
    ratio: rr(arcaC2c, rawC2c),
    target_ratio_min: NET_TARGETS.throughput_ratio_min,
  };
  section.iperf3_host_to_published_port_gbit = {
    raw_reference: 'iperf3 from the raw baseline\'s host netns to b over the bridge (the same kernel path without arca)',
    raw: tp(rawHost),
    arca: tp(arcaPub),
    arca_path: "daemon's host netns → 127.0.0.1:5201 published (-p 127.0.0.1:5201:5201) → container",
    ratio: rr(arcaPub, rawHost),
    loopback_reference: { what: 'iperf3 over loopback (127.0.0.1) in a fresh netns: no veth, 64 KiB MTU', raw: tp(rawLo), ratio: rr(arcaPub, rawLo) },
    target_ratio_min: NET_TARGETS.throughput_ratio_min,
  };
  section.cli_floor_ms = st('cli_floor_ms') ?? null;
  // `api`: the request as docker-py or compose makes it (the daemon's own time plus one HTTP round
  // trip); `cli`: through the docker CLI, whose own start-up is `cli_floor_ms`.
  section.network_create_ms = { api: st('network_create_ms') ?? null, cli: st('network_create_cli_ms') ?? null, target_median_max: NET_TARGETS.network_create_ms };
  section.network_rm_ms = { api: st('network_rm_ms') ?? null, cli: st('network_rm_cli_ms') ?? null, target_median_max: NET_TARGETS.network_rm_ms };
  section.network_connect_ms = { api: st('connect_ms') ?? null, cli: st('connect_cli_ms') ?? null, target_median_max: NET_TARGETS.connect_ms };
  section.network_disconnect_ms = { api: st('disconnect_ms') ?? null, cli: st('disconnect_cli_ms') ?? null, target_median_max: NET_TARGETS.disconnect_ms };
  section.dns_qps = { arca: arca.dns ?? null, target_min: NET_TARGETS.dns_qps };

  const within = <T>(v: T | undefined | null, ok: (v: T) => boolean): boolean | null => (v === undefined || v === null ? null : ok(v));
  section.within_targets = {
    ping_rtt: within(rr(rtt(arcaPing), rtt(rawPing)), (x) => x <= NET_TARGETS.rtt_ratio_max),
    iperf3_container_to_container: within(rr(arcaC2c, rawC2c), (x) => x >= NET_TARGETS.throughput_ratio_min),
    iperf3_host_to_published_port: within(rr(arcaPub, rawHost), (x) => x >= NET_TARGETS.throughput_ratio_min),
    network_create: within(st('network_create_ms'), (s) => s.median <= NET_TARGETS.network_create_ms),
    network_rm: within(st('network_rm_ms'), (s) => s.median <= NET_TARGETS.network_rm_ms),
    network_connect: within(st('connect_ms'), (s) => s.median <= NET_TARGETS.connect_ms),
    network_disconnect: within(st('disconnect_ms'), (s) => s.median <= NET_TARGETS.disconnect_ms),
    dns: within(dns?.median_qps, (x) => x >= NET_TARGETS.dns_qps),
  };
  if (errors.length) section.errors = errors;
  return section;
}
