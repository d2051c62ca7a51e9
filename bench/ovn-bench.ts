/**
 * The `ovn` section of `npm run bench` (issue 9, "Speed"): in one run, a bare OVN switch built by
 * hand with the CLI tools (bench/bare-ovn.ts) and arca's `ovn` driver, side by side.
 *
 * Both data paths are measured the same way: the host's busybox ping and iperf3 entered into the
 * sender's (and receiver's) network namespace with nsenter, bare and arca taking turns round by
 * round so both see the same machine load. Through arca, on a scratch daemon of its own (a fresh one,
 * so the first `network create -d ovn` is the one that starts the OVN stack): network create/rm
 * through the API, stack cold start (that first create minus a later one), the stack's
 * idle RSS, `network connect` until the new interface pings, and a scale run (`--scale N`
 * containers on one ovn network, each pinged from the first, stopping early where a step exceeds
 * its limit). When the daemon has no `ovn` driver the arca half is skipped with the daemon's
 * answer, and the bare half is still measured.
 *
 * Everything is removed in `finally`, also on failure: the bare stack by its pids and names, the
 * scratch daemon by the harness, and then the OVN processes the daemon left running (they outlive
 * it by design) by pid, found by the daemon's folder in their command line or environment.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { basename, dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import { TEST_IMAGE, alive, rssKb, startDaemon, type TestDaemon } from '../test/e2e/harness.js';
import { BareOvn } from './bare-ovn.js';
import { dataPath, firstReply, summarizeDataPath, type Side } from './data-path.js';
import { api, apiOk, quietPingRound, type PingResult } from './net-bench.js';
import { stats, timed, type Stats } from './sample-stats.js';

/** From issue 9's "Speed"; reported next to the figures, never asserted. */
export const OVN_TARGETS = {
  /** "RTT ≥ 0.9× bare": arca's round trip at most bare's / 0.9. */
  rtt_ratio_max: 1.11,
  throughput_ratio_min: 0.9,
  network_create_ms: 30,
  connect_until_ping_ms: 30,
  stack_cold_start_ms: 1000,
  stack_idle_rss_mb: 80,
  scale_containers_min: 1500,
};

const DRIVER = 'ovn';
const PING_ROUNDS = 5;
const IPERF_ROUNDS = 2;
/** A scale step (create + start through the API) slower than this ends the scale run. */
const SCALE_STEP_LIMIT_MS = 10_000;
/** A new container not answering the first one's ping within this ends the scale run. */
const SCALE_REACH_DEADLINE_S = 5;
/** Inside the benchmark range 198.18.0.0/15: room for 4094 containers. */
const SCALE_SUBNET = '198.19.80.0/20';
const OVN_PROGRAMS = new Set(['ovsdb-server', 'ovs-vswitchd', 'ovn-northd', 'ovn-controller']);
const API_TIMEOUT_MS = 60_000;

const mb = (kb: number): number => Math.round((kb / 1024) * 10) / 10;
const r1 = (x: number): number => Math.round(x * 10) / 10;
const la = (): number[] => os.loadavg().map((x) => Math.round(x * 100) / 100);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const msg = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** The processes of an OVN stack started for the daemon whose folder is `dir`, found through /proc. */
export function ovnStackPids(dir: string): Array<{ pid: number; name: string }> {
  const out: Array<{ pid: number; name: string }> = [];
  for (const ent of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(ent)) continue;
    try {
      const cmdline = readFileSync(`/proc/${ent}/cmdline`, 'utf8');
      const name = basename(cmdline.split('\0')[0] ?? '');
      if (!OVN_PROGRAMS.has(name)) continue;
      // The run dir may reach a process through OVS_RUNDIR/OVN_RUNDIR only (ovn-controller 23.03).
      if (cmdline.includes(dir) || readFileSync(`/proc/${ent}/environ`, 'utf8').includes(dir)) out.push({ pid: Number(ent), name });
    } catch {
      /* gone, or not ours to read */
    }
  }
  return out;
}

/** RSS of the stack's processes, by program (summed when a program runs more than once, as ovsdb-server does). */
function stackRss(dir: string): { total_mb: number; by_process_mb: Record<string, number>; processes: number } {
  const by: Record<string, number> = {};
  let total = 0;
  const pids = ovnStackPids(dir);
  for (const { pid, name } of pids) {
    const kb = rssKb(pid);
    by[name] = (by[name] ?? 0) + kb;
    total += kb;
  }
  return { total_mb: mb(total), by_process_mb: Object.fromEntries(Object.entries(by).map(([k, v]) => [k, mb(v)])), processes: pids.length };
}

/** Kills what `ovnStackPids(dir)` finds, by pid, and waits (2 s at most) for them to go. */
async function killStack(dir: string): Promise<number> {
  const pids = ovnStackPids(dir).map((p) => p.pid);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  const deadline = Date.now() + 2000;
  while (pids.some(alive) && Date.now() < deadline) await sleep(20);
  return pids.length;
}

/** The section's report. Never throws for a failed measurement: what was measured is kept, failures go under `errors`. */
export async function benchOvn(n: number, scale: number, progress: (m: string) => void, daemonArgs: string[] = []): Promise<Record<string, unknown>> {
  const tag = `ob${randomBytes(3).toString('hex')}`;
  const section: Record<string, unknown> = { loadavg_start: la(), n, scale };
  const errors: string[] = [];
  const arca: Record<string, unknown> = {};
  const bareOut: Record<string, unknown> = {};
  const servers: ChildProcess[] = [];
  let bare: BareOvn | undefined;
  let d: TestDaemon | undefined;
  try {
    try {
      bare = await BareOvn.build(tag, progress);
      bareOut.build_ms = bare.timeline;
      await sleep(500);
      const rss = bare.rssKb();
      bareOut.idle_rss_mb = { total_mb: mb(Object.values(rss).reduce((a, b) => a + b, 0)), by_process_mb: Object.fromEntries(Object.entries(rss).map(([k, v]) => [k, mb(v)])) };
    } catch (e) {
      errors.push(`bare: ${msg(e)}`);
    }

    let arcaSide: Side | undefined;
    let ctx: ArcaContext | undefined;
    try {
      progress('arca: a scratch daemon in its own netns');
      d = await startDaemon({ daemonArgs });
      ctx = { d, tag, n, progress, out: arca };
      const unavailable = await controlPlane(ctx);
      if (unavailable) {
        arca.skipped = `ovn driver not available (${unavailable})`;
        progress(`arca: skipped: ${String(arca.skipped)}`);
      } else arcaSide = await twoContainers(ctx);
    } catch (e) {
      errors.push(`arca: ${msg(e)}`);
    }

    const sides: Array<[string, Side]> = [];
    const bareSide: Side | undefined = bare && { a: { ns: bare.a.netns, ip: bare.a.ip }, b: { ns: bare.b.netns, ip: bare.b.ip }, pingOut: `/tmp/${tag}-bare-ping.out` };
    if (bareSide) sides.push(['bare', bareSide]);
    if (arcaSide) sides.push(['arca', arcaSide]);
    if (sides.length) {
      try {
        Object.assign(section, await dataPath(sides, servers, progress, { ping: PING_ROUNDS, iperf: IPERF_ROUNDS }));
      } catch (e) {
        errors.push(`data path: ${msg(e)}`);
      }
    }
    if (bare && bareSide) {
      try {
        progress(`bare ovn: lsp-add until the new port pings × ${n}`);
        const ms: number[] = [];
        let unanswered = 0;
        for (let i = 0; i < n; i++) {
          const t = await bare.lspAddUntilPing(i);
          if (t === undefined) unanswered++;
          else ms.push(t);
        }
        bareOut.lsp_add_until_ping_ms = ms.length ? stats(ms) : null;
        if (unanswered) bareOut.lsp_add_unanswered = unanswered;
      } catch (e) {
        errors.push(`bare lsp-add: ${msg(e)}`);
      }
      // The bare switch at the size of arca's scale run: how much of what arca shows there is OVS's own.
      const idle = scale - 2 - n;
      if (scale > 1 && idle > 0) {
        try {
          progress(`bare ovn: ${idle} idle ports more (${scale} in all), then one ping and one iperf3 round each way`);
          const t0 = performance.now();
          await bare.addIdlePorts(idle);
          const added = r1((performance.now() - t0) / 1000);
          const rss = bare.rssKb();
          const dp = await dataPath([['bare', bareSide]], servers, progress, { ping: 1, iperf: 1 });
          bareOut.at_scale = { ports: scale, add_s: added, ping: dp.bare_ping, iperf_gbit: dp.bare_iperf_gbit, vswitchd_rss_mb: mb(rss['ovs-vswitchd'] ?? 0) };
        } catch (e) {
          errors.push(`bare at scale: ${msg(e)}`);
        }
      }
    }
    await bare?.destroy();

    if (ctx && arcaSide) {
      try {
        await connectUntilPing(ctx, arcaSide);
      } catch (e) {
        errors.push(`arca connect: ${msg(e)}`);
      }
      if (scale > 1) {
        try {
          arca.scale = await scaleRun(ctx, scale, servers);
        } catch (e) {
          errors.push(`arca scale: ${msg(e)}`);
        }
      }
    }
  } finally {
    for (const s of servers) if (s.exitCode === null && s.signalCode === null) s.kill('SIGKILL');
    await bare?.destroy();
    if (d) {
      progress('arca: removing the scratch daemon and the OVN stack it left running');
      const dir = dirname(d.root);
      await d.cleanup().catch((e: unknown) => errors.push(`cleanup: ${msg(e)}`));
      // The harness stops the stack too; anything still found here is a leak worth reporting.
      const left = await killStack(dir).catch((e: unknown) => void errors.push(`cleanup: ${msg(e)}`));
      if (left) errors.push(`cleanup: ${left} OVN process(es) of the scratch daemon were still running after its cleanup (killed)`);
    }
  }
  section.loadavg_end = la();
  section.bare = bareOut;
  section.arca = arca;
  summarize(section, bareOut, arca);
  if (errors.length) section.errors = errors;
  return section;
}

interface ArcaContext {
  d: TestDaemon;
  tag: string;
  n: number;
  progress: (m: string) => void;
  out: Record<string, unknown>;
}

/**
 * Network create on a fresh daemon: n bridge creates first (the reference for a create that
 * starts nothing), then the first `-d ovn` create, which starts the stack, then n more. Returns
 * the daemon's answer when it has no usable ovn driver.
 */
async function controlPlane(ctx: ArcaContext): Promise<string | undefined> {
  const { d, tag, n, progress, out } = ctx;
  const dir = dirname(d.root);
  progress(`arca: bridge network create × ${n} (the reference for a create that starts nothing)`);
  await apiOk(d, 'POST', '/networks/create', { Name: `${tag}-warm` });
  await apiOk(d, 'DELETE', `/networks/${tag}-warm`);
  const bridgeMs: number[] = [];
  for (let i = 0; i < n; i++) {
    bridgeMs.push(await timed(() => apiOk(d, 'POST', '/networks/create', { Name: `${tag}-br${i}` })));
    await apiOk(d, 'DELETE', `/networks/${tag}-br${i}`);
  }
  const bridge = stats(bridgeMs);
  out.bridge_network_create_ms = bridge;

  progress('arca: the first network create -d ovn (starts the OVN stack)');
  const t0 = performance.now();
  const first = await api(d, 'POST', '/networks/create', { Name: `${tag}-first`, Driver: DRIVER }, API_TIMEOUT_MS);
  const firstMs = performance.now() - t0;
  if (first.status >= 300) {
    let why = first.body.trim();
    try {
      why = (JSON.parse(first.body) as { message?: string }).message ?? why;
    } catch {
      /* not JSON */
    }
    return `${first.status}: ${why}`;
  }
  out.first_ovn_network_create_ms = r1(firstMs);
  const logged = stackStartLogged(d.logPath);
  if (logged !== undefined) out.stack_start_logged_ms = logged;
  await sleep(1000);
  out.stack_idle_rss = stackRss(dir);

  progress(`arca: network create / rm -d ovn × ${n} through the API`);
  const createMs: number[] = [];
  const rmMs: number[] = [];
  const names = Array.from({ length: n }, (_, i) => `${tag}-n${i}`);
  for (const name of names) createMs.push(await timed(() => apiOk(d, 'POST', '/networks/create', { Name: name, Driver: DRIVER }, API_TIMEOUT_MS)));
  for (const name of names) rmMs.push(await timed(() => apiOk(d, 'DELETE', `/networks/${name}`, undefined, API_TIMEOUT_MS)));
  const create = stats(createMs);
  out.network_create_ms = create;
  out.network_rm_ms = stats(rmMs);
  // What the first create cost beyond an ovn create on a running stack (a bridge create's figure is beside it).
  out.stack_cold_start_ms = r1(firstMs - create.median);
  out.stack_cold_start_vs_bridge_create_ms = r1(firstMs - bridge.median);
  await apiOk(d, 'DELETE', `/networks/${tag}-first`, undefined, API_TIMEOUT_MS);
  return undefined;
}

/** The start-up time the stack logs itself ("OVN stack running" {"ms": N}), from the daemon's log. */
function stackStartLogged(logPath: string): number | undefined {
  try {
    const m = /arca:net:ovn:stack: OVN stack running (\{.*\})/.exec(readFileSync(logPath, 'utf8'));
    const ms = m ? (JSON.parse(m[1]!) as { ms?: unknown }).ms : undefined;
    return typeof ms === 'number' ? ms : undefined;
  } catch {
    return undefined;
  }
}

async function inspectIp(d: TestDaemon, id: string, net: string): Promise<string> {
  const j = JSON.parse(await apiOk(d, 'GET', `/containers/${id}/json`, undefined, API_TIMEOUT_MS)) as {
    NetworkSettings?: { SandboxKey?: string; Networks?: Record<string, { IPAddress?: string }> };
  };
  const ip = j.NetworkSettings?.Networks?.[net]?.IPAddress ?? '';
  if (!/^[0-9.]+$/.test(ip)) throw new Error(`no IPv4 address for ${id.slice(0, 12)} on ${net}`);
  return ip;
}

async function sandboxKey(d: TestDaemon, id: string): Promise<string> {
  const key = await d.dockerOk(['inspect', '-f', '{{.NetworkSettings.SandboxKey}}', id]);
  if (!key.startsWith('/')) throw new Error(`no SandboxKey for ${id}: ${key}`);
  return key;
}

/** Two containers on one ovn network: the arca side of the data-path comparison. */
async function twoContainers(ctx: ArcaContext): Promise<Side> {
  const { d, tag, progress, out } = ctx;
  const net = `${tag}-net`;
  progress('arca: two containers on an ovn network');
  await d.dockerOk(['network', 'create', '-d', DRIVER, net]);
  for (const c of ['a', 'b']) await d.dockerOk(['run', '-d', '--network', net, '--name', `${tag}-${c}`, TEST_IMAGE, 'sleep', '100000']);
  const side: Side = {
    a: { ns: await sandboxKey(d, `${tag}-a`), ip: await inspectIp(d, `${tag}-a`, net) },
    b: { ns: await sandboxKey(d, `${tag}-b`), ip: await inspectIp(d, `${tag}-b`, net) },
    pingOut: `/tmp/${tag}-arca-ping.out`,
  };
  await sleep(500);
  out.stack_rss_two_containers = stackRss(dirname(d.root));
  return side;
}

/**
 * `network connect` of a running container to a second ovn network, through the API, until its
 * new interface gets a reply from a container already there. The probe's own cost (spawning
 * nsenter + ping, one ARP) is measured against a peer already reachable: `probe_floor_ms`.
 */
async function connectUntilPing(ctx: ArcaContext, side: Side): Promise<void> {
  const { d, tag, n, progress, out } = ctx;
  const net2 = `${tag}-net2`;
  const a = `${tag}-a`;
  progress(`arca: network connect through the API until the new interface pings × ${n}`);
  await d.dockerOk(['network', 'create', '-d', DRIVER, net2]);
  await d.dockerOk(['run', '-d', '--network', net2, '--name', `${tag}-p`, TEST_IMAGE, 'sleep', '100000']);
  const peer = await inspectIp(d, `${tag}-p`, net2);
  const floorMs: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const t = await firstReply(side.a.ns, side.b.ip, 5);
    if (t !== undefined) floorMs.push(t - t0);
  }
  // Warm-up: the first connect pays for code paths not taken yet.
  await apiOk(d, 'POST', `/networks/${net2}/connect`, { Container: a }, API_TIMEOUT_MS);
  await apiOk(d, 'POST', `/networks/${net2}/disconnect`, { Container: a }, API_TIMEOUT_MS);
  const apiMs: number[] = [];
  const untilPingMs: number[] = [];
  const disconnectMs: number[] = [];
  let unanswered = 0;
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await apiOk(d, 'POST', `/networks/${net2}/connect`, { Container: a }, API_TIMEOUT_MS);
    apiMs.push(performance.now() - t0);
    const t = await firstReply(side.a.ns, peer, 5);
    if (t === undefined) unanswered++;
    else untilPingMs.push(t - t0);
    disconnectMs.push(await timed(() => apiOk(d, 'POST', `/networks/${net2}/disconnect`, { Container: a }, API_TIMEOUT_MS)));
  }
  out.connect_api_ms = stats(apiMs);
  out.connect_until_ping_ms = untilPingMs.length ? stats(untilPingMs) : null;
  if (unanswered) out.connect_unanswered = unanswered;
  out.probe_floor_ms = floorMs.length ? stats(floorMs) : null;
  out.disconnect_api_ms = stats(disconnectMs);
}

/** One bucket of the scale run. */
interface ScaleBucket {
  containers: number;
  run_ms: Stats;
  reach_ms: Stats;
  /** One ping round from the first container to the newest: the data path's own bend. */
  rtt_first_to_newest_ms: number | null;
  vswitchd_rss_mb: number;
  stack_rss_mb: number;
  daemon_rss_mb: number;
  loadavg: number;
}

/**
 * `scale` containers on one ovn network, one at a time through the API (create + start, as compose
 * does), each pinged from the first until it answers. Stops early when a step exceeds its limit.
 */
async function scaleRun(ctx: ArcaContext, scale: number, servers: ChildProcess[]): Promise<Record<string, unknown>> {
  const { d, tag, progress } = ctx;
  const dir = dirname(d.root);
  const net = `${tag}-scale`;
  const bucketSize = Math.max(10, Math.min(100, Math.round(scale / 10)));
  progress(`arca: scale run, ${scale} containers on one ovn network (${SCALE_SUBNET}), each pinged from the first`);
  await apiOk(d, 'POST', '/networks/create', { Name: net, Driver: DRIVER, IPAM: { Config: [{ Subnet: SCALE_SUBNET }] } }, API_TIMEOUT_MS);
  const ids: string[] = [];
  const start = async (i: number): Promise<string> => {
    const body = { Image: TEST_IMAGE, Cmd: ['sleep', '1000000'], HostConfig: { NetworkMode: net } };
    const { Id } = JSON.parse(await apiOk(d, 'POST', `/containers/create?name=${tag}-s${i}`, body, API_TIMEOUT_MS)) as { Id: string };
    ids.push(Id);
    await apiOk(d, 'POST', `/containers/${Id}/start`, undefined, API_TIMEOUT_MS);
    return Id;
  };
  const out: Record<string, unknown> = { bucket_size: bucketSize, step_limit_ms: SCALE_STEP_LIMIT_MS, reach_deadline_s: SCALE_REACH_DEADLINE_S };
  const buckets: ScaleBucket[] = [];
  const allRun: number[] = [];
  const allReach: number[] = [];
  let runMs: number[] = [];
  let reachMs: number[] = [];
  const t0 = performance.now();
  try {
    const firstId = await start(0);
    const from = await sandboxKey(d, firstId);
    let lastIp = '';
    let lastId = '';
    for (let i = 1; i < scale; i++) {
      const s0 = performance.now();
      let id: string;
      try {
        id = await start(i);
      } catch (e) {
        out.stopped = { at: i + 1, reason: `create/start failed: ${msg(e)}` };
        break;
      }
      const s1 = performance.now();
      const ip = await inspectIp(d, id, net);
      const reply = await firstReply(from, ip, SCALE_REACH_DEADLINE_S);
      runMs.push(s1 - s0);
      if (reply === undefined) {
        out.stopped = { at: i + 1, reason: `${ip} did not answer the first container's ping within ${SCALE_REACH_DEADLINE_S} s` };
        break;
      }
      reachMs.push(reply - s1);
      lastIp = ip;
      lastId = id;
      if (s1 - s0 > SCALE_STEP_LIMIT_MS) {
        out.stopped = { at: i + 1, reason: `create + start took ${r1(s1 - s0)} ms (limit ${SCALE_STEP_LIMIT_MS})` };
        break;
      }
      if ((i + 1) % bucketSize === 0 || i === scale - 1) {
        const vsw = ovnStackPids(dir).filter((p) => p.name === 'ovs-vswitchd');
        const rtt = await quietPingRound(from, ip, `/tmp/${tag}-scale-ping.out`).catch(() => undefined);
        buckets.push({
          containers: i + 1,
          run_ms: stats(runMs),
          reach_ms: stats(reachMs),
          rtt_first_to_newest_ms: rtt?.median_ms ?? null,
          vswitchd_rss_mb: mb(vsw.reduce((a, p) => a + rssKb(p.pid), 0)),
          stack_rss_mb: stackRss(dir).total_mb,
          daemon_rss_mb: mb(rssKb(d.pid())),
          loadavg: la()[0]!,
        });
        progress(`arca: scale ${i + 1}: create+start median ${stats(runMs).median} ms, reach median ${stats(reachMs).median} ms, rtt ${rtt?.median_ms ?? '-'} ms`);
        allRun.push(...runMs);
        allReach.push(...reachMs);
        runMs = [];
        reachMs = [];
      }
    }
    allRun.push(...runMs);
    allReach.push(...reachMs);
    out.containers = ids.length;
    out.total_s = r1((performance.now() - t0) / 1000);
    if (allRun.length) out.create_start_ms = stats(allRun);
    if (allReach.length) out.reach_ms = stats(allReach);
    out.buckets = buckets;
    // Where it bends: the first bucket whose median is twice the first bucket's.
    const bendsAt = (f: (b: ScaleBucket) => number | null): number | null => {
      const base = buckets[0] && f(buckets[0]);
      return base === undefined || base === null ? null : (buckets.find((b) => (f(b) ?? 0) > 2 * base)?.containers ?? null);
    };
    out.bends_at = { create_start: bendsAt((b) => b.run_ms.median), reach: bendsAt((b) => b.reach_ms.median), rtt: bendsAt((b) => b.rtt_first_to_newest_ms) };
    const vsw = ovnStackPids(dir).filter((p) => p.name === 'ovs-vswitchd');
    out.vswitchd_rss_mb_end = mb(vsw.reduce((a, p) => a + rssKb(p.pid), 0));
    out.stack_rss_end = stackRss(dir);
    out.daemon_rss_mb_end = mb(rssKb(d.pid()));
    if (lastId) {
      progress(`arca: first ↔ last container (${lastIp}) at scale`);
      const side: Side = { a: { ns: from, ip: await inspectIp(d, firstId, net) }, b: { ns: await sandboxKey(d, lastId), ip: lastIp }, pingOut: `/tmp/${tag}-scale-ping.out` };
      const dp = await dataPath([['arca', side]], servers, progress, { ping: 1, iperf: 1 });
      out.at_scale = { ports: ids.length, ping: dp.arca_ping, iperf_gbit: dp.arca_iperf_gbit };
    }
  } finally {
    progress(`arca: removing ${ids.length} scale containers`);
    const rmMs: number[] = [];
    const queue = [...ids];
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let id = queue.shift(); id; id = queue.shift()) {
          const ms = await timed(() => api(d, 'DELETE', `/containers/${id}?force=true`, undefined, API_TIMEOUT_MS).catch(() => undefined));
          rmMs.push(ms);
        }
      }),
    );
    if (rmMs.length) out.rm_ms_4_parallel = stats(rmMs);
    await api(d, 'DELETE', `/networks/${net}`, undefined, API_TIMEOUT_MS).catch(() => undefined);
  }
  return out;
}

/** The side-by-side figures and their targets, from what was measured. */
function summarize(section: Record<string, unknown>, bare: Record<string, unknown>, arca: Record<string, unknown>): void {
  const dp = summarizeDataPath(section, OVN_TARGETS);
  const st = (k: string): Stats | undefined => (arca[k] ?? undefined) as Stats | undefined;
  const num = (x: unknown): number | undefined => (typeof x === 'number' ? x : undefined);
  const idle = arca.stack_idle_rss as { total_mb: number } | undefined;
  const scale = arca.scale as { containers?: number } | undefined;
  section.stack_cold_start_ms = {
    arca: num(arca.stack_cold_start_ms) ?? null,
    arca_as_logged_by_the_stack: num(arca.stack_start_logged_ms) ?? null,
    bare_stack_ready: (bare.build_ms as { stack_ready_ms?: number } | undefined)?.stack_ready_ms ?? null,
    target_max: OVN_TARGETS.stack_cold_start_ms,
  };
  section.stack_idle_rss_mb = {
    arca: idle?.total_mb ?? null,
    bare: (bare.idle_rss_mb as { total_mb?: number } | undefined)?.total_mb ?? null,
    target_max: OVN_TARGETS.stack_idle_rss_mb,
  };
  section.connect_until_ping_ms = {
    arca: st('connect_until_ping_ms') ?? null,
    bare_lsp_add_until_ping: bare.lsp_add_until_ping_ms ?? null,
    probe_floor: st('probe_floor_ms') ?? null,
    target_median_max: OVN_TARGETS.connect_until_ping_ms,
  };
  section.network_create_ms = { arca: st('network_create_ms') ?? null, target_median_max: OVN_TARGETS.network_create_ms };
  type AtScale = { ports: number; ping?: PingResult; iperf_gbit?: { median: number } };
  const bs = bare.at_scale as AtScale | undefined;
  const as = (arca.scale as { at_scale?: AtScale } | undefined)?.at_scale;
  if (bs || as) {
    section.at_scale = {
      bare: bs ? { ports: bs.ports, rtt_median_ms: bs.ping?.median_ms ?? null, iperf_gbit: bs.iperf_gbit?.median ?? null } : null,
      arca: as ? { ports: as.ports, rtt_median_ms: as.ping?.median_ms ?? null, iperf_gbit: as.iperf_gbit?.median ?? null } : null,
    };
  }
  const within = <T>(v: T | undefined | null, ok: (v: T) => boolean): boolean | null => (v === undefined || v === null ? null : ok(v));
  section.within_targets = {
    ping_rtt: within(dp.rtt, (x) => x <= OVN_TARGETS.rtt_ratio_max),
    iperf3_container_to_container: within(dp.throughput, (x) => x >= OVN_TARGETS.throughput_ratio_min),
    network_create: within(st('network_create_ms'), (s) => s.median <= OVN_TARGETS.network_create_ms),
    connect_until_ping: within(st('connect_until_ping_ms'), (s) => s.median <= OVN_TARGETS.connect_until_ping_ms),
    stack_cold_start: within(num(arca.stack_cold_start_ms), (x) => x <= OVN_TARGETS.stack_cold_start_ms),
    stack_idle_rss: within(idle?.total_mb, (x) => x <= OVN_TARGETS.stack_idle_rss_mb),
    scale: within(scale?.containers, (x) => x >= OVN_TARGETS.scale_containers_min),
  };
}
