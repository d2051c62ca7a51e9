/**
 * The nftables firewall against the real kernel, with real traffic, in throwaway namespaces:
 *
 *   "o" (outside) 198.18.100.2 ──veth── 198.18.100.1 "h" (the daemon's host)
 *                 2001:db8:100::2          2001:db8:100::1
 *   h: br1 198.18.1.1/24, 2001:db8:1::1/64 (net A) ── c1 .2 / ::2, c2 .3
 *      br2 198.18.2.1/24 (net B, protectHost) ── c3 .2
 *      br3 198.18.3.1/24 (net I, internal) ── ci .2
 *
 * Each namespace runs net-probe servers that answer "<name> <peer address>", so every check also
 * shows who the server thinks called (that is what proves masquerade and DNAT). Nothing touches
 * the real host's network: everything lives in namespaces made here and deleted in `after`.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NftFirewall } from '../../src/network/firewall/nftables/nft-firewall.js';
import type { FirewallNetwork, FirewallState } from '../../src/network/firewall/firewall.js';
import { run, which } from '../../src/sys/runner.js';

const PROBE = join(dirname(fileURLToPath(import.meta.url)), 'net-probe.js');
const tag = `afw${randomBytes(3).toString('hex')}`;
const NS = { h: `${tag}-h`, o: `${tag}-o`, c1: `${tag}-c1`, c2: `${tag}-c2`, c3: `${tag}-c3`, ci: `${tag}-ci` };
const nsPath = (ns: string): string => `/run/netns/${ns}`;
const inNs = (ns: string, argv: string[]): string[] => ['nsenter', `--net=${nsPath(ns)}`, ...argv];

const HOST_OUT = '198.18.100.1';
const OUTSIDE = '198.18.100.2';
const HOST_OUT6 = '2001:db8:100::1';
const OUTSIDE6 = '2001:db8:100::2';
const DNS_PORT = 5353;

const skip =
  process.getuid?.() !== 0 ? 'needs root' : !which('nft') ? 'needs nft' : !which('busybox') ? 'needs busybox' : false;

const netA: FirewallNetwork = {
  id: 'aaaa000000000000000000000000000000000000000000000000000000000001',
  bridge: 'br1',
  subnets4: ['198.18.1.0/24'],
  subnets6: ['2001:db8:1::/64'],
  gateways: ['198.18.1.1', '2001:db8:1::1'],
  internal: false,
  icc: true,
  masquerade: true,
};
const netB: FirewallNetwork = {
  ...netA,
  id: 'bbbb000000000000000000000000000000000000000000000000000000000002',
  bridge: 'br2',
  subnets4: ['198.18.2.0/24'],
  subnets6: [],
  gateways: ['198.18.2.1'],
  protectHost: true,
};
const netI: FirewallNetwork = {
  ...netA,
  id: 'cccc000000000000000000000000000000000000000000000000000000000003',
  bridge: 'br3',
  subnets4: ['198.18.3.0/24'],
  subnets6: [],
  gateways: ['198.18.3.1'],
  internal: true,
};
const EP1 = 'e1e1000000000000000000000000000000000000000000000000000000000001';
const EP3 = 'e3e3000000000000000000000000000000000000000000000000000000000003';
const EPI = 'e9e9000000000000000000000000000000000000000000000000000000000009';

function state(a: FirewallNetwork = netA): FirewallState {
  return {
    dnsPort: DNS_PORT,
    networks: [a, netB, netI],
    ports: [
      { endpointId: EP1, networkId: a.id, proto: 'tcp', hostIp: '', hostPort: 8080, containerIp: '198.18.1.2', containerPort: 80 },
      { endpointId: EP1, networkId: a.id, proto: 'tcp', hostIp: '::', hostPort: 8080, containerIp: '2001:db8:1::2', containerPort: 80 },
      { endpointId: EP1, networkId: a.id, proto: 'udp', hostIp: '0.0.0.0', hostPort: 8053, containerIp: '198.18.1.2', containerPort: 80 },
      { endpointId: EP3, networkId: netB.id, proto: 'tcp', hostIp: HOST_OUT, hostPort: 8081, containerIp: '198.18.2.2', containerPort: 80 },
      // An internal network publishes nothing: this must not be reachable.
      { endpointId: EPI, networkId: netI.id, proto: 'tcp', hostIp: '', hostPort: 8090, containerIp: '198.18.3.2', containerPort: 80 },
    ],
  };
}

async function ip(ns: string, ...args: string[]): Promise<void> {
  await run(['ip', '-n', ns, ...args]);
}

/** One request through the probe; returns the server's answer or 'timeout' / an error code. */
async function probe(ns: string, proto: 'tcp' | 'udp', host: string, port: number, timeoutMs = 1500): Promise<string> {
  const res = await run(inNs(ns, [process.execPath, PROBE, 'connect', proto, host, String(port), String(timeoutMs)]), {
    allowFailure: true,
    timeoutMs: timeoutMs + 5000,
  });
  return res.stdout.trim() || `exit ${res.code}: ${res.stderr.trim()}`;
}

/** True if `busybox ping` gets an answer. */
async function ping(ns: string, host: string): Promise<boolean> {
  const res = await run(inNs(ns, ['timeout', '3', 'busybox', 'ping', '-c', '1', '-W', '1', host]), { allowFailure: true });
  return res.code === 0;
}

const servers: ChildProcess[] = [];

function startServer(ns: string, name: string, tcp: number[], udp: number[]): Promise<void> {
  const argv = inNs(ns, [process.execPath, PROBE, 'serve', name, tcp.join(',') || '-', udp.join(',') || '-']);
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
  servers.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.includes('ready')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`server ${name} in ${ns} exited with ${code}`)));
  });
}

async function cleanup(): Promise<void> {
  for (const s of servers) s.kill('SIGKILL');
  for (const ns of Object.values(NS)) await run(['ip', 'netns', 'del', ns], { allowFailure: true });
}

async function container(ns: string, bridge: string, veth: string, addr: string, gw: string): Promise<void> {
  await ip(NS.h, 'link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
  await ip(NS.h, 'link', 'set', veth, 'master', bridge, 'up');
  // What the bridge driver must do too: with br_netfilter, a DNAT back into the same bridge is
  // bridged at L2, and a container reaching its own published port needs its port to hairpin.
  await ip(NS.h, 'link', 'set', veth, 'type', 'bridge_slave', 'hairpin', 'on');
  await ip(ns, 'addr', 'add', addr, 'dev', 'eth0');
  await ip(ns, 'link', 'set', 'eth0', 'up');
  await ip(ns, 'route', 'add', 'default', 'via', gw);
}

describe('nftables firewall in namespaces', { skip, concurrency: false }, () => {
  const fw = new NftFirewall({ tablePrefix: 'arcat', netns: nsPath(NS.h) });

  before(async () => {
    try {
      for (const ns of Object.values(NS)) {
        await run(['ip', 'netns', 'add', ns]);
        await ip(ns, 'link', 'set', 'lo', 'up');
      }
      for (const [br, addr] of [
        ['br1', '198.18.1.1/24'],
        ['br2', '198.18.2.1/24'],
        ['br3', '198.18.3.1/24'],
      ] as const) {
        await ip(NS.h, 'link', 'add', br, 'type', 'bridge');
        await ip(NS.h, 'addr', 'add', addr, 'dev', br);
        await ip(NS.h, 'link', 'set', br, 'up');
      }
      await ip(NS.h, 'addr', 'add', '2001:db8:1::1/64', 'dev', 'br1', 'nodad');
      await container(NS.c1, 'br1', 'vc1', '198.18.1.2/24', '198.18.1.1');
      await ip(NS.c1, 'addr', 'add', '2001:db8:1::2/64', 'dev', 'eth0', 'nodad');
      await ip(NS.c1, '-6', 'route', 'add', 'default', 'via', '2001:db8:1::1');
      await container(NS.c2, 'br1', 'vc2', '198.18.1.3/24', '198.18.1.1');
      await container(NS.c3, 'br2', 'vc3', '198.18.2.2/24', '198.18.2.1');
      await container(NS.ci, 'br3', 'vci', '198.18.3.2/24', '198.18.3.1');
      await ip(NS.h, 'link', 'add', 'ho', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', NS.o);
      await ip(NS.h, 'addr', 'add', `${HOST_OUT}/24`, 'dev', 'ho');
      await ip(NS.h, 'link', 'set', 'ho', 'up');
      await ip(NS.o, 'addr', 'add', `${OUTSIDE}/24`, 'dev', 'eth0');
      await ip(NS.h, 'addr', 'add', `${HOST_OUT6}/64`, 'dev', 'ho', 'nodad');
      await ip(NS.o, 'addr', 'add', `${OUTSIDE6}/64`, 'dev', 'eth0', 'nodad');
      await ip(NS.o, 'link', 'set', 'eth0', 'up');
      // The outside knows a route to the container subnets, so "unreachable" below is the
      // firewall's doing and not a missing route.
      await ip(NS.o, 'route', 'add', '198.18.0.0/16', 'via', HOST_OUT);
      await Promise.all([
        startServer(NS.c1, 'c1', [80], [80]),
        startServer(NS.c2, 'c2', [80], []),
        startServer(NS.c3, 'c3', [80], []),
        startServer(NS.ci, 'ci', [80], []),
        startServer(NS.o, 'o', [9000], [9000]),
        startServer(NS.h, 'h', [7000, DNS_PORT], [DNS_PORT]),
      ]);
      await fw.apply(state());
    } catch (err) {
      await cleanup();
      throw err;
    }
  });

  after(async () => {
    await fw.teardown().catch(() => {});
    await cleanup();
  });

  it('sets the sysctls in the host namespace', async () => {
    const fwd = await run(inNs(NS.h, ['cat', '/proc/sys/net/ipv4/ip_forward']));
    assert.equal(fwd.stdout.trim(), '1');
    const rl = await run(inNs(NS.h, ['cat', '/proc/sys/net/ipv4/conf/br1/route_localnet']));
    assert.equal(rl.stdout.trim(), '1');
  });

  it('masquerades outbound traffic: the outside sees the host address', async () => {
    assert.equal(await probe(NS.c1, 'tcp', OUTSIDE, 9000), `o ${HOST_OUT}`);
    assert.equal(await probe(NS.c1, 'udp', OUTSIDE, 9000), `o ${HOST_OUT}`);
    assert.equal(await probe(NS.c3, 'tcp', OUTSIDE, 9000), `o ${HOST_OUT}`);
  });

  it('publishes ports to the outside, keeping the client address (tcp and udp)', async () => {
    assert.equal(await probe(NS.o, 'tcp', HOST_OUT, 8080), `c1 ${OUTSIDE}`);
    assert.equal(await probe(NS.o, 'udp', HOST_OUT, 8053), `c1 ${OUTSIDE}`);
    assert.equal(await probe(NS.o, 'tcp', HOST_OUT, 8081), `c3 ${OUTSIDE}`);
  });

  it('does the same over IPv6: masquerade and a published port on ::', async () => {
    assert.equal(await probe(NS.c1, 'tcp', OUTSIDE6, 9000), `o ${HOST_OUT6}`);
    assert.equal(await probe(NS.o, 'tcp', HOST_OUT6, 8080), `c1 ${OUTSIDE6}`);
    assert.equal(await probe(NS.h, 'tcp', HOST_OUT6, 8080), `c1 ${HOST_OUT6}`);
  });

  it('publishes ports to the host itself, on 127.0.0.1 and its own addresses', async () => {
    assert.equal(await probe(NS.h, 'tcp', '127.0.0.1', 8080), 'c1 198.18.1.1');
    assert.equal(await probe(NS.h, 'udp', '127.0.0.1', 8053), 'c1 198.18.1.1');
    assert.equal(await probe(NS.h, 'tcp', HOST_OUT, 8080), `c1 ${HOST_OUT}`);
    // The source the host picks is B's gateway, in B's subnet, so B's masquerade applies.
    assert.equal(await probe(NS.h, 'tcp', '198.18.2.1', 8080), 'c1 198.18.1.1');
    // Bound to one host address only: nothing on 127.0.0.1:8081.
    assert.notEqual(await probe(NS.h, 'tcp', '127.0.0.1', 8081), `c3 127.0.0.1`);
    assert.match(await probe(NS.h, 'tcp', '127.0.0.1', 8081), /ECONNREFUSED/);
  });

  it('hairpins: containers reach published ports through the host address', async () => {
    assert.equal(await probe(NS.c1, 'tcp', HOST_OUT, 8080), 'c1 198.18.1.1');
    assert.equal(await probe(NS.c1, 'tcp', '198.18.1.1', 8080), 'c1 198.18.1.1');
    assert.equal(await probe(NS.c2, 'tcp', HOST_OUT, 8080), 'c1 198.18.1.1');
    assert.equal(await probe(NS.c2, 'udp', '198.18.1.1', 8053), 'c1 198.18.1.1');
    // From another network, published ports are the one way in.
    assert.equal(await probe(NS.c3, 'tcp', HOST_OUT, 8080), 'c1 198.18.1.1');
  });

  it('isolates networks from each other and from unpublished ports', async () => {
    const [aToB, bToA, outToC1, outToC3] = await Promise.all([
      probe(NS.c1, 'tcp', '198.18.2.2', 80),
      probe(NS.c3, 'tcp', '198.18.1.2', 80),
      probe(NS.o, 'tcp', '198.18.1.2', 80),
      probe(NS.o, 'tcp', '198.18.2.2', 80),
    ]);
    assert.deepEqual([aToB, bToA, outToC1, outToC3], ['timeout', 'timeout', 'timeout', 'timeout']);
    assert.equal(await ping(NS.c1, '198.18.2.2'), false);
  });

  it('lets containers on one bridge talk (icc)', async () => {
    assert.equal(await probe(NS.c1, 'tcp', '198.18.1.3', 80), 'c2 198.18.1.2');
    assert.equal(await ping(NS.c2, '198.18.1.2'), true);
  });

  it('gives an internal network no way out and publishes nothing from it', async () => {
    const results = await Promise.all([
      probe(NS.ci, 'tcp', OUTSIDE, 9000),
      probe(NS.ci, 'tcp', '198.18.1.2', 80),
      probe(NS.o, 'tcp', '198.18.3.2', 80),
      probe(NS.c1, 'tcp', '198.18.3.2', 80),
    ]);
    assert.deepEqual(results, ['timeout', 'timeout', 'timeout', 'timeout']);
    assert.match(await probe(NS.o, 'tcp', HOST_OUT, 8090), /ECONNREFUSED|timeout/);
    assert.equal(await ping(NS.ci, OUTSIDE), false);
    // The host itself still reaches it and is reachable from it, as with Docker.
    assert.equal(await probe(NS.h, 'tcp', '198.18.3.2', 80), 'ci 198.18.3.1');
    assert.equal(await probe(NS.ci, 'tcp', '198.18.3.1', 7000), 'h 198.18.3.2');
  });

  it('protectHost keeps containers off the host except DNS on the gateway', async () => {
    const [gw, other, dnsUdp, dnsTcp] = await Promise.all([
      probe(NS.c3, 'tcp', '198.18.2.1', 7000),
      probe(NS.c3, 'tcp', HOST_OUT, 7000),
      probe(NS.c3, 'udp', '198.18.2.1', DNS_PORT),
      probe(NS.c3, 'tcp', '198.18.2.1', DNS_PORT),
    ]);
    assert.deepEqual([gw, other], ['timeout', 'timeout']);
    assert.equal(dnsUdp, 'h 198.18.2.2');
    assert.equal(dnsTcp, 'h 198.18.2.2');
    assert.equal(await ping(NS.c3, '198.18.2.1'), true);
    // Network A is not protected: Docker's default, the host is reachable.
    assert.equal(await probe(NS.c1, 'tcp', '198.18.1.1', 7000), 'h 198.18.1.2');
  });

  it('re-applies atomically: enable_icc=false blocks same-bridge traffic, then icc comes back', async () => {
    await fw.apply(state({ ...netA, icc: false }));
    assert.equal(await probe(NS.c1, 'tcp', '198.18.1.3', 80), 'timeout');
    assert.equal(await ping(NS.c2, '198.18.1.2'), false);
    // Published ports still work, also hairpinned from the same bridge.
    assert.equal(await probe(NS.o, 'tcp', HOST_OUT, 8080), `c1 ${OUTSIDE}`);
    assert.equal(await probe(NS.c2, 'tcp', HOST_OUT, 8080), 'c1 198.18.1.1');
    await fw.apply(state());
    assert.equal(await probe(NS.c1, 'tcp', '198.18.1.3', 80), 'c2 198.18.1.2');
    assert.equal(await probe(NS.o, 'tcp', HOST_OUT, 8080), `c1 ${OUTSIDE}`);
  });

  it('re-applies without a port: it stops answering', async () => {
    const s = state();
    await fw.apply({ ...s, ports: s.ports.filter((p) => p.hostPort !== 8080) });
    assert.match(await probe(NS.o, 'tcp', HOST_OUT, 8080), /ECONNREFUSED|timeout/);
    assert.equal(await probe(NS.o, 'udp', HOST_OUT, 8053), `c1 ${OUTSIDE}`);
    await fw.apply(s);
    assert.equal(await probe(NS.o, 'tcp', HOST_OUT, 8080), `c1 ${OUTSIDE}`);
  });

  it('teardown removes every table and is idempotent', async () => {
    await fw.teardown();
    await fw.teardown();
    const tables = await run(inNs(NS.h, ['nft', 'list', 'tables']));
    assert.doesNotMatch(tables.stdout, /arcat/);
    assert.match(await probe(NS.o, 'tcp', HOST_OUT, 8080), /ECONNREFUSED|timeout/);
    // Control: without the tables the routes do carry traffic between networks, so the
    // timeouts above were the firewall's doing.
    assert.equal(await probe(NS.c1, 'tcp', '198.18.2.2', 80), 'c3 198.18.1.2');
  });

  it('a script that fails in the kernel changes nothing (one transaction)', async () => {
    await fw.apply(state());
    const s = state();
    // A valid replacement without port 8080, then a statement the kernel rejects at commit.
    const script = fw.render({ ...s, ports: s.ports.filter((p) => p.hostPort !== 8080) }) + 'delete table inet arcat_nosuch\n';
    const res = await run(inNs(NS.h, ['nft', '-f', '-']), { input: script, allowFailure: true });
    assert.notEqual(res.code, 0);
    assert.equal(await probe(NS.o, 'tcp', HOST_OUT, 8080), `c1 ${OUTSIDE}`);
    await fw.teardown();
  });
});
