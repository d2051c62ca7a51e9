import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StateStore } from '../../src/state/store.js';
import { migrateNetworkTables } from '../../src/network/network-schema.js';
import { DefaultIpam } from '../../src/network/ipam/default/default-ipam.js';
import { DriverRegistry } from '../../src/network/driver-registry.js';
import { NetworkManager, macFromIpv4, parseLink, parseUntil, type ContainerDirectory } from '../../src/network/network-manager.js';
import type { Firewall, FirewallState } from '../../src/network/firewall/firewall.js';
import { NullPortBinder, PortAllocator } from '../../src/network/ports/port-allocator.js';
import { NoDnsService } from '../../src/network/dns-service.js';
import type { BridgeSpec, InterfaceConfig, LinkInfo, LinkOps, VethSpec } from '../../src/network/link-ops.js';
import type { ContainerRecord } from '../../src/containers/container-record.js';
import { Conflict, Forbidden, InvalidParameter, NotFound, SystemError } from '../../src/errors.js';
import { isFirewallContributor, isLiveAttach, isReapplier } from '../../src/network/driver.js';

const tmp = mkdtempSync(join(tmpdir(), 'arca-netmgr-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** Remembers the last state it was given. */
class RecordingFirewall implements Firewall {
  readonly name = 'recording';
  last?: FirewallState;
  async apply(state: FirewallState): Promise<void> {
    this.last = state;
  }
  async teardown(): Promise<void> {}
}

/** Kernel operations recorded in memory; `failJoin` makes the next veth fail. */
class FakeLinkOps implements LinkOps {
  readonly bridges = new Map<string, BridgeSpec>();
  readonly veths = new Map<string, VethSpec>();
  readonly inside = new Map<string, InterfaceConfig>();
  readonly routes = new Map<string, string[]>();
  failVeth = false;
  async links(): Promise<LinkInfo[]> {
    return [
      ...[...this.bridges.keys()].map((name) => ({ name, kind: 'bridge', up: true })),
      ...[...this.veths.values()].map((v) => ({ name: v.hostName, kind: 'veth', master: v.bridge, up: true })),
    ];
  }
  async ensureBridge(spec: BridgeSpec): Promise<void> {
    this.bridges.set(spec.name, spec);
  }
  async deleteLink(name: string): Promise<void> {
    this.bridges.delete(name);
    const v = this.veths.get(name);
    if (v) this.inside.delete(`${v.ns}/${v.peerName}`);
    this.veths.delete(name);
  }
  async addVeth(spec: VethSpec): Promise<void> {
    await new Promise((r) => setTimeout(r, 1));
    if (this.failVeth) throw new Error('veth failed');
    this.veths.set(spec.hostName, spec);
  }
  async enslave(): Promise<void> {}
  readonly down = new Set<string>();
  async setUp(): Promise<void> {}
  async configureHostLink(): Promise<void> {}
  async setDown(name: string): Promise<void> {
    this.down.add(name);
  }
  async configureInside(ns: string, cfg: InterfaceConfig): Promise<void> {
    this.inside.set(`${ns}/${cfg.ifname}`, cfg);
    this.routes.set(`${ns}/${cfg.ifname}`, cfg.gateways);
  }
  async setDefaultRoutes(ns: string, ifname: string, gateways: string[]): Promise<void> {
    this.routes.set(`${ns}/${ifname}`, gateways);
  }
  async linksInside(ns: string): Promise<string[]> {
    return [...this.inside.keys()].filter((k) => k.startsWith(`${ns}/`)).map((k) => k.slice(ns.length + 1));
  }
}

let n = 0;
function fresh() {
  const root = join(tmp, `r${n++}`);
  const store = new StateStore(root);
  migrateNetworkTables(store.db);
  const ops = new FakeLinkOps();
  const byId = new Map<string, ContainerRecord>();
  const nsDir = join(root, 'ns');
  mkdirSync(nsDir, { recursive: true });
  const dir: ContainerDirectory = {
    find: (ref) => byId.get(ref) ?? [...byId.values()].find((c) => c.Name === ref),
    all: () => [...byId.values()],
    dir: (id) => join(root, 'containers', id),
    sandboxKey: (c) => join(nsDir, `ns-${c.Id.slice(0, 8)}`),
  };
  const fw = new RecordingFirewall();
  const mgr = new NetworkManager(store.db, new DefaultIpam(store.db), DriverRegistry.withBuiltins({ linkOps: ops, linkOpsIn: () => ops, root, execRoot: root }), dir, fw, new NoDnsService(), join(root, 'net'), new PortAllocator({ binder: new NullPortBinder() }));
  let seq = 0;
  const container = (name: string, mode = 'bridge', endpoints: Record<string, unknown> = {}, extra: Partial<ContainerRecord['HostConfig']> = {}): ContainerRecord => {
    const id = (++seq).toString(16).padStart(8, '0').repeat(8);
    const c = {
      Id: id,
      Name: name,
      Config: { Hostname: id.slice(0, 12), Domainname: '' },
      HostConfig: { NetworkMode: mode, Links: null, ExtraHosts: null, DnsSearch: [], DnsOptions: [], ...extra },
      NetworkingConfig: { EndpointsConfig: endpoints },
      State: { Status: 'created' },
    } as unknown as ContainerRecord;
    byId.set(id, c);
    store.db.prepare('INSERT INTO containers(id, name, doc) VALUES (?, ?, ?)').run(id, name, '{}');
    mkdirSync(dir.dir(id), { recursive: true });
    return c;
  };
  /** Starts a container as the container manager would: netns, attach, running. */
  const start = async (c: ContainerRecord): Promise<void> => {
    const ns = dir.sandboxKey(c);
    writeFileSync(ns, '');
    await mgr.attach(c, ns);
    writeFileSync(join(dir.dir(c.Id), 'hosts'), '');
    c.State.Status = 'running';
  };
  return { store, ops, mgr, fw, dir, container, start };
}

describe('NetworkManager', () => {
  it('predefined networks at start: bridge on arca0 with 172.17.0.1/16, host, none', async () => {
    const { mgr, ops } = fresh();
    await mgr.start();
    assert.deepEqual(mgr.all().map((x) => x.Name).sort(), ['bridge', 'host', 'none']);
    assert.deepEqual(ops.bridges.get('arca0')?.addresses, ['172.17.0.1/16']);
    await assert.rejects(mgr.remove('bridge'), (e: unknown) => e instanceof Forbidden && e.message === 'bridge is a pre-defined network and cannot be removed');
    await assert.rejects(mgr.create({ Name: 'h2', Driver: 'host' }), Forbidden);
    await assert.rejects(mgr.create({ Name: 'bridge' }), (e: unknown) => e instanceof Conflict && e.message === 'network with name bridge already exists');
  });

  it('create picks the next default pool, makes the bridge; rm removes both; unknown driver is 404', async () => {
    const { mgr, ops, fw } = fresh();
    await mgr.start();
    // Not a hex string: 'a' could match another network's id prefix.
    const { Id } = await mgr.create({ Name: 'net-a', Driver: '' });
    const a = mgr.get('net-a');
    assert.equal(a.Driver, 'bridge');
    assert.ok(ops.bridges.has(`br-${Id.slice(0, 12)}`));
    assert.ok(fw.last?.networks.some((f) => f.id === Id && f.bridge === `br-${Id.slice(0, 12)}`));
    assert.equal(mgr.get(Id.slice(0, 6)).Name, 'net-a');
    await assert.rejects(mgr.create({ Name: 'x', Driver: 'weird' }), (e: unknown) => e instanceof NotFound && e.message === 'plugin "weird" not found');
    await mgr.remove('net-a');
    assert.ok(!ops.bridges.has(`br-${Id.slice(0, 12)}`));
    assert.throws(() => mgr.get('net-a'), (e: unknown) => e instanceof NotFound && e.message === 'network net-a not found');
  });

  it('attach: eth0/eth1 in order, addresses, MAC from IPv4, default route by GwPriority then name', async () => {
    const { mgr, ops, dir, container, start } = fresh();
    await mgr.start();
    await mgr.create({ Name: 'zeta', IPAM: { Config: [{ Subnet: '10.1.0.0/24' }] } });
    await mgr.create({ Name: 'alpha', IPAM: { Config: [{ Subnet: '10.2.0.0/24' }] } });
    const c = container('c1', 'zeta', { zeta: {}, alpha: {} });
    mgr.validate(c);
    await start(c);
    const ns = `ns-${c.Id.slice(0, 8)}`;
    assert.deepEqual(ops.inside.get(`${ns}/eth0`)?.addresses, ['10.1.0.2/24']);
    assert.deepEqual(ops.inside.get(`${ns}/eth1`)?.addresses, ['10.2.0.2/24']);
    // Same priority: "alpha" sorts first and carries the default route.
    assert.deepEqual(ops.routes.get(`${ns}/eth1`), ['10.2.0.1']);
    assert.deepEqual(ops.routes.get(`${ns}/eth0`), []);
    const s = mgr.settings(c, '/x') as { Networks: Record<string, { IPAddress: string; MacAddress: string; Gateway: string }> };
    assert.equal(s.Networks['zeta']!.IPAddress, '10.1.0.2');
    assert.equal(s.Networks['zeta']!.MacAddress, '02:42:0a:01:00:02');
    assert.deepEqual(mgr.hostsEntries(c), [`10.1.0.2\t${c.Id.slice(0, 12)}`, `10.2.0.2\t${c.Id.slice(0, 12)}`]);

    // A higher priority connected live takes the default route from the others.
    await mgr.create({ Name: 'mid', IPAM: { Config: [{ Subnet: '10.3.0.0/24' }] } });
    await mgr.connect('mid', 'c1', { GwPriority: 5 });
    assert.deepEqual(ops.routes.get(`${ns}/eth2`), ['10.3.0.1']);
    assert.deepEqual(ops.routes.get(`${ns}/eth1`), []);
    await mgr.disconnect('mid', 'c1', false);
    assert.deepEqual(ops.routes.get(`${ns}/eth1`), ['10.2.0.1']);
    assert.ok(!ops.inside.has(`${ns}/eth2`));
    const hosts = readFileSync(join(dir.dir(c.Id), 'hosts'), 'utf8');
    assert.match(hosts, /^10\.2\.0\.2\t/m);
    assert.doesNotMatch(hosts, /10\.3\.0\./);
  });

  it('--dns becomes the DNS snapshot upstreams of that container; resolv.conf keeps 127.0.0.11 with search and options', async () => {
    const { mgr, container, start } = fresh();
    await mgr.start();
    await mgr.create({ Name: 'n-dns', IPAM: { Config: [{ Subnet: '10.4.0.0/24' }] } });
    const own = container('own', 'n-dns', { 'n-dns': {} }, { Dns: ['198.18.9.9'], DnsSearch: ['corp.example'], DnsOptions: ['ndots:2', 'edns0'] });
    const plain = container('plain', 'n-dns', { 'n-dns': {} }, { Dns: [] });
    for (const c of [own, plain]) {
      mgr.validate(c);
      await start(c);
    }
    const eps = mgr.dnsSnapshot().networks.find((x) => x.name === 'n-dns')!.endpoints;
    assert.deepEqual(eps.find((e) => e.containerId === own.Id)?.upstreams, ['198.18.9.9']);
    assert.equal(eps.find((e) => e.containerId === plain.Id)?.upstreams, undefined);
    const host = 'nameserver 10.0.0.53\nsearch host.example\noptions ndots:5 rotate\n';
    assert.equal(mgr.resolvConf(own, host), 'nameserver 127.0.0.11\nsearch corp.example\noptions ndots:2 edns0\n');
    assert.equal(mgr.resolvConf(plain, host), 'nameserver 127.0.0.11\nsearch host.example\noptions ndots:0 rotate\n');
  });

  it('connect/disconnect errors with Docker texts; stopped containers only record', async () => {
    const { mgr, ops, container, start } = fresh();
    await mgr.start();
    await mgr.create({ Name: 'n1' });
    const c = container('c1', 'n1');
    await start(c);
    await assert.rejects(mgr.connect('n1', 'c1', {}), (e: unknown) => e instanceof Forbidden && e.message === 'endpoint with name c1 already exists in network n1');
    await assert.rejects(mgr.connect('nope', 'c1', {}), (e: unknown) => e instanceof NotFound && e.message === 'network nope not found');
    await assert.rejects(mgr.connect('n1', 'ghost', {}), NotFound);
    // Docker answers with a plain error here: 500, not 403.
    await assert.rejects(mgr.disconnect('bridge', 'c1', false), (e: unknown) => e instanceof SystemError && e.status === 500 && /is not connected to network bridge/.test(e.message));
    await assert.rejects(mgr.connect('bridge', 'c1', { IPAMConfig: { IPv4Address: '172.17.0.9' } }), (e: unknown) => e instanceof InvalidParameter && /user specified IP address is supported on user defined networks only/.test(e.message));
    await assert.rejects(mgr.remove('n1'), (e: unknown) => e instanceof Forbidden && /has active endpoints/.test(e.message));
    const stopped = container('c2', 'none');
    await assert.rejects(mgr.connect('n1', 'c2', {}), (e: unknown) => e instanceof InvalidParameter && /private \(none\) mode/.test(e.message));
    const s2 = container('c3', 'bridge');
    const before = ops.veths.size;
    await mgr.connect('n1', 'c3', { Aliases: ['web'] });
    assert.equal(ops.veths.size, before, 'a stopped container gets no interface');
    const settings = mgr.settings(s2, '') as { Networks: Record<string, { Aliases: string[] | null; IPAddress: string }> };
    assert.deepEqual(Object.keys(settings.Networks), ['bridge', 'n1']);
    assert.deepEqual(settings.Networks['n1']!.Aliases, ['web']);
    assert.equal(settings.Networks['n1']!.IPAddress, '');
    void stopped;
  });

  it('a failed join leaves no endpoint and no address reservation', async () => {
    const { mgr, ops, store, container, start } = fresh();
    await mgr.start();
    await mgr.create({ Name: 'n1', IPAM: { Config: [{ Subnet: '10.4.0.0/24' }] } });
    const count = (): number => (store.db.prepare("SELECT COUNT(*) AS n FROM ipam_addresses WHERE owner != 'gateway'").get() as { n: number }).n;
    const c = container('c1', 'n1');
    ops.failVeth = true;
    await assert.rejects(start(c), /veth failed/);
    assert.equal(count(), 0);
    assert.equal((store.db.prepare('SELECT COUNT(*) AS n FROM net_endpoints').get() as { n: number }).n, 0);
    ops.failVeth = false;
    await start(c);
    assert.equal(count(), 1);
    await mgr.detach(c);
    assert.equal(count(), 0);
    assert.equal(ops.veths.size, 0);
  });

  it('a start that fails on its second network releases the first one\'s address too', async () => {
    const { mgr, store, container, start } = fresh();
    await mgr.start();
    await mgr.create({ Name: 'ok-net', IPAM: { Config: [{ Subnet: '10.7.0.0/24' }] } });
    await mgr.create({ Name: 'tiny', IPAM: { Config: [{ Subnet: '10.8.0.0/30' }] } }); // .1 gateway, .2 the only address
    await start(container('first', 'tiny'));
    const c = container('second', 'ok-net', { 'ok-net': {}, tiny: {} });
    await assert.rejects(start(c), /no available IPv4 addresses on this network's address pools: tiny/);
    const held = store.db.prepare("SELECT COUNT(*) AS n FROM ipam_addresses WHERE owner != 'gateway' AND network_id = ?").get(mgr.get('ok-net').Id) as { n: number };
    assert.equal(held.n, 0);
  });

  it('50 concurrent attaches on one network get 50 distinct addresses; removal of a container frees its rows', async () => {
    const { mgr, store, container, start } = fresh();
    await mgr.start();
    await mgr.create({ Name: 'many' });
    const cs = Array.from({ length: 50 }, (_, i) => container(`m${i}`, 'many'));
    await Promise.all(cs.map((c) => start(c)));
    const view = mgr.view(mgr.get('many'), true) as { Containers: Record<string, { IPv4Address: string }> };
    const addrs = Object.values(view.Containers).map((x) => x.IPv4Address);
    assert.equal(addrs.length, 50);
    assert.equal(new Set(addrs).size, 50);
    // Removing container rows (as `docker rm` does) cascades to attachments, endpoints and addresses.
    store.db.prepare('DELETE FROM containers').run();
    assert.equal((store.db.prepare("SELECT COUNT(*) AS n FROM ipam_addresses WHERE owner != 'gateway'").get() as { n: number }).n, 0);
  });

  it('static IP checks and validation at create', async () => {
    const { mgr, container } = fresh();
    await mgr.start();
    await mgr.create({ Name: 'auto' });
    await mgr.create({ Name: 'fixed', IPAM: { Config: [{ Subnet: '10.5.0.0/24' }] } });
    assert.throws(() => mgr.validate(container('a', 'auto', { auto: { IPAMConfig: { IPv4Address: '172.18.0.50' } } })), /user specified IP address is supported only when connecting to networks with user configured subnets/);
    assert.throws(() => mgr.validate(container('b', 'fixed', { fixed: { IPAMConfig: { IPv4Address: '10.6.0.5' } } })), /no configured subnet or ip-range contain the IP address 10\.6\.0\.5/);
    assert.throws(() => mgr.validate(container('c', 'missing')), (e: unknown) => e instanceof NotFound && e.message === 'network missing not found');
    assert.throws(() => mgr.validate(container('d', 'bridge', { bridge: { Aliases: ['x'] } })), /network-scoped aliases are only supported for user-defined networks/);
    assert.throws(() => mgr.validate(container('e', 'host', { host: {}, fixed: {} })), /host network/);
    mgr.validate(container('f', 'default', { default: {} }));
    mgr.validate(container('g', 'fixed', { fixed: { IPAMConfig: { IPv4Address: '10.5.0.9' }, MacAddress: '02:00:00:00:00:01' } }));
  });

  it('reconcile drops endpoints of containers that are not running and sweeps strays', async () => {
    const { mgr, ops, store, container, start } = fresh();
    await mgr.start();
    await mgr.create({ Name: 'n1' });
    const c = container('c1', 'n1');
    await start(c);
    c.State.Status = 'exited';
    ops.bridges.set('br-0123456789ab', { name: 'br-0123456789ab', addresses: [] });
    await mgr.reconcile();
    assert.equal((store.db.prepare('SELECT COUNT(*) AS n FROM net_endpoints').get() as { n: number }).n, 0);
    assert.ok(!ops.bridges.has('br-0123456789ab'));
    assert.ok(ops.bridges.has(`br-${mgr.get('n1').Id.slice(0, 12)}`));
  });

  it('published ports: reserved at attach on the gateway endpoint, in settings and firewall state, released at detach', async () => {
    const { mgr, fw, container, start } = fresh();
    await mgr.start();
    await mgr.create({ Name: 'web' });
    const withPorts = (name: string): ContainerRecord => {
      const c = container(name, 'web', {}, { PortBindings: { '80/tcp': [{ HostIp: '', HostPort: '8080' }] }, PublishAllPorts: false } as never);
      (c.Config as { ExposedPorts?: Record<string, object> }).ExposedPorts = { '80/tcp': {}, '53/udp': {} };
      return c;
    };
    const c1 = withPorts('w1');
    mgr.validate(c1);
    await start(c1);
    const s = mgr.settings(c1, '') as { Ports: Record<string, unknown>; PortsList?: unknown };
    assert.deepEqual(s.Ports, { '53/udp': null, '80/tcp': [{ HostIp: '0.0.0.0', HostPort: '8080' }, { HostIp: '::', HostPort: '8080' }] });
    assert.equal(JSON.parse(JSON.stringify(s)).PortsList, undefined, 'PortsList is not part of inspect');
    assert.ok(Array.isArray(s.PortsList));
    const ip = (mgr.settings(c1, '') as { Networks: Record<string, { IPAddress: string }> }).Networks['web']!.IPAddress;
    assert.deepEqual(
      fw.last?.ports.map((p) => [p.hostIp, p.hostPort, p.containerIp, p.containerPort]),
      [['0.0.0.0', 8080, ip, 80]],
    );
    const c2 = withPorts('w2');
    await assert.rejects(start(c2), (e: unknown) => e instanceof Conflict && /port is already allocated/.test(e.message));
    await mgr.detach(c1);
    c1.State.Status = 'exited';
    assert.deepEqual(fw.last?.ports, []);
    await start(c2);
    assert.equal(fw.last?.ports.length, 1);
    const bad = container('w3', 'web', {}, { PortBindings: { 'x/tcp': [] } } as never);
    assert.throws(() => mgr.validate(bad), InvalidParameter);
  });

  it('list filters and prune', async () => {
    const { mgr, container, start } = fresh();
    await mgr.start();
    await mgr.create({ Name: 'l1', Labels: { a: '1' } });
    await mgr.create({ Name: 'l2' });
    await start(container('c', 'l2'));
    const names = (f: Record<string, string[]>): string[] => mgr.list(new Map(Object.entries(f))).map((x) => x.Name).sort();
    assert.deepEqual(names({ type: ['custom'] }), ['l1', 'l2']);
    assert.deepEqual(names({ label: ['a=1'] }), ['l1']);
    assert.deepEqual(names({ dangling: ['true'] }), ['l1']);
    assert.deepEqual(names({ driver: ['null'] }), ['none']);
    assert.throws(() => mgr.list(new Map([['type', ['x']]])), InvalidParameter);
    assert.deepEqual((await mgr.prune(new Map())).NetworksDeleted, ['l1']);
  });
});

describe('network helpers', () => {
  it('MAC from IPv4, links, until', () => {
    assert.equal(macFromIpv4('172.17.0.2'), '02:42:ac:11:00:02');
    assert.deepEqual(parseLink('/db:/web/database'), { name: 'db', alias: 'database' });
    assert.deepEqual(parseLink('db:alias'), { name: 'db', alias: 'alias' });
    assert.deepEqual(parseLink('db'), { name: 'db', alias: 'db' });
    assert.equal(parseUntil('1h30m', 10_000_000), 10_000_000 - 5_400_000);
    assert.equal(parseUntil('1700000000'), 1_700_000_000_000);
    assert.throws(() => parseUntil('soon'), InvalidParameter);
  });

  it('bridge driver capabilities', () => {
    const reg = DriverRegistry.withBuiltins({ linkOps: new FakeLinkOps(), linkOpsIn: () => new FakeLinkOps(), root: '/nonexistent', execRoot: '/nonexistent' });
    const b = reg.get('');
    assert.equal(b.name, 'bridge');
    assert.ok(isLiveAttach(b) && isReapplier(b) && isFirewallContributor(b));
    assert.ok(!isLiveAttach(reg.get('null')));
    assert.ok(isLiveAttach(reg.get('ovn')) && isReapplier(reg.get('ovn')));
    assert.throws(() => reg.get('overlay'), (e: unknown) => e instanceof NotFound && e.message === 'plugin "overlay" not found');
  });
});
