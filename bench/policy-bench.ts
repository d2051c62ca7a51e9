/**
 * The policy section of `npm run bench` (`--only policy`, issue 10 "Speed"). Targets are reported
 * next to the figures, never asserted.
 *
 * 1. Applying a policy that selects `selected` (default 100) containers: from the start of
 *    `PUT /arca/v1/policies/{name}` until a prober in another container (bench/tcp-prober.ts,
 *    a fresh TCP connection every 2 ms) finds one of them closed; and from the start of the
 *    DELETE until it is open again. The API's own round trip is reported beside it.
 * 2. With 50 policies in force on one network and none on a twin network, side by side in one
 *    run, rounds alternating: ping RTT and iperf3 between two containers, `docker run -d` of a
 *    container the policies select, `network connect` of one (through the API).
 * 3. One ruleset reload with 1000 endpoints under 50 policies: starting 1000 containers would
 *    take this 2-core machine minutes, so the state is synthetic (1000 endpoints on 10 networks,
 *    50 random policies compiled by the model) and loaded by the daemon's own firewall
 *    (NftFirewall) into a scratch netns; the same 1000 endpoints without policies beside it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { NftFirewall } from '../src/network/firewall/nftables/nft-firewall.js';
import type { FirewallNetwork, FirewallState } from '../src/network/firewall/firewall.js';
import { compilePlans } from '../src/network/policies/policy-compile.js';
import { randomPolicies, randomWorldSpec, Rng, worldFromSpec } from '../src/network/policies/policy-random.js';
import type { PolicyDoc, PolicyWorld } from '../src/network/policies/policy-types.js';
import { run } from '../src/sys/runner.js';
import type { TestDaemon } from '../test/e2e/harness.js';
import { policyApi, TCP_PORTS, UDP_PORT } from '../test/e2e/policies-support.js';
import { apiOk, combinePings, gbit, iperfClient, nsexec, PING_ROUNDS, quietPingRound, ratio, type PingResult } from './net-bench.js';
import { runDetached } from './run-detached.js';
import { stats, timed, type Stats } from './sample-stats.js';

export const POLICY_TARGETS = {
  apply_until_enforced_ms: 50,
  throughput_ratio_min: 0.95,
  rtt_ratio_max: 1.05,
  run_d_extra_ms: 5,
  connect_extra_ms: 5,
  reload_1000x50_ms: 200,
};

const IN_FORCE = 50;
const IPERF_ROUNDS = 3;
const RELOAD_NETWORKS = 10;
const RELOAD_ENDPOINTS = 1000;
/** Nobody listens there: the prober counts the kernel's RST as reached. */
const PROBED_PORT = 9;
const PROBER_JS = join(dirname(fileURLToPath(import.meta.url)), 'tcp-prober.js');

const now = (): number => performance.timeOrigin + performance.now();
const r1 = (x: number): number => Math.round(x * 10) / 10;

/** A {@link PROBER_JS} running in a container's netns, and the state changes it reported. */
class Prober {
  private readonly events: Array<{ t: number; state: 'open' | 'closed' }> = [];
  private waiters: Array<() => void> = [];
  private constructor(private readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = /^([0-9.]+) (open|closed)$/.exec(line.trim());
      if (!m) return;
      this.events.push({ t: Number(m[1]), state: m[2] as 'open' | 'closed' });
      for (const w of this.waiters.splice(0)) w();
    });
  }

  static start(sandbox: string, host: string, port: number): Prober {
    const child = spawn('nsenter', [`--net=${sandbox}`, '--', process.execPath, PROBER_JS, host, String(port)], { stdio: ['pipe', 'pipe', 'inherit'] });
    child.on('error', () => {});
    return new Prober(child);
  }

  /** The time of the first change to `state` stamped at or after `since`. */
  async when(state: 'open' | 'closed', since: number, timeoutMs = 10_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const e = this.events.find((x) => x.state === state && x.t >= since);
      if (e) return e.t;
      if (Date.now() > deadline) throw new Error(`prober: not ${state} within ${timeoutMs} ms`);
      await new Promise<void>((r) => {
        const timer = setTimeout(r, 50);
        this.waiters.push(() => {
          clearTimeout(timer);
          r();
        });
      });
    }
  }

  stop(): void {
    this.child.stdin?.end();
    setTimeout(() => this.child.exitCode === null && this.child.kill('SIGKILL'), 1000).unref();
  }
}

interface Made {
  containers: Set<string>;
  networks: Set<string>;
  policies: Set<string>;
}

async function putPolicy(d: TestDaemon, doc: PolicyDoc, made: Made): Promise<void> {
  made.policies.add(doc.name);
  const r = await policyApi(d, 'PUT', doc.name, doc);
  if (r.status !== 200 && r.status !== 201) throw new Error(`PUT policy ${doc.name}: ${r.status} ${r.body}`);
}

async function deletePolicy(d: TestDaemon, name: string, made: Made): Promise<void> {
  const r = await policyApi(d, 'DELETE', name);
  if (r.status !== 204) throw new Error(`DELETE policy ${name}: ${r.status} ${r.body}`);
  made.policies.delete(name);
}

async function ipOn(d: TestDaemon, c: string, net: string): Promise<string> {
  const ip = await d.dockerOk(['inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, c]);
  if (!/^[0-9.]+$/.test(ip)) throw new Error(`no IPv4 address for ${c} on ${net}: ${ip}`);
  return ip;
}

/** 1: a policy selecting `selected` containers, timed from the API call until the prober sees it. */
async function applyUntilEnforced(d: TestDaemon, tag: string, n: number, selected: number, made: Made, progress: (m: string) => void): Promise<Record<string, unknown>> {
  const net = `${tag}-sel`;
  made.networks.add(net);
  await d.dockerOk(['network', 'create', '--subnet', '10.213.0.0/22', net]);
  progress(`policy: ${selected} containers selected by one label, a prober outside them`);
  const target = `${tag}-target`;
  made.containers.add(target);
  await runDetached(d, ['--name', target, '--network', net, '-l', 'bench=sel']);
  for (let i = 1; i < selected; i++) {
    const name = `${tag}-sel${i}`;
    made.containers.add(name);
    await runDetached(d, ['--name', name, '--network', net, '-l', 'bench=sel']);
  }
  const probe = `${tag}-probe`;
  made.containers.add(probe);
  await runDetached(d, ['--name', probe, '--network', net]);
  const sandbox = await d.dockerOk(['inspect', '-f', '{{.NetworkSettings.SandboxKey}}', probe]);
  const prober = Prober.start(sandbox, await ipOn(d, target, net), PROBED_PORT);
  try {
    await prober.when('open', 0, 20_000);
    const doc: PolicyDoc = { name: `${tag}-sel`, network: net, select: { labels: { bench: 'sel' } }, ingress: [{ from: [{ labels: { bench: 'client' } }] }] };
    const apiMs: number[] = [];
    const enforcedMs: number[] = [];
    const deleteApiMs: number[] = [];
    const reopenedMs: number[] = [];
    progress(`policy: PUT until the prober is shut out, DELETE until it is let in, × ${n}`);
    for (let i = 0; i < n; i++) {
      const t0 = now();
      await putPolicy(d, doc, made);
      apiMs.push(now() - t0);
      enforcedMs.push(Math.max(0, (await prober.when('closed', t0)) - t0));
      const t1 = now();
      await deletePolicy(d, doc.name, made);
      deleteApiMs.push(now() - t1);
      reopenedMs.push(Math.max(0, (await prober.when('open', t1)) - t1));
      await new Promise((r) => setTimeout(r, 100));
    }
    return {
      selected,
      put_api_ms: stats(apiMs),
      put_until_enforced_ms: stats(enforcedMs),
      delete_api_ms: stats(deleteApiMs),
      delete_until_open_ms: stats(reopenedMs),
      how: 'from the start of the request until the first of two unanswered (30 ms) or one answered (SYN-ACK or RST) new TCP connection of a prober opening one every 2 ms',
      target_ms: POLICY_TARGETS.apply_until_enforced_ms,
    };
  } finally {
    prober.stop();
  }
}

/** The 50 policies in force on `net`: all select the pair, the two that let them talk sort last. */
function inForce(tag: string, net: string): PolicyDoc[] {
  const docs: PolicyDoc[] = [];
  for (let i = 0; i < IN_FORCE - 2; i++) {
    if (i % 2 === 0) {
      docs.push({
        name: `${tag}-p${String(i).padStart(2, '0')}`,
        network: net,
        select: { labels: { app: 'srv' } },
        ingress: [{ from: [{ labels: { app: `other${i}` } }, { cidr: `198.18.${i}.0/24` }], ports: [{ proto: 'tcp', port: 1000 + i }, { proto: 'udp', port: `${2000 + i}-${2010 + i}` }] }],
      });
    } else {
      docs.push({
        name: `${tag}-p${String(i).padStart(2, '0')}`,
        network: net,
        select: { labels: { app: 'cli' } },
        egress: [{ to: [{ cidr: `203.0.113.${i}/32` }, { names: [`other${i}`] }], ports: [{ proto: 'tcp', port: 3000 + i }] }],
      });
    }
  }
  docs.push({ name: `${tag}-zz-in`, network: net, select: { labels: { app: 'srv' } }, ingress: [{ from: [{ labels: { app: 'cli' } }] }] });
  docs.push({ name: `${tag}-zz-out`, network: net, select: { labels: { app: 'cli' } }, egress: [{ to: [{ labels: { app: 'srv' } }] }] });
  return docs;
}

/** 2: the data path and the control path with 50 policies in force, against a twin network without. */
async function withPoliciesInForce(d: TestDaemon, tag: string, n: number, made: Made, progress: (m: string) => void): Promise<Record<string, unknown>> {
  const pol = `${tag}-pol`;
  const free = `${tag}-free`;
  const base = `${tag}-base`;
  for (const [net, subnet] of [
    [pol, '10.214.0.0/24'],
    [free, '10.215.0.0/24'],
    [base, '10.216.0.0/24'],
  ] as const) {
    made.networks.add(net);
    await d.dockerOk(['network', 'create', '--subnet', subnet, net]);
  }
  const pair = async (net: string): Promise<{ cli: string; srv: string; srvIp: string; sandbox: string }> => {
    const cli = `${net}-cli`;
    const srv = `${net}-srv`;
    for (const [c, app] of [
      [cli, 'cli'],
      [srv, 'srv'],
    ] as const) {
      made.containers.add(c);
      await runDetached(d, ['--name', c, '--network', net, '-l', `app=${app}`]);
    }
    await d.dockerOk(['exec', '-d', srv, 'iperf3', '-s']);
    return { cli, srv, srvIp: await ipOn(d, srv, net), sandbox: await d.dockerOk(['inspect', '-f', '{{.NetworkSettings.SandboxKey}}', cli]) };
  };
  const P = await pair(pol);
  const F = await pair(free);
  progress(`policy: ${IN_FORCE} policies in force on ${pol}, none on ${free}`);
  for (const doc of inForce(tag, pol)) await putPolicy(d, doc, made);
  for (const x of [P, F]) await d.dockerOk(['exec', x.cli, 'ping', '-c', '3', '-i', '0.01', x.srvIp]);

  const out: Record<string, unknown> = { policies_in_force: IN_FORCE };
  progress(`policy: ping ${PING_ROUNDS} rounds each way, alternating`);
  const pingPol: PingResult[] = [];
  const pingFree: PingResult[] = [];
  for (let i = 0; i < PING_ROUNDS; i++) {
    pingFree.push(await quietPingRound(F.sandbox, F.srvIp, `/tmp/${tag}-free-ping.out`));
    pingPol.push(await quietPingRound(P.sandbox, P.srvIp, `/tmp/${tag}-pol-ping.out`));
  }
  const rp = combinePings(pingPol);
  const rf = combinePings(pingFree);
  out.ping_rtt_ms = { with_policies: rp, without: rf, ratio_median: ratio(rp.median_ms ?? rp.avg_ms, rf.median_ms ?? rf.avg_ms), target_ratio_max: POLICY_TARGETS.rtt_ratio_max };

  progress(`policy: iperf3 ${IPERF_ROUNDS} rounds each, alternating`);
  const bpsPol: number[] = [];
  const bpsFree: number[] = [];
  for (let i = 0; i < IPERF_ROUNDS; i++) {
    for (const [x, into] of [
      [F, bpsFree],
      [P, bpsPol],
    ] as const) {
      into.push(await iperfClient((extra) => d.docker(['exec', x.cli, 'iperf3', '-c', x.srvIp, ...extra], { timeoutMs: 60_000 })));
    }
  }
  const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  out.iperf3_gbit = {
    with_policies: bpsPol.map(gbit),
    without: bpsFree.map(gbit),
    ratio_median: ratio(med(bpsPol), med(bpsFree)),
    target_ratio_min: POLICY_TARGETS.throughput_ratio_min,
  };

  progress(`policy: docker run -d of a selected container × ${n} each, alternating`);
  const runPol: number[] = [];
  const runFree: number[] = [];
  for (let i = 0; i < n; i++) {
    for (const [net, into] of [
      [free, runFree],
      [pol, runPol],
    ] as const) {
      const { id, ms } = await runDetached(d, ['--network', net, '-l', 'app=srv']);
      made.containers.add(id);
      into.push(ms);
      await d.dockerOk(['rm', '-f', id]);
      made.containers.delete(id);
    }
  }
  const sp = stats(runPol);
  const sf = stats(runFree);
  out.run_d_ms = { with_policies: sp, without: sf, extra_median_ms: r1(sp.median - sf.median), target_extra_max_ms: POLICY_TARGETS.run_d_extra_ms };

  progress(`policy: network connect / disconnect of a selected container × ${n} each, through the API`);
  const conn = `${tag}-conn`;
  made.containers.add(conn);
  await runDetached(d, ['--name', conn, '--network', base, '-l', 'app=srv']);
  const connPol: number[] = [];
  const connFree: number[] = [];
  for (const net of [free, pol]) {
    await apiOk(d, 'POST', `/networks/${net}/connect`, { Container: conn });
    await apiOk(d, 'POST', `/networks/${net}/disconnect`, { Container: conn });
  }
  for (let i = 0; i < n; i++) {
    for (const [net, into] of [
      [free, connFree],
      [pol, connPol],
    ] as const) {
      into.push(await timed(() => apiOk(d, 'POST', `/networks/${net}/connect`, { Container: conn })));
      await apiOk(d, 'POST', `/networks/${net}/disconnect`, { Container: conn });
    }
  }
  const cp = stats(connPol);
  const cf = stats(connFree);
  out.connect_ms = { with_policies: cp, without: cf, extra_median_ms: r1(cp.median - cf.median), target_extra_max_ms: POLICY_TARGETS.connect_extra_ms };
  return out;
}

/** A synthetic state of 1000 endpoints on 10 networks under 50 random policies, for the reload figure. */
export function syntheticState(): { world: PolicyWorld; withPolicies: FirewallState; without: FirewallState; policies: PolicyDoc[] } {
  const rng = new Rng(10);
  const names = Array.from({ length: RELOAD_NETWORKS }, (_, i) => `rl${i}`);
  // /16s: worldFromSpec numbers containers across the whole world.
  const subnets = Object.fromEntries(names.map((n, i) => [n, `10.${100 + i}.0.0/16`]));
  const spec = randomWorldSpec(rng, { networks: names, containers: RELOAD_ENDPOINTS, secondNetwork: 0 });
  // The renderer names veths and chains after ids, which are hex in a real daemon.
  const hex = (id: string): string => createHash('sha256').update(id).digest('hex');
  const modelWorld = worldFromSpec(spec, subnets);
  const world: PolicyWorld = {
    networks: modelWorld.networks.map((n) => ({ ...n, id: hex(n.id) })),
    endpoints: modelWorld.endpoints.map((e) => ({ ...e, endpointId: hex(e.endpointId), containerId: hex(e.containerId), networkId: hex(e.networkId) })),
  };
  const ports = [...TCP_PORTS.map((port) => ({ proto: 'tcp' as const, port })), { proto: 'udp' as const, port: UDP_PORT }];
  const policies = randomPolicies(rng, spec, { ports, count: IN_FORCE, namePrefix: 'rl-', subnets });
  const networks: FirewallNetwork[] = world.networks.map((n) => {
    const subnet = subnets[n.name]!;
    return { id: n.id, bridge: `br-${n.name}`, subnets4: [subnet], subnets6: [], gateways: [subnet.replace(/0\/16$/, '1')], internal: false, icc: true, masquerade: true };
  });
  return { world, policies, withPolicies: { networks, ports: [], policies: compilePlans(policies, world) }, without: { networks, ports: [] } };
}

/** 3: one full ruleset load of 1000 endpoints × 50 policies by the daemon's firewall, in a scratch netns. */
export async function reload(tag: string, n: number, progress: (m: string) => void): Promise<Record<string, unknown>> {
  const ns = `${tag}-fw`;
  const { world, withPolicies, without, policies } = syntheticState();
  const governed = withPolicies.policies!.reduce((a, p) => a + p.endpoints.length, 0);
  await run(['ip', 'netns', 'add', ns]);
  try {
    const fw = new NftFirewall({ tablePrefix: 'pbench', netns: `/run/netns/${ns}`, sysctls: false });
    progress(`policy: ruleset of ${world.endpoints.length} endpoints × ${IN_FORCE} policies (${governed} governed) loaded × ${n} in ${ns}`);
    await fw.apply(withPolicies); // warm-up
    const lines = fw.render(withPolicies).split('\n').length;
    const compileMs: number[] = [];
    const renderMs: number[] = [];
    const applyMs: number[] = [];
    const baseMs: number[] = [];
    for (let i = 0; i < Math.max(n, 3); i++) {
      // What the daemon does on a change before the load: the plans compiled against its world.
      compileMs.push(await timed(async () => void compilePlans(policies, world)));
      renderMs.push(await timed(async () => void fw.render(withPolicies)));
      applyMs.push(await timed(() => fw.apply(withPolicies)));
      baseMs.push(await timed(() => fw.apply(without)));
    }
    await fw.apply(withPolicies);
    const listed = await run(nsexec(ns, ['nft', 'list', 'ruleset']), { timeoutMs: 60_000 });
    return {
      how: 'synthetic state (1000 endpoints on 10 networks, 50 random policies from policy-random, compiled by compilePlans) through NftFirewall.apply into a scratch netns: render + one nft transaction (compile_ms: the plans compiled before it, as on every change)',
      endpoints: world.endpoints.length,
      governed_endpoints: governed,
      script_lines: lines,
      kernel_ruleset_lines: listed.stdout.split('\n').length,
      compile_ms: stats(compileMs),
      render_ms: stats(renderMs),
      reload_ms: stats(applyMs),
      reload_without_policies_ms: stats(baseMs),
      compile_plus_reload_median_ms: r1(stats(compileMs).median + stats(applyMs).median),
      target_ms: POLICY_TARGETS.reload_1000x50_ms,
    };
  } finally {
    await run(['ip', 'netns', 'del', ns], { allowFailure: true }).catch(() => undefined);
  }
}

/**
 * The `policy` section of the benchmark report. Never throws for a failed measurement: what was
 * measured is kept and the failure is recorded under `errors`.
 */
export async function benchPolicy(d: TestDaemon, n: number, selected: number, progress: (m: string) => void): Promise<Record<string, unknown>> {
  const tag = `pb${randomBytes(2).toString('hex')}`;
  const la = (): number[] => os.loadavg().map((x) => Math.round(x * 100) / 100);
  const section: Record<string, unknown> = { loadavg_start: la(), n };
  const errors: string[] = [];
  const made: Made = { containers: new Set(), networks: new Set(), policies: new Set() };
  const step = async (key: string, fn: () => Promise<Record<string, unknown>>): Promise<void> => {
    try {
      section[key] = await fn();
    } catch (e) {
      errors.push(`${key}: ${e instanceof Error ? e.message : String(e)}`);
    }
  };
  try {
    await step('apply', () => applyUntilEnforced(d, tag, n, selected, made, progress));
    // The 100 containers would weigh on the side-by-side figures.
    if (made.containers.size) await d.docker(['rm', '-f', ...made.containers], { timeoutMs: 300_000 });
    made.containers.clear();
    await step('in_force', () => withPoliciesInForce(d, tag, n, made, progress));
    await step('reload', () => reload(tag, n, progress));
  } finally {
    for (const p of made.policies) await policyApi(d, 'DELETE', p).catch(() => undefined);
    if (made.containers.size) await d.docker(['rm', '-f', ...made.containers], { timeoutMs: 300_000 }).catch(() => undefined);
    for (const net of made.networks) await d.docker(['network', 'rm', net]).catch(() => undefined);
  }
  section.loadavg_end = la();
  const get = (path: string[]): unknown => path.reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), section);
  const within = (v: unknown, ok: (x: number) => boolean): boolean | null => (typeof v === 'number' ? ok(v) : null);
  section.within_targets = {
    apply_until_enforced: within((get(['apply', 'put_until_enforced_ms']) as Stats | undefined)?.median, (x) => x <= POLICY_TARGETS.apply_until_enforced_ms),
    ping_rtt: within(get(['in_force', 'ping_rtt_ms', 'ratio_median']), (x) => x <= POLICY_TARGETS.rtt_ratio_max),
    iperf3: within(get(['in_force', 'iperf3_gbit', 'ratio_median']), (x) => x >= POLICY_TARGETS.throughput_ratio_min),
    run_d: within(get(['in_force', 'run_d_ms', 'extra_median_ms']), (x) => x <= POLICY_TARGETS.run_d_extra_ms),
    connect: within(get(['in_force', 'connect_ms', 'extra_median_ms']), (x) => x <= POLICY_TARGETS.connect_extra_ms),
    reload: within((get(['reload', 'reload_ms']) as Stats | undefined)?.median, (x) => x <= POLICY_TARGETS.reload_1000x50_ms),
  };
  if (errors.length) section.errors = errors;
  return section;
}
