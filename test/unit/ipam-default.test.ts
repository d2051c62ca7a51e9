import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StateStore } from '../../src/state/store.js';
import { migrateNetworkTables } from '../../src/network/network-schema.js';
import { DefaultIpam, defaultV4Pools } from '../../src/network/ipam/default/default-ipam.js';
import { Prefix, formatIp, parseIp } from '../../src/network/ipam/ip-address.js';
import type { IpamPool } from '../../src/network/ipam/ipam.js';
import { Forbidden, InvalidParameter } from '../../src/errors.js';
import { Unavailable } from '../../src/network/network-errors.js';

const tmp = mkdtempSync(join(tmpdir(), 'arca-ipam-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

let n = 0;
function fresh(): { store: StateStore; ipam: DefaultIpam; net: (id: string) => void } {
  const store = new StateStore(join(tmp, `r${n++}`));
  migrateNetworkTables(store.db);
  const ipam = new DefaultIpam(store.db);
  const net = (id: string): void => {
    store.db.prepare('INSERT INTO networks(id, name, doc) VALUES (?, ?, ?)').run(id, id, '{}');
  };
  return { store, ipam, net };
}

const P = (s: string): Prefix => Prefix.parse(s)!;

describe('ip addresses', () => {
  it('parses and formats IPv4 and IPv6 canonically', () => {
    assert.equal(formatIp(parseIp('10.1.2.3')!), '10.1.2.3');
    assert.equal(parseIp('10.01.2.3'), undefined);
    assert.equal(parseIp('256.1.1.1'), undefined);
    assert.equal(formatIp(parseIp('2001:DB8:0:0:0:0:0:1')!), '2001:db8::1');
    assert.equal(formatIp(parseIp('2001:db8:0:1:0:0:0:0')!), '2001:db8:0:1::');
    assert.equal(formatIp(parseIp('::')!), '::');
    assert.equal(formatIp(parseIp('::ffff:1.2.3.4')!), '::ffff:102:304');
    assert.equal(parseIp('1::2::3'), undefined);
  });

  it('prefix math: masked, contains, overlaps', () => {
    const p = P('172.18.5.0/16');
    assert.equal(p.isMasked(), false);
    assert.equal(p.masked().toString(), '172.18.0.0/16');
    assert.ok(p.contains(parseIp('172.18.255.255')!));
    assert.ok(!p.contains(parseIp('172.19.0.0')!));
    assert.ok(P('10.0.0.0/8').overlaps(P('10.5.0.0/16')));
    assert.ok(!P('10.0.0.0/16').overlaps(P('10.1.0.0/16')));
    assert.ok(!P('10.0.0.0/8').overlaps(P('fd00::/8')));
    assert.equal(P('fd00::/64').last().value - P('fd00::/64').first().value, (1n << 64n) - 1n);
    assert.equal(Prefix.parse('10.0.0.0/33'), undefined);
  });
});

describe('default IPAM: pools', () => {
  it('has Docker default pools: 172.18–31/16 then 192.168/20s', () => {
    const pools = defaultV4Pools().map(String);
    assert.equal(pools[0], '172.18.0.0/16');
    assert.equal(pools[13], '172.31.0.0/16');
    assert.equal(pools[14], '192.168.0.0/20');
    assert.equal(pools.length, 14 + 16);
  });

  it('skips pools of existing networks and routed subnets', () => {
    const { ipam } = fresh();
    const pools = ipam.choosePools({ config: [], ipv4: true, ipv6: false, taken: [P('172.18.0.0/16')], hostRoutes: [P('172.19.3.0/24')] });
    assert.equal(pools.length, 1);
    assert.equal(pools[0]!.subnet, '172.20.0.0/16');
    assert.equal(pools[0]!.gateway, '172.20.0.1');
    assert.equal(pools[0]!.userConfigured, false);
  });

  it('predefined bridge takes 172.17.0.0/16', () => {
    const { ipam } = fresh();
    const [p] = ipam.choosePools({ config: [], ipv4: true, ipv6: false, taken: [], hostRoutes: [], defaultV4: '172.17.0.0/16' });
    assert.equal(p!.subnet, '172.17.0.0/16');
  });

  it('exhaustion of the defaults is Docker\'s message', () => {
    const { ipam } = fresh();
    assert.throws(
      () => ipam.choosePools({ config: [], ipv4: true, ipv6: false, taken: [P('172.16.0.0/12'), P('192.168.0.0/16')], hostRoutes: [] }),
      (e: unknown) => e instanceof Unavailable && /could not find an available, non-overlapping IPv4 address pool/.test(e.message),
    );
  });

  it('user subnets: overlap refused with Docker\'s message, several subnets, IPv6', () => {
    const { ipam } = fresh();
    assert.throws(
      () => ipam.choosePools({ config: [{ Subnet: '10.1.2.0/24' }], ipv4: true, ipv6: false, taken: [P('10.1.0.0/16')], hostRoutes: [] }),
      (e: unknown) => e instanceof Forbidden && e.message === 'invalid pool request: Pool overlaps with other one on this address space',
    );
    assert.throws(
      () => ipam.choosePools({ config: [{ Subnet: '10.1.0.0/16' }, { Subnet: '10.1.5.0/24' }], ipv4: true, ipv6: false, taken: [], hostRoutes: [] }),
      Forbidden,
    );
    const pools = ipam.choosePools({
      config: [{ Subnet: '10.9.0.0/16', Gateway: '10.9.0.254', IPRange: '10.9.1.0/24' }, { Subnet: '10.8.0.0/24' }, { Subnet: 'fd00:1::/64' }],
      ipv4: true,
      ipv6: true,
      taken: [],
      hostRoutes: [P('10.8.0.0/16')], // routes only steer the defaults
    });
    assert.deepEqual(pools.map((p) => p.subnet), ['10.9.0.0/16', '10.8.0.0/24', 'fd00:1::/64']);
    assert.equal(pools[0]!.gateway, '10.9.0.254');
    assert.equal(pools[0]!.range, '10.9.1.0/24');
    assert.equal(pools[2]!.gateway, 'fd00:1::1');
  });

  it('IPv6 without a subnet gets a ULA /64 that stays the same per daemon', () => {
    const { ipam } = fresh();
    const a = ipam.choosePools({ config: [], ipv4: true, ipv6: true, taken: [], hostRoutes: [] });
    assert.equal(a.length, 2);
    assert.match(a[1]!.subnet, /^fd[0-9a-f]{2}:[0-9a-f]{1,4}:[0-9a-f]{1,4}::\/64$/);
    const b = ipam.choosePools({ config: [], ipv4: false, ipv6: true, taken: [P(a[1]!.subnet)], hostRoutes: [] });
    assert.equal(b.length, 1);
    assert.notEqual(b[0]!.subnet, a[1]!.subnet);
    assert.equal(P(b[0]!.subnet).addr.value >> 80n, P(a[1]!.subnet).addr.value >> 80n);
  });
});

describe('default IPAM: validation texts', () => {
  const { ipam } = fresh();
  const msg = (cfg: Parameters<DefaultIpam['validate']>[0], v6 = false): string => {
    try {
      ipam.validate(cfg, v6);
    } catch (e) {
      assert.ok(e instanceof InvalidParameter);
      return (e as Error).message;
    }
    return '';
  };
  it('malformed subnet, unmasked subnet', () => {
    assert.equal(msg([{ Subnet: '10.0.0.0/33' }]), 'invalid network config:\n* invalid subnet 10.0.0.0/33: invalid CIDR block notation');
    assert.equal(msg([{ Subnet: '10.0.0.1/24' }]), 'invalid network config:\n* invalid subnet 10.0.0.1/24: it should be 10.0.0.0/24');
  });
  it('gateway and ip-range outside the subnet, aux addresses', () => {
    assert.equal(msg([{ Subnet: '10.0.0.0/24', Gateway: '10.0.1.1' }]), "invalid network config:\n* invalid gateway 10.0.1.1: parent subnet 10.0.0.0/24 doesn't contain this address");
    assert.equal(msg([{ Subnet: '10.0.0.0/24', IPRange: '10.0.2.0/25' }]), "invalid network config:\n* invalid ip-range 10.0.2.0/25: parent subnet 10.0.0.0/24 doesn't contain ip-range");
    assert.match(msg([{ Subnet: '10.0.0.0/24', AuxiliaryAddresses: { a: 'x' } }]), /invalid auxiliary address a: invalid address/);
    assert.equal(msg([{ Subnet: '10.0.0.0/24', Gateway: '10.0.0.2', IPRange: '10.0.0.128/25', AuxiliaryAddresses: { r: '10.0.0.3' } }]), '');
  });
  it('IPv6 subnets are only checked with --ipv6', () => {
    assert.equal(msg([{ Subnet: 'fd00::1/64' }]), '');
    assert.match(msg([{ Subnet: 'fd00::1/64' }], true), /it should be fd00::\/64/);
  });
});

describe('default IPAM: addresses', () => {
  const pool = (subnet: string, range = subnet): IpamPool => ({
    family: subnet.includes(':') ? 6 : 4,
    subnet,
    range,
    gateway: formatIp(P(subnet).nth(1n)),
    aux: {},
    userConfigured: true,
    userRange: range !== subnet,
    userGateway: false,
  });

  it('hands out the lowest free address, skipping gateway and aux; release and reuse', () => {
    const { ipam, net } = fresh();
    net('n1');
    const p = { ...pool('10.5.0.0/24'), aux: { x: '10.5.0.3' } };
    ipam.reservePools('n1', [p]);
    assert.equal(ipam.requestAddress('n1', p, 'e1'), '10.5.0.2');
    assert.equal(ipam.requestAddress('n1', p, 'e2'), '10.5.0.4');
    ipam.releaseOwner('n1', 'e1');
    assert.equal(ipam.requestAddress('n1', p, 'e3'), '10.5.0.2');
  });

  it('respects the ip-range', () => {
    const { ipam, net } = fresh();
    net('n1');
    const p = pool('10.6.0.0/16', '10.6.7.0/24');
    ipam.reservePools('n1', [p]);
    assert.equal(ipam.requestAddress('n1', p, 'e1'), '10.6.7.0');
    assert.equal(ipam.requestAddress('n1', p, 'e2'), '10.6.7.1');
  });

  it('static addresses: taken → "Address already in use"', () => {
    const { ipam, net } = fresh();
    net('n1');
    const p = pool('10.7.0.0/24');
    ipam.reservePools('n1', [p]);
    assert.equal(ipam.requestAddress('n1', p, 'e1', '10.7.0.50'), '10.7.0.50');
    assert.throws(() => ipam.requestAddress('n1', p, 'e2', '10.7.0.50'), (e: unknown) => e instanceof Forbidden && e.message === 'Address already in use');
    assert.throws(() => ipam.requestAddress('n1', p, 'e2', '10.7.0.1'), Forbidden);
    assert.throws(() => ipam.requestAddress('n1', p, 'e2', '10.8.0.5'), InvalidParameter);
  });

  it('exhaustion says no available addresses', () => {
    const { ipam, net } = fresh();
    net('n1');
    const p = pool('10.9.0.0/29'); // .1 gateway, .2-.6 usable, .7 broadcast
    ipam.reservePools('n1', [p]);
    const got = [1, 2, 3, 4, 5].map((i) => ipam.requestAddress('n1', p, `e${i}`));
    assert.deepEqual(got, ['10.9.0.2', '10.9.0.3', '10.9.0.4', '10.9.0.5', '10.9.0.6']);
    assert.throws(() => ipam.requestAddress('n1', p, 'e9'), (e: unknown) => e instanceof Unavailable && /no available IPv4 addresses/.test(e.message));
  });

  it('IPv6 allocation', () => {
    const { ipam, net } = fresh();
    net('n1');
    const p = pool('fd00:5::/64');
    ipam.reservePools('n1', [p]);
    assert.equal(ipam.requestAddress('n1', p, 'e1'), 'fd00:5::2');
  });

  it('two stores on one database file never hand out one address twice (UNIQUE + transaction)', () => {
    const { store, ipam, net } = fresh();
    net('n1');
    const p = pool('10.10.0.0/24');
    ipam.reservePools('n1', [p]);
    // A second connection: SQLite serialises the write transactions; the primary key catches the rest.
    const other = new StateStore(store.db.name.replace(/\/arca\.db$/, ''));
    const ipam2 = new DefaultIpam(other.db);
    const got: string[] = [];
    for (let i = 0; i < 50; i++) got.push((i % 2 ? ipam : ipam2).requestAddress('n1', p, `e${i}`));
    assert.equal(new Set(got).size, 50);
    other.close();
  });

  it('dropping the network frees everything (cascade)', () => {
    const { store, ipam, net } = fresh();
    net('n1');
    const p = pool('10.11.0.0/24');
    ipam.reservePools('n1', [p]);
    ipam.requestAddress('n1', p, 'e1');
    store.db.prepare('DELETE FROM networks WHERE id = ?').run('n1');
    assert.equal((store.db.prepare('SELECT COUNT(*) AS n FROM ipam_addresses').get() as { n: number }).n, 0);
  });
});
