/**
 * Network policies enforced by the nftables firewall, against the real kernel, with real traffic,
 * in throwaway namespaces (plans fed to the firewall directly, as the daemon will):
 *
 *   "o" (outside) 198.18.100.2 ──veth── 198.18.100.1 "h" (the daemon's host)
 *   h: brp 198.18.10.1/24, fd00:10::1/64 ── db .2/::2, api .3/::3, c3 .4/::4
 *      (host veths named vx<endpoint id 12>, as the bridge driver names them)
 *
 * db publishes 5432 on the host as 8432. Each namespace runs net-probe servers that answer
 * "<name> <peer address>". Nothing touches the real host's network.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NftFirewall } from '../../src/network/firewall/nftables/nft-firewall.js';
import type { FirewallNetwork, FirewallState } from '../../src/network/firewall/firewall.js';
import type { CompiledPeers, CompiledRule, EndpointPolicy, NetworkPolicyPlan, PolicyDoc, PolicyWorld, PortRange } from '../../src/network/policies/policy-types.js';
import { compilePlans } from '../../src/network/policies/policy-compile.js';
import { run, which } from '../../src/sys/runner.js';
import { openSession, type ProbeSession } from './probe-session.js';

const PROBE = join(dirname(fileURLToPath(import.meta.url)), 'net-probe.js');
const tag = `afp${randomBytes(3).toString('hex')}`;
const NS = { h: `${tag}-h`, o: `${tag}-o`, db: `${tag}-db`, api: `${tag}-api`, c3: `${tag}-c3`, big: `${tag}-big` };
const nsPath = (ns: string): string => `/run/netns/${ns}`;
const inNs = (ns: string, argv: string[]): string[] => ['nsenter', `--net=${nsPath(ns)}`, ...argv];

const HOST_OUT = '198.18.100.1';
const OUTSIDE = '198.18.100.2';
const GW = '198.18.10.1';
const DB = '198.18.10.2';
const API = '198.18.10.3';
const C3 = '198.18.10.4';
const DB6 = 'fd00:10::2';
const API6 = 'fd00:10::3';

const skip =
  process.getuid?.() !== 0 ? 'needs root' : !which('nft') ? 'needs nft' : false;

const net: FirewallNetwork = {
  id: 'abcd000000000000000000000000000000000000000000000000000000000010',
  bridge: 'brp',
  subnets4: ['198.18.10.0/24'],
  subnets6: ['fd00:10::/64'],
  gateways: [GW, 'fd00:10::1'],
  internal: false,
  icc: true,
  masquerade: true,
};
const EP = {
  db: 'db0000000000000000000000000000000000000000000000000000000000000a',
  api: 'a10000000000000000000000000000000000000000000000000000000000000b',
  c3: 'c30000000000000000000000000000000000000000000000000000000000000c',
};
const ADDRS = { db: [DB, DB6], api: [API, API6], c3: [C3, 'fd00:10::4'] };

const addrs = (...a: string[]): CompiledPeers => ({ addrs4: a.filter((x) => !x.includes(':')), addrs6: a.filter((x) => x.includes(':')), cidrs: [] });
const cidr = (c: string): CompiledPeers => ({ addrs4: [], addrs6: [], cidrs: [{ cidr: c, except: [] }] });
const tcp = (from: number, to = from): PortRange => ({ proto: 'tcp', from, to });
const udp = (from: number, to = from): PortRange => ({ proto: 'udp', from, to });
const rule = (policy: string, index: number, peers: CompiledPeers | 'any', ports: PortRange[] | 'any'): CompiledRule => ({ policy, index, peers, ports });

/** One endpoint's policy: isolated in the directions given, by the policies of their rules (or `by`). */
function governed(
  who: 'db' | 'api' | 'c3',
  dirs: { ingress?: CompiledRule[]; egress?: CompiledRule[] },
  by: { ingress?: string[]; egress?: string[] } = {},
): EndpointPolicy {
  const isolatedBy = {
    ...(dirs.ingress ? { ingress: by.ingress ?? [...new Set(dirs.ingress.map((r) => r.policy))] } : {}),
    ...(dirs.egress ? { egress: by.egress ?? [...new Set(dirs.egress.map((r) => r.policy))] } : {}),
  };
  return {
    endpointId: EP[who],
    containerId: `ctr-${who}`,
    addresses: ADDRS[who],
    policies: [...new Set([...(isolatedBy.ingress ?? []), ...(isolatedBy.egress ?? [])])],
    isolatedBy,
    ...dirs,
  };
}

function state(...endpoints: EndpointPolicy[]): FirewallState {
  const plan: NetworkPolicyPlan = { networkId: net.id, policies: [...new Set(endpoints.flatMap((e) => e.policies))].sort(), endpoints };
  return {
    dnsPort: null,
    networks: [net],
    ports: [{ endpointId: EP.db, networkId: net.id, proto: 'tcp', hostIp: '', hostPort: 8432, containerIp: DB, containerPort: 5432 }],
    ...(endpoints.length ? { policies: [plan] } : {}),
  };
}

/** db accepts tcp 5432-5433 and udp 5432 from api only. */
const dbFromApi = governed('db', { ingress: [rule('db-from-api', 0, addrs(API, API6), [tcp(5432, 5433), udp(5432)])] });
const PLAN_A = state(dbFromApi);

async function ip(ns: string, ...args: string[]): Promise<void> {
  await run(['ip', '-n', ns, ...args]);
}

async function probe(ns: string, proto: 'tcp' | 'udp', host: string, port: number, src?: string, timeoutMs = 1500): Promise<string> {
  const res = await run(inNs(ns, [process.execPath, PROBE, 'connect', proto, host, String(port), String(timeoutMs), ...(src ? [src] : [])]), {
    allowFailure: true,
    timeoutMs: timeoutMs + 5000,
  });
  return res.stdout.trim() || `exit ${res.code}: ${res.stderr.trim()}`;
}

const children: ChildProcess[] = [];

function startServer(ns: string, argv: string[]): Promise<void> {
  const full = inNs(ns, [process.execPath, PROBE, ...argv]);
  const child = spawn(full[0]!, full.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.includes('ready')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`${argv.join(' ')} in ${ns} exited with ${code}`)));
  });
}

/**
 * A held-open TCP connection (net-probe `chat` to an `echo` server): `say(line)` resolves with
 * the line echoed back, or 'timeout' after 1.5 s.
 */
function session(ns: string, host: string, port: number): Promise<ProbeSession> {
  return openSession(nsPath(ns), host, port, children);
}

async function cleanup(): Promise<void> {
  for (const c of children) c.kill('SIGKILL');
  for (const ns of Object.values(NS)) await run(['ip', 'netns', 'del', ns], { allowFailure: true });
}

async function container(ns: string, who: 'db' | 'api' | 'c3', addr4: string, addr6: string): Promise<void> {
  const veth = `vx${EP[who].slice(0, 12)}`;
  await ip(NS.h, 'link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
  await ip(NS.h, 'link', 'set', veth, 'master', 'brp', 'up');
  await ip(NS.h, 'link', 'set', veth, 'type', 'bridge_slave', 'hairpin', 'on');
  await ip(ns, 'addr', 'add', `${addr4}/24`, 'dev', 'eth0');
  await ip(ns, 'addr', 'add', `${addr6}/64`, 'dev', 'eth0', 'nodad');
  await ip(ns, 'link', 'set', 'eth0', 'up');
  await ip(ns, 'route', 'add', 'default', 'via', GW);
}

/** The IPv6 link-local address of eth0 in `ns`. */
async function linkLocal(ns: string): Promise<string> {
  const res = await run(['ip', '-n', ns, '-6', '-o', 'addr', 'show', 'dev', 'eth0', 'scope', 'link']);
  const m = /inet6 (fe80:[0-9a-f:]+)\//.exec(res.stdout);
  assert.ok(m, `no link-local address in ${ns}: ${res.stdout}`);
  return m[1]!;
}

/** Packets counted by the anti-spoofing rules of the bridge table, in rule order. */
async function spoofDrops(): Promise<number[]> {
  const res = await run(inNs(NS.h, ['nft', 'list', 'chain', 'bridge', 'arcap_br', 'prerouting']));
  return [...res.stdout.matchAll(/counter packets (\d+)/g)].map((m) => Number(m[1]));
}

describe('network policies in the nftables firewall', { skip, concurrency: false }, () => {
  const dropLines: string[] = [];
  const names = new Map([
    [DB, 'db'],
    [API, 'api'],
    [C3, 'c3'],
  ]);
  const fw = new NftFirewall({
    tablePrefix: 'arcap',
    netns: nsPath(NS.h),
    logPolicyDrops: true,
    dropPollMs: 3_600_000,
    dropLog: (line) => dropLines.push(line),
    addressNamer: (a) => names.get(a),
  });

  before(async () => {
    try {
      for (const ns of Object.values(NS)) {
        await run(['ip', 'netns', 'add', ns]);
        await ip(ns, 'link', 'set', 'lo', 'up');
      }
      await ip(NS.h, 'link', 'add', 'brp', 'type', 'bridge');
      await ip(NS.h, 'addr', 'add', `${GW}/24`, 'dev', 'brp');
      await ip(NS.h, 'addr', 'add', 'fd00:10::1/64', 'dev', 'brp', 'nodad');
      await ip(NS.h, 'link', 'set', 'brp', 'up');
      await container(NS.db, 'db', DB, DB6);
      await container(NS.api, 'api', API, API6);
      await container(NS.c3, 'c3', C3, 'fd00:10::4');
      await ip(NS.h, 'link', 'add', 'ho', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', NS.o);
      await ip(NS.h, 'addr', 'add', `${HOST_OUT}/24`, 'dev', 'ho');
      await ip(NS.h, 'link', 'set', 'ho', 'up');
      await ip(NS.o, 'addr', 'add', `${OUTSIDE}/24`, 'dev', 'eth0');
      await ip(NS.o, 'link', 'set', 'eth0', 'up');
      await ip(NS.o, 'route', 'add', '198.18.0.0/16', 'via', HOST_OUT);
      // The premise of the design: bridged frames cross the inet hooks in every namespace.
      const brnf = await run(inNs(NS.h, ['cat', '/proc/sys/net/bridge/bridge-nf-call-iptables']));
      assert.equal(brnf.stdout.trim(), '1', 'br_netfilter must be on in the host namespace');
      await Promise.all([
        startServer(NS.db, ['serve', 'db', '5432,80', '5432']),
        startServer(NS.db, ['echo', '5433']),
        startServer(NS.api, ['serve', 'api', '80', '-']),
        startServer(NS.c3, ['serve', 'c3', '80', '-']),
        startServer(NS.o, ['serve', 'o', '9000', '-']),
        startServer(NS.h, ['serve', 'h', '7000', '-']),
      ]);
      await fw.apply(PLAN_A);
    } catch (err) {
      await cleanup();
      throw err;
    }
  });

  after(async () => {
    await fw.teardown().catch(() => {});
    await cleanup();
  });

  it('isolates a selected endpoint: only the allowed peer, protocol and port get in', async () => {
    await fw.apply(PLAN_A);
    const [ok, ok6, otherPort, otherProto, otherPeer, otherPeer6] = await Promise.all([
      probe(NS.api, 'tcp', DB, 5432),
      probe(NS.api, 'tcp', DB6, 5432),
      probe(NS.api, 'tcp', DB, 80),
      probe(NS.api, 'udp', DB, 80),
      probe(NS.c3, 'tcp', DB, 5432),
      probe(NS.c3, 'tcp', DB6, 5432),
    ]);
    assert.deepEqual([ok, ok6, otherPort, otherProto, otherPeer, otherPeer6], [`db ${API}`, `db ${API6}`, 'timeout', 'timeout', 'timeout', 'timeout']);
    assert.equal(await probe(NS.api, 'udp', DB, 5432), `db ${API}`);
    // Link-local IPv6 carries no address a rule names: no way around the rules through it.
    const ll = `${await linkLocal(NS.db)}%eth0`;
    const [llOther, llApi] = await Promise.all([probe(NS.c3, 'tcp', ll, 5432), probe(NS.api, 'tcp', ll, 5432)]);
    assert.deepEqual([llOther, llApi], ['timeout', 'timeout']);
  });

  it('leaves endpoints no policy selects (and the selected one\'s other direction) as they were', async () => {
    const results = await Promise.all([
      probe(NS.c3, 'tcp', API, 80),
      probe(NS.api, 'tcp', C3, 80),
      probe(NS.db, 'tcp', C3, 80),
      probe(NS.db, 'tcp', OUTSIDE, 9000),
      probe(NS.h, 'tcp', DB, 80),
      probe(NS.c3, 'tcp', GW, 7000),
    ]);
    assert.deepEqual(results, [`api ${C3}`, `c3 ${API}`, `c3 ${DB}`, `o ${HOST_OUT}`, `db ${GW}`, `h ${C3}`]);
  });

  it('keeps a published port open only to clients an ingress rule allows', async () => {
    await fw.apply(PLAN_A);
    const [outside, c3, api] = await Promise.all([
      probe(NS.o, 'tcp', HOST_OUT, 8432),
      probe(NS.c3, 'tcp', HOST_OUT, 8432),
      probe(NS.api, 'tcp', HOST_OUT, 8432),
    ]);
    // Hairpin through the host address: the client is still api (the masquerade is after the judgement).
    assert.deepEqual([outside, c3, api], ['timeout', 'timeout', `db ${GW}`]);
    const published = governed('db', {
      ingress: [...dbFromApi.ingress!, rule('db-published', 0, cidr('198.18.100.0/24'), [tcp(5432)])],
    });
    await fw.apply(state(published));
    const [outside2, direct, c3again] = await Promise.all([
      probe(NS.o, 'tcp', HOST_OUT, 8432),
      // Allowed by the policy, but never published: the rest of the ruleset still refuses it.
      probe(NS.o, 'tcp', DB, 5432),
      probe(NS.c3, 'tcp', HOST_OUT, 8432),
    ]);
    assert.deepEqual([outside2, direct, c3again], [`db ${OUTSIDE}`, 'timeout', 'timeout']);
  });

  it('egress: only allowed destinations (containers, outside, the host); replies to inbound connections pass', async () => {
    const apiOut = state(governed('api', { egress: [rule('api-out', 0, addrs(DB), [tcp(5432)])] }));
    await fw.apply(apiOut);
    const results = await Promise.all([
      probe(NS.api, 'tcp', DB, 5432),
      probe(NS.api, 'tcp', DB, 80),
      probe(NS.api, 'tcp', C3, 80),
      probe(NS.api, 'tcp', OUTSIDE, 9000),
      probe(NS.api, 'tcp', GW, 7000),
      probe(NS.c3, 'tcp', API, 80),
      probe(NS.h, 'tcp', API, 80),
    ]);
    assert.deepEqual(results, [`db ${API}`, 'timeout', 'timeout', 'timeout', 'timeout', `api ${C3}`, `api ${GW}`]);
    // When the embedded DNS listens on the gateways (no native addon), its port stays reachable.
    await fw.apply({ ...apiOut, dnsPort: 7000 });
    assert.equal(await probe(NS.api, 'tcp', GW, 7000), `h ${API}`);
    assert.equal(await probe(NS.api, 'tcp', HOST_OUT, 7000), 'timeout');
  });

  it('lets ICMP echo through only by a rule without ports', async () => {
    const ping = async (ns: string, host: string): Promise<boolean> =>
      (await run(inNs(ns, ['timeout', '3', 'busybox', 'ping', '-c', '1', '-W', '1', host]), { allowFailure: true })).code === 0;
    await fw.apply(PLAN_A);
    assert.equal(await ping(NS.api, DB), false);
    await fw.apply(state(governed('db', { ingress: [rule('db-from-api', 0, addrs(API), 'any')] })));
    assert.equal(await ping(NS.api, DB), true);
    assert.equal(await ping(NS.c3, DB), false);
  });

  it('needs both ends to allow a connection', async () => {
    const apiToDb80 = governed('api', { egress: [rule('api-out', 0, addrs(DB), [tcp(80)])] });
    await fw.apply(state(dbFromApi, apiToDb80));
    const [p80, p5432] = await Promise.all([probe(NS.api, 'tcp', DB, 80), probe(NS.api, 'tcp', DB, 5432)]);
    assert.deepEqual([p80, p5432], ['timeout', 'timeout']);
    await fw.apply(state(dbFromApi, governed('api', { egress: [rule('api-out', 0, addrs(DB), [tcp(5432)])] })));
    assert.equal(await probe(NS.api, 'tcp', DB, 5432), `db ${API}`);
  });

  it('cuts a live connection on its next packet once no rule allows it', async () => {
    await fw.apply(PLAN_A);
    const s = await session(NS.api, DB, 5433);
    try {
      assert.equal(await s.say('one'), 'one');
      // A reload that still allows it keeps it.
      await fw.apply(state(dbFromApi, governed('c3', { ingress: [] }, { ingress: ['c3-lockdown'] })));
      assert.equal(await s.say('two'), 'two');
      await fw.apply(state(governed('db', { ingress: [] }, { ingress: ['db-lockdown'] })));
      assert.equal(await s.say('three'), 'timeout');
    } finally {
      s.close();
    }
    // The other way round: an egress rule removed under a live connection.
    await fw.apply(state(governed('api', { egress: [rule('api-out', 0, addrs(DB), [tcp(5433)])] })));
    const s2 = await session(NS.api, DB, 5433);
    try {
      assert.equal(await s2.say('four'), 'four');
      await fw.apply(state(governed('api', { egress: [rule('api-out', 0, addrs(DB), [tcp(5432)])] })));
      assert.equal(await s2.say('five'), 'timeout');
    } finally {
      s2.close();
    }
  });

  it('binds governed addresses to their bridge ports (no spoofing an allowed peer)', async () => {
    // api governed too (egress open), so its address is bound to its port.
    await fw.apply(state(dbFromApi, governed('api', { egress: [rule('api-any', 0, 'any', 'any')] })));
    assert.equal(await probe(NS.api, 'tcp', DB, 5432), `db ${API}`);
    const before = await spoofDrops();
    // c3 claims api's address; db would accept it by address alone.
    await ip(NS.c3, 'addr', 'add', `${API}/32`, 'dev', 'eth0');
    // db (a governed port) sends from an address that is not its own.
    await ip(NS.db, 'addr', 'add', '198.18.10.50/32', 'dev', 'eth0');
    try {
      const [spoofed, foreign] = await Promise.all([probe(NS.c3, 'udp', DB, 5432, API), probe(NS.db, 'tcp', C3, 80, '198.18.10.50')]);
      assert.deepEqual([spoofed, foreign], ['timeout', 'timeout']);
      // Someone asks who has api's address: c3's ARP answer for it never leaves its port.
      await ip(NS.db, 'neigh', 'flush', 'all');
      assert.equal(await probe(NS.db, 'tcp', API, 80), `api ${DB}`);
      const afterDrops = await spoofDrops();
      assert.ok(afterDrops[0]! > before[0]!, `governed port sending a foreign source: ${before} -> ${afterDrops}`);
      assert.ok(afterDrops[1]! > before[1]!, `governed address from another port: ${before} -> ${afterDrops}`);
      assert.ok(afterDrops[5]! > before[5]!, `ARP for a governed address from another port: ${before} -> ${afterDrops}`);
    } finally {
      await ip(NS.c3, 'addr', 'del', `${API}/32`, 'dev', 'eth0');
      await ip(NS.db, 'addr', 'del', '198.18.10.50/32', 'dev', 'eth0');
      // c3 may have answered ARP for api's address meanwhile (ARP is not IP: no rule sees it).
      for (const ns of [NS.h, NS.db, NS.api, NS.c3]) await ip(ns, 'neigh', 'flush', 'all');
    }
    // IPv6 neighbour discovery from link-local addresses still works on governed ports.
    assert.equal(await probe(NS.api, 'tcp', DB6, 5432), `db ${API6}`);
  });

  it('counts per policy what it allowed and dropped, across reloads', async () => {
    await fw.apply(PLAN_A);
    await Promise.all([probe(NS.api, 'tcp', DB, 5432), probe(NS.c3, 'tcp', DB, 5432)]);
    const first = (await fw.policyCounters())['db-from-api']!;
    assert.ok(first.allowedPackets >= 4 && first.allowedBytes > 0, JSON.stringify(first));
    assert.ok(first.droppedPackets >= 1 && first.droppedBytes > 0, JSON.stringify(first));
    await fw.apply(PLAN_A);
    const second = (await fw.policyCounters())['db-from-api']!;
    assert.ok(second.allowedPackets >= first.allowedPackets && second.droppedPackets >= first.droppedPackets, JSON.stringify({ first, second }));
    await fw.apply(state(governed('db', { ingress: [] }, { ingress: ['db-lockdown'] })));
    assert.deepEqual(Object.keys(await fw.policyCounters()), ['db-lockdown']);
  });

  it('logs dropped flows once each, with both ends named and the policies that isolate', async () => {
    await fw.apply(PLAN_A);
    dropLines.length = 0;
    assert.equal(await probe(NS.c3, 'tcp', DB, 5432), 'timeout');
    await fw.pollDrops();
    await fw.pollDrops();
    const lines = dropLines.filter((l) => l.includes(`c3 (${C3}) -> db (${DB}) 5432/tcp`));
    assert.equal(lines.length, 1, dropLines.join('\n'));
    assert.match(lines[0]!, /\(ingress of db \(198\.18\.10\.2\)\)/);
  });

  it('is gone after teardown: everything reaches everything again', async () => {
    await fw.teardown();
    const tables = await run(inNs(NS.h, ['nft', 'list', 'tables']));
    assert.doesNotMatch(tables.stdout, /arcap/);
    assert.equal(await probe(NS.c3, 'tcp', DB, 5432), `db ${C3}`);
    // Control for the link-local check above: without policies it does connect.
    assert.match(await probe(NS.c3, 'tcp', `${await linkLocal(NS.db)}%eth0`, 5432), /^db fe80:/);
  });

  it('reloads 1000 endpoints × 50 policies in one transaction (measured)', async (t) => {
    const world: PolicyWorld = { networks: [{ id: net.id, name: 'big', driver: 'bridge' }], endpoints: [] };
    for (let i = 0; i < 1000; i++) {
      const id = (i + 1).toString(16).padStart(12, '0') + '0'.repeat(52);
      world.endpoints.push({
        endpointId: id,
        containerId: `c${id}`,
        containerName: `c${i}`,
        labels: { tier: `t${i % 50}` },
        networkId: net.id,
        networkName: 'big',
        addresses: [`10.100.${Math.floor(i / 250)}.${(i % 250) + 2}`],
      });
    }
    const docs: PolicyDoc[] = [];
    for (let p = 0; p < 50; p++) {
      docs.push({
        name: `p${p}`,
        network: 'big',
        select: { labels: { tier: `t${p}` } },
        ingress: [
          { from: [{ labels: { tier: `t${(p + 1) % 50}` } }], ports: [{ proto: 'tcp', port: 5432 }, { proto: 'udp', port: '8000-8100' }] },
          { from: [{ cidr: '192.168.0.0/16', except: ['192.168.1.0/24'] }], ports: [{ proto: 'tcp', port: 443 }] },
        ],
        egress: [{ to: [{ labels: { tier: `t${(p + 2) % 50}` } }, { cidr: '0.0.0.0/0', except: ['10.0.0.0/8'] }] }],
      });
    }
    const plans = compilePlans(docs, world);
    const big: FirewallState = { networks: [{ ...net, subnets4: ['10.100.0.0/16'], subnets6: [] }], ports: [], policies: plans };
    const bigFw = new NftFirewall({ tablePrefix: 'arcab', netns: nsPath(NS.big), sysctls: false });
    await run(['ip', '-n', NS.big, 'link', 'add', 'brp', 'type', 'bridge']);
    let started = process.hrtime.bigint();
    const script = bigFw.render(big);
    const renderMs = Number(process.hrtime.bigint() - started) / 1e6;
    started = process.hrtime.bigint();
    await bigFw.apply(big);
    const firstMs = Number(process.hrtime.bigint() - started) / 1e6;
    started = process.hrtime.bigint();
    await bigFw.apply(big);
    const reloadMs = Number(process.hrtime.bigint() - started) / 1e6;
    started = process.hrtime.bigint();
    await bigFw.policyCounters();
    const countersMs = Number(process.hrtime.bigint() - started) / 1e6;
    const line =
      `1000 endpoints x 50 policies: script ${script.length} bytes, ${script.split('\n').length} lines; ` +
      `render ${renderMs.toFixed(1)} ms, first load ${firstMs.toFixed(1)} ms, reload (with the counter reset-read) ${reloadMs.toFixed(1)} ms, ` +
      `counters ${countersMs.toFixed(1)} ms`;
    t.diagnostic(line);
    console.log(`# ${line}`);
    await bigFw.teardown();
  });
});
