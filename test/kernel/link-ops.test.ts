/**
 * Both LinkOps backends (iproute2 and rtnetlink through the native addon) against the real
 * kernel, in throwaway namespaces: "h" stands for the daemon's namespace, "c" for a container's.
 * The same scenario runs on each, and what the kernel holds afterwards is read back with `ip -j`,
 * so the two backends are held to one observable behaviour.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { IpLinkOps } from '../../src/network/ip-link-ops.js';
import { bridgeMac, type LinkOps } from '../../src/network/link-ops.js';
import { NetlinkLinkOps } from '../../src/network/netlink-link-ops.js';
import { loadNative } from '../../src/sys/native.js';
import { run } from '../../src/sys/runner.js';

const native = loadNative();
const skip = process.getuid?.() !== 0 ? 'needs root' : false;

interface IpAddr {
  ifname: string;
  operstate?: string;
  flags: string[];
  address?: string;
  mtu: number;
  master?: string;
  addr_info: Array<{ family: string; local: string; prefixlen: number }>;
}

async function ipj(ns: string, ...args: string[]): Promise<unknown[]> {
  const r = await run(['ip', '-n', ns, '-j', ...args]);
  return JSON.parse(r.stdout || '[]') as unknown[];
}

function backends(): Array<{ name: string; make: (hostNs: string) => LinkOps; skip: string | false }> {
  return [
    { name: 'iproute2', make: (h) => new IpLinkOps(h), skip },
    {
      name: 'netlink',
      make: (h) => new NetlinkLinkOps(native.helpers!, h),
      skip: skip || (native.helpers ? false : `native addon not built: ${native.reason}`),
    },
  ];
}

for (const b of backends()) {
  describe(`LinkOps (${b.name})`, { skip: b.skip }, () => {
    const tag = `alo${randomBytes(3).toString('hex')}`;
    const H = `${tag}-h`;
    const C = `${tag}-c`;
    let ops: LinkOps;

    before(async () => {
      for (const ns of [H, C]) {
        await run(['ip', 'netns', 'add', ns]);
        await run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
      }
      ops = b.make(H);
    });
    after(async () => {
      (ops as { close?: () => void } | undefined)?.close?.();
      for (const ns of [H, C]) await run(['ip', 'netns', 'del', ns], { allowFailure: true });
    });

    it('creates a bridge idempotently, with MTU, addresses and br_netfilter off', async () => {
      const spec = { name: 'br-test', addresses: ['198.18.7.1/24', 'fd00:7::1/64'], mtu: 1400, nfCallIptables: false };
      await ops.ensureBridge(spec);
      await ops.ensureBridge(spec);
      const [br] = (await ipj(H, '-d', 'addr', 'show', 'dev', 'br-test')) as Array<IpAddr & { linkinfo: { info_data: { nf_call_iptables: number } } }>;
      assert.ok(br);
      assert.equal(br.mtu, 1400);
      assert.ok(br.flags.includes('UP'));
      const addrs = br.addr_info.filter((a) => !a.local.startsWith('fe80')).map((a) => `${a.local}/${a.prefixlen}`);
      assert.deepEqual(addrs.sort(), ['198.18.7.1/24', 'fd00:7::1/64']);
      assert.equal(br.linkinfo.info_data.nf_call_iptables, 0);
      const links = await ops.links();
      assert.deepEqual(links.find((l) => l.name === 'br-test'), { name: 'br-test', kind: 'bridge', master: undefined, up: true });
    });

    it('adds a veth whose peer is born inside the namespace, then configures it there', async () => {
      await ops.addVeth({ hostName: 'vxtest', bridge: 'br-test', ns: C, peerName: 'eth0', mac: '02:42:c6:12:07:02', mtu: 1400 });
      await ops.configureInside(C, { ifname: 'eth0', addresses: ['198.18.7.2/24', 'fd00:7::2/64'], gateways: ['198.18.7.1', 'fd00:7::1'] });
      const host = (await ops.links()).find((l) => l.name === 'vxtest');
      assert.deepEqual(host, { name: 'vxtest', kind: 'veth', master: 'br-test', up: true });
      const [eth0] = (await ipj(C, 'addr', 'show', 'dev', 'eth0')) as IpAddr[];
      assert.ok(eth0);
      assert.equal(eth0.address, '02:42:c6:12:07:02');
      assert.equal(eth0.mtu, 1400);
      assert.ok(eth0.flags.includes('UP'));
      const addrs = eth0.addr_info.filter((a) => !a.local.startsWith('fe80')).map((a) => `${a.local}/${a.prefixlen}`);
      assert.deepEqual(addrs.sort(), ['198.18.7.2/24', 'fd00:7::2/64']);
      const r4 = (await ipj(C, 'route', 'show', 'default')) as Array<{ gateway: string; dev: string }>;
      assert.deepEqual(r4.map((r) => [r.gateway, r.dev]), [['198.18.7.1', 'eth0']]);
      const r6 = (await ipj(C, '-6', 'route', 'show', 'default')) as Array<{ gateway: string; dev: string }>;
      assert.deepEqual(r6.map((r) => [r.gateway, r.dev]), [['fd00:7::1', 'eth0']]);
      assert.deepEqual((await ops.linksInside(C)).sort(), ['eth0', 'lo']);
      // Traffic crosses it.
      await run(['nsenter', `--net=/run/netns/${C}`, 'busybox', 'ping', '-c', '1', '-W', '2', '198.18.7.1']);
    });

    it('a bridge keeps its own MAC whatever ports come and go (the gateway\'s MAC never moves under its neighbours)', async () => {
      const mac = async (): Promise<string> => ((await ipj(H, 'link', 'show', 'dev', 'br-test')) as IpAddr[])[0]!.address!;
      assert.equal(await mac(), bridgeMac('br-test'));
      // A port whose MAC is lower than any other would become the bridge's MAC on a bridge left to itself.
      await run(['ip', '-n', H, 'link', 'add', 'vxlow', 'address', '02:00:00:00:00:01', 'type', 'veth', 'peer', 'name', 'vxlowp']);
      await run(['ip', '-n', H, 'link', 'set', 'vxlow', 'master', 'br-test', 'up']);
      assert.equal(await mac(), bridgeMac('br-test'), 'with a port of a lower MAC');
      await run(['ip', '-n', H, 'link', 'del', 'vxlow']);
      assert.equal(await mac(), bridgeMac('br-test'), 'after it left');
      await ops.ensureBridge({ name: 'br-test', addresses: ['198.18.7.1/24', 'fd00:7::1/64'], mtu: 1400, nfCallIptables: false });
      assert.equal(await mac(), bridgeMac('br-test'), 'ensured again');
      assert.match(bridgeMac('br-test'), /^[0-9a-f][26ae](:[0-9a-f]{2}){5}$/, 'locally administered unicast');
      assert.notEqual(bridgeMac('br-test'), bridgeMac('br-test2'));
    });

    it('moves and removes default routes', async () => {
      await ops.setDefaultRoutes(C, 'eth0', []);
      assert.deepEqual(await ipj(C, 'route', 'show', 'default'), []);
      assert.deepEqual(await ipj(C, '-6', 'route', 'show', 'default'), []);
      await ops.setDefaultRoutes(C, 'eth0', []); // nothing left to remove is fine
      await ops.setDefaultRoutes(C, 'eth0', ['198.18.7.1']);
      const r4 = (await ipj(C, 'route', 'show', 'default')) as Array<{ gateway: string }>;
      assert.deepEqual(r4.map((r) => r.gateway), ['198.18.7.1']);
    });

    it('re-enslaves a link, deletes links, and treats gone as done', async () => {
      await run(['ip', '-n', H, 'link', 'set', 'vxtest', 'nomaster']);
      await ops.enslave('vxtest', 'br-test');
      assert.equal((await ops.links()).find((l) => l.name === 'vxtest')?.master, 'br-test');
      await ops.deleteLink('vxtest');
      await ops.deleteLink('vxtest');
      assert.deepEqual((await ops.linksInside(C)).sort(), ['lo']);
      await ops.deleteLink('br-test');
      assert.equal((await ops.links()).find((l) => l.name === 'br-test'), undefined);
    });

    it('an unnumbered link without a bridge: peer brought up apart, addresses and onlink routes', async () => {
      await ops.addVeth({ hostName: 'ontest', ns: C, peerName: 'ottest' });
      const inC = b.make(C);
      try {
        await inC.setUp('ottest');
        await inC.configureHostLink('ottest', ['169.254.100.2/30', '198.18.9.1/24'], []);
      } finally {
        (inC as { close?: () => void }).close?.();
      }
      await ops.configureHostLink('ontest', ['169.254.100.1/32', 'fdac:a5ca::1/128'], [
        { prefix: '198.18.9.0/24', via: '169.254.100.2' },
        { prefix: 'fd00:9::/64', via: 'fdac:a5ca::2' },
      ]);
      // Twice: replace, not add.
      await ops.configureHostLink('ontest', ['169.254.100.1/32'], [{ prefix: '198.18.9.0/24', via: '169.254.100.2' }]);
      const host = (await ops.links()).find((l) => l.name === 'ontest');
      assert.deepEqual(host, { name: 'ontest', kind: 'veth', master: undefined, up: true });
      const r4 = (await ipj(H, 'route', 'show', '198.18.9.0/24')) as Array<{ gateway: string; dev: string; flags: string[] }>;
      assert.deepEqual(r4.map((r) => [r.gateway, r.dev, r.flags.includes('onlink')]), [['169.254.100.2', 'ontest', true]]);
      const r6 = (await ipj(H, '-6', 'route', 'show', 'fd00:9::/64')) as Array<{ gateway: string; dev: string }>;
      assert.deepEqual(r6.map((r) => [r.gateway, r.dev]), [['fdac:a5ca::2', 'ontest']]);
      await run(['nsenter', `--net=/run/netns/${H}`, 'busybox', 'ping', '-c', '1', '-W', '2', '198.18.9.1']);
      await ops.deleteLink('ontest');
    });

    it('names what failed', async () => {
      await assert.rejects(ops.addVeth({ hostName: 'vxbad', bridge: 'no-such-br', ns: C, peerName: 'eth0', mac: '02:42:c6:12:07:09' }));
      await assert.rejects(ops.configureInside(C, { ifname: 'eth9', addresses: ['198.18.7.9/24'], gateways: [] }), /eth9/);
      assert.deepEqual(await ops.linksInside(`${tag}-nonexistent`), []);
    });
  });
}
