/**
 * The nft ruleset as text: golden files under test/golden/ (regenerate with
 * `UPDATE_GOLDEN=1 node --test dist/test/unit/firewall-render.test.js` and review the diff),
 * plus the properties every rendering must have.
 */
import { afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InvalidParameter, SystemError } from '../../src/errors.js';
import type { FirewallNetwork, FirewallState } from '../../src/network/firewall/firewall.js';
import { requiredSysctls } from '../../src/network/firewall/nftables/host-sysctls.js';
import { NftFirewall } from '../../src/network/firewall/nftables/nft-firewall.js';
import { renderTeardown } from '../../src/network/firewall/nftables/nft-ruleset.js';
import { NoneFirewall } from '../../src/network/firewall/none/none-firewall.js';
import { createFirewall } from '../../src/network/firewall/firewall-registry.js';
import { CommandError, setRunner } from '../../src/sys/runner.js';
import { setNative } from '../../src/sys/native.js';

/** dist/test/unit → repository root. */
const GOLDEN = join(resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..'), 'test', 'golden');

const defaultBridge: FirewallNetwork = {
  id: '4f1c2a9e8b7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928170615243',
  bridge: 'arca0',
  subnets4: ['172.17.0.0/16'],
  subnets6: [],
  gateways: ['172.17.0.1'],
  internal: false,
  icc: true,
  masquerade: true,
};

const userNet: FirewallNetwork = {
  id: '9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b',
  bridge: 'br-9a8b7c6d5e4f',
  subnets4: ['172.18.0.0/16'],
  subnets6: ['fd00:dead:beef::/64'],
  gateways: ['172.18.0.1', 'fd00:dead:beef::1'],
  internal: false,
  icc: false,
  masquerade: true,
  protectHost: true,
};

const internalNet: FirewallNetwork = {
  id: '1234567890ab1234567890ab1234567890ab1234567890ab1234567890ab1234',
  bridge: 'br-1234567890ab',
  subnets4: ['172.19.0.0/16'],
  subnets6: [],
  gateways: ['172.19.0.1'],
  internal: true,
  icc: true,
  masquerade: true,
};

const noMasq: FirewallNetwork = {
  id: 'ffff0000ffff0000ffff0000ffff0000ffff0000ffff0000ffff0000ffff0000',
  bridge: 'br-ffff0000ffff',
  subnets4: ['192.168.0.0/20'],
  subnets6: [],
  gateways: ['192.168.0.1'],
  internal: false,
  icc: true,
  masquerade: false,
};

const web = 'c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00';
const dns = 'd15c0d15c0d15c0d15c0d15c0d15c0d15c0d15c0d15c0d15c0d15c0d15c0d15c';

const STATES: Record<string, FirewallState> = {
  empty: { networks: [], ports: [] },
  'default-bridge': {
    networks: [defaultBridge],
    ports: [
      { endpointId: web, networkId: defaultBridge.id, proto: 'tcp', hostIp: '0.0.0.0', hostPort: 8080, containerIp: '172.17.0.2', containerPort: 80 },
    ],
  },
  'many-networks': {
    dnsPort: 5353,
    // Deliberately out of order: the rendering sorts.
    networks: [userNet, internalNet, defaultBridge, noMasq],
    ports: [
      { endpointId: web, networkId: userNet.id, proto: 'tcp', hostIp: '::', hostPort: 8443, containerIp: 'fd00:dead:beef::2', containerPort: 443 },
      { endpointId: web, networkId: userNet.id, proto: 'tcp', hostIp: '0.0.0.0', hostPort: 8443, containerIp: '172.18.0.2', containerPort: 443 },
      { endpointId: dns, networkId: userNet.id, proto: 'udp', hostIp: '127.0.0.1', hostPort: 5300, containerIp: '172.18.0.3', containerPort: 53 },
      { endpointId: dns, networkId: userNet.id, proto: 'tcp', hostIp: '192.0.2.10', hostPort: 5300, containerIp: '172.18.0.3', containerPort: 53 },
      { endpointId: web, networkId: defaultBridge.id, proto: 'sctp', hostIp: '', hostPort: 9999, containerIp: '172.17.0.5', containerPort: 9999 },
      // Internal networks publish nothing: no rule for this one.
      { endpointId: dns, networkId: internalNet.id, proto: 'tcp', hostIp: '', hostPort: 7000, containerIp: '172.19.0.2', containerPort: 7000 },
    ],
  },
};

describe('nft ruleset golden files', () => {
  for (const [name, state] of Object.entries(STATES)) {
    it(`renders ${name}`, () => {
      const text = new NftFirewall({ tablePrefix: 'arca' }).render(state);
      const file = join(GOLDEN, `firewall-${name}.nft`);
      if (process.env.UPDATE_GOLDEN) writeFileSync(file, text);
      assert.equal(text, readFileSync(file, 'utf8'));
    });
  }
});

describe('nft ruleset properties', () => {
  const text = new NftFirewall({ tablePrefix: 'arca' }).render(STATES['many-networks']!);
  const lines = text.split('\n').map((l) => l.trim());

  it('tags every rule with its network or endpoint', () => {
    const rules = lines.filter(
      (l) => l && !l.startsWith('#') && !/^(table|chain|delete table|type|})/.test(l) && !l.endsWith('{}'),
    );
    assert.ok(rules.length > 20);
    for (const r of rules) assert.match(r, / comment "arca:(net|ep):[0-9a-f]{12}"$/, r);
  });

  it('replaces the tables in one script: create, delete, define (the bridge one only for policies)', () => {
    const heads = lines.filter((l) => /^(table|delete table)/.test(l));
    assert.deepEqual(heads, [
      'table inet arca {}',
      'delete table inet arca',
      'table inet arca {',
      'table inet arca_nat {}',
      'delete table inet arca_nat',
      'table inet arca_nat {',
      'table bridge arca_br {}',
      'delete table bridge arca_br',
    ]);
  });

  it('sends traffic into a network through its "in" chain before any "out" chain accepts it', () => {
    const fwd = lines.slice(lines.indexOf('chain forward {'), lines.indexOf('}', lines.indexOf('chain forward {')));
    const firstOut = fwd.findIndex((l) => l.startsWith('iifname'));
    const lastIn = fwd.map((l) => l.startsWith('oifname')).lastIndexOf(true);
    assert.ok(lastIn < firstOut);
  });

  it('does not depend on the order of networks and ports', () => {
    const s = STATES['many-networks']!;
    const shuffled = { ...s, networks: [...s.networks].reverse(), ports: [...s.ports].reverse() };
    assert.equal(new NftFirewall({ tablePrefix: 'arca' }).render(shuffled), text);
  });

  it('teardown deletes every table without failing when they are missing', () => {
    assert.equal(
      renderTeardown('arca'),
      'table inet arca {}\ndelete table inet arca\ntable inet arca_nat {}\ndelete table inet arca_nat\ntable bridge arca_br {}\ndelete table bridge arca_br\n',
    );
  });

  it('leaves a network\'s tunnel datagrams out of conntrack, and zeroes IPv4 UDP checksums into a switch that asks for it', () => {
    const base = STATES['default-bridge']!;
    const net = { ...base.networks[0]!, untrackedUdp: { cidrs: ['169.254.192.0/18'], port: 51820 }, zeroUdpChecksums: true };
    const out = new NftFirewall({ tablePrefix: 'arca' }).render({ ...base, networks: [net] });
    assert.match(out, new RegExp(`iifname "${net.bridge}" ip saddr \\{ 169\\.254\\.192\\.0/18 \\} ip daddr \\{ 169\\.254\\.192\\.0/18 \\} udp dport 51820 notrack`));
    assert.match(out, new RegExp(`oifname "${net.bridge}" meta nfproto ipv4 udp checksum set 0`));
    assert.match(out, /type filter hook postrouting priority 200;/);
    assert.throws(() => new NftFirewall({ tablePrefix: 'arca' }).render({ ...base, networks: [{ ...net, untrackedUdp: { cidrs: ['x'], port: 51820 } }] }));
  });

  it('refuses bad state before anything is loaded', () => {
    const fw = new NftFirewall({ tablePrefix: 'arca' });
    const base = STATES['default-bridge']!;
    const port = base.ports[0]!;
    const bad: FirewallState[] = [
      { ...base, ports: [{ ...port, networkId: 'nope' }] },
      { ...base, ports: [{ ...port, hostIp: '::' }] },
      { ...base, ports: [{ ...port, hostIp: 'fe80::1' }] },
      { ...base, ports: [{ ...port, hostPort: 0 }] },
      { ...base, ports: [{ ...port, containerIp: 'x' }] },
      { ...base, networks: [{ ...defaultBridge, subnets4: ['172.17.0.0/33'] }] },
      { ...base, networks: [{ ...defaultBridge, bridge: 'a"b' }] },
      { ...base, networks: [defaultBridge, { ...noMasq, bridge: 'arca0' }] },
    ];
    for (const s of bad) assert.throws(() => fw.render(s), InvalidParameter, JSON.stringify(s));
    assert.throws(() => new NftFirewall({ tablePrefix: 'arca-x; flush ruleset' }), InvalidParameter);
  });
});

describe('NftFirewall.apply / teardown (exec fallback, without the native addon)', () => {
  beforeEach(() => setNative(null));
  afterEach(() => {
    setRunner(undefined);
    setNative(undefined);
  });

  it('loads the script with one nft -f - on stdin, in the given netns', async () => {
    const calls: { argv: readonly string[]; input?: string | Buffer }[] = [];
    setRunner(async (argv, opts) => {
      calls.push({ argv, input: opts?.input });
      return { code: 0, stdout: '', stderr: '' };
    });
    const fw = new NftFirewall({ tablePrefix: 'arca', netns: '/run/netns/x' });
    await fw.apply(STATES['default-bridge']!);
    assert.deepEqual(calls[0]!.argv, ['nsenter', '--net=/run/netns/x', 'nft', '-f', '-']);
    assert.equal(calls[0]!.input, fw.render(STATES['default-bridge']!));
    // Then one exec for the sysctls, in the same namespace.
    assert.deepEqual(calls[1]!.argv.slice(0, 5), ['nsenter', '--net=/run/netns/x', 'sysctl', '-q', '-w']);
    assert.ok(calls[1]!.argv.includes('net/ipv4/conf/arca0/route_localnet=1'));
    assert.equal(calls.length, 2);
    await fw.teardown();
    assert.equal(calls[2]!.input, renderTeardown('arca'));
  });

  it('turns an nft failure into a SystemError with nft\'s message', async () => {
    setRunner(async (argv) => {
      throw new CommandError(argv, 1, '/dev/stdin:7:3-9: Error: Could not process rule: No such file or directory\n');
    });
    const fw = new NftFirewall({ tablePrefix: 'arca', sysctls: false });
    await assert.rejects(fw.apply(STATES.empty!), (err: unknown) => {
      assert.ok(err instanceof SystemError);
      assert.match((err as Error).message, /^firewall apply failed: \/dev\/stdin:7:3-9: Error: Could not process rule/);
      return true;
    });
  });

  it('the none firewall does nothing at all', async () => {
    setRunner(async () => assert.fail('no command expected'));
    const none = new NoneFirewall();
    assert.equal(none.name, 'none');
    await none.apply(STATES['many-networks']!);
    await none.teardown();
  });
});

describe('required sysctls', () => {
  it('asks for forwarding, route_localnet per bridge, and br_netfilter when icc is off', () => {
    assert.deepEqual(requiredSysctls(STATES['many-networks']!), [
      { key: 'net/ipv4/ip_forward', value: '1' },
      { key: 'net/ipv6/conf/all/forwarding', value: '1' },
      { key: 'net/ipv4/conf/arca0/route_localnet', value: '1' },
      { key: 'net/ipv4/conf/br-9a8b7c6d5e4f/route_localnet', value: '1' },
      { key: 'net/ipv4/conf/br-ffff0000ffff/route_localnet', value: '1' },
      { key: 'net/bridge/bridge-nf-call-iptables', value: '1', optional: true },
      { key: 'net/bridge/bridge-nf-call-ip6tables', value: '1', optional: true },
    ]);
  });

  it('asks for nothing when there is nothing to route', () => {
    assert.deepEqual(requiredSysctls({ networks: [internalNet], ports: [] }), []);
  });
});

describe('firewall registry', () => {
  it('builds nftables (also for "") and none, and refuses unknown names', () => {
    assert.equal(createFirewall('', { tablePrefix: 'arca' }).name, 'nftables');
    assert.equal(createFirewall('nftables', { tablePrefix: 'arca' }).name, 'nftables');
    assert.equal(createFirewall('none', { tablePrefix: 'arca' }).name, 'none');
    assert.throws(() => createFirewall('iptables', { tablePrefix: 'arca' }), /unknown firewall "iptables" \(known: nftables, none\)/);
  });
});
