/**
 * `--only egress` (issue 12): egress allowlists on `bridge`, on a scratch daemon of its own whose
 * host netns routes out through the harness's "outside" netns, where an iperf3 server listens on
 * 198.18.50.1 and a fake upstream DNS on 198.18.0.2:53 answers every A question with 198.18.50.1.
 *
 * 1. iperf3 TCP from a container to the outside server on four networks in interleaved rounds:
 *    `open` (no filtering), and `arca.egress=deny` allowing 198.18.50.1/32:5201/tcp with strategy
 *    conntrack, sampled and full; each filtered one's median as a ratio of `open`'s.
 * 2. The time a DNS answer waits for its addresses to be enforced: the embedded DNS holds a learnt
 *    name's answer until the address is allowed, so from inside the container a learnt name's
 *    round trip minus an unlearnt one's (same upstream, same network, fresh names so nothing is
 *    cached) is that time. The upstream gives every new name a new address, so every learnt
 *    answer is a real addition. Four paths side by side, in interleaved rounds: an allowlist name
 *    on `bridge` and on `ovn` (both the host's nftables sets: `add element`), and a policy `dns`
 *    peer on `bridge` and on `ovn` (both nftables too: on ovn the host judges a dns peer's outside
 *    destinations on the transit link, policy-dns.ts). Queries alternate between the two kinds,
 *    which goes first alternating too, sent by a Node client entered into the container's netns
 *    (hrtime, no docker exec in the timing). Afterwards each learnt address must be where that
 *    path keeps it (`arca network egress`, the network's sets in the host ruleset).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import { startDaemon, TEST_IMAGE, type TestDaemon } from '../test/e2e/harness.js';
import { apiJson } from '../test/e2e/policies-support.js';
import { run } from '../src/sys/runner.js';
import { nsexec, parseIperf } from './net-bench.js';
import { stats } from './sample-stats.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const FAKE_DNS = join(HERE, '..', 'test', 'e2e', 'fake-dns-upstream.js');
/** What the fake upstream hands out, a new address per name. */
const LEARN_BLOCK = '198.18.64.0/18';
const MAIN_JS = join(HERE, '..', 'src', 'cli', 'main.js');
const SERVER = '198.18.50.1';
export const EGRESS_TARGETS = { conntrack_ratio_min: 0.95, sampled_ratio_min: 0.95, dns_learn_ms_max: 5 };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const r2 = (x: number): number => Math.round(x * 100) / 100;

/** Sends `n` A queries alternating learnt/unlearnt fresh names to `server`:53 (which kind first alternates too); prints their RTTs in µs. */
const DNS_CLIENT = `
const dgram = require('node:dgram');
const [server, n, tag] = process.argv.slice(1);
const s = dgram.createSocket('udp4');
function q(id, name) {
  const labels = name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  const h = Buffer.alloc(12); h.writeUInt16BE(id, 0); h.writeUInt16BE(0x0100, 2); h.writeUInt16BE(1, 4);
  return Buffer.concat([h, ...labels, Buffer.from([0, 0, 1, 0, 1])]);
}
const out = { learnt: [], unlearnt: [], timeouts: 0 };
let pending;
s.on('message', (m) => { if (pending && m.readUInt16BE(0) === pending.id) { const p = pending; pending = undefined; p.res(Number(process.hrtime.bigint() - p.t0) / 1000); } });
function ask(id, name) {
  return new Promise((res) => {
    pending = { id, res, t0: process.hrtime.bigint() };
    s.send(q(id, name), 53, server);
    setTimeout(() => { if (pending && pending.id === id) { pending = undefined; out.timeouts++; res(undefined); } }, 3000);
  });
}
(async () => {
  for (let i = 0; i < Number(n); i++) {
    const l = () => ask(2 * i + 1, 'l' + i + '-' + tag + '.learn.test');
    const u = () => ask(2 * i + 2, 'u' + i + '-' + tag + '.unlearnt.test');
    let a, b;
    if (i % 2) { b = await u(); a = await l(); } else { a = await l(); b = await u(); }
    if (a !== undefined) out.learnt.push(a);
    if (b !== undefined) out.unlearnt.push(b);
    await new Promise((r) => setTimeout(r, 20));
  }
  process.stdout.write(JSON.stringify(out));
  s.close();
})();
`;

export async function benchEgress(rounds: number, seconds: number, progress: (m: string) => void, daemonArgs: string[]): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = { rounds, iperf_seconds: seconds, loadavg_start: os.loadavg().map(r2), targets: EGRESS_TARGETS };
  const children: ChildProcess[] = [];
  const errors: string[] = [];
  let d: TestDaemon | undefined;
  try {
    progress('egress: a scratch daemon with an outside netns');
    d = await startDaemon({ outside: true, daemonArgs });
    const o = d.outsideNs!;
    const ip = spawnSync('ip', ['-n', o, 'addr', 'add', `${SERVER}/32`, 'dev', 'lo']);
    if (ip.status !== 0) throw new Error(`ip addr add in ${o}: ${ip.stderr.toString()}`);
    const startIn = (argv: string[], ready?: string): Promise<void> => {
      const a = nsexec(o, argv);
      const child = spawn(a[0]!, a.slice(1), { stdio: ['ignore', 'pipe', 'ignore'] });
      children.push(child);
      if (!ready) return Promise.resolve();
      return new Promise((res, rej) => {
        let buf = '';
        child.stdout!.on('data', (b: Buffer) => {
          buf += b.toString();
          if (buf.includes(ready)) res();
        });
        child.once('exit', (code) => rej(new Error(`${argv.join(' ')} exited (${code})`)));
      });
    };
    // On the outside's loopback: a container on ovn cannot reach the link address with UDP (egress-drivers).
    await startIn([process.execPath, FAKE_DNS, SERVER, '53', LEARN_BLOCK], 'ready');
    await startIn(['iperf3', '-s', '-B', SERVER]);

    const allow = `${SERVER}/32:5201/tcp,${SERVER}:53/udp,*.learn.test:5201/tcp`;
    const nets: Array<[string, string[]]> = [
      ['open', []],
      ['conntrack', ['-o', 'arca.egress=deny', '-o', `arca.egress.allow=${allow}`, '-o', 'arca.egress.strategy=conntrack']],
      ['sampled', ['-o', 'arca.egress=deny', '-o', `arca.egress.allow=${allow}`, '-o', 'arca.egress.strategy=sampled']],
      ['full', ['-o', 'arca.egress=deny', '-o', `arca.egress.allow=${allow}`, '-o', 'arca.egress.strategy=full']],
    ];
    for (const [k, opts] of nets) {
      await d.dockerOk(['network', 'create', ...opts, `eg-${k}`]);
      await d.dockerOk(['run', '-d', '--name', `c-${k}`, '--network', `eg-${k}`, '--dns', SERVER, TEST_IMAGE, 'sleep', '3600']);
    }

    progress(`egress: iperf3 ${rounds} round(s) × ${seconds} s, ${nets.map(([k]) => k).join(', ')} in turn`);
    const bps = new Map<string, number[]>(nets.map(([k]) => [k, []]));
    for (let i = 0; i < rounds; i++) {
      for (const [k] of nets) {
        try {
          bps.get(k)!.push(await iperfOnce(d, `c-${k}`, seconds));
        } catch (e) {
          errors.push(`${k}: ${(e as Error).message}`);
        }
      }
    }
    const gbit = (x: number): number => Math.round(x / 1e7) / 100;
    const med = (k: string): number | undefined => (bps.get(k)!.length ? stats(bps.get(k)!).median : undefined);
    const iperf: Record<string, unknown> = {};
    for (const [k] of nets) {
      const m = med(k);
      const base = med('open');
      iperf[k] = { median_gbit: m === undefined ? null : gbit(m), rounds_gbit: bps.get(k)!.map(gbit), ...(k !== 'open' && m !== undefined && base ? { ratio_vs_open: r2(m / base) } : {}) };
    }
    out.iperf3_to_outside = iperf;

    progress('egress: DNS answer → address enforced: allowlists and policy dns peers, bridge and ovn');
    await d.dockerOk(['network', 'create', '-d', 'ovn', '-o', 'arca.egress=deny', '-o', `arca.egress.allow=${allow}`, 'eg-ovn']);
    await d.dockerOk(['run', '-d', '--name', 'c-ovn', '--network', 'eg-ovn', '--dns', SERVER, TEST_IMAGE, 'sleep', '3600']);
    for (const driver of ['bridge', 'ovn']) {
      await d.dockerOk(['network', 'create', '-d', driver, `pd-${driver}`]);
      await d.dockerOk(['run', '-d', '--name', `p-${driver}`, '--label', 'bench=dns', '--network', `pd-${driver}`, '--dns', SERVER, TEST_IMAGE, 'sleep', '3600']);
      const policy = {
        name: `learn-${driver}`,
        network: `pd-${driver}`,
        select: { labels: { bench: 'dns' } },
        egress: [
          { to: [{ dns: '*.learn.test' }], ports: [{ port: 5201 }] },
          { to: [{ cidr: `${SERVER}/32` }], ports: [{ proto: 'udp', port: 53 }] },
        ],
      };
      const put = await apiJson(d, 'PUT', `/arca/v1/policies/learn-${driver}`, policy);
      if (put.status !== 201 && put.status !== 200) throw new Error(`policy learn-${driver}: ${put.status} ${JSON.stringify(put.body)}`);
    }
    const cases: Array<[string, string]> = [
      ['bridge_allowlist', 'c-conntrack'],
      ['ovn_allowlist', 'c-ovn'],
      ['bridge_policy_dns', 'p-bridge'],
      ['ovn_policy_dns', 'p-ovn'],
    ];
    const samples = new Map(cases.map(([k]) => [k, { learnt: [] as number[], unlearnt: [] as number[], timeouts: 0 }]));
    const perRound = 10;
    const dnsRounds = Math.max(2, rounds * 2);
    for (let round = 0; round < dnsRounds; round++) {
      for (const [k, c] of cases) {
        const resolv = await d.dockerOk(['exec', c, 'cat', '/etc/resolv.conf']);
        const ns = /^nameserver\s+(\S+)/m.exec(resolv)?.[1];
        if (!ns) throw new Error(`no nameserver in ${c}'s resolv.conf: ${resolv}`);
        const sandbox = (await d.dockerOk(['inspect', '-f', '{{.NetworkSettings.SandboxKey}}', c])).trim();
        const r = await run(nsexec(sandbox, [process.execPath, '-e', DNS_CLIENT, ns, String(perRound), `${process.pid}-${round}`]), { timeoutMs: perRound * 10_000 });
        const q = JSON.parse(r.stdout) as { learnt: number[]; unlearnt: number[]; timeouts: number };
        const acc = samples.get(k)!;
        acc.learnt.push(...q.learnt.map((x) => x / 1000));
        acc.unlearnt.push(...q.unlearnt.map((x) => x / 1000));
        acc.timeouts += q.timeouts;
      }
    }
    const learntBlock = /198\.18\.(6[4-9]|[7-9][0-9]|1[01][0-9]|12[0-7])\.[0-9]+/;
    const hostRuleset = (await run(nsexec(d.hostNs, ['nft', 'list', 'ruleset']), { allowFailure: true })).stdout;
    const egressView = async (net: string): Promise<boolean> => {
      const view = JSON.parse((await run([process.execPath, MAIN_JS, '-H', `unix://${d!.socket}`, 'network', 'egress', net, '--format', 'json'])).stdout) as {
        Allow: Array<{ Entry: string; Addresses?: Array<{ Address: string }> }>;
      };
      return view.Allow.some((a) => a.Entry.startsWith('*.learn.test') && a.Addresses?.some((x) => learntBlock.test(x.Address)));
    };
    const learntOn = async (net: string): Promise<boolean> => {
      const id = (await d!.dockerOk(['network', 'inspect', '-f', '{{.Id}}', net])).trim().slice(0, 12);
      return new RegExp(`set pol_d_${id}_[^}]*${learntBlock.source} timeout`, 's').test(hostRuleset);
    };
    const where: Record<string, boolean> = {
      // A learnt element carries a timeout, the CIDR entries' do not.
      bridge_allowlist: (await egressView('eg-conntrack')) && new RegExp(`${learntBlock.source} timeout`).test(hostRuleset),
      ovn_allowlist: await egressView('eg-ovn'),
      bridge_policy_dns: await learntOn('pd-bridge'),
      ovn_policy_dns: await learntOn('pd-ovn'),
    };
    const byCase: Record<string, unknown> = {};
    const p95ByCase: Record<string, number> = {};
    for (const [k] of cases) {
      const acc = samples.get(k)!;
      if (!acc.learnt.length || !acc.unlearnt.length) {
        errors.push(`${k}: no answers (${acc.timeouts} timeouts)`);
        continue;
      }
      const unlearnt = stats(acc.unlearnt);
      // The added wait per learnt answer, against the unlearnt median of the same path.
      const extraMs = acc.learnt.map((x) => x - unlearnt.median).sort((a, b) => a - b);
      const pct = (p: number): number => extraMs[Math.min(extraMs.length - 1, Math.ceil(p * extraMs.length) - 1)]!;
      p95ByCase[k] = r2(pct(0.95));
      if (!where[k]) errors.push(`${k}: the learnt address is not where this path keeps it`);
      byCase[k] = {
        queries_each: acc.learnt.length,
        timeouts: acc.timeouts,
        learnt_rtt_ms: stats(acc.learnt),
        unlearnt_rtt_ms: unlearnt,
        answer_held_for_learning_ms: { median: r2(pct(0.5)), p90: r2(pct(0.9)), p95: r2(pct(0.95)) },
        learnt_address_in_place: where[k],
      };
    }
    out.dns_learn = {
      ...byCase,
      how: 'learnt-name RTT minus the unlearnt-name median of the same path, from the container netns; the embedded DNS sends a learnt answer only once the address is enforced (nft add element returned)',
    };

    const it = out.iperf3_to_outside as Record<string, { ratio_vs_open?: number }>;
    out.within_targets = {
      conntrack_ratio: (it.conntrack?.ratio_vs_open ?? 0) >= EGRESS_TARGETS.conntrack_ratio_min,
      sampled_ratio: (it.sampled?.ratio_vs_open ?? 0) >= EGRESS_TARGETS.sampled_ratio_min,
      dns_learn_p95_ms: Object.fromEntries(Object.entries(p95ByCase).map(([k, v]) => [k, v <= EGRESS_TARGETS.dns_learn_ms_max])),
    };
  } catch (e) {
    errors.push((e as Error).message);
  } finally {
    for (const c of children) c.kill('SIGKILL');
    await sleep(100);
    if (d) await d.cleanup().catch((e: unknown) => errors.push(`cleanup: ${(e as Error).message}`));
    out.loadavg_end = os.loadavg().map(r2);
  }
  if (errors.length) out.errors = errors;
  return out;
}

async function iperfOnce(d: TestDaemon, container: string, seconds: number): Promise<number> {
  let last = '';
  for (let attempt = 0; attempt < 20; attempt++) {
    const r = await d.docker(['exec', container, 'iperf3', '-c', SERVER, '-t', String(seconds), '-J'], { timeoutMs: (seconds + 30) * 1000 });
    try {
      return parseIperf(r.stdout);
    } catch (e) {
      last = (e as Error).message + r.stderr;
    }
    // The one server takes one client at a time; the previous round's may not have let go yet.
    if (!/busy|refused|unable to connect/i.test(last)) break;
    await sleep(300);
  }
  throw new Error(`iperf3 from ${container}: ${last.slice(-300)}`);
}
