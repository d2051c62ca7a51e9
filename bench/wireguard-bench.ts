/**
 * The `wireguard` section of `npm run bench` (issue 11, "Speed"): in one run, bare wireguard-go
 * between two namespaces over one veth (bench/bare-wireguard.ts) and arca's `wireguard` driver,
 * side by side.
 *
 * - Data path: ping RTT (median, p95) and iperf3 TCP, container → container through arca against
 *   the bare pair, both measured the same way (bench/data-path.ts: the host's busybox ping and
 *   iperf3 entered into the namespaces with nsenter, the sides taking turns round by round, both
 *   directions). `--n` ping rounds, at most {@link IPERF_ROUNDS_MAX} iperf3 rounds. A second bare
 *   pair, `bare_tuned`, gets the tunings the driver gives wireguard-go (its GOMAXPROCS, raised UDP
 *   socket buffers where it leaves them small): the targets compare with plain bare (Go's own
 *   GOMAXPROCS), `*_vs_bare_tuned` shows what the layout costs.
 * - Join: a running container connected (through the API) to a network of
 *   {@link JOIN_PEERS} running peers, then pinged from its netns to one peer every 2 ms: the
 *   connect call's duration and the time from its return to the first reply (`--n` joins, after
 *   one warm-up). `probe_floor` is the same probe between two peers that know each other already.
 * - Memory: VmRSS of each endpoint's wireguard-go (found by the driver's pidfiles under
 *   <execRoot>/wireguard/), idle, on the join network and at scale; the bare pair's beside it.
 * - Scale: `--scale N` containers on one wireguard network, started one after another through the
 *   API (create + start, as compose does), then every ordered pair of a random sample of
 *   {@link SCALE_SAMPLE} pinged, four sources at a time, each its targets in turn (so a pair is
 *   often pinged both ways at once). The target wants every pair's first ping answered; a
 *   failed one is tried once more, to tell a lost first ping (counted under
 *   `reachable_on_second_try`) from an unreachable pair (`failures`).
 *
 * The daemon is a scratch one of its own in a throwaway netns (the e2e harness). When it has no
 * `wireguard` driver the arca half is skipped with the daemon's answer and the bare half is still
 * measured. Everything is removed in `finally`, also on failure: the bare pair by its pids and
 * names, the daemon's objects through the API, the daemon by the harness, and then any
 * wireguard-go the daemon's pidfiles named that is still running (a leak, reported and killed by
 * pid after checking it is that wireguard-go).
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { run } from '../src/sys/runner.js';
import { endpointNames, runtimePaths, uapiSocketPath } from '../src/network/drivers/wireguard/wg-names.js';
import { inotifyUsage, isWireguardGo, wireguardGoTuning } from '../src/network/drivers/wireguard/wg-process.js';
import { uapiGet } from '../src/network/drivers/wireguard/uapi.js';
import { readPidFile } from '../src/sys/proc-files.js';
import { TEST_IMAGE, alive, daemonTag, rssKb, startDaemon, type TestDaemon } from '../test/e2e/harness.js';
import { BareWireguard } from './bare-wireguard.js';
import { dataPath, firstReply, summarizeDataPath, type Side } from './data-path.js';
import { api, apiOk, nsexec } from './net-bench.js';
import { stats, timed, type Stats } from './sample-stats.js';

/** From issue 11's "Speed"; reported next to the figures, never asserted. */
export const WG_TARGETS = {
  rtt_ratio_max: 1.2,
  throughput_ratio_min: 0.9,
  join_first_ping_ms: 60,
  endpoint_idle_rss_mb: 8,
  scale_containers: 100,
};

const DRIVER = 'wireguard';
const IPERF_ROUNDS_MAX = 5;
const JOIN_PEERS = 10;
const JOIN_PING_DEADLINE_S = 5;
const SCALE_SAMPLE = 20;
/** Parallel reachability probes (one nsenter per source, pinging its targets in turn). */
const REACH_PARALLEL = 4;
/** One ping's wait for its reply in the reachability probe; a miss is tried once more. */
const REACH_WAIT_S = 2;
/** Inside the benchmark range 198.18.0.0/15: room for 1022 containers. */
const SCALE_SUBNET = '198.19.100.0/22';
const API_TIMEOUT_MS = 60_000;

const mb = (kb: number): number => Math.round((kb / 1024) * 10) / 10;
const r1 = (x: number): number => Math.round(x * 10) / 10;
const la = (): number[] => os.loadavg().map((x) => Math.round(x * 100) / 100);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const msg = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** `k` distinct indices out of `0..n-1` (all of them, shuffled, when k ≥ n): a partial Fisher–Yates. */
export function sampleIndices(n: number, k: number, rand: (below: number) => number = randomInt): number[] {
  const idx = Array.from({ length: n }, (_, i) => i);
  const m = Math.min(k, n);
  for (let i = 0; i < m; i++) {
    const j = i + rand(n - i);
    [idx[i], idx[j]] = [idx[j]!, idx[i]!];
  }
  return idx.slice(0, m);
}

/** What one source's reachability probe printed: `ok IP` (first ping), `retry IP` (second), `fail IP`. */
export interface ReachResult {
  ok: string[];
  retried: string[];
  failed: string[];
}

export function parseReach(out: string): ReachResult {
  const res: ReachResult = { ok: [], retried: [], failed: [] };
  for (const line of out.split('\n')) {
    const m = /^(ok|retry|fail) ([0-9.]+)$/.exec(line.trim());
    if (!m) continue;
    (m[1] === 'ok' ? res.ok : m[1] === 'retry' ? res.retried : res.failed).push(m[2]!);
  }
  return res;
}

/** The probe, run by busybox sh in the source's netns; the targets come in as arguments, never as script text. */
const REACH_SCRIPT = [
  `p() { /bin/busybox ping -c 1 -W ${REACH_WAIT_S} "$1" >/dev/null 2>&1; }`,
  'for ip in "$@"; do',
  '  if p "$ip"; then echo "ok $ip"; elif p "$ip"; then echo "retry $ip"; else echo "fail $ip"; fi',
  'done',
].join('\n');

/** A container of the run: its id, netns, address on the network it was made for, and endpoint id there. */
interface Ctr {
  id: string;
  ns: string;
  ip: string;
  endpointId: string;
}

interface Ctx {
  d: TestDaemon;
  tag: string;
  /** The daemon's tag (names of its hidden netns). */
  dtag: string;
  n: number;
  progress: (m: string) => void;
  out: Record<string, unknown>;
  containers: Set<string>;
  networks: Set<string>;
}

/** The section's report. Never throws for a failed measurement: what was measured is kept, failures go under `errors`. */
export async function benchWireguard(n: number, scale: number, progress: (m: string) => void, daemonArgs: string[] = []): Promise<Record<string, unknown>> {
  const tag = `bw${randomBytes(3).toString('hex')}`;
  const section: Record<string, unknown> = { loadavg_start: la(), n, scale, wireguard_go_package: await wireguardGoPackage() };
  const errors: string[] = [];
  const arca: Record<string, unknown> = {};
  const bareOut: Record<string, unknown> = {};
  const servers: ChildProcess[] = [];
  let bare: BareWireguard | undefined;
  let bareTuned: BareWireguard | undefined;
  let d: TestDaemon | undefined;
  let ctx: Ctx | undefined;
  try {
    try {
      bare = await BareWireguard.build(tag, progress);
      bareOut.up_ms = bare.upMs;
      await sleep(500);
      bareOut.idle_rss_mb = Object.fromEntries(Object.entries(bare.rssKb()).map(([k, v]) => [k, mb(v)]));
    } catch (e) {
      errors.push(`bare: ${msg(e)}`);
    }
    try {
      bareTuned = await BareWireguard.build(`${tag}x`, progress, { tuned: true });
      bareOut.tuned = { env: wireguardGoTuning(), udp_buffers_raised: bareTuned.buffersRaised };
    } catch (e) {
      errors.push(`bare tuned: ${msg(e)}`);
    }

    let arcaSide: Side | undefined;
    try {
      progress('arca: a scratch daemon in its own netns');
      d = await startDaemon({ daemonArgs });
      ctx = { d, tag, dtag: daemonTag(d.root), n, progress, out: arca, containers: new Set(), networks: new Set() };
      const unavailable = await createNetwork(ctx, `${tag}-net`);
      if (unavailable) {
        arca.skipped = `wireguard driver not available (${unavailable})`;
        progress(`arca: skipped: ${String(arca.skipped)}`);
      } else arcaSide = await twoContainers(ctx, `${tag}-net`);
    } catch (e) {
      errors.push(`arca: ${msg(e)}`);
    }

    const sides: Array<[string, Side]> = [];
    if (bare) {
      const pair = bare;
      sides.push(['bare', { a: { ns: pair.a.netns, ip: pair.a.ip }, b: { ns: pair.b.netns, ip: pair.b.ip }, pingOut: `/tmp/${tag}-bare-ping.out`, carriers: () => pair.pids() }]);
    }
    if (bareTuned) {
      const pair = bareTuned;
      sides.push(['bare_tuned', { a: { ns: pair.a.netns, ip: pair.a.ip }, b: { ns: pair.b.netns, ip: pair.b.ip }, pingOut: `/tmp/${tag}-bareb-ping.out`, carriers: () => pair.pids() }]);
    }
    if (arcaSide) sides.push(['arca', arcaSide]);
    if (sides.length) {
      try {
        Object.assign(section, await dataPath(sides, servers, progress, { ping: n, iperf: Math.min(n, IPERF_ROUNDS_MAX) }));
      } catch (e) {
        errors.push(`data path: ${msg(e)}`);
      }
    }
    // Neither the bare pair nor the data-path containers are needed further: their processes
    // would only share the two cores and the machine's inotify instances with what follows.
    await bare?.destroy();
    await bareTuned?.destroy();
    if (ctx && arcaSide) {
      await removeAll(ctx).catch((e: unknown) => errors.push(`arca: removing the data-path containers: ${msg(e)}`));
      try {
        await join(ctx);
      } catch (e) {
        errors.push(`arca join: ${msg(e)}`);
      }
      await removeAll(ctx).catch((e: unknown) => errors.push(`arca: removing the join containers: ${msg(e)}`));
      if (scale > 1) {
        try {
          arca.scale = await scaleRun(ctx, scale);
        } catch (e) {
          errors.push(`arca scale: ${msg(e)}`);
        }
      }
    }
  } finally {
    for (const s of servers) if (s.exitCode === null && s.signalCode === null) s.kill('SIGKILL');
    await bare?.destroy();
    await bareTuned?.destroy();
    if (d) {
      progress('arca: removing the scratch daemon');
      if (ctx) await removeAll(ctx).catch((e: unknown) => errors.push(`cleanup: ${msg(e)}`));
      const left = wgProcesses(d.execRoot);
      await d.cleanup().catch((e: unknown) => errors.push(`cleanup: ${msg(e)}`));
      const leaked = await killLeftovers(left);
      if (leaked) errors.push(`cleanup: ${leaked} wireguard-go process(es) of the scratch daemon were still running after its cleanup (killed)`);
    }
  }
  section.loadavg_end = la();
  section.bare = bareOut;
  section.arca = arca;
  summarize(section, bareOut, arca);
  if (errors.length) section.errors = errors;
  return section;
}

/** Creates a wireguard network through the API; returns the daemon's answer when it refuses. */
async function createNetwork(ctx: Ctx, name: string, subnet?: string): Promise<string | undefined> {
  const body: Record<string, unknown> = { Name: name, Driver: DRIVER };
  if (subnet) body.IPAM = { Config: [{ Subnet: subnet }] };
  const r = await api(ctx.d, 'POST', '/networks/create', body, API_TIMEOUT_MS);
  if (r.status < 300) {
    ctx.networks.add(name);
    return undefined;
  }
  let why = r.body.trim();
  try {
    why = (JSON.parse(r.body) as { message?: string }).message ?? why;
  } catch {
    /* not JSON */
  }
  return `${r.status}: ${why}`;
}

/** Create + start through the API, as compose does; `net` undefined: the default bridge. */
async function startContainer(ctx: Ctx, name: string, net?: string): Promise<string> {
  const body: Record<string, unknown> = { Image: TEST_IMAGE, Cmd: ['sleep', '1000000'] };
  if (net) body.HostConfig = { NetworkMode: net };
  const { Id } = JSON.parse(await apiOk(ctx.d, 'POST', `/containers/create?name=${encodeURIComponent(name)}`, body, API_TIMEOUT_MS)) as { Id: string };
  ctx.containers.add(Id);
  await apiOk(ctx.d, 'POST', `/containers/${Id}/start`, undefined, API_TIMEOUT_MS);
  return Id;
}

/** A container's netns and its address and endpoint id on `net`. */
async function inspectCtr(ctx: Ctx, id: string, net: string): Promise<Ctr> {
  const j = JSON.parse(await apiOk(ctx.d, 'GET', `/containers/${id}/json`, undefined, API_TIMEOUT_MS)) as {
    NetworkSettings?: { SandboxKey?: string; Networks?: Record<string, { IPAddress?: string; EndpointID?: string }> };
  };
  const ns = j.NetworkSettings?.SandboxKey ?? '';
  const ep = j.NetworkSettings?.Networks?.[net];
  const ip = ep?.IPAddress ?? '';
  const endpointId = ep?.EndpointID ?? '';
  if (!ns.startsWith('/')) throw new Error(`no SandboxKey for ${id.slice(0, 12)}`);
  if (!/^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$/.test(ip)) throw new Error(`no IPv4 address for ${id.slice(0, 12)} on ${net}`);
  if (!/^[0-9a-f]{12,}$/.test(endpointId)) throw new Error(`no endpoint id for ${id.slice(0, 12)} on ${net}`);
  return { id, ns, ip, endpointId };
}

/** Removes every container and network the section made on the daemon (containers 4 at a time). */
async function removeAll(ctx: Ctx): Promise<{ rm_ms?: Stats }> {
  const { d } = ctx;
  const queue = [...ctx.containers];
  const rmMs: number[] = [];
  const failures: string[] = [];
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      for (let id = queue.shift(); id; id = queue.shift()) {
        const t0 = performance.now();
        const r = await api(d, 'DELETE', `/containers/${id}?force=true`, undefined, API_TIMEOUT_MS).catch((e: unknown) => ({ status: 0, body: msg(e) }));
        rmMs.push(performance.now() - t0);
        if (r.status >= 300 && r.status !== 404) failures.push(`${id.slice(0, 12)}: ${r.status} ${r.body.trim()}`);
        else ctx.containers.delete(id);
      }
    }),
  );
  for (const net of [...ctx.networks]) {
    const r = await api(d, 'DELETE', `/networks/${net}`, undefined, API_TIMEOUT_MS).catch((e: unknown) => ({ status: 0, body: msg(e) }));
    if (r.status >= 300 && r.status !== 404) failures.push(`network ${net}: ${r.status} ${r.body.trim()}`);
    else ctx.networks.delete(net);
  }
  if (failures.length) throw new Error(`remove failed: ${failures.slice(0, 3).join('; ')}`);
  return rmMs.length ? { rm_ms: stats(rmMs) } : {};
}

/** The pid in an endpoint's pidfile if that process is still its wireguard-go. */
function wgPid(execRoot: string, ifname: string): number | undefined {
  const pid = readPidFile(runtimePaths(execRoot, ifname).pidFile);
  return pid !== undefined && isWireguardGo(pid, ifname) ? pid : undefined;
}

/** Every live wireguard-go the daemon's pidfiles name. */
function wgProcesses(execRoot: string): Array<{ ifname: string; pid: number }> {
  let files: string[] = [];
  try {
    files = readdirSync(`${execRoot}/wireguard`).filter((f) => f.endsWith('.pid'));
  } catch {
    return [];
  }
  return files.flatMap((f) => {
    const ifname = f.slice(0, -4);
    const pid = wgPid(execRoot, ifname);
    return pid ? [{ ifname, pid }] : [];
  });
}

/** Kills (by pid) what is still that wireguard-go after the daemon's cleanup and removes its socket; returns how many. */
async function killLeftovers(procs: Array<{ ifname: string; pid: number }>): Promise<number> {
  const still = procs.filter(({ pid, ifname }) => isWireguardGo(pid, ifname));
  for (const { pid } of still) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  const deadline = Date.now() + 2000;
  while (still.some((p) => alive(p.pid)) && Date.now() < deadline) await sleep(20);
  for (const { ifname, pid } of still) if (!alive(pid)) rmSync(uapiSocketPath(ifname), { force: true });
  return still.length;
}

/** The installed wireguard-go package's version: the binary's own --version lags its releases. */
async function wireguardGoPackage(): Promise<string | null> {
  const chosen = process.env.ARCA_WIREGUARD_GO;
  if (chosen) return `${chosen} (ARCA_WIREGUARD_GO)`;
  const r = await run(['dpkg-query', '-W', '-f=${Version}', 'wireguard-go'], { allowFailure: true });
  return r.code === 0 && r.stdout ? r.stdout : null;
}

/**
 * VmRSS in MiB of the given endpoints' wireguard-go: median and max, and how many were found
 * running. The target is on VmRSS; `anon_median_mb` (RssAnon) is what one more endpoint really
 * adds, since the binary's pages (RssFile, ~4.5 MiB) are one copy shared by every wireguard-go.
 */
function endpointRss(
  ctx: Ctx,
  endpointIds: string[],
): { endpoints: number; running: number; median_mb: number | null; max_mb: number | null; anon_median_mb: number | null; pss_median_mb: number | null } {
  const pids = endpointIds.flatMap((e) => {
    const pid = wgPid(ctx.d.execRoot, endpointNames(ctx.dtag, e).wgIf);
    return pid ? [pid] : [];
  });
  const kb = pids.map((pid) => rssKb(pid));
  /** A `Field:  N kB` line of a /proc file, for each pid that has it. */
  const field = (file: string, name: string): number[] =>
    pids.flatMap((pid) => {
      const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/${file}`, 'utf8'));
      return m ? [Number(m[1])] : [];
    });
  const anon = field('status', 'RssAnon');
  // Pss: the process's pages, each shared one divided by its sharers (the binary's among every wireguard-go).
  const pss = field('smaps_rollup', 'Pss');
  const s = kb.length ? stats(kb) : undefined;
  const a = anon.length ? stats(anon) : undefined;
  const p = pss.length ? stats(pss) : undefined;
  return {
    endpoints: endpointIds.length,
    running: kb.length,
    median_mb: s ? mb(s.median) : null,
    max_mb: s ? mb(s.max) : null,
    anon_median_mb: a ? mb(a.median) : null,
    pss_median_mb: p ? mb(p.median) : null,
  };
}

/** Two containers on a wireguard network: the arca side of the data-path comparison. */
async function twoContainers(ctx: Ctx, net: string): Promise<Side> {
  const { tag, progress, out } = ctx;
  progress('arca: two containers on a wireguard network');
  const a = await inspectCtr(ctx, await startContainer(ctx, `${tag}-a`, net), net);
  const b = await inspectCtr(ctx, await startContainer(ctx, `${tag}-b`, net), net);
  await sleep(500);
  out.idle_rss_two_endpoints = endpointRss(ctx, [a.endpointId, b.endpointId]);
  // Looked up each round: a re-created wireguard-go has a new pid.
  const carriers = (): number[] => [a, b].flatMap((c) => wgPid(ctx.d.execRoot, endpointNames(ctx.dtag, c.endpointId).wgIf) ?? []);
  return { a: { ns: a.ns, ip: a.ip }, b: { ns: b.ns, ip: b.ip }, pingOut: `/tmp/${tag}-arca-ping.out`, carriers };
}

/**
 * A running container (on the default bridge) connected to a network of {@link JOIN_PEERS}
 * running peers through the API, `n` times after one warm-up: how long the call takes, and how
 * long from its return until the container's first ping to one peer (a different one each time)
 * is answered; then it is disconnected (timed). Each join is a container of its own, started
 * beforehand, so every one is a first join, as `docker network connect` of a new service is
 * (and a re-join's own quirks stay out of it). Then the peers' idle RSS.
 */
async function join(ctx: Ctx): Promise<void> {
  const { d, tag, n, progress, out } = ctx;
  const net = `${tag}-join`;
  progress(`arca: join: a network of ${JOIN_PEERS} running peers`);
  const refused = await createNetwork(ctx, net);
  if (refused) throw new Error(`network create: ${refused}`);
  const peers: Ctr[] = [];
  for (let i = 0; i < JOIN_PEERS; i++) peers.push(await inspectCtr(ctx, await startContainer(ctx, `${tag}-p${i}`, net), net));
  const joiners: Array<{ id: string; ns: string }> = [];
  for (let i = 0; i <= n; i++) {
    const id = await startContainer(ctx, `${tag}-j${i}`);
    const j = JSON.parse(await apiOk(d, 'GET', `/containers/${id}/json`)) as { NetworkSettings: { SandboxKey: string } };
    joiners.push({ id, ns: j.NetworkSettings.SandboxKey });
  }

  // The probe's own cost (nsenter + busybox ping, one RTT) between peers that have a session already.
  await firstReply(peers[0]!.ns, peers[1]!.ip, JOIN_PING_DEADLINE_S);
  const floorMs: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const t = await firstReply(peers[0]!.ns, peers[1 + (i % (JOIN_PEERS - 1))]!.ip, JOIN_PING_DEADLINE_S);
    if (t !== undefined) floorMs.push(t - t0);
  }

  progress(`arca: join: network connect through the API until the first ping to a peer × ${n} (after one warm-up)`);
  const connect = (id: string): Promise<string> => apiOk(d, 'POST', `/networks/${net}/connect`, { Container: id }, API_TIMEOUT_MS);
  const disconnect = (id: string): Promise<string> => apiOk(d, 'POST', `/networks/${net}/disconnect`, { Container: id }, API_TIMEOUT_MS);
  await connect(joiners[0]!.id);
  await firstReply(joiners[0]!.ns, peers[0]!.ip, JOIN_PING_DEADLINE_S);
  await disconnect(joiners[0]!.id);
  const connectMs: number[] = [];
  const untilPingMs: number[] = [];
  const totalMs: number[] = [];
  const disconnectMs: number[] = [];
  let unanswered = 0;
  for (let i = 0; i < n; i++) {
    const joiner = joiners[i + 1]!;
    // The previous leave's work (process exit, namespace teardown) settles first.
    await sleep(200);
    const t0 = performance.now();
    await connect(joiner.id);
    const t1 = performance.now();
    connectMs.push(t1 - t0);
    const t = await firstReply(joiner.ns, peers[i % JOIN_PEERS]!.ip, JOIN_PING_DEADLINE_S);
    if (t === undefined) unanswered++;
    else {
      untilPingMs.push(t - t1);
      totalMs.push(t - t0);
    }
    disconnectMs.push(await timed(() => disconnect(joiner.id)));
  }
  out.join = {
    peers: JOIN_PEERS,
    connect_api_ms: stats(connectMs),
    connect_return_to_first_ping_ms: untilPingMs.length ? stats(untilPingMs) : null,
    connect_start_to_first_ping_ms: totalMs.length ? stats(totalMs) : null,
    ...(unanswered ? { unanswered } : {}),
    probe_floor_ms: floorMs.length ? stats(floorMs) : null,
    disconnect_api_ms: stats(disconnectMs),
  };

  await sleep(1000);
  out.idle_rss_join_network = { ...endpointRss(ctx, peers.map((p) => p.endpointId)), peers_each: JOIN_PEERS - 1 };
  // The joiner's endpoints are gone after each disconnect: only the peers' processes remain.
  out.wireguard_processes_after_joins = wgProcesses(d.execRoot).length;
}

/**
 * `scale` containers on one wireguard network, one after another through the API (create +
 * start), then every ordered pair of a random sample of {@link SCALE_SAMPLE} pinged. A failed
 * start ends the starting (and is reported); the pairs are checked among those that started.
 */
async function scaleRun(ctx: Ctx, scale: number): Promise<Record<string, unknown>> {
  const { tag, progress } = ctx;
  const net = `${tag}-scale`;
  const out: Record<string, unknown> = { requested: scale, subnet: SCALE_SUBNET };
  progress(`arca: scale: ${scale} containers on one wireguard network (${SCALE_SUBNET}), started one after another`);
  const refused = await createNetwork(ctx, net, SCALE_SUBNET);
  if (refused) throw new Error(`network create: ${refused}`);
  const bucketSize = Math.max(10, Math.round(scale / 10));
  const ctrs: Ctr[] = [];
  const stepMs: number[] = [];
  const buckets: Array<{ containers: number; create_start_ms: Stats; loadavg: number }> = [];
  const t0 = performance.now();
  for (let i = 0; i < scale; i++) {
    const s0 = performance.now();
    try {
      const id = await startContainer(ctx, `${tag}-s${i}`, net);
      stepMs.push(performance.now() - s0);
      ctrs.push(await inspectCtr(ctx, id, net));
    } catch (e) {
      out.stopped = { at: i + 1, reason: msg(e) };
      break;
    }
    if ((i + 1) % bucketSize === 0 || i === scale - 1) {
      const s = stats(stepMs.slice(-((i % bucketSize) + 1)));
      buckets.push({ containers: i + 1, create_start_ms: s, loadavg: la()[0]! });
      progress(`arca: scale ${i + 1}: create+start median ${s.median} ms`);
    }
  }
  out.containers = ctrs.length;
  out.start_all_s = r1((performance.now() - t0) / 1000);
  if (stepMs.length) out.create_start_ms = stats(stepMs);
  out.buckets = buckets;
  out.daemon_rss_mb = mb(rssKb(ctx.d.pid()));
  out.wireguard_processes = wgProcesses(ctx.d.execRoot).length;
  // Each wireguard-go holds one inotify instance, counted against a machine-wide per-uid limit.
  out.inotify_instances = inotifyUsage();
  await sleep(1000);
  out.idle_rss = { ...endpointRss(ctx, ctrs.map((c) => c.endpointId)), peers_each: ctrs.length - 1 };

  if (ctrs.length >= 2) {
    const sample = sampleIndices(ctrs.length, SCALE_SAMPLE).map((i) => ctrs[i]!);
    progress(`arca: scale: every ordered pair of ${sample.length} sampled containers (${sample.length * (sample.length - 1)} pings)`);
    const r0 = performance.now();
    const queue = [...sample];
    let reachable = 0;
    let retried = 0;
    const failed: string[] = [];
    await Promise.all(
      Array.from({ length: REACH_PARALLEL }, async () => {
        for (let src = queue.shift(); src; src = queue.shift()) {
          const targets = sample.filter((c) => c !== src).map((c) => c.ip);
          const r = await run(nsexec(src.ns, ['/bin/busybox', 'sh', '-c', REACH_SCRIPT, 'reach', ...targets]), {
            allowFailure: true,
            timeoutMs: (targets.length * 2 * REACH_WAIT_S + 30) * 1000,
          });
          const res = parseReach(r.stdout);
          reachable += res.ok.length + res.retried.length;
          retried += res.retried.length;
          const missing = targets.length - res.ok.length - res.retried.length - res.failed.length;
          for (const ip of res.failed) failed.push(`${src.ip}→${ip}`);
          if (missing > 0) failed.push(`${src.ip}: ${missing} target(s) not probed (exit ${r.code}: ${r.stderr.trim().slice(-200)})`);
        }
      }),
    );
    // What a failed pair's two devices hold of each other, then whether it heals by itself (a
    // handshake initiation that was lost is retried after REKEY_TIMEOUT, 5 s; a lost peer update
    // is mended by the driver's 5-s audit).
    const detail: Array<Record<string, unknown>> = [];
    const byIp = new Map(sample.map((c) => [c.ip, c]));
    const seenPairs = new Set<string>();
    for (const f of failed) {
      const m = /^(\S+)→(\S+)$/.exec(f);
      const a = m ? byIp.get(m[1]!) : undefined;
      const b = m ? byIp.get(m[2]!) : undefined;
      if (!a || !b || detail.length >= 4 || seenPairs.has([a.ip, b.ip].sort().join())) continue;
      seenPairs.add([a.ip, b.ip].sort().join());
      const view = async (x: Ctr, y: Ctr): Promise<unknown> => {
        try {
          const st = await uapiGet(uapiSocketPath(endpointNames(ctx.dtag, x.endpointId).wgIf));
          const p = st.peers.find((q) => q.allowedIps.includes(`${y.ip}/32`));
          const now = Date.now() / 1000;
          return p ? { endpoint: p.endpoint, handshake_age_s: p.lastHandshakeSec ? Math.round(now - p.lastHandshakeSec) : null, rx: p.rxBytes, tx: p.txBytes, peers: st.peers.length } : { missing: true, peers: st.peers.length };
        } catch (e) {
          return { error: msg(e) };
        }
      };
      const entry: Record<string, unknown> = { pair: `${a.ip}↔${b.ip}`, a_has_b: await view(a, b), b_has_a: await view(b, a) };
      const heal = async (): Promise<boolean> => (await run(nsexec(a.ns, ['/bin/busybox', 'ping', '-c', '1', '-W', '1', b.ip]), { allowFailure: true })).code === 0;
      const h0 = performance.now();
      let healed = await heal();
      while (!healed && performance.now() - h0 < 12_000) healed = await heal();
      entry.healed_after_s = healed ? r1((performance.now() - h0) / 1000) : null;
      detail.push(entry);
    }
    out.pairs = {
      ...(detail.length ? { failed_detail: detail } : {}),
      sampled: sample.length,
      pairs: sample.length * (sample.length - 1),
      reachable,
      reachable_first_try: reachable - retried,
      reachable_on_second_try: retried,
      failures: failed.length,
      ...(failed.length ? { failed: failed.slice(0, 20) } : {}),
      check_s: r1((performance.now() - r0) / 1000),
    };
  }
  progress(`arca: scale: removing ${ctrs.length} containers`);
  const removed = await removeAll(ctx);
  if (removed.rm_ms) out.rm_ms_4_parallel = removed.rm_ms;
  return out;
}

/** The side-by-side figures and their targets, from what was measured. */
function summarize(section: Record<string, unknown>, bare: Record<string, unknown>, arca: Record<string, unknown>): void {
  // The bare pair with the driver's tunings, beside the others (the target compares with plain bare).
  const btPing = section.bare_tuned_ping as { median_ms: number } | undefined;
  const btIperf = section.bare_tuned_iperf_gbit as { median: number } | undefined;
  const aPing = section.arca_ping as { median_ms: number } | undefined;
  const aIperf = section.arca_iperf_gbit as { median: number } | undefined;
  const dp = summarizeDataPath(section, WG_TARGETS);
  const rr = (x: number | undefined, y: number | undefined): number | null => (x === undefined || y === undefined || !y ? null : Math.round((x / y) * 100) / 100);
  Object.assign(section.ping_rtt_ms as Record<string, unknown>, { bare_tuned: btPing ?? null, ratio_median_vs_bare_tuned: rr(aPing?.median_ms, btPing?.median_ms) });
  Object.assign(section.iperf3_container_to_container_gbit as Record<string, unknown>, { bare_tuned: btIperf ?? null, ratio_vs_bare_tuned: rr(aIperf?.median, btIperf?.median) });
  delete section.bare_tuned_ping;
  delete section.bare_tuned_iperf_gbit;
  // Per round, both wireguard-go together: CPU seconds and their namespaces' UDP receive-buffer drops.
  (section.iperf3_container_to_container_gbit as Record<string, unknown>).wireguard_go_per_round = {
    bare: section.bare_carriers_per_iperf_round ?? null,
    bare_tuned: section.bare_tuned_carriers_per_iperf_round ?? null,
    arca: section.arca_carriers_per_iperf_round ?? null,
  };
  for (const k of ['bare_carriers_per_iperf_round', 'bare_tuned_carriers_per_iperf_round', 'arca_carriers_per_iperf_round']) delete section[k];
  type Join = { connect_api_ms: Stats; connect_return_to_first_ping_ms: Stats | null; probe_floor_ms: Stats | null; unanswered?: number };
  const j = arca.join as Join | undefined;
  section.join_first_ping_ms = {
    connect_api: j?.connect_api_ms ?? null,
    connect_return_to_first_ping: j?.connect_return_to_first_ping_ms ?? null,
    probe_floor: j?.probe_floor_ms ?? null,
    target_median_max: WG_TARGETS.join_first_ping_ms,
  };
  type Rss = { median_mb: number | null; pss_median_mb?: number | null };
  const idle = arca.idle_rss_join_network as Rss | undefined;
  const bareRss = Object.values((bare.idle_rss_mb ?? {}) as Record<string, number>);
  section.endpoint_idle_rss_mb = {
    arca_join_network: idle?.median_mb ?? null,
    arca_two_endpoints: (arca.idle_rss_two_endpoints as Rss | undefined)?.median_mb ?? null,
    arca_at_scale: ((arca.scale as { idle_rss?: Rss } | undefined)?.idle_rss ?? undefined)?.median_mb ?? null,
    arca_join_network_pss: idle?.pss_median_mb ?? null,
    bare_max: bareRss.length ? Math.max(...bareRss) : null,
    target_max: WG_TARGETS.endpoint_idle_rss_mb,
  };
  type Scale = { requested: number; containers: number; start_all_s: number; pairs?: { pairs: number; failures: number; reachable_on_second_try: number } };
  const sc = arca.scale as Scale | undefined;
  section.scale_run = sc
    ? { containers: sc.containers, requested: sc.requested, start_all_s: sc.start_all_s, pairs: sc.pairs?.pairs ?? 0, pair_failures: sc.pairs?.failures ?? null, pairs_on_second_try: sc.pairs?.reachable_on_second_try ?? null }
    : null;
  const within = <T>(v: T | undefined | null, ok: (v: T) => boolean): boolean | null => (v === undefined || v === null ? null : ok(v));
  section.within_targets = {
    ping_rtt: within(dp.rtt, (x) => x <= WG_TARGETS.rtt_ratio_max),
    iperf3_container_to_container: within(dp.throughput, (x) => x >= WG_TARGETS.throughput_ratio_min),
    join_first_ping: within(j?.connect_return_to_first_ping_ms, (s) => s.median <= WG_TARGETS.join_first_ping_ms && !j?.unanswered),
    endpoint_idle_rss: within(idle?.median_mb, (x) => x <= WG_TARGETS.endpoint_idle_rss_mb),
    // A quick run with a smaller --scale says nothing about the target's size.
    scale: within(sc?.requested !== undefined && sc.requested >= WG_TARGETS.scale_containers ? sc : undefined, (s) => s.containers >= WG_TARGETS.scale_containers && s.pairs?.failures === 0 && s.pairs.reachable_on_second_try === 0),
  };
}
